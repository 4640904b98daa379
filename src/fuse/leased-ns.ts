// The client's side of decision 0012: directories this session holds exclusively,
// answered and changed in memory, and one ordered queue of every namespace change this
// client makes, sent to the leader as batches (one Raft entry each).
//
// - A directory this client creates gets its exclusive lease with it (`mkdir` with
//   `lease`, or any mkdir inside a leased directory): its view is complete from the
//   start (empty) and only this client changes it until the lease is recalled.
// - A directory that already exists is taken once this client changes it synchronously
//   INTEREST_OPS times within INTEREST_MS, a whole listing of it counting as one (an
//   `rm -rf` or untar into it): `leaseGrant`,
//   then its listing (at most LOAD_ENTRIES_MAX entries) and attributes are read, in the
//   queue's order, and become its view. After a recall the client does not take that
//   directory again (another client works there); a refused grant keeps it from trying
//   for a while, doubling each time (RETAKE_MIN_MS to RETAKE_MAX_MS).
// - In a leased directory, create/mknod/mkdir/symlink, unlink, rmdir (of a leased empty
//   subdirectory) and rename of a non-directory within or between leased directories are
//   answered here (new inode numbers come from a delegated range) and queued ("async").
//   Anything else is sent synchronously, in the same queue, so order is kept; a
//   synchronous change that touches a leased directory gives the lease back first.
// - The queue is sent in order: runs of async changes as one `batch` of the session
//   (every op needs the session's lease at apply, so a revoked lease stops it), a
//   synchronous change as the plain last op of that batch, whose own answer it waits for.
//   Async changes wait at most FLUSH_MS; a synchronous one, a recall or a drain sends at once.
// - A batch that does not apply whole "poisons" the client: what applied is a prefix, the
//   rest of the queue is dropped (sync changes in it fail with EIO), every view is given
//   up, and the next sync point (fsync, close of a written file, unmount) returns EIO
//   (ENOSPC when the leader refused the batch for space: decision 0014).
// - While the session is not valid (its renewals not acknowledged; client-session.ts),
//   no answer comes from a view.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { MetaApi } from '../meta/api.js';
import type { Attr, Caller, Command, CommandValues, Ino, Result, SetAttrFields, Timespec } from '../meta/types.js';
import { BATCH_OPS_MAX, BATCHABLE_OPS, DIR_SIZE_BYTES, Errno, RENAME_NOREPLACE, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, S_ISGID, S_ISUID, S_IXGRP } from '../meta/types.js';
import type { ClientSession } from './client-session.js';

/** What a dropped change is reported as: ENOSPC when the leader refused it for space, EIO for anything else. */
function reported(errno: number): number {
  return errno === Errno.ENOSPC ? Errno.ENOSPC : Errno.EIO;
}

/**
 * A batch whose answer did not arrive (timeout, connection lost, leader change, a gate
 * that could not clear a lease) is sent again, as the same envelope, for this long before
 * the client gives up on it (and is poisoned): a leader failover loses nothing.
 */
const RESEND_MS = 30_000;
const RESEND_BACKOFF_MAX_MS = 1_000;
/**
 * Answers after which the same envelope may have applied or not (no answer in time), or
 * was refused before it was proposed (a lease not released in time). EIO is an answer:
 * the leader refusing writes while no quorum can write (decision 0014) or a failed store;
 * the batch then poisons the client at once rather than keep the writer waiting.
 */
const NO_ANSWER = new Set<number>([Errno.ETIMEDOUT, Errno.EAGAIN]);

/** Async changes are sent within this bound (the durability contract's "≤ 50 ms"). */
export const FLUSH_MS = 50;
/** Bytes of names and targets per batch (a Raft entry stays well below its limit). */
const BATCH_BYTES_MAX = 512 * 1024;
/** A range of inode numbers allocInodes gave this session: [first, end), `next` the next free. */
interface InoRange {
  first: Ino;
  next: Ino;
  end: Ino;
}

/** Inode numbers asked for at once; the next range is fetched when half is used. */
const INO_RANGE = 1024;
/** Entries kept in all views together; beyond it the oldest views are given back. */
const VIEW_ENTRIES_MAX = 200_000;
/**
 * A new file still open for writing holds its create (and what follows) back this long at
 * most, so that a crash leaves it either absent or committed with its data (the create and
 * the close's commit travel in one batch), as ext4's auto_da_alloc tries for renames.
 */
export const HOLD_MS = 1_000;
/** How long a change waits for the session to become valid before going synchronous. */
const VALID_WAIT_MS = 2_000;
/** Synchronous changes in one directory, within INTEREST_MS, that make the client take its lease. */
const INTEREST_OPS = 2;
const INTEREST_MS = 2_000;
/** Directories tracked for interest at once (the map is cleared past it). */
const INTEREST_DIRS_MAX = 10_000;
/** A directory with more entries than this is not taken (its listing would be the cost). */
export const LOAD_ENTRIES_MAX = 10_000;
/** Entries per readdir page while loading a listing. */
const LOAD_PAGE = 1_024;
/** After a recall or a refused grant, the directory is not taken again for this long, doubling up to the max. */
const RETAKE_MIN_MS = 2_000;
const RETAKE_MAX_MS = 60_000;

