// Background chores of a chunk server (issue #6): orphan GC and scrub.
//
// Orphan GC (inventory): a writer that crashed between uploading a chunk and committing
// it leaves an object nobody references; the namespace's GC never learns of it. So each
// chunk server walks its store now and then, asks the meta leader which of its objects
// older than a grace period are orphans (CheckChunks), and deletes those. The grace must
// exceed how long a writer may hold an uploaded-but-uncommitted chunk: the leader cannot
// tell such a chunk from an orphan, only its age can.
//
// Scrub: every object's CRC32C is re-checked in the background at a bounded byte rate,
// one full pass after another with a pause between. A corrupt copy is reported to the
// leader (reportBad → reportBadCopy), whose healer replaces it from a good one.
//
// Both loops run one pass at a time, one object at a time, at a bounded rate; stop()
// wakes any sleep and waits for the step in progress. Time and randomness are injected.
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { ChunkError } from '../chunks/api.js';
import { chunkIdHex, chunkObjectPath, type ChunkInfo } from '../chunks/store.js';

const MiB = 1024 * 1024;

/** CheckChunks takes at most this many ids per call (the leader refuses 10 000+). */
export const MAX_CHECK_BATCH = 1000;

/** The chunk store as the chores use it; ChunkStore satisfies it. */
export interface ChoreStore {
  /** Objects live under `<dataDir>/chunks/` (chunkObjectPath): the age re-check stats the file. */
  readonly dataDir: string;
  listChunks(): AsyncIterable<ChunkInfo>;
  /** Resolves if intact; rejects with ChunkError CORRUPT (damaged) or NOT_FOUND (deleted meanwhile). */
  verifyChunk(chunkId: number): Promise<void>;
  deleteChunk(chunkId: number): Promise<void>;
}

/** Wall clock and sleep. `nowMs` is compared with file mtimes, so it is wall-clock time. */
export interface ChoreClock {
  nowMs(): number;
  /** Resolves after `ms`, or early (without error) once `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const realClock: ChoreClock = {
  nowMs: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    }),
};

export type ChoreEventKind = 'orphans-deleted' | 'scrub-error';

export interface ChoreEventFields {
  /** The damaged object (scrub-error). */
  chunkId?: number;
  /** Objects deleted in the pass (orphans-deleted). */
  count?: number;
  /** Their file bytes (orphans-deleted). */
  bytes?: number;
}

export interface ChoreDeps {
  /** This chunk server's node id, as the namespace places copies on it. */
  nodeId: string;
  store: ChoreStore;
  /**
   * CheckChunks on the meta leader (MetaClient.checkChunks({ nodeId, chunkIds }) or the
   * leader's own healer): of `chunkIds` (≤ MAX_CHECK_BATCH), those nobody references on
   * `nodeId` and no GC will delete. errno ≠ 0 or a rejection leaves every object alone.
   */
  checkChunks(nodeId: string, chunkIds: number[]): Promise<{ errno: number; orphans: number[] }>;
  /** Tells the leader this node's copy of `chunkId` is corrupt (a reportBadCopy command). */
  reportBad(chunkId: number): Promise<void>;
  /** A cluster event (EventLog.emit(kind, message, { nodeId, chunkId })). Must not throw. */
  event(kind: ChoreEventKind, message: string, fields: ChoreEventFields): void;
  log: Logger;
  clock?: ChoreClock;
  /** In [0, 1); picks where the first scrub pass starts. */
  random?: () => number;
}

export interface ChoreOptions {
  /** Pause between inventory passes; the first pass starts one interval after start(). 0 disables orphan GC. */
  inventoryIntervalMs: number;
  /** Objects younger than this (by file mtime) are never asked about nor deleted. */
  orphanGraceMs: number;
  /** Ids per CheckChunks call (1..MAX_CHECK_BATCH). */
  checkBatch: number;
  /** Orphans deleted per second at most. */
  deleteRatePerS: number;
  /** Bytes of object files verified per second at most. 0 disables scrub. */
  scrubBytesPerS: number;
  /** Pause after each full scrub pass; the first pass starts one pause after start(). */
  scrubPauseMs: number;
}

