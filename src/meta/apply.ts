// The namespace state machine: apply(command) reads the store through a Tx and writes
// its changes into it. Deterministic by construction: it reads only the command, the
// store and the config (never the clock, randomness or the environment), so replaying
// the same commands over the same store gives the same bytes on every replica.
// Every validation failure is an errno value; a throw means a bug or a corrupt store.
import {
  decodeChunk,
  decodeClient,
  decodeDentry,
  decodeInode,
  decodeU64,
  encodeChunk,
  encodeClient,
  encodeDentry,
  encodeGarbage,
  encodeInode,
  encodeU64,
  encodeXattr,
  decodeGarbage,
  type ChunkValue,
  type InodeRecord,
} from './codec.js';
import * as K from './keys.js';
import type { Tx } from './tx.js';
import {
  ALLOC_INODES_MAX,
  DIR_SIZE_BYTES,
  S_IXGRP,
  BATCHABLE_OPS,
  BATCH_OPS_MAX,
  CLIENTS_EXPIRE_MAX,
  INO_RANGES_MAX,
  type DelegatedIno,
  DEFAULT_LAYOUT,
  HANDLE_OPS_MAX,
  Errno,
  INLINE_MAX_BYTES,
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
  XATTR_LIST_MAX_BYTES,
  XATTR_COUNT_MAX,
  type Attr,
  type ChunkRef,
  type Command,
  type CommandValues,
  type Envelope,
  type ErrnoName,
  type Ino,
  type Layout,
  type NodeRecord,
  type NodeState,
  type Result,
  type SetAttrFields,
  type Timespec,
} from './types.js';

export const DEFAULT_CHUNK_SIZE_BYTES = 4 * 1024 * 1024;
export const COMMIT_CHUNKS_MAX = 1024;
export const ALLOC_CHUNK_IDS_MAX = 1 << 20;
export const GC_DONE_CHUNKS_MAX = 4096;
/** Largest file size; keeps every byte offset an exact JS integer. */
export const FILE_SIZE_MAX_BYTES = 2 ** 50;
/** Bound on the walk up the tree that checks rename does not move a dir into itself. */
export const DIR_DEPTH_MAX = 4096;

export interface ApplyConfig {
  /** Chunk size given to new regular files. */
  chunkSizeBytes: number;
}

type Res<T> = Result<T>;
const ok = <T>(value: T): Res<T> => ({ ok: true, value });
const fail = (name: ErrnoName): { ok: false; errno: number } => ({ ok: false, errno: Errno[name] });

const isDir = (mode: number): boolean => (mode & S_IFMT) === S_IFDIR;
const isReg = (mode: number): boolean => (mode & S_IFMT) === S_IFREG;

function isByteString(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}

