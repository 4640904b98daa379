// The interface the FUSE adapter drives: every kernel request it forwards, as a method
// that answers a value or an errno. `Vfs` (vfs.ts) implements it over the cluster;
// `MemoryVfs` (memory-vfs.ts) over plain memory, to measure what the binding and the
// adapter alone allow. Methods may answer synchronously (a plain Result) or later.
import type { Attr, Caller, Ino, Result, SetAttrFields, StatFs } from '../meta/types.js';

/** A Result now, or one later. */
export type Answer<T> = Result<T> | Promise<Result<T>>;

export interface OpenResult {
  fh: number;
  attr: Attr;
  /** The kernel may keep its page cache: nothing changed since this client last opened it. */
  keepCache: boolean;
}

export interface DirListing {
  /** '.' and '..' first, then entries; offsets are positions + 1. */
  entries: Array<{ name: string; ino: Ino; type: number; attr: Attr | null; nextOffset: number }>;
}

export interface FuseVfs {
  lookup(parent: Ino, name: string): Answer<Attr>;
  getattr(ino: Ino): Answer<Attr>;
  setattr(ino: Ino, set: SetAttrFields): Answer<Attr>;
  readlink(ino: Ino): Answer<string>;
  mknod(parent: Ino, name: string, mode: number, rdev: number, caller: Caller): Answer<Attr>;
  mkdir(parent: Ino, name: string, mode: number, caller: Caller): Answer<Attr>;
  symlink(parent: Ino, name: string, target: string, caller: Caller): Answer<Attr>;
  link(ino: Ino, newParent: Ino, newName: string): Answer<Attr>;
  unlink(parent: Ino, name: string): Answer<null>;
  rmdir(parent: Ino, name: string): Answer<null>;
  rename(parent: Ino, name: string, newParent: Ino, newName: string, flags: number): Answer<null>;
  statfs(): Answer<StatFs>;

  getxattr(ino: Ino, name: string): Answer<Buffer>;
  listxattr(ino: Ino): Answer<string[]>;
  setxattr(ino: Ino, name: string, value: Buffer, flags: number): Answer<null>;
  removexattr(ino: Ino, name: string): Answer<null>;

  open(ino: Ino, flags: number): Answer<OpenResult>;
  create(parent: Ino, name: string, mode: number, flags: number, caller: Caller): Answer<OpenResult>;
  read(fh: number, offset: number, length: number): Answer<Buffer[]>;
  write(fh: number, offset: number, data: Buffer): Answer<number>;
  /** close(): errors of buffered writes reach the caller here. */
  flush(fh: number): Answer<null>;
  fsync(fh: number): Answer<null>;
  /** fsync of a directory: every namespace change this client made is committed. */
  fsyncdir(): Answer<null>;
  /** The kernel's last reference to `fh` is gone (also used to undo an open nobody saw). */
  release(fh: number): Answer<null>;
  fallocate(fh: number, mode: number, offset: number, length: number): Answer<null>;

  opendir(ino: Ino): Answer<number>;
  /** Entries from `offset` on; at least `want` of them unless the directory ends first. */
  readdir(fh: number, offset: number, want: number): Answer<DirListing>;
  releasedir(fh: number): Result<null>;
}