export const DEFAULT_CHORE_OPTIONS: ChoreOptions = {
  inventoryIntervalMs: 10 * 60_000,
  orphanGraceMs: 60 * 60_000,
  checkBatch: MAX_CHECK_BATCH,
  deleteRatePerS: 100,
  scrubBytesPerS: 8 * MiB,
  scrubPauseMs: 10 * 60_000,
};

/** Counters since start, for /metrics and status. */
export interface ChoreStats {
  inventoryPasses: number;
  orphansDeleted: number;
  orphanBytesDeleted: number;
  /** Failed CheckChunks calls and failed deletes. */
  inventoryErrors: number;
  scrubPasses: number;
  scrubObjects: number;
  scrubBytes: number;
  /** Corrupt copies found (each one reported). */
  scrubErrors: number;
  /** Objects that could not be read (I/O error, store overloaded): not reported, retried next pass. */
  scrubReadErrors: number;
  /** Objects verified so far in the pass under way. */
  scrubPassObjects: number;
}

/**
 * Allows `ratePerS` units per second with bursts up to `burst`. An amount above what is
 * available is taken as debt and slept off, so one large object is never refused.
 */
export class TokenBucket {
  private tokens = 0;
  private lastMs: number;

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    private readonly clock: ChoreClock,
  ) {
    if (!(ratePerS > 0 && burst >= 0)) throw new Error(`TokenBucket: bad rate ${ratePerS} or burst ${burst}`);
    this.lastMs = clock.nowMs();
  }

  async take(amount: number, signal: AbortSignal): Promise<void> {
    const now = this.clock.nowMs();
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.lastMs) / 1000) * this.ratePerS);
    this.lastMs = now;
    this.tokens -= amount;
    if (this.tokens < 0) await this.clock.sleep((-this.tokens / this.ratePerS) * 1000, signal);
  }
}

/** Objects are walked in fan-out order (chunkObjectPath): lowest id byte, then the next one. */
function fanoutKey(chunkId: number): number {
  return (chunkId % 256) * 256 + (Math.floor(chunkId / 256) % 256);
}

function checkOptions(o: ChoreOptions): void {
  const ok =
    o.inventoryIntervalMs >= 0 &&
    o.orphanGraceMs >= 0 &&
    Number.isInteger(o.checkBatch) &&
    o.checkBatch >= 1 &&
    o.checkBatch <= MAX_CHECK_BATCH &&
    o.deleteRatePerS > 0 &&
    o.scrubBytesPerS >= 0 &&
    o.scrubPauseMs >= 0;
  if (!ok) throw new Error(`invalid chore options ${JSON.stringify(o)}`);
}

/**
 * Orphan GC and scrub of one chunk server's store. The daemon builds it with its store,
 * node id and a way to reach the meta leader, calls start() once serving, stop() on shutdown.
 */
export class ChunkChores {
  readonly options: ChoreOptions;
  private readonly clock: ChoreClock;
  private readonly random: () => number;
  private readonly log: Logger;
  private abort = new AbortController();
  private loops: Array<Promise<void>> = [];
  private scrubStartKey: number | null = null;
  private readonly counters: ChoreStats = {
    inventoryPasses: 0,
    orphansDeleted: 0,
    orphanBytesDeleted: 0,
    inventoryErrors: 0,
    scrubPasses: 0,
    scrubObjects: 0,
    scrubBytes: 0,
    scrubErrors: 0,
    scrubReadErrors: 0,
    scrubPassObjects: 0,
  };

  constructor(
    private readonly deps: ChoreDeps,
    options: Partial<ChoreOptions> = {},
  ) {
    this.options = { ...DEFAULT_CHORE_OPTIONS, ...options };
    checkOptions(this.options);
    this.clock = deps.clock ?? realClock;
    this.random = deps.random ?? Math.random;
    this.log = deps.log.child({ module: 'chores' });
  }

  stats(): ChoreStats {
    return { ...this.counters };
  }

