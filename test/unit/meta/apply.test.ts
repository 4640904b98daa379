import { beforeEach, describe, expect, it } from 'vitest';
import { MemKV } from '../../../src/meta/kv.js';
import { MetaStore } from '../../../src/meta/store.js';
import {
  Errno,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  ROOT_INO,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  S_ISGID,
  S_ISUID,
  XATTR_CREATE,
  XATTR_REPLACE,
  XATTR_LIST_MAX_BYTES,
  type Attr,
  type ChunkRef,
  type Command,
} from '../../../src/meta/types.js';
import { CALLER, errnoOf, Fixture } from './helpers.js';

let f: Fixture;
beforeEach(async () => {
  f = await Fixture.create({ chunkSizeBytes: 1 << 20 });
});

describe('bootstrap', () => {
  it('creates a deterministic root directory', async () => {
    const root = await f.attr(ROOT_INO);
    expect(root).toMatchObject({ ino: 1, mode: S_IFDIR | 0o755, uid: 0, gid: 0, nlink: 2, version: 1 });
    expect(root.mtime).toEqual({ sec: 0, nsec: 0 });
    expect((await f.store.statfs()).ok && (await f.store.statfs())).toMatchObject({ value: { files: 1 } });
  });

  it('does not bootstrap twice', async () => {
    await f.file(ROOT_INO, 'a');
    const again = await MetaStore.open(f.kv);
    expect(await again.lookup(ROOT_INO, 'a')).toMatchObject({ ok: true });
  });
});

describe('names', () => {
  it.each([
    ['', Errno.EINVAL],
    ['.', Errno.EINVAL],
    ['..', Errno.EINVAL],
    ['a/b', Errno.EINVAL],
    ['a\0b', Errno.EINVAL],
    ['\u0100', Errno.EINVAL],
    ['x'.repeat(256), Errno.ENAMETOOLONG],
  ])('refuses %j', async (name, errno) => {
    expect(errnoOf(await f.mknod(ROOT_INO, name))).toBe(errno);
    expect(errnoOf(await f.mkdir(ROOT_INO, name))).toBe(errno);
    expect(errnoOf(await f.store.lookup(ROOT_INO, name))).toBe(errno);
  });

  it('accepts 255 bytes and any non-UTF-8 byte', async () => {
    expect(errnoOf(await f.mknod(ROOT_INO, 'x'.repeat(255)))).toBe(0);
    expect(errnoOf(await f.mknod(ROOT_INO, '\xff\xfe\x01'))).toBe(0);
    expect(await f.names(ROOT_INO)).toEqual(['x'.repeat(255), '\xff\xfe\x01']);
  });
});

