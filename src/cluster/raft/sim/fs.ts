// The simulated disk of one node: a LogFs (what the production LogStore writes through)
// kept in memory, with the failure modes of a real disk under a power loss.
//  - A write changes the file's contents when it completes; it is durable only once a
//    datasync of that file completed after it. Creates, renames and unlinks are durable
//    once the directory was synced.
//  - crash(): every write not covered by a datasync is lost, except a random prefix of
//    them in order (the last one possibly torn: a prefix of its bytes) — a disk writes back
//    in any amount, never out of order within a file in this model; the namespace either
//    keeps every unsynced change or loses them all.
//  - faults: each operation completes after a seeded latency (sometimes a long stall),
//    and may fail with EIO or (writes, truncates) ENOSPC.
// Operations complete as events of the node's incarnation: a node that crashed never sees
// its pending operations finish (they did not happen).
import type { LogFile, LogFs } from '../log-fs.js';
import type { Prng } from './prng.js';
import type { Scheduler } from './scheduler.js';

export interface DiskFaultOptions {
  /** Latency of each operation, uniform in [min, max] ms. */
  minLatencyMs: number;
  maxLatencyMs: number;
  /** Probability that an operation stalls for stallLatencyMs instead (a slow disk). */
  stallProbability: number;
  stallLatencyMs: number;
  /** Per write/datasync/rename probability of EIO. */
  eioProbability: number;
  /** Per write/truncate probability of ENOSPC. */
  enospcProbability: number;
  /**
   * A broken disk for the self-tests: datasync reports success without making anything
   * durable (a volatile write cache that lies), so acknowledged entries die in a crash.
   */
  lyingFsync: boolean;
}

export const DEFAULT_DISK_FAULTS: DiskFaultOptions = {
  minLatencyMs: 0.05,
  maxLatencyMs: 0.6,
  stallProbability: 0.002,
  stallLatencyMs: 40,
  eioProbability: 0,
  enospcProbability: 0,
  lyingFsync: false,
};

type PendingOp = { kind: 'write'; pos: number; buf: Buffer } | { kind: 'truncate'; size: number };

class Inode {
  /** What a reader sees now. */
  data: Buffer = Buffer.alloc(0);
  /** What survives a crash. */
  durable: Buffer = Buffer.alloc(0);
  /** Changes since the last datasync, oldest first. */
  pending: PendingOp[] = [];
  /**
   * Pending changes a failed write-back lost: still read back (the page stays cached,
   * marked clean), never made durable by a later datasync — Linux after a failed fsync.
   */
  doomed = new Set<PendingOp>();
}

/** A datasync that worked: every pending change but the doomed ones reaches the disk. */
function syncInode(ino: Inode): void {
  let durable = ino.durable;
  for (const op of ino.pending) if (!ino.doomed.has(op)) durable = applyOp(durable, op);
  ino.durable = durable === ino.durable ? Buffer.from(durable) : durable;
  ino.pending = [];
  ino.doomed.clear();
}

function applyOp(data: Buffer, op: PendingOp): Buffer {
  if (op.kind === 'truncate') {
    if (op.size <= data.length) return Buffer.from(data.subarray(0, op.size));
    const out = Buffer.alloc(op.size);
    data.copy(out);
    return out;
  }
  const end = op.pos + op.buf.length;
  const out = end > data.length ? Buffer.alloc(end) : Buffer.from(data);
  if (end > data.length) data.copy(out);
  op.buf.copy(out, op.pos);
  return out;
}

class SimFsError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

export interface SimFsStats {
  writes: number;
  datasyncs: number;
  bytesWritten: number;
  eio: number;
  enospc: number;
  crashes: number;
  tornWrites: number;
  lostWrites: number;
}

export class SimFs implements LogFs {
  /** Live namespace: path -> inode. */
  private names = new Map<string, Inode>();
  private durableNames = new Map<string, Inode>();
  private dirs = new Set<string>();
  /** Owner (node incarnation) whose events carry completions. */
  owner = 0;
  readonly stats: SimFsStats = { writes: 0, datasyncs: 0, bytesWritten: 0, eio: 0, enospc: 0, crashes: 0, tornWrites: 0, lostWrites: 0 };