  start(): void {
    if (this.loops.length > 0) return;
    this.abort = new AbortController();
    const { inventoryIntervalMs, scrubBytesPerS, scrubPauseMs } = this.options;
    if (inventoryIntervalMs > 0) this.loops.push(this.loop('inventory', inventoryIntervalMs, (s) => this.inventoryPass(s)));
    if (scrubBytesPerS > 0) this.loops.push(this.loop('scrub', scrubPauseMs, (s) => this.scrubPass(s)));
  }

  /** Wakes the loops and waits for the step each is in (one delete, verify or CheckChunks). */
  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.all(this.loops);
    this.loops = [];
  }

  private emit(kind: ChoreEventKind, message: string, fields: ChoreEventFields): void {
    try {
      this.deps.event(kind, message, fields);
    } catch (err) {
      this.log.warn({ err: String(err), kind }, 'event callback failed');
    }
  }

  private async loop(name: string, pauseMs: number, pass: (signal: AbortSignal) => Promise<unknown>): Promise<void> {
    const signal = this.abort.signal;
    for (;;) {
      await this.clock.sleep(pauseMs, signal);
      if (signal.aborted) return;
      try {
        await pass(signal);
      } catch (err) {
        // A listing that failed (disk error): the next pass tries again.
        this.log.warn({ err: String(err) }, `${name} pass failed`);
      }
    }
  }

  /**
   * One inventory pass: lists the store, asks the leader about objects older than the
   * grace in batches, deletes the orphans. Returns how many objects it deleted.
   */
  async inventoryPass(signal: AbortSignal = new AbortController().signal): Promise<{ deleted: number; bytes: number }> {
    const { orphanGraceMs, checkBatch, deleteRatePerS } = this.options;
    const bucket = new TokenBucket(deleteRatePerS, deleteRatePerS, this.clock);
    const done = { deleted: 0, bytes: 0 };
    let batch: ChunkInfo[] = [];
    let failed = false;
    const flush = async (): Promise<void> => {
      const asked = batch;
      batch = [];
      if (!failed && !signal.aborted) failed = !(await this.collectOrphans(asked, bucket, signal, done));
    };
    for await (const info of this.deps.store.listChunks()) {
      if (signal.aborted || failed) break;
      if (this.clock.nowMs() - info.mtimeMs < orphanGraceMs) continue;
      batch.push(info);
      if (batch.length >= checkBatch) await flush();
    }
    if (batch.length > 0) await flush();
    if (!signal.aborted && !failed) this.counters.inventoryPasses++;
    if (done.deleted > 0) {
      this.log.info({ event: 'orphans-deleted', count: done.deleted, bytes: done.bytes }, 'deleted orphan chunk objects');
      this.emit('orphans-deleted', `deleted ${done.deleted} orphan chunk objects (${done.bytes} bytes)`, { count: done.deleted, bytes: done.bytes });
    }
    return done;
  }

  /** Asks about one batch and deletes its orphans; false when the leader could not answer. */
  private async collectOrphans(
    batch: ChunkInfo[],
    bucket: TokenBucket,
    signal: AbortSignal,
    done: { deleted: number; bytes: number },
  ): Promise<boolean> {
    const listed = new Map(batch.map((i) => [i.chunkId, i]));
    let orphans: number[];
    try {
      const reply = await this.deps.checkChunks(this.deps.nodeId, [...listed.keys()]);
      if (reply.errno !== 0) throw new Error(`errno ${reply.errno}`);
      orphans = reply.orphans;
    } catch (err) {
      this.counters.inventoryErrors++;
      this.log.warn({ err: String(err), batch: batch.length }, 'CheckChunks failed; orphan GC waits for the next pass');
      return false;
    }
    for (const chunkId of orphans) {
      const info = listed.get(chunkId);
      if (!info) {
        this.log.warn({ chunkId }, 'CheckChunks answered an id that was not asked; ignored');
        continue;
      }
      await bucket.take(1, signal);
      if (signal.aborted) break;
      // The object may have been deleted and written again since the listing: only the
      // object the leader was asked about, still old, goes.
      if (!(await this.stillOld(info))) continue;
      try {
        await this.deps.store.deleteChunk(chunkId);
      } catch (err) {
        this.counters.inventoryErrors++;
        this.log.warn({ chunkId, err: String(err) }, 'deleting an orphan chunk object failed');
        continue;
      }
      this.log.debug({ chunkId, fileSizeBytes: info.fileSizeBytes, ageMs: this.clock.nowMs() - info.mtimeMs }, 'deleted orphan chunk object');
      done.deleted++;
      done.bytes += info.fileSizeBytes;
      this.counters.orphansDeleted++;
      this.counters.orphanBytesDeleted += info.fileSizeBytes;
    }
    return true;
  }

  private async stillOld(info: ChunkInfo): Promise<boolean> {
    try {
      const st = await stat(chunkObjectPath(this.deps.store.dataDir, info.chunkId));
      return st.mtimeMs === info.mtimeMs && this.clock.nowMs() - st.mtimeMs >= this.options.orphanGraceMs;
    } catch {
      return false; // gone already, or unreadable: not ours to delete now
    }
  }

  /**
   * One full scrub pass at the configured byte rate. The first pass starts at a random
   * point of the walk (a daemon restarted often still covers every object in turn), wraps
   * around, and ends where it began; later passes start at the beginning.
   */
  async scrubPass(signal: AbortSignal = new AbortController().signal): Promise<void> {
    const rate = this.options.scrubBytesPerS;
    if (!(rate > 0)) throw new Error('scrub is disabled (scrubBytesPerS 0)');
    const bucket = new TokenBucket(rate, rate, this.clock);
    this.scrubStartKey ??= Math.floor(this.random() * 65_536);
    const startKey = this.scrubStartKey;
    this.counters.scrubPassObjects = 0;
    // Two walks when starting mid-way: [startKey, end) then [0, startKey).
    const ranges: Array<[number, number]> = startKey === 0 ? [[0, 65_536]] : [[startKey, 65_536], [0, startKey]];
    for (const [from, to] of ranges) {
      for await (const info of this.deps.store.listChunks()) {
        const key = fanoutKey(info.chunkId);
        if (key < from || key >= to) continue;
        await bucket.take(info.fileSizeBytes, signal);
        if (signal.aborted) {
          // A later start() in this process continues about here.
          this.scrubStartKey = key;
          return;
        }
        await this.scrubOne(info);
      }
    }
    this.counters.scrubPasses++;
    this.scrubStartKey = 0;
    this.log.info({ objects: this.counters.scrubPassObjects, errors: this.counters.scrubErrors }, 'scrub pass finished');
  }

  private async scrubOne(info: ChunkInfo): Promise<void> {
    const { chunkId } = info;
    try {
      await this.deps.store.verifyChunk(chunkId);
    } catch (err) {
      if (err instanceof ChunkError && err.code === 'NOT_FOUND') return; // deleted meanwhile
      if (!(err instanceof ChunkError && err.code === 'CORRUPT')) {
        this.counters.scrubReadErrors++;
        this.log.warn({ chunkId, err: String(err) }, 'scrub could not read a chunk object; next pass retries');
        return;
      }
      this.counters.scrubErrors++;
      this.counters.scrubObjects++;
      this.counters.scrubPassObjects++;
      this.counters.scrubBytes += info.fileSizeBytes;
      this.log.error({ event: 'scrub-error', chunkId, reason: err.message }, 'scrub found a corrupt chunk copy; reporting it');
      this.emit('scrub-error', `corrupt copy of chunk ${chunkIdHex(chunkId)}: ${err.message}`, { chunkId });
      try {
        await this.deps.reportBad(chunkId);
      } catch (reportErr) {
        // Still corrupt next pass, so reported again then.
        this.log.warn({ chunkId, err: String(reportErr) }, 'reporting a corrupt copy failed');
      }
      return;
    }
    this.counters.scrubObjects++;
    this.counters.scrubPassObjects++;
    this.counters.scrubBytes += info.fileSizeBytes;
  }
}
