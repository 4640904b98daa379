import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogFile, LogFs } from '../../../src/cluster/raft/log-fs.js';
import { nodeLogFs } from '../../../src/cluster/raft/log-fs.js';
import { scanSegment } from '../../../src/cluster/raft/log-record.js';
import { LogStore, LogStoreError } from '../../../src/cluster/raft/log-store.js';
import type { LogStoreOptions } from '../../../src/cluster/raft/log-store.js';
import { EntryType } from '../../../src/cluster/raft/types.js';
import type { ConfState, Entry } from '../../../src/cluster/raft/types.js';

const dirs: string[] = [];
const stores: LogStore[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'dfs-logstore-'));
  dirs.push(d);
  return d;
}

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const SMALL: LogStoreOptions = { segmentBytes: 64 << 10 };
const CONF: ConfState = { voters: ['a', 'b', 'c'], learners: [] };

async function open(dir: string, opts: LogStoreOptions = SMALL): Promise<LogStore> {
  const s = await LogStore.open(dir, { bootstrapConf: CONF, ...opts });
  stores.push(s);
  return s;
}

async function reopen(s: LogStore, dir: string, opts: LogStoreOptions = SMALL): Promise<LogStore> {
  await s.close();
  return open(dir, opts);
}

function ent(index: number, term: number, data = `e${index}t${term}`): Entry {
  return { index, term, type: EntryType.Normal, data: Buffer.from(data) };
}

function range(lo: number, hi: number, term: number, size = 0): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(ent(i, term, size > 0 ? `e${i}t${term}`.padEnd(size, '.') : undefined));
  return out;
}