describe('mknod / mkdir / symlink', () => {
  it('validates the parent and the name', async () => {
    const file = await f.file(ROOT_INO, 'f');
    expect(errnoOf(await f.mknod(999, 'a'))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.mknod(file.ino, 'a'))).toBe(Errno.ENOTDIR);
    expect(errnoOf(await f.mknod(ROOT_INO, 'f'))).toBe(Errno.EEXIST);
    expect(errnoOf(await f.mkdir(ROOT_INO, 'f'))).toBe(Errno.EEXIST);
    expect(errnoOf(await f.mknod(ROOT_INO, 'd', S_IFDIR | 0o755))).toBe(Errno.EINVAL);
  });

  it('sets attrs, parent times, nlink and version', async () => {
    const before = await f.attr(ROOT_INO);
    const a = await f.file(ROOT_INO, 'f');
    expect(a).toMatchObject({ ino: 2, mode: S_IFREG | 0o644, uid: 1000, gid: 1000, nlink: 1, size: 0, version: 1 });
    expect(a.chunkSizeBytes).toBe(1 << 20);
    const root = await f.attr(ROOT_INO);
    expect(root.mtime).toEqual(a.ctime);
    expect(root.ctime).toEqual(a.ctime);
    expect(root.version).toBe(before.version + 1);
    expect(root.nlink).toBe(2);
    const d = await f.dir(ROOT_INO, 'd');
    expect(d).toMatchObject({ mode: S_IFDIR | 0o755, nlink: 2, size: 4096, chunkSizeBytes: 0 });
    expect((await f.attr(ROOT_INO)).nlink).toBe(3);
    await f.dir(d.ino, 'e');
    expect((await f.attr(d.ino)).nlink).toBe(3);
    expect((await f.attr(ROOT_INO)).nlink).toBe(3);
  });

  it('inherits gid and S_ISGID from a setgid directory', async () => {
    const d = await f.dir(ROOT_INO, 'd');
    await f.ok({ op: 'setattr', ino: d.ino, set: { gid: 50, mode: 0o2775 }, now: f.now() });
    const file = await f.file(d.ino, 'f');
    expect(file.gid).toBe(50);
    expect(file.mode & S_ISGID).toBe(0);
    const sub = await f.dir(d.ino, 's');
    expect(sub.gid).toBe(50);
    expect(sub.mode & S_ISGID).toBe(S_ISGID);
    const plain = await f.dir(ROOT_INO, 'p');
    expect(plain.gid).toBe(CALLER.gid);
  });

  it('stores symlink targets', async () => {
    const target = '../some/\xfftarget';
    const r = await f.ok({ op: 'symlink', parent: ROOT_INO, name: 'l', target, caller: CALLER, now: f.now() });
    expect(r.mode).toBe(S_IFLNK | 0o777);
    expect(r.size).toBe(target.length);
    expect(await f.store.readlink(r.ino)).toEqual({ ok: true, value: target });
    expect(errnoOf(await f.store.readlink(ROOT_INO))).toBe(Errno.EINVAL);
    const empty = await f.run({ op: 'symlink', parent: ROOT_INO, name: 'e', target: '', caller: CALLER, now: f.now() });
    expect(errnoOf(empty)).toBe(Errno.ENOENT);
    const long = await f.run({ op: 'symlink', parent: ROOT_INO, name: 'e', target: 'x'.repeat(4096), caller: CALLER, now: f.now() });
    expect(errnoOf(long)).toBe(Errno.ENAMETOOLONG);
  });

  it('inherits the parent layout', async () => {
    const d = await f.dir(ROOT_INO, 'd');
    await f.ok({ op: 'setlayout', ino: d.ino, layout: { kind: 'ec', k: 4, m: 2 }, now: f.now() });
    expect((await f.file(d.ino, 'x')).layout).toEqual({ kind: 'ec', k: 4, m: 2 });
    expect((await f.dir(d.ino, 'y')).layout).toEqual({ kind: 'ec', k: 4, m: 2 });
    expect((await f.file(ROOT_INO, 'z')).layout).toEqual({ kind: 'replicas', replicas: 3 });
  });
});

describe('link / unlink / rmdir', () => {
  it('keeps nlink right across hard links', async () => {
    const a = await f.file(ROOT_INO, 'a');
    const d = await f.dir(ROOT_INO, 'd');
    const l = await f.link(a.ino, d.ino, 'b');
    expect(l.ok && l.value.nlink).toBe(2);
    expect(errnoOf(await f.link(a.ino, d.ino, 'b'))).toBe(Errno.EEXIST);
    expect(errnoOf(await f.link(d.ino, ROOT_INO, 'dd'))).toBe(Errno.EPERM);
    expect(errnoOf(await f.link(999, ROOT_INO, 'x'))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.link(a.ino, a.ino, 'x'))).toBe(Errno.ENOTDIR);
    expect(errnoOf(await f.unlink(ROOT_INO, 'a'))).toBe(0);
    const left = await f.attr(a.ino);
    expect(left.nlink).toBe(1);
    expect(left.ctime.sec).toBe(f.clock);
    expect(errnoOf(await f.unlink(d.ino, 'b'))).toBe(0);
    expect(errnoOf(await f.store.getattr(a.ino))).toBe(Errno.ENOENT);
    expect((await f.store.statfs()).ok).toBe(true);
  });

  it('returns the unlink and rmdir errnos', async () => {
    const d = await f.dir(ROOT_INO, 'd');
    await f.file(d.ino, 'x');
    await f.file(ROOT_INO, 'f');
    expect(errnoOf(await f.unlink(ROOT_INO, 'nope'))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.unlink(ROOT_INO, 'd'))).toBe(Errno.EISDIR);
    expect(errnoOf(await f.rmdir(ROOT_INO, 'f'))).toBe(Errno.ENOTDIR);
    expect(errnoOf(await f.rmdir(ROOT_INO, 'd'))).toBe(Errno.ENOTEMPTY);
    expect(errnoOf(await f.rmdir(ROOT_INO, 'nope'))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.rmdir(ROOT_INO, '.'))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.unlink(999, 'x'))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.unlink(d.ino, 'x'))).toBe(0);
    expect(errnoOf(await f.rmdir(ROOT_INO, 'd'))).toBe(0);
    expect((await f.attr(ROOT_INO)).nlink).toBe(2);
    expect(await f.names(ROOT_INO)).toEqual(['f']);
    const st = await f.store.statfs();
    expect(st.ok && st.value.files).toBe(2);
  });
});

