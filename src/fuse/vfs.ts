// The kernel-free client: every filesystem operation as a method that returns a value
// or an errno. It owns open handles, write-back buffers, the read cache and the small
// caches in front of the meta service. The FUSE adapter (adapter.ts) only translates.
import type { MetaApi } from '../meta/api.js';
import type { Attr, Caller, ChunkRef, Command, CommandValues, DirEntry, Ino, Layout, Result, SetAttrFields, StatFs, Timespec } from '../meta/types.js';
import { Errno, NAME_MAX_BYTES, S_IFLNK, S_IFMT, S_IFREG, S_IFDIR, XATTR_NAME_MAX_BYTES, XATTR_VALUE_MAX_BYTES } from '../meta/types.js';
import { ChunkIo } from '../chunks/chunk-io.js';
import type { Logger } from 'pino';
import type { DataPlane } from './data-plane.js';
import { BlockCache } from './block-cache.js';
import { DIR_ATTR_REUSE_MS, DirAttrs } from './dir-attrs.js';
import { ByteBudget } from './budget.js';
import { FileState, errnoOf } from './file-state.js';
import type { DirListing, FuseVfs, OpenResult } from './vfs-api.js';
import { ClientSession, type SessionOptions } from './client-session.js';
import { LeasedNamespace } from './leased-ns.js';
import { leaseFootprint } from '../meta/footprint.js';
import { O_ACCMODE, O_RDWR, O_TRUNC, O_WRONLY } from './open-flags.js';

export type { DirListing, OpenResult } from './vfs-api.js';

export interface VfsOptions {
  /** Identifies this client's open handles in the namespace. */
  sessionId: string;
  /** Bound on write-back buffer memory for all open files. */
  maxDirtyBytes: number;
  /** Bound on the read cache. */
  readCacheBytes: number;
  /** Blocks (1 MiB) fetched ahead of a sequential reader. */
  readAheadBlocks: number;
  /** Chunk ids reserved per allocation round trip. */
  chunkIdBatch: number;
  /** Entries per readdir page fetched from the meta service. */
  readdirPageEntries: number;
  /** How long an attribute the client read stays valid without asking again. */
  attrTtlMs: number;
  /** Deadline for a chunk read from one replica before falling over to the next. */
  chunkReadTimeoutMs: number;
  /**
   * Written data not flushed by the application is uploaded and committed after at most
   * about this long (as the kernel's dirty write-back does). It keeps uploaded chunks from
   * staying unreferenced for long: the chunk servers' orphan GC (grace 1 h by default)
   * must never see an object a writer still means to commit.
   */
  writebackMs: number;
  /**
   * Directory leases and ordered asynchronous namespace changes (decision 0012), when the
   * meta backend offers sessions. Off: every change waits for its commit.
   */
  leases: boolean;
}

export const DEFAULT_VFS_OPTIONS: Omit<VfsOptions, 'sessionId'> = {
  maxDirtyBytes: 256 * 1024 * 1024,
  readCacheBytes: 128 * 1024 * 1024,
  readAheadBlocks: 8,
  chunkIdBatch: 64,
  readdirPageEntries: 512,
  attrTtlMs: 1000,
  chunkReadTimeoutMs: 30_000,
  writebackMs: 60_000,
  leases: true,
};

interface FileHandle {
  kind: 'file';
  ino: Ino;
  state: FileState | null;
  flags: number;
  /** Offset where the last read ended, to detect sequential readers. */
  nextReadOffset: number;
}

interface DirHandle {
  kind: 'dir';
  ino: Ino;
  entries: Array<DirEntry & { attr: Attr }>;
  done: boolean;
}

/** Handle batches (`handles` commands) in flight at most; new opens wait below it. */
const RELEASES_IN_FLIGHT_MAX = 64;
/** Handle registrations wait at most this long before they are sent when an open is among them. */
const SESSION_FLUSH_MS = 20;
/**
 * Releases alone wait longer: nothing waits for them (this client's own unlink sends them
 * first), and a loop of create+close otherwise costs a second Raft entry per two files.
 */
const RELEASE_FLUSH_MS = 200;
const SESSION_BATCH_MAX = 256;
/**
 * How long flushAll (shutdown) waits for background releases. They need a reachable
 * leader, which is gone when a whole cluster stops at once, and nothing depends on them:
 * the next start of the session closes the handles left over (closeSession).
 */
const SHUTDOWN_RELEASE_WAIT_MS = 2_000;

export function nowTimespec(): Timespec {
  const ms = performance.timeOrigin + performance.now();
  const sec = Math.floor(ms / 1000);
  const nsec = Math.min(999_999_999, Math.round((ms - sec * 1000) * 1e6));
  return { sec, nsec };
}

