// FUSE ops adapter: turns kernel requests from the native binding into Vfs calls and
// Vfs results into replies. No filesystem logic lives here, only translation.
import { readFile } from 'node:fs/promises';
import type { Attr, Result } from '../meta/types.js';
import { Errno, S_IFMT } from '../meta/types.js';
import { Arg, ATTR_FIELDS, loadNative, Op, OpenFlag, SetAttr } from './binding.js';
import type { NativeFuse, Req, Session } from './binding.js';
import type { FuseVfs, OpenResult } from './vfs-api.js';
import type { SetAttrFields } from '../meta/types.js';

export interface AdapterOptions {
  /** Seconds the kernel may cache a name → inode answer. */
  entryTimeoutS: number;
  /** Seconds the kernel may cache attributes. */
  attrTimeoutS: number;
  /** Seconds the kernel may cache "no such name". 0 disables negative caching. */
  negativeTimeoutS: number;
  maxWriteBytes: number;
  maxReadaheadBytes: number;
  /** Extra -o options (comma-separated). */
  extraOptions: string;
}

export const DEFAULT_ADAPTER_OPTIONS: AdapterOptions = {
  entryTimeoutS: 1,
  attrTimeoutS: 1,
  negativeTimeoutS: 0,
  maxWriteBytes: 1024 * 1024,
  maxReadaheadBytes: 4 * 1024 * 1024,
  extraOptions: '',
};

/** Observes every finished request, for metrics. */
export type OpObserver = (op: number, errno: number, startNs: bigint) => void;

/** How long unmount waits for requests already in JavaScript to be answered. */
const UNMOUNT_DRAIN_MS = 5_000;
const EINTR = 4;
/**
 * An interrupted request whose caller is not dying (it caught the signal, or the signal
 * is a stop) is answered normally; the caller is looked at again this often, in case a
 * fatal signal follows (the kernel sends one INTERRUPT per request)...
 */
const INTERRUPT_RECHECK_MS = 100;
/** ...and at most this many times (1 min): past it the request's own deadlines rule. */
const INTERRUPT_RECHECKS_MAX = 600;

/** Signals whose default action is to stop, continue or nothing: they never kill. */
const NON_FATAL_DEFAULT = [17, 18, 19, 20, 21, 22, 23, 28]; // CHLD CONT STOP TSTP TTIN TTOU URG WINCH
const SIGKILL_BIT = 1n << 8n;
const FATAL_BY_DEFAULT = NON_FATAL_DEFAULT.reduce((m, sig) => m & ~(1n << BigInt(sig - 1)), (1n << 64n) - 1n);

/**
 * Whether /proc/<tid>/status text says the thread is dying: SIGKILL pending (the kernel
 * turns every fatal signal of a thread group into a pending SIGKILL on each thread), or a
 * pending signal that is not blocked, ignored or caught and whose default action kills.
 */
export function fatalSignalPending(status: string): boolean {
  const mask = (field: string): bigint => {
    const m = new RegExp(`^${field}:\\s*([0-9a-fA-F]+)`, 'm').exec(status);
    return m ? BigInt(`0x${m[1]}`) : 0n;
  };
  const pending = mask('SigPnd') | mask('ShdPnd');
  if (pending & SIGKILL_BIT) return true;
  return (pending & ~mask('SigBlk') & ~mask('SigIgn') & ~mask('SigCgt') & FATAL_BY_DEFAULT) !== 0n;
}

/** Whether the thread that sent a request is dying, or cannot be seen (then: answer it). */
async function callerDying(tid: number): Promise<boolean> {
  // 0: the caller is in a pid namespace this process cannot see.
  if (tid <= 0) return true;
  try {
    return fatalSignalPending(await readFile(`/proc/${tid}/status`, 'latin1'));
  } catch {
    return true;
  }
}

const enum ReqState {
  PENDING,
  ANSWERED,
  /** Answered EINTR on an interrupt: the call's own answer, when it comes, is dropped. */
  INTERRUPTED,
}

/** A request handed to JavaScript, until it is answered (exactly once). */
interface Pending {
  readonly req: Req;
  readonly op: number;
  /** Thread id of the caller, as the kernel sent it. */
  readonly tid: number;
  readonly start: bigint;
  state: ReqState;
  interruptSeen: boolean;
}

export const OP_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Op).map(([k, v]) => [v, k.toLowerCase()]));

const BLOCK_UNIT = 512;