  /** Optional event log of namespace changes and crashes (the cluster's trace). */
  trace: (ev: string) => void = () => undefined;

  /**
   * A disk that fails every write for a while (issue 16: a full disk until space is freed,
   * or a failing one until the transient EIO clears): ENOSPC fails every write and
   * truncate, EIO every write, datasync and rename. Null: only the random faults.
   */
  outage: 'ENOSPC' | 'EIO' | null = null;

  constructor(
    private readonly sched: Scheduler,
    private readonly rng: Prng,
    public faults: DiskFaultOptions,
  ) {}

  private latency(): number {
    const f = this.faults;
    if (f.stallProbability > 0 && this.rng.chance(f.stallProbability)) return f.stallLatencyMs;
    return f.minLatencyMs + (f.maxLatencyMs - f.minLatencyMs) * (this.rng.int(1000) / 1000);
  }

  /** Complete `fn` after a latency as an event of the current owner; a fault rejects instead. */
  private op<T>(fn: () => T, faults: { eio?: boolean; enospc?: boolean; onEio?: () => void } = {}): Promise<T> {
    const owner = this.owner;
    const eio = faults.eio === true && (this.outage === 'EIO' || (this.faults.eioProbability > 0 && this.rng.chance(this.faults.eioProbability)));
    const enospc = !eio && faults.enospc === true && (this.outage === 'ENOSPC' || (this.faults.enospcProbability > 0 && this.rng.chance(this.faults.enospcProbability)));
    return new Promise<T>((resolve, reject) => {
      this.sched.at(
        this.latency(),
        () => {
          if (owner !== this.owner) return; // the node crashed meanwhile: never completes
          if (eio) {
            this.stats.eio++;
            faults.onEio?.();
            reject(new SimFsError('EIO', 'simulated I/O error'));
            return;
          }
          if (enospc) {
            this.stats.enospc++;
            reject(new SimFsError('ENOSPC', 'simulated full disk'));
            return;
          }
          try {
            resolve(fn());
          } catch (e) {
            reject(e as Error);
          }
        },
        owner,
      );
    });
  }

  private inode(path: string): Inode {
    const ino = this.names.get(path);
    if (!ino) throw new SimFsError('ENOENT', path);
    return ino;
  }

  mkdirp(dir: string): Promise<void> {
    return this.op(() => {
      this.dirs.add(dir);
    });
  }

  list(dir: string): Promise<string[]> {
    return this.op(() => {
      const prefix = `${dir}/`;
      const out: string[] = [];
      for (const p of this.names.keys()) if (p.startsWith(prefix) && !p.slice(prefix.length).includes('/')) out.push(p.slice(prefix.length));
      return out.sort();
    });
  }

  readFile(path: string): Promise<Buffer> {
    return this.op(() => Buffer.from(this.inode(path).data));
  }

  /** A handle; `dsync` models O_DSYNC (openFile): writeDurable is one write that is durable when it completes. */
  private handle(path: string, ino: Inode, dsync = false): LogFile {
    const owner = this.owner;
    const live = (): void => {
      if (owner !== this.owner) throw new SimFsError('EBADF', `${path}: handle from before a crash`);
    };
    /** A write that completes as one event; with `durable` (O_DSYNC) it is durable then too. */
    const write = (buf: Buffer, position: number, durable: boolean): Promise<void> => {
      const copy = Buffer.from(buf);
      return this.op(
        () => {
          live();
          const w: PendingOp = { kind: 'write', pos: position, buf: copy };
          ino.data = applyOp(ino.data, w);
          ino.pending.push(w);
          this.stats.writes++;
          this.stats.bytesWritten += copy.length;
          if (!durable) return;
          this.stats.datasyncs++;
          if (this.faults.lyingFsync) return;
          syncInode(ino);
        },
        {
          eio: true,
          enospc: true,
          // A failed write may still have reached the page cache, never the disk.
          onEio: () => {
            if (owner !== this.owner || !this.rng.chance(0.5)) return;
            const w: PendingOp = { kind: 'write', pos: position, buf: copy };
            ino.data = applyOp(ino.data, w);
            ino.pending.push(w);
            ino.doomed.add(w);
          },
        },
      );
    };
    return {
      ...(dsync ? { writeDurable: (buf: Buffer, position: number) => write(buf, position, true) } : {}),
      write: (buf, position) => write(buf, position, false),
      datasync: () =>
        this.op(
          () => {
            live();
            this.stats.datasyncs++;
            if (this.faults.lyingFsync) return;
            syncInode(ino);
          },
          // The failed write-back marks the pages clean: what was pending is lost to the disk.
          { eio: true, onEio: () => ino.pending.forEach((op) => ino.doomed.add(op)) },
        ),
      truncate: (size) =>
        this.op(
          () => {
            live();
            const t: PendingOp = { kind: 'truncate', size };
            ino.data = applyOp(ino.data, t);
            ino.pending.push(t);
          },
          { enospc: true },
        ),
      close: () => this.op(() => undefined),
    };
  }