function nameError(name: string): number {
  if (name.length > NAME_MAX_BYTES) return Errno.ENAMETOOLONG;
  if (name.length === 0 || name.includes('/') || name.includes('\0')) return Errno.EINVAL;
  return 0;
}

/**
 * POSIX ACLs are not supported (docs/decisions/0002-permissions.md). Without
 * FUSE_CAP_POSIX_ACL a host-namespace kernel still passes `system.posix_acl_*` through
 * as plain xattrs; storing them would make `setfacl` "succeed" with no effect and make
 * `cp -p` (which sets modes through the ACL xattr) lose the mode. EOPNOTSUPP makes tools
 * fall back to chmod.
 */
function isPosixAclName(name: string): boolean {
  return name === 'system.posix_acl_access' || name === 'system.posix_acl_default';
}

/**
 * An inode the kernel names (by a cached entry) that no longer exists is ESTALE, not
 * ENOENT: the kernel then walks the path again with revalidation (as for NFS), so a name
 * another mount replaced within the entry timeout resolves to the new inode.
 */
function stale<T>(r: Result<T>): Result<T> {
  return !r.ok && r.errno === Errno.ENOENT ? { ok: false, errno: Errno.ESTALE } : r;
}

function err<T>(errno: number): Result<T> {
  return { ok: false, errno };
}

export class Vfs implements FuseVfs {
  private readonly opts: VfsOptions;
  private readonly files = new Map<Ino, FileState>();
  private readonly handles = new Map<number, FileHandle | DirHandle>();
  private nextFh = 1;
  private readonly budget: ByteBudget;
  readonly cache: BlockCache;
  private chunkIds: { next: number; end: number } = { next: 0, end: 0 };
  private chunkIdWait: Promise<number> | null = null;
  /** Inode version at this client's last open, for keep_cache decisions (bounded). */
  private readonly openedVersion = new Map<Ino, number>();
  /** Short-lived negative answers for security.capability, asked by the kernel on every write. */
  private readonly noCapability = new Map<Ino, number>();
  readonly counters = { opens: 0, commits: 0, uploads: 0, uploadBytes: 0, releaseErrors: 0, sessionOpsCancelled: 0, handlesReasserted: 0 };
  /** Chunk data across chunk servers (replicas, EC shards). */
  readonly io: ChunkIo;
  private readonly releases = new Set<Promise<void>>();
  private sessionOps: Array<{ op: 'open' | 'release'; ino: Ino; handle: number }> = [];
  private sessionTimer: NodeJS.Timeout | null = null;
  /** When sessionTimer fires (performance.now() ms). */
  private sessionDueMs = 0;

  /** Directory attributes from our own commands' results (see dir-attrs.ts). */
  private readonly dirAttrs: DirAttrs;

  constructor(
    private readonly meta: MetaApi,
    private readonly data: DataPlane,
    options: Partial<VfsOptions> & { sessionId: string; logger?: Logger; sessionOptions?: SessionOptions },
  ) {
    this.opts = { ...DEFAULT_VFS_OPTIONS, ...options };
    this.log = options.logger;
    this.dirAttrs = new DirAttrs(Math.min(DIR_ATTR_REUSE_MS, this.opts.attrTtlMs));
    this.budget = new ByteBudget(this.opts.maxDirtyBytes);
    this.io = new ChunkIo(data, options.logger);
    this.cache = new BlockCache({ fetch: (ref, off, len) => this.io.read(ref, off, len) }, this.opts.readCacheBytes, this.opts.readAheadBlocks);
    this.writebackTimer = setInterval(() => void this.writeback(), Math.max(10, this.opts.writebackMs / 2));
    this.writebackTimer.unref();
    if (this.opts.leases && meta.openSession) {
      const session = new ClientSession(
        meta as MetaApi & Required<Pick<MetaApi, 'openSession'>>,
        this.opts.sessionId,
        (dirs) => this.ns?.recall(dirs),
        options.logger,
        options.sessionOptions,
      );
      this.ns = new LeasedNamespace(meta, session, (r) => this.dirAttrs.note(r), options.logger);
      session.onResume = (gapMs) => this.reassertHandles(gapMs);
      session.start();
      this.ns.prefetch();
    }
  }

  private readonly log: Logger | undefined;

  /** Leases and the ordered queue of namespace changes (null: every change is synchronous). */
  readonly ns: LeasedNamespace | null = null;

  /** This session's id on reads, so its own leases are not recalled for it. */
  private get sid(): string | undefined {
    return this.ns ? this.opts.sessionId : undefined;
  }

