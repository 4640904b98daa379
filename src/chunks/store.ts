// ChunkStore: immutable chunk objects on a local disk, one file per object (format in
// format.ts). Durability: an object is written to a temp name in its final directory,
// fdatasynced, renamed, and the directory fsynced, so after a crash the final name holds
// either nothing or the whole object; temp leftovers are removed by open().
import { mkdir, open, readdir, rename, stat, statfs, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { ChunkError, type ChunkApi, type ChunkCapacity, type ChunkStat, type ChunkStatApi, type ChunkStreamApi, type ChunkWriter } from './api.js';
import { BlockCrcBuilder, blockCount, crc32cOf, DEFAULT_BLOCK_SIZE_BYTES, isValidBlockSize } from './crc.js';
import {
  decodeFixedHeader,
  encodePrefixOf,
  FormatError,
  prefixLengthBytes,
  verifyPrefix,
  type VerifiedHeader,
} from './format.js';
import { KeyedMutex, Limiter } from './limiter.js';
import { OpenObjects } from './open-objects.js';

/** 4x the default 4 MiB chunk: room for larger configured chunks, still a bounded buffer per request. */
export const DEFAULT_MAX_CHUNK_BYTES = 64 * 1024 * 1024;
/** Object files kept open for reads: well under the default 1024 fd limit of a shell. */
const OPEN_OBJECTS_MAX = 256;
const HARD_MAX_CHUNK_BYTES = 1024 * 1024 * 1024;
/** One read of this size covers header + table for objects up to ~63 MiB at 64 KiB blocks. */
const PREFIX_READ_BYTES = 4096;
/** Data read per step when checking a whole object: memory stays bounded whatever its size. */
const VERIFY_PIECE_BYTES = 1024 * 1024;
const CHUNKS_SUBDIR = 'chunks';
const TEMP_MARKER = '.tmp.';
const ID_NAME = /^[0-9a-f]{16}$/;
const FANOUT_NAME = /^[0-9a-f]{2}$/;
/** Streamed objects being received at once (each holds a temp file open). */
const DEFAULT_MAX_OPEN_WRITERS = 64;

export interface ChunkStoreOptions {
  /** Objects live under `<dataDir>/chunks/`. */
  dataDir: string;
  logger?: Logger;
  /** Checksum block size of new objects (power of two, 4 KiB..4 MiB). Existing objects keep theirs. */
  blockSizeBytes?: number;
  /** Largest object accepted by writeChunk. */
  maxChunkBytes?: number;
  maxConcurrentWrites?: number;
  maxConcurrentReads?: number;
  /** Requests waiting for a slot, per kind; past it a request fails with UNAVAILABLE. */
  maxQueuedRequests?: number;
  /** Parallel stat() calls while scanning at open and listing. */
  scanConcurrency?: number;
  /** Objects being streamed in at once (openWriter); past it openWriter fails with UNAVAILABLE. */
  maxOpenWriters?: number;
}

/** How often the free space of the store's filesystem is read again for write admission. */
const SPACE_CHECK_MS = 100;

type ExistingObject = { kind: 'absent' } | { kind: 'same' | 'corrupt'; fileSizeBytes: number };

/** A temp object file being filled: the part of a write that does not touch the final name. */
interface TempObject {
  chunkId: number;
  file: string;
  temp: string;
  fh: FileHandle;
  prefixBytes: number;
  crcs: BlockCrcBuilder;
}

export interface ChunkInfo {
  chunkId: number;
  /** Size of the object file (header + table + data). */
  fileSizeBytes: number;
  /** When the object file was written (wall clock): its age tells an orphan from a write in flight. */
  mtimeMs: number;
}

/** Counters since open, for metrics. */
export interface ChunkStoreStats {
  objectsWritten: number;
  objectsDeleted: number;
  idempotentRewrites: number;
  corruptDetected: number;
  /** Bytes read from object files by reads, verification and rewrite checks. */
  diskBytesRead: number;
  tempFilesRemoved: number;
}

function isSafeId(chunkId: number): boolean {
  return Number.isSafeInteger(chunkId) && chunkId >= 0;
}

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function toChunkError(err: unknown, context: string): ChunkError {
  if (err instanceof ChunkError) return err;
  const code = errnoOf(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (code === 'ENOENT') return new ChunkError('NOT_FOUND', `${context}: not found`);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new ChunkError('NO_SPACE', `${context}: ${detail}`);
  return new ChunkError('IO', `${context}: ${detail}`);
}

export function chunkIdHex(chunkId: number): string {
  return chunkId.toString(16).padStart(16, '0');
}

/** Fan-out on the low id bytes: ids are allocated sequentially, so these spread evenly. */
export function chunkObjectPath(dataDir: string, chunkId: number): string {
  const hex = chunkIdHex(chunkId);
  return path.join(dataDir, CHUNKS_SUBDIR, hex.slice(14, 16), hex.slice(12, 14), hex);
}

async function readFully(fh: FileHandle, target: Buffer, positionBytes: number): Promise<number> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await fh.read(target, done, target.length - done, positionBytes + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

async function writeFully(fh: FileHandle, source: Uint8Array, positionBytes: number): Promise<void> {
  let done = 0;
  while (done < source.length) {
    const { bytesWritten } = await fh.write(source, done, source.length - done, positionBytes + done);
    done += bytesWritten;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** mkdir that reports whether it created the directory. */
async function mkdirIfMissing(dir: string): Promise<boolean> {
  try {
    await mkdir(dir);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') return false;
    throw err;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw err;
  }
}

export class ChunkStore implements ChunkApi, ChunkStatApi, ChunkStreamApi {
  private readonly chunksDir: string;
  private readonly logger: Logger;
  private readonly blockSizeBytes: number;
  private readonly maxChunkBytes: number;
  private readonly scanConcurrency: number;
  private readonly writeLimiter: Limiter;
  private readonly readLimiter: Limiter;
  private readonly idMutex = new KeyedMutex<number>();
  /** Open object files for reads (bounded; objects are immutable so headers stay valid). */
  private readonly openObjects = new OpenObjects(OPEN_OBJECTS_MAX);
  /** Fan-out directories known to exist and be durable; at most 256 + 65536 entries. */
  private readonly knownDirs = new Set<string>();
  /** Fan-out directories being created and fsynced, so a concurrent writer waits for durability too. */
  private readonly creatingDirs = new Map<string, Promise<void>>();
  private readonly maxOpenWriters: number;
  private openWriters = 0;
  /**
   * Free space a write must leave on the store's filesystem (decision 0014: the daemon's
   * reserve for its log and namespace when they share the disk); 0: none. A write that
   * would go below it fails with NO_SPACE before it touches the disk.
   */
  reserveBytes = 0;
  /** Bytes of writes admitted and not finished (they are not in statfs yet). */
  private admittedBytes = 0;
  private freeSeen: { bytes: number; atMs: number } | null = null;
  private usedBytes = 0;
  private chunkCount = 0;
  private readonly counters: ChunkStoreStats = {
    objectsWritten: 0,
    objectsDeleted: 0,
    idempotentRewrites: 0,
    corruptDetected: 0,
    diskBytesRead: 0,
    tempFilesRemoved: 0,
  };

  private constructor(readonly dataDir: string, options: ChunkStoreOptions) {
    this.chunksDir = path.join(dataDir, CHUNKS_SUBDIR);
    this.logger = (options.logger ?? pino({ level: 'silent' })).child({ module: 'chunks' });
    this.blockSizeBytes = options.blockSizeBytes ?? DEFAULT_BLOCK_SIZE_BYTES;
    if (!isValidBlockSize(this.blockSizeBytes)) throw new Error(`invalid blockSizeBytes ${this.blockSizeBytes}`);
    this.maxChunkBytes = options.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES;
    if (!(Number.isInteger(this.maxChunkBytes) && this.maxChunkBytes > 0 && this.maxChunkBytes <= HARD_MAX_CHUNK_BYTES)) {
      throw new Error(`invalid maxChunkBytes ${this.maxChunkBytes}`);
    }
    this.scanConcurrency = options.scanConcurrency ?? 16;
    const maxQueued = options.maxQueuedRequests ?? 256;
    this.writeLimiter = new Limiter('chunk writes', options.maxConcurrentWrites ?? 4, maxQueued);
    this.readLimiter = new Limiter('chunk reads', options.maxConcurrentReads ?? 16, maxQueued);
    this.maxOpenWriters = options.maxOpenWriters ?? DEFAULT_MAX_OPEN_WRITERS;
  }

  /** Opens (creating if needed) the store, removes crash leftovers and counts existing objects. */
  static async open(options: ChunkStoreOptions): Promise<ChunkStore> {
    const store = new ChunkStore(path.resolve(options.dataDir), options);
    await store.init();
    return store;
  }

  get maxChunkSizeBytes(): number {
    return this.maxChunkBytes;
  }

  stats(): ChunkStoreStats {
    return { ...this.counters };
  }

  async writeChunk(chunkId: number, data: Buffer): Promise<void> {
    this.checkId(chunkId);
    if (data.length > this.maxChunkBytes) {
      throw new ChunkError('INVALID', `chunk ${chunkIdHex(chunkId)}: ${data.length} bytes exceeds limit ${this.maxChunkBytes}`);
    }
    const release = await this.admitSpace(chunkId, data.length);
    try {
      await this.writeLimiter.run(() => this.idMutex.run(chunkId, () => this.writeLocked(chunkId, data)));
    } finally {
      release();
    }
  }

  /** Counts `bytes` against the free space above the reserve, or fails with NO_SPACE; returns the release. */
  private async admitSpace(chunkId: number, bytes: number): Promise<() => void> {
    if (this.reserveBytes <= 0) return () => undefined;
    const now = performance.now();
    if (!this.freeSeen || now - this.freeSeen.atMs >= SPACE_CHECK_MS) {
      const fs = await statfs(this.dataDir).catch((err: unknown) => {
        throw toChunkError(err, 'statfs');
      });
      // Writes in flight are counted whole although statfs may show part of them: on the safe side.
      this.freeSeen = { bytes: fs.bavail * fs.bsize, atMs: now };
    }
    if (this.freeSeen.bytes - this.admittedBytes - bytes < this.reserveBytes) {
      throw new ChunkError('NO_SPACE', `chunk ${chunkIdHex(chunkId)}: ${bytes} bytes would leave less than the reserve of ${this.reserveBytes} free (${this.freeSeen.bytes} free)`);
    }
    this.admittedBytes += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.admittedBytes -= bytes;
      // The bytes are on disk (or not): the next admission reads statfs again.
      this.freeSeen = null;
    };
  }

  /**
   * Receives an object piece by piece: pieces go to a temp file as they arrive, the CRC
   * table is built on the way, and commit() does what writeChunk does after that (fsync,
   * the immutability check, rename, directory fsync) under the same limits and lock.
   */
  async openWriter(chunkId: number, totalBytes: number): Promise<ChunkWriter> {
    this.checkId(chunkId);
    if (!(Number.isSafeInteger(totalBytes) && totalBytes >= 0 && totalBytes <= this.maxChunkBytes)) {
      throw new ChunkError('INVALID', `chunk ${chunkIdHex(chunkId)}: ${totalBytes} bytes outside [0, ${this.maxChunkBytes}]`);
    }
    if (this.openWriters >= this.maxOpenWriters) {
      throw new ChunkError('UNAVAILABLE', `chunk writes: overloaded (${this.openWriters} objects being received)`);
    }
    const release = await this.admitSpace(chunkId, totalBytes);
    this.openWriters++;
    try {
      const obj = await this.createTemp(chunkId, totalBytes);
      return new StreamedObject(this, obj, () => {
        this.openWriters--;
        release();
      });
    } catch (err) {
      this.openWriters--;
      release();
      throw err;
    }
  }

  async readChunk(chunkId: number, offset: number, length: number): Promise<Buffer> {
    this.checkId(chunkId);
    if (!(Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(length) && length >= 0)) {
      throw new ChunkError('INVALID', `chunk ${chunkIdHex(chunkId)}: bad range offset=${offset} length=${length}`);
    }
    return this.readLimiter.run(() => this.readVerified(chunkId, offset, length));
  }

  async deleteChunk(chunkId: number): Promise<void> {
    this.checkId(chunkId);
    await this.writeLimiter.run(() => this.idMutex.run(chunkId, () => this.deleteLocked(chunkId)));
  }

  async capacity(): Promise<ChunkCapacity> {
    try {
      const fs = await statfs(this.dataDir);
      return {
        totalBytes: fs.blocks * fs.bsize,
        // bavail, not bfree: blocks reserved for root are not ours to fill.
        freeBytes: fs.bavail * fs.bsize,
        usedBytes: this.usedBytes,
        chunkCount: this.chunkCount,
      };
    } catch (err) {
      throw toChunkError(err, 'statfs');
    }
  }

  /** Closes the object files kept open for reads. */
  close(): void {
    this.openObjects.closeAll();
  }

  /** Reads and checks a whole object (header, every block, file length); for scrubbing. */
  async verifyChunk(chunkId: number): Promise<void> {
    const s = await this.statChunk(chunkId, true);
    if (!s.exists) throw new ChunkError('NOT_FOUND', `chunk ${chunkIdHex(chunkId)}: not found`);
    if (s.corrupt !== null) throw new ChunkError('CORRUPT', `chunk ${chunkIdHex(chunkId)}: ${s.corrupt}`);
  }

  /**
   * Whether the object exists, its size, and whether it is damaged: the header, its CRC
   * and the file length always; every block's CRC32C too with `verify`, reading the object
   * in pieces of VERIFY_PIECE_BYTES. Damage found is counted and logged like a bad read.
   */
  async statChunk(chunkId: number, verify: boolean): Promise<ChunkStat> {
    this.checkId(chunkId);
    return this.readLimiter.run(() => this.inspect(chunkId, verify));
  }

  /** Every object on disk, in directory order (not id order); for inventory, GC and repair. */
  async *listChunks(): AsyncGenerator<ChunkInfo> {
    for await (const batch of this.walkObjectFiles()) {
      yield* await this.statBatch(batch);
    }
  }

  private checkId(chunkId: number): void {
    if (!isSafeId(chunkId)) throw new ChunkError('INVALID', `bad chunk id ${chunkId}`);
  }

  private async init(): Promise<void> {
    const startedMs = Date.now();
    try {
      await mkdir(this.chunksDir, { recursive: true });
      for await (const batch of this.walkObjectFiles(true)) {
        for (const info of await this.statBatch(batch)) {
          this.usedBytes += info.fileSizeBytes;
          this.chunkCount++;
        }
      }
    } catch (err) {
      throw toChunkError(err, `open ${this.chunksDir}`);
    }
    this.logger.info(
      { chunkCount: this.chunkCount, usedBytes: this.usedBytes, tempFilesRemoved: this.counters.tempFilesRemoved, scanMs: Date.now() - startedMs },
      'chunk store opened',
    );
  }

  /**
   * Yields the object files of one leaf directory at a time (bounded by the fan-out, not
   * the store size). With `atOpen`, removes temp files and remembers the directories.
   */
  private async *walkObjectFiles(atOpen = false): AsyncGenerator<string[]> {
    for (const l1 of (await readdirOrEmpty(this.chunksDir)).filter((n) => FANOUT_NAME.test(n)).sort()) {
      const l1Dir = path.join(this.chunksDir, l1);
      if (atOpen) this.knownDirs.add(l1Dir);
      for (const l2 of (await readdirOrEmpty(l1Dir)).filter((n) => FANOUT_NAME.test(n)).sort()) {
        const l2Dir = path.join(l1Dir, l2);
        if (atOpen) this.knownDirs.add(l2Dir);
        const objects: string[] = [];
        for (const name of await readdirOrEmpty(l2Dir)) {
          if (ID_NAME.test(name)) objects.push(path.join(l2Dir, name));
          else if (atOpen && name.includes(TEMP_MARKER)) await this.removeTemp(path.join(l2Dir, name));
          else if (atOpen) this.logger.warn({ file: path.join(l2Dir, name) }, 'unexpected file in chunk store; left alone');
        }
        if (objects.length > 0) yield objects;
      }
    }
  }

  private async removeTemp(file: string): Promise<void> {
    await unlink(file);
    this.counters.tempFilesRemoved++;
    this.logger.info({ file }, 'removed temp file left by an interrupted write');
  }

  private async statBatch(files: string[]): Promise<ChunkInfo[]> {
    const infos: ChunkInfo[] = [];
    for (let i = 0; i < files.length; i += this.scanConcurrency) {
      const slice = files.slice(i, i + this.scanConcurrency);
      const stats = await Promise.all(slice.map((f) => stat(f).catch((err: unknown) => (errnoOf(err) === 'ENOENT' ? null : Promise.reject(err)))));
      stats.forEach((st, j) => {
        if (st) infos.push({ chunkId: Number.parseInt(path.basename(slice[j]), 16), fileSizeBytes: st.size, mtimeMs: st.mtimeMs });
      });
    }
    return infos;
  }

  private corrupt(chunkId: number, file: string, reason: string): ChunkError {
    this.counters.corruptDetected++;
    this.logger.error({ chunkId, file, reason }, 'chunk object corrupt');
    return new ChunkError('CORRUPT', `chunk ${chunkIdHex(chunkId)}: ${reason}`);
  }

  private async readHeader(fh: FileHandle, chunkId: number): Promise<VerifiedHeader> {
    const first = Buffer.alloc(PREFIX_READ_BYTES);
    const firstBytes = await readFully(fh, first, 0);
    this.counters.diskBytesRead += firstBytes;
    // The hard cap, not the configured one: lowering the config must not make old objects unreadable.
    const header = decodeFixedHeader(first.subarray(0, firstBytes), HARD_MAX_CHUNK_BYTES);
    const prefixBytes = prefixLengthBytes(header.blockCount);
    let prefix = first.subarray(0, firstBytes);
    if (prefixBytes > firstBytes) {
      prefix = Buffer.alloc(prefixBytes);
      first.copy(prefix, 0, 0, firstBytes);
      const restBytes = await readFully(fh, prefix.subarray(firstBytes), firstBytes);
      this.counters.diskBytesRead += restBytes;
      prefix = prefix.subarray(0, firstBytes + restBytes);
    }
    const verified = verifyPrefix(header, prefix);
    // A valid object under the wrong name is as bad as a damaged one: never serve it.
    if (verified.chunkId !== chunkId) throw new FormatError(`header holds chunk ${chunkIdHex(verified.chunkId)}`);
    return verified;
  }

  /**
   * Reads [offset, offset+length) clamped to the object, reading only the blocks it
   * touches, and checks the header CRC and every touched block's CRC.
   */
  private async readVerified(chunkId: number, offset: number, length: number, checkFileSize = false): Promise<Buffer> {
    const file = chunkObjectPath(this.dataDir, chunkId);
    let fh: FileHandle;
    let header: VerifiedHeader;
    let release: () => void;
    try {
      if (checkFileSize) {
        // Scrub and rewrite checks look at the file as it is now, never at a cached header.
        fh = await open(file, 'r');
        const own = fh;
        release = () => void own.close().catch(() => undefined);
        try {
          header = await this.readHeader(fh, chunkId);
        } catch (err) {
          release();
          throw err;
        }
      } else {
        const o = await this.openObjects.acquire(chunkId, async () => {
          const h = await open(file, 'r');
          try {
            return { fh: h, header: await this.readHeader(h, chunkId) };
          } catch (err) {
            await h.close().catch(() => undefined);
            throw err;
          }
        });
        fh = o.fh;
        header = o.header;
        release = o.release;
      }
    } catch (err) {
      if (err instanceof FormatError) throw this.corrupt(chunkId, file, err.message);
      throw toChunkError(err, `chunk ${chunkIdHex(chunkId)}`);
    }
    try {
      if (checkFileSize) {
        const st = await fh.stat();
        if (st.size !== header.dataOffsetBytes + header.dataLengthBytes) {
          throw new FormatError(`file is ${st.size} bytes, header says ${header.dataOffsetBytes + header.dataLengthBytes}`);
        }
      }
      const start = Math.min(offset, header.dataLengthBytes);
      const end = start + Math.min(length, header.dataLengthBytes - start);
      if (end === start) return Buffer.alloc(0);
      const bs = header.blockSizeBytes;
      const firstBlock = Math.floor(start / bs);
      const lastBlock = Math.floor((end - 1) / bs);
      const readStart = firstBlock * bs;
      const readEnd = Math.min((lastBlock + 1) * bs, header.dataLengthBytes);
      const buf = Buffer.allocUnsafe(readEnd - readStart);
      const got = await readFully(fh, buf, header.dataOffsetBytes + readStart);
      this.counters.diskBytesRead += got;
      if (got !== buf.length) throw new FormatError(`data truncated: ${got} of ${buf.length} bytes at ${readStart}`);
      for (let block = firstBlock; block <= lastBlock; block++) {
        const from = block * bs - readStart;
        const actual = crc32cOf(buf.subarray(from, Math.min(from + bs, buf.length)));
        if (actual !== header.crcs[block]) throw new FormatError(`block ${block} checksum mismatch`);
      }
      return buf.subarray(start - readStart, end - readStart);
    } catch (err) {
      this.openObjects.evict(chunkId);
      if (err instanceof FormatError) throw this.corrupt(chunkId, file, err.message);
      throw toChunkError(err, `read chunk ${chunkIdHex(chunkId)}`);
    } finally {
      release();
    }
  }

  private async inspect(chunkId: number, verify: boolean): Promise<ChunkStat> {
    const file = chunkObjectPath(this.dataDir, chunkId);
    let fh: FileHandle;
    try {
      // Its own handle, never a cached one: the question is about the file as it is now.
      fh = await open(file, 'r');
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return { exists: false };
      throw toChunkError(err, `stat chunk ${chunkIdHex(chunkId)}`);
    }
    let fileSizeBytes = 0;
    let sizeBytes = 0;
    try {
      fileSizeBytes = (await fh.stat()).size;
      const header = await this.readHeader(fh, chunkId);
      sizeBytes = header.dataLengthBytes;
      if (fileSizeBytes !== header.dataOffsetBytes + header.dataLengthBytes) {
        throw new FormatError(`file is ${fileSizeBytes} bytes, header says ${header.dataOffsetBytes + header.dataLengthBytes}`);
      }
      if (verify) await this.verifyBlocks(fh, header);
      return { exists: true, sizeBytes, fileSizeBytes, verified: verify, corrupt: null };
    } catch (err) {
      if (!(err instanceof FormatError)) throw toChunkError(err, `stat chunk ${chunkIdHex(chunkId)}`);
      this.openObjects.evict(chunkId);
      this.corrupt(chunkId, file, err.message);
      return { exists: true, sizeBytes, fileSizeBytes, verified: verify, corrupt: err.message };
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /** Checks every block's CRC32C, one piece (a whole number of blocks) at a time. */
  private async verifyBlocks(fh: FileHandle, header: VerifiedHeader): Promise<void> {
    const bs = header.blockSizeBytes;
    const total = header.dataLengthBytes;
    // Both are powers of two, so a piece is a whole number of blocks.
    const pieceBytes = Math.max(bs, VERIFY_PIECE_BYTES);
    const buf = Buffer.allocUnsafe(Math.min(pieceBytes, total));
    for (let at = 0; at < total; at += pieceBytes) {
      const want = Math.min(pieceBytes, total - at);
      const got = await readFully(fh, buf.subarray(0, want), header.dataOffsetBytes + at);
      this.counters.diskBytesRead += got;
      if (got !== want) throw new FormatError(`data truncated: ${got} of ${want} bytes at ${at}`);
      for (let from = 0; from < want; from += bs) {
        const block = (at + from) / bs;
        if (crc32cOf(buf.subarray(from, Math.min(from + bs, want))) !== header.crcs[block]) {
          throw new FormatError(`block ${block} checksum mismatch`);
        }
      }
    }
  }

  private async ensureFanoutDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    let creating = this.creatingDirs.get(dir);
    if (!creating) {
      creating = this.createFanoutDir(dir).finally(() => this.creatingDirs.delete(dir));
      this.creatingDirs.set(dir, creating);
    }
    await creating;
  }

  private async createFanoutDir(dir: string): Promise<void> {
    const l1Dir = path.dirname(dir);
    // A new directory's entry lives in its parent, so the parent is fsynced too.
    if (await mkdirIfMissing(l1Dir)) await fsyncDir(this.chunksDir);
    this.knownDirs.add(l1Dir);
    if (await mkdirIfMissing(dir)) await fsyncDir(l1Dir);
    this.knownDirs.add(dir);
  }

  /** What is stored under the id now; throws INVALID if it holds other bytes. */
  private async checkExisting(chunkId: number, newData: () => Promise<Buffer>): Promise<ExistingObject> {
    const file = chunkObjectPath(this.dataDir, chunkId);
    try {
      const existing = await this.readVerified(chunkId, 0, HARD_MAX_CHUNK_BYTES, true);
      if (!existing.equals(await newData())) {
        throw new ChunkError('INVALID', `chunk ${chunkIdHex(chunkId)} exists with different content; chunk objects are immutable`);
      }
      return { kind: 'same', fileSizeBytes: (await stat(file)).size };
    } catch (err) {
      if (err instanceof ChunkError && err.code === 'NOT_FOUND') return { kind: 'absent' };
      if (err instanceof ChunkError && err.code === 'CORRUPT') {
        // The caller holds the true bytes, so the rewrite doubles as a repair.
        this.logger.warn({ chunkId }, 'replacing corrupt chunk object with rewritten content');
        return { kind: 'corrupt', fileSizeBytes: (await stat(file)).size };
      }
      throw toChunkError(err, `write chunk ${chunkIdHex(chunkId)}`);
    }
  }

  private async writeLocked(chunkId: number, data: Buffer): Promise<void> {
    const obj = await this.createTemp(chunkId, data.length);
    try {
      obj.crcs.update(data);
      await writeFully(obj.fh, data, obj.prefixBytes);
    } catch (err) {
      throw await this.dropTemp(obj, err);
    }
    await this.commitTemp(obj, async () => data);
  }

  /** A temp file in the object's fan-out directory (created durably first), ready for the data. */
  private async createTemp(chunkId: number, totalBytes: number): Promise<TempObject> {
    const file = chunkObjectPath(this.dataDir, chunkId);
    const temp = `${file}${TEMP_MARKER}${process.pid}.${randomBytes(4).toString('hex')}`;
    try {
      await this.ensureFanoutDir(path.dirname(file));
      const fh = await open(temp, 'wx', 0o644);
      const prefixBytes = prefixLengthBytes(blockCount(totalBytes, this.blockSizeBytes));
      return { chunkId, file, temp, fh, prefixBytes, crcs: new BlockCrcBuilder(totalBytes, this.blockSizeBytes) };
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw this.writeFailed(chunkId, err);
    }
  }

  private writeFailed(chunkId: number, err: unknown): ChunkError {
    const error = toChunkError(err, `write chunk ${chunkIdHex(chunkId)}`);
    this.logger.warn({ chunkId, code: error.code, err }, 'chunk write failed');
    return error;
  }

  /** Closes and removes a temp file after a failure; returns the error to throw. */
  private async dropTemp(obj: TempObject, err: unknown): Promise<ChunkError> {
    await obj.fh.close().catch(() => undefined);
    await unlink(obj.temp).catch(() => undefined);
    return err instanceof ChunkError && err.code === 'INVALID' ? err : this.writeFailed(obj.chunkId, err);
  }

  /**
   * Finishes a temp object holding all its data: header and CRC table, fdatasync, then —
   * unless the id already holds these bytes — rename over the final name and fsync the
   * directory. `newData` gives the object's bytes for the rare comparison with an
   * existing object. Runs with the id locked.
   */
  private async commitTemp(obj: TempObject, newData: () => Promise<Buffer>): Promise<void> {
    const { chunkId, file, temp, fh } = obj;
    let existing: ExistingObject;
    try {
      const crcs = obj.crcs.finish();
      const prefix = encodePrefixOf(chunkId, obj.crcs.dataLengthBytes, this.blockSizeBytes, crcs);
      await writeFully(fh, prefix, 0);
      await fh.datasync();
      await fh.close();
      // A rewrite may replace a corrupt object: no read may keep using the old file.
      this.openObjects.evict(chunkId);
      existing = await this.checkExisting(chunkId, newData);
      if (existing.kind === 'same') {
        await unlink(temp);
        this.counters.idempotentRewrites++;
        return;
      }
      await rename(temp, file);
      await fsyncDir(path.dirname(file));
    } catch (err) {
      throw await this.dropTemp(obj, err);
    }
    if (existing.kind === 'corrupt') this.usedBytes -= existing.fileSizeBytes;
    else this.chunkCount++;
    this.usedBytes += obj.prefixBytes + obj.crcs.dataLengthBytes;
    this.counters.objectsWritten++;
  }

  /** Runs a streamed object's commit under the write limits and the id lock. */
  /** @internal StreamedObject's commit. */
  commitStreamed(obj: TempObject): Promise<void> {
    const dataBytes = obj.crcs.dataLengthBytes;
    const readBack = async (): Promise<Buffer> => {
      // Only when the id already holds an object: compare with what was just written.
      const fh = await open(obj.temp, 'r');
      try {
        const buf = Buffer.allocUnsafe(dataBytes);
        const got = await readFully(fh, buf, obj.prefixBytes);
        if (got !== dataBytes) throw new ChunkError('IO', `temp file of chunk ${chunkIdHex(obj.chunkId)} is short`);
        return buf;
      } finally {
        await fh.close();
      }
    };
    return this.writeLimiter.run(() => this.idMutex.run(obj.chunkId, () => this.commitTemp(obj, readBack))).catch(async (err: unknown) => {
      // Refused by the limiter before commitTemp ran: the temp file is still ours to drop.
      if (err instanceof ChunkError && err.code === 'UNAVAILABLE') await this.dropTemp(obj, err);
      throw err;
    });
  }

  /** Drops a streamed object that will not be committed. */
  /** @internal */
  async abortStreamed(obj: TempObject): Promise<void> {
    await obj.fh.close().catch(() => undefined);
    await unlink(obj.temp).catch(() => undefined);
  }

  private async deleteLocked(chunkId: number): Promise<void> {
    const file = chunkObjectPath(this.dataDir, chunkId);
    this.openObjects.evict(chunkId);
    try {
      const st = await stat(file);
      await unlink(file);
      this.usedBytes -= st.size;
      this.chunkCount--;
      this.counters.objectsDeleted++;
      await fsyncDir(path.dirname(file));
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return;
      throw toChunkError(err, `delete chunk ${chunkIdHex(chunkId)}`);
    }
  }
}

/** A streamed object (ChunkStore.openWriter): pieces are written in order at their place after the prefix. */
class StreamedObject implements ChunkWriter {
  private tail: Promise<void> = Promise.resolve();
  private failure: unknown = null;
  private queued = 0;
  private state: 'open' | 'committing' | 'closed' = 'open';

  constructor(
    private readonly store: ChunkStore,
    private readonly obj: TempObject,
    private readonly onClose: () => void,
  ) {}

  get queuedBytes(): number {
    return this.queued;
  }

  append(piece: Buffer): Promise<void> {
    if (this.state !== 'open') return Promise.reject(new ChunkError('INVALID', 'append after commit or abort'));
    if (this.failure) return Promise.reject(this.failure);
    const { crcs } = this.obj;
    if (crcs.receivedBytes + piece.length > crcs.dataLengthBytes) {
      this.failure = new ChunkError('INVALID', `more data than the announced ${crcs.dataLengthBytes} bytes`);
      return Promise.reject(this.failure);
    }
    const position = this.obj.prefixBytes + crcs.receivedBytes;
    crcs.update(piece);
    this.queued += piece.length;
    const done = this.tail.then(async () => {
      try {
        if (this.failure) throw this.failure;
        await writeFully(this.obj.fh, piece, position);
      } catch (err) {
        this.failure ??= err instanceof ChunkError ? err : toChunkError(err, `write chunk ${chunkIdHex(this.obj.chunkId)}`);
        throw this.failure;
      } finally {
        this.queued -= piece.length;
      }
    });
    this.tail = done.catch(() => undefined);
    return done;
  }

  async commit(): Promise<void> {
    if (this.state !== 'open') throw new ChunkError('INVALID', 'commit after commit or abort');
    this.state = 'committing';
    await this.tail;
    const { crcs } = this.obj;
    try {
      if (this.failure) throw this.failure;
      if (crcs.receivedBytes !== crcs.dataLengthBytes) {
        throw new ChunkError('INVALID', `received ${crcs.receivedBytes} of ${crcs.dataLengthBytes} announced bytes`);
      }
    } catch (err) {
      await this.drop();
      throw err;
    }
    try {
      await this.store.commitStreamed(this.obj);
    } finally {
      this.state = 'closed';
      this.onClose();
    }
  }

  /** A commit under way finishes on its own (what it stores is then an orphan for GC). */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    await this.drop();
  }

  private async drop(): Promise<void> {
    this.state = 'closed';
    this.failure ??= new ChunkError('UNAVAILABLE', 'write aborted');
    await this.tail;
    await this.store.abortStreamed(this.obj);
    this.onClose();
  }
}
