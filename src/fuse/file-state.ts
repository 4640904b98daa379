// Per-inode client state of an open regular file: write-back buffers for dirty chunks,
// uploads in flight, refs uploaded but not yet committed, and the client's view of the
// size. Shared by every handle this client has open on the inode.
//
// Chunk objects are immutable: a write to a chunk that already has an object builds a
// new object (read-modify-write of the missing bytes) under a new chunk id; the commit
// swaps the ref and the meta layer sends the old object to GC.
import type { ChunkRef, Ino, Layout, Timespec } from '../meta/types.js';
import { Errno, INLINE_MAX_BYTES } from '../meta/types.js';
import { ChunkError } from '../chunks/api.js';
import { Extents } from './extents.js';
import { BufferPool, type ByteBudget } from './budget.js';

/** Smallest buffer a dirty chunk starts with; it doubles up to the chunk size. */
const MIN_BUFFER_BYTES = 64 * 1024;
/** Refs fetched from the meta service per request. */
export const REF_PAGE = 64;
/**
 * Whole-chunk buffers kept idle for the next dirty chunk, process-wide: 8 default chunks,
 * about what the uploads of one sequential writer return while it fills the next ones.
 */
const IDLE_BUFFER_BYTES = 32 * 1024 * 1024;
export const chunkBufferPool = new BufferPool(IDLE_BUFFER_BYTES);

export class DirtyChunk {
  buf: Buffer;
  readonly written = new Extents();
  /** The base object's bytes were merged into buf (or there is no base). */
  baseMerged = false;

  constructor(
    readonly index: number,
    initialBytes: number,
    pool: BufferPool,
  ) {
    this.buf = pool.take(initialBytes);
  }

  get capacity(): number {
    return this.buf.length;
  }
}

export interface FileIo {
  readRef(ref: ChunkRef, offset: number, length: number, sequential: boolean): Promise<Buffer>;
  uploadChunk(layout: Layout, data: Buffer, index: number): Promise<ChunkRef>;
  loadRefs(ino: Ino, fromIndex: number, count: number): Promise<ChunkRef[] | number>;
}

export function errnoOf(err: unknown): number {
  if (err instanceof ChunkError) {
    if (err.code === 'NO_SPACE') return Errno.ENOSPC;
    if (err.code === 'UNAVAILABLE') return Errno.EIO;
    return Errno.EIO;
  }
  if (typeof err === 'object' && err !== null && 'errno' in err && typeof err.errno === 'number' && err.errno > 0) {
    return err.errno;
  }
  return Errno.EIO;
}