  private readonly writebackTimer: NodeJS.Timeout;
  /** When each open file was first seen with unflushed writes by the write-back tick. */
  private readonly dirtySince = new Map<Ino, number>();

  /** Flushes files whose writes have waited about writebackMs (at most 1.5×). */
  private async writeback(): Promise<void> {
    const now = performance.now();
    for (const [ino, st] of this.files) {
      if (st.isClean() || st.error) {
        this.dirtySince.delete(ino);
        continue;
      }
      const since = this.dirtySince.get(ino);
      if (since === undefined) this.dirtySince.set(ino, now);
      else if (now - since >= this.opts.writebackMs) {
        this.dirtySince.delete(ino);
        // An error stays sticky on the file and reaches the application at its next
        // write, flush or close, exactly as if the flush had been its own.
        await this.flushState(st);
      }
    }
    for (const ino of this.dirtySince.keys()) if (!this.files.has(ino)) this.dirtySince.delete(ino);
  }

  /** Stops the background write-back (the mount is going away). */
  stopWriteback(): void {
    clearInterval(this.writebackTimer);
  }

  /**
   * Every synchronous namespace command goes through here: its result tells `dirAttrs`
   * what changed. With leases it goes through the ordered queue, after everything this
   * client changed before it, and leases it touches are given back first.
   */
  private async exec<C extends Command>(command: C, also: Ino[] = []): Promise<Result<CommandValues[C['op']]>> {
    const ns = this.ns;
    if (!ns) {
      const r = await this.meta.execute(command);
      this.dirAttrs.note(r);
      return r;
    }
    const dirs = [...leaseFootprint(command).dirs, ...also];
    ns.beforeSync(dirs);
    const inos = 'ino' in command && typeof command.ino === 'number' ? [...dirs, command.ino] : dirs;
    return ns.sync<CommandValues[C['op']]>(command, inos);
  }

  /** Before a read about `inos` from the leader: this client's queued changes to them land first. */
  private async settled(...inos: Ino[]): Promise<void> {
    if (this.ns) await this.ns.settle(inos);
  }

  /** Leased directories a synchronous rmdir/rename names as entries (given back before it). */
  private async namedDirs(pairs: Array<[Ino, string]>): Promise<Ino[]> {
    const ns = this.ns;
    if (!ns || !ns.mayHoldAny) return [];
    const out: Ino[] = [];
    for (const [parent, name] of pairs) {
      const r = await this.lookup(parent, name);
      if (r.ok && ns.mayHold(r.value.ino)) out.push(r.value.ino);
    }
    return out;
  }

  get dirtyBytes(): number {
    return this.budget.used;
  }

  get openHandles(): number {
    return this.handles.size;
  }

  // ---- names and attributes -------------------------------------------------------------

  private withLocal(attr: Attr): Attr {
    const st = this.files.get(attr.ino);
    if (!st) return attr;
    const size = Math.max(st.size, (attr.mode & S_IFMT) === S_IFREG ? attr.size : 0);
    if (size === attr.size && st.mtime === null) return attr;
    return { ...attr, size, mtime: st.mtime ?? attr.mtime };
  }

  async lookup(parent: Ino, name: string): Promise<Result<Attr>> {
    const e = nameError(name);
    if (e) return err(e);
    const ns = this.ns;
    if (ns) {
      const hit = ns.lookup(parent, name);
      if (hit === null) return err(Errno.ENOENT);
      if (hit) return this.getattr(hit.ino);
      await ns.settle([parent]);
    }
    const r = await this.meta.lookup(parent, name, this.sid);
    if (!r.ok) return r;
    return { ok: true, value: this.withLocal(ns?.attrOf(r.value.ino) ?? r.value) };
  }

  async getattr(ino: Ino): Promise<Result<Attr>> {
    const known = this.ns?.attrOf(ino);
    if (known) return { ok: true, value: this.withLocal(known) };
    const mine = this.dirAttrs.get(ino);
    if (mine) return { ok: true, value: mine };
    await this.settled(ino);
    const r = await this.meta.getattr(ino, this.sid);
    return r.ok ? { ok: true, value: this.withLocal(r.value) } : stale(r);
  }

  async setattr(ino: Ino, set: SetAttrFields): Promise<Result<Attr>> {
    const st = this.files.get(ino);
    if (st) {
      // Buffered writes land first, so a later utimens or truncate wins over them.
      const e = await this.flushState(st);
      if (e) return err(e);
    }
    const now = nowTimespec();
    const local = this.ns?.setattr(ino, set, now);
    if (local) return local.ok ? { ok: true, value: this.withLocal(local.value) } : local;
    const r = await this.exec({ op: 'setattr', ino, set, now });
    if (r.ok && st && set.size !== undefined) st.truncated(r.value.size);
    this.ns?.learned(ino, r.ok ? r.value : null);
    return r;
  }