export function attrArray(a: Attr): Float64Array {
  const out = new Float64Array(ATTR_FIELDS);
  out[0] = a.ino;
  out[1] = a.mode;
  out[2] = a.nlink;
  out[3] = a.uid;
  out[4] = a.gid;
  out[5] = a.rdev;
  out[6] = a.size;
  out[7] = Math.ceil(a.size / BLOCK_UNIT);
  out[8] = a.atime.sec;
  out[9] = a.atime.nsec;
  out[10] = a.mtime.sec;
  out[11] = a.mtime.nsec;
  out[12] = a.ctime.sec;
  out[13] = a.ctime.nsec;
  out[14] = 65536;
  return out;
}

export class FuseAdapter {
  private readonly native: NativeFuse;
  private readonly args: Float64Array;
  private session: Session | null = null;
  private exited: Promise<number>;
  private resolveExit: (code: number) => void = () => undefined;
  private inflight = 0;
  private onIdle: (() => void) | null = null;
  /**
   * Requests in JavaScript not answered yet, by request pointer. A pointer is unique only
   * while its request is unanswered (libfuse reuses the memory), so entries leave at the
   * answer and everything after that goes through the Pending object, never the pointer.
   */
  private readonly live = new Map<Req, Pending>();
  readonly interrupts = { seen: 0, answered: 0, undone: 0 };

