// Orphan GC and scrub of a chunk server (src/cluster/chores.ts) against a real ChunkStore
// in a temp dir; the leader (CheckChunks, reportBad) is a fake, time a fake clock except
// where start()/stop() are exercised.
import { open, utimes } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ChunkError } from '../../../src/chunks/api.js';
import { prefixLengthBytes } from '../../../src/chunks/format.js';
import { chunkObjectPath, ChunkStore, type ChunkInfo } from '../../../src/chunks/store.js';
import {
  ChunkChores,
  MAX_CHECK_BATCH,
  TokenBucket,
  type ChoreClock,
  type ChoreDeps,
  type ChoreEventFields,
  type ChoreOptions,
  type ChoreStore,
} from '../../../src/cluster/chores.js';
import { memoryLogger, patternBytes, TempDirs } from '../chunks/helpers.js';

const KiB = 1024;
const HOUR = 3_600_000;
const temps = new TempDirs();
const stores: ChunkStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) s.close();
  await temps.cleanup();
});

/** Time moves only when someone sleeps; every sleep is recorded. */
class FakeClock implements ChoreClock {
  readonly slept: number[] = [];
  constructor(public now = Date.now()) {}
  nowMs(): number {
    return this.now;
  }
  async sleep(ms: number): Promise<void> {
    this.slept.push(ms);
    this.now += ms;
    await Promise.resolve();
  }
}

async function openStore(): Promise<ChunkStore> {
  const store = await ChunkStore.open({ dataDir: await temps.make(), logger: pino({ level: 'silent' }) });
  stores.push(store);
  return store;
}

async function writeObjects(store: ChunkStore, ids: number[], sizeBytes = KiB): Promise<void> {
  for (const id of ids) await store.writeChunk(id, patternBytes(sizeBytes, id + 1));
}

async function backdate(store: ChunkStore, ids: number[], ageMs: number): Promise<void> {
  const t = (Date.now() - ageMs) / 1000;
  for (const id of ids) await utimes(chunkObjectPath(store.dataDir, id), t, t);
}

async function listedIds(store: ChoreStore): Promise<number[]> {
  const ids: number[] = [];
  for await (const i of store.listChunks()) ids.push(i.chunkId);
  return ids.sort((a, b) => a - b);
}

async function flipDataByte(store: ChunkStore, id: number, dataLengthBytes: number, at: number): Promise<void> {
  const fh = await open(chunkObjectPath(store.dataDir, id), 'r+');
  try {
    const pos = prefixLengthBytes(Math.ceil(dataLengthBytes / (64 * KiB))) + at;
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, pos);
    b[0] ^= 0x01;
    await fh.write(b, 0, 1, pos);
  } finally {
    await fh.close();
  }
}

interface Harness {
  chores: ChunkChores;
  asked: number[][];
  reported: number[];
  events: Array<{ kind: string; message: string; fields: ChoreEventFields }>;
  lines: Array<Record<string, unknown>>;
}

function makeChores(
  store: ChoreStore,
  leader: (ids: number[]) => Promise<{ errno: number; orphans: number[] }>,
  options: Partial<ChoreOptions>,
  extra: Partial<ChoreDeps> = {},
): Harness {
  const { logger, lines } = memoryLogger();
  const h: Omit<Harness, 'chores'> = { asked: [], reported: [], events: [], lines };
  const deps: ChoreDeps = {
    nodeId: 'n1',
    store,
    checkChunks: (nodeId, ids) => {
      expect(nodeId).toBe('n1');
      h.asked.push([...ids]);
      return leader(ids);
    },
    reportBad: (id) => {
      h.reported.push(id);
      return Promise.resolve();
    },
    event: (kind, message, fields) => h.events.push({ kind, message, fields }),
    log: logger,
    ...extra,
  };
  return { ...h, chores: new ChunkChores(deps, options) };
}

const orphansAmong =
  (orphanIds: number[]) =>
  (ids: number[]): Promise<{ errno: number; orphans: number[] }> =>
    Promise.resolve({ errno: 0, orphans: ids.filter((i) => orphanIds.includes(i)) });

