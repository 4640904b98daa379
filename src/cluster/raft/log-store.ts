// The disk-backed Raft log of one node: entries, hard state, applied ConfState and the
// latest snapshot's metadata, in one directory. It is the durability point of the
// namespace: a promise from append()/setHardState() resolves only after an fdatasync that
// covered its bytes, and concurrent callers share that fdatasync (group commit).
//
// Layout of the directory:
//   log-<firstIndex as 16 hex>.seg   append-only segments, preallocated to segmentBytes
//   snapshot.meta                    JSON, replaced atomically (tmp + fdatasync + rename + dir fsync)
//   snapshot-<index as 16 hex>.data  the image of a snapshot installed from the leader (same way)
//   *.tmp                            preallocated spares / half-written metadata; deleted on open
//
// Decisions (why):
// - Hard state and ConfState are records in the segments, not a separate file: they then
//   ride the same fdatasync as the entries of the same Ready (a separate file costs three
//   syncs per commit advance). Recovery takes the last one. Every new segment starts with
//   a header (seq, firstIndex) and copies of the current hard state and ConfState, so the
//   newest segment always holds the latest state and older segments can be deleted freely.
// - Segments are replayed in header `seq` order, and replay has Raft's overwrite rule: an
//   entry whose index is <= the last replayed index truncates the suffix from there. So a
//   conflicting suffix is cut durably by writing the new entries, nothing is rewritten in
//   place, and a segment never holds an entry below its name (an overwrite below the
//   active segment's first index starts a new segment named after it). Segments are created
//   as a preallocated *.tmp spare and renamed into place, which atomically replaces a dead
//   segment of the same name.
// - Preallocation writes zeros once (in the background, one spare ahead): steady-state
//   writes then land inside the file's size on allocated blocks, so fdatasync flushes data
//   only, with no journal commit for size or extent changes. A zero length ends a segment.
// - A torn tail is never written over: after recovery new records go to a new segment, so
//   stale bytes after a torn record can never be read back as valid records.
// - All entries that are not compacted live in memory (LogReader is synchronous and the
//   daemon may not read files synchronously). The bound is `maxMemoryBytes` /
//   `maxMemoryEntries`; past it, append() rejects with LogStoreError('FULL') until the
//   daemon snapshots and compacts.
// - The data of a snapshot this node took itself is not stored here (the state machine owns
//   its image, synced before createSnapshot); snapshot() returns the metadata with the data
//   handed in by createSnapshot or, after a reopen, by attachSnapshotData(). The data of a
//   snapshot installed from the leader (applySnapshot) is written durably before its
//   metadata, so a crash between installing it here and restoring the state machine from
//   it leaves the image to restore from at the next start (found by the simulator: the
//   other order left a state machine ahead of its log).
import { join } from 'node:path';
import type { LogFile, LogFs } from './log-fs.js';
import { nodeLogFs } from './log-fs.js';
import {
  RecordFormatError,
  RecordKind,
  encodeConf,
  encodeEntries,
  encodeHardState,
  encodeHeader,
  entryFrameBytes,
  scanSegment,
} from './log-record.js';
import type { ConfState, Entry, HardState, LogReader, Snapshot, SnapshotMeta } from './types.js';
import { EntryType } from './types.js';
import { assert, limitSize } from './util.js';

export type LogStoreErrorCode =
  /** The in-memory bound of uncompacted entries is reached: snapshot and compact first. */
  | 'FULL'
  /** An entry is larger than maxEntryBytes. */
  | 'TOO_LARGE'
  /** The store is closed. */
  | 'CLOSED'
  /** A write, fdatasync or rename failed: the store refuses all further work (never retry an fsync). */
  | 'IO'
  /** Recovery found bytes it cannot interpret (valid CRC, wrong content, or a gap in the log). */
  | 'CORRUPT';

/** An operating error of the log store with a stable code. */
export class LogStoreError extends Error {
  constructor(
    readonly code: LogStoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'LogStoreError';
  }
}

export interface LogStoreOptions {
  /** Size of each preallocated segment file. Default 64 MiB. */
  segmentBytes?: number;
  /** 'zeros' writes the whole segment once at creation (default); 'sparse' only sets its size. */
  preallocate?: 'zeros' | 'sparse';
  /** Largest entry data accepted. Default 8 MiB; at most segmentBytes / 4. */
  maxEntryBytes?: number;
  /** Bytes queued for the writer beyond which callers wait for room (back-pressure). Default 16 MiB. */
  maxQueuedBytes?: number;
  /** Bytes written per write + fdatasync at most. Default 4 MiB. */
  maxBatchBytes?: number;
  /** Bound on uncompacted entries held in memory (data bytes + ~64 B each). Default 256 MiB. */
  maxMemoryBytes?: number;
  /** Bound on the number of uncompacted entries held in memory. Default 1 000 000. */
  maxMemoryEntries?: number;
  /** ConfState of a brand-new log (ignored when the directory already holds one). */
  bootstrapConf?: ConfState;
  /** File operations; tests inject a wrapper. */
  fs?: LogFs;
}

