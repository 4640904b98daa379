// The namespace walk, fsck and what-if-lost against an in-memory MetaStore, with a fake
// chunk Stat (which copy is where is a table in the test).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_STATTER_OPTIONS, fsck, GrpcCopyStatter, whatIfLost, type CopyHealth, type CopyStatter } from '../../../src/daemon/fsck.js';
import { walkFiles, WalkError, type WalkedFile } from '../../../src/daemon/ns-walk.js';
import type { Command, Ino, Layout } from '../../../src/meta/types.js';
import { ROOT_INO } from '../../../src/meta/types.js';
import { CALLER, Fixture } from '../../unit/meta/helpers.js';

const CS = 64 * 1024;

let f: Fixture;
beforeEach(async () => {
  f = await Fixture.create({ chunkSizeBytes: CS });
});
afterEach(async () => {
  await f.store.close?.();
});

/** A file of `chunks` full chunks, each placed on `placement(index)`. */
async function fileWith(parent: Ino, name: string, chunks: number, placement: (i: number) => string[], layout?: Layout): Promise<Ino> {
  if (layout) await f.ok({ op: 'setlayout', ino: parent, layout, now: f.now() });
  const a = await f.file(parent, name);
  if (chunks === 0) return a.ino;
  const { first } = await f.ok({ op: 'allocChunkIds', count: chunks });
  const refs = Array.from({ length: chunks }, (_, i) => {
    const p = placement(i);
    const ref = { index: i, chunkId: first + i, sizeBytes: CS, placement: p };
    return layout?.kind === 'ec' ? { ...ref, ec: { k: layout.k, m: layout.m, shardBytes: CS / layout.k } } : ref;
  });
  await f.ok({ op: 'commitWrite', ino: a.ino, chunks: refs, sizeBytes: chunks * CS, mtime: f.now(), now: f.now() });
  return a.ino;
}

/** Stat answers from a table: `${nodeId}/${chunkId}` → health (default ok). */
class FakeStatter implements CopyStatter {
  readonly asked: string[] = [];
  constructor(
    readonly bad: Map<string, CopyHealth> = new Map(),
    readonly onAsk?: (nodeId: string, chunkId: number) => Promise<void>,
  ) {}
  async stat(nodeId: string, chunkId: number) {
    this.asked.push(`${nodeId}/${chunkId}`);
    await this.onAsk?.(nodeId, chunkId);
    const health = this.bad.get(`${nodeId}/${chunkId}`) ?? 'ok';
    return { health, detail: health === 'ok' ? null : `fake ${health}`, sizeBytes: health === 'ok' ? CS : null };
  }
}

/** A tree: /a (R=1 on n1, 2 chunks), /d/b (R=2 on n1+n2), /d/e/c (EC 2+1), /d/link (hard link to /a), /s (symlink), /inline, /empty. */
async function tree(): Promise<Record<string, Ino>> {
  const d = await f.dir(ROOT_INO, 'd');
  const e = await f.dir(d.ino, 'e');
  const a = await fileWith(ROOT_INO, 'a', 2, () => ['n1'], { kind: 'replicas', replicas: 1 });
  const b = await fileWith(d.ino, 'b', 1, () => ['n1', 'n2'], { kind: 'replicas', replicas: 2 });
  const c = await fileWith(e.ino, 'c', 1, () => ['n1', 'n2', 'n3'], { kind: 'ec', k: 2, m: 1 });
  await f.ok({ op: 'link', ino: a, newParent: d.ino, newName: 'link', now: f.now() });
  await f.ok({ op: 'symlink', parent: ROOT_INO, name: 's', target: 'a', caller: CALLER, now: f.now() });
  const inl = await f.file(ROOT_INO, 'inline');
  await f.ok({ op: 'commitWrite', ino: inl.ino, chunks: [{ index: 0, chunkId: 0, sizeBytes: 2, placement: [], inline: Buffer.from('hi') }], sizeBytes: 2, mtime: f.now(), now: f.now() });
  await f.file(ROOT_INO, 'empty');
  return { a, b, c, d: d.ino, e: e.ino };
}