describe('orphan GC (inventory)', () => {
  it('deletes objects older than the grace only when the leader says orphan', async () => {
    const store = await openStore();
    await writeObjects(store, [1, 2, 3, 4, 5, 6]);
    await backdate(store, [1, 2, 3, 4], 2 * HOUR);
    // The leader would call 5 an orphan too, but 5 is young: never asked, never deleted.
    const h = makeChores(store, orphansAmong([1, 2, 5]), { orphanGraceMs: HOUR });
    const r = await h.chores.inventoryPass();
    expect(h.asked.flat().sort()).toEqual([1, 2, 3, 4]);
    expect(await listedIds(store)).toEqual([3, 4, 5, 6]);
    const fileBytes = prefixLengthBytes(1) + KiB;
    expect(r).toEqual({ deleted: 2, bytes: 2 * fileBytes });
    expect(h.events).toEqual([{ kind: 'orphans-deleted', message: expect.stringContaining('2 orphan') as unknown, fields: { count: 2, bytes: 2 * fileBytes } }]);
    expect(h.chores.stats()).toMatchObject({ inventoryPasses: 1, orphansDeleted: 2, orphanBytesDeleted: 2 * fileBytes, inventoryErrors: 0 });
    expect(h.lines.some((l) => l.event === 'orphans-deleted' && l.count === 2)).toBe(true);
  });

  it('never deletes young objects even if the leader calls everything an orphan', async () => {
    const store = await openStore();
    await writeObjects(store, [1, 2, 3]);
    const h = makeChores(store, (ids) => Promise.resolve({ errno: 0, orphans: ids }), { orphanGraceMs: 2000 });
    await h.chores.inventoryPass();
    expect(h.asked).toEqual([]);
    expect(await listedIds(store)).toEqual([1, 2, 3]);
    expect(h.events).toEqual([]);
  });

  it.each([
    ['rejects', () => Promise.reject(new Error('leader unreachable'))],
    ['answers an errno', () => Promise.resolve({ errno: 5, orphans: [1, 2, 3] })],
  ])('leaves everything when CheckChunks %s', async (_what, leader) => {
    const store = await openStore();
    await writeObjects(store, [1, 2, 3]);
    await backdate(store, [1, 2, 3], 2 * HOUR);
    const h = makeChores(store, leader, { orphanGraceMs: HOUR, checkBatch: 2 });
    await h.chores.inventoryPass();
    // The pass gives up at the first failure: no second batch is asked about.
    expect(h.asked.length).toBe(1);
    expect(await listedIds(store)).toEqual([1, 2, 3]);
    expect(h.events).toEqual([]);
    expect(h.chores.stats()).toMatchObject({ inventoryPasses: 0, orphansDeleted: 0, inventoryErrors: 1 });
  });

  it('asks in batches of at most checkBatch ids and ignores ids it did not ask about', async () => {
    const store = await openStore();
    const ids = [10, 11, 12, 13, 14, 15, 16];
    await writeObjects(store, ids);
    await backdate(store, ids, 2 * HOUR);
    // A confused leader also names 99 (not asked; not even stored): ignored.
    const h = makeChores(store, (asked) => Promise.resolve({ errno: 0, orphans: [...asked.filter((i) => i % 2 === 0), 99] }), {
      orphanGraceMs: HOUR,
      checkBatch: 3,
    });
    await h.chores.inventoryPass();
    expect(h.asked.every((b) => b.length >= 1 && b.length <= 3)).toBe(true);
    expect(h.asked.flat().sort()).toEqual(ids);
    expect(await listedIds(store)).toEqual([11, 13, 15]);
    expect(() => makeChores(store, orphansAmong([]), { checkBatch: MAX_CHECK_BATCH + 1 })).toThrow(/invalid chore options/);
  });

  it('re-checks the age after the answer: an object written again meanwhile stays', async () => {
    const store = await openStore();
    await writeObjects(store, [1, 2]);
    await backdate(store, [1, 2], 2 * HOUR);
    const h = makeChores(
      store,
      async (ids) => {
        // While the leader answers, 2 is deleted and written again (a fresh object).
        await store.deleteChunk(2);
        await store.writeChunk(2, patternBytes(KiB, 3));
        return { errno: 0, orphans: ids };
      },
      { orphanGraceMs: HOUR },
    );
    await h.chores.inventoryPass();
    expect(await listedIds(store)).toEqual([2]);
  });

  it('deletes at most deleteRatePerS objects per second', async () => {
    const store = await openStore();
    const ids = Array.from({ length: 12 }, (_, i) => i + 1);
    await writeObjects(store, ids, 100);
    const clock = new FakeClock(Date.now() + 2 * HOUR);
    const h = makeChores(store, (asked) => Promise.resolve({ errno: 0, orphans: asked }), { orphanGraceMs: HOUR, deleteRatePerS: 4 }, { clock });
    const startMs = clock.now;
    await h.chores.inventoryPass();
    expect(await listedIds(store)).toEqual([]);
    // 12 deletes at 4/s, starting with an empty bucket: 3 s of (fake) time.
    expect(clock.now - startMs).toBeCloseTo(3000, 0);
  });
});