describe('rename', () => {
  let d1: Attr;
  let d2: Attr;
  beforeEach(async () => {
    d1 = await f.dir(ROOT_INO, 'd1');
    d2 = await f.dir(ROOT_INO, 'd2');
  });

  it('moves a file within and across directories', async () => {
    const a = await f.file(d1.ino, 'a');
    expect(errnoOf(await f.rename(d1.ino, 'a', d1.ino, 'b'))).toBe(0);
    expect(await f.names(d1.ino)).toEqual(['b']);
    expect(errnoOf(await f.rename(d1.ino, 'b', d2.ino, 'c'))).toBe(0);
    expect(await f.names(d1.ino)).toEqual([]);
    expect(await f.names(d2.ino)).toEqual(['c']);
    const moved = await f.attr(a.ino);
    expect(moved.ctime.sec).toBe(f.clock);
    expect((await f.attr(d1.ino)).mtime.sec).toBe(f.clock);
    expect((await f.attr(d2.ino)).mtime.sec).toBe(f.clock);
    expect(moved.nlink).toBe(1);
  });

  it('moves a directory across parents and fixes both nlinks', async () => {
    const sub = await f.dir(d1.ino, 's');
    await f.dir(sub.ino, 'inner');
    expect((await f.attr(d1.ino)).nlink).toBe(3);
    expect(errnoOf(await f.rename(d1.ino, 's', d2.ino, 's'))).toBe(0);
    expect((await f.attr(d1.ino)).nlink).toBe(2);
    expect((await f.attr(d2.ino)).nlink).toBe(3);
    expect((await f.attr(sub.ino)).nlink).toBe(3);
    // The moved directory's parent link follows it: moving d2 under s is now a loop.
    expect(errnoOf(await f.rename(ROOT_INO, 'd2', sub.ino, 'x'))).toBe(Errno.EINVAL);
  });

  it('replaces an existing target of the right kind', async () => {
    const a = await f.file(ROOT_INO, 'a');
    const b = await f.file(ROOT_INO, 'b');
    expect(errnoOf(await f.rename(ROOT_INO, 'a', ROOT_INO, 'b'))).toBe(0);
    expect(errnoOf(await f.store.getattr(b.ino))).toBe(Errno.ENOENT);
    expect((await f.store.lookup(ROOT_INO, 'b')).ok && (await f.attr(a.ino)).ino).toBe(a.ino);
    // dir over empty dir, across parents
    const s = await f.dir(d1.ino, 's');
    const t = await f.dir(d2.ino, 't');
    expect(errnoOf(await f.rename(d1.ino, 's', d2.ino, 't'))).toBe(0);
    expect(errnoOf(await f.store.getattr(t.ino))).toBe(Errno.ENOENT);
    expect((await f.attr(d1.ino)).nlink).toBe(2);
    expect((await f.attr(d2.ino)).nlink).toBe(3);
    const found = await f.store.lookup(d2.ino, 't');
    expect(found.ok && found.value.ino).toBe(s.ino);
  });

  it('returns ENOTEMPTY, ENOTDIR, EISDIR, ENOENT', async () => {
    await f.file(d2.ino, 'inside');
    await f.file(ROOT_INO, 'f');
    await f.dir(ROOT_INO, 'e');
    expect(errnoOf(await f.rename(ROOT_INO, 'd1', ROOT_INO, 'd2'))).toBe(Errno.ENOTEMPTY);
    expect(errnoOf(await f.rename(ROOT_INO, 'd1', ROOT_INO, 'f'))).toBe(Errno.ENOTDIR);
    expect(errnoOf(await f.rename(ROOT_INO, 'f', ROOT_INO, 'e'))).toBe(Errno.EISDIR);
    expect(errnoOf(await f.rename(ROOT_INO, 'nope', ROOT_INO, 'x'))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.rename(999, 'f', ROOT_INO, 'x'))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.rename(ROOT_INO, 'f', 999, 'x'))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.rename(ROOT_INO, 'f', ROOT_INO, 'a/b'))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.rename(ROOT_INO, 'f', ROOT_INO, 'y'.repeat(256)))).toBe(Errno.ENAMETOOLONG);
  });

  it('refuses to move a directory into itself or below', async () => {
    const s = await f.dir(d1.ino, 's');
    expect(errnoOf(await f.rename(ROOT_INO, 'd1', d1.ino, 'x'))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.rename(ROOT_INO, 'd1', s.ino, 'x'))).toBe(Errno.EINVAL);
  });

  it('is a no-op between two names of the same inode', async () => {
    const a = await f.file(ROOT_INO, 'a');
    await f.link(a.ino, d1.ino, 'b');
    const before = await f.attr(a.ino);
    expect(errnoOf(await f.rename(ROOT_INO, 'a', d1.ino, 'b'))).toBe(0);
    expect(errnoOf(await f.rename(ROOT_INO, 'a', ROOT_INO, 'a'))).toBe(0);
    expect(await f.attr(a.ino)).toEqual(before);
    expect(await f.names(ROOT_INO)).toContain('a');
  });

  it('honours RENAME_NOREPLACE and RENAME_EXCHANGE', async () => {
    const a = await f.file(d1.ino, 'a');
    const s = await f.dir(d2.ino, 's');
    expect(errnoOf(await f.rename(d1.ino, 'a', d2.ino, 's', RENAME_NOREPLACE))).toBe(Errno.EEXIST);
    expect(errnoOf(await f.rename(d1.ino, 'a', d2.ino, 'new', RENAME_EXCHANGE))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.rename(d1.ino, 'a', d2.ino, 's', 3))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.rename(d1.ino, 'a', d2.ino, 's', 4))).toBe(Errno.EINVAL);
    // exchange a file and a directory across parents: nlinks follow the directory
    expect(errnoOf(await f.rename(d1.ino, 'a', d2.ino, 's', RENAME_EXCHANGE))).toBe(0);
    const inD1 = await f.store.lookup(d1.ino, 'a');
    const inD2 = await f.store.lookup(d2.ino, 's');
    expect(inD1.ok && inD1.value.ino).toBe(s.ino);
    expect(inD2.ok && inD2.value.ino).toBe(a.ino);
    expect((await f.attr(d1.ino)).nlink).toBe(3);
    expect((await f.attr(d2.ino)).nlink).toBe(2);
    // exchange a directory with its own ancestor is a loop
    expect(errnoOf(await f.rename(ROOT_INO, 'd1', d1.ino, 'a', RENAME_EXCHANGE))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.rename(d1.ino, 'a', d2.ino, 'new', RENAME_NOREPLACE))).toBe(0);
  });

  it('keeps a replaced open file as an orphan', async () => {
    const a = await f.file(ROOT_INO, 'a');
    const b = await f.file(ROOT_INO, 'b');
    await f.ok({ op: 'open', ino: b.ino, session: 's1', handle: 1 });
    expect(errnoOf(await f.rename(ROOT_INO, 'a', ROOT_INO, 'b'))).toBe(0);
    const orphan = await f.attr(b.ino);
    expect(orphan.nlink).toBe(0);
    await f.ok({ op: 'release', ino: b.ino, session: 's1', handle: 1 });
    expect(errnoOf(await f.store.getattr(b.ino))).toBe(Errno.ENOENT);
    expect((await f.attr(a.ino)).nlink).toBe(1);
  });
});