  createFile(path: string): Promise<LogFile> {
    return this.op(() => {
      let ino = this.names.get(path);
      if (ino) {
        const t: PendingOp = { kind: 'truncate', size: 0 };
        ino.data = applyOp(ino.data, t);
        ino.pending.push(t);
      } else {
        ino = new Inode();
        this.names.set(path, ino);
      }
      this.trace(`create ${path}`);
      return this.handle(path, ino);
    });
  }

  openFile(path: string): Promise<LogFile> {
    return this.op(() => this.handle(path, this.inode(path), true));
  }

  rename(source: string, target: string): Promise<void> {
    return this.op(
      () => {
        const ino = this.inode(source);
        this.names.delete(source);
        this.names.set(target, ino);
        this.trace(`rename ${source} ${target}`);
      },
      { eio: true },
    );
  }

  unlink(path: string): Promise<void> {
    return this.op(() => {
      this.inode(path);
      this.names.delete(path);
      this.trace(`unlink ${path}`);
    });
  }

  syncDir(dir: string): Promise<void> {
    return this.op(
      () => {
        if (this.faults.lyingFsync) return;
        // Directory entries under `dir` become durable as they are now.
        const prefix = `${dir}/`;
        for (const p of [...this.durableNames.keys()]) if (p.startsWith(prefix) && !this.names.has(p)) this.durableNames.delete(p);
        for (const [p, ino] of this.names) if (p.startsWith(prefix)) this.durableNames.set(p, ino);
        this.trace(`syncDir ${dir}`);
      },
      { eio: true },
    );
  }

  /**
   * Power loss: the node's pending operations never complete (the next incarnation is a new owner),
   * unsynced writes are lost but for a random in-order prefix (the last possibly torn).
   */
  crash(): void {
    this.owner = -1; // the next incarnation sets its own

    this.stats.crashes++;
    const keepNamespace = this.rng.chance(0.5);
    const inodes = new Set<Inode>([...this.names.values(), ...this.durableNames.values()]);
    for (const ino of inodes) {
      let data = ino.durable;
      const keep = ino.pending.length === 0 ? 0 : this.rng.int(ino.pending.length + 1);
      for (let i = 0; i < keep; i++) {
        const op = ino.pending[i];
        if (ino.doomed.has(op)) continue;
        if (i === keep - 1 && op.kind === 'write' && op.buf.length > 1 && this.rng.chance(0.3)) {
          const cut = 1 + this.rng.int(op.buf.length - 1);
          data = applyOp(data, { kind: 'write', pos: op.pos, buf: op.buf.subarray(0, cut) });
          this.stats.tornWrites++;
        } else {
          data = applyOp(data, op);
        }
      }
      this.stats.lostWrites += ino.pending.length - keep;
      ino.data = data;
      ino.durable = Buffer.from(data);
      ino.pending = [];
      ino.doomed.clear();
    }
    if (!keepNamespace) this.names = new Map(this.durableNames);
    this.durableNames = new Map(this.names);
    this.trace(`crash: namespace ${keepNamespace ? 'kept' : 'reverted'}: ${[...this.names.keys()].join(' ')}`);
  }
}