describe('scrub', () => {
  // Ids spread over the fan-out so a mid-way start wraps around.
  const IDS = [0, 1, 255, 256, 257, 65_535, 70_000, 1_000_000];
  const SIZE = 10 * KiB;

  /** The store, counting verifyChunk calls per id. */
  function countingStore(store: ChunkStore): { view: ChoreStore; verified: Map<number, number> } {
    const verified = new Map<number, number>();
    const view: ChoreStore = {
      dataDir: store.dataDir,
      listChunks: () => store.listChunks(),
      deleteChunk: (id) => store.deleteChunk(id),
      verifyChunk: (id) => {
        verified.set(id, (verified.get(id) ?? 0) + 1);
        return store.verifyChunk(id);
      },
    };
    return { view, verified };
  }

  it.each([0, 0.37, 0.999])('finds a flipped byte and reports it exactly once per pass (start at %f)', async (start) => {
    const store = await openStore();
    await writeObjects(store, IDS, SIZE);
    await flipDataByte(store, 257, SIZE, 5000);
    const { view, verified } = countingStore(store);
    const clock = new FakeClock();
    const h = makeChores(view, orphansAmong([]), { scrubBytesPerS: 1024 * KiB }, { clock, random: () => start });
    for (let pass = 1; pass <= 2; pass++) {
      await h.chores.scrubPass();
      expect(h.reported).toEqual(Array(pass).fill(257));
      for (const id of IDS) expect(verified.get(id), `object ${id} in pass ${pass}`).toBe(pass);
    }
    expect(h.events.map((e) => [e.kind, e.fields.chunkId])).toEqual([
      ['scrub-error', 257],
      ['scrub-error', 257],
    ]);
    const fileBytes = prefixLengthBytes(1) + SIZE;
    expect(h.chores.stats()).toMatchObject({
      scrubPasses: 2,
      scrubObjects: 2 * IDS.length,
      scrubBytes: 2 * IDS.length * fileBytes,
      scrubErrors: 2,
      scrubReadErrors: 0,
      scrubPassObjects: IDS.length,
    });
    expect(h.lines.filter((l) => l.event === 'scrub-error' && l.chunkId === 257).length).toBe(2);
  });

  it('verifies at the configured byte rate (token bucket over object file sizes)', async () => {
    const store = await openStore();
    const ids = [1, 2, 3, 4, 5, 6];
    await writeObjects(store, ids, 300 * KiB);
    const clock = new FakeClock();
    const rate = 512 * KiB;
    const h = makeChores(store, orphansAmong([]), { scrubBytesPerS: rate }, { clock });
    const startMs = clock.now;
    await h.chores.scrubPass();
    const totalBytes = ids.length * (prefixLengthBytes(5) + 300 * KiB);
    expect(h.chores.stats().scrubBytes).toBe(totalBytes);
    // The bucket starts empty and time moves only by its sleeps: exactly bytes / rate.
    expect(clock.now - startMs).toBeCloseTo((totalBytes / rate) * 1000, 0);
    // No single sleep is longer than one object's worth: the pace is even, not one burst then a long wait.
    expect(Math.max(...clock.slept)).toBeLessThanOrEqual(((prefixLengthBytes(5) + 300 * KiB) / rate) * 1000 + 1);
  });

  it('does not count an object deleted meanwhile (NOT_FOUND) as an error', async () => {
    const store = await openStore();
    await writeObjects(store, [1, 2, 3]);
    const view: ChoreStore = {
      dataDir: store.dataDir,
      async *listChunks(): AsyncGenerator<ChunkInfo> {
        for await (const info of store.listChunks()) {
          if (info.chunkId === 2) await store.deleteChunk(2);
          yield info;
        }
      },
      deleteChunk: (id) => store.deleteChunk(id),
      verifyChunk: (id) => store.verifyChunk(id),
    };
    // One walk from the start (random 0), so the object is deleted right before its turn.
    const h = makeChores(view, orphansAmong([]), {}, { clock: new FakeClock(), random: () => 0 });
    await h.chores.scrubPass();
    expect(h.reported).toEqual([]);
    expect(h.chores.stats()).toMatchObject({ scrubErrors: 0, scrubReadErrors: 0, scrubObjects: 2, scrubPasses: 1 });
  });

  it('counts a read failure without reporting the copy, and survives a failing report', async () => {
    const store = await openStore();
    await writeObjects(store, [1, 2]);
    await flipDataByte(store, 2, KiB, 0);
    const view: ChoreStore = {
      dataDir: store.dataDir,
      listChunks: () => store.listChunks(),
      deleteChunk: (id) => store.deleteChunk(id),
      verifyChunk: (id) => (id === 1 ? Promise.reject(new ChunkError('IO', 'EIO')) : store.verifyChunk(id)),
    };
    const h = makeChores(view, orphansAmong([]), {}, { clock: new FakeClock(), reportBad: () => Promise.reject(new Error('no leader')) });
    await h.chores.scrubPass();
    expect(h.chores.stats()).toMatchObject({ scrubErrors: 1, scrubReadErrors: 1, scrubPasses: 1 });
    expect(h.events.map((e) => e.kind)).toEqual(['scrub-error']);
  });
});