export interface LogStoreStats {
  /** append() calls admitted. */
  appends: number;
  entries: number;
  /** State records (setHardState / setConfState) admitted. */
  stateWrites: number;
  /** Group-commit batches: one write + one fdatasync each. */
  batches: number;
  /** fdatasyncs of batches (segment creation and metadata syncs are in metaSyncs). */
  fsyncs: number;
  metaSyncs: number;
  bytesWritten: number;
  segmentsCreated: number;
  segmentsDeleted: number;
  /** Bytes admitted and not yet durable, now and at most so far. */
  queuedBytes: number;
  maxQueuedBytes: number;
  /** Operations that had to wait for room in the queue. */
  backpressureWaits: number;
  memoryBytes: number;
  memoryEntries: number;
}

const SEGMENT_RE = /^log-([0-9a-f]{16})\.seg$/;
const SNAPSHOT_META = 'snapshot.meta';
const SNAPSHOT_DATA_RE = /^snapshot-([0-9a-f]{16})\.data$/;
const META_VERSION = 1;
/** In-memory cost of an entry besides its data (object, array slot), for the memory bound. */
const ENTRY_MEMORY_OVERHEAD_BYTES = 64;
const ZERO_CHUNK_BYTES = 1 << 20;

interface SnapshotMetaFile {
  version: number;
  index: number;
  term: number;
  conf: ConfState;
  /** Segments with a lower seq predate an installed snapshot and are ignored. */
  resetSeq: number;
  /** Fallback state when no segment survives (a crash right after applySnapshot). */
  hardState: HardState;
  confState: ConfState;
}

interface Segment {
  firstIndex: number;
  seq: number;
  path: string;
}

interface ActiveSegment extends Segment {
  file: LogFile;
  writePos: number;
  /** Bytes of header + state copies at the start. */
  headBytes: number;
}

/** Queued bytes for the writer: frames, of which the first `cursor` are written. */
interface RecordsOp {
  kind: 'records';
  buf: Buffer;
  frameEnds: number[];
  /** Index of frame 0 if the frames are entries, else null. */
  firstIndex: number | null;
  hardState: HardState | null;
  conf: ConfState | null;
  cursor: number;
}

type Op =
  | RecordsOp
  | { kind: 'compact'; index: number }
  | { kind: 'snapshotMeta'; meta: SnapshotMeta }
  | { kind: 'installSnapshot'; meta: SnapshotMeta; data: Buffer };