  constructor(
    private readonly vfs: FuseVfs,
    private readonly opts: AdapterOptions = DEFAULT_ADAPTER_OPTIONS,
    private readonly observe: OpObserver = () => undefined,
  ) {
    this.native = loadNative();
    this.args = new Float64Array(this.native.ARG_COUNT);
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  get requestsInFlight(): number {
    return this.inflight;
  }

  /**
   * Claims the one answer of a request: true once, for whoever answers first (the call's
   * result or an interrupt); after that the request pointer must not be used again.
   */
  private claim(p: Pending, state: ReqState.ANSWERED | ReqState.INTERRUPTED): boolean {
    if (p.state !== ReqState.PENDING) return false;
    p.state = state;
    this.live.delete(p.req);
    return true;
  }

  /** The bookkeeping of an answered request (once per request). */
  private settle(p: Pending, errno: number): void {
    this.inflight--;
    if (this.inflight === 0 && this.onIdle) this.onIdle();
    this.observe(p.op, errno, p.start);
  }

  /**
   * The kernel interrupted a request: its caller got a signal. Only a dying caller gets
   * EINTR (at once, whatever the call is waiting for), as NFS does since TASK_KILLABLE: a
   * process that handles signals (timers, SIGCHLD, Go's preemption) gets its answer as
   * usual, since most programs do not expect EINTR from stat or mkdir. A call already sent
   * to the meta service may still commit after the EINTR, as a local filesystem may
   * complete a syscall before the signal lands; what it opened is then closed (undo()).
   */
  private interrupted(p: Pending): void {
    if (p.state !== ReqState.PENDING || p.interruptSeen) return;
    p.interruptSeen = true;
    this.interrupts.seen++;
    void (async () => {
      for (let i = 0; i < INTERRUPT_RECHECKS_MAX && p.state === ReqState.PENDING; i++) {
        if (await callerDying(p.tid)) {
          if (!this.claim(p, ReqState.INTERRUPTED)) return;
          this.native.replyErr(p.req, EINTR);
          this.interrupts.answered++;
          this.settle(p, EINTR);
          return;
        }
        await new Promise<void>((resolve) => setTimeout(resolve, INTERRUPT_RECHECK_MS).unref());
      }
    })();
  }

  /** A call answered after its request got EINTR: release what the kernel never saw. */
  private undo(p: Pending, value: unknown): void {
    if (p.op === Op.OPEN || p.op === Op.CREATE) {
      this.interrupts.undone++;
      void Promise.resolve(this.vfs.release((value as OpenResult).fh)).catch(() => undefined);
    } else if (p.op === Op.OPENDIR) {
      this.interrupts.undone++;
      this.vfs.releasedir(value as number);
    }
  }

  /** Mount at `mountpoint`; throws on failure (the caller checks the mount point first). */
  mount(mountpoint: string, fsname: string): void {
    // default_permissions: the kernel checks mode/uid/gid on every access, so the
    // namespace need not (docs/decisions/0002-permissions.md). allow_other: every user
    // of the machine sees the mount, as with a real filesystem.
    const options = ['default_permissions', 'allow_other', `fsname=${fsname}`, 'subtype=dfs'];
    if (this.opts.extraOptions) options.push(this.opts.extraOptions);
    this.session = this.native.mount(
      mountpoint,
      options.join(','),
      this.opts.maxWriteBytes,
      this.opts.maxReadaheadBytes,
      false,
      this.args,
      (op, name, name2, data) => this.dispatch(op, name, name2, data),
    );
  }

  /**
   * Detach the mount (lazily: a process that still has a file open keeps the kernel
   * connection until our /dev/fuse descriptor closes) and end the session. Requests
   * already handed to JavaScript may still reply; their replies are then dropped.
   */
  async unmount(): Promise<void> {
    const session = this.session;
    if (!session) return;
    this.session = null;
    this.native.unmount(session);
    await this.finish(session);
  }

  /** Free a session once no request is being answered, then report the exit. */
  private async finish(session: Session, code = 0): Promise<void> {
    // Replies reference the session: free it only once no request is being answered.
    // A handler stuck past the bound leaks the session rather than risk a use-after-free.
    if (this.inflight > 0) {
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<boolean>((resolve) => (this.onIdle = () => resolve(true)));
      const expired = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), UNMOUNT_DRAIN_MS)));
      const drained = await Promise.race([idle, expired]);
      clearTimeout(timer);
      this.onIdle = null;
      if (!drained) {
        this.resolveExit(code);
        return;
      }
    }
    this.native.destroy(session);
    this.resolveExit(code);
  }

  /** Resolves when the kernel ends the session (unmounted from outside, or unmount()). */
  whenExited(): Promise<number> {
    return this.exited;
  }

  private dispatch(op: number, name: string | null, name2: string | null, data: Buffer | null): void {
    const a = this.args;
    if (op === Op.EXIT) {
      const session = this.session;
      this.session = null;
      if (session) void this.finish(session, a[Arg.OFF]);
      return;
    }
    if (op === Op.INTERRUPT) {
      // The request is unanswered (libfuse tells of no other), so its pointer is unique.
      const p = this.live.get(a[Arg.REQ]);
      if (p) this.interrupted(p);
      return;
    }
    // Copy what the handler needs now: the shared array is overwritten by the next request.
    const p: Pending = { req: a[Arg.REQ], op, tid: a[Arg.PID], start: process.hrtime.bigint(), state: ReqState.PENDING, interruptSeen: false };
    const ino = a[Arg.INO];
    this.inflight++;
    this.live.set(p.req, p);
    if (a[Arg.INTR]) this.interrupted(p);
    let result: Promise<number>;
    try {
      result = this.handle(op, p, ino, name, name2, data);
    } catch (e) {
      result = Promise.reject(e);
    }
    result.then(
      (errno) => {
        if (p.state === ReqState.ANSWERED) this.settle(p, errno);
      },
      (e: unknown) => {
        if (this.claim(p, ReqState.ANSWERED)) this.native.replyErr(p.req, Errno.EIO);
        if (p.state === ReqState.ANSWERED) this.settle(p, Errno.EIO);
        process.emitWarning(`dfs fuse: ${OP_NAMES[op] ?? op} failed: ${e instanceof Error ? e.stack : String(e)}`);
      },
    );
  }

  /**
   * Answers `p` with `r` unless it was answered already (interrupted): then a value the
   * call produced is undone, and the errno reported is EINTR, what the caller saw.
   */
  private replyResult<T>(p: Pending, r: Result<T>, ok: (v: T) => void): number {
    if (!this.claim(p, ReqState.ANSWERED)) {
      if (r.ok) this.undo(p, r.value);
      return EINTR;
    }
    if (!r.ok) {
      this.native.replyErr(p.req, r.errno);
      return r.errno;
    }
    ok(r.value);
    return 0;
  }

  /** Answers `p` with an errno (0: success without data) unless it was answered already. */
  private replyErr(p: Pending, errno: number): number {
    if (!this.claim(p, ReqState.ANSWERED)) return EINTR;
    this.native.replyErr(p.req, errno);
    return errno;
  }

  private entry(p: Pending, r: Result<Attr>): number {
    return this.replyResult(p, r, (attr) => this.native.replyEntry(p.req, attrArray(attr), this.opts.entryTimeoutS, this.opts.attrTimeoutS));
  }

  private caller() {
    return { uid: this.args[Arg.UID], gid: this.args[Arg.GID] };
  }

  private async handle(op: number, p: Pending, ino: number, name: string | null, name2: string | null, data: Buffer | null): Promise<number> {
    const a = this.args;
    const n = this.native;
    const vfs = this.vfs;
    switch (op) {
      case Op.LOOKUP: {
        const r = await vfs.lookup(ino, name!);
        if (!r.ok && r.errno === Errno.ENOENT && this.opts.negativeTimeoutS > 0) {
          if (!this.claim(p, ReqState.ANSWERED)) return EINTR;
          n.replyNegative(p.req, this.opts.negativeTimeoutS);
          return r.errno;
        }
        return this.entry(p, r);
      }
      case Op.GETATTR:
        return this.replyResult(p, await vfs.getattr(ino), (attr) => n.replyAttr(p.req, attrArray(attr), this.opts.attrTimeoutS));
      case Op.SETATTR: {
        const toSet = a[Arg.TOSET];
        const set: SetAttrFields = {};
        if (toSet & SetAttr.MODE) set.mode = a[Arg.S_MODE] & 0o7777;
        if (toSet & SetAttr.UID) set.uid = a[Arg.S_UID];
        if (toSet & SetAttr.GID) set.gid = a[Arg.S_GID];
        if (toSet & SetAttr.SIZE) set.size = a[Arg.S_SIZE];
        if (toSet & SetAttr.ATIME_NOW) set.atime = 'now';
        else if (toSet & SetAttr.ATIME) set.atime = { sec: a[Arg.S_ATIME_S], nsec: a[Arg.S_ATIME_NS] };
        if (toSet & SetAttr.MTIME_NOW) set.mtime = 'now';
        else if (toSet & SetAttr.MTIME) set.mtime = { sec: a[Arg.S_MTIME_S], nsec: a[Arg.S_MTIME_NS] };
        return this.replyResult(p, await vfs.setattr(ino, set), (attr) => n.replyAttr(p.req, attrArray(attr), this.opts.attrTimeoutS));
      }
      case Op.READLINK:
        return this.replyResult(p, await vfs.readlink(ino), (t) => n.replyReadlink(p.req, t));
      case Op.MKNOD: {
        const caller = this.caller();
        return this.entry(p, await vfs.mknod(ino, name!, a[Arg.MODE], a[Arg.RDEV], caller));
      }
      case Op.MKDIR: {
        const caller = this.caller();
        return this.entry(p, await vfs.mkdir(ino, name!, a[Arg.MODE], caller));
      }
      case Op.SYMLINK: {
        const caller = this.caller();
        return this.entry(p, await vfs.symlink(ino, name!, name2!, caller));
      }
      case Op.LINK: {
        const newParent = a[Arg.INO2];
        return this.entry(p, await vfs.link(ino, newParent, name!));
      }
      case Op.UNLINK:
        return this.replyResult(p, await vfs.unlink(ino, name!), () => n.replyErr(p.req, 0));
      case Op.RMDIR:
        return this.replyResult(p, await vfs.rmdir(ino, name!), () => n.replyErr(p.req, 0));
      case Op.RENAME: {
        const newParent = a[Arg.INO2];
        const flags = a[Arg.FLAGS];
        return this.replyResult(p, await vfs.rename(ino, name!, newParent, name2!, flags), () => n.replyErr(p.req, 0));
      }
      case Op.OPEN: {
        const flags = a[Arg.FLAGS];
        return this.replyResult(p, await vfs.open(ino, flags), (o) => n.replyOpen(p.req, o.fh, o.keepCache ? OpenFlag.KEEP_CACHE : 0));
      }
      case Op.CREATE: {
        const flags = a[Arg.FLAGS];
        const mode = a[Arg.MODE];
        const caller = this.caller();
        return this.replyResult(p, await vfs.create(ino, name!, mode, flags, caller), (o) =>
          n.replyCreate(p.req, attrArray(o.attr), this.opts.entryTimeoutS, this.opts.attrTimeoutS, o.fh, 0),
        );
      }
      case Op.READ: {
        const fh = a[Arg.FH];
        const size = a[Arg.SIZE];
        const off = a[Arg.OFF];
        return this.replyResult(p, await vfs.read(fh, off, size), (bufs) => {
          if (bufs.length === 1) n.replyBuf(p.req, bufs[0]);
          else if (bufs.length <= 64) n.replyBufs(p.req, bufs);
          else n.replyBuf(p.req, Buffer.concat(bufs));
        });
      }
      case Op.WRITE: {
        const fh = a[Arg.FH];
        const off = a[Arg.OFF];
        return this.replyResult(p, await vfs.write(fh, off, data!), (count) => n.replyWrite(p.req, count));
      }
      case Op.FLUSH:
        return this.replyResult(p, await vfs.flush(a[Arg.FH]), () => n.replyErr(p.req, 0));
      case Op.FSYNC:
        return this.replyResult(p, await vfs.fsync(a[Arg.FH]), () => n.replyErr(p.req, 0));
      case Op.RELEASE:
        return this.replyResult(p, await vfs.release(a[Arg.FH]), () => n.replyErr(p.req, 0));
      case Op.FALLOCATE: {
        const fh = a[Arg.FH];
        const mode = a[Arg.FLAGS];
        const off = a[Arg.OFF];
        const len = a[Arg.SIZE];
        return this.replyResult(p, await vfs.fallocate(fh, mode, off, len), () => n.replyErr(p.req, 0));
      }
      case Op.OPENDIR:
        return this.replyResult(p, await vfs.opendir(ino), (fh) => n.replyOpen(p.req, fh, 0));
      case Op.READDIR:
      case Op.READDIRPLUS: {
        const plus = op === Op.READDIRPLUS;
        const fh = a[Arg.FH];
        const size = a[Arg.SIZE];
        const off = a[Arg.OFF];
        // A dirent takes at least 24 bytes (plain) or ~150 (plus): ask for what can fit.
        const want = Math.max(1, Math.ceil(size / (plus ? 150 : 32)));
        return this.replyResult(p, await vfs.readdir(fh, off, want), (listing) => {
          const stride = plus ? 3 + ATTR_FIELDS : 3;
          const nums = new Float64Array(listing.entries.length * stride);
          const names: string[] = [];
          listing.entries.forEach((e, i) => {
            names.push(e.name);
            const base = i * stride;
            nums[base] = e.nextOffset;
            if (plus) {
              nums[base + 1] = e.attr ? this.opts.entryTimeoutS : 0;
              nums[base + 2] = e.attr ? this.opts.attrTimeoutS : 0;
              if (e.attr) nums.set(attrArray(e.attr), base + 3);
              else {
                nums[base + 3] = e.ino;
                nums[base + 4] = e.type;
              }
            } else {
              nums[base + 1] = e.ino;
              nums[base + 2] = e.type;
            }
          });
          n.replyDir(p.req, size, plus, names, nums);
        });
      }
      case Op.RELEASEDIR:
        return this.replyResult(p, vfs.releasedir(a[Arg.FH]), () => n.replyErr(p.req, 0));
      case Op.FSYNCDIR:
        return this.replyResult(p, await vfs.fsyncdir(), () => n.replyErr(p.req, 0));
      case Op.STATFS:
        return this.replyResult(p, await vfs.statfs(), (s) => {
          const bsize = s.blockSizeBytes;
          n.replyStatfs(
            p.req,
            new Float64Array([
              bsize,
              bsize,
              Math.floor(s.totalBytes / bsize),
              Math.floor(s.freeBytes / bsize),
              Math.floor(s.availBytes / bsize),
              s.files + s.freeFiles,
              s.freeFiles,
              s.freeFiles,
              s.nameMaxBytes,
            ]),
          );
        });
      case Op.SETXATTR: {
        const flags = a[Arg.FLAGS];
        return this.replyResult(p, await vfs.setxattr(ino, name!, data ?? Buffer.alloc(0), flags), () => n.replyErr(p.req, 0));
      }
      case Op.GETXATTR: {
        const size = a[Arg.SIZE];
        return this.replyResult(p, await vfs.getxattr(ino, name!), (value) => {
          if (size === 0) n.replyXattr(p.req, value.length);
          else if (value.length > size) n.replyErr(p.req, Errno.ERANGE);
          else n.replyBuf(p.req, value);
        });
      }
      case Op.LISTXATTR: {
        const size = a[Arg.SIZE];
        return this.replyResult(p, await vfs.listxattr(ino), (names) => {
          const buf = Buffer.from(names.map((x) => x + '\0').join(''), 'latin1');
          if (size === 0) n.replyXattr(p.req, buf.length);
          else if (buf.length > size) n.replyErr(p.req, Errno.ERANGE);
          else n.replyBuf(p.req, buf);
        });
      }
      case Op.REMOVEXATTR:
        return this.replyResult(p, await vfs.removexattr(ino, name!), () => n.replyErr(p.req, 0));
      default:
        return this.replyErr(p, Errno.ENOSYS);
    }
  }
}

/** File type of a mode, for tests and logs. */
export function fileType(mode: number): number {
  return mode & S_IFMT;
}
