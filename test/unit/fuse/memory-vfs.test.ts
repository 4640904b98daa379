// MemoryVfs (the binding ceiling probe's filesystem): the POSIX rules fsbench and the
// shell tools rely on, checked without the kernel.
import { describe, expect, it } from 'vitest';
import { MemoryVfs, MEMORY_BLOCK_BYTES } from '../../../src/fuse/memory-vfs.js';
import type { Answer } from '../../../src/fuse/vfs-api.js';
import { Errno, RENAME_EXCHANGE, RENAME_NOREPLACE, ROOT_INO, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, XATTR_CREATE, XATTR_REPLACE } from '../../../src/meta/types.js';

const caller = { uid: 1000, gid: 1000 };

/** The value of a synchronous answer; fails the test on an errno. */
function v<T>(a: Answer<T>): T {
  if (a instanceof Promise) throw new Error('MemoryVfs answers synchronously');
  if (!a.ok) throw new Error(`errno ${a.errno}`);
  return a.value;
}

function errno<T>(a: Answer<T>): number {
  if (a instanceof Promise) throw new Error('MemoryVfs answers synchronously');
  return a.ok ? 0 : a.errno;
}

function names(fs: MemoryVfs, dir: number): string[] {
  const fh = v(fs.opendir(dir));
  const out = v(fs.readdir(fh, 0, 1000)).entries.map((e) => e.name);
  v(fs.releasedir(fh));
  return out;
}

function readAll(fs: MemoryVfs, fh: number, offset: number, length: number): Buffer {
  return Buffer.concat(v(fs.read(fh, offset, length)));
}