describe('walkFiles', () => {
  it('visits every regular file once (hard links by one path), any concurrency and page size', async () => {
    await tree();
    for (const [concurrency, pageSize] of [
      [1, 1],
      [3, 2],
      [8, 512],
    ]) {
      const seen: WalkedFile[] = [];
      const stats = await walkFiles(f.store, { ino: ROOT_INO, path: '/' }, async (x) => void seen.push(x), { concurrency, pageSize });
      const paths = seen.map((x) => x.path).sort();
      expect(paths.filter((p) => p !== '/a' && p !== '/d/link')).toEqual(['/d/b', '/d/e/c', '/empty', '/inline']);
      expect(paths.filter((p) => p === '/a' || p === '/d/link')).toHaveLength(1);
      expect(stats).toEqual({ dirs: 3, files: 5 });
    }
  });

  it('walks from a subdirectory or a single file, with its shown path', async () => {
    const t = await tree();
    const seen: string[] = [];
    await walkFiles(f.store, { ino: t.d, path: '/mnt/x/d' }, async (x) => void seen.push(x.path), { concurrency: 2, pageSize: 10 });
    expect(seen.sort()).toEqual(['/mnt/x/d/b', '/mnt/x/d/e/c', '/mnt/x/d/link']);
    const one: string[] = [];
    await walkFiles(f.store, { ino: t.b, path: 'b' }, async (x) => void one.push(x.path), { concurrency: 2, pageSize: 10 });
    expect(one).toEqual(['b']);
  });

  it('fails with one line when the namespace does, and bounds files in flight', async () => {
    await tree();
    await expect(walkFiles(f.store, { ino: 999, path: '/gone' }, async () => undefined)).rejects.toThrow(WalkError);
    await expect(walkFiles(f.store, { ino: 999, path: '/gone' }, async () => undefined)).rejects.toThrow(/^\/gone: getattr failed: ENOENT$/);
    let inFlight = 0;
    let most = 0;
    await walkFiles(
      f.store,
      { ino: ROOT_INO, path: '/' },
      async () => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 2));
        inFlight--;
      },
      { concurrency: 2, pageSize: 1 },
    );
    expect(most).toBeLessThanOrEqual(2);
  });
});

describe('fsck', () => {
  const opts = { repair: false, walk: { concurrency: 2, pageSize: 3 } };

  it('finds every chunk healthy and asks each copy once', async () => {
    await tree();
    const st = new FakeStatter();
    const r = await fsck(f.store, { ino: ROOT_INO, path: '/' }, st, opts);
    expect(r).toMatchObject({ files: 5, chunks: 4, healthy: 4, underProtected: 0, lost: 0, problems: [], repairs: [] });
    // a: 2 chunks × 1, b: 1 × 2, c: 3 shards.
    expect(st.asked).toHaveLength(7);
  });

  it('reports lost (R=1 missing, EC below k) and under-protected (R=2 one bad, EC one short of k+m) files', async () => {
    const t = await tree();
    const ids = async (ino: Ino) => {
      const r = await f.store.getChunks(ino, 0, 10);
      if (!r.ok) throw new Error('getChunks');
      return r.value.map((c) => c.chunkId);
    };
    const [a1] = (await ids(t.a)).slice(1);
    const [b0] = await ids(t.b);
    const [c0] = await ids(t.c);
    const st = new FakeStatter(
      new Map<string, CopyHealth>([
        [`n1/${a1}`, 'missing'],
        [`n2/${b0}`, 'corrupt'],
        [`n3/${c0}`, 'unreachable'],
      ]),
    );
    const r = await fsck(f.store, { ino: ROOT_INO, path: '/' }, st, opts);
    expect(r).toMatchObject({ files: 5, chunks: 4, healthy: 1, underProtected: 2, lost: 1 });
    const byPath = Object.fromEntries(r.problems.map((p) => [p.path, p]));
    expect(Object.keys(byPath)).toHaveLength(3);
    const aPath = Object.keys(byPath).find((p) => p === '/a' || p === '/d/link')!;
    expect(byPath[aPath]).toMatchObject({ state: 'lost', chunks: [{ index: 1, chunkId: a1, state: 'lost', want: 1, good: 0, copies: [{ nodeId: 'n1', health: 'missing' }] }] });
    expect(byPath['/d/b']).toMatchObject({ state: 'under-protected', chunks: [{ state: 'under-protected', want: 2, good: 1 }] });
    expect(byPath['/d/e/c']).toMatchObject({ state: 'under-protected', chunks: [{ state: 'under-protected', want: 3, good: 2 }] });
    expect(r.repairs).toEqual([]);
  });

  it('--repair reports missing, corrupt and short copies (not unreachable ones) to the namespace', async () => {
    const t = await tree();
    const chunk = async (ino: Ino, i = 0) => {
      const r = await f.store.getChunks(ino, 0, 10);
      if (!r.ok) throw new Error('getChunks');
      return r.value[i].chunkId;
    };
    const a0 = await chunk(t.a);
    const b0 = await chunk(t.b);
    const c0 = await chunk(t.c);
    const st = new FakeStatter(
      new Map<string, CopyHealth>([
        [`n1/${a0}`, 'corrupt'],
        [`n2/${b0}`, 'missing'],
        [`n3/${c0}`, 'unreachable'],
      ]),
    );
    const sent: Command[] = [];
    const meta = {
      getattr: f.store.getattr.bind(f.store),
      readdir: f.store.readdir.bind(f.store),
      getChunks: f.store.getChunks.bind(f.store),
      execute: (<C extends Command>(c: C) => {
        sent.push(c);
        return f.store.execute(c);
      }) as typeof f.store.execute,
    };
    const r = await fsck(meta, { ino: ROOT_INO, path: '/' }, st, { ...opts, repair: true });
    expect(sent.sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)))).toEqual([
      { op: 'reportBadCopy', chunkId: a0, nodeId: 'n1' },
      { op: 'reportBadCopy', chunkId: b0, nodeId: 'n2' },
    ]);
    expect(r.repairs.map((x) => [x.chunkId, x.nodeId, x.health, x.reported])).toEqual(
      expect.arrayContaining([
        [a0, 'n1', 'corrupt', true],
        [b0, 'n2', 'missing', true],
      ]),
    );
  });

  it('does not report a chunk the file no longer has (rewritten during the run)', async () => {
    const a = await fileWith(ROOT_INO, 'a', 1, () => ['n1'], { kind: 'replicas', replicas: 1 });
    const r0 = await f.store.getChunks(a, 0, 1);
    const old = r0.ok ? r0.value[0].chunkId : 0;
    let rewritten = false;
    const st = new FakeStatter(new Map([[`n1/${old}`, 'missing' as CopyHealth]]), async () => {
      if (rewritten) return;
      rewritten = true;
      const { first } = await f.ok({ op: 'allocChunkIds', count: 1 });
      await f.ok({ op: 'commitWrite', ino: a, chunks: [{ index: 0, chunkId: first, sizeBytes: CS, placement: ['n1'] }], sizeBytes: CS, mtime: f.now(), now: f.now() });
    });
    const r = await fsck(f.store, { ino: ROOT_INO, path: '/' }, st, opts);
    expect(r).toMatchObject({ files: 1, chunks: 1, healthy: 1, lost: 0, problems: [] });
  });

  it('counts a copy shorter than its chunk as short (not healthy)', async () => {
    await fileWith(ROOT_INO, 'a', 1, () => ['n1'], { kind: 'replicas', replicas: 1 });
    const st: CopyStatter = { stat: async () => ({ health: 'ok', detail: null, sizeBytes: CS - 1 }) };
    const r = await fsck(f.store, { ino: ROOT_INO, path: '/' }, st, opts);
    expect(r.lost).toBe(1);
    expect(r.problems[0].chunks[0].copies[0]).toMatchObject({ health: 'short', detail: `object holds ${CS - 1} bytes, the chunk needs ${CS}` });
  });
});