interface Pending {
  op: Op;
  bytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class LogStore implements LogReader {
  // ---- memory view (what LogReader answers); changed when an operation is admitted
  /** ents[0] is a dummy standing for the snapshot/compaction point. */
  private ents: Entry[];
  private memBytes = 0;
  private hardState: HardState;
  private conf: ConfState;
  private snap: SnapshotMeta;
  private snapData: Buffer | null = null;
  /** File holding the data of the snapshot installed from the leader, if that is the latest. */
  private receivedDataPath: string | null = null;

  // ---- writer state (what is on disk)
  private active: ActiveSegment | null = null;
  private sealed: Segment[] = [];
  private seq: number;
  private resetSeq: number;
  private diskLastIndex: number;
  private diskHardState: HardState;
  private diskConf: ConfState;
  private spare: Promise<string> | null = null;
  private spareCounter = 0;

  // ---- queues
  private queue: Pending[] = [];
  private waiting: Array<{ bytes: number; admit: () => Pending | null; reject: (err: Error) => void }> = [];
  private queuedBytes = 0;
  private writing: Promise<void> | null = null;
  private failure: LogStoreError | null = null;
  private closed = false;

  private readonly counters = {
    appends: 0,
    entries: 0,
    stateWrites: 0,
    batches: 0,
    fsyncs: 0,
    metaSyncs: 0,
    bytesWritten: 0,
    segmentsCreated: 0,
    segmentsDeleted: 0,
    maxQueuedBytes: 0,
    backpressureWaits: 0,
  };

  private readonly segmentBytes: number;
  private readonly preallocate: 'zeros' | 'sparse';
  private readonly maxEntryBytes: number;
  private readonly maxQueuedBytes: number;
  private readonly maxBatchBytes: number;
  private readonly maxMemoryBytes: number;
  private readonly maxMemoryEntries: number;

  private constructor(
    private readonly dir: string,
    private readonly fs: LogFs,
    opts: LogStoreOptions,
    recovered: Recovered,
  ) {
    this.segmentBytes = opts.segmentBytes ?? 64 << 20;
    this.preallocate = opts.preallocate ?? 'zeros';
    this.maxEntryBytes = opts.maxEntryBytes ?? Math.min(8 << 20, Math.floor(this.segmentBytes / 4));
    this.maxQueuedBytes = opts.maxQueuedBytes ?? 16 << 20;
    this.maxBatchBytes = opts.maxBatchBytes ?? 4 << 20;
    this.maxMemoryBytes = opts.maxMemoryBytes ?? 256 << 20;
    this.maxMemoryEntries = opts.maxMemoryEntries ?? 1_000_000;
    assert(this.segmentBytes >= 4096, 'segmentBytes must be >= 4096');
    assert(this.maxEntryBytes >= 1 && this.maxEntryBytes <= this.segmentBytes / 4, 'maxEntryBytes must be in [1, segmentBytes/4]');
    assert(this.maxQueuedBytes >= 1 && this.maxBatchBytes >= 1, 'queue and batch bounds must be >= 1');

    this.snap = recovered.snap;
    this.snapData = recovered.snapData;
    this.receivedDataPath = recovered.snapDataPath;
    this.ents = [dummy(recovered.snap.index, recovered.snap.term), ...recovered.entries];
    for (const e of recovered.entries) this.memBytes += memoryBytes(e);
    this.hardState = { ...recovered.hardState };
    this.conf = copyConf(recovered.conf);
    this.sealed = recovered.segments;
    this.seq = recovered.seq;
    this.resetSeq = recovered.resetSeq;
    this.diskLastIndex = this.lastIndex();
    this.diskHardState = { ...recovered.hardState };
    this.diskConf = copyConf(recovered.conf);
  }

  /** Open (creating if needed) the log in `dir` and recover it. */
  static async open(dir: string, opts: LogStoreOptions = {}): Promise<LogStore> {
    const fs = opts.fs ?? nodeLogFs;
    await fs.mkdirp(dir);
    const recovered = await recover(dir, fs, opts.bootstrapConf ?? { voters: [], learners: [] });
    const store = new LogStore(dir, fs, opts, recovered);
    if (recovered.fresh) await store.writeSnapshotMeta();
    // Never append after a possibly torn tail: start a fresh segment (also the place where
    // the current state is copied, see the header comment).
    await store.roll(store.diskLastIndex + 1, false);
    return store;
  }

  // ------------------------------------------------------------------ LogReader

  firstIndex(): number {
    return this.ents[0].index + 1;
  }

  lastIndex(): number {
    return this.ents[0].index + this.ents.length - 1;
  }

  term(index: number): number {
    const offset = this.ents[0].index;
    if (index < offset) throw new RangeError(`raft log: index ${index} compacted (first ${offset + 1})`);
    if (index > this.lastIndex()) throw new RangeError(`raft log: index ${index} unavailable (last ${this.lastIndex()})`);
    return this.ents[index - offset].term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.ents[0].index;
    if (lo <= offset) throw new RangeError(`raft log: index ${lo} compacted (first ${offset + 1})`);
    if (hi > this.lastIndex() + 1) throw new RangeError(`raft log: entries up to ${hi - 1} unavailable (last ${this.lastIndex()})`);
    if (lo >= hi) return [];
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  /** The latest snapshot, or null if none; null too after a reopen until attachSnapshotData(). */
  snapshot(): Snapshot | null {
    if (this.snap.index === 0 || this.snapData === null) return null;
    return { meta: copyMeta(this.snap), data: this.snapData };
  }

  initialState(): { hardState: HardState; conf: ConfState } {
    return { hardState: { ...this.hardState }, conf: copyConf(this.conf) };
  }

  // ------------------------------------------------------------------ writes

  /**
   * Append entries, truncating any conflicting suffix (Raft overwrite); entries at or below
   * the compaction point are skipped. The LogReader view changes when the call is admitted
   * (at once unless the queue is full); the promise resolves once the entries are durable.
   */
  append(entries: Entry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    let bytes = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      assert(e.index === entries[0].index + i, `append: entries not contiguous at ${e.index}`);
      if (e.data.length > this.maxEntryBytes) {
        return Promise.reject(new LogStoreError('TOO_LARGE', `entry ${e.index}: ${e.data.length} bytes > maxEntryBytes ${this.maxEntryBytes}`));
      }
      bytes += entryFrameBytes(e.data.length);
    }
    return this.submit(bytes, () => this.admitAppend(entries));
  }

  /** Persist term, vote and commit; resolves once durable. */
  setHardState(hs: HardState): Promise<void> {
    const buf = encodeHardState(hs);
    return this.submit(buf.length, () => {
      this.hardState = { ...hs };
      this.counters.stateWrites++;
      return recordsOp(buf, null, { ...hs }, null);
    });
  }

  /** Persist the ConfState the core returned from applyConfChange; resolves once durable. */
  setConfState(conf: ConfState): Promise<void> {
    const buf = encodeConf(conf);
    return this.submit(buf.length, () => {
      this.conf = copyConf(conf);
      this.counters.stateWrites++;
      return recordsOp(buf, null, null, copyConf(conf));
    });
  }

  /**
   * Record a snapshot of the state machine taken at `index` (applied, so in the log):
   * snapshot.meta is replaced atomically. Entries stay until compact().
   */
  createSnapshot(index: number, conf: ConfState, data: Buffer): Promise<Snapshot> {
    let snap: Snapshot | null = null;
    return this.submit(0, () => {
      assert(index > this.snap.index, `snapshot at ${index} is not newer than ${this.snap.index}`);
      assert(index <= this.lastIndex(), `snapshot at ${index} beyond last index ${this.lastIndex()}`);
      this.snap = { index, term: this.term(index), conf: copyConf(conf) };
      this.snapData = data;
      snap = { meta: copyMeta(this.snap), data };
      return { op: { kind: 'snapshotMeta', meta: copyMeta(this.snap) }, bytes: 0 };
    }).then(() => {
      assert(snap !== null, 'snapshot admitted');
      return snap;
    });
  }

  /**
   * Replace the whole log with a snapshot received from the leader (install it before
   * appending the same Ready's entries). Durable before the promise resolves.
   */
  applySnapshot(snapshot: Snapshot): Promise<void> {
    return this.submit(0, () => {
      const meta = snapshot.meta;
      assert(meta.index > this.snap.index, `snapshot ${meta.index} is not newer than ${this.snap.index}`);
      this.snap = copyMeta(meta);
      this.snapData = snapshot.data;
      this.ents = [dummy(meta.index, meta.term)];
      this.memBytes = 0;
      this.conf = copyConf(meta.conf);
      return { op: { kind: 'installSnapshot', meta: copyMeta(meta), data: snapshot.data }, bytes: 0 };
    });
  }

  /**
   * Drop entries <= index from memory and delete segments that hold only such entries.
   * Needs a snapshot at >= index (createSnapshot first), which is also what a restart
   * recovers from: after a reopen the log starts right after the snapshot.
   */
  compact(index: number): Promise<void> {
    return this.submit(0, () => {
      const offset = this.ents[0].index;
      if (index <= offset) return null;
      assert(index <= this.lastIndex(), `compact ${index} beyond last index ${this.lastIndex()}`);
      assert(index <= this.snap.index, `compact ${index} beyond snapshot ${this.snap.index}`);
      for (let i = 1; i <= index - offset; i++) this.memBytes -= memoryBytes(this.ents[i]);
      const kept = this.ents.slice(index - offset);
      kept[0] = dummy(kept[0].index, kept[0].term);
      this.ents = kept;
      return { op: { kind: 'compact', index }, bytes: 0 };
    });
  }

  /** After a reopen: hand back the image of the latest snapshot so snapshot() can serve it. */
  attachSnapshotData(data: Buffer): void {
    assert(this.snap.index > 0, 'no snapshot to attach data to');
    this.snapData = data;
  }

  snapshotMeta(): SnapshotMeta {
    return copyMeta(this.snap);
  }

  stats(): LogStoreStats {
    return {
      ...this.counters,
      queuedBytes: this.queuedBytes,
      memoryBytes: this.memBytes,
      memoryEntries: this.ents.length - 1,
    };
  }

  /** Wait for everything queued to be durable, then close the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.writing !== null || this.waiting.length > 0) {
      if (this.writing !== null) await this.writing.catch(() => undefined);
      else await new Promise<void>((r) => setImmediate(r));
    }
    if (this.active !== null) await this.active.file.close().catch(() => undefined);
    this.active = null;
    if (this.spare !== null) {
      const spare = await this.spare.catch(() => null);
      if (spare !== null) await this.fs.unlink(spare).catch(() => undefined);
      this.spare = null;
    }
  }

  // ------------------------------------------------------------------ admission

  /**
   * Queue an operation. `admit` changes the memory view and returns what to write; it runs
   * now if the queue has room (or is empty: one oversized operation still goes through),
   * otherwise when the writer frees room, in call order.
   */
  private submit(bytes: number, admit: () => { op: Op; bytes: number } | null): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new LogStoreError('CLOSED', 'raft log store is closed'));
    return new Promise<void>((resolve, reject) => {
      const tryAdmit = (): Pending | null => {
        let got: { op: Op; bytes: number } | null;
        try {
          got = admit();
        } catch (err) {
          reject(err as Error);
          return null;
        }
        if (got === null) {
          resolve();
          return null;
        }
        return { op: got.op, bytes: got.bytes, resolve, reject };
      };
      if (this.waiting.length === 0 && (this.queuedBytes === 0 || this.queuedBytes + bytes <= this.maxQueuedBytes)) {
        this.enqueue(tryAdmit());
      } else {
        this.counters.backpressureWaits++;
        this.waiting.push({ bytes, admit: tryAdmit, reject });
      }
    });
  }

  private enqueue(p: Pending | null): void {
    if (p === null) return;
    this.queue.push(p);
    this.queuedBytes += p.bytes;
    if (this.queuedBytes > this.counters.maxQueuedBytes) this.counters.maxQueuedBytes = this.queuedBytes;
    this.kick();
  }

  private kick(): void {
    if (this.writing !== null || this.queue.length === 0) return;
    // Start on a microtask: everything submitted in the same synchronous run (a Ready's
    // entries and hard state) then goes into one batch and one fdatasync.
    this.writing = Promise.resolve().then(() => this.runWriter()).finally(() => {
      this.writing = null;
      // Operations queued after the loop saw an empty queue but before it returned.
      if (this.failure === null) this.kick();
    });
  }

  private admitWaiting(): void {
    while (this.waiting.length > 0 && this.failure === null) {
      const w = this.waiting[0];
      if (this.queuedBytes > 0 && this.queuedBytes + w.bytes > this.maxQueuedBytes) return;
      this.waiting.shift();
      this.enqueue(w.admit());
    }
  }

  private admitAppend(entries: Entry[]): { op: Op; bytes: number } | null {
    const first = this.firstIndex();
    let ents = entries;
    if (ents[ents.length - 1].index < first) return null; // all compacted already
    if (ents[0].index < first) ents = ents.slice(first - ents[0].index);
    const offset = this.ents[0].index;
    const at = ents[0].index - offset;
    assert(at <= this.ents.length, `append leaves a gap: last ${this.lastIndex()}, appending ${ents[0].index}`);
    let removedBytes = 0;
    for (let i = at; i < this.ents.length; i++) removedBytes += memoryBytes(this.ents[i]);
    let addedBytes = 0;
    for (const e of ents) addedBytes += memoryBytes(e);
    const newCount = at - 1 + ents.length;
    const newBytes = this.memBytes - removedBytes + addedBytes;
    if (newBytes > this.maxMemoryBytes || newCount > this.maxMemoryEntries) {
      throw new LogStoreError(
        'FULL',
        `raft log memory bound reached (${newCount} entries, ${newBytes} bytes; max ${this.maxMemoryEntries} entries, ${this.maxMemoryBytes} bytes): snapshot and compact`,
      );
    }
    if (at < this.ents.length) this.ents.length = at; // drop the conflicting suffix
    for (const e of ents) this.ents.push(e);
    this.memBytes = newBytes;
    this.counters.appends++;
    this.counters.entries += ents.length;
    const { buf, frameEnds } = encodeEntries(ents);
    return { op: { kind: 'records', buf, frameEnds, firstIndex: ents[0].index, hardState: null, conf: null, cursor: 0 }, bytes: buf.length };
  }

  // ------------------------------------------------------------------ writer

  /** One loop at a time: batches of records (one write + one fdatasync), barriers alone. */
  private async runWriter(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const head = this.queue[0];
        if (head.op.kind !== 'records') {
          await this.runBarrier(head.op);
          this.finish(1);
          continue;
        }
        await this.writeBatch();
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private async writeBatch(): Promise<void> {
    const active = this.active;
    assert(active !== null, 'no active segment');
    const parts: Buffer[] = [];
    let size = 0;
    let done = 0; // operations fully in this batch
    let lastIndex = this.diskLastIndex;
    let hardState = this.diskHardState;
    let conf = this.diskConf;
    let rollTo: number | null = null;
    let full = false;
    fill: for (const p of this.queue) {
      const op = p.op;
      if (op.kind !== 'records') break;
      while (op.cursor < op.frameEnds.length) {
        const start = op.cursor === 0 ? 0 : op.frameEnds[op.cursor - 1];
        const frameBytes = op.frameEnds[op.cursor] - start;
        const index = op.firstIndex === null ? null : op.firstIndex + op.cursor;
        if (index !== null && index < active.firstIndex) {
          rollTo = index; // an overwrite below this segment: a new segment named after it
          break fill;
        }
        if (active.writePos + size + frameBytes > this.segmentBytes) {
          rollTo = index ?? lastIndex + 1;
          full = true;
          break fill;
        }
        if (size > 0 && size + frameBytes > this.maxBatchBytes) break fill;
        parts.push(op.buf.subarray(start, op.frameEnds[op.cursor]));
        size += frameBytes;
        op.cursor++;
        if (index !== null) lastIndex = index;
      }
      if (op.hardState !== null) hardState = op.hardState;
      if (op.conf !== null) conf = op.conf;
      done++;
    }
    if (size > 0) {
      const buf = parts.length === 1 ? parts[0] : Buffer.concat(parts, size);
      if (active.file.writeDurable) {
        await active.file.writeDurable(buf, active.writePos);
      } else {
        await active.file.write(buf, active.writePos);
        await active.file.datasync();
      }
      active.writePos += size;
      this.counters.batches++;
      this.counters.fsyncs++;
      this.counters.bytesWritten += size;
      this.diskLastIndex = lastIndex;
      this.diskHardState = hardState;
      this.diskConf = conf;
      this.finish(done);
    }
    // Nothing written and the segment is fresh yet full: rolling again would loop forever.
    assert(size > 0 || rollTo !== null, 'writer batch made no progress');
    assert(!(size === 0 && full && active.writePos === active.headBytes), 'a record does not fit in an empty segment');
    if (rollTo !== null) await this.roll(rollTo, false);
  }

  private async runBarrier(op: Op): Promise<void> {
    switch (op.kind) {
      case 'compact':
        await this.dropSegmentsUpTo(op.index);
        return;
      case 'snapshotMeta':
        await this.writeSnapshotMeta();
        await this.dropReceivedData(null);
        return;
      case 'installSnapshot': {
        // Order: the image, then the metadata (with resetSeq = the next segment's seq, so a
        // crash from here on ignores every older segment and the state copies in the
        // metadata stand), then a new segment after the snapshot, then the old segments and
        // the previous image go.
        const dataPath = await this.writeFileAtomically(snapshotDataName(op.meta.index), op.data);
        this.resetSeq = this.seq + 1;
        this.diskLastIndex = op.meta.index;
        this.diskConf = copyConf(op.meta.conf);
        await this.writeSnapshotMeta();
        await this.dropReceivedData(dataPath);
        this.receivedDataPath = dataPath;
        await this.roll(op.meta.index + 1, true);
        return;
      }
      case 'records':
        assert(false, 'records are not a barrier');
    }
  }

  /** Resolve the first `n` queued operations and let waiting ones in. */
  private finish(n: number): void {
    const done = this.queue.splice(0, n);
    for (const p of done) {
      this.queuedBytes -= p.bytes;
      p.resolve();
    }
    this.admitWaiting();
  }

  private fail(err: unknown): void {
    this.failure =
      err instanceof LogStoreError ? err : new LogStoreError('IO', `raft log write failed: ${(err as Error).message}`, { cause: err });
    const pending = this.queue.splice(0);
    this.queuedBytes = 0;
    for (const p of pending) p.reject(this.failure);
    // Not admitted yet, so the memory view never saw them.
    for (const w of this.waiting.splice(0)) w.reject(this.failure);
  }

  // ------------------------------------------------------------------ segments

  /**
   * Start a new segment whose first entry will be `firstIndex`: take the preallocated
   * spare, write header + current hard state + ConfState, fdatasync, rename into place
   * (atomically replacing a dead segment of the same name), fsync the directory. Then
   * delete segments made dead by it: those named >= firstIndex (they hold only entries
   * >= their name, all overwritten), or all older ones after a snapshot install.
   */
  private async roll(firstIndex: number, dropAllOlder: boolean): Promise<void> {
    const sparePath = await this.takeSpare();
    const file = await this.fs.openFile(sparePath);
    const seq = ++this.seq;
    const head = Buffer.concat([encodeHeader(seq, firstIndex), encodeHardState(this.diskHardState), encodeConf(this.diskConf)]);
    assert(head.length + entryFrameBytes(this.maxEntryBytes) <= this.segmentBytes, 'segment too small for its header and one entry');
    await file.write(head, 0);
    await file.datasync();
    const path = join(this.dir, segmentName(firstIndex));
    await this.fs.rename(sparePath, path);
    await this.fs.syncDir(this.dir);
    this.counters.metaSyncs += 2;
    this.counters.segmentsCreated++;
    this.counters.bytesWritten += head.length;

    const old = this.active;
    if (old !== null) {
      await old.file.close();
      this.sealed.push({ firstIndex: old.firstIndex, seq: old.seq, path: old.path });
    }
    this.active = { firstIndex, seq, path, file, writePos: head.length, headBytes: head.length };
    const dead = this.sealed.filter((s) => dropAllOlder || s.firstIndex >= firstIndex);
    this.sealed = this.sealed.filter((s) => !(dropAllOlder || s.firstIndex >= firstIndex));
    for (const s of dead) {
      if (s.path === path) continue; // replaced by the rename
      await this.fs.unlink(s.path);
      this.counters.segmentsDeleted++;
    }
    // Deletions need no directory fsync: a resurrected dead segment is ignored or overwritten on replay.
    this.startSpare();
  }

  /**
   * Delete sealed segments whose live entries are all <= index. Live entries of a segment
   * lie below the names of all later segments (later ones overwrite from their name on), so
   * it is dead when some later segment is named <= index + 1.
   */
  private async dropSegmentsUpTo(index: number): Promise<void> {
    const active = this.active;
    assert(active !== null, 'no active segment');
    let minLater = active.firstIndex;
    const keep: Segment[] = [];
    const drop: Segment[] = [];
    for (let i = this.sealed.length - 1; i >= 0; i--) {
      const s = this.sealed[i];
      if (minLater <= index + 1) drop.push(s);
      else keep.push(s);
      minLater = Math.min(minLater, s.firstIndex);
    }
    this.sealed = keep.reverse();
    // Oldest first, so what a crash leaves of them is a contiguous run before the survivors.
    drop.reverse();
    for (const s of drop) {
      await this.fs.unlink(s.path);
      this.counters.segmentsDeleted++;
    }
  }

  private startSpare(): void {
    const path = join(this.dir, `prealloc-${this.spareCounter++}.tmp`);
    const spare = this.createSpare(path);
    spare.catch(() => undefined); // surfaced by takeSpare()
    this.spare = spare;
  }

  private async takeSpare(): Promise<string> {
    if (this.spare === null) this.startSpare();
    const spare = this.spare;
    assert(spare !== null, 'spare started');
    this.spare = null;
    return spare;
  }

  private async createSpare(path: string): Promise<string> {
    const file = await this.fs.createFile(path);
    try {
      if (this.preallocate === 'sparse') {
        await file.truncate(this.segmentBytes);
      } else {
        const zeros = Buffer.alloc(Math.min(ZERO_CHUNK_BYTES, this.segmentBytes));
        for (let at = 0; at < this.segmentBytes; at += zeros.length) {
          await file.write(at + zeros.length <= this.segmentBytes ? zeros : zeros.subarray(0, this.segmentBytes - at), at);
        }
      }
      await file.datasync();
      this.counters.metaSyncs++;
    } finally {
      await file.close();
    }
    return path;
  }

  /** Write `data` as `name` in the log directory: tmp, fdatasync, rename, directory fsync. */
  private async writeFileAtomically(name: string, data: Buffer): Promise<string> {
    const tmp = join(this.dir, `${name}.tmp`);
    const file = await this.fs.createFile(tmp);
    try {
      await file.write(data, 0);
      await file.datasync();
    } finally {
      await file.close();
    }
    const path = join(this.dir, name);
    await this.fs.rename(tmp, path);
    await this.fs.syncDir(this.dir);
    this.counters.metaSyncs += 2;
    return path;
  }

  /** Delete the image of an earlier installed snapshot (not `keep`): a newer snapshot stands. */
  private async dropReceivedData(keep: string | null): Promise<void> {
    const old = this.receivedDataPath;
    if (old === null || old === keep) return;
    this.receivedDataPath = null;
    await this.fs.unlink(old).catch(() => undefined);
  }

  private async writeSnapshotMeta(): Promise<void> {
    const meta: SnapshotMetaFile = {
      version: META_VERSION,
      index: this.snap.index,
      term: this.snap.term,
      conf: copyConf(this.snap.conf),
      resetSeq: this.resetSeq,
      hardState: { ...this.diskHardState },
      confState: copyConf(this.diskConf),
    };
    // The barrier ran after every earlier record was durable, so disk state == state as of this call.
    const tmp = join(this.dir, `${SNAPSHOT_META}.tmp`);
    const file = await this.fs.createFile(tmp);
    try {
      await file.write(Buffer.from(JSON.stringify(meta), 'utf8'), 0);
      await file.datasync();
    } finally {
      await file.close();
    }
    await this.fs.rename(tmp, join(this.dir, SNAPSHOT_META));
    await this.fs.syncDir(this.dir);
    this.counters.metaSyncs += 2;
  }
}