function all(s: LogStore): Entry[] {
  return s.entries(s.firstIndex(), s.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
}

function summary(ents: Entry[]): string[] {
  return ents.map((e) => `${e.index}/${e.term}/${e.type}/${e.data.toString()}`);
}

function segments(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.seg'))
    .sort();
}

/** The segment holding the newest entries: the one whose scan has the highest header seq. */
function newestSegmentWithEntries(dir: string): string {
  let best: { path: string; seq: number } | null = null;
  for (const n of segments(dir)) {
    const path = join(dir, n);
    const scan = scanSegment(readFileSync(path));
    const head = scan.records[0];
    if (head.kind !== 1 || !scan.records.some((r) => r.kind === 2)) continue;
    if (best === null || head.seq > best.seq) best = { path, seq: head.seq };
  }
  if (best === null) throw new Error('no segment with entries');
  return best.path;
}

describe('LogStore', () => {
  it('round trip: entries, term, hard state, conf', async () => {
    const dir = tempDir();
    const s = await open(dir);
    expect(s.firstIndex()).toBe(1);
    expect(s.lastIndex()).toBe(0);
    expect(s.term(0)).toBe(0);
    expect(s.initialState().conf).toEqual(CONF);
    await s.append(range(1, 10, 1));
    await s.setHardState({ term: 1, vote: 'a', commit: 7 });
    expect(s.lastIndex()).toBe(10);
    expect(s.term(10)).toBe(1);
    expect(summary(s.entries(3, 6, 1 << 20))).toEqual(summary(range(3, 5, 1)));
    expect(s.entries(3, 10, 1)).toHaveLength(1); // at least one entry even over maxBytes
    expect(() => s.term(11)).toThrow(RangeError);
    expect(s.initialState().hardState).toEqual({ term: 1, vote: 'a', commit: 7 });
    expect(s.snapshot()).toBeNull();
  });

  it('reopen recovers exactly', async () => {
    const dir = tempDir();
    let s = await open(dir);
    const ents = [...range(1, 50, 1, 300), { index: 51, term: 2, type: EntryType.ConfChange, data: Buffer.from('{"x":1}') }];
    for (let i = 0; i < ents.length; i += 7) await s.append(ents.slice(i, i + 7));
    await s.setHardState({ term: 2, vote: null, commit: 40 });
    await s.setConfState({ voters: ['a', 'b'], learners: ['d'] });
    s = await reopen(s, dir);
    expect(summary(all(s))).toEqual(summary(ents));
    expect(s.initialState()).toEqual({ hardState: { term: 2, vote: null, commit: 40 }, conf: { voters: ['a', 'b'], learners: ['d'] } });
    // Reopen twice more without writing: nothing changes, no junk accumulates.
    s = await reopen(s, dir);
    s = await reopen(s, dir);
    expect(summary(all(s))).toEqual(summary(ents));
    await s.close();
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('segments are preallocated and steady-state writes never change the file size', async () => {
    const dir = tempDir();
    const s = await open(dir, { segmentBytes: 1 << 20 });
    await s.append(range(1, 5, 1));
    const seg = join(dir, segments(dir)[0]);
    expect(statSync(seg).size).toBe(1 << 20);
    await s.append(range(6, 100, 1, 500));
    expect(statSync(seg).size).toBe(1 << 20);
  });

  describe('torn tail', () => {
    const damage: Record<string, (path: string, lastRecordStart: number, end: number) => void> = {
      'garbled byte': (path, _start, end) => {
        const b = readFileSync(path);
        b[end - 3] ^= 0xff;
        writeFileSync(path, b);
      },
      'zeroed half': (path, start, end) => {
        const b = readFileSync(path);
        b.fill(0, start + Math.floor((end - start) / 2), end);
        writeFileSync(path, b);
      },
      'file truncated': (path, start) => truncateSync(path, start + 5),
    };
    for (const [name, hurt] of Object.entries(damage)) {
      it(`${name}: recovers up to the last complete record, no error, and never resurrects it`, async () => {
        const dir = tempDir();
        let s = await open(dir);
        for (let i = 1; i <= 5; i++) await s.append([ent(i, 1, `entry-${i}`.padEnd(40, '#'))]);
        await s.close();
        const path = newestSegmentWithEntries(dir);
        const scan = scanSegment(readFileSync(path));
        const lastLen = 8 + 19 + 40;
        hurt(path, scan.validEndBytes - lastLen, scan.validEndBytes);
        s = await open(dir);
        expect(s.lastIndex()).toBe(4);
        expect(summary(all(s))).toEqual(summary(range(1, 4, 1).map((e) => ent(e.index, 1, `entry-${e.index}`.padEnd(40, '#')))));
        await s.append([ent(5, 2, 'new-5')]);
        s = await reopen(s, dir);
        expect(s.lastIndex()).toBe(5);
        expect(s.entries(5, 6, 1000)[0].data.toString()).toBe('new-5');
        expect(s.term(5)).toBe(2);
      });
    }
  });

  it('conflicting suffix truncation survives reopen (within a segment)', async () => {
    const dir = tempDir();
    let s = await open(dir);
    await s.append(range(1, 10, 1));
    await s.append(range(6, 8, 2));
    expect(s.lastIndex()).toBe(8);
    s = await reopen(s, dir);
    expect(summary(all(s))).toEqual(summary([...range(1, 5, 1), ...range(6, 8, 2)]));
    // And an overwrite of the first entry after a reopen (below the fresh segment's name).
    await s.append(range(1, 3, 3));
    s = await reopen(s, dir);
    expect(summary(all(s))).toEqual(summary(range(1, 3, 3)));
  });

  it('conflicting suffix truncation across segments survives reopen', async () => {
    const dir = tempDir();
    const opts = { segmentBytes: 8192 };
    let s = await open(dir, opts);
    for (let i = 1; i <= 300; i += 10) await s.append(range(i, i + 9, 1, 200));
    expect(segments(dir).length).toBeGreaterThan(5);
    await s.append(range(20, 25, 2, 100)); // far below the active segment
    expect(s.lastIndex()).toBe(25);
    s = await reopen(s, dir, opts);
    expect(summary(all(s))).toEqual(summary([...range(1, 19, 1, 200), ...range(20, 25, 2, 100)]));
    // Grow again past the old segment names: no stale entry comes back.
    for (let i = 26; i <= 120; i += 5) await s.append(range(i, i + 4, 2, 200));
    s = await reopen(s, dir, opts);
    expect(summary(all(s))).toEqual(summary([...range(1, 19, 1, 200), ...range(20, 25, 2, 100), ...range(26, 120, 2, 200)]));
  });

  it('compaction drops whole segments and survives reopen', async () => {
    const dir = tempDir();
    const opts = { segmentBytes: 8192 };
    let s = await open(dir, opts);
    for (let i = 1; i <= 200; i += 10) await s.append(range(i, i + 9, 1, 200));
    await s.setHardState({ term: 1, vote: 'b', commit: 200 });
    const before = segments(dir).length;
    const snap = await s.createSnapshot(150, CONF, Buffer.from('image@150'));
    expect(snap.meta).toEqual({ index: 150, term: 1, conf: CONF });
    await s.compact(150);
    expect(s.firstIndex()).toBe(151);
    expect(s.term(150)).toBe(1);
    expect(() => s.term(149)).toThrow(RangeError);
    expect(s.stats().segmentsDeleted).toBeGreaterThan(0);
    expect(segments(dir).length).toBeLessThan(before);
    expect(s.snapshot()?.data.toString()).toBe('image@150');
    s = await reopen(s, dir, opts);
    expect(s.firstIndex()).toBe(151);
    expect(s.lastIndex()).toBe(200);
    expect(s.term(150)).toBe(1);
    expect(summary(all(s))).toEqual(summary(range(151, 200, 1, 200)));
    expect(s.initialState().hardState).toEqual({ term: 1, vote: 'b', commit: 200 });
    expect(s.snapshot()).toBeNull(); // data is the state machine's: attach it after a reopen
    s.attachSnapshotData(Buffer.from('image@150'));
    expect(s.snapshot()?.meta.index).toBe(150);
  });

  it('compaction without a covering snapshot is a programmer error', async () => {
    const s = await open(tempDir());
    await s.append(range(1, 10, 1));
    await expect(s.compact(5)).rejects.toThrow(/beyond snapshot/);
  });

  it('applySnapshot resets the log, survives reopen, and deletes the old segments', async () => {
    const dir = tempDir();
    let s = await open(dir);
    await s.append(range(1, 60, 1));
    await s.setHardState({ term: 3, vote: 'c', commit: 10 });
    const conf: ConfState = { voters: ['a', 'b', 'c', 'd'], learners: ['e'] };
    await s.applySnapshot({ meta: { index: 50, term: 3, conf }, data: Buffer.from('img') });
    expect(s.firstIndex()).toBe(51);
    expect(s.lastIndex()).toBe(50);
    expect(s.term(50)).toBe(3);
    await s.append(range(51, 55, 3));
    await s.setHardState({ term: 3, vote: 'c', commit: 52 });
    s = await reopen(s, dir);
    expect(s.firstIndex()).toBe(51);
    expect(summary(all(s))).toEqual(summary(range(51, 55, 3)));
    expect(s.initialState()).toEqual({ hardState: { term: 3, vote: 'c', commit: 52 }, conf });
    expect(s.snapshotMeta()).toEqual({ index: 50, term: 3, conf });
    // Only segments written after the snapshot remain (the reopen started one more).
    expect(segments(dir).map((n) => parseInt(n.slice(4, 20), 16))).toEqual([51, 56]);
  });

  it('a crash between snapshot.meta and the new segment keeps hard state and drops the old log', async () => {
    const dir = tempDir();
    let failRename = false;
    const fs: LogFs = {
      ...nodeLogFs,
      rename: async (source, target) => {
        if (failRename && source.includes('prealloc')) throw new Error('injected crash');
        return nodeLogFs.rename(source, target);
      },
    };
    let s = await open(dir, { ...SMALL, fs });
    await s.append(range(1, 60, 1));
    await s.setHardState({ term: 4, vote: 'b', commit: 30 });
    failRename = true;
    await expect(s.applySnapshot({ meta: { index: 100, term: 4, conf: CONF }, data: Buffer.alloc(0) })).rejects.toMatchObject({ code: 'IO' });
    await expect(s.append([ent(101, 4)])).rejects.toBeInstanceOf(LogStoreError);
    s = await reopen(s, dir);
    expect(s.firstIndex()).toBe(101);
    expect(s.lastIndex()).toBe(100);
    expect(s.initialState().hardState).toEqual({ term: 4, vote: 'b', commit: 30 });
  });

  it('hard state and conf are durable across reopen, segment rolls and compaction', async () => {
    const dir = tempDir();
    const opts = { segmentBytes: 8192 };
    let s = await open(dir, opts);
    await s.setHardState({ term: 5, vote: 'x', commit: 0 });
    await s.setConfState({ voters: ['x', 'y'], learners: [] });
    for (let i = 1; i <= 200; i += 10) await s.append(range(i, i + 9, 5, 200)); // many rolls, no state writes
    await s.createSnapshot(190, { voters: ['x', 'y'], learners: [] }, Buffer.alloc(0));
    await s.compact(190);
    s = await reopen(s, dir, opts);
    expect(s.initialState()).toEqual({ hardState: { term: 5, vote: 'x', commit: 0 }, conf: { voters: ['x', 'y'], learners: [] } });
    await s.setHardState({ term: 6, vote: null, commit: 195 });
    s = await reopen(s, dir, opts);
    expect(s.initialState().hardState).toEqual({ term: 6, vote: null, commit: 195 });
  });

  it('group commit: 200 concurrent appends share fsyncs, each resolves after a datasync that covered it', async () => {
    const dir = tempDir();
    // Every write and datasync gets a sequence number; a datasync covers the writes that
    // completed before it started.
    let clock = 0;
    const writes: Array<{ buf: Buffer; doneAt: number }> = [];
    const syncs: Array<{ startAt: number; doneAt: number }> = [];
    const fs: LogFs = {
      ...nodeLogFs,
      openFile: async (path) => {
        const f = await nodeLogFs.openFile(path);
        const wrapped: LogFile = {
          write: async (buf, pos) => {
            const copy = Buffer.from(buf);
            await f.write(buf, pos);
            writes.push({ buf: copy, doneAt: ++clock });
          },
          datasync: async () => {
            const startAt = ++clock;
            await f.datasync();
            syncs.push({ startAt, doneAt: ++clock });
          },
          truncate: (n) => f.truncate(n),
          close: () => f.close(),
        };
        return wrapped;
      },
    };
    const s = await open(dir, { ...SMALL, segmentBytes: 1 << 20, fs });
    const base = s.stats();
    const violations: string[] = [];
    const promises: Array<Promise<void>> = [];
    for (let i = 1; i <= 200; i++) {
      const marker = `marker-${String(i).padStart(5, '0')}`;
      promises.push(
        s.append([ent(i, 1, marker)]).then(() => {
          const now = clock;
          const w = writes.find((x) => x.buf.includes(marker));
          if (w === undefined) return void violations.push(`${marker}: resolved before written`);
          const covering = syncs.find((y) => y.startAt > w.doneAt && y.doneAt <= now);
          if (covering === undefined) violations.push(`${marker}: resolved without a covering datasync`);
        }),
      );
    }
    await Promise.all(promises);
    const st = s.stats();
    const appends = st.appends - base.appends;
    const fsyncs = st.fsyncs - base.fsyncs;
    expect(violations).toEqual([]);
    expect(appends).toBe(200);
    expect(fsyncs).toBeLessThan(appends / 4);
    expect(st.batches - base.batches).toBe(fsyncs);
    expect(st.entries).toBe(200);
    expect(s.lastIndex()).toBe(200);
  });

  it('back-pressure: the queue stays within maxQueuedBytes and callers wait', async () => {
    const dir = tempDir();
    const slow: LogFs = {
      ...nodeLogFs,
      openFile: async (path) => {
        const f = await nodeLogFs.openFile(path);
        return { ...bind(f), datasync: async () => (await new Promise((r) => setTimeout(r, 2)), f.datasync()) };
      },
    };
    const maxQueuedBytes = 2000;
    const s = await open(dir, { ...SMALL, fs: slow, maxQueuedBytes });
    const promises: Array<Promise<void>> = [];
    for (let i = 1; i <= 100; i++) promises.push(s.append([ent(i, 1, 'x'.repeat(200))]));
    // Admission is in call order: only part of the calls are visible yet.
    expect(s.lastIndex()).toBeLessThan(100);
    await Promise.all(promises);
    const st = s.stats();
    expect(st.backpressureWaits).toBeGreaterThan(0);
    expect(st.maxQueuedBytes).toBeLessThanOrEqual(maxQueuedBytes);
    expect(s.lastIndex()).toBe(100);
    expect(summary(all(s))).toEqual(summary(range(1, 100, 1).map((e) => ent(e.index, 1, 'x'.repeat(200)))));
  });

  it('memory bound: appends are refused with FULL until compaction', async () => {
    const s = await open(tempDir(), { ...SMALL, maxMemoryEntries: 10 });
    await s.append(range(1, 10, 1));
    await expect(s.append([ent(11, 1)])).rejects.toMatchObject({ code: 'FULL' });
    expect(s.lastIndex()).toBe(10); // nothing changed
    await s.createSnapshot(8, CONF, Buffer.alloc(0));
    await s.compact(8);
    await s.append(range(11, 18, 1));
    expect(s.lastIndex()).toBe(18);
    await expect(s.append([ent(19, 1, 'x'.repeat(70_000))])).rejects.toMatchObject({ code: 'TOO_LARGE' });
  });

  it('a failed datasync fails the store loudly, now and later', async () => {
    let broken = false;
    const fs: LogFs = {
      ...nodeLogFs,
      openFile: async (path) => {
        const f = await nodeLogFs.openFile(path);
        return {
          ...bind(f),
          datasync: async () => {
            if (broken) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
            return f.datasync();
          },
        };
      },
    };
    const s = await open(tempDir(), { ...SMALL, fs });
    await s.append([ent(1, 1)]);
    broken = true;
    await expect(s.append([ent(2, 1)])).rejects.toMatchObject({ code: 'IO' });
    broken = false;
    await expect(s.setHardState({ term: 1, vote: null, commit: 1 })).rejects.toMatchObject({ code: 'IO' });
  });

  it('closed store refuses writes', async () => {
    const s = await open(tempDir());
    await s.close();
    await expect(s.append([ent(1, 1)])).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

function bind(f: LogFile): LogFile {
  return {
    write: (b, p) => f.write(b, p),
    datasync: () => f.datasync(),
    truncate: (n) => f.truncate(n),
    close: () => f.close(),
  };
}