  async mknod(parent: Ino, name: string, mode: number, rdev: number, caller: Caller): Promise<Result<Attr>> {
    const e = nameError(name);
    if (e) return err(e);
    const now = nowTimespec();
    const type = mode & S_IFMT || S_IFREG;
    const local = await this.ns?.create(parent, name, type | (mode & 0o7777), caller, now, { rdev });
    return local ?? this.exec({ op: 'mknod', parent, name, mode, rdev, caller, now });
  }

  async mkdir(parent: Ino, name: string, mode: number, caller: Caller): Promise<Result<Attr>> {
    const e = nameError(name);
    if (e) return err(e);
    const now = nowTimespec();
    const ns = this.ns;
    const local = await ns?.create(parent, name, S_IFDIR | (mode & 0o7777), caller, now, {});
    if (local) return local;
    // A directory this client makes comes with its exclusive lease (decision 0012).
    const lease = ns && ns.session.valid() ? { lease: this.opts.sessionId } : {};
    const r = await this.exec({ op: 'mkdir', parent, name, mode: (mode & ~S_IFMT) | S_IFDIR, caller, now, ...lease });
    if (r.ok && ns && 'lease' in lease) ns.adopt(r.value);
    return r;
  }

  async symlink(parent: Ino, name: string, target: string, caller: Caller): Promise<Result<Attr>> {
    const e = nameError(name);
    if (e) return err(e);
    if (target.length > 4095) return err(Errno.ENAMETOOLONG);
    const now = nowTimespec();
    const local = await this.ns?.create(parent, name, S_IFLNK | 0o777, caller, now, { target });
    return local ?? this.exec({ op: 'symlink', parent, name, target, caller, now });
  }

  async link(ino: Ino, newParent: Ino, newName: string): Promise<Result<Attr>> {
    const e = nameError(newName);
    if (e) return err(e);
    await this.syncSessionOps();
    const r = await this.exec({ op: 'link', ino, newParent, newName, now: nowTimespec() });
    // Reachable from another directory now: this client no longer predicts its attributes.
    this.ns?.learned(ino, null);
    return r.ok ? { ok: true, value: this.withLocal(r.value) } : r;
  }

  async unlink(parent: Ino, name: string): Promise<Result<null>> {
    const e = nameError(name);
    if (e) return err(e);
    await this.syncSessionOps();
    const now = nowTimespec();
    const local = await this.ns?.remove(parent, name, false, now);
    return local ?? this.exec({ op: 'unlink', parent, name, now });
  }

  async rmdir(parent: Ino, name: string): Promise<Result<null>> {
    const e = nameError(name);
    if (e) return err(e);
    await this.syncSessionOps();
    const now = nowTimespec();
    const local = await this.ns?.remove(parent, name, true, now);
    if (local) return local;
    const named = await this.namedDirs([[parent, name]]);
    return this.exec({ op: 'rmdir', parent, name, now }, named);
  }

  async rename(parent: Ino, name: string, newParent: Ino, newName: string, flags: number): Promise<Result<null>> {
    const e = nameError(name) || nameError(newName);
    if (e) return err(e);
    await this.syncSessionOps();
    const now = nowTimespec();
    const local = await this.ns?.rename(parent, name, newParent, newName, flags, now);
    if (local) return local;
    const named = await this.namedDirs([
      [parent, name],
      [newParent, newName],
    ]);
    return this.exec({ op: 'rename', parent, name, newParent, newName, flags, now }, named);
  }

  async readlink(ino: Ino): Promise<Result<string>> {
    await this.settled(ino);
    return this.meta.readlink(ino);
  }

  statfs(): Promise<Result<StatFs>> {
    return this.meta.statfs();
  }

  // ---- xattrs ---------------------------------------------------------------------------

  async getxattr(ino: Ino, name: string): Promise<Result<Buffer>> {
    if (name.length > XATTR_NAME_MAX_BYTES) return err(Errno.ERANGE);
    if (isPosixAclName(name)) return err(Errno.ENOTSUP);
    if (name === 'security.capability') {
      const until = this.noCapability.get(ino);
      if (until !== undefined && until > Date.now()) return err(Errno.ENODATA);
    }
    // An inode this mount made under a lease and predicts has no xattrs (setting one gives
    // the prediction up); asking the leader about a leased directory would recall it. A
    // directory taken with its lease (it existed) may have some: the leader is asked.
    if (this.ns?.xattrFree(ino)) return err(Errno.ENODATA);
    await this.settled(ino);
    const r = await this.meta.getxattr(ino, name, this.sid);
    if (!r.ok && r.errno === Errno.ENODATA && name === 'security.capability') {
      if (this.noCapability.size > 10_000) this.noCapability.clear();
      this.noCapability.set(ino, Date.now() + this.opts.attrTtlMs);
    }
    return r;
  }