// -------------------------------------------------------------------- recovery

interface Recovered {
  fresh: boolean;
  snap: SnapshotMeta;
  /** The image of the latest snapshot when it was installed from the leader, else null. */
  snapData: Buffer | null;
  snapDataPath: string | null;
  entries: Entry[];
  hardState: HardState;
  conf: ConfState;
  segments: Segment[];
  seq: number;
  resetSeq: number;
}

async function recover(dir: string, fs: LogFs, bootstrapConf: ConfState): Promise<Recovered> {
  const names = await fs.list(dir);
  for (const n of names) if (n.endsWith('.tmp')) await fs.unlink(join(dir, n));

  let meta: SnapshotMetaFile;
  const fresh = !names.includes(SNAPSHOT_META);
  if (fresh && names.some((n) => SEGMENT_RE.test(n))) {
    // snapshot.meta is written before the first segment and only ever replaced.
    throw new LogStoreError('CORRUPT', `${dir}: segments without ${SNAPSHOT_META}`);
  }
  if (fresh) {
    const conf = copyConf(bootstrapConf);
    meta = { version: META_VERSION, index: 0, term: 0, conf, resetSeq: 0, hardState: { term: 0, vote: null, commit: 0 }, confState: conf };
  } else {
    meta = parseMeta(await fs.readFile(join(dir, SNAPSHOT_META)));
  }

  const scanned: Array<Segment & { records: ReturnType<typeof scanSegment>['records'] }> = [];
  for (const n of names) {
    const m = SEGMENT_RE.exec(n);
    if (m === null) continue;
    const path = join(dir, n);
    let scan: ReturnType<typeof scanSegment>;
    try {
      scan = scanSegment(await fs.readFile(path));
    } catch (err) {
      if (err instanceof RecordFormatError) throw new LogStoreError('CORRUPT', `${path}: ${err.message}`, { cause: err });
      throw err;
    }
    const header = scan.records[0];
    if (header === undefined || header.kind !== RecordKind.Header) {
      // Segments are renamed into place only after their header is durable.
      throw new LogStoreError('CORRUPT', `${path}: no valid segment header`);
    }
    const firstIndex = parseInt(m[1], 16);
    if (header.firstIndex !== firstIndex) throw new LogStoreError('CORRUPT', `${path}: header says first index ${header.firstIndex}`);
    scanned.push({ firstIndex, seq: header.seq, path, records: scan.records.slice(1) });
  }
  scanned.sort((a, b) => a.seq - b.seq);

  let hardState = { ...meta.hardState };
  let conf = copyConf(meta.confState);
  let ents: Entry[] = [];
  const segments: Segment[] = [];
  let seq = Math.max(0, meta.resetSeq - 1);
  for (const s of scanned) {
    if (s.seq < meta.resetSeq) {
      await fs.unlink(s.path); // predates an installed snapshot
      continue;
    }
    seq = Math.max(seq, s.seq);
    segments.push({ firstIndex: s.firstIndex, seq: s.seq, path: s.path });
    for (const r of s.records) {
      switch (r.kind) {
        case RecordKind.Entry: {
          const e = r.entry;
          if (ents.length === 0 || e.index < ents[0].index) {
            ents = [e];
          } else {
            const last = ents[ents.length - 1].index;
            if (e.index > last + 1 && e.index <= meta.index + 1) {
              // A gap below the snapshot: a crash during compaction left some of the older
              // segments (their deletion is not synced). Nothing before the snapshot counts.
              ents = [e];
              break;
            }
            if (e.index > last + 1) throw new LogStoreError('CORRUPT', `${s.path}: entry ${e.index} after ${last} (gap)`);
            if (e.index <= last) ents.length = e.index - ents[0].index; // overwrite
            ents.push(e);
          }
          break;
        }
        case RecordKind.HardState:
          hardState = r.hardState;
          break;
        case RecordKind.Conf:
          conf = r.conf;
          break;
        case RecordKind.Header:
          throw new LogStoreError('CORRUPT', `${s.path}: header inside a segment`);
      }
    }
  }

  // The log continues right after the snapshot.
  const snap: SnapshotMeta = { index: meta.index, term: meta.term, conf: copyConf(meta.conf) };
  // The image of an installed snapshot is kept while that snapshot is the latest; others are stale.
  let snapData: Buffer | null = null;
  let snapDataPath: string | null = null;
  for (const n of names) {
    if (!SNAPSHOT_DATA_RE.test(n)) continue;
    const path = join(dir, n);
    if (snap.index > 0 && n === snapshotDataName(snap.index)) {
      snapData = await fs.readFile(path);
      snapDataPath = path;
    } else {
      await fs.unlink(path);
    }
  }
  const keepFrom = ents.findIndex((e) => e.index > snap.index);
  const entries = keepFrom < 0 ? [] : ents.slice(keepFrom);
  if (entries.length > 0 && entries[0].index !== snap.index + 1) {
    throw new LogStoreError('CORRUPT', `${dir}: log starts at ${entries[0].index}, snapshot at ${snap.index}`);
  }
  return { fresh, snap, snapData, snapDataPath, entries, hardState, conf, segments, seq, resetSeq: meta.resetSeq };
}