/** Errno for an entry name that cannot exist, or undefined if the name is fine. */
export function nameError(name: string): ErrnoName | undefined {
  if (typeof name !== 'string' || name.length === 0 || !isByteString(name)) return 'EINVAL';
  if (name.length > NAME_MAX_BYTES) return 'ENAMETOOLONG';
  if (name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return 'EINVAL';
  return undefined;
}

function validTime(t: Timespec): boolean {
  return (
    t !== null &&
    typeof t === 'object' &&
    Number.isSafeInteger(t.sec) &&
    Number.isInteger(t.nsec) &&
    t.nsec >= 0 &&
    t.nsec < 1e9
  );
}

const isU32 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
const isU53 = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;

export function layoutValid(l: Layout): boolean {
  if (l === null || typeof l !== 'object') return false;
  if (l.kind === 'replicas') return Number.isInteger(l.replicas) && l.replicas >= 1 && l.replicas <= 16;
  // The erasure code's limits (src/chunks/ec.ts: k ≤ 24 data, 1 ≤ m ≤ 6 parity shards).
  if (l.kind === 'ec') return Number.isInteger(l.k) && l.k >= 1 && l.k <= 24 && Number.isInteger(l.m) && l.m >= 1 && l.m <= 6;
  return false;
}

/**
 * The changes of one command: inodes read through here are cached so that the same
 * inode seen twice (parent == newParent) is one object, and each changed inode is
 * written once with its version bumped once.
 */
class Ctx {
  private readonly inodes = new Map<Ino, InodeRecord | null>();
  private readonly dirty = new Set<Ino>();
  /** Directories written by this command, as written (the result's `dirs`). */
  readonly changedDirs = new Map<Ino, Attr>();

  constructor(
    readonly tx: Tx,
    readonly config: ApplyConfig,
    /** The session whose batch this command is part of (its leases let it change entries). */
    readonly leaseSession: string | null = null,
  ) {}

  async inode(ino: Ino): Promise<InodeRecord | undefined> {
    if (!isU53(ino) || ino === 0) return undefined;
    const cached = this.inodes.get(ino);
    if (cached !== undefined) return cached ?? undefined;
    const raw = await this.tx.get(K.inodeKey(ino));
    const rec = raw === undefined ? null : decodeInode(ino, raw);
    this.inodes.set(ino, rec);
    return rec ?? undefined;
  }

  async dir(ino: Ino): Promise<InodeRecord | ErrnoName> {
    const rec = await this.inode(ino);
    if (rec === undefined) return 'ENOENT';
    if (!isDir(rec.attr.mode)) return 'ENOTDIR';
    // An rmdir'ed directory still open somewhere: no new entries.
    if (rec.attr.nlink === 0) return 'ENOENT';
    return rec;
  }

  touch(rec: InodeRecord): void {
    this.dirty.add(rec.attr.ino);
  }

  create(rec: InodeRecord): void {
    this.inodes.set(rec.attr.ino, rec);
    this.dirty.add(rec.attr.ino);
  }

  forget(ino: Ino): void {
    const rec = this.inodes.get(ino);
    // A removed directory's last word: no links (what fstat of it, still open, shows).
    if (rec && isDir(rec.attr.mode)) this.changedDirs.set(ino, { ...rec.attr, nlink: 0, version: rec.attr.version + 1 });
    this.inodes.set(ino, null);
    this.dirty.add(ino);
  }

  async counter(key: Buffer, initial: number): Promise<number> {
    const raw = await this.tx.get(key);
    return raw === undefined ? initial : decodeU64(raw);
  }

  setCounter(key: Buffer, n: number): void {
    this.tx.put(key, encodeU64(n));
  }

  async entry(parent: Ino, name: string): Promise<{ ino: Ino; type: number } | undefined> {
    const raw = await this.tx.get(K.dentryKey(parent, name));
    return raw === undefined ? undefined : decodeDentry(raw);
  }

  setEntry(parent: Ino, name: string, ino: Ino, mode: number): void {
    this.tx.put(K.dentryKey(parent, name), encodeDentry({ ino, type: mode & S_IFMT }));
  }

  delEntry(parent: Ino, name: string): void {
    this.tx.del(K.dentryKey(parent, name));
  }

  /** Writes every changed inode, each with its version bumped once. */
  flush(): void {
    for (const ino of this.dirty) {
      const rec = this.inodes.get(ino);
      if (rec === undefined) throw new Error(`dirty inode ${ino} not loaded`);
      if (rec === null) {
        this.tx.del(K.inodeKey(ino));
      } else {
        rec.attr.version += 1;
        this.tx.put(K.inodeKey(ino), encodeInode(rec));
        if (isDir(rec.attr.mode)) this.changedDirs.set(ino, { ...rec.attr });
      }
    }
    this.dirty.clear();
  }
}

function touchEntryChange(ctx: Ctx, dir: InodeRecord, now: Timespec): void {
  dir.attr.mtime = now;
  dir.attr.ctime = now;
  ctx.touch(dir);
}

/** A new inode under `at.parent` (numbered `at.ino` when delegated), for the creating command `c`. */
async function newInode(
  ctx: Ctx,
  at: { parent: InodeRecord; ino: Ino | null },
  mode: number,
  c: { caller: { uid: number; gid: number }; now: Timespec },
  extra: { rdev?: number; size?: number; nlink: number; target?: string },
): Promise<InodeRecord> {
  const { parent } = at;
  const { caller, now } = c;
  let ino = at.ino;
  if (ino === null) {
    ino = await ctx.counter(K.nextInoKey(), ROOT_INO + 1);
    ctx.setCounter(K.nextInoKey(), ino + 1);
  }
  const count = await ctx.counter(K.inodeCountKey(), 0);
  ctx.setCounter(K.inodeCountKey(), count + 1);
  const setgidParent = (parent.attr.mode & S_ISGID) !== 0;
  const gid = setgidParent ? parent.attr.gid : caller.gid;
  if (setgidParent && isDir(mode)) mode |= S_ISGID;
  const rec: InodeRecord = {
    attr: {
      ino,
      mode,
      uid: caller.uid,
      gid,
      size: extra.size ?? 0,
      nlink: extra.nlink,
      rdev: extra.rdev ?? 0,
      atime: now,
      mtime: now,
      ctime: now,
      // flush() bumps it to 1.
      version: 0,
      chunkSizeBytes: isReg(mode) ? ctx.config.chunkSizeBytes : 0,
      layout: { ...parent.attr.layout },
    },
    parent: isDir(mode) ? parent.attr.ino : 0,
    target: extra.target ?? '',
  };
  ctx.create(rec);
  return rec;
}

/** Sends a replaced or dropped chunk object to GC; inline refs own no object. */
function toGarbage(tx: Tx, chunk: ChunkValue): void {
  if (chunk.chunkId === 0) return;
  tx.put(K.garbageKey(chunk.chunkId), encodeGarbage(chunk.placement));
  tx.del(K.refKey(chunk.chunkId));
}

function encodeRef(ino: Ino, index: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(Math.floor(ino / 0x1_0000_0000), 0);
  b.writeUInt32BE(ino >>> 0, 4);
  b.writeUInt32BE(Math.floor(index / 0x1_0000_0000), 8);
  b.writeUInt32BE(index >>> 0, 12);
  return b;
}

/** (ino, index) of the file chunk that references an object (the r/ index). */
export function decodeRef(b: Buffer): { ino: Ino; index: number } {
  return { ino: K.readU64(b, 0), index: K.readU64(b, 8) };
}

/** Removes an inode with no names and no open handles, and everything it owns. */
async function destroy(ctx: Ctx, rec: InodeRecord): Promise<void> {
  const ino = rec.attr.ino;
  const tx = ctx.tx;
  if (isDir(rec.attr.mode)) await dropLeases(ctx, ino);
  // Only regular files have chunk refs (commitWrite refuses anything else): no scan for
  // the others, which is one RocksDB iterator less per rmdir.
  if (isReg(rec.attr.mode)) {
    for await (const [key, value] of tx.scanPrefix(K.chunkPrefix(ino))) {
      const chunk = decodeChunk(value);
      toGarbage(tx, chunk);
      tx.del(key);
    }
  }
  for await (const [key] of tx.scanPrefix(K.xattrPrefix(ino))) tx.del(key);
  tx.del(K.orphanKey(ino));
  const count = await ctx.counter(K.inodeCountKey(), 1);
  ctx.setCounter(K.inodeCountKey(), count - 1);
  ctx.forget(ino);
}

/** One name of `rec` is gone: drop a link, and the inode with its last one. */
async function dropLink(ctx: Ctx, rec: InodeRecord, now: Timespec): Promise<void> {
  rec.attr.nlink = isDir(rec.attr.mode) ? 0 : rec.attr.nlink - 1;
  rec.attr.ctime = now;
  ctx.touch(rec);
  if (rec.attr.nlink > 0) return;
  if (await ctx.tx.hasPrefix(K.openPrefix(rec.attr.ino))) {
    ctx.tx.put(K.orphanKey(rec.attr.ino), Buffer.alloc(0));
  } else {
    await destroy(ctx, rec);
  }
}

async function isEmptyDir(ctx: Ctx, ino: Ino): Promise<boolean> {
  return !(await ctx.tx.hasPrefix(K.dentryPrefix(ino)));
}

/** True if `ino` is `ancestor` or below it. */
async function isWithin(ctx: Ctx, ino: Ino, ancestor: Ino): Promise<boolean> {
  let cur = ino;
  for (let depth = 0; depth < DIR_DEPTH_MAX; depth++) {
    if (cur === ancestor) return true;
    if (cur === ROOT_INO) return false;
    const rec = await ctx.inode(cur);
    if (rec === undefined) throw new Error(`directory ${cur} has a missing ancestor`);
    cur = rec.parent;
  }
  throw new Error(`directory tree deeper than ${DIR_DEPTH_MAX} at ${ino}`);
}

// ---- commands ----------------------------------------------------------------------

// ---- leases (decision 0012) ------------------------------------------------------------

/**
 * Whether this command may change `dir`'s entries: a directory another session holds
 * exclusively is EAGAIN (its holder is recalled first); a command of a session's batch
 * needs that session's exclusive lease (ESTALE once it is gone: the batch stops there).
 */
async function entryLeaseError(ctx: Ctx, dir: Ino): Promise<ErrnoName | undefined> {
  const holder = await ctx.tx.get(K.leaseKey(dir));
  const session = ctx.leaseSession;
  if (holder === undefined) return session === null ? undefined : 'ESTALE';
  if (session !== null && holder.toString('utf8') === session) return undefined;
  return session === null ? 'EAGAIN' : 'ESTALE';
}

/** Every lease on a directory that is going away. */
async function dropLeases(ctx: Ctx, dir: Ino): Promise<void> {
  const holder = await ctx.tx.get(K.leaseKey(dir));
  if (holder !== undefined) {
    ctx.tx.del(K.leaseKey(dir));
    ctx.tx.del(K.sessionLeaseKey(holder.toString('utf8'), dir));
  }
  for await (const [key] of ctx.tx.scanPrefix(K.sharedLeasePrefix(dir))) {
    ctx.tx.del(key);
    ctx.tx.del(K.sessionLeaseKey(K.sharedLeaseSession(key), dir));
  }
}

function putLease(ctx: Ctx, session: string, dir: Ino, exclusive: boolean): void {
  if (exclusive) ctx.tx.put(K.leaseKey(dir), Buffer.from(session, 'utf8'));
  else ctx.tx.put(K.sharedLeaseKey(dir, session), Buffer.alloc(0));
  ctx.tx.put(K.sessionLeaseKey(session, dir), Buffer.from(exclusive ? 'x' : 's', 'latin1'));
}

async function leaseRelease(ctx: Ctx, c: { session: string; ino: Ino }): Promise<Res<null>> {
  if (!validSession(c.session) || !isU53(c.ino)) return fail('EINVAL');
  // In a session's batch, only that session's own leases.
  if (ctx.leaseSession !== null && c.session !== ctx.leaseSession) return fail('EINVAL');
  const mode = await ctx.tx.get(K.sessionLeaseKey(c.session, c.ino));
  if (mode === undefined) return ok(null);
  ctx.tx.del(K.sessionLeaseKey(c.session, c.ino));
  if (mode.toString('latin1') === 'x') ctx.tx.del(K.leaseKey(c.ino));
  else ctx.tx.del(K.sharedLeaseKey(c.ino, c.session));
  return ok(null);
}

async function leaseGrant(ctx: Ctx, c: Extract<Command, { op: 'leaseGrant' }>): Promise<Res<null>> {
  if (!validSession(c.session) || typeof c.exclusive !== 'boolean') return fail('EINVAL');
  const dir = await ctx.dir(c.ino);
  if (typeof dir === 'string') return fail(dir);
  const holder = await ctx.tx.get(K.leaseKey(c.ino));
  if (holder !== undefined && holder.toString('utf8') !== c.session) return fail('EAGAIN');
  if (c.exclusive) {
    for await (const [key] of ctx.tx.scanPrefix(K.sharedLeasePrefix(c.ino))) {
      if (K.sharedLeaseSession(key) !== c.session) return fail('EAGAIN');
    }
  }
  // A session holds one lease per directory: the new one replaces its old one.
  await leaseRelease(ctx, c);
  putLease(ctx, c.session, c.ino, c.exclusive);
  return ok(null);
}

async function sessionExpire(ctx: Ctx, c: Extract<Command, { op: 'sessionExpire' }>): Promise<Res<null>> {
  if (!validSession(c.session)) return fail('EINVAL');
  await closeSessionLeases(ctx, c.session);
  return ok(null);
}

async function clientsExpire(ctx: Ctx, c: Extract<Command, { op: 'clientsExpire' }>): Promise<Res<null>> {
  if (!Array.isArray(c.clients) || c.clients.length > CLIENTS_EXPIRE_MAX) return fail('EINVAL');
  for (const k of c.clients) {
    if (typeof k?.clientId !== 'string' || k.clientId.length === 0 || Buffer.byteLength(k.clientId, 'utf8') > K.CLIENT_ID_MAX_BYTES || !isU53(k.seq)) return fail('EINVAL');
  }
  for (const k of c.clients) {
    const key = K.clientKey(k.clientId);
    const raw = await ctx.tx.get(key);
    // A client that sent a command since the leader looked keeps its record.
    if (raw !== undefined && decodeClient(raw).seq === k.seq) ctx.tx.del(key);
  }
  return ok(null);
}

async function closeSessionLeases(ctx: Ctx, session: string): Promise<void> {
  const prefix = K.sessionLeasePrefix(session);
  for await (const [key] of ctx.tx.scanPrefix(prefix)) {
    await leaseRelease(ctx, { session, ino: K.readU64(key, prefix.length) });
  }
}

type Creating = { parent: Ino; name: string; caller: { uid: number; gid: number }; now: Timespec; delegated?: DelegatedIno };

async function createCheck(ctx: Ctx, c: Creating): Promise<{ parent: InodeRecord; ino: Ino | null } | ErrnoName> {
  if (!validTime(c.now) || !isU32(c.caller?.uid) || !isU32(c.caller?.gid)) return 'EINVAL';
  const parent = await ctx.dir(c.parent);
  if (typeof parent === 'string') return parent;
  const bad = nameError(c.name);
  if (bad !== undefined) return bad;
  if ((await ctx.entry(c.parent, c.name)) !== undefined) return 'EEXIST';
  const leased = await entryLeaseError(ctx, c.parent);
  if (leased !== undefined) return leased;
  if (c.delegated === undefined) return { parent, ino: null };
  return (await delegatedIno(ctx, c.delegated)) ? { parent, ino: c.delegated.ino } : 'EINVAL';
}

/** True when `d.ino` lies in one of the session's delegated ranges and no inode has it yet. */
async function delegatedIno(ctx: Ctx, d: DelegatedIno): Promise<boolean> {
  if (!validSession(d?.session) || !isU53(d.ino) || d.ino <= ROOT_INO) return false;
  if ((await ctx.tx.get(K.inodeKey(d.ino))) !== undefined) return false;
  if (d.first !== undefined) {
    if (!isU53(d.first) || d.ino < d.first) return false;
    const end = await ctx.tx.get(K.inoRangeKey(d.session, d.first));
    return end !== undefined && d.ino < decodeU64(end);
  }
  for await (const [key, value] of ctx.tx.scanPrefix(K.inoRangePrefix(d.session))) {
    const first = K.readU64(key, key.length - 8);
    if (d.ino >= first && d.ino < decodeU64(value)) return true;
  }
  return false;
}

async function allocInodes(ctx: Ctx, c: Extract<Command, { op: 'allocInodes' }>): Promise<Res<CommandValues['allocInodes']>> {
  if (!validSession(c.session) || !Number.isInteger(c.count) || c.count < 1 || c.count > ALLOC_INODES_MAX) return fail('EINVAL');
  const first = await ctx.counter(K.nextInoKey(), ROOT_INO + 1);
  ctx.setCounter(K.nextInoKey(), first + c.count);
  const ranges: Buffer[] = [];
  for await (const [key] of ctx.tx.scanPrefix(K.inoRangePrefix(c.session))) ranges.push(key);
  // Oldest first (keys sort by first): keep the newest INO_RANGES_MAX - 1 and the new one.
  for (const key of ranges.slice(0, Math.max(0, ranges.length - (INO_RANGES_MAX - 1)))) ctx.tx.del(key);
  ctx.tx.put(K.inoRangeKey(c.session, first), encodeU64(first + c.count));
  return ok({ first, chunkSizeBytes: ctx.config.chunkSizeBytes });
}

async function mknod(ctx: Ctx, c: Extract<Command, { op: 'mknod' }>): Promise<Res<Attr>> {
  if (!isU32(c.mode) || !isU32(c.rdev)) return fail('EINVAL');
  if (c.open !== undefined && (!validSession(c.open.session) || !isU53(c.open.handle))) return fail('EINVAL');
  let type = c.mode & S_IFMT;
  if (type === 0) type = S_IFREG;
  if (![S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK].includes(type)) return fail('EINVAL');
  const checked = await createCheck(ctx, c);
  if (typeof checked === 'string') return fail(checked);
  const parent = checked.parent;
  const rec = await newInode(ctx, checked, type | (c.mode & 0o7777), c, { rdev: c.rdev, nlink: 1 });
  ctx.setEntry(c.parent, c.name, rec.attr.ino, rec.attr.mode);
  if (c.open) {
    ctx.tx.put(K.openKey(rec.attr.ino, c.open.session, c.open.handle), Buffer.alloc(0));
    ctx.tx.put(K.sessionKey(c.open.session, rec.attr.ino, c.open.handle), Buffer.alloc(0));
  }
  touchEntryChange(ctx, parent, c.now);
  ctx.flush();
  return ok(rec.attr);
}

async function mkdir(ctx: Ctx, c: Extract<Command, { op: 'mkdir' }>): Promise<Res<Attr>> {
  if (!isU32(c.mode)) return fail('EINVAL');
  if (c.lease !== undefined && !validSession(c.lease)) return fail('EINVAL');
  const checked = await createCheck(ctx, c);
  if (typeof checked === 'string') return fail(checked);
  const parent = checked.parent;
  const rec = await newInode(ctx, checked, S_IFDIR | (c.mode & 0o7777), c, { nlink: 2, size: DIR_SIZE_BYTES });
  ctx.setEntry(c.parent, c.name, rec.attr.ino, rec.attr.mode);
  // Made under the session's lease, or asked for: the new (empty) directory is the session's.
  const leaseTo = ctx.leaseSession ?? c.lease;
  if (leaseTo !== undefined) putLease(ctx, leaseTo, rec.attr.ino, true);
  parent.attr.nlink += 1;
  touchEntryChange(ctx, parent, c.now);
  ctx.flush();
  return ok(rec.attr);
}

async function symlink(ctx: Ctx, c: Extract<Command, { op: 'symlink' }>): Promise<Res<Attr>> {
  if (typeof c.target !== 'string' || !isByteString(c.target) || c.target.includes('\0')) return fail('EINVAL');
  if (c.target.length === 0) return fail('ENOENT');
  if (c.target.length > SYMLINK_MAX_BYTES) return fail('ENAMETOOLONG');
  const checked = await createCheck(ctx, c);
  if (typeof checked === 'string') return fail(checked);
  const parent = checked.parent;
  const rec = await newInode(ctx, checked, S_IFLNK | 0o777, c, { nlink: 1, size: c.target.length, target: c.target });
  ctx.setEntry(c.parent, c.name, rec.attr.ino, rec.attr.mode);
  touchEntryChange(ctx, parent, c.now);
  ctx.flush();
  return ok(rec.attr);
}

async function link(ctx: Ctx, c: Extract<Command, { op: 'link' }>): Promise<Res<Attr>> {
  if (!validTime(c.now)) return fail('EINVAL');
  const rec = await ctx.inode(c.ino);
  if (rec === undefined || rec.attr.nlink === 0) return fail('ENOENT');
  if (isDir(rec.attr.mode)) return fail('EPERM');
  const parent = await ctx.dir(c.newParent);
  if (typeof parent === 'string') return fail(parent);
  const bad = nameError(c.newName);
  if (bad !== undefined) return fail(bad);
  if ((await ctx.entry(c.newParent, c.newName)) !== undefined) return fail('EEXIST');
  const leased = await entryLeaseError(ctx, c.newParent);
  if (leased !== undefined) return fail(leased);
  ctx.setEntry(c.newParent, c.newName, rec.attr.ino, rec.attr.mode);
  rec.attr.nlink += 1;
  rec.attr.ctime = c.now;
  ctx.touch(rec);
  touchEntryChange(ctx, parent, c.now);
  ctx.flush();
  return ok(rec.attr);
}

async function removeEntry(
  ctx: Ctx,
  c: { parent: Ino; name: string; now: Timespec },
  wantDir: boolean,
): Promise<Res<null>> {
  if (!validTime(c.now)) return fail('EINVAL');
  const parent = await ctx.dir(c.parent);
  if (typeof parent === 'string') return fail(parent);
  const bad = nameError(c.name);
  if (bad !== undefined) return fail(bad);
  const entry = await ctx.entry(c.parent, c.name);
  if (entry === undefined) return fail('ENOENT');
  const leased = await entryLeaseError(ctx, c.parent);
  if (leased !== undefined) return fail(leased);
  const rec = await ctx.inode(entry.ino);
  if (rec === undefined) throw new Error(`dentry ${c.parent}/${c.name} points at missing inode ${entry.ino}`);
  if (wantDir) {
    if (!isDir(rec.attr.mode)) return fail('ENOTDIR');
    // Not while another session holds it (the gate recalls it first): its emptiness is
    // what that holder knows. A batch's own async rmdir needs its lease.
    const held = await entryLeaseError(ctx, rec.attr.ino);
    if (held !== undefined) return fail(held);
    if (!(await isEmptyDir(ctx, rec.attr.ino))) return fail('ENOTEMPTY');
    parent.attr.nlink -= 1;
  } else if (isDir(rec.attr.mode)) {
    return fail('EISDIR');
  }
  ctx.delEntry(c.parent, c.name);
  touchEntryChange(ctx, parent, c.now);
  await dropLink(ctx, rec, c.now);
  ctx.flush();
  return ok(null);
}

async function rename(ctx: Ctx, c: Extract<Command, { op: 'rename' }>): Promise<Res<null>> {
  if (!validTime(c.now)) return fail('EINVAL');
  if (!Number.isInteger(c.flags) || (c.flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) !== 0) return fail('EINVAL');
  if (c.flags === (RENAME_NOREPLACE | RENAME_EXCHANGE)) return fail('EINVAL');
  const exchange = c.flags === RENAME_EXCHANGE;
  const source = await ctx.dir(c.parent);
  if (typeof source === 'string') return fail(source);
  const target = await ctx.dir(c.newParent);
  if (typeof target === 'string') return fail(target);
  const bad = nameError(c.name) ?? nameError(c.newName);
  if (bad !== undefined) return fail(bad);
  const srcEntry = await ctx.entry(c.parent, c.name);
  if (srcEntry === undefined) return fail('ENOENT');
  const leased = (await entryLeaseError(ctx, c.parent)) ?? (await entryLeaseError(ctx, c.newParent));
  if (leased !== undefined) return fail(leased);
  const dstEntry = await ctx.entry(c.newParent, c.newName);
  if (exchange && dstEntry === undefined) return fail('ENOENT');
  // Two names of one inode (or one name twice): POSIX says do nothing, successfully.
  if (dstEntry !== undefined && dstEntry.ino === srcEntry.ino) return ok(null);
  if (c.flags === RENAME_NOREPLACE && dstEntry !== undefined) return fail('EEXIST');
  const src = await ctx.inode(srcEntry.ino);
  if (src === undefined) throw new Error(`dentry points at missing inode ${srcEntry.ino}`);
  const dst = dstEntry === undefined ? undefined : await ctx.inode(dstEntry.ino);
  if (dstEntry !== undefined && dst === undefined) throw new Error(`dentry points at missing inode ${dstEntry.ino}`);
  const srcIsDir = isDir(src.attr.mode);
  const dstIsDir = dst !== undefined && isDir(dst.attr.mode);

  if (!exchange && dst !== undefined) {
    if (srcIsDir && !dstIsDir) return fail('ENOTDIR');
    if (!srcIsDir && dstIsDir) return fail('EISDIR');
  }
  if (srcIsDir && (await isWithin(ctx, c.newParent, src.attr.ino))) return fail('EINVAL');
  if (exchange && dst !== undefined && dstIsDir && (await isWithin(ctx, c.parent, dst.attr.ino))) {
    return fail('EINVAL');
  }

  if (exchange && dst !== undefined) {
    ctx.setEntry(c.parent, c.name, dst.attr.ino, dst.attr.mode);
    ctx.setEntry(c.newParent, c.newName, src.attr.ino, src.attr.mode);
    if (c.parent !== c.newParent) {
      if (srcIsDir) {
        source.attr.nlink -= 1;
        target.attr.nlink += 1;
        src.parent = target.attr.ino;
      }
      if (dstIsDir) {
        target.attr.nlink -= 1;
        source.attr.nlink += 1;
        dst.parent = source.attr.ino;
      }
    }
    dst.attr.ctime = c.now;
    ctx.touch(dst);
  } else {
    if (dst !== undefined) {
      if (dstIsDir) {
        if (!(await isEmptyDir(ctx, dst.attr.ino))) return fail('ENOTEMPTY');
        target.attr.nlink -= 1;
      }
      await dropLink(ctx, dst, c.now);
    }
    ctx.delEntry(c.parent, c.name);
    ctx.setEntry(c.newParent, c.newName, src.attr.ino, src.attr.mode);
    if (srcIsDir && c.parent !== c.newParent) {
      source.attr.nlink -= 1;
      target.attr.nlink += 1;
      src.parent = target.attr.ino;
    }
  }
  src.attr.ctime = c.now;
  ctx.touch(src);
  touchEntryChange(ctx, source, c.now);
  touchEntryChange(ctx, target, c.now);
  ctx.flush();
  return ok(null);
}

/** Moves refs at or past `sizeBytes` to garbage and shortens the one straddling it. */
async function truncateChunks(ctx: Ctx, rec: InodeRecord, sizeBytes: number): Promise<void> {
  const cs = rec.attr.chunkSizeBytes;
  const firstIndex = Math.floor(sizeBytes / cs);
  const tx = ctx.tx;
  for await (const [key, value] of tx.scanPrefix(K.chunkPrefix(rec.attr.ino), K.chunkKey(rec.attr.ino, firstIndex))) {
    const index = K.chunkIndex(key);
    const chunk = decodeChunk(value);
    const start = index * cs;
    if (start >= sizeBytes) {
      toGarbage(tx, chunk);
      tx.del(key);
    } else if (start + chunk.sizeBytes > sizeBytes) {
      tx.put(key, encodeChunk(shorten(chunk, sizeBytes - start)));
    }
  }
  // scanPrefix(after) is exclusive; the straddling chunk sits exactly at firstIndex.
  const straddling = K.chunkKey(rec.attr.ino, firstIndex);
  const raw = await tx.get(straddling);
  if (raw !== undefined) {
    const chunk = decodeChunk(raw);
    const start = firstIndex * cs;
    if (start >= sizeBytes) {
      toGarbage(tx, chunk);
      tx.del(straddling);
    } else if (start + chunk.sizeBytes > sizeBytes) {
      tx.put(straddling, encodeChunk(shorten(chunk, sizeBytes - start)));
    }
  }
}

function validSetAttr(s: SetAttrFields): boolean {
  if (s === null || typeof s !== 'object') return false;
  if (s.mode !== undefined && !isU32(s.mode)) return false;
  if (s.uid !== undefined && !isU32(s.uid)) return false;
  if (s.gid !== undefined && !isU32(s.gid)) return false;
  if (s.size !== undefined && !isU53(s.size)) return false;
  if (s.atime !== undefined && s.atime !== 'now' && !validTime(s.atime)) return false;
  if (s.mtime !== undefined && s.mtime !== 'now' && !validTime(s.mtime)) return false;
  return true;
}

async function setattr(ctx: Ctx, c: Extract<Command, { op: 'setattr' }>): Promise<Res<Attr>> {
  if (!validTime(c.now) || !validSetAttr(c.set)) return fail('EINVAL');
  const rec = await ctx.inode(c.ino);
  if (rec === undefined) return fail('ENOENT');
  const a = rec.attr;
  const s = c.set;
  if (s.size !== undefined) {
    if (isDir(a.mode)) return fail('EISDIR');
    if (!isReg(a.mode)) return fail('EINVAL');
    if (s.size > FILE_SIZE_MAX_BYTES) return fail('EFBIG');
  }
  if (s.uid !== undefined || s.gid !== undefined) {
    if (s.uid !== undefined) a.uid = s.uid;
    if (s.gid !== undefined) a.gid = s.gid;
    // Like Linux for an unprivileged chown: a new owner must not inherit set-id powers.
    // S_ISGID without group-exec is mandatory locking, not set-gid, so it stays.
    if (isReg(a.mode)) {
      a.mode &= ~S_ISUID;
      if ((a.mode & S_IXGRP) !== 0) a.mode &= ~S_ISGID;
    }
  }
  if (s.mode !== undefined) a.mode = (a.mode & S_IFMT) | (s.mode & 0o7777);
  if (s.size !== undefined && s.size !== a.size) {
    if (s.size < a.size) await truncateChunks(ctx, rec, s.size);
    a.size = s.size;
    a.mtime = c.now;
  }
  if (s.atime !== undefined) a.atime = s.atime === 'now' ? c.now : s.atime;
  if (s.mtime !== undefined) a.mtime = s.mtime === 'now' ? c.now : s.mtime;
  a.ctime = c.now;
  ctx.touch(rec);
  ctx.flush();
  return ok(a);
}

function xattrNameError(name: string): ErrnoName | undefined {
  if (typeof name !== 'string' || name.length === 0 || !isByteString(name) || name.includes('\0')) return 'EINVAL';
  if (name.length > XATTR_NAME_MAX_BYTES) return 'ERANGE';
  return undefined;
}

/** Whether the inode's listxattr answer still fits with one more name (see XATTR_LIST_MAX_BYTES). */
async function xattrListFits(ctx: Ctx, ino: Ino, name: string): Promise<boolean> {
  let bytes = name.length + 1;
  let count = 1;
  for await (const [key] of ctx.tx.scanPrefix(K.xattrPrefix(ino))) {
    bytes += K.xattrName(key).length + 1;
    count++;
    if (bytes > XATTR_LIST_MAX_BYTES || count > XATTR_COUNT_MAX) return false;
  }
  return bytes <= XATTR_LIST_MAX_BYTES && count <= XATTR_COUNT_MAX;
}

async function setxattr(ctx: Ctx, c: Extract<Command, { op: 'setxattr' }>): Promise<Res<null>> {
  if (!validTime(c.now) || !Buffer.isBuffer(c.value)) return fail('EINVAL');
  if (!Number.isInteger(c.flags) || (c.flags & ~(XATTR_CREATE | XATTR_REPLACE)) !== 0) return fail('EINVAL');
  if (c.flags === (XATTR_CREATE | XATTR_REPLACE)) return fail('EINVAL');
  const bad = xattrNameError(c.name);
  if (bad !== undefined) return fail(bad);
  if (c.value.length > XATTR_VALUE_MAX_BYTES) return fail('ERANGE');
  const rec = await ctx.inode(c.ino);
  if (rec === undefined) return fail('ENOENT');
  const key = K.xattrKey(c.ino, c.name);
  const exists = (await ctx.tx.get(key)) !== undefined;
  if (c.flags === XATTR_CREATE && exists) return fail('EEXIST');
  if (c.flags === XATTR_REPLACE && !exists) return fail('ENODATA');
  if (!exists && !(await xattrListFits(ctx, c.ino, c.name))) return fail('E2BIG');
  ctx.tx.put(key, encodeXattr(c.value));
  rec.attr.ctime = c.now;
  ctx.touch(rec);
  ctx.flush();
  return ok(null);
}

async function removexattr(ctx: Ctx, c: Extract<Command, { op: 'removexattr' }>): Promise<Res<null>> {
  if (!validTime(c.now)) return fail('EINVAL');
  const bad = xattrNameError(c.name);
  if (bad !== undefined) return fail(bad);
  const rec = await ctx.inode(c.ino);
  if (rec === undefined) return fail('ENOENT');
  const key = K.xattrKey(c.ino, c.name);
  if ((await ctx.tx.get(key)) === undefined) return fail('ENODATA');
  ctx.tx.del(key);
  rec.attr.ctime = c.now;
  ctx.touch(rec);
  ctx.flush();
  return ok(null);
}

async function setlayout(ctx: Ctx, c: Extract<Command, { op: 'setlayout' }>): Promise<Res<Attr>> {
  if (!validTime(c.now) || !layoutValid(c.layout)) return fail('EINVAL');
  const rec = await ctx.inode(c.ino);
  if (rec === undefined) return fail('ENOENT');
  if (!isDir(rec.attr.mode)) return fail('ENOTDIR');
  rec.attr.layout = c.layout.kind === 'replicas' ? { kind: 'replicas', replicas: c.layout.replicas } : { kind: 'ec', k: c.layout.k, m: c.layout.m };
  rec.attr.ctime = c.now;
  ctx.touch(rec);
  ctx.flush();
  return ok(rec.attr);
}

function validSession(session: string): boolean {
  if (typeof session !== 'string') return false;
  const n = Buffer.byteLength(session, 'utf8');
  return n >= 1 && n <= K.SESSION_MAX_BYTES;
}

async function open(ctx: Ctx, c: Extract<Command, { op: 'open' }>): Promise<Res<null>> {
  if (!validSession(c.session) || !isU53(c.handle)) return fail('EINVAL');
  const rec = await ctx.inode(c.ino);
  if (rec === undefined) return fail('ENOENT');
  ctx.tx.put(K.openKey(c.ino, c.session, c.handle), Buffer.alloc(0));
  ctx.tx.put(K.sessionKey(c.session, c.ino, c.handle), Buffer.alloc(0));
  return ok(null);
}

/** Deletes an unlinked inode once nothing holds it open. */
async function reapIfOrphan(ctx: Ctx, ino: Ino): Promise<void> {
  const rec = await ctx.inode(ino);
  if (rec === undefined || rec.attr.nlink > 0) return;
  if (await ctx.tx.hasPrefix(K.openPrefix(ino))) return;
  await destroy(ctx, rec);
}

async function release(ctx: Ctx, c: Extract<Command, { op: 'release' }>): Promise<Res<null>> {
  if (!validSession(c.session) || !isU53(c.handle) || !isU53(c.ino)) return fail('EINVAL');
  const key = K.openKey(c.ino, c.session, c.handle);
  if ((await ctx.tx.get(key)) === undefined) return fail('EBADF');
  ctx.tx.del(key);
  ctx.tx.del(K.sessionKey(c.session, c.ino, c.handle));
  await reapIfOrphan(ctx, c.ino);
  ctx.flush();
  return ok(null);
}

async function handles(ctx: Ctx, c: Extract<Command, { op: 'handles' }>): Promise<Res<{ skipped: number }>> {
  if (!validSession(c.session) || !Array.isArray(c.items) || c.items.length > HANDLE_OPS_MAX) return fail('EINVAL');
  for (const i of c.items) if (typeof i?.open !== 'boolean' || !isU53(i.ino) || !isU53(i.handle)) return fail('EINVAL');
  let skipped = 0;
  for (const i of c.items) {
    const key = K.openKey(i.ino, c.session, i.handle);
    if (i.open) {
      if ((await ctx.inode(i.ino)) === undefined) {
        skipped++;
        continue;
      }
      ctx.tx.put(key, Buffer.alloc(0));
      ctx.tx.put(K.sessionKey(c.session, i.ino, i.handle), Buffer.alloc(0));
    } else {
      if ((await ctx.tx.get(key)) === undefined) {
        skipped++;
        continue;
      }
      ctx.tx.del(key);
      ctx.tx.del(K.sessionKey(c.session, i.ino, i.handle));
      await reapIfOrphan(ctx, i.ino);
    }
  }
  ctx.flush();
  return ok({ skipped });
}

async function closeSession(ctx: Ctx, c: Extract<Command, { op: 'closeSession' }>): Promise<Res<null>> {
  if (!validSession(c.session)) return fail('EINVAL');
  const prefix = K.sessionPrefix(c.session);
  const inos = new Set<Ino>();
  for await (const [key] of ctx.tx.scanPrefix(prefix)) {
    const { ino, handle } = K.parseSessionKey(key, prefix.length);
    ctx.tx.del(key);
    ctx.tx.del(K.openKey(ino, c.session, handle));
    inos.add(ino);
  }
  // Sorted so the writes come out in the same order on every replica.
  for (const ino of [...inos].sort((a, b) => a - b)) await reapIfOrphan(ctx, ino);
  for await (const [key] of ctx.tx.scanPrefix(K.inoRangePrefix(c.session))) ctx.tx.del(key);
  await closeSessionLeases(ctx, c.session);
  ctx.flush();
  return ok(null);
}

async function allocChunkIds(ctx: Ctx, c: Extract<Command, { op: 'allocChunkIds' }>): Promise<Res<{ first: number }>> {
  if (!Number.isInteger(c.count) || c.count < 1 || c.count > ALLOC_CHUNK_IDS_MAX) return fail('EINVAL');
  const first = await ctx.counter(K.nextChunkKey(), 1);
  ctx.setCounter(K.nextChunkKey(), first + c.count);
  return ok({ first });
}

/** A ref cut to `sizeBytes`; inline data is cut with it so it always matches the size. */
function shorten(chunk: ChunkValue, sizeBytes: number): ChunkValue {
  return chunk.inline ? { ...chunk, sizeBytes, inline: chunk.inline.subarray(0, sizeBytes) } : { ...chunk, sizeBytes };
}

function validChunk(ch: ChunkRef, chunkSizeBytes: number, nextChunkId: number): boolean {
  if (ch !== null && typeof ch === 'object' && ch.inline !== undefined) {
    return (
      Buffer.isBuffer(ch.inline) &&
      ch.chunkId === 0 &&
      ch.index === 0 &&
      ch.inline.length === ch.sizeBytes &&
      ch.sizeBytes <= INLINE_MAX_BYTES &&
      Array.isArray(ch.placement) &&
      ch.placement.length === 0
    );
  }
  return (
    ch !== null &&
    typeof ch === 'object' &&
    isU53(ch.index) &&
    ch.index * chunkSizeBytes < FILE_SIZE_MAX_BYTES &&
    isU53(ch.chunkId) &&
    ch.chunkId >= 1 &&
    ch.chunkId < nextChunkId &&
    Number.isInteger(ch.sizeBytes) &&
    ch.sizeBytes >= 0 &&
    ch.sizeBytes <= chunkSizeBytes &&
    Array.isArray(ch.placement) &&
    ch.placement.length <= 255 &&
    ch.placement.every((p) => typeof p === 'string' && Buffer.byteLength(p, 'utf8') <= 0xffff) &&
    (ch.ec === undefined || validEc(ch))
  );
}

function validEc(ch: ChunkRef): boolean {
  const ec = ch.ec!;
  return (
    typeof ec === 'object' &&
    Number.isInteger(ec.k) &&
    Number.isInteger(ec.m) &&
    ec.k >= 1 &&
    ec.m >= 1 &&
    ec.k + ec.m <= 255 &&
    ch.placement.length === ec.k + ec.m &&
    Number.isInteger(ec.shardBytes) &&
    ec.shardBytes >= 0 &&
    ec.shardBytes * ec.k >= ch.sizeBytes &&
    ec.shardBytes <= 0xffff_ffff
  );
}

async function commitWrite(ctx: Ctx, c: Extract<Command, { op: 'commitWrite' }>): Promise<Res<Attr>> {
  if (!validTime(c.now) || !validTime(c.mtime) || !isU53(c.sizeBytes) || !Array.isArray(c.chunks)) {
    return fail('EINVAL');
  }
  if (c.chunks.length > COMMIT_CHUNKS_MAX) return fail('EINVAL');
  if (c.sizeBytes > FILE_SIZE_MAX_BYTES) return fail('EFBIG');
  const rec = await ctx.inode(c.ino);
  if (rec === undefined) return fail('ENOENT');
  if (isDir(rec.attr.mode)) return fail('EISDIR');
  if (!isReg(rec.attr.mode)) return fail('EINVAL');
  const nextChunkId = await ctx.counter(K.nextChunkKey(), 1);
  const seen = new Set<number>();
  for (const ch of c.chunks) {
    if (!validChunk(ch, rec.attr.chunkSizeBytes, nextChunkId) || seen.has(ch.index)) return fail('EINVAL');
    seen.add(ch.index);
  }
  for (const ch of c.chunks) {
    const key = K.chunkKey(c.ino, ch.index);
    const old = await ctx.tx.get(key);
    if (old !== undefined) {
      const prev = decodeChunk(old);
      if (prev.chunkId !== ch.chunkId) toGarbage(ctx.tx, prev);
    }
    const value: ChunkValue = { chunkId: ch.chunkId, sizeBytes: ch.sizeBytes, placement: [...ch.placement] };
    if (ch.inline) value.inline = Buffer.from(ch.inline);
    if (ch.ec) value.ec = { k: ch.ec.k, m: ch.ec.m, shardBytes: ch.ec.shardBytes };
    ctx.tx.put(key, encodeChunk(value));
    if (ch.chunkId !== 0) ctx.tx.put(K.refKey(ch.chunkId), encodeRef(c.ino, ch.index));
  }
  rec.attr.size = Math.max(rec.attr.size, c.sizeBytes);
  rec.attr.mtime = c.mtime;
  rec.attr.ctime = c.now;
  ctx.touch(rec);
  ctx.flush();
  return ok(rec.attr);
}

async function gcDone(ctx: Ctx, c: Extract<Command, { op: 'gcDone' }>): Promise<Res<null>> {
  if (!Array.isArray(c.chunkIds) || c.chunkIds.length > GC_DONE_CHUNKS_MAX || !c.chunkIds.every(isU53)) {
    return fail('EINVAL');
  }
  for (const id of c.chunkIds) ctx.tx.del(K.garbageKey(id));
  return ok(null);
}

const NODE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const LABEL_RE = /^[A-Za-z0-9._-]{0,64}$/;

async function registerNode(ctx: Ctx, c: Extract<Command, { op: 'registerNode' }>): Promise<Res<null>> {
  const n = c.node;
  if (
    typeof n !== 'object' ||
    n === null ||
    typeof n.nodeId !== 'string' ||
    !NODE_ID_RE.test(n.nodeId) ||
    typeof n.address !== 'string' ||
    n.address.length === 0 ||
    Buffer.byteLength(n.address, 'utf8') > 255 ||
    typeof n.zone !== 'string' ||
    !LABEL_RE.test(n.zone) ||
    typeof n.rack !== 'string' ||
    !LABEL_RE.test(n.rack)
  ) {
    return fail('EINVAL');
  }
  const prev = await ctx.tx.get(K.nodeKey(n.nodeId));
  const state: NodeState = prev === undefined ? 'active' : (JSON.parse(prev.toString('utf8')) as NodeRecord).state ?? 'active';
  const rec: NodeRecord = { nodeId: n.nodeId, address: n.address, zone: n.zone, rack: n.rack, state };
  ctx.tx.put(K.nodeKey(n.nodeId), Buffer.from(JSON.stringify(rec), 'utf8'));
  return ok(null);
}

const NODE_STATES: readonly NodeState[] = ['active', 'dead', 'draining', 'drained'];

async function setNodeState(ctx: Ctx, c: Extract<Command, { op: 'setNodeState' }>): Promise<Res<null>> {
  if (typeof c.nodeId !== 'string' || !NODE_ID_RE.test(c.nodeId) || !NODE_STATES.includes(c.state)) return fail('EINVAL');
  const prev = await ctx.tx.get(K.nodeKey(c.nodeId));
  if (prev === undefined) return fail('ENOENT');
  const rec = JSON.parse(prev.toString('utf8')) as NodeRecord;
  ctx.tx.put(K.nodeKey(c.nodeId), Buffer.from(JSON.stringify({ ...rec, state: c.state }), 'utf8'));
  return ok(null);
}

const PLACEMENT_MAX = 255;

async function setPlacement(ctx: Ctx, c: Extract<Command, { op: 'setPlacement' }>): Promise<Res<null>> {
  if (
    !isU53(c.chunkId) ||
    c.chunkId < 1 ||
    !Array.isArray(c.placement) ||
    c.placement.length > PLACEMENT_MAX ||
    !c.placement.every((p) => typeof p === 'string' && (p === '' || NODE_ID_RE.test(p)))
  ) {
    return fail('EINVAL');
  }
  const tx = ctx.tx;
  const owner = await tx.get(K.refKey(c.chunkId));
  const ref = owner === undefined ? undefined : decodeRef(owner);
  const raw = ref ? await tx.get(K.chunkKey(ref.ino, ref.index)) : undefined;
  const chunk = raw ? decodeChunk(raw) : undefined;
  if (!ref || !chunk || chunk.chunkId !== c.chunkId) {
    // Rewritten or deleted meanwhile: whatever the move created is garbage now.
    const g = await tx.get(K.garbageKey(c.chunkId));
    const holders = new Set([...(g ? decodeGarbage(g) : []), ...c.placement.filter((p) => p !== '')]);
    tx.put(K.garbageKey(c.chunkId), encodeGarbage([...holders]));
    // Success all the same (a failing command's writes would be rolled back).
    return ok(null);
  }
  if (chunk.ec ? c.placement.length !== chunk.ec.k + chunk.ec.m : c.placement.some((p) => p === '') || new Set(c.placement).size !== c.placement.length) {
    return fail('EINVAL');
  }
  tx.put(K.chunkKey(ref.ino, ref.index), encodeChunk({ ...chunk, placement: [...c.placement] }));
  for await (const [key] of tx.scanPrefix(K.badPrefix(c.chunkId))) {
    if (!c.placement.includes(K.badOf(key).nodeId)) tx.del(key);
  }
  return ok(null);
}

async function reportBadCopy(ctx: Ctx, c: Extract<Command, { op: 'reportBadCopy' }>): Promise<Res<null>> {
  if (!isU53(c.chunkId) || c.chunkId < 1 || typeof c.nodeId !== 'string' || !NODE_ID_RE.test(c.nodeId)) return fail('EINVAL');
  ctx.tx.put(K.badKey(c.chunkId, c.nodeId), Buffer.alloc(0));
  return ok(null);
}

type Handler = (ctx: Ctx, c: Command) => Promise<Res<unknown>>;
const handlers: { [Op in Command['op']]: (ctx: Ctx, c: Extract<Command, { op: Op }>) => Promise<Res<CommandValues[Op]>> } = {
  mknod,
  mkdir,
  symlink,
  link,
  unlink: (ctx, c) => removeEntry(ctx, c, false),
  rmdir: (ctx, c) => removeEntry(ctx, c, true),
  rename,
  setattr,
  setxattr,
  removexattr,
  setlayout,
  open,
  release,
  handles,
  closeSession,
  allocChunkIds,
  allocInodes,
  leaseGrant,
  leaseRelease,
  sessionExpire,
  clientsExpire,
  commitWrite,
  gcDone,
  registerNode,
  setNodeState,
  setPlacement,
  reportBadCopy,
  batch,
};

/**
 * Applies a batch's commands in order, each in its own nested scope: the first that fails
 * is dropped with everything after it, the ones before it stay. Under leases no command of
 * a batch should fail (the client answered it from a lease), so a failure is logged by the
 * caller as a bug and reported to the client at its next sync point (decision 0012).
 */
async function batch(ctx: Ctx, c: Extract<Command, { op: 'batch' }>): Promise<Res<CommandValues['batch']>> {
  if (!Array.isArray(c.ops) || c.ops.length === 0 || c.ops.length > BATCH_OPS_MAX) return fail('EINVAL');
  if (!c.ops.every((o) => BATCHABLE_OPS.has(o?.op))) return fail('EINVAL');
  if (c.session !== undefined && !validSession(c.session)) return fail('EINVAL');
  if (c.lastPlain !== undefined && typeof c.lastPlain !== 'boolean') return fail('EINVAL');
  const dirs = new Map<Ino, Attr>();
  let applied = 0;
  let last: Attr | undefined;
  for (const [i, op] of c.ops.entries()) {
    const plain = c.lastPlain === true && i === c.ops.length - 1;
    ctx.tx.beginNested();
    const r = await apply(op, ctx.tx, ctx.config, plain ? null : (c.session ?? null));
    ctx.tx.endNested(r.ok);
    if (!r.ok) return { ok: true, value: { applied, errno: r.errno }, ...dirsOf(dirs) };
    for (const d of r.dirs ?? []) dirs.set(d.ino, d);
    if (plain && isAttr(r.value)) last = r.value;
    applied++;
  }
  return { ok: true, value: last ? { applied, errno: 0, last } : { applied, errno: 0 }, ...dirsOf(dirs) };
}

function isAttr(v: unknown): v is Attr {
  return typeof v === 'object' && v !== null && typeof (v as Attr).ino === 'number' && typeof (v as Attr).mode === 'number';
}

function dirsOf(dirs: Map<Ino, Attr>): { dirs?: Attr[] } {
  return dirs.size > 0 ? { dirs: [...dirs.values()] } : {};
}

/**
 * Applies one command inside the Tx's current command scope (the caller brackets it
 * with tx.begin() and tx.commit()/rollback()). On an errno result nothing was written
 * that matters, but the caller should roll back anyway.
 */
export async function apply<C extends Command>(
  command: C,
  tx: Tx,
  config: ApplyConfig,
  leaseSession: string | null = null,
): Promise<Result<CommandValues[C['op']]>> {
  const handler = (handlers as Record<string, Handler | undefined>)[command?.op];
  if (handler === undefined) return fail('ENOSYS');
  const ctx = new Ctx(tx, config, leaseSession);
  const r = (await handler(ctx, command)) as Result<CommandValues[C['op']]>;
  if (r.ok && ctx.changedDirs.size > 0) return { ok: true, value: r.value, dirs: [...ctx.changedDirs.values()] };
  return r;
}

/**
 * Applies a client's command once: a retry of the last applied (clientId, seq) gets the
 * stored result back; an older seq is refused. The (seq, result) record is written in
 * the same batch as the command's changes, so both or neither survive a crash.
 */
export async function applyEnvelope(env: Envelope, tx: Tx, config: ApplyConfig): Promise<Result<unknown>> {
  if (
    typeof env.clientId !== 'string' ||
    env.clientId.length === 0 ||
    Buffer.byteLength(env.clientId, 'utf8') > K.CLIENT_ID_MAX_BYTES ||
    !isU53(env.seq)
  ) {
    return fail('EINVAL');
  }
  const key = K.clientKey(env.clientId);
  const raw = await tx.get(key);
  if (raw !== undefined) {
    const last = decodeClient(raw);
    if (env.seq === last.seq) return last.result;
    if (env.seq < last.seq) return fail('EINVAL');
  }
  const result = await apply(env.command, tx, config);
  if (!result.ok) {
    // Drop whatever a failing command staged, but still remember its result.
    tx.rollback();
    tx.begin();
  }
  tx.put(key, encodeClient({ seq: env.seq, result }));
  return result;
}

/**
 * Creates the root directory and counters in an empty store (a no-op otherwise).
 * Deterministic: the root's times are the epoch (0) and its owner root:root, so every
 * replica bootstraps to the same bytes without a command carrying a clock.
 */
export async function bootstrap(tx: Tx): Promise<boolean> {
  if ((await tx.get(K.versionKey())) !== undefined) return false;
  const zero = { sec: 0, nsec: 0 };
  const root: InodeRecord = {
    attr: {
      ino: ROOT_INO,
      mode: S_IFDIR | 0o755,
      uid: 0,
      gid: 0,
      size: DIR_SIZE_BYTES,
      nlink: 2,
      rdev: 0,
      atime: zero,
      mtime: zero,
      ctime: zero,
      version: 1,
      chunkSizeBytes: 0,
      layout: { ...DEFAULT_LAYOUT },
    },
    parent: ROOT_INO,
    target: '',
  };
  tx.put(K.versionKey(), Buffer.from([0, 0, 0, K.KEY_FORMAT_VERSION]));
  tx.put(K.inodeKey(ROOT_INO), encodeInode(root));
  tx.put(K.nextInoKey(), encodeU64(ROOT_INO + 1));
  tx.put(K.nextChunkKey(), encodeU64(1));
  tx.put(K.inodeCountKey(), encodeU64(1));
  return true;
}

/** Reads the store's key-format version; throws on one this code does not know. */
export async function checkFormat(tx: Tx): Promise<void> {
  const raw = await tx.get(K.versionKey());
  if (raw === undefined) throw new Error('namespace store is not bootstrapped');
  const v = raw.readUInt32BE(0);
  if (v !== K.KEY_FORMAT_VERSION) throw new Error(`namespace store has key format ${v}, this code reads ${K.KEY_FORMAT_VERSION}`);
}