describe('start/stop', () => {
  it('runs passes one after another and stop() waits for the step in progress', async () => {
    const store = await openStore();
    await writeObjects(store, [1, 2, 3]);
    await backdate(store, [1, 2, 3], 2 * HOUR);
    let inFlight = 0;
    let maxInFlight = 0;
    let release: (() => void) | null = null;
    const h = makeChores(
      store,
      async (ids) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        // The third call hangs until released: stop() must wait for it.
        if (h.asked.length === 3) await new Promise<void>((r) => (release = r));
        inFlight--;
        return { errno: 0, orphans: ids.filter((i) => i === 3 && h.asked.length >= 3) };
      },
      { orphanGraceMs: HOUR, inventoryIntervalMs: 5, scrubBytesPerS: 64 * 1024 * KiB, scrubPauseMs: 5 },
    );
    h.chores.start();
    h.chores.start(); // idempotent
    const until = async (cond: () => boolean): Promise<void> => {
      for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(cond()).toBe(true);
    };
    await until(() => release !== null && h.chores.stats().scrubPasses >= 2);
    expect(h.chores.stats().inventoryPasses).toBe(2);
    let stopped = false;
    const stopping = h.chores.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(stopped).toBe(false);
    release!();
    await stopping;
    expect(maxInFlight).toBe(1);
    // The answer came after stop(): nothing deleted, no more passes.
    expect(await listedIds(store)).toEqual([1, 2, 3]);
    const after = h.chores.stats();
    await new Promise((r) => setTimeout(r, 50));
    expect(h.chores.stats()).toEqual(after);
    expect(h.asked.length).toBe(3);
  });
});

describe('TokenBucket', () => {
  it('lets a burst through, then paces; an oversized amount becomes debt', async () => {
    const clock = new FakeClock(0);
    const bucket = new TokenBucket(100, 100, clock);
    const signal = new AbortController().signal;
    await bucket.take(50, signal);
    expect(clock.now).toBe(500); // starts empty
    clock.now += 10_000; // idle: refills to the burst only
    await bucket.take(100, signal);
    expect(clock.now).toBe(10_500);
    await bucket.take(300, signal);
    expect(clock.now).toBe(13_500);
  });
});