describe('setattr', () => {
  it('changes mode, owner and times', async () => {
    const a = await f.file(ROOT_INO, 'a');
    const r = await f.ok({ op: 'setattr', ino: a.ino, set: { mode: 0o4755 }, now: f.now() });
    expect(r.mode).toBe(S_IFREG | 0o4755);
    expect(r.ctime.sec).toBe(f.clock);
    expect(r.version).toBe(a.version + 1);
    const chown = await f.ok({ op: 'setattr', ino: a.ino, set: { uid: 5, gid: 6 }, now: f.now() });
    expect(chown).toMatchObject({ uid: 5, gid: 6 });
    expect(chown.mode & (S_ISUID | S_ISGID)).toBe(0);
    expect(chown.mode & 0o777).toBe(0o755);
    const t = await f.ok({ op: 'setattr', ino: a.ino, set: { atime: { sec: 7, nsec: 8 }, mtime: 'now' }, now: f.now() });
    expect(t.atime).toEqual({ sec: 7, nsec: 8 });
    expect(t.mtime).toEqual({ sec: f.clock, nsec: 0 });
    expect(errnoOf(await f.run({ op: 'setattr', ino: 999, set: {}, now: f.now() }))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.run({ op: 'setattr', ino: ROOT_INO, set: { size: 0 }, now: f.now() }))).toBe(Errno.EISDIR);
    const bad = await f.run({ op: 'setattr', ino: a.ino, set: { atime: { sec: 1, nsec: 2e9 } }, now: f.now() });
    expect(errnoOf(bad)).toBe(Errno.EINVAL);
  });

  it('keeps S_ISGID without group-exec on chown, and leaves directories alone', async () => {
    const a = await f.file(ROOT_INO, 'a');
    await f.ok({ op: 'setattr', ino: a.ino, set: { mode: 0o2644 }, now: f.now() });
    const r = await f.ok({ op: 'setattr', ino: a.ino, set: { gid: 9 }, now: f.now() });
    expect(r.mode & S_ISGID).toBe(S_ISGID);
    const d = await f.dir(ROOT_INO, 'd');
    await f.ok({ op: 'setattr', ino: d.ino, set: { mode: 0o2775 }, now: f.now() });
    const rd = await f.ok({ op: 'setattr', ino: d.ino, set: { uid: 3 }, now: f.now() });
    expect(rd.mode & S_ISGID).toBe(S_ISGID);
  });

  it('truncation sends chunks to garbage and shortens the straddling one', async () => {
    const cs = 1 << 20;
    const a = await f.file(ROOT_INO, 'a');
    const { first } = await f.ok({ op: 'allocChunkIds', count: 4 });
    expect(first).toBe(1);
    const chunks: ChunkRef[] = [0, 1, 2, 3].map((i) => ({ index: i, chunkId: first + i, sizeBytes: cs, placement: [`n${i}`] }));
    const w = await f.ok({ op: 'commitWrite', ino: a.ino, chunks, sizeBytes: 4 * cs, mtime: { sec: 50, nsec: 1 }, now: f.now() });
    expect(w.size).toBe(4 * cs);
    expect(w.mtime).toEqual({ sec: 50, nsec: 1 });
    const before = await f.attr(a.ino);
    const r = await f.ok({ op: 'setattr', ino: a.ino, set: { size: cs + 100 }, now: f.now() });
    expect(r.size).toBe(cs + 100);
    expect(r.mtime.sec).toBe(f.clock);
    expect(r.ctime.sec).toBe(f.clock);
    expect(r.version).toBe(before.version + 1);
    const refs = await f.store.getChunks(a.ino, 0, 10);
    expect(refs.ok && refs.value.map((c) => [c.index, c.sizeBytes])).toEqual([
      [0, cs],
      [1, 100],
    ]);
    expect(await f.store.listGarbage(10)).toEqual([
      { chunkId: 3, placement: ['n2'] },
      { chunkId: 4, placement: ['n3'] },
    ]);
    // Truncation to an exact chunk boundary drops the chunk at that boundary.
    await f.ok({ op: 'setattr', ino: a.ino, set: { size: cs }, now: f.now() });
    const left = await f.store.getChunks(a.ino, 0, 10);
    expect(left.ok && left.value.map((c) => c.index)).toEqual([0]);
    expect((await f.store.listGarbage(10)).map((g) => g.chunkId)).toEqual([2, 3, 4]);
    // Growing does not touch refs and still updates mtime.
    const grown = await f.ok({ op: 'setattr', ino: a.ino, set: { size: 10 * cs }, now: f.now() });
    expect(grown.size).toBe(10 * cs);
    expect(grown.mtime.sec).toBe(f.clock);
  });
});