function parseMeta(buf: Buffer): SnapshotMetaFile {
  let m: SnapshotMetaFile;
  try {
    m = JSON.parse(buf.toString('utf8')) as SnapshotMetaFile;
  } catch (err) {
    throw new LogStoreError('CORRUPT', `${SNAPSHOT_META} is not JSON`, { cause: err });
  }
  if (m.version !== META_VERSION) throw new LogStoreError('CORRUPT', `${SNAPSHOT_META}: unknown version ${String(m.version)}`);
  return m;
}

function snapshotDataName(index: number): string {
  return `snapshot-${index.toString(16).padStart(16, '0')}.data`;
}

function segmentName(firstIndex: number): string {
  return `log-${firstIndex.toString(16).padStart(16, '0')}.seg`;
}

function recordsOp(buf: Buffer, firstIndex: number | null, hardState: HardState | null, conf: ConfState | null): { op: Op; bytes: number } {
  return { op: { kind: 'records', buf, frameEnds: [buf.length], firstIndex, hardState, conf, cursor: 0 }, bytes: buf.length };
}

function memoryBytes(e: Entry): number {
  return e.data.length + ENTRY_MEMORY_OVERHEAD_BYTES;
}

function dummy(index: number, term: number): Entry {
  return { index, term, type: EntryType.Normal, data: Buffer.alloc(0) };
}

function copyConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners] };
}

function copyMeta(m: SnapshotMeta): SnapshotMeta {
  return { index: m.index, term: m.term, conf: copyConf(m.conf) };
}