interface DirView {
  attr: Attr;
  entries: Map<string, { ino: Ino; type: number }>;
  /** Made by this client under the lease: it has no xattrs (a taken directory may have some). */
  made: boolean;
}

type Item =
  | { kind: 'async'; cmd: Command; touched: Ino[]; bytes: number; at: number; hold?: () => boolean }
  | { kind: 'sync'; cmd: Command; touched: Ino[]; bytes: number; at: number; resolve: (r: Result<unknown>) => void }
  /** Take the lease of an existing directory and load its view (see take()). */
  | { kind: 'take'; dir: Ino; touched: Ino[]; bytes: number; at: number };
type CmdItem = Exclude<Item, { kind: 'take' }>;

const isDir = (mode: number): boolean => (mode & S_IFMT) === S_IFDIR;
const isU32 = (n: number | undefined): boolean => n === undefined || (Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff);
const validTime = (t: Timespec | 'now' | undefined): boolean =>
  t === undefined || t === 'now' || (Number.isSafeInteger(t.sec) && Number.isInteger(t.nsec) && t.nsec >= 0 && t.nsec < 1e9);
/** What apply's validSetAttr accepts (a local answer must never be refused later). */
const validFields = (s: SetAttrFields): boolean => isU32(s.mode) && isU32(s.uid) && isU32(s.gid) && validTime(s.atime) && validTime(s.mtime);
const cmdBytes = (c: Command): number => 64 + ('name' in c ? c.name.length : 0) + ('newName' in c ? c.newName.length : 0) + ('target' in c ? c.target.length : 0);

export class LeasedNamespace {
  private readonly views = new Map<Ino, DirView>();
  private viewEntries = 0;
  /** Attributes of non-directories this client created in a leased directory, while it holds it. */
  private readonly predicted = new Map<Ino, Attr>();
  /** Queued changes per inode they touch (reads about it from the leader wait for 0). */
  private readonly pending = new Map<Ino, number>();
  /**
   * Directories whose views were dropped by a poisoned batch: the leader may still count
   * them as ours, so a sync change touching one gives it back first (a recall does too).
   */
  private readonly maybeHeld = new Set<Ino>();
  /**
   * Inodes created here whose creation a poisoned batch dropped (see poison()), with the
   * errno their files' commits report: ENOSPC when the leader refused for space, else EIO.
   */
  private readonly lost = new Map<Ino, number>();
  /** Existing directories being taken: queued or loading; a change in one waits for it. */
  private readonly taking = new Map<Ino, { done: Promise<void>; finish: () => void }>();
  /** Synchronous changes seen per directory not held (see INTEREST_OPS). */
  private readonly interest = new Map<Ino, { n: number; since: number }>();
  /** Directories to take once the synchronous change that asked is queued (queueTakes). */
  private readonly wanted = new Set<Ino>();
  /** Directories not to take before `until` (recalled or refused), and the next wait. */
  private readonly retake = new Map<Ino, { until: number; waitMs: number }>();

  /** True when this client's creation of `ino` was dropped: the file does not exist. */
  isLost(ino: Ino): boolean {
    return this.lost.has(ino);
  }

  /** Why a lost inode's creation was dropped, as its file's close or fsync reports it. */
  lostErrno(ino: Ino): number {
    return this.lost.get(ino) ?? Errno.EIO;
  }
  private queue: Item[] = [];
  private sending = false;
  private timer: NodeJS.Timeout | null = null;
  private drains = 0;
  private idle: Array<() => void> = [];
  private inos: InoRange = { first: 0, next: 0, end: 0 };
  private spare: InoRange | null = null;
  private fetching: Promise<void> | null = null;
  private chunkSizeBytes = 0;
  private poisoned = 0;
  /** The queue's own client id and sequence numbers (one batch in flight), for resending. */
  private readonly clientId = `ns-${randomUUID()}`;
  private seq = 0;
  /** The session's epoch the views are from (see ClientSession.epoch). */
  private epoch = 0;
  readonly counters = { asyncOps: 0, syncOps: 0, batches: 0, poisoned: 0, recalls: 0, released: 0, leasesTaken: 0, existingTaken: 0, takeFailed: 0, resent: 0 };

  constructor(
    private readonly meta: MetaApi,
    readonly session: ClientSession,
    private readonly note: (r: Result<unknown>) => void,
    private readonly log?: Logger,
  ) {}

  // ---- what the views answer ----------------------------------------------------------

  /** The view of a leased directory, when answers may come from it now. */
  view(dir: Ino): DirView | undefined {
    const v = this.views.get(dir);
    return v && this.trusted() ? v : undefined;
  }

  /**
   * Whether the views may answer: the session is valid and has been since they were
   * taken. After a gap the leader may have expired the session (its leases are gone)
   * and granted them to others: every view is given up, as after a poisoned batch.
   */
  private trusted(): boolean {
    if (!this.session.valid()) return false;
    if (this.session.epoch === this.epoch) return true;
    this.epoch = this.session.epoch;
    this.forgetViews('the session was not renewed in time: its leases may have expired');
    // After a long gap the leader's janitor may have closed the session (its inode ranges
    // too: src/daemon/session-janitor.ts): new creates take numbers from a new range.
    this.inos = { first: 0, next: 0, end: 0 };
    this.spare = null;
    return false;
  }

