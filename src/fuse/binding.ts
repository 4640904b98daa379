// Typed face of the native dfs_fuse binding (src/fuse/native/dfs_fuse.c).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const Op = {
  LOOKUP: 1,
  GETATTR: 2,
  SETATTR: 3,
  READLINK: 4,
  MKNOD: 5,
  MKDIR: 6,
  UNLINK: 7,
  RMDIR: 8,
  SYMLINK: 9,
  RENAME: 10,
  LINK: 11,
  OPEN: 12,
  READ: 13,
  WRITE: 14,
  FLUSH: 15,
  RELEASE: 16,
  FSYNC: 17,
  OPENDIR: 18,
  READDIR: 19,
  RELEASEDIR: 20,
  FSYNCDIR: 21,
  STATFS: 22,
  SETXATTR: 23,
  GETXATTR: 24,
  LISTXATTR: 25,
  REMOVEXATTR: 26,
  CREATE: 27,
  FALLOCATE: 28,
  READDIRPLUS: 29,
  FORGET: 30,
  INIT: 31,
  EXIT: 32,
  /** The kernel interrupted request Arg.REQ (its caller got a signal); not a request itself. */
  INTERRUPT: 33,
} as const;

/** Index of each numeric argument in the shared Float64Array. */
export const Arg = {
  REQ: 0,
  INO: 1,
  INO2: 2,
  SIZE: 3,
  OFF: 4,
  FH: 5,
  FLAGS: 6,
  MODE: 7,
  RDEV: 8,
  UID: 9,
  GID: 10,
  PID: 11,
  UMASK: 12,
  TOSET: 13,
  S_MODE: 14,
  S_UID: 15,
  S_GID: 16,
  S_SIZE: 17,
  S_ATIME_S: 18,
  S_ATIME_NS: 19,
  S_MTIME_S: 20,
  S_MTIME_NS: 21,
  /** 1 when the kernel had interrupted the request before it reached JavaScript. */
  INTR: 22,
} as const;

/** FUSE_SET_ATTR_* bits of a setattr request. */
export const SetAttr = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  CTIME: 1 << 10,
} as const;

/** Bits of the open-reply flags argument. */
export const OpenFlag = { DIRECT_IO: 1, KEEP_CACHE: 2, NONSEEKABLE: 4 } as const;

export const ATTR_FIELDS = 15;

export type Req = number;
export type Session = object & { readonly __session: unique symbol };
export type Handler = (op: number, name: string | null, name2: string | null, data: Buffer | null) => void;

export interface NativeFuse {
  ARG_COUNT: number;
  mount(
    mountpoint: string,
    options: string,
    maxWriteBytes: number,
    maxReadaheadBytes: number,
    writebackCache: boolean,
    args: Float64Array,
    handler: Handler,
  ): Session;
  unmount(session: Session): void;
  destroy(session: Session): void;
  replyErr(req: Req, errno: number): number;
  replyEntry(req: Req, attr: Float64Array, entryTimeoutS: number, attrTimeoutS: number): number;
  replyNegative(req: Req, entryTimeoutS: number): number;
  replyCreate(
    req: Req,
    attr: Float64Array,
    entryTimeoutS: number,
    attrTimeoutS: number,
    fh: number,
    openFlags: number,
  ): number;
  replyAttr(req: Req, attr: Float64Array, attrTimeoutS: number): number;
  replyReadlink(req: Req, target: string): number;
  replyOpen(req: Req, fh: number, openFlags: number): number;
  replyWrite(req: Req, count: number): number;
  replyBuf(req: Req, data: Buffer | null): number;
  replyBufs(req: Req, data: Buffer[]): number;
  replyXattr(req: Req, size: number): number;
  replyStatfs(req: Req, stat: Float64Array): number;
  replyDir(req: Req, sizeBytes: number, plus: boolean, names: string[], nums: Float64Array): number;
  replyNone(req: Req): void;
}

function findAddon(): string {
  // The addon is built in the source tree (npm install runs node-gyp there); compiled
  // JS runs from dist/, so walk up until the source folder is found.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'src', 'fuse', 'native', 'build', 'Release', 'dfs_fuse.node');
    if (existsSync(candidate)) return candidate;
    const sibling = join(dir, 'native', 'build', 'Release', 'dfs_fuse.node');
    if (existsSync(sibling)) return sibling;
    dir = dirname(dir);
  }
  throw new Error('dfs_fuse.node not found: run `npm install` (it builds src/fuse/native with node-gyp)');
}

let cached: NativeFuse | undefined;

export function loadNative(): NativeFuse {
  if (!cached) {
    const require = createRequire(import.meta.url);
    cached = require(findAddon()) as NativeFuse;
  }
  return cached;
}
