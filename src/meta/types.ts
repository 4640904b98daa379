// The namespace contract: what the meta layer stores, the commands that change it and
// the queries that read it. Everything here is plain data so it can cross gRPC, be
// written to a Raft log and be compared in model tests.
//
// Names are *byte strings*: JS strings whose every char code is one byte (latin1), so
// any Linux file name (not only valid UTF-8) round-trips. Only the FUSE adapter and the
// CLI/console convert to and from display text.

export type Ino = number;
export const ROOT_INO: Ino = 1;

/** A point in time: seconds since the epoch (may be negative, up to 2^53) + nanoseconds. */
export interface Timespec {
  sec: number;
  nsec: number;
}

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;
export const S_ISUID = 0o4000;
export const S_IXGRP = 0o010;
export const S_ISGID = 0o2000;
/** st_size of every directory. */
export const DIR_SIZE_BYTES = 4096;
export const S_ISVTX = 0o1000;

/** How a file's data is protected. Inherited from the parent directory at create. */
export type Layout = { kind: 'replicas'; replicas: number } | { kind: 'ec'; k: number; m: number };
export const DEFAULT_LAYOUT: Layout = { kind: 'replicas', replicas: 3 };

export interface Attr {
  ino: Ino;
  /** File type bits and permission bits, as in st_mode. */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes; for a symlink the target length; for a directory 4096. */
  size: number;
  nlink: number;
  rdev: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  /** Bumped by every change to this inode (attrs, data, entries); clients compare it. */
  version: number;
  /** Chunk size in bytes this file was created with (0 for non-regular files). */
  chunkSizeBytes: number;
  layout: Layout;
}

/** One chunk of a file: an immutable object on the chunk servers. */
export interface ChunkRef {
  /** Chunk number within the file: bytes [index*chunkSize, (index+1)*chunkSize). */
  index: number;
  /** Object id, unique for the cluster's lifetime; a new write gets a new id. */
  chunkId: number;
  /** Bytes of the object that belong to the file (<= chunk size); past it reads zeros. */
  sizeBytes: number;
  /** Node ids holding replicas (or shards, in shard order, for EC). */
  placement: string[];
  /**
   * Small-file data kept in the namespace itself (chunkId 0, no placement): a file whose
   * whole content fits in INLINE_MAX_BYTES costs one namespace write on close instead of
   * a chunk object plus a commit. It is replicated with the namespace.
   */
  inline?: Buffer;
  /**
   * Erasure-coded chunk: `placement` lists the k data then m parity shard holders ('' for
   * a shard that is missing), each shard `shardBytes` long (fixed when the chunk was
   * encoded: a later truncation shortens sizeBytes, not the shards). Absent: replicas.
   */
  ec?: ChunkEc;
}

export interface ChunkEc {
  k: number;
  m: number;
  shardBytes: number;
}

/** Largest file whose data is kept inline in the namespace. */
export const INLINE_MAX_BYTES = 64 * 1024;

export interface DirEntry {
  name: string;
  ino: Ino;
  /** File type bits (mode & S_IFMT). */
  type: number;
}

export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;

/** Linux errno values the namespace can return. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  ENOTSUP: 95,
  ETIMEDOUT: 110,
  /** A batch's command needs a lease its session no longer holds (decision 0012). */
  ESTALE: 116,
} as const;
export type ErrnoName = keyof typeof Errno;

export const NAME_MAX_BYTES = 255;
export const SYMLINK_MAX_BYTES = 4095;
export const XATTR_NAME_MAX_BYTES = 255;
export const XATTR_VALUE_MAX_BYTES = 65536;
/**
 * listxattr's answer (every name + NUL) must fit the kernel's XATTR_LIST_MAX, and an inode
 * holds at most XATTR_COUNT_MAX names: a set that would pass either is refused (E2BIG), so
 * every inode's xattrs can always be listed (issue 16).
 */
export const XATTR_LIST_MAX_BYTES = 65536;
export const XATTR_COUNT_MAX = 4096;

/**
 * A value or an errno. A namespace command's result may also carry `dirs`: the
 * directories it changed (entries added or removed, attributes set), as they are right
 * after it, so a client can answer the kernel's next getattr of them without asking.
 * `noAnswer`: the call got no answer from the server it went to (the connection failed or
 * the deadline passed), so the command may or may not have applied. An errno without it is
 * the server's answer (e.g. EIO when the leader refuses writes): retrying elsewhere will not
 * change it.
 */