  /**
   * Every view is given up without a release (the leader may be unreachable, or may have
   * dropped them already): a later recall, or a sync change touching one, gives it back.
   */
  private forgetViews(why: string): void {
    if (this.views.size > 0) this.log?.warn({ why, leases: this.views.size }, 'giving up every directory view');
    for (const d of this.views.keys()) this.maybeHeld.add(d);
    for (const d of [...this.taking.keys()]) if (this.stopTaking(d)) this.maybeHeld.add(d);
    if (this.maybeHeld.size > VIEW_ENTRIES_MAX) this.maybeHeld.clear();
    this.views.clear();
    this.viewEntries = 0;
    this.predicted.clear();
  }

  /** True when the leader may count `dir` as this client's: held, being taken, or dropped by a poisoned batch. */
  mayHold(dir: Ino): boolean {
    return this.views.has(dir) || this.maybeHeld.has(dir) || this.taking.has(dir);
  }

  /** True when mayHold() can be true for some directory. */
  get mayHoldAny(): boolean {
    return this.views.size > 0 || this.maybeHeld.size > 0 || this.taking.size > 0;
  }

  /**
   * True when `ino` is known here to have no xattrs: a file or directory this client
   * created under a lease and still predicts (setting an xattr gives the prediction up).
   */
  xattrFree(ino: Ino): boolean {
    if (!this.trusted()) return false;
    const v = this.views.get(ino);
    return v ? v.made : this.predicted.has(ino);
  }

  /** Attributes known here: a leased directory's, or a file's this client created under a lease. */
  attrOf(ino: Ino): Attr | undefined {
    if (!this.trusted()) return undefined;
    return this.views.get(ino)?.attr ?? this.predicted.get(ino);
  }

