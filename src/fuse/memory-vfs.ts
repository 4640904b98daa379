// An in-memory filesystem behind the FuseVfs interface: inodes, entries, data and xattrs
// in plain maps, every answer synchronous. It is a measuring tool, not a product mode:
// mounted through the same binding and adapter as dfs (scripts/memfs-probe.mjs), it
// shows what they alone allow, the ceiling dfs is compared with in BENCHMARKS.md.
// Its namespace rules follow src/meta/apply.ts so tools behave as on dfs.
import type { Attr, Caller, Ino, Result, SetAttrFields, StatFs, Timespec } from '../meta/types.js';
import {
  DEFAULT_LAYOUT,
  Errno,
  NAME_MAX_BYTES,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  ROOT_INO,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  S_ISGID,
  S_ISUID,
  SYMLINK_MAX_BYTES,
  XATTR_CREATE,
  XATTR_NAME_MAX_BYTES,
  XATTR_REPLACE,
  XATTR_VALUE_MAX_BYTES,
} from '../meta/types.js';
import type { DirListing, FuseVfs, OpenResult } from './vfs-api.js';
import { O_ACCMODE, O_RDWR, O_TRUNC, O_WRONLY } from './open-flags.js';

export interface MemoryVfsOptions {
  /** Bound on file data held (ENOSPC beyond); statfs reports it as the size. */
  capacityBytes: number;
  /** Bound on inodes (ENOSPC beyond). */
  maxInodes: number;
  /** Bound on open file and directory handles (EMFILE beyond). */
  maxHandles: number;
  /** Owner of the root directory. */
  rootUid: number;
  rootGid: number;
}

export const DEFAULT_MEMORY_VFS_OPTIONS: MemoryVfsOptions = {
  capacityBytes: 8 * 1024 * 1024 * 1024,
  maxInodes: 4_000_000,
  maxHandles: 1_000_000,
  rootUid: 0,
  rootGid: 0,
};

/** Data is kept in blocks of this size; a read answers with up to 64 of them, uncopied. */
export const MEMORY_BLOCK_BYTES = 256 * 1024;
/**
 * A block's buffer starts at what its first write needs (a power of two, at least this)
 * and doubles as writes reach further, so a 16 KiB file holds 16 KiB, not a whole block:
 * fresh memory is slow to touch on this machine's VM (fsbench reports ~100 MiB/s when busy).
 */
const MIN_BUFFER_BYTES = 4096;
const DIR_SIZE_BYTES = 4096;
/** Largest file, as in the namespace (every offset an exact JS integer). */
const FILE_SIZE_MAX_BYTES = 2 ** 50;
const DIR_DEPTH_MAX = 4096;
const EMFILE = 24;
const S_IXGRP = 0o010;
/** Blocks of zeros for holes; never written. */
const ZEROS = Buffer.alloc(MEMORY_BLOCK_BYTES);

interface Node {
  attr: Attr;
  /** Directory: parent directory (the root is its own). */
  parent: Ino;
  /** Directory: name → inode, in insertion order. */
  entries: Map<string, Ino> | null;
  /** Regular file: data blocks by index, each as long as written so far (past it, zeros); holes are absent. */
  blocks: Array<Buffer | undefined> | null;
  /** Symlink target. */
  target: string;
  xattrs: Map<string, Buffer> | null;
  /** Open file and directory handles; an unlinked inode lives until the last is released. */
  opens: number;
}

interface Handle {
  node: Node;
  /** Directory handle: the entries seen at the first readdir (or the last rewind). */
  listing: Array<{ name: string; ino: Ino; type: number }> | null;
  dir: boolean;
}

function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

function err<T>(errno: number): Result<T> {
  return { ok: false, errno };
}

/** Buffer length for a block that must hold `reach` bytes: a power of two, ≥ MIN_BUFFER_BYTES, doubling. */
function bufferBytes(current: Buffer | undefined, reach: number): number {
  const have = current?.length ?? 0;
  if (reach <= have) return have;
  let n = Math.max(MIN_BUFFER_BYTES, have * 2);
  while (n < reach) n *= 2;
  return Math.min(n, MEMORY_BLOCK_BYTES);
}