export class FileState {
  handles = 0;
  /** Client view of the size, including dirty data not yet committed. */
  size: number;
  /** Time of the last local write not yet committed. */
  mtime: Timespec | null = null;
  /**
   * Error of a background upload. Sticky until the last handle closes: every later
   * write, flush and fsync fails with it, and nothing more is committed (data the
   * namespace never saw is dropped, as in a crash, never replaced by zeros).
   */
  error = 0;
  /** Inode version this state's committed refs were read at. */
  version: number;
  /** Size the namespace has committed, as last seen by this client. */
  committedSize: number;
  readonly dirty = new Map<number, DirtyChunk>();
  readonly uploads = new Map<number, Promise<void>>();
  readonly pending = new Map<number, ChunkRef>();
  private readonly committed = new Map<number, ChunkRef>();
  private readonly loadedPages = new Set<number>();
  private commitChain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly ino: Ino,
    readonly chunkSizeBytes: number,
    readonly layout: Layout,
    size: number,
    version: number,
    private readonly io: FileIo,
    private readonly budget: ByteBudget,
    private readonly pool: BufferPool = chunkBufferPool,
  ) {
    this.size = size;
    this.committedSize = size;
    this.version = version;
  }

  isClean(): boolean {
    return this.dirty.size === 0 && this.uploads.size === 0 && this.pending.size === 0 && this.mtime === null;
  }

  /** Forget cached committed refs (another client may have changed the file). */
  invalidateRefs(): void {
    this.committed.clear();
    this.loadedPages.clear();
  }

  async ref(index: number): Promise<ChunkRef | undefined | number> {
    const p = this.pending.get(index);
    if (p) return p;
    // No ref can lie at or past the committed size (truncate drops them): skip the lookup.
    if (index * this.chunkSizeBytes >= this.committedSize) return this.committed.get(index);
    const page = Math.floor(index / REF_PAGE);
    if (!this.loadedPages.has(page)) {
      const refs = await this.io.loadRefs(this.ino, page * REF_PAGE, REF_PAGE);
      if (typeof refs === 'number') return refs;
      for (const r of refs) if (!this.committed.has(r.index)) this.committed.set(r.index, r);
      this.loadedPages.add(page);
    }
    return this.pending.get(index) ?? this.committed.get(index);
  }

  // ---- writes ------------------------------------------------------------------------

  async write(offset: number, data: Buffer, now: Timespec): Promise<number> {
    let pos = 0;
    while (pos < data.length) {
      const fileOff = offset + pos;
      const index = Math.floor(fileOff / this.chunkSizeBytes);
      const inChunk = fileOff - index * this.chunkSizeBytes;
      const n = Math.min(data.length - pos, this.chunkSizeBytes - inChunk);
      const upload = this.uploads.get(index);
      if (upload) await upload;
      let dc = this.dirty.get(index);
      if (!dc) {
        // Small files start small and grow; a chunk of a file already past one chunk is
        // allocated whole, so sequential writers never pay for regrowth copies.
        const whole = index > 0 || this.size >= this.chunkSizeBytes;
        const want = whole ? this.chunkSizeBytes : Math.min(this.chunkSizeBytes, Math.max(MIN_BUFFER_BYTES, nextPow2(inChunk + n)));
        const wait = this.budget.acquire(want);
        if (wait) await wait;
        // Another write may have created it while this one waited for budget.
        const again = this.dirty.get(index);
        if (again) {
          this.budget.release(want);
          dc = again;
        } else {
          dc = new DirtyChunk(index, want, this.pool);
          this.dirty.set(index, dc);
        }
      }
      if (inChunk + n > dc.capacity && !(await this.grow(dc, inChunk + n, true))) {
        // An upload took this chunk while the write waited for budget: its buffer is
        // on its way without these bytes. Start over: the next buffer of this chunk
        // (merged over what was uploaded) gets them.
        continue;
      }
      data.copy(dc.buf, inChunk, pos, pos + n);
      dc.written.add(inChunk, inChunk + n);
      pos += n;
      if (dc.written.covers(0, this.chunkSizeBytes)) this.startUpload(index);
    }
    this.size = Math.max(this.size, offset + data.length);
    this.mtime = now;
    return data.length;
  }

  /**
   * Grows a dirty chunk's buffer to hold `needBytes`. For a writer (`writer`), false when
   * an upload took the chunk while this waited for budget: nothing changed then.
   */
  private async grow(dc: DirtyChunk, needBytes: number, writer = false): Promise<boolean> {
    const want = Math.min(this.chunkSizeBytes, nextPow2(needBytes));
    const extra = want - dc.capacity;
    const wait = this.budget.acquire(extra);
    if (wait) await wait;
    if (writer && this.dirty.get(dc.index) !== dc) {
      this.budget.release(extra);
      return false;
    }
    if (dc.capacity >= want) {
      this.budget.release(extra);
      return true;
    }
    const bigger = this.pool.take(want);
    dc.buf.copy(bigger, 0, 0, dc.capacity);
    this.budget.release(dc.capacity - (want - extra));
    // An upload that started meanwhile may still read the old buffer: then leave it to the GC.
    if (this.dirty.get(dc.index) === dc) this.pool.give(dc.buf);
    dc.buf = bigger;
    return true;
  }

  /** Merge the base object's bytes under the unwritten parts of a dirty chunk. */
  private async mergeBase(dc: DirtyChunk): Promise<void> {
    if (dc.baseMerged) return;
    const base = await this.ref(dc.index);
    if (typeof base === 'number') throw Object.assign(new Error('loading chunk refs failed'), { errno: base });
    if (base && base.sizeBytes > 0) {
      const gaps = dc.written.gaps(0, base.sizeBytes);
      if (gaps.length > 0) {
        if (base.sizeBytes > dc.capacity) await this.grow(dc, base.sizeBytes);
        const data = await this.io.readRef(base, 0, base.sizeBytes, false);
        for (const [s, e] of gaps) data.copy(dc.buf, s, s, Math.min(e, data.length));
      }
      dc.written.add(0, base.sizeBytes);
    }
    dc.baseMerged = true;
  }

  /** Bytes of this chunk that belong to the file: up to the file size, within the chunk. */
  private chunkLength(index: number): number {
    const start = index * this.chunkSizeBytes;
    return Math.max(0, Math.min(this.chunkSizeBytes, this.size - start));
  }

  startUpload(index: number): Promise<void> {
    const existing = this.uploads.get(index);
    if (existing) return existing;
    const dc = this.dirty.get(index);
    if (!dc) return Promise.resolve();
    this.dirty.delete(index);
    let uploaded: Buffer | null = null;
    const run = (async () => {
      try {
        await this.mergeBase(dc);
        uploaded = dc.buf;
        const length = Math.min(this.chunkLength(index) || dc.written.end(), dc.capacity);
        const ref =
          index === 0 && this.size <= INLINE_MAX_BYTES
            ? { index, chunkId: 0, sizeBytes: length, placement: [], inline: Buffer.from(dc.buf.subarray(0, length)) }
            : await this.io.uploadChunk(this.layout, dc.buf.subarray(0, length), index);
        this.pending.set(index, ref);
      } catch (err) {
        if (!this.error) this.error = errnoOf(err);
      } finally {
        this.budget.release(dc.capacity);
        // Nothing holds the buffer now: uploadChunk resolves or rejects only after every
        // copy's write finished with it, and an inline ref got a copy.
        if (uploaded && dc.buf === uploaded) this.pool.give(uploaded);
        this.uploads.delete(index);
      }
    })();
    this.uploads.set(index, run);
    return run;
  }

  /**
   * Drop everything not committed (after a flush failed and the last handle closed):
   * the namespace keeps the last committed state, as after a crash.
   */
  discard(): void {
    for (const dc of this.dirty.values()) {
      this.budget.release(dc.capacity);
      this.pool.give(dc.buf);
    }
    this.dirty.clear();
    this.pending.clear();
    this.mtime = null;
    this.size = this.committedSize;
    this.error = 0;
  }

  /** Upload every dirty chunk and wait for all uploads; returns the first error. */
  async drain(): Promise<number> {
    for (const index of [...this.dirty.keys()]) this.startUpload(index);
    while (this.uploads.size > 0) await Promise.all([...this.uploads.values()]);
    // Sticky: once a chunk is lost, no later flush may commit the rest as if whole.
    return this.error;
  }

  /**
   * Commit pending refs and the size through `commit`; serialized so two flushes never
   * race. The callback receives what to commit and returns an errno or 0.
   */
  commit(fn: (refs: ChunkRef[], sizeBytes: number, mtime: Timespec | null) => Promise<number>): Promise<number> {
    const run = this.commitChain.then(async () => {
      if (this.pending.size === 0 && this.mtime === null) return 0;
      const refs = [...this.pending.values()];
      const mtime = this.mtime;
      const sizeBytes = this.size;
      const err = await fn(refs, sizeBytes, mtime);
      if (err) return err;
      for (const r of refs) {
        if (this.pending.get(r.index) === r) this.pending.delete(r.index);
        this.committed.set(r.index, r);
      }
      this.committedSize = Math.max(this.committedSize, sizeBytes);
      if (this.mtime === mtime) this.mtime = null;
      return 0;
    });
    this.commitChain = run.catch(() => undefined);
    return run;
  }

  // ---- reads -------------------------------------------------------------------------

  /** Read [offset, offset+length) as the client sees it (dirty data included). */
  async read(offset: number, length: number, sequential = false): Promise<Buffer[]> {
    const end = Math.min(offset + length, this.size);
    const out: Buffer[] = [];
    let pos = offset;
    while (pos < end) {
      const index = Math.floor(pos / this.chunkSizeBytes);
      const inChunk = pos - index * this.chunkSizeBytes;
      const n = Math.min(end - pos, this.chunkSizeBytes - inChunk);
      const upload = this.uploads.get(index);
      if (upload) await upload;
      const dc = this.dirty.get(index);
      if (dc) {
        if (!dc.written.covers(inChunk, inChunk + n)) await this.mergeBase(dc);
        const avail = Math.max(0, Math.min(n, dc.capacity - inChunk));
        const piece = Buffer.alloc(n);
        if (avail > 0) dc.buf.copy(piece, 0, inChunk, inChunk + avail);
        out.push(piece);
      } else {
        const ref = await this.ref(index);
        if (typeof ref === 'number') throw Object.assign(new Error('loading chunk refs failed'), { errno: ref });
        if (!ref || inChunk >= ref.sizeBytes) {
          out.push(Buffer.alloc(n));
        } else {
          const have = Math.min(n, ref.sizeBytes - inChunk);
          const data = await this.io.readRef(ref, inChunk, have, sequential);
          if (data.length !== have) throw Object.assign(new Error('short chunk read'), { errno: Errno.EIO });
          out.push(data);
          if (have < n) out.push(Buffer.alloc(n - have));
        }
      }
      pos += n;
    }
    return out;
  }

  // ---- truncate ----------------------------------------------------------------------

  /** Apply a committed truncate to the local view. Call only after drain + commit. */
  truncated(sizeBytes: number): void {
    this.size = sizeBytes;
    this.committedSize = sizeBytes;
    this.invalidateRefs();
  }
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