  get leasedDirs(): number {
    return this.views.size;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Waits until no queued change touches any of `inos` (sending at once). */
  async settle(inos: readonly Ino[]): Promise<void> {
    if (!inos.some((i) => this.pending.has(i))) return;
    this.drains++;
    try {
      this.kick();
      while (inos.some((i) => this.pending.has(i))) await new Promise<void>((resolve) => this.idle.push(resolve));
    } finally {
      this.drains--;
    }
  }

  /** Sends everything queued and waits; returns (and clears) a poisoned session's error. */
  async drain(): Promise<number> {
    this.drains++;
    try {
      this.kick();
      while (this.queue.length > 0 || this.sending) await new Promise<void>((resolve) => this.idle.push(resolve));
    } finally {
      this.drains--;
    }
    return this.takePoison();
  }

  takePoison(): number {
    const e = this.poisoned;
    this.poisoned = 0;
    return e;
  }

  /** A directory whose lease the caller may use for an async change (waits briefly for validity). */
  async usable(dir: Ino): Promise<DirView | undefined> {
    const taking = this.taking.get(dir);
    if (taking) await taking.done;
    const v = this.views.get(dir);
    if (!v) {
      this.noteInterest(dir);
      return undefined;
    }
    if (this.trusted() || ((await this.session.waitValid(VALID_WAIT_MS)) && this.trusted())) return this.views.get(dir);
    // Cut off from the leader: give every lease back (in order) and go synchronous.
    this.releaseAll('session not renewed');
    return undefined;
  }

  // ---- async changes ---------------------------------------------------------------------

  /** A delegated inode number and its range, or null when none could be had (the caller goes synchronous). */
  private async takeIno(): Promise<{ ino: Ino; first: Ino } | null> {
    if (this.inos.next >= this.inos.end && this.spare) {
      this.inos = this.spare;
      this.spare = null;
    }
    if (this.inos.next >= this.inos.end) await this.fetchInos();
    if (this.inos.next >= this.inos.end && this.spare) {
      this.inos = this.spare;
      this.spare = null;
    }
    if (this.inos.next >= this.inos.end) return null;
    const ino = this.inos.next++;
    if (!this.spare && this.inos.end - this.inos.next < INO_RANGE / 2) void this.fetchInos();
    return { ino, first: this.inos.first };
  }

  private fetchInos(): Promise<void> {
    this.fetching ??= this.meta
      .execute({ op: 'allocInodes', session: this.session.id, count: INO_RANGE })
      .then(
        (r) => {
          if (!r.ok) return;
          this.chunkSizeBytes = r.value.chunkSizeBytes;
          const range = { first: r.value.first, next: r.value.first, end: r.value.first + INO_RANGE };
          if (this.inos.next >= this.inos.end) this.inos = range;
          else this.spare = range;
        },
        () => undefined,
      )
      .finally(() => (this.fetching = null));
    return this.fetching;
  }

  /** Warms up: a range of inode numbers before the first create needs it. */
  prefetch(): void {
    if (this.inos.next >= this.inos.end && !this.spare) void this.fetchInos();
  }

  private newAttr(parent: Attr, ino: Ino, mode: number, caller: Caller, now: Timespec, extra: { size: number; nlink: number; rdev: number }): Attr {
    // Exactly what apply's newInode() writes (then flush() bumps the version to 1).
    const setgid = (parent.mode & S_ISGID) !== 0;
    if (setgid && isDir(mode)) mode |= S_ISGID;
    return {
      ino,
      mode,
      uid: caller.uid,
      gid: setgid ? parent.gid : caller.gid,
      size: extra.size,
      nlink: extra.nlink,
      rdev: extra.rdev,
      atime: now,
      mtime: now,
      ctime: now,
      version: 1,
      chunkSizeBytes: (mode & S_IFMT) === S_IFREG ? this.chunkSizeBytes : 0,
      layout: { ...parent.layout },
    };
  }

  private touchDir(v: DirView, now: Timespec): void {
    v.attr = { ...v.attr, mtime: now, ctime: now, version: v.attr.version + 1 };
  }

  /**
   * A create (regular file, device, fifo, socket, symlink or directory) in a leased
   * directory, answered here; null when it must go to the leader instead.
   */
  async create(
    parent: Ino,
    name: string,
    mode: number,
    caller: Caller,
    now: Timespec,
    extra: { rdev?: number; target?: string; open?: { session: string; handle: number }; hold?: () => boolean },
  ): Promise<Result<Attr> | null> {
    let v = await this.usable(parent);
    if (!v) return null;
    if (v.entries.has(name)) return { ok: false, errno: Errno.EEXIST };
    if (this.chunkSizeBytes === 0 && (mode & S_IFMT) === S_IFREG) await this.fetchInos();
    const taken = await this.takeIno();
    // The awaits above may have seen the lease go (a recall) or the name appear.
    v = this.view(parent);
    if (taken === null || !v || (this.chunkSizeBytes === 0 && (mode & S_IFMT) === S_IFREG)) return null;
    const ino = taken.ino;
    if (v.entries.has(name)) return { ok: false, errno: Errno.EEXIST };
    const type = mode & S_IFMT;
    const dir = type === S_IFDIR;
    const target = extra.target;
    const attr = this.newAttr(v.attr, ino, mode, caller, now, {
      size: dir ? DIR_SIZE_BYTES : target !== undefined ? Buffer.byteLength(target, 'latin1') : 0,
      nlink: dir ? 2 : 1,
      rdev: extra.rdev ?? 0,
    });
    const delegated = { session: this.session.id, ino, first: taken.first };
    let cmd: Command;
    if (dir) cmd = { op: 'mkdir', parent, name, mode: mode & ~S_IFMT & 0o7777, caller, now, delegated };
    else if (type === S_IFLNK) cmd = { op: 'symlink', parent, name, target: target ?? '', caller, now, delegated };
    else {
      cmd = { op: 'mknod', parent, name, mode, rdev: extra.rdev ?? 0, caller, now, delegated };
      if (extra.open) cmd.open = extra.open;
    }
    v.entries.set(name, { ino, type });
    this.viewEntries++;
    if (dir) {
      v.attr = { ...v.attr, nlink: v.attr.nlink + 1 };
      this.addView(ino, attr);
    } else {
      this.predicted.set(ino, attr);
    }
    this.touchDir(v, now);
    this.enqueue(cmd, [parent, ino], extra.hold);
    this.boundViews();
    return { ok: true, value: attr };
  }

  /** unlink or rmdir in a leased directory; null when it must go to the leader. */
  async remove(parent: Ino, name: string, wantDir: boolean, now: Timespec): Promise<Result<null> | null> {
    const v = await this.usable(parent);
    if (!v) return null;
    const e = v.entries.get(name);
    if (!e) return { ok: false, errno: Errno.ENOENT };
    if (wantDir) {
      if (!isDir(e.type)) return { ok: false, errno: Errno.ENOTDIR };
      const sub = this.views.get(e.ino);
      // Emptiness is known only for a directory we hold.
      if (!sub) return null;
      if (sub.entries.size > 0) return { ok: false, errno: Errno.ENOTEMPTY };
      this.views.delete(e.ino);
      v.attr = { ...v.attr, nlink: v.attr.nlink - 1 };
    } else {
      if (isDir(e.type)) return { ok: false, errno: Errno.EISDIR };
      this.dropLink(e.ino, now);
    }
    v.entries.delete(name);
    this.viewEntries--;
    this.touchDir(v, now);
    this.enqueue(wantDir ? { op: 'rmdir', parent, name, now } : { op: 'unlink', parent, name, now }, [parent, e.ino]);
    return { ok: true, value: null };
  }

  private dropLink(ino: Ino, now: Timespec): void {
    const p = this.predicted.get(ino);
    if (!p) return;
    if (p.nlink <= 1) this.predicted.delete(ino);
    else this.predicted.set(ino, { ...p, nlink: p.nlink - 1, ctime: now, version: p.version + 1 });
  }

  /** rename of a non-directory within or between leased directories; null: to the leader. */
  async rename(parent: Ino, name: string, newParent: Ino, newName: string, flags: number, now: Timespec): Promise<Result<null> | null> {
    if (flags !== 0 && flags !== RENAME_NOREPLACE) return null;
    const from = await this.usable(parent);
    const to = await this.usable(newParent);
    if (!from || !to || this.view(parent) !== from || this.view(newParent) !== to) return null;
    const src = from.entries.get(name);
    if (!src) return { ok: false, errno: Errno.ENOENT };
    if (isDir(src.type)) return null;
    const dst = to.entries.get(newName);
    if (dst && dst.ino === src.ino) return { ok: true, value: null };
    if (dst && flags === RENAME_NOREPLACE) return { ok: false, errno: Errno.EEXIST };
    if (dst && isDir(dst.type)) return { ok: false, errno: Errno.EISDIR };
    const touched = [parent, newParent, src.ino];
    if (dst) {
      this.dropLink(dst.ino, now);
      touched.push(dst.ino);
    } else {
      this.viewEntries++;
    }
    from.entries.delete(name);
    this.viewEntries--;
    to.entries.set(newName, src);
    const p = this.predicted.get(src.ino);
    if (p) this.predicted.set(src.ino, { ...p, ctime: now, version: p.version + 1 });
    this.touchDir(from, now);
    if (to !== from) this.touchDir(to, now);
    this.enqueue({ op: 'rename', parent, name, newParent, newName, flags, now }, touched);
    return { ok: true, value: null };
  }

  /**
   * setattr without a size change of an inode this client predicts (a file it created, a
   * directory it holds), answered here and queued; null: to the leader. Mirrors apply's
   * setattr: a new owner clears set-uid (and set-gid with group-exec) of a regular file.
   */
  setattr(ino: Ino, set: SetAttrFields, now: Timespec): Result<Attr> | null {
    if (set.size !== undefined || !this.session.valid() || !validFields(set)) return null;
    const view = this.views.get(ino);
    const a = view?.attr ?? this.predicted.get(ino);
    if (!a) return null;
    let mode = a.mode;
    const next: Attr = { ...a };
    if (set.uid !== undefined || set.gid !== undefined) {
      if (set.uid !== undefined) next.uid = set.uid;
      if (set.gid !== undefined) next.gid = set.gid;
      if ((mode & S_IFMT) === S_IFREG) {
        mode &= ~S_ISUID;
        if ((mode & S_IXGRP) !== 0) mode &= ~S_ISGID;
      }
    }
    if (set.mode !== undefined) mode = (mode & S_IFMT) | (set.mode & 0o7777);
    next.mode = mode;
    if (set.atime !== undefined) next.atime = set.atime === 'now' ? now : set.atime;
    if (set.mtime !== undefined) next.mtime = set.mtime === 'now' ? now : set.mtime;
    next.ctime = now;
    next.version = a.version + 1;
    if (view) view.attr = next;
    else this.predicted.set(ino, next);
    this.enqueue({ op: 'setattr', ino, set, now }, [ino]);
    return { ok: true, value: next };
  }

  /** Entry of a leased directory: the inode, or null (no such name); undefined when not leased. */
  lookup(parent: Ino, name: string): { ino: Ino; type: number } | null | undefined {
    const v = this.view(parent);
    if (!v) return undefined;
    return v.entries.get(name) ?? null;
  }

  /** A leased directory's entries, in name (byte) order as the leader lists them. */
  list(dir: Ino): Array<{ name: string; ino: Ino; type: number }> | undefined {
    const v = this.view(dir);
    if (!v) return undefined;
    const out = [...v.entries].map(([name, e]) => ({ name, ino: e.ino, type: e.type }));
    // Names are byte strings (one char per byte), so code-unit order is byte order.
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return out;
  }

  // ---- leases ---------------------------------------------------------------------------

  private addView(dir: Ino, attr: Attr): void {
    this.views.set(dir, { attr, entries: new Map(), made: true });
    this.counters.leasesTaken++;
  }

  /** A directory the leader just created for this session with its lease (sync mkdir). */
  adopt(attr: Attr): void {
    if (!this.views.has(attr.ino)) this.addView(attr.ino, attr);
  }

  /**
   * This client just read `dir`'s whole listing from the leader: one change there now is
   * enough to take it (an `rm -rf` lists a directory, then removes what it holds).
   */
  listed(dir: Ino): void {
    this.noteInterest(dir);
  }

  /** A change in `dir` is about to go synchronous because no view of it is held (or it was listed). */
  private noteInterest(dir: Ino): void {
    if (this.taking.has(dir) || this.views.has(dir) || this.maybeHeld.has(dir) || !this.session.valid()) return;
    const now = performance.now();
    const r = this.retake.get(dir);
    if (r && now < r.until) return;
    let seen = this.interest.get(dir);
    if (!seen || now - seen.since > INTEREST_MS) {
      if (this.interest.size >= INTEREST_DIRS_MAX) this.interest.clear();
      seen = { n: 0, since: now };
      this.interest.set(dir, seen);
    }
    if (++seen.n < INTEREST_OPS) return;
    this.interest.delete(dir);
    this.wanted.add(dir);
  }

  /**
   * Queues the takes asked for: after the synchronous change that asked (queued just
   * before), so that change is not a conflict with the lease it led to.
   */
  private queueTakes(): void {
    for (const dir of this.wanted) {
      if (this.taking.has(dir) || this.views.has(dir) || this.maybeHeld.has(dir)) continue;
      let finish = (): void => undefined;
      const done = new Promise<void>((resolve) => (finish = resolve));
      this.taking.set(dir, { done, finish });
      this.pending.set(dir, (this.pending.get(dir) ?? 0) + 1);
      this.queue.push({ kind: 'take', dir, touched: [dir], bytes: 64, at: performance.now() });
    }
    this.wanted.clear();
  }

  /** `dir` is not taken again by this session. */
  private neverRetake(dir: Ino): void {
    if (this.retake.size >= INTEREST_DIRS_MAX) this.retake.clear();
    this.retake.set(dir, { until: Infinity, waitMs: RETAKE_MAX_MS });
  }

  /** `dir` is not taken again for a while (longer each time). */
  private backOff(dir: Ino): void {
    const r = this.retake.get(dir);
    const waitMs = r ? Math.min(RETAKE_MAX_MS, r.waitMs * 2) : RETAKE_MIN_MS;
    if (this.retake.size >= INTEREST_DIRS_MAX) this.retake.clear();
    this.retake.set(dir, { until: performance.now() + waitMs, waitMs });
  }

  /** Stops taking `dir` (recalled, given back, or failed); the changes waiting for it go on. */
  private stopTaking(dir: Ino): boolean {
    const t = this.taking.get(dir);
    if (!t) return false;
    this.taking.delete(dir);
    t.finish();
    return true;
  }

  /**
   * Takes an existing directory's lease (run from the queue, so every change queued before
   * is applied first), then reads its listing and attributes outside the queue. Once the
   * lease is ours no other client changes the directory, and this client's own changes to
   * it wait for the view (usable()) or give the lease back (beforeSync), so what is read
   * is its whole state. A recall meanwhile (taking is gone) leaves the view uninstalled;
   * the release it queued gives the lease back.
   */
  private async take(dir: Ino): Promise<void> {
    if (!this.taking.has(dir) || !this.trusted()) {
      this.stopTaking(dir);
      return;
    }
    const granted = await this.meta.execute({ op: 'leaseGrant', session: this.session.id, ino: dir, exclusive: true }).catch(() => null);
    if (!granted || !granted.ok) {
      // Someone else holds it, or the leader could not be reached (then the grant may
      // have applied: give it back, harmless if it did not).
      this.counters.takeFailed++;
      this.backOff(dir);
      if (this.stopTaking(dir) && !granted) this.release(dir, true);
      return;
    }
    void this.load(dir, this.epoch);
  }

  private async load(dir: Ino, epoch: number): Promise<void> {
    const entries = new Map<string, { ino: Ino; type: number }>();
    let attr: Attr | null = null;
    try {
      let after: string | null = null;
      for (;;) {
        const page = await this.meta.readdir(dir, after, LOAD_PAGE, this.session.id);
        if (!page.ok) break;
        for (const e of page.value.entries) entries.set(e.name, { ino: e.ino, type: e.type });
        if (entries.size > LOAD_ENTRIES_MAX) break;
        if (page.value.done || page.value.entries.length === 0) {
          const a = await this.meta.getattr(dir, this.session.id);
          if (a.ok && isDir(a.value.mode)) attr = a.value;
          break;
        }
        after = page.value.entries[page.value.entries.length - 1].name;
      }
    } catch {
      attr = null;
    }
    if (!this.stopTaking(dir)) return; // recalled or given back meanwhile: release queued
    if (attr === null || epoch !== this.epoch || !this.trusted()) {
      this.counters.takeFailed++;
      this.backOff(dir);
      this.release(dir, true);
      return;
    }
    this.views.set(dir, { attr, entries, made: false });
    this.viewEntries += entries.size;
    this.counters.leasesTaken++;
    this.counters.existingTaken++;
    this.boundViews();
  }

  /** A sync change touching `dirs` goes next: leases on them are given back first, in order. */
  beforeSync(dirs: readonly Ino[]): void {
    for (const d of dirs) {
      if (this.views.has(d)) this.release(d);
      else if (this.maybeHeld.delete(d) || this.stopTaking(d)) this.release(d, true);
    }
  }

  /** The leader recalls these leases: give them back now, with everything queued before. */
  recall(dirs: readonly Ino[]): void {
    this.counters.recalls += dirs.length;
    for (const d of dirs) {
      this.maybeHeld.delete(d);
      this.stopTaking(d);
      // Another client works there: not taken again by this session (a refused grant
      // only backs off; see backOff).
      this.neverRetake(d);
      this.release(d, true);
    }
    this.kick();
  }

  private release(dir: Ino, always = false): void {
    const v = this.views.get(dir);
    if (!v && !always) return;
    if (v) {
      this.views.delete(dir);
      this.viewEntries -= v.entries.size;
      // Others may change these files once the directory is theirs to change.
      for (const e of v.entries.values()) this.predicted.delete(e.ino);
    }
    this.counters.released++;
    this.enqueue({ op: 'leaseRelease', session: this.session.id, ino: dir }, [dir]);
  }

  private releaseAll(why: string): void {
    for (const d of [...this.taking.keys()]) if (this.stopTaking(d)) this.release(d, true);
    if (this.views.size === 0) return;
    this.log?.warn({ why, leases: this.views.size }, 'giving back every directory lease');
    for (const d of [...this.views.keys()]) this.release(d);
    this.predicted.clear();
  }

  /** The views stay bounded: the oldest are given back past VIEW_ENTRIES_MAX entries. */
  private boundViews(): void {
    if (this.viewEntries <= VIEW_ENTRIES_MAX) return;
    for (const d of [...this.views.keys()]) {
      if (this.viewEntries <= VIEW_ENTRIES_MAX * 0.75) break;
      this.release(d);
    }
  }

  // ---- the queue ------------------------------------------------------------------------

  private enqueue(cmd: Command, touched: Ino[], hold?: () => boolean): void {
    this.counters.asyncOps++;
    for (const i of touched) this.pending.set(i, (this.pending.get(i) ?? 0) + 1);
    const at = performance.now();
    this.queue.push(hold ? { kind: 'async', cmd, touched, bytes: cmdBytes(cmd), at, hold } : { kind: 'async', cmd, touched, bytes: cmdBytes(cmd), at });
    this.schedule();
  }

  /** A held create may have stopped holding (its file was closed): look at the queue again. */
  poke(): void {
    if (this.queue.length > 0 && !this.sending) this.schedule(true);
  }

  private holding(it: Item, now: number): boolean {
    return it.kind === 'async' && it.hold !== undefined && now - it.at < HOLD_MS && it.hold();
  }

  /** Index of the first item held back (queue.length when none is). */
  private firstHeld(): number {
    const now = performance.now();
    const at = this.queue.findIndex((it) => this.holding(it, now));
    return at < 0 ? this.queue.length : at;
  }

  /** Handle registrations (open/release) in order with the rest. */
  enqueueHandles(cmd: Extract<Command, { op: 'handles' }>): void {
    this.enqueue(cmd, cmd.items.map((i) => i.ino));
  }

  /** A change answered by the leader, sent after everything queued before it. */
  sync<R>(cmd: Command, touched: Ino[]): Promise<Result<R>> {
    this.counters.syncOps++;
    for (const i of touched) this.pending.set(i, (this.pending.get(i) ?? 0) + 1);
    const p = new Promise<Result<unknown>>((resolve) => this.queue.push({ kind: 'sync', cmd, touched, bytes: cmdBytes(cmd), at: performance.now(), resolve }));
    if (this.wanted.size > 0) this.queueTakes();
    this.kick();
    return p as Promise<Result<R>>;
  }

  private schedule(again = false): void {
    if (this.queue.length >= BATCH_OPS_MAX) return this.kick();
    if (this.sending) return;
    if (this.timer && !again) return;
    if (this.timer) clearTimeout(this.timer);
    const now = performance.now();
    // The head is due FLUSH_MS after it was queued; a held head when its hold runs out.
    const head = this.queue[0];
    const due = this.holding(head, now) ? head.at + HOLD_MS : head.at + FLUSH_MS;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.kick();
    }, Math.max(0, due - now));
  }

  /** Something waits for the queue (a sync change, a drain), or its head is due. */
  private urgent(): boolean {
    if (this.drains > 0 || this.queue.length >= BATCH_OPS_MAX || this.queue.some((i) => i.kind !== 'async')) return true;
    return this.firstHeld() > 0 && performance.now() - this.queue[0].at >= FLUSH_MS;
  }

  private kick(): void {
    if (this.sending) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    void this.run();
  }

  private async run(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        if (!this.urgent()) break;
        await this.send(this.cut());
      }
    } finally {
      this.sending = false;
      if (this.queue.length > 0) this.schedule(true);
      const idle = this.idle;
      this.idle = [];
      for (const w of idle) w();
    }
  }

  /**
   * The next batch: a run of async changes, ended by at most one sync change; it stops
   * before a held create unless something waits behind it.
   */
  private cut(): Item[] {
    const out: Item[] = [];
    let bytes = 0;
    const forced = this.drains > 0 || this.queue.some((i) => i.kind !== 'async');
    const limit = forced ? this.queue.length : this.firstHeld();
    for (const it of this.queue.slice(0, limit)) {
      // A take runs alone, after what is before it.
      if (it.kind === 'take') {
        if (out.length === 0) out.push(it);
        break;
      }
      if (out.length >= BATCH_OPS_MAX || (out.length > 0 && bytes + it.bytes > BATCH_BYTES_MAX)) break;
      if (it.kind === 'sync' && out.length > 0 && !BATCHABLE_OPS.has(it.cmd.op)) break;
      out.push(it);
      bytes += it.bytes;
      if (it.kind === 'sync') break;
    }
    this.queue.splice(0, out.length);
    return out;
  }

  private async send(items: Item[]): Promise<void> {
    const last = items[items.length - 1];
    if (last.kind === 'take') {
      try {
        await this.take(last.dir);
      } finally {
        this.unpend(last);
      }
      return;
    }
    await this.sendBatch(items as CmdItem[]);
  }

  /** A run of async changes, ended by at most one sync change. */
  private async sendBatch(items: CmdItem[]): Promise<void> {
    const last = items[items.length - 1];
    const tail = last.kind === 'sync' ? last : null;
    try {
      if (items.length === 1 && tail) {
        const r = await this.call(tail.cmd);
        this.note(r);
        tail.resolve(r);
        return;
      }
      this.counters.batches++;
      const ops = items.map((i) => i.cmd);
      const r = (await this.call({ op: 'batch', ops, session: this.session.id, ...(tail ? { lastPlain: true } : {}) })) as Result<CommandValues['batch']>;
      this.note(r);
      const asyncCount = tail ? items.length - 1 : items.length;
      if (r.ok && r.value.applied >= asyncCount) {
        if (tail) tail.resolve(r.value.applied === items.length ? { ok: true, value: r.value.last ?? null, ...(r.dirs ? { dirs: r.dirs } : {}) } : { ok: false, errno: r.value.errno });
        return;
      }
      const errno = r.ok ? r.value.errno : r.errno;
      const applied = r.ok ? r.value.applied : -1;
      this.poison(errno, applied, items);
      tail?.resolve({ ok: false, errno: reported(errno) });
    } finally {
      for (const it of items) this.unpend(it);
    }
  }

  /**
   * One command of the queue to the leader: as an envelope of the queue's own, sent again
   * while no answer comes (the dedup table answers a repeat that had applied), for at most
   * RESEND_MS and while the mount is up.
   */
  private async call(cmd: Command): Promise<Result<unknown>> {
    const exec = this.meta.executeEnvelope?.bind(this.meta);
    // A call that threw (connection gone) has no answer: sent again.
    const failed = { ok: false as const, errno: Errno.ETIMEDOUT, noAnswer: true as const };
    if (!exec) return this.meta.execute(cmd).catch(() => ({ ok: false as const, errno: Errno.EIO }));
    const envelope = { clientId: this.clientId, seq: ++this.seq, command: cmd };
    const until = performance.now() + RESEND_MS;
    for (let attempt = 0; ; attempt++) {
      const r = await exec(envelope).catch(() => failed);
      if (r.ok || (!r.noAnswer && !NO_ANSWER.has(r.errno)) || this.session.stopped || performance.now() >= until) return r;
      this.counters.resent++;
      await new Promise((resolve) => setTimeout(resolve, Math.min(RESEND_BACKOFF_MAX_MS, 50 * 2 ** attempt)));
    }
  }

  private unpend(it: Item): void {
    for (const i of it.touched) {
      const n = (this.pending.get(i) ?? 1) - 1;
      if (n <= 0) this.pending.delete(i);
      else this.pending.set(i, n);
    }
  }

  /**
   * A batch answered from our leases did not apply whole (applied -1: unknown, the call
   * failed). That is a bug or a lease lost behind our back: loud, and the suffix goes.
   */
  private poison(errno: number, applied: number, items: CmdItem[]): void {
    this.counters.poisoned++;
    const shown = reported(errno);
    this.poisoned = shown;
    const failed = applied >= 0 ? items[applied]?.cmd : undefined;
    const fields = { errno, applied, batch: items.length, failedOp: failed?.op, queued: this.queue.length };
    // The leader refusing new names while a disk is below its reserve (decision 0014) is
    // an operating condition, not a bug: said as such, and reported as ENOSPC.
    if (errno === Errno.ENOSPC) this.log?.warn(fields, 'namespace changes answered from a lease were refused for space (ENOSPC): dropping the rest and every lease; the next fsync/close reports ENOSPC');
    else this.log?.error(fields, 'namespace changes answered from a lease did not apply: dropping the rest and every lease; the next fsync/close reports EIO');
    const rest: CmdItem[] = [];
    for (const it of this.queue.splice(0)) {
      this.unpend(it);
      if (it.kind === 'take') this.stopTaking(it.dir);
      else rest.push(it);
      if (it.kind === 'sync') it.resolve({ ok: false, errno: shown });
    }
    // Inodes whose creation is gone (or, when the call itself failed, may be): their
    // files' later commits fail at once instead of each waiting for the leader again.
    if (this.lost.size > VIEW_ENTRIES_MAX) this.lost.clear();
    for (const it of [...items.slice(Math.max(0, applied)), ...rest]) {
      const c = it.cmd;
      if ((c.op === 'mknod' || c.op === 'mkdir' || c.op === 'symlink') && c.delegated) this.lost.set(c.delegated.ino, shown);
      // A release that did not apply (a batch refused whole, e.g. for space): still ours
      // at the leader, so a sync change touching it gives it back first.
      if (c.op === 'leaseRelease') this.maybeHeld.add(c.ino);
    }
    // Given back lazily (before a sync change that touches one, or when recalled): the
    // leader may be unreachable now, and nothing should queue behind releases.
    this.forgetViews('a batch did not apply');
  }

  /** After a sync change's answer: what it tells about inodes this client predicts. */
  learned(ino: Ino, attr: Attr | null): void {
    if (!this.predicted.has(ino)) return;
    if (attr) this.predicted.set(ino, attr);
    else this.predicted.delete(ino);
  }
}