function nowTimespec(): Timespec {
  const ms = performance.timeOrigin + performance.now();
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: Math.min(999_999_999, Math.round((ms - sec * 1000) * 1e6)) };
}

function nameError(name: string): number {
  if (name.length === 0 || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return Errno.EINVAL;
  if (name.length > NAME_MAX_BYTES) return Errno.ENAMETOOLONG;
  return 0;
}

const isDir = (mode: number): boolean => (mode & S_IFMT) === S_IFDIR;
const isReg = (mode: number): boolean => (mode & S_IFMT) === S_IFREG;
/** POSIX ACLs are refused as on dfs (docs/decisions/0002-permissions.md). */
const isPosixAclName = (name: string): boolean => name === 'system.posix_acl_access' || name === 'system.posix_acl_default';

export class MemoryVfs implements FuseVfs {
  private readonly opts: MemoryVfsOptions;
  private readonly nodes = new Map<Ino, Node>();
  private readonly handles = new Map<number, Handle>();
  private nextIno = ROOT_INO + 1;
  private nextFh = 1;
  private dataBytes = 0;

  constructor(options: Partial<MemoryVfsOptions> = {}) {
    this.opts = { ...DEFAULT_MEMORY_VFS_OPTIONS, ...options };
    const now = nowTimespec();
    this.nodes.set(ROOT_INO, {
      attr: this.attr(ROOT_INO, S_IFDIR | 0o755, this.opts.rootUid, this.opts.rootGid, DIR_SIZE_BYTES, 2, 0, now),
      parent: ROOT_INO,
      entries: new Map(),
      blocks: null,
      target: '',
      xattrs: null,
      opens: 0,
    });
  }

  /** Bytes of file data held (blocks allocated), for tests. */
  get usedBytes(): number {
    return this.dataBytes;
  }

  get inodes(): number {
    return this.nodes.size;
  }

  get openHandles(): number {
    return this.handles.size;
  }

  private attr(ino: Ino, mode: number, uid: number, gid: number, size: number, nlink: number, rdev: number, now: Timespec): Attr {
    return { ino, mode, uid, gid, size, nlink, rdev, atime: now, mtime: now, ctime: now, version: 1, chunkSizeBytes: 0, layout: DEFAULT_LAYOUT };
  }

  private changed(n: Node, now: Timespec, data = false): void {
    n.attr.ctime = now;
    if (data) n.attr.mtime = now;
    n.attr.version++;
  }

  /** A live directory (an rmdir'ed one still open takes no new entries). */
  private dir(ino: Ino): Node | number {
    const n = this.nodes.get(ino);
    if (!n) return Errno.ENOENT;
    if (!n.entries) return Errno.ENOTDIR;
    if (n.attr.nlink === 0) return Errno.ENOENT;
    return n;
  }

  private child(parent: Node, name: string): Node | undefined {
    const ino = parent.entries!.get(name);
    if (ino === undefined) return undefined;
    const n = this.nodes.get(ino);
    if (!n) throw new Error(`memory vfs: entry ${name} points at missing inode ${ino}`);
    return n;
  }

  // ---- names and attributes -------------------------------------------------------------

  lookup(parent: Ino, name: string): Result<Attr> {
    const d = this.dir(parent);
    if (typeof d === 'number') return err(d);
    const e = nameError(name);
    if (e) return err(e);
    const n = this.child(d, name);
    return n ? ok(n.attr) : err(Errno.ENOENT);
  }

  getattr(ino: Ino): Result<Attr> {
    const n = this.nodes.get(ino);
    return n ? ok(n.attr) : err(Errno.ENOENT);
  }

  setattr(ino: Ino, set: SetAttrFields): Result<Attr> {
    const n = this.nodes.get(ino);
    if (!n) return err(Errno.ENOENT);
    const a = n.attr;
    const now = nowTimespec();
    if (set.size !== undefined) {
      if (isDir(a.mode)) return err(Errno.EISDIR);
      if (!isReg(a.mode)) return err(Errno.EINVAL);
      if (set.size > FILE_SIZE_MAX_BYTES) return err(Errno.EFBIG);
    }
    if (set.uid !== undefined || set.gid !== undefined) {
      if (set.uid !== undefined) a.uid = set.uid;
      if (set.gid !== undefined) a.gid = set.gid;
      // A new owner must not inherit set-id powers (as Linux for an unprivileged chown).
      if (isReg(a.mode)) {
        a.mode &= ~S_ISUID;
        if ((a.mode & S_IXGRP) !== 0) a.mode &= ~S_ISGID;
      }
    }
    if (set.mode !== undefined) a.mode = (a.mode & S_IFMT) | (set.mode & 0o7777);
    if (set.size !== undefined && set.size !== a.size) {
      this.truncate(n, set.size);
      a.mtime = now;
    }
    if (set.atime !== undefined) a.atime = set.atime === 'now' ? now : set.atime;
    if (set.mtime !== undefined) a.mtime = set.mtime === 'now' ? now : set.mtime;
    this.changed(n, now);
    return ok(a);
  }

  readlink(ino: Ino): Result<string> {
    const n = this.nodes.get(ino);
    if (!n) return err(Errno.ENOENT);
    if ((n.attr.mode & S_IFMT) !== S_IFLNK) return err(Errno.EINVAL);
    return ok(n.target);
  }

  statfs(): Result<StatFs> {
    const free = Math.max(0, this.opts.capacityBytes - this.dataBytes);
    return ok({
      totalBytes: this.opts.capacityBytes,
      freeBytes: free,
      availBytes: free,
      files: this.nodes.size,
      freeFiles: Math.max(0, this.opts.maxInodes - this.nodes.size),
      blockSizeBytes: 4096,
      nameMaxBytes: NAME_MAX_BYTES,
    });
  }

  // ---- namespace changes ----------------------------------------------------------------

  private newNode(parent: Ino, name: string, mode: number, caller: Caller, extra: { rdev?: number; target?: string }): Result<Node> {
    const d = this.dir(parent);
    if (typeof d === 'number') return err(d);
    const e = nameError(name);
    if (e) return err(e);
    if (d.entries!.has(name)) return err(Errno.EEXIST);
    if (this.nodes.size >= this.opts.maxInodes) return err(Errno.ENOSPC);
    const now = nowTimespec();
    const setgidParent = (d.attr.mode & S_ISGID) !== 0;
    if (setgidParent && isDir(mode)) mode |= S_ISGID;
    const dir = isDir(mode);
    const target = extra.target ?? '';
    const ino = this.nextIno++;
    const n: Node = {
      attr: this.attr(ino, mode, caller.uid, setgidParent ? d.attr.gid : caller.gid, dir ? DIR_SIZE_BYTES : target.length, dir ? 2 : 1, extra.rdev ?? 0, now),
      parent: dir ? parent : 0,
      entries: dir ? new Map() : null,
      blocks: isReg(mode) ? [] : null,
      target,
      xattrs: null,
      opens: 0,
    };
    this.nodes.set(ino, n);
    d.entries!.set(name, ino);
    if (dir) d.attr.nlink++;
    this.changed(d, now, true);
    return ok(n);
  }

  mknod(parent: Ino, name: string, mode: number, rdev: number, caller: Caller): Result<Attr> {
    let type = mode & S_IFMT;
    if (type === 0) type = S_IFREG;
    if (![S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK].includes(type)) return err(Errno.EINVAL);
    const r = this.newNode(parent, name, type | (mode & 0o7777), caller, { rdev });
    return r.ok ? ok(r.value.attr) : r;
  }

  mkdir(parent: Ino, name: string, mode: number, caller: Caller): Result<Attr> {
    const r = this.newNode(parent, name, S_IFDIR | (mode & 0o7777), caller, {});
    return r.ok ? ok(r.value.attr) : r;
  }

  symlink(parent: Ino, name: string, target: string, caller: Caller): Result<Attr> {
    if (target.length === 0) return err(Errno.ENOENT);
    if (target.length > SYMLINK_MAX_BYTES) return err(Errno.ENAMETOOLONG);
    const r = this.newNode(parent, name, S_IFLNK | 0o777, caller, { target });
    return r.ok ? ok(r.value.attr) : r;
  }

  link(ino: Ino, newParent: Ino, newName: string): Result<Attr> {
    const n = this.nodes.get(ino);
    if (!n || n.attr.nlink === 0) return err(Errno.ENOENT);
    if (isDir(n.attr.mode)) return err(Errno.EPERM);
    const d = this.dir(newParent);
    if (typeof d === 'number') return err(d);
    const e = nameError(newName);
    if (e) return err(e);
    if (d.entries!.has(newName)) return err(Errno.EEXIST);
    const now = nowTimespec();
    d.entries!.set(newName, ino);
    n.attr.nlink++;
    this.changed(n, now);
    this.changed(d, now, true);
    return ok(n.attr);
  }

  /** One name of `n` is gone: drop a link, and the inode with its last one and last open. */
  private dropLink(n: Node, now: Timespec): void {
    n.attr.nlink = isDir(n.attr.mode) ? 0 : n.attr.nlink - 1;
    this.changed(n, now);
    this.reapIfOrphan(n);
  }

  private reapIfOrphan(n: Node): void {
    if (n.attr.nlink > 0 || n.opens > 0) return;
    if (n.blocks) this.truncate(n, 0);
    this.nodes.delete(n.attr.ino);
  }

  private remove(parent: Ino, name: string, wantDir: boolean): Result<null> {
    const d = this.dir(parent);
    if (typeof d === 'number') return err(d);
    const e = nameError(name);
    if (e) return err(e);
    const n = this.child(d, name);
    if (!n) return err(Errno.ENOENT);
    if (wantDir) {
      if (!n.entries) return err(Errno.ENOTDIR);
      if (n.entries.size > 0) return err(Errno.ENOTEMPTY);
      d.attr.nlink--;
    } else if (n.entries) {
      return err(Errno.EISDIR);
    }
    const now = nowTimespec();
    d.entries!.delete(name);
    this.changed(d, now, true);
    this.dropLink(n, now);
    return ok(null);
  }

  unlink(parent: Ino, name: string): Result<null> {
    return this.remove(parent, name, false);
  }

  rmdir(parent: Ino, name: string): Result<null> {
    return this.remove(parent, name, true);
  }

  /** True if directory `ino` is `ancestor` or below it. */
  private isWithin(ino: Ino, ancestor: Ino): boolean {
    let cur = ino;
    for (let depth = 0; depth < DIR_DEPTH_MAX; depth++) {
      if (cur === ancestor) return true;
      if (cur === ROOT_INO) return false;
      const n = this.nodes.get(cur);
      if (!n) throw new Error(`memory vfs: directory ${cur} has a missing ancestor`);
      cur = n.parent;
    }
    throw new Error(`memory vfs: directory tree deeper than ${DIR_DEPTH_MAX} at ${ino}`);
  }

  rename(parent: Ino, name: string, newParent: Ino, newName: string, flags: number): Result<null> {
    if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) !== 0 || flags === (RENAME_NOREPLACE | RENAME_EXCHANGE)) return err(Errno.EINVAL);
    const exchange = flags === RENAME_EXCHANGE;
    const source = this.dir(parent);
    if (typeof source === 'number') return err(source);
    const target = this.dir(newParent);
    if (typeof target === 'number') return err(target);
    const e = nameError(name) || nameError(newName);
    if (e) return err(e);
    const src = this.child(source, name);
    if (!src) return err(Errno.ENOENT);
    const dst = this.child(target, newName);
    if (exchange && !dst) return err(Errno.ENOENT);
    // Two names of one inode (or one name twice): POSIX says do nothing, successfully.
    if (dst === src) return ok(null);
    if (flags === RENAME_NOREPLACE && dst) return err(Errno.EEXIST);
    const srcIsDir = src.entries !== null;
    const dstIsDir = dst !== undefined && dst.entries !== null;
    if (!exchange && dst) {
      if (srcIsDir && !dstIsDir) return err(Errno.ENOTDIR);
      if (!srcIsDir && dstIsDir) return err(Errno.EISDIR);
      if (dstIsDir && dst.entries!.size > 0) return err(Errno.ENOTEMPTY);
    }
    if (srcIsDir && this.isWithin(newParent, src.attr.ino)) return err(Errno.EINVAL);
    if (exchange && dstIsDir && this.isWithin(parent, dst.attr.ino)) return err(Errno.EINVAL);
    const now = nowTimespec();
    if (exchange && dst) {
      source.entries!.set(name, dst.attr.ino);
      target.entries!.set(newName, src.attr.ino);
      if (source !== target) {
        if (srcIsDir) this.moveDir(src, source, target);
        if (dstIsDir) this.moveDir(dst, target, source);
      }
      this.changed(dst, now);
    } else {
      if (dst) {
        if (dstIsDir) target.attr.nlink--;
        this.dropLink(dst, now);
      }
      source.entries!.delete(name);
      target.entries!.set(newName, src.attr.ino);
      if (srcIsDir && source !== target) this.moveDir(src, source, target);
    }
    this.changed(src, now);
    this.changed(source, now, true);
    if (target !== source) this.changed(target, now, true);
    return ok(null);
  }

  private moveDir(d: Node, from: Node, to: Node): void {
    from.attr.nlink--;
    to.attr.nlink++;
    d.parent = to.attr.ino;
  }

  // ---- xattrs ---------------------------------------------------------------------------

  getxattr(ino: Ino, name: string): Result<Buffer> {
    const n = this.nodes.get(ino);
    if (!n) return err(Errno.ENOENT);
    if (name.length > XATTR_NAME_MAX_BYTES) return err(Errno.ERANGE);
    if (isPosixAclName(name)) return err(Errno.ENOTSUP);
    const v = n.xattrs?.get(name);
    return v ? ok(v) : err(Errno.ENODATA);
  }

  listxattr(ino: Ino): Result<string[]> {
    const n = this.nodes.get(ino);
    if (!n) return err(Errno.ENOENT);
    return ok(n.xattrs ? [...n.xattrs.keys()] : []);
  }

  setxattr(ino: Ino, name: string, value: Buffer, flags: number): Result<null> {
    const n = this.nodes.get(ino);
    if (!n) return err(Errno.ENOENT);
    if (name.length === 0 || (flags & ~(XATTR_CREATE | XATTR_REPLACE)) !== 0 || flags === (XATTR_CREATE | XATTR_REPLACE)) return err(Errno.EINVAL);
    if (name.length > XATTR_NAME_MAX_BYTES) return err(Errno.ERANGE);
    if (value.length > XATTR_VALUE_MAX_BYTES) return err(Errno.ENOSPC);
    if (isPosixAclName(name)) return err(Errno.ENOTSUP);
    const exists = n.xattrs?.has(name) ?? false;
    if (flags === XATTR_CREATE && exists) return err(Errno.EEXIST);
    if (flags === XATTR_REPLACE && !exists) return err(Errno.ENODATA);
    // The adapter's buffer may be the binding's memory: keep a copy.
    (n.xattrs ??= new Map()).set(name, Buffer.from(value));
    this.changed(n, nowTimespec());
    return ok(null);
  }

  removexattr(ino: Ino, name: string): Result<null> {
    const n = this.nodes.get(ino);
    if (!n) return err(Errno.ENOENT);
    if (isPosixAclName(name)) return err(Errno.ENOTSUP);
    if (!n.xattrs?.delete(name)) return err(Errno.ENODATA);
    this.changed(n, nowTimespec());
    return ok(null);
  }

  // ---- files ----------------------------------------------------------------------------

  private newHandle(n: Node, dir: boolean): Result<number> {
    if (this.handles.size >= this.opts.maxHandles) return err(EMFILE);
    const fh = this.nextFh++;
    this.handles.set(fh, { node: n, listing: null, dir });
    n.opens++;
    return ok(fh);
  }

  open(ino: Ino, flags: number): Result<OpenResult> {
    const n = this.nodes.get(ino);
    if (!n) return err(Errno.ENOENT);
    const writable = (flags & O_ACCMODE) === O_WRONLY || (flags & O_ACCMODE) === O_RDWR;
    if (n.blocks && writable && flags & O_TRUNC && n.attr.size > 0) {
      const r = this.setattr(ino, { size: 0 });
      if (!r.ok) return r;
    }
    const fh = this.newHandle(n, false);
    // One kernel in front of this memory: its page cache is never stale.
    return fh.ok ? ok({ fh: fh.value, attr: n.attr, keepCache: true }) : fh;
  }

  create(parent: Ino, name: string, mode: number, _flags: number, caller: Caller): Result<OpenResult> {
    if (this.handles.size >= this.opts.maxHandles) return err(EMFILE);
    const r = this.newNode(parent, name, S_IFREG | (mode & 0o7777), caller, {});
    if (!r.ok) return r;
    const fh = this.newHandle(r.value, false);
    return fh.ok ? ok({ fh: fh.value, attr: r.value.attr, keepCache: true }) : fh;
  }

  private file(fh: number): Node | undefined {
    const h = this.handles.get(fh);
    return h && !h.dir && h.node.blocks ? h.node : undefined;
  }

  read(fh: number, offset: number, length: number): Result<Buffer[]> {
    const n = this.file(fh);
    if (!n) return err(Errno.EBADF);
    const end = Math.min(offset + length, n.attr.size);
    const out: Buffer[] = [];
    for (let pos = offset; pos < end; ) {
      const index = Math.floor(pos / MEMORY_BLOCK_BYTES);
      const within = pos - index * MEMORY_BLOCK_BYTES;
      const take = Math.min(MEMORY_BLOCK_BYTES - within, end - pos);
      const b = n.blocks![index];
      const have = b ? Math.max(0, Math.min(take, b.length - within)) : 0;
      if (have > 0) out.push(b!.subarray(within, within + have));
      if (have < take) out.push(ZEROS.subarray(0, take - have));
      pos += take;
    }
    return ok(out);
  }

  write(fh: number, offset: number, data: Buffer): Result<number> {
    const n = this.file(fh);
    if (!n) return err(Errno.EBADF);
    const end = offset + data.length;
    if (end > FILE_SIZE_MAX_BYTES) return err(Errno.EFBIG);
    const blocks = n.blocks!;
    let growth = 0;
    for (let pos = offset; pos < end; ) {
      const index = Math.floor(pos / MEMORY_BLOCK_BYTES);
      const reach = Math.min(MEMORY_BLOCK_BYTES, end - index * MEMORY_BLOCK_BYTES);
      growth += Math.max(0, bufferBytes(blocks[index], reach) - (blocks[index]?.length ?? 0));
      pos = (index + 1) * MEMORY_BLOCK_BYTES;
    }
    if (this.dataBytes + growth > this.opts.capacityBytes) return err(Errno.ENOSPC);
    for (let pos = offset; pos < end; ) {
      const index = Math.floor(pos / MEMORY_BLOCK_BYTES);
      const within = pos - index * MEMORY_BLOCK_BYTES;
      const take = Math.min(MEMORY_BLOCK_BYTES - within, end - pos);
      let b = blocks[index];
      const want = bufferBytes(b, within + take);
      if (!b || b.length < want) {
        // Bytes of a buffer past the size are always zero (truncate keeps it so), so only a
        // block written whole may start uninitialised.
        const grown = within === 0 && take === MEMORY_BLOCK_BYTES ? Buffer.allocUnsafeSlow(want) : Buffer.alloc(want);
        if (b) b.copy(grown);
        this.dataBytes += want - (b?.length ?? 0);
        blocks[index] = grown;
        b = grown;
      }
      data.copy(b, within, pos - offset, pos - offset + take);
      pos += take;
    }
    if (end > n.attr.size) n.attr.size = end;
    this.changed(n, nowTimespec(), true);
    return ok(data.length);
  }

  /** Drops data past `size` and zeroes the tail of the block that straddles it. */
  private truncate(n: Node, size: number): void {
    const blocks = n.blocks!;
    const keep = Math.ceil(size / MEMORY_BLOCK_BYTES);
    for (let i = keep; i < blocks.length; i++) this.dataBytes -= blocks[i]?.length ?? 0;
    if (blocks.length > keep) blocks.length = keep;
    const tail = size % MEMORY_BLOCK_BYTES;
    const last = blocks[keep - 1];
    if (tail > 0 && last && last.length > tail) last.fill(0, tail);
    n.attr.size = size;
  }

  flush(fh: number): Result<null> {
    return this.handles.has(fh) ? ok(null) : err(Errno.EBADF);
  }

  fsync(fh: number): Result<null> {
    return this.flush(fh);
  }

  fsyncdir(): Result<null> {
    return { ok: true, value: null };
  }

  release(fh: number): Result<null> {
    const h = this.handles.get(fh);
    if (!h || h.dir) return err(Errno.EBADF);
    this.handles.delete(fh);
    h.node.opens--;
    this.reapIfOrphan(h.node);
    return ok(null);
  }

  fallocate(fh: number, mode: number, offset: number, length: number): Result<null> {
    const n = this.file(fh);
    if (!n) return err(Errno.EBADF);
    // Plain allocation only, as dfs: it extends the size like posix_fallocate.
    if (mode !== 0) return err(Errno.ENOTSUP);
    if (offset + length > n.attr.size) {
      const r = this.setattr(n.attr.ino, { size: offset + length });
      if (!r.ok) return r;
    }
    return ok(null);
  }

  // ---- directories ----------------------------------------------------------------------

  opendir(ino: Ino): Result<number> {
    const n = this.nodes.get(ino);
    if (!n) return err(Errno.ENOENT);
    if (!n.entries) return err(Errno.ENOTDIR);
    return this.newHandle(n, true);
  }

  readdir(fh: number, offset: number, want: number): Result<DirListing> {
    const h = this.handles.get(fh);
    if (!h || !h.dir) return err(Errno.EBADF);
    const d = h.node;
    if (offset === 0 || !h.listing) {
      h.listing = [];
      for (const [name, ino] of d.entries!) h.listing.push({ name, ino, type: this.nodes.get(ino)!.attr.mode & S_IFMT });
    }
    const out: DirListing['entries'] = [];
    for (let pos = offset; pos < offset + want; pos++) {
      if (pos === 0) out.push({ name: '.', ino: d.attr.ino, type: S_IFDIR, attr: null, nextOffset: 1 });
      else if (pos === 1) out.push({ name: '..', ino: d.parent || d.attr.ino, type: S_IFDIR, attr: null, nextOffset: 2 });
      else {
        const e = h.listing[pos - 2];
        if (!e) break;
        // An entry removed since the listing was taken is still listed, without attributes.
        const n = this.nodes.get(e.ino);
        out.push({ name: e.name, ino: e.ino, type: e.type, attr: n ? n.attr : null, nextOffset: pos + 1 });
      }
    }
    return ok({ entries: out });
  }

  releasedir(fh: number): Result<null> {
    const h = this.handles.get(fh);
    if (!h || !h.dir) return err(Errno.EBADF);
    this.handles.delete(fh);
    h.node.opens--;
    this.reapIfOrphan(h.node);
    return ok(null);
  }
}