  async listxattr(ino: Ino): Promise<Result<string[]>> {
    if (this.ns?.xattrFree(ino)) return { ok: true, value: [] };
    await this.settled(ino);
    return this.meta.listxattr(ino, this.sid);
  }

  async setxattr(ino: Ino, name: string, value: Buffer, flags: number): Promise<Result<null>> {
    if (name.length === 0) return err(Errno.EINVAL);
    if (name.length > XATTR_NAME_MAX_BYTES) return err(Errno.ERANGE);
    if (value.length > XATTR_VALUE_MAX_BYTES) return err(Errno.ENOSPC);
    if (isPosixAclName(name)) return err(Errno.ENOTSUP);
    this.noCapability.delete(ino);
    const r = await this.exec({ op: 'setxattr', ino, name, value, flags, now: nowTimespec() });
    this.ns?.learned(ino, null);
    return r;
  }

  async removexattr(ino: Ino, name: string): Promise<Result<null>> {
    if (isPosixAclName(name)) return err(Errno.ENOTSUP);
    const r = await this.exec({ op: 'removexattr', ino, name, now: nowTimespec() });
    this.ns?.learned(ino, null);
    return r;
  }

  // ---- files ----------------------------------------------------------------------------

  private stateFor(attr: Attr): FileState {
    let st = this.files.get(attr.ino);
    if (!st) {
      st = new FileState(attr.ino, attr.chunkSizeBytes, attr.layout, attr.size, attr.version, this.fileIo, this.budget);
      this.files.set(attr.ino, st);
    } else if (st.isClean() && st.version !== attr.version) {
      // Close-to-open: someone changed the file since we read its refs.
      st.invalidateRefs();
      st.size = attr.size;
      st.committedSize = attr.size;
      st.version = attr.version;
    }
    return st;
  }

  /** Record an open handle; `fh` is given when the namespace already recorded it (create). */
  private async registerOpen(attr: Attr, flags: number, fh?: number): Promise<Result<OpenResult>> {
    const isReg = (attr.mode & S_IFMT) === S_IFREG;
    if (fh === undefined) {
      fh = this.nextFh++;
      this.queueSessionOp({ op: 'open', ino: attr.ino, handle: fh });
    }
    const st = isReg ? this.stateFor(attr) : null;
    if (st) st.handles++;
    this.handles.set(fh, { kind: 'file', ino: attr.ino, state: st, flags, nextReadOffset: -1 });
    this.counters.opens++;
    const prev = this.openedVersion.get(attr.ino);
    if (this.openedVersion.size > 100_000) this.openedVersion.clear();
    this.openedVersion.set(attr.ino, attr.version);
    return { ok: true, value: { fh, attr: this.withLocal(attr), keepCache: prev === attr.version } };
  }

  async open(ino: Ino, flags: number): Promise<Result<OpenResult>> {
    await this.releaseBackpressure();
    // Close-to-open: every open revalidates the attributes with the meta service (or
    // knows them: a file this client created under a lease it still holds).
    const known = this.ns?.attrOf(ino);
    if (!known) await this.settled(ino);
    let r: Result<Attr> = known ? { ok: true, value: known } : stale(await this.meta.getattr(ino, this.sid));
    if (!r.ok) return r;
    const isReg = (r.value.mode & S_IFMT) === S_IFREG;
    const writable = (flags & O_ACCMODE) === O_WRONLY || (flags & O_ACCMODE) === O_RDWR;
    if (isReg && writable && flags & O_TRUNC) {
      r = await this.setattr(ino, { size: 0 });
      if (!r.ok) return r;
    }
    return this.registerOpen(r.value, flags);
  }

  async create(parent: Ino, name: string, mode: number, flags: number, caller: Caller): Promise<Result<OpenResult>> {
    await this.releaseBackpressure();
    const e = nameError(name);
    if (e) return err(e);
    const fh = this.nextFh++;
    const open = { session: this.opts.sessionId, handle: fh };
    const now = nowTimespec();
    const fileMode = (mode & ~S_IFMT) | S_IFREG;
    // Held back while the new file is open and unflushed (see HOLD_MS in leased-ns.ts).
    const hold = (): boolean => {
      const h = this.handles.get(fh);
      return h !== undefined && h.kind === 'file' && h.state !== null && !h.state.isClean();
    };
    const r = (await this.ns?.create(parent, name, fileMode, caller, now, { open, hold })) ?? (await this.exec({ op: 'mknod', parent, name, mode: fileMode, rdev: 0, caller, now, open }));
    if (!r.ok) return r;
    // A new file has no xattrs: spare the kernel's per-write security.capability lookup.
    this.noCapability.set(r.value.ino, Date.now() + this.opts.attrTtlMs);
    return this.registerOpen(r.value, flags, fh);
  }

