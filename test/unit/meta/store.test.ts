import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemKV, type Kv, type KvOp, type KvRange } from '../../../src/meta/kv.js';
import { RocksKV } from '../../../src/meta/rocks-kv.js';
import { MetaStore, READDIR_PAGE_MAX } from '../../../src/meta/store.js';
import { Errno, ROOT_INO, type Command } from '../../../src/meta/types.js';
import { CALLER, errnoOf } from './helpers.js';

/** Records every write and scan so tests can see batching, sync flags and scan sizes. */
class SpyKV implements Kv {
  writes: Array<{ ops: number; sync: boolean }> = [];
  maxScanLimit = 0;
  constructor(readonly inner: Kv) {}
  get(key: Buffer): Promise<Buffer | undefined> {
    return this.inner.get(key);
  }
  scan(range: KvRange): Promise<Array<[Buffer, Buffer]>> {
    this.maxScanLimit = Math.max(this.maxScanLimit, range.limit);
    return this.inner.scan(range);
  }
  async write(batch: KvOp[], opts: { sync: boolean }): Promise<void> {
    this.writes.push({ ops: batch.length, sync: opts.sync });
    await this.inner.write(batch, opts);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const mknod = (name: string, parent = ROOT_INO): Extract<Command, { op: 'mknod' }> => ({
  op: 'mknod',
  parent,
  name,
  mode: 0o100644,
  rdev: 0,
  caller: CALLER,
  now: { sec: 1, nsec: 0 },
});

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('group commit', () => {
  it('applies queued commands as one write, each seeing the ones before it', async () => {
    const kv = new SpyKV(new MemKV());
    const store = await MetaStore.open(kv);
    kv.writes = [];
    const results = await Promise.all([
      store.execute(mknod('a')),
      store.execute(mknod('b')),
      store.execute(mknod('a')),
      store.execute({ op: 'unlink', parent: ROOT_INO, name: 'b', now: { sec: 2, nsec: 0 } }),
    ]);
    expect(results.map(errnoOf)).toEqual([0, 0, Errno.EEXIST, 0]);
    // The first command starts a group alone; the rest queue behind its write.
    expect(kv.writes.length).toBeLessThanOrEqual(2);
    expect(kv.writes.every((w) => !w.sync)).toBe(true);
    const page = await store.readdir(ROOT_INO, null, 10);
    expect(page.ok && page.value.entries.map((e) => e.name)).toEqual(['a']);
    expect(store.stats().commandsApplied).toBe(4);
  });

  it('syncs only groups holding a commitWrite, or all with syncAll', async () => {
    const kv = new SpyKV(new MemKV());
    const store = await MetaStore.open(kv);
    const a = await store.execute(mknod('a'));
    const alloc = await store.execute({ op: 'allocChunkIds', count: 1 });
    if (!a.ok || !alloc.ok) throw new Error('setup');
    kv.writes = [];
    await store.execute({
      op: 'commitWrite',
      ino: a.value.ino,
      chunks: [{ index: 0, chunkId: alloc.value.first, sizeBytes: 1, placement: ['n'] }],
      sizeBytes: 1,
      mtime: { sec: 3, nsec: 0 },
      now: { sec: 3, nsec: 0 },
    });
    await store.execute(mknod('b'));
    expect(kv.writes.map((w) => w.sync)).toEqual([true, false]);

    const kv2 = new SpyKV(new MemKV());
    const all = await MetaStore.open(kv2, { syncAll: true });
    kv2.writes = [];
    await all.execute(mknod('x'));
    expect(kv2.writes.map((w) => w.sync)).toEqual([true]);
  });

  it('answers EAGAIN past the queue limit', async () => {
    const store = await MetaStore.open(new MemKV(), { queueMax: 2 });
    const results = await Promise.all(['a', 'b', 'c', 'd'].map((n) => store.execute(mknod(n))));
    expect(results.map(errnoOf).filter((e) => e === Errno.EAGAIN).length).toBeGreaterThan(0);
  });

  it('answers EIO after a failed write and from then on', async () => {
    const kv = new SpyKV(new MemKV());
    const store = await MetaStore.open(kv);
    kv.write = async () => {
      throw new Error('disk on fire');
    };
    expect(errnoOf(await store.execute(mknod('a')))).toBe(Errno.EIO);
    expect(errnoOf(await store.execute(mknod('b')))).toBe(Errno.EIO);
  });
});

describe('read cache', () => {
  it('counts hits and misses and stays correct through writes', async () => {
    const store = await MetaStore.open(new MemKV(), { cacheEntries: 100 });
    const a = await store.execute(mknod('a'));
    if (!a.ok) throw new Error('setup');
    const s0 = store.stats();
    await store.lookup(ROOT_INO, 'a');
    await store.lookup(ROOT_INO, 'a');
    const s1 = store.stats();
    expect(s1.cacheHits).toBeGreaterThan(s0.cacheHits);
    expect(s1.cacheEntries).toBeGreaterThan(0);
    await store.execute({ op: 'setattr', ino: a.value.ino, set: { mode: 0o600 }, now: { sec: 9, nsec: 0 } });
    const after = await store.getattr(a.value.ino);
    expect(after.ok && after.value.mode & 0o777).toBe(0o600);
    await store.execute({ op: 'unlink', parent: ROOT_INO, name: 'a', now: { sec: 9, nsec: 0 } });
    expect(errnoOf(await store.lookup(ROOT_INO, 'a'))).toBe(Errno.ENOENT);
    expect(errnoOf(await store.getattr(a.value.ino))).toBe(Errno.ENOENT);
  });

  it('stays within its entry bound', async () => {
    const store = await MetaStore.open(new MemKV(), { cacheEntries: 10 });
    for (let i = 0; i < 50; i++) await store.execute(mknod(`f${i}`));
    expect(store.stats().cacheEntries).toBeLessThanOrEqual(10);
  });
});

describe('queries', () => {
  it('validates readdir, statfs capacity and getChunks', async () => {
    const store = await MetaStore.open(new MemKV(), {
      capacity: () => ({ totalBytes: 1000, freeBytes: 600, availBytes: 500 }),
    });
    const a = await store.execute(mknod('a'));
    if (!a.ok) throw new Error('setup');
    expect(errnoOf(await store.readdir(a.value.ino, null, 10))).toBe(Errno.ENOTDIR);
    expect(errnoOf(await store.readdir(999, null, 10))).toBe(Errno.ENOENT);
    expect(errnoOf(await store.readdir(ROOT_INO, null, 0))).toBe(Errno.EINVAL);
    expect(errnoOf(await store.lookup(a.value.ino, 'x'))).toBe(Errno.ENOTDIR);
    const st = await store.statfs();
    expect(st).toMatchObject({ ok: true, value: { totalBytes: 1000, freeBytes: 600, availBytes: 500, files: 2, nameMaxBytes: 255 } });
    expect(await store.getChunks(a.value.ino, 0, 10)).toEqual({ ok: true, value: [] });
  });
});

async function listAll(store: MetaStore, pageSize: number): Promise<{ names: string[]; pages: number }> {
  const names: string[] = [];
  let after: string | null = null;
  let pages = 0;
  for (;;) {
    const r = await store.readdir(ROOT_INO, after, pageSize);
    if (!r.ok) throw new Error(`readdir errno ${r.errno}`);
    pages++;
    for (const e of r.value.entries) {
      expect(e.attr.ino).toBe(e.ino);
      names.push(e.name);
    }
    if (r.value.done) break;
    after = r.value.entries[r.value.entries.length - 1].name;
  }
  return { names, pages };
}

async function fill(store: MetaStore, n: number): Promise<string[]> {
  const names: string[] = [];
  const inFlight: Array<Promise<unknown>> = [];
  for (let i = 0; i < n; i++) {
    const name = `file-${i.toString().padStart(6, '0')}`;
    names.push(name);
    inFlight.push(store.execute(mknod(name)));
    // Bounded in flight: fills groups without tripping the queue limit.
    if (inFlight.length >= 1000) await Promise.all(inFlight.splice(0));
  }
  await Promise.all(inFlight);
  return names;
}

describe('large directories', () => {
  it('lists a 100k-entry directory page by page (MemKV)', async () => {
    const kv = new SpyKV(new MemKV());
    const store = await MetaStore.open(kv, { cacheEntries: 1000 });
    const names = await fill(store, 100_000);
    kv.maxScanLimit = 0;
    const { names: listed, pages } = await listAll(store, 5000);
    expect(listed).toEqual(names);
    // Each page asks for at most READDIR_PAGE_MAX + 1 rows, never the whole directory.
    expect(kv.maxScanLimit).toBe(READDIR_PAGE_MAX + 1);
    expect(pages).toBeGreaterThanOrEqual(100_000 / READDIR_PAGE_MAX);
  });

  it('lists a 20k-entry directory page by page (RocksKV) and survives reopen', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dfs-meta-'));
    dirs.push(dir);
    const path = join(dir, 'db');
    const kv = new SpyKV(await RocksKV.open(path));
    const store = await MetaStore.open(kv);
    const names = await fill(store, 20_000);
    kv.maxScanLimit = 0;
    const { names: listed } = await listAll(store, 700);
    expect(listed).toEqual(names);
    expect(kv.maxScanLimit).toBe(701);
    await store.close();
    const again = await MetaStore.open(await RocksKV.open(path));
    const st = await again.statfs();
    expect(st.ok && st.value.files).toBe(20_001);
    const hit = await again.lookup(ROOT_INO, 'file-019999');
    expect(hit.ok).toBe(true);
    await again.close();
  });
});