describe('commitWrite / allocChunkIds / gcDone', () => {
  it('replaces chunk objects and grows the size only', async () => {
    const a = await f.file(ROOT_INO, 'a');
    const { first } = await f.ok({ op: 'allocChunkIds', count: 3 });
    const { first: next } = await f.ok({ op: 'allocChunkIds', count: 2 });
    expect(next).toBe(first + 3);
    const ref = (index: number, chunkId: number, sizeBytes: number): ChunkRef => ({ index, chunkId, sizeBytes, placement: ['a', 'b'] });
    const mtime = { sec: 1, nsec: 0 };
    await f.ok({ op: 'commitWrite', ino: a.ino, chunks: [ref(0, first, 10)], sizeBytes: 10, mtime, now: f.now() });
    const w = await f.ok({ op: 'commitWrite', ino: a.ino, chunks: [ref(0, first + 1, 5)], sizeBytes: 5, mtime, now: f.now() });
    expect(w.size).toBe(10);
    expect(await f.store.listGarbage(10)).toEqual([{ chunkId: first, placement: ['a', 'b'] }]);
    const refs = await f.store.getChunks(a.ino, 0, 1);
    expect(refs).toEqual({ ok: true, value: [ref(0, first + 1, 5)] });
    await f.ok({ op: 'gcDone', chunkIds: [first] });
    expect(await f.store.listGarbage(10)).toEqual([]);
    // validation
    const cw = (chunks: ChunkRef[], ino = a.ino): Command => ({ op: 'commitWrite', ino, chunks, sizeBytes: 0, mtime, now: f.now() });
    expect(errnoOf(await f.run(cw([ref(0, 999, 1)])))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.run(cw([ref(0, first, 1), ref(0, first + 2, 1)])))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.run(cw([ref(0, first, (1 << 20) + 1)])))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.run(cw([], ROOT_INO)))).toBe(Errno.EISDIR);
    expect(errnoOf(await f.run(cw([], 999)))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.run({ op: 'allocChunkIds', count: 0 }))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.store.getChunks(ROOT_INO, 0, 1))).toBe(Errno.EISDIR);
  });

  it('moves every chunk of a deleted file to garbage', async () => {
    const a = await f.file(ROOT_INO, 'a');
    const { first } = await f.ok({ op: 'allocChunkIds', count: 2 });
    const chunks = [0, 1].map((i) => ({ index: i, chunkId: first + i, sizeBytes: 1, placement: ['x'] }));
    await f.ok({ op: 'commitWrite', ino: a.ino, chunks, sizeBytes: (1 << 20) + 1, mtime: f.now(), now: f.now() });
    await f.ok({ op: 'setxattr', ino: a.ino, name: 'user.a', value: Buffer.from('v'), flags: 0, now: f.now() });
    await f.ok({ op: 'unlink', parent: ROOT_INO, name: 'a', now: f.now() });
    expect((await f.store.listGarbage(10)).map((g) => g.chunkId)).toEqual([first, first + 1]);
    // Only counters, the root, the format key and garbage remain.
    expect(f.kv.size()).toBe(1 + 3 + 1 + 2);
  });
});