  private fileHandle(fh: number): FileHandle | undefined {
    const h = this.handles.get(fh);
    return h && h.kind === 'file' ? h : undefined;
  }

  async read(fh: number, offset: number, length: number): Promise<Result<Buffer[]>> {
    const h = this.fileHandle(fh);
    if (!h || !h.state) return err(Errno.EBADF);
    const sequential = offset === h.nextReadOffset || offset === 0;
    h.nextReadOffset = offset + length;
    try {
      return { ok: true, value: await h.state.read(offset, length, sequential) };
    } catch (e) {
      return err(errnoOf(e));
    }
  }

  async write(fh: number, offset: number, data: Buffer): Promise<Result<number>> {
    const h = this.fileHandle(fh);
    if (!h || !h.state) return err(Errno.EBADF);
    if (h.state.error) return err(h.state.error);
    try {
      return { ok: true, value: await h.state.write(offset, data, nowTimespec()) };
    } catch (e) {
      return err(errnoOf(e));
    }
  }

  /** Make every write of this inode durable and visible: upload, then one commit. */
  private async flushState(st: FileState): Promise<number> {
    if (this.ns?.isLost(st.ino)) {
      // Its creation was dropped with a poisoned batch: nothing to commit the data to.
      st.discard();
      return this.ns.lostErrno(st.ino);
    }
    const e = await st.drain();
    if (e) return e;
    return st.commit(async (refs, sizeBytes, mtime) => {
      this.counters.commits++;
      const r = await this.exec({ op: 'commitWrite', ino: st.ino, chunks: refs, sizeBytes, mtime: mtime ?? nowTimespec(), now: nowTimespec() });
      if (!r.ok) return r.errno;
      st.version = r.value.version;
      this.openedVersion.set(st.ino, r.value.version);
      this.ns?.learned(st.ino, r.value);
      // A sync point: changes this client lost since the last one are reported here.
      return this.ns?.takePoison() ?? 0;
    });
  }

  /** close(): errors of buffered writes reach the caller here. */
  async flush(fh: number): Promise<Result<null>> {
    const h = this.fileHandle(fh);
    if (!h) return err(Errno.EBADF);
    if (!h.state) return { ok: true, value: null };
    const e = await this.flushState(h.state);
    return e ? err(e) : { ok: true, value: null };
  }

  async fsync(fh: number): Promise<Result<null>> {
    const r = await this.flush(fh);
    if (!r.ok || !this.ns) return r;
    // The file's name (and every change before it) is committed too.
    const e = await this.ns.drain();
    return e ? err(e) : r;
  }

  /** fsync of a directory, syncfs: every namespace change of this client is committed. */
  async fsyncdir(): Promise<Result<null>> {
    const e = this.ns ? await this.ns.drain() : 0;
    return e ? err(e) : { ok: true, value: null };
  }

  async release(fh: number): Promise<Result<null>> {
    const h = this.fileHandle(fh);
    if (!h) return err(Errno.EBADF);
    let e = 0;
    if (h.state) {
      e = await this.flushState(h.state);
      h.state.handles--;
      if (h.state.handles === 0) {
        // The error was reported by flush(); keeping unwritable data would leak memory.
        if (e) h.state.discard();
        if (h.state.isClean()) this.files.delete(h.ino);
      }
    }
    this.handles.delete(fh);
    this.queueSessionOp({ op: 'release', ino: h.ino, handle: fh });
    this.ns?.poke();
    return e ? err(e) : { ok: true, value: null };
  }

  /**
   * Open handles are recorded in the namespace so that an unlinked file keeps its data
   * until the last close, but no caller waits for that: registrations are batched
   * (within SESSION_FLUSH_MS of an open, RELEASE_FLUSH_MS of a release, or once
   * SESSION_BATCH_MAX of them wait) and sent as one `handles`
   * command, one Raft entry; an open and its release still waiting in the
   * same batch cancel out, so a short-lived open costs no namespace write at all. This
   * client's own unlink/rmdir/rename/link first sends what is pending, so its semantics
   * are exact; another client's unlink within the flush interval of an open may remove
   * the inode before the open is recorded (documented in docs/architecture.md).
   */
  private queueSessionOp(op: { op: 'open' | 'release'; ino: Ino; handle: number }): void {
    if (op.op === 'release') {
      const at = this.sessionOps.findIndex((o) => o.op === 'open' && o.handle === op.handle);
      if (at >= 0) {
        this.sessionOps.splice(at, 1);
        this.counters.sessionOpsCancelled += 2;
        return;
      }
    }
    this.sessionOps.push(op);
    if (this.sessionOps.length >= SESSION_BATCH_MAX) {
      this.flushSessionOps();
      return;
    }
    const waitMs = op.op === 'open' ? SESSION_FLUSH_MS : RELEASE_FLUSH_MS;
    const dueMs = performance.now() + waitMs;
    if (this.sessionTimer && this.sessionDueMs <= dueMs) return;
    if (this.sessionTimer) clearTimeout(this.sessionTimer);
    this.sessionDueMs = dueMs;
    this.sessionTimer = setTimeout(() => this.flushSessionOps(), waitMs);
  }