describe('whatIfLost', () => {
  it('lists files that would lose data or protection, from placement and liveness only', async () => {
    await tree();
    const up = { state: 'up', adminState: 'active' };
    const nodes = new Map([
      ['n1', up],
      ['n2', up],
      ['n3', up],
    ]);
    const one = await whatIfLost(f.store, { ino: ROOT_INO, path: '/' }, nodes, new Set(['n1']), { concurrency: 2, pageSize: 2 });
    expect(one.files).toBe(5);
    expect(one.chunks).toBe(4);
    const m = Object.fromEntries(one.affected.map((x) => [x.path === '/d/link' ? '/a' : x.path, [x.impact, x.chunksLosingData, x.chunksLosingProtection]]));
    expect(m).toEqual({ '/a': ['lose-data', 2, 0], '/d/b': ['lose-protection', 0, 1], '/d/e/c': ['lose-protection', 0, 1] });
    const two = await whatIfLost(f.store, { ino: ROOT_INO, path: '/' }, nodes, new Set(['n2', 'n3']));
    expect(two.affected.map((x) => [x.path, x.impact])).toEqual([
      ['/d/b', 'lose-protection'],
      ['/d/e/c', 'lose-data'],
    ]);
    // n3 already dead: losing n2 now costs c its data.
    const dead = new Map([...nodes, ['n3', { state: 'dead', adminState: 'dead' }]]);
    const three = await whatIfLost(f.store, { ino: ROOT_INO, path: '/' }, dead, new Set(['n2']));
    expect(three.affected.map((x) => [x.path, x.impact])).toEqual([
      ['/d/b', 'lose-protection'],
      ['/d/e/c', 'lose-data'],
    ]);
  });
});

describe('GrpcCopyStatter', () => {
  it('does not ask unknown or dead nodes, and stops asking a holder that does not answer', async () => {
    const st = new GrpcCopyStatter(
      new Map([
        ['dead', { address: '127.0.0.1:1', dead: true }],
        ['gone', { address: '127.0.0.1:1', dead: false }],
      ]),
      { ...DEFAULT_STATTER_OPTIONS, timeoutMs: 2000 },
    );
    try {
      expect(await st.stat('nobody', 1)).toMatchObject({ health: 'unknown-node' });
      expect(await st.stat('dead', 1)).toMatchObject({ health: 'unreachable', detail: 'the leader sees the node dead' });
      const first = await st.stat('gone', 1);
      expect(first.health).toBe('unreachable');
      const t0 = Date.now();
      expect(await st.stat('gone', 2)).toEqual(first);
      expect(Date.now() - t0).toBeLessThan(50);
    } finally {
      st.close();
    }
  });
});