describe('xattrs and layout', () => {
  it('honours XATTR_CREATE and XATTR_REPLACE', async () => {
    const a = await f.file(ROOT_INO, 'a');
    const set = (name: string, flags: number, v = 'v'): Command => ({ op: 'setxattr', ino: a.ino, name, value: Buffer.from(v), flags, now: f.now() });
    expect(errnoOf(await f.run(set('user.x', XATTR_REPLACE)))).toBe(Errno.ENODATA);
    expect(errnoOf(await f.run(set('user.x', XATTR_CREATE, '1')))).toBe(0);
    expect(errnoOf(await f.run(set('user.x', XATTR_CREATE)))).toBe(Errno.EEXIST);
    expect(errnoOf(await f.run(set('user.x', XATTR_REPLACE, '2')))).toBe(0);
    expect(errnoOf(await f.run(set('user.x', 3)))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.run(set('', 0)))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.run(set('u'.repeat(256), 0)))).toBe(Errno.ERANGE);
    await f.ok(set('user.a', 0));
    expect(await f.store.getxattr(a.ino, 'user.x')).toEqual({ ok: true, value: Buffer.from('2') });
    expect(await f.store.listxattr(a.ino)).toEqual({ ok: true, value: ['user.a', 'user.x'] });
    expect(errnoOf(await f.store.getxattr(a.ino, 'user.none'))).toBe(Errno.ENODATA);
    const rm = (name: string): Command => ({ op: 'removexattr', ino: a.ino, name, now: f.now() });
    expect(errnoOf(await f.run(rm('user.none')))).toBe(Errno.ENODATA);
    expect(errnoOf(await f.run(rm('user.a')))).toBe(0);
    const after = await f.attr(a.ino);
    expect(after.ctime.sec).toBe(f.clock);
    expect(errnoOf(await f.run({ ...set('user.q', 0), ino: 999 } as Command))).toBe(Errno.ENOENT);
  });

  it('refuses a new xattr name once the names would no longer fit one listxattr answer (E2BIG); replacing still works', async () => {
    const a = await f.file(ROOT_INO, 'a');
    const set = (name: string, v = 'v'): Command => ({ op: 'setxattr', ino: a.ino, name, value: Buffer.from(v), flags: 0, now: f.now() });
    // 255-byte names: 256 bytes each with the NUL; 65536 / 256 = 256 fit exactly.
    const name = (i: number): string => `user.${String(i).padStart(4, '0')}`.padEnd(255, 'x');
    for (let i = 0; i < 256; i++) await f.ok(set(name(i)));
    expect(errnoOf(await f.run(set(name(256))))).toBe(Errno.E2BIG);
    expect(errnoOf(await f.run(set('user.b')))).toBe(Errno.E2BIG);
    await f.ok(set(name(7), 'replaced'));
    const listed = await f.store.listxattr(a.ino);
    expect(listed.ok && listed.value.reduce((n, x) => n + x.length + 1, 0)).toBe(XATTR_LIST_MAX_BYTES);
    await f.ok({ op: 'removexattr', ino: a.ino, name: name(0), now: f.now() });
    await f.ok(set('user.b'));
  });

  it('sets layouts on directories only, within limits', async () => {
    const a = await f.file(ROOT_INO, 'a');
    const lay = (ino: number, layout: Command & { op: 'setlayout' } extends { layout: infer L } ? L : never): Command => ({ op: 'setlayout', ino, layout, now: f.now() });
    expect(errnoOf(await f.run(lay(a.ino, { kind: 'replicas', replicas: 2 })))).toBe(Errno.ENOTDIR);
    expect(errnoOf(await f.run(lay(999, { kind: 'replicas', replicas: 2 })))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.run(lay(ROOT_INO, { kind: 'replicas', replicas: 0 })))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.run(lay(ROOT_INO, { kind: 'replicas', replicas: 17 })))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.run(lay(ROOT_INO, { kind: 'ec', k: 33, m: 1 })))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.run(lay(ROOT_INO, { kind: 'ec', k: 6, m: 17 })))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.run(lay(ROOT_INO, { kind: 'ec', k: 6, m: 3 })))).toBe(0);
    expect((await f.attr(ROOT_INO)).layout).toEqual({ kind: 'ec', k: 6, m: 3 });
  });
});