  /**
   * After a session gap the leader may have closed this session's handles (a mount it
   * did not hear from for --session-idle): every open file handle is registered again,
   * in order with the rest (an open already recorded is written again, no harm). What
   * an unlinked file lost while the session was closed stays lost (it was reclaimed).
   */
  private reassertHandles(gapMs: number): void {
    const pending = new Set(this.sessionOps.map((o) => o.handle));
    let n = 0;
    for (const [fh, h] of this.handles) {
      if (h.kind !== 'file' || pending.has(fh)) continue;
      this.queueSessionOp({ op: 'open', ino: h.ino, handle: fh });
      n++;
    }
    this.counters.handlesReasserted += n;
    if (n > 0) this.log?.info({ gapMs: Math.round(gapMs), handles: n }, 'session renewed after a gap: open handles registered again');
  }

  private flushSessionOps(): void {
    if (this.sessionTimer) clearTimeout(this.sessionTimer);
    this.sessionTimer = null;
    const ops = this.sessionOps.splice(0);
    if (ops.length === 0) return;
    // One command (one Raft entry) for the whole batch, applied in order.
    const items = ops.map((o) => ({ open: o.op === 'open', ino: o.ino, handle: o.handle }));
    if (this.ns) {
      // In order with this client's other changes (a create still queued comes first).
      this.ns.enqueueHandles({ op: 'handles', session: this.opts.sessionId, items });
      return;
    }
    const run = this.meta
      .execute({ op: 'handles', session: this.opts.sessionId, items })
      .then(
        (r) => {
          if (!r.ok) this.counters.releaseErrors += items.length;
          else this.counters.releaseErrors += r.value.skipped;
        },
        () => {
          this.counters.releaseErrors += items.length;
        },
      )
      .finally(() => this.releases.delete(run));
    this.releases.add(run);
  }

  /** Sends pending handle registrations and waits for them (before this client unlinks). */
  private async syncSessionOps(): Promise<void> {
    if (this.sessionOps.length > 0) this.flushSessionOps();
    if (this.releases.size > 0) await Promise.all([...this.releases]);
  }

  /** Waits until background releases are below the bound (called before new opens). */
  private async releaseBackpressure(): Promise<void> {
    while (this.releases.size >= RELEASES_IN_FLIGHT_MAX) await Promise.race(this.releases);
  }