export type Result<T> = { ok: true; value: T; dirs?: Attr[] } | { ok: false; errno: number; noAnswer?: true };

// ---- commands: every namespace mutation, applied deterministically --------------------

/** Who asks, for ownership of new inodes and setgid inheritance. */
export interface Caller {
  uid: number;
  gid: number;
}

/** Which attributes a setattr changes; absent fields are left alone. */
export interface SetAttrFields {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** A time, or 'now' (the command's `now`). */
  atime?: Timespec | 'now';
  mtime?: Timespec | 'now';
}

export type Command =
  /** `open`, when given, also records an open handle (create + open in one command). */
  | {
      op: 'mknod';
      parent: Ino;
      name: string;
      mode: number;
      rdev: number;
      caller: Caller;
      now: Timespec;
      open?: { session: string; handle: number };
      delegated?: DelegatedIno;
    }
  /** `lease`: the session that gets the new (empty) directory's exclusive lease (decision 0012). */
  | { op: 'mkdir'; parent: Ino; name: string; mode: number; caller: Caller; now: Timespec; delegated?: DelegatedIno; lease?: string }
  | { op: 'symlink'; parent: Ino; name: string; target: string; caller: Caller; now: Timespec; delegated?: DelegatedIno }
  | { op: 'link'; ino: Ino; newParent: Ino; newName: string; now: Timespec }
  | { op: 'unlink'; parent: Ino; name: string; now: Timespec }
  | { op: 'rmdir'; parent: Ino; name: string; now: Timespec }
  | { op: 'rename'; parent: Ino; name: string; newParent: Ino; newName: string; flags: number; now: Timespec }
  | { op: 'setattr'; ino: Ino; set: SetAttrFields; now: Timespec }
  | { op: 'setxattr'; ino: Ino; name: string; value: Buffer; flags: number; now: Timespec }
  | { op: 'removexattr'; ino: Ino; name: string; now: Timespec }
  | { op: 'setlayout'; ino: Ino; layout: Layout; now: Timespec }
  /** Record an open handle so unlink keeps the inode until the last release. */
  | { op: 'open'; ino: Ino; session: string; handle: number }
  | { op: 'release'; ino: Ino; session: string; handle: number }
  /**
   * Record opens and releases of one session's handles, in order, as one command (the
   * client batches them: one Raft entry for many handles). An item that does not apply
   * (the inode is gone, the handle unknown) is skipped; the others still apply.
   */
  | { op: 'handles'; session: string; items: HandleOp[] }
  /** Drop every open handle of a session (a client that went away). */
  | { op: 'closeSession'; session: string }
  /** Reserve `count` chunk ids; the result is the first of a contiguous range. */
  | { op: 'allocChunkIds'; count: number }
  /**
   * Reserve `count` inode numbers for a session's own creates (`delegated` in mknod, mkdir,
   * symlink: decision 0012, a create needs no round trip); the result is the first of the
   * range. A session keeps its last INO_RANGES_MAX ranges; closeSession drops them.
   */
  | { op: 'allocInodes'; session: string; count: number }
  /**
   * Install new chunk refs for a file after their data is durable, and grow the size to
   * at least `sizeBytes`. Replaced objects go to the garbage list.
   */
  | { op: 'commitWrite'; ino: Ino; chunks: ChunkRef[]; sizeBytes: number; mtime: Timespec; now: Timespec }
  /** Chunk objects whose deletion on every holder is done: forget them. */
  | { op: 'gcDone'; chunkIds: number[] }
  /** Record (or update) a chunk server in the node table; the meta leader proposes it on a node's first heartbeat. Keeps the node's state. */
  | { op: 'registerNode'; node: Omit<NodeRecord, 'state'> }
  /** Change a chunk server's state (the leader: dead/active; an operator: draining). */
  | { op: 'setNodeState'; nodeId: string; state: NodeState }
  /**
   * A chunk's holders changed (repair, rebalance, drain): the new copies are durable.
   * When the chunk is no longer referenced (rewritten or deleted meanwhile), the listed
   * holders' copies go to the garbage list instead. Bad-copy marks of holders that are
   * no longer listed are cleared.
   */
  | { op: 'setPlacement'; chunkId: number; placement: string[] }
  /** A copy found corrupt or missing (scrub, fsck, a read): repair replaces it. */
  | { op: 'reportBadCopy'; chunkId: number; nodeId: string }
  /**
   * A client's namespace commands, applied in order as one command (one Raft entry): the
   * first one that fails stops the batch — those before it stay applied, it and the rest
   * do not (decision 0012: what survives of a client is a prefix of its order). Only the
   * commands in BATCHABLE_OPS; at most BATCH_OPS_MAX.
   */
  | { op: 'batch'; ops: Command[]; session?: string; lastPlain?: boolean }
  /**
   * A lease on a directory for a session (decision 0012). Exclusive: its entries change
   * only through that session's batches (anyone else's create, unlink, rename in it is
   * EAGAIN until the lease is released); shared: a cache the holder keeps until recalled.
   * EAGAIN while another session's lease conflicts (the leader recalls it first).
   */
  | { op: 'leaseGrant'; session: string; ino: Ino; exclusive: boolean }
  | { op: 'leaseRelease'; session: string; ino: Ino }
  /** The leader stopped hearing from the session (decision 0012 §3): every lease it holds goes. */
  | { op: 'sessionExpire'; session: string }
  /**
   * Forget the dedup records of clients the leader has not heard from for a long time
   * (src/daemon/session-janitor.ts). A record goes only if its seq is still the one
   * named: a client that sent a command meanwhile keeps it. At most CLIENTS_EXPIRE_MAX.
   */
  | { op: 'clientsExpire'; clients: Array<{ clientId: string; seq: number }> };

/** Most dedup records one clientsExpire names. */
export const CLIENTS_EXPIRE_MAX = 1024;

/** An inode number a session reserved (allocInodes) and now gives a new inode. */
export interface DelegatedIno {
  session: string;
  ino: Ino;
  /** First number of the allocInodes range `ino` comes from (absent: the range is searched). */
  first?: Ino;
}
export const ALLOC_INODES_MAX = 1 << 16;
export const INO_RANGES_MAX = 4;

/** What a batch may hold: a client's namespace and file commands, never cluster ones or another batch. */
export const BATCHABLE_OPS: ReadonlySet<string> = new Set([
  'mknod', 'mkdir', 'symlink', 'link', 'unlink', 'rmdir', 'rename', 'setattr', 'setxattr', 'removexattr', 'commitWrite', 'handles', 'leaseRelease',
]);
export const BATCH_OPS_MAX = 1024;

/** A chunk server's state as the cluster remembers it; up/suspect liveness is the leader's, in memory. */
export type NodeState = 'active' | 'dead' | 'draining' | 'drained';

/** A chunk server as the namespace remembers it (its liveness and load are not replicated). */
export interface NodeRecord {
  nodeId: string;
  /** gRPC host:port of its chunk (and meta) service. */
  address: string;
  /** Failure-domain labels; '' when not given. Placement spreads copies over distinct zones, then racks. */
  zone: string;
  rack: string;
  state: NodeState;
}

export type CommandOp = Command['op'];

/** The value each command returns on success. */
/** One item of a `handles` command. */
export interface HandleOp {
  open: boolean;
  ino: Ino;
  handle: number;
}

/** Most items in one `handles` command. */
export const HANDLE_OPS_MAX = 1024;

export interface CommandValues {
  mknod: Attr;
  mkdir: Attr;
  symlink: Attr;
  link: Attr;
  unlink: null;
  rmdir: null;
  rename: null;
  setattr: Attr;
  setxattr: null;
  removexattr: null;
  setlayout: Attr;
  open: null;
  release: null;
  /** How many items were skipped (they did not apply). */
  handles: { skipped: number };
  closeSession: null;
  allocChunkIds: { first: number };
  allocInodes: { first: number; chunkSizeBytes: number };
  commitWrite: Attr;
  gcDone: null;
  registerNode: null;
  setNodeState: null;
  setPlacement: null;
  reportBadCopy: null;
  /** How many commands applied (a prefix), and the errno of the one that stopped the batch (0: none did). */
  batch: { applied: number; errno: number; last?: Attr };
  leaseGrant: null;
  leaseRelease: null;
  sessionExpire: null;
  clientsExpire: null;
}

/** A command with the client identity used to apply retries once (see Raft issue). */
export interface Envelope {
  clientId: string;
  seq: number;
  command: Command;
}

/** A garbage chunk object: unreferenced, to be deleted from its holders. */
export interface GarbageChunk {
  chunkId: number;
  placement: string[];
}

export interface StatFs {
  totalBytes: number;
  freeBytes: number;
  availBytes: number;
  files: number;
  /** Inodes still available to create (a soft bound). */
  freeFiles: number;
  blockSizeBytes: number;
  nameMaxBytes: number;
}