describe('open handles and orphans', () => {
  it('keeps an unlinked open file until the last release', async () => {
    const a = await f.file(ROOT_INO, 'a');
    const { first } = await f.ok({ op: 'allocChunkIds', count: 1 });
    await f.ok({ op: 'commitWrite', ino: a.ino, chunks: [{ index: 0, chunkId: first, sizeBytes: 3, placement: ['n'] }], sizeBytes: 3, mtime: f.now(), now: f.now() });
    await f.ok({ op: 'open', ino: a.ino, session: 's1', handle: 1 });
    await f.ok({ op: 'open', ino: a.ino, session: 's2', handle: 7 });
    await f.ok({ op: 'unlink', parent: ROOT_INO, name: 'a', now: f.now() });
    expect(errnoOf(await f.store.lookup(ROOT_INO, 'a'))).toBe(Errno.ENOENT);
    expect((await f.attr(a.ino)).nlink).toBe(0);
    expect(await f.store.listGarbage(10)).toEqual([]);
    expect(errnoOf(await f.link(a.ino, ROOT_INO, 'back'))).toBe(Errno.ENOENT);
    await f.ok({ op: 'release', ino: a.ino, session: 's1', handle: 1 });
    expect((await f.attr(a.ino)).nlink).toBe(0);
    expect(errnoOf(await f.run({ op: 'release', ino: a.ino, session: 's1', handle: 1 }))).toBe(Errno.EBADF);
    await f.ok({ op: 'release', ino: a.ino, session: 's2', handle: 7 });
    expect(errnoOf(await f.store.getattr(a.ino))).toBe(Errno.ENOENT);
    expect(await f.store.listGarbage(10)).toEqual([{ chunkId: first, placement: ['n'] }]);
  });

  it('a handles batch applies opens and releases in order, skipping what does not apply', async () => {
    const a = await f.file(ROOT_INO, 'a');
    const b = await f.file(ROOT_INO, 'b');
    const r1 = await f.ok({
      op: 'handles',
      session: 's1',
      items: [
        { open: true, ino: a.ino, handle: 1 },
        { open: true, ino: b.ino, handle: 2 },
        { open: true, ino: 999_999, handle: 3 }, // no such inode: skipped
        { open: false, ino: a.ino, handle: 9 }, // never opened: skipped
      ],
    });
    expect(r1).toEqual({ skipped: 2 });
    // Both are open now: unlink keeps them as orphans.
    await f.ok({ op: 'unlink', parent: ROOT_INO, name: 'a', now: f.now() });
    await f.ok({ op: 'unlink', parent: ROOT_INO, name: 'b', now: f.now() });
    expect((await f.attr(a.ino)).nlink).toBe(0);
    // Releasing a reaps it; a later open of it in the same batch finds it gone.
    const r2 = await f.ok({
      op: 'handles',
      session: 's1',
      items: [
        { open: false, ino: a.ino, handle: 1 },
        { open: true, ino: a.ino, handle: 4 },
        { open: false, ino: b.ino, handle: 2 },
      ],
    });
    expect(r2).toEqual({ skipped: 1 });
    expect(errnoOf(await f.store.getattr(a.ino))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.store.getattr(b.ino))).toBe(Errno.ENOENT);
    // Bad input is refused whole.
    expect(errnoOf(await f.run({ op: 'handles', session: '', items: [] }))).toBe(Errno.EINVAL);
    const tooMany = Array.from({ length: 1025 }, (_, i) => ({ open: true, ino: ROOT_INO, handle: i }));
    expect(errnoOf(await f.run({ op: 'handles', session: 's1', items: tooMany }))).toBe(Errno.EINVAL);
  });

  it('closeSession drops the session handles and reaps its orphans', async () => {
    const a = await f.file(ROOT_INO, 'a');
    const b = await f.file(ROOT_INO, 'b');
    const c = await f.file(ROOT_INO, 'c');
    await f.ok({ op: 'open', ino: a.ino, session: 'gone', handle: 1 });
    await f.ok({ op: 'open', ino: b.ino, session: 'gone', handle: 2 });
    await f.ok({ op: 'open', ino: b.ino, session: 'gone2', handle: 2 });
    await f.ok({ op: 'open', ino: c.ino, session: 'gone', handle: 3 });
    for (const n of ['a', 'b']) await f.unlink(ROOT_INO, n);
    await f.ok({ op: 'closeSession', session: 'gone' });
    expect(errnoOf(await f.store.getattr(a.ino))).toBe(Errno.ENOENT);
    expect((await f.attr(b.ino)).nlink).toBe(0);
    expect((await f.attr(c.ino)).nlink).toBe(1);
    await f.ok({ op: 'closeSession', session: 'gone2' });
    expect(errnoOf(await f.store.getattr(b.ino))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.run({ op: 'open', ino: 999, session: 's', handle: 1 }))).toBe(Errno.ENOENT);
    expect(errnoOf(await f.run({ op: 'open', ino: c.ino, session: '', handle: 1 }))).toBe(Errno.EINVAL);
  });

  it('keeps an rmdir-ed open directory unusable for new entries', async () => {
    const d = await f.dir(ROOT_INO, 'd');
    await f.ok({ op: 'open', ino: d.ino, session: 's', handle: 1 });
    await f.rmdir(ROOT_INO, 'd');
    expect(errnoOf(await f.mknod(d.ino, 'x'))).toBe(Errno.ENOENT);
    await f.ok({ op: 'release', ino: d.ino, session: 's', handle: 1 });
    expect(errnoOf(await f.store.getattr(d.ino))).toBe(Errno.ENOENT);
  });
});