  /** Waits for every background release (tests), or at most `boundMs`; false if some are left. */
  async settle(boundMs = Infinity): Promise<boolean> {
    if (this.sessionOps.length > 0) this.flushSessionOps();
    const all = (async () => {
      while (this.releases.size > 0) await Promise.all([...this.releases]);
      if (this.ns) await this.ns.drain();
      return true;
    })();
    if (!Number.isFinite(boundMs)) return all;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), boundMs)));
    try {
      return await Promise.race([all, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  async fallocate(fh: number, mode: number, offset: number, length: number): Promise<Result<null>> {
    const h = this.fileHandle(fh);
    if (!h || !h.state) return err(Errno.EBADF);
    // Only plain allocation (mode 0) is supported: it extends the size like posix_fallocate.
    if (mode !== 0) return err(Errno.ENOTSUP);
    const end = offset + length;
    if (end > h.state.size) {
      const r = await this.setattr(h.ino, { size: end });
      if (!r.ok) return r;
    }
    return { ok: true, value: null };
  }

  /** Flush every open file (graceful shutdown). Returns the number of files that failed. */
  async flushAll(): Promise<number> {
    this.stopWriteback();
    let failed = 0;
    for (const st of this.files.values()) if (await this.flushState(st)) failed++;
    // Unmount is a sync point: every namespace change is committed first.
    if (this.ns && (await this.ns.drain())) failed++;
    await this.settle(SHUTDOWN_RELEASE_WAIT_MS);
    this.ns?.session.stop();
    return failed;
  }

  // ---- directories -----------------------------------------------------------------------

  async opendir(ino: Ino): Promise<Result<number>> {
    const r = await this.getattr(ino);
    if (!r.ok) return r;
    if ((r.value.mode & S_IFMT) !== S_IFDIR) return err(Errno.ENOTDIR);
    const fh = this.nextFh++;
    // A leased directory whose every entry's attributes are known here is listed whole now.
    const listing = this.leasedListing(ino);
    this.handles.set(fh, { kind: 'dir', ino, entries: listing ?? [], done: listing !== null });
    return { ok: true, value: fh };
  }

  /** A leased directory's listing with every entry's attributes known here, or null. */
  private leasedListing(ino: Ino): DirHandle['entries'] | null {
    const ns = this.ns;
    const list = ns?.list(ino);
    if (!ns || !list) return null;
    const out: DirHandle['entries'] = [];
    for (const e of list) {
      const attr = ns.attrOf(e.ino);
      if (!attr) return null;
      out.push({ ...e, attr });
    }
    return out;
  }

  /** Entries from `offset` on; at least `want` of them unless the directory ends first. */
  async readdir(fh: number, offset: number, want: number): Promise<Result<DirListing>> {
    const h = this.handles.get(fh);
    if (!h || h.kind !== 'dir') return err(Errno.EBADF);
    const needed = offset + want;
    if (!h.done) await this.settled(h.ino);
    while (!h.done && h.entries.length + 2 < needed) {
      const after = h.entries.length > 0 ? h.entries[h.entries.length - 1].name : null;
      const page = await this.meta.readdir(h.ino, after, this.opts.readdirPageEntries, this.sid);
      if (!page.ok) return page;
      const ns = this.ns;
      h.entries.push(...(ns ? page.value.entries.map((e) => ({ ...e, attr: ns.attrOf(e.ino) ?? e.attr })) : page.value.entries));
      h.done = page.value.done;
      if (h.done) ns?.listed(h.ino);
    }
    const out: DirListing['entries'] = [];
    for (let pos = offset; pos < needed; pos++) {
      if (pos === 0) out.push({ name: '.', ino: h.ino, type: S_IFDIR, attr: null, nextOffset: 1 });
      else if (pos === 1) out.push({ name: '..', ino: h.ino, type: S_IFDIR, attr: null, nextOffset: 2 });
      else {
        const e = h.entries[pos - 2];
        if (!e) break;
        out.push({ name: e.name, ino: e.ino, type: e.type, attr: this.withLocal(e.attr), nextOffset: pos + 1 });
      }
    }
    return { ok: true, value: { entries: out } };
  }

  releasedir(fh: number): Result<null> {
    const h = this.handles.get(fh);
    if (!h || h.kind !== 'dir') return err(Errno.EBADF);
    this.handles.delete(fh);
    return { ok: true, value: null };
  }

  // ---- data plane -----------------------------------------------------------------------

  private readonly fileIo = {
    readRef: async (ref: ChunkRef, offset: number, length: number, sequential: boolean) =>
      ref.inline ? ref.inline.subarray(offset, Math.min(offset + length, ref.inline.length)) : this.cache.read(ref, offset, length, sequential),
    uploadChunk: (layout: Layout, data: Buffer, index: number) => this.uploadChunk(layout, data, index),
    loadRefs: async (ino: Ino, fromIndex: number, count: number) => {
      await this.settled(ino);
      const r = await this.meta.getChunks(ino, fromIndex, count);
      return r.ok ? r.value : r.errno;
    },
  };

  private async nextChunkId(): Promise<number> {
    while (this.chunkIds.next >= this.chunkIds.end) {
      if (!this.chunkIdWait) {
        const count = this.opts.chunkIdBatch;
        this.chunkIdWait = this.meta
          .execute({ op: 'allocChunkIds', count })
          .then((r) => {
            if (!r.ok) return r.errno;
            this.chunkIds = { next: r.value.first, end: r.value.first + count };
            return 0;
          })
          .finally(() => {
            this.chunkIdWait = null;
          });
      }
      const e = await this.chunkIdWait;
      if (e) throw Object.assign(new Error('chunk id allocation failed'), { errno: e });
    }
    return this.chunkIds.next++;
  }

  private async uploadChunk(layout: Layout, data: Buffer, index: number): Promise<ChunkRef> {
    const chunkId = await this.nextChunkId();
    const written = await this.io.write(layout, chunkId, data);
    this.counters.uploads++;
    this.counters.uploadBytes += data.length;
    const ref: ChunkRef = { index, chunkId, sizeBytes: data.length, placement: written.placement };
    if (written.ec) ref.ec = written.ec;
    return ref;
  }
}
