// FUSE ops adapter: turns kernel requests from the native binding into Vfs calls and
// Vfs results into replies. No filesystem logic lives here, only translation.
import type { Attr, Result } from '../meta/types.js';
import { Errno, S_IFMT } from '../meta/types.js';
import { Arg, ATTR_FIELDS, loadNative, Op, OpenFlag, SetAttr } from './binding.js';
import type { NativeFuse, Req, Session } from './binding.js';
import type { FuseVfs } from './vfs-api.js';
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
    // Copy what the handler needs now: the shared array is overwritten by the next request.
    const req: Req = a[Arg.REQ];
    const ino = a[Arg.INO];
    const start = process.hrtime.bigint();
    this.inflight++;
    const done = (errno: number) => {
      this.inflight--;
      if (this.inflight === 0 && this.onIdle) this.onIdle();
      this.observe(op, errno, start);
    };
    let p: Promise<number>;
    try {
      p = this.handle(op, req, ino, name, name2, data);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(done, (e: unknown) => {
      this.native.replyErr(req, Errno.EIO);
      done(Errno.EIO);
      process.emitWarning(`dfs fuse: ${OP_NAMES[op] ?? op} failed: ${e instanceof Error ? e.stack : String(e)}`);
    });
  }

  private replyResult<T>(req: Req, r: Result<T>, ok: (v: T) => void): number {
    if (!r.ok) {
      this.native.replyErr(req, r.errno);
      return r.errno;
    }
    ok(r.value);
    return 0;
  }

  private entry(req: Req, r: Result<Attr>): number {
    return this.replyResult(req, r, (attr) => this.native.replyEntry(req, attrArray(attr), this.opts.entryTimeoutS, this.opts.attrTimeoutS));
  }

  private caller() {
    return { uid: this.args[Arg.UID], gid: this.args[Arg.GID] };
  }

  private async handle(op: number, req: Req, ino: number, name: string | null, name2: string | null, data: Buffer | null): Promise<number> {
    const a = this.args;
    const n = this.native;
    const vfs = this.vfs;
    switch (op) {
      case Op.LOOKUP: {
        const r = await vfs.lookup(ino, name!);
        if (!r.ok && r.errno === Errno.ENOENT && this.opts.negativeTimeoutS > 0) {
          n.replyNegative(req, this.opts.negativeTimeoutS);
          return r.errno;
        }
        return this.entry(req, r);
      }
      case Op.GETATTR:
        return this.replyResult(req, await vfs.getattr(ino), (attr) => n.replyAttr(req, attrArray(attr), this.opts.attrTimeoutS));
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
        return this.replyResult(req, await vfs.setattr(ino, set), (attr) => n.replyAttr(req, attrArray(attr), this.opts.attrTimeoutS));
      }
      case Op.READLINK:
        return this.replyResult(req, await vfs.readlink(ino), (t) => n.replyReadlink(req, t));
      case Op.MKNOD: {
        const caller = this.caller();
        return this.entry(req, await vfs.mknod(ino, name!, a[Arg.MODE], a[Arg.RDEV], caller));
      }
      case Op.MKDIR: {
        const caller = this.caller();
        return this.entry(req, await vfs.mkdir(ino, name!, a[Arg.MODE], caller));
      }
      case Op.SYMLINK: {
        const caller = this.caller();
        return this.entry(req, await vfs.symlink(ino, name!, name2!, caller));
      }
      case Op.LINK: {
        const newParent = a[Arg.INO2];
        return this.entry(req, await vfs.link(ino, newParent, name!));
      }
      case Op.UNLINK:
        return this.replyResult(req, await vfs.unlink(ino, name!), () => n.replyErr(req, 0));
      case Op.RMDIR:
        return this.replyResult(req, await vfs.rmdir(ino, name!), () => n.replyErr(req, 0));
      case Op.RENAME: {
        const newParent = a[Arg.INO2];
        const flags = a[Arg.FLAGS];
        return this.replyResult(req, await vfs.rename(ino, name!, newParent, name2!, flags), () => n.replyErr(req, 0));
      }
      case Op.OPEN: {
        const flags = a[Arg.FLAGS];
        return this.replyResult(req, await vfs.open(ino, flags), (o) => n.replyOpen(req, o.fh, o.keepCache ? OpenFlag.KEEP_CACHE : 0));
      }
      case Op.CREATE: {
        const flags = a[Arg.FLAGS];
        const mode = a[Arg.MODE];
        const caller = this.caller();
        return this.replyResult(req, await vfs.create(ino, name!, mode, flags, caller), (o) =>
          n.replyCreate(req, attrArray(o.attr), this.opts.entryTimeoutS, this.opts.attrTimeoutS, o.fh, 0),
        );
      }
      case Op.READ: {
        const fh = a[Arg.FH];
        const size = a[Arg.SIZE];
        const off = a[Arg.OFF];
        return this.replyResult(req, await vfs.read(fh, off, size), (bufs) => {
          if (bufs.length === 1) n.replyBuf(req, bufs[0]);
          else if (bufs.length <= 64) n.replyBufs(req, bufs);
          else n.replyBuf(req, Buffer.concat(bufs));
        });
      }
      case Op.WRITE: {
        const fh = a[Arg.FH];
        const off = a[Arg.OFF];
        return this.replyResult(req, await vfs.write(fh, off, data!), (count) => n.replyWrite(req, count));
      }
      case Op.FLUSH:
        return this.replyResult(req, await vfs.flush(a[Arg.FH]), () => n.replyErr(req, 0));
      case Op.FSYNC:
        return this.replyResult(req, await vfs.fsync(a[Arg.FH]), () => n.replyErr(req, 0));
      case Op.RELEASE:
        return this.replyResult(req, await vfs.release(a[Arg.FH]), () => n.replyErr(req, 0));
      case Op.FALLOCATE: {
        const fh = a[Arg.FH];
        const mode = a[Arg.FLAGS];
        const off = a[Arg.OFF];
        const len = a[Arg.SIZE];
        return this.replyResult(req, await vfs.fallocate(fh, mode, off, len), () => n.replyErr(req, 0));
      }
      case Op.OPENDIR:
        return this.replyResult(req, await vfs.opendir(ino), (fh) => n.replyOpen(req, fh, 0));
      case Op.READDIR:
      case Op.READDIRPLUS: {
        const plus = op === Op.READDIRPLUS;
        const fh = a[Arg.FH];
        const size = a[Arg.SIZE];
        const off = a[Arg.OFF];
        // A dirent takes at least 24 bytes (plain) or ~150 (plus): ask for what can fit.
        const want = Math.max(1, Math.ceil(size / (plus ? 150 : 32)));
        return this.replyResult(req, await vfs.readdir(fh, off, want), (listing) => {
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
          n.replyDir(req, size, plus, names, nums);
        });
      }
      case Op.RELEASEDIR:
        return this.replyResult(req, vfs.releasedir(a[Arg.FH]), () => n.replyErr(req, 0));
      case Op.FSYNCDIR:
        // Namespace changes are durable when their command returns.
        n.replyErr(req, 0);
        return 0;
      case Op.STATFS:
        return this.replyResult(req, await vfs.statfs(), (s) => {
          const bsize = s.blockSizeBytes;
          n.replyStatfs(
            req,
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
        return this.replyResult(req, await vfs.setxattr(ino, name!, data ?? Buffer.alloc(0), flags), () => n.replyErr(req, 0));
      }
      case Op.GETXATTR: {
        const size = a[Arg.SIZE];
        return this.replyResult(req, await vfs.getxattr(ino, name!), (value) => {
          if (size === 0) n.replyXattr(req, value.length);
          else if (value.length > size) n.replyErr(req, Errno.ERANGE);
          else n.replyBuf(req, value);
        });
      }
      case Op.LISTXATTR: {
        const size = a[Arg.SIZE];
        return this.replyResult(req, await vfs.listxattr(ino), (names) => {
          const buf = Buffer.from(names.map((x) => x + '\0').join(''), 'latin1');
          if (size === 0) n.replyXattr(req, buf.length);
          else if (buf.length > size) n.replyErr(req, Errno.ERANGE);
          else n.replyBuf(req, buf);
        });
      }
      case Op.REMOVEXATTR:
        return this.replyResult(req, await vfs.removexattr(ino, name!), () => n.replyErr(req, 0));
      default:
        n.replyErr(req, Errno.ENOSYS);
        return Errno.ENOSYS;
    }
  }
}

/** File type of a mode, for tests and logs. */
export function fileType(mode: number): number {
  return mode & S_IFMT;
}