describe('dedup envelope', () => {
  it('applies a (clientId, seq) once and refuses older seqs', async () => {
    const cmd = (name: string): Command => ({ op: 'mknod', parent: ROOT_INO, name, mode: 0o100644, rdev: 0, caller: CALLER, now: { sec: 1, nsec: 0 } });
    const first = await f.store.executeEnvelope({ clientId: 'c1', seq: 1, command: cmd('a') });
    expect(first.ok).toBe(true);
    const retry = await f.store.executeEnvelope({ clientId: 'c1', seq: 1, command: cmd('a') });
    expect(retry).toEqual(first);
    const failed = await f.store.executeEnvelope({ clientId: 'c1', seq: 2, command: cmd('a') });
    expect(errnoOf(failed)).toBe(Errno.EEXIST);
    expect(await f.store.executeEnvelope({ clientId: 'c1', seq: 2, command: cmd('zzz') })).toEqual(failed);
    expect(errnoOf(await f.store.executeEnvelope({ clientId: 'c1', seq: 1, command: cmd('b') }))).toBe(Errno.EINVAL);
    expect(errnoOf(await f.store.executeEnvelope({ clientId: 'c2', seq: 1, command: cmd('b') }))).toBe(0);
    expect(errnoOf(await f.store.executeEnvelope({ clientId: '', seq: 1, command: cmd('c') }))).toBe(Errno.EINVAL);
    expect(await f.names(ROOT_INO)).toEqual(['a', 'b']);
  });
});

describe('determinism', () => {
  it('gives identical store bytes for the same command sequence', async () => {
    const script = async (g: Fixture): Promise<void> => {
      const d = await g.dir(ROOT_INO, 'd');
      const a = await g.file(d.ino, 'a');
      await g.link(a.ino, ROOT_INO, 'l');
      await g.ok({ op: 'open', ino: a.ino, session: 's', handle: 1 });
      await g.rename(ROOT_INO, 'l', d.ino, 'a');
      await g.unlink(d.ino, 'a');
      await g.store.executeEnvelope({ clientId: 'c', seq: 1, command: { op: 'allocChunkIds', count: 4 } });
      await g.ok({ op: 'closeSession', session: 's' });
    };
    const dump = async (kv: MemKV): Promise<string> =>
      (await kv.scan({ limit: 10_000 })).map(([k, v]) => `${k.toString('hex')}=${v.toString('hex')}`).join('\n');
    const g1 = await Fixture.create();
    const g2 = await Fixture.create({ cacheEntries: 1 });
    await script(g1);
    await script(g2);
    expect(await dump(g1.kv)).toEqual(await dump(g2.kv));
  });
});