describe('MemoryVfs', () => {
  it('creates, writes and reads back across blocks, with holes as zeros', () => {
    const fs = new MemoryVfs();
    const o = v(fs.create(ROOT_INO, 'f', 0o644, 1, caller));
    expect(o.attr.mode).toBe(S_IFREG | 0o644);
    expect(o.attr.uid).toBe(1000);
    const data = Buffer.alloc(MEMORY_BLOCK_BYTES + 100, 7);
    expect(v(fs.write(o.fh, 10, data))).toBe(data.length);
    expect(v(fs.getattr(o.attr.ino)).size).toBe(10 + data.length);
    const back = readAll(fs, o.fh, 0, 20 + data.length);
    expect(back.length).toBe(10 + data.length);
    expect(back.subarray(0, 10).equals(Buffer.alloc(10))).toBe(true);
    expect(back.subarray(10).equals(data)).toBe(true);
    // A write far past the end leaves a hole that reads as zeros and holds no memory; the
    // block it lands in holds only a small buffer.
    const used = fs.usedBytes;
    v(fs.write(o.fh, 10 * MEMORY_BLOCK_BYTES, Buffer.from('end')));
    expect(fs.usedBytes).toBe(used + 4096);
    expect(readAll(fs, o.fh, 5 * MEMORY_BLOCK_BYTES, 16).equals(Buffer.alloc(16))).toBe(true);
    expect(readAll(fs, o.fh, 10 * MEMORY_BLOCK_BYTES, 100).toString()).toBe('end');
    v(fs.release(o.fh));
  });

  it('a small file holds a small buffer that grows, keeping its bytes, as writes reach further', () => {
    const fs = new MemoryVfs();
    const o = v(fs.create(ROOT_INO, 'f', 0o644, 1, caller));
    v(fs.write(o.fh, 0, Buffer.alloc(16 * 1024, 1)));
    expect(fs.usedBytes).toBe(16 * 1024);
    v(fs.write(o.fh, 20 * 1024, Buffer.alloc(100, 2)));
    expect(fs.usedBytes).toBe(32 * 1024);
    v(fs.write(o.fh, 200 * 1024, Buffer.alloc(100, 3)));
    expect(fs.usedBytes).toBe(MEMORY_BLOCK_BYTES);
    const back = readAll(fs, o.fh, 0, 300 * 1024);
    expect(back.length).toBe(200 * 1024 + 100);
    expect(back.subarray(0, 16 * 1024).equals(Buffer.alloc(16 * 1024, 1))).toBe(true);
    expect(back.subarray(16 * 1024, 20 * 1024).equals(Buffer.alloc(4 * 1024))).toBe(true);
    expect(back.subarray(20 * 1024, 20 * 1024 + 100).equals(Buffer.alloc(100, 2))).toBe(true);
    expect(back.subarray(20 * 1024 + 100, 200 * 1024).equals(Buffer.alloc(180 * 1024 - 100))).toBe(true);
    expect(back.subarray(200 * 1024).equals(Buffer.alloc(100, 3))).toBe(true);
    // A read past a short buffer but inside the size answers zeros.
    v(fs.setattr(o.attr.ino, { size: 10 }));
    v(fs.setattr(o.attr.ino, { size: 3 * MEMORY_BLOCK_BYTES }));
    const tail = readAll(fs, o.fh, 5, 2 * MEMORY_BLOCK_BYTES);
    expect(tail.subarray(0, 5).equals(Buffer.alloc(5, 1))).toBe(true);
    expect(tail.subarray(5).equals(Buffer.alloc(2 * MEMORY_BLOCK_BYTES - 5))).toBe(true);
    v(fs.release(o.fh));
  });

  it('truncate drops data and a later extension reads zeros, not old bytes', () => {
    const fs = new MemoryVfs();
    const o = v(fs.create(ROOT_INO, 'f', 0o644, 1, caller));
    v(fs.write(o.fh, 0, Buffer.alloc(3 * MEMORY_BLOCK_BYTES, 0xff)));
    v(fs.setattr(o.attr.ino, { size: 100 }));
    expect(fs.usedBytes).toBe(MEMORY_BLOCK_BYTES);
    v(fs.setattr(o.attr.ino, { size: 2 * MEMORY_BLOCK_BYTES }));
    const back = readAll(fs, o.fh, 0, 2 * MEMORY_BLOCK_BYTES);
    expect(back.subarray(0, 100).equals(Buffer.alloc(100, 0xff))).toBe(true);
    expect(back.subarray(100).equals(Buffer.alloc(2 * MEMORY_BLOCK_BYTES - 100))).toBe(true);
    // O_TRUNC on open empties it.
    v(fs.release(o.fh));
    const fh = v(fs.open(o.attr.ino, 0o1001)).fh;
    expect(v(fs.getattr(o.attr.ino)).size).toBe(0);
    expect(fs.usedBytes).toBe(0);
    v(fs.release(fh));
  });

  it('keeps an unlinked open file until its last release', () => {
    const fs = new MemoryVfs();
    const o = v(fs.create(ROOT_INO, 'f', 0o644, 1, caller));
    v(fs.write(o.fh, 0, Buffer.from('still here')));
    v(fs.unlink(ROOT_INO, 'f'));
    expect(errno(fs.lookup(ROOT_INO, 'f'))).toBe(Errno.ENOENT);
    expect(v(fs.getattr(o.attr.ino)).nlink).toBe(0);
    expect(readAll(fs, o.fh, 0, 100).toString()).toBe('still here');
    v(fs.release(o.fh));
    expect(errno(fs.getattr(o.attr.ino))).toBe(Errno.ENOENT);
    expect(fs.usedBytes).toBe(0);
    expect(fs.inodes).toBe(1);
  });

  it('hard links count names; the data goes with the last one', () => {
    const fs = new MemoryVfs();
    const d = v(fs.mkdir(ROOT_INO, 'd', 0o755, caller));
    const o = v(fs.create(ROOT_INO, 'f', 0o644, 1, caller));
    v(fs.release(o.fh));
    expect(v(fs.link(o.attr.ino, d.ino, 'g')).nlink).toBe(2);
    expect(errno(fs.link(o.attr.ino, d.ino, 'g'))).toBe(Errno.EEXIST);
    expect(errno(fs.link(d.ino, ROOT_INO, 'dirlink'))).toBe(Errno.EPERM);
    v(fs.unlink(ROOT_INO, 'f'));
    expect(v(fs.lookup(d.ino, 'g')).nlink).toBe(1);
    v(fs.unlink(d.ino, 'g'));
    expect(errno(fs.getattr(o.attr.ino))).toBe(Errno.ENOENT);
  });

  it('directories: nlink, ENOTEMPTY, EISDIR/ENOTDIR, setgid inheritance', () => {
    const fs = new MemoryVfs();
    const d = v(fs.mkdir(ROOT_INO, 'd', 0o2775, caller));
    expect(d.mode).toBe(S_IFDIR | 0o2775);
    expect(v(fs.getattr(ROOT_INO)).nlink).toBe(3);
    const sub = v(fs.mkdir(d.ino, 'sub', 0o755, { uid: 5, gid: 5 }));
    expect(sub.mode & 0o2000).toBe(0o2000);
    expect(sub.gid).toBe(1000);
    expect(v(fs.getattr(d.ino)).nlink).toBe(3);
    expect(errno(fs.rmdir(ROOT_INO, 'd'))).toBe(Errno.ENOTEMPTY);
    expect(errno(fs.unlink(ROOT_INO, 'd'))).toBe(Errno.EISDIR);
    v(fs.release(v(fs.create(d.ino, 'f', 0o644, 1, caller)).fh));
    expect(errno(fs.rmdir(d.ino, 'f'))).toBe(Errno.ENOTDIR);
    expect(errno(fs.mkdir(d.ino, 'f', 0o755, caller))).toBe(Errno.EEXIST);
    v(fs.unlink(d.ino, 'f'));
    v(fs.rmdir(d.ino, 'sub'));
    v(fs.rmdir(ROOT_INO, 'd'));
    expect(v(fs.getattr(ROOT_INO)).nlink).toBe(2);
    expect(names(fs, ROOT_INO)).toEqual(['.', '..']);
  });

  it('rename: over a file, over an empty dir, across dirs, into itself, NOREPLACE, EXCHANGE', () => {
    const fs = new MemoryVfs();
    const a = v(fs.mkdir(ROOT_INO, 'a', 0o755, caller));
    const b = v(fs.mkdir(ROOT_INO, 'b', 0o755, caller));
    const f = v(fs.create(a.ino, 'f', 0o644, 1, caller));
    v(fs.release(f.fh));
    const g = v(fs.create(b.ino, 'g', 0o644, 1, caller));
    v(fs.release(g.fh));
    v(fs.rename(a.ino, 'f', b.ino, 'g', 0));
    expect(v(fs.lookup(b.ino, 'g')).ino).toBe(f.attr.ino);
    expect(errno(fs.getattr(g.attr.ino))).toBe(Errno.ENOENT);
    expect(names(fs, a.ino)).toEqual(['.', '..']);
    // A directory moves with its nlink accounting and can replace an empty directory.
    const e = v(fs.mkdir(b.ino, 'e', 0o755, caller));
    v(fs.rename(ROOT_INO, 'a', b.ino, 'e', 0));
    expect(errno(fs.getattr(e.ino))).toBe(Errno.ENOENT);
    expect(v(fs.getattr(ROOT_INO)).nlink).toBe(3);
    expect(v(fs.getattr(b.ino)).nlink).toBe(3);
    expect(errno(fs.rename(ROOT_INO, 'b', a.ino, 'x', 0))).toBe(Errno.EINVAL);
    expect(errno(fs.rename(b.ino, 'g', b.ino, 'e', 0))).toBe(Errno.EISDIR);
    expect(errno(fs.rename(b.ino, 'e', b.ino, 'g', 0))).toBe(Errno.ENOTDIR);
    expect(errno(fs.rename(ROOT_INO, 'b', ROOT_INO, 'b', 0))).toBe(0);
    v(fs.release(v(fs.create(b.ino, 'h', 0o644, 1, caller)).fh));
    expect(errno(fs.rename(b.ino, 'g', b.ino, 'h', RENAME_NOREPLACE))).toBe(Errno.EEXIST);
    const h = v(fs.lookup(b.ino, 'h')).ino;
    v(fs.rename(b.ino, 'g', b.ino, 'h', RENAME_EXCHANGE));
    expect(v(fs.lookup(b.ino, 'h')).ino).toBe(f.attr.ino);
    expect(v(fs.lookup(b.ino, 'g')).ino).toBe(h);
    expect(errno(fs.rename(b.ino, 'g', b.ino, 'nope', RENAME_EXCHANGE))).toBe(Errno.ENOENT);
  });

  it('symlinks, mknod, and readdir with attributes and stable offsets', () => {
    const fs = new MemoryVfs();
    const s = v(fs.symlink(ROOT_INO, 's', 'some/where', caller));
    expect(s.mode & S_IFMT).toBe(S_IFLNK);
    expect(s.size).toBe(10);
    expect(v(fs.readlink(s.ino))).toBe('some/where');
    expect(errno(fs.readlink(ROOT_INO))).toBe(Errno.EINVAL);
    const fifo = v(fs.mknod(ROOT_INO, 'p', 0o010644, 0, caller));
    expect(fifo.mode).toBe(0o010644);
    for (let i = 0; i < 10; i++) v(fs.mkdir(ROOT_INO, `d${i}`, 0o755, caller));
    const fh = v(fs.opendir(ROOT_INO));
    const first = v(fs.readdir(fh, 0, 5)).entries;
    expect(first.map((e) => e.name)).toEqual(['.', '..', 's', 'p', 'd0']);
    const rest = v(fs.readdir(fh, first[first.length - 1].nextOffset, 100)).entries;
    expect(rest.map((e) => e.name)).toEqual(['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7', 'd8', 'd9']);
    expect(rest[0].attr?.mode).toBe(S_IFDIR | 0o755);
    v(fs.releasedir(fh));
  });

  it('xattrs: create/replace flags, ENODATA, list, ACL names refused', () => {
    const fs = new MemoryVfs();
    v(fs.setxattr(ROOT_INO, 'user.a', Buffer.from('1'), 0));
    expect(errno(fs.setxattr(ROOT_INO, 'user.a', Buffer.from('2'), XATTR_CREATE))).toBe(Errno.EEXIST);
    expect(errno(fs.setxattr(ROOT_INO, 'user.b', Buffer.from('2'), XATTR_REPLACE))).toBe(Errno.ENODATA);
    v(fs.setxattr(ROOT_INO, 'user.a', Buffer.from('3'), XATTR_REPLACE));
    expect(v(fs.getxattr(ROOT_INO, 'user.a')).toString()).toBe('3');
    expect(v(fs.listxattr(ROOT_INO))).toEqual(['user.a']);
    v(fs.removexattr(ROOT_INO, 'user.a'));
    expect(errno(fs.getxattr(ROOT_INO, 'user.a'))).toBe(Errno.ENODATA);
    expect(errno(fs.removexattr(ROOT_INO, 'user.a'))).toBe(Errno.ENODATA);
    expect(errno(fs.setxattr(ROOT_INO, 'system.posix_acl_access', Buffer.alloc(4), 0))).toBe(Errno.ENOTSUP);
  });

  it('setattr: times, mode, chown drops set-id bits', () => {
    const fs = new MemoryVfs();
    const o = v(fs.create(ROOT_INO, 'f', 0o6755, 1, caller));
    v(fs.release(o.fh));
    const t = { sec: -100, nsec: 5 };
    const a = v(fs.setattr(o.attr.ino, { atime: t, mtime: { sec: 2 ** 40, nsec: 999_999_999 } }));
    expect(a.atime).toEqual(t);
    expect(a.mtime).toEqual({ sec: 2 ** 40, nsec: 999_999_999 });
    expect(v(fs.setattr(o.attr.ino, { uid: 7 })).mode).toBe(S_IFREG | 0o755);
    expect(v(fs.setattr(o.attr.ino, { mode: 0o600 })).mode).toBe(S_IFREG | 0o600);
    expect(errno(fs.setattr(ROOT_INO, { size: 0 }))).toBe(Errno.EISDIR);
  });

  it('bounds: capacity (ENOSPC) and names (ENAMETOOLONG, EINVAL)', () => {
    const fs = new MemoryVfs({ capacityBytes: 2 * MEMORY_BLOCK_BYTES });
    const o = v(fs.create(ROOT_INO, 'f', 0o644, 1, caller));
    v(fs.write(o.fh, 0, Buffer.alloc(2 * MEMORY_BLOCK_BYTES)));
    expect(errno(fs.write(o.fh, 2 * MEMORY_BLOCK_BYTES, Buffer.alloc(1)))).toBe(Errno.ENOSPC);
    expect(v(fs.statfs()).availBytes).toBe(0);
    expect(errno(fs.mkdir(ROOT_INO, 'x'.repeat(256), 0o755, caller))).toBe(Errno.ENAMETOOLONG);
    expect(errno(fs.mkdir(ROOT_INO, 'a/b', 0o755, caller))).toBe(Errno.EINVAL);
  });
});
