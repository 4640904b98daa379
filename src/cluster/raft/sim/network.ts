// The simulated network: every message gets a seeded delay (which also reorders), may be
// dropped or duplicated, and is dropped when a partition separates the two ends (at send
// and again at delivery). Queues are bounded per directed link.
import type { Message, NodeId } from '../types.js';
import type { Prng } from './prng.js';

export interface NetworkOptions {
  minDelayTicks: number;
  maxDelayTicks: number;
  dropProbability: number;
  duplicateProbability: number;
  /** Messages in flight per directed link; more are dropped (a full socket buffer). */
  maxInFlightPerLink: number;
}

export interface InFlight {
  seq: number;
  msg: Message;
  deliverAt: number;
  /** Incarnation of the sender when it sent (to route reportSnapshot back). */
  fromIncarnation: number;
}

export type SendOutcome = 'queued' | 'dropped' | 'blocked' | 'full';

function cloneMessage(m: Message): Message {
  return {
    ...m,
    entries: m.entries.map((e) => ({ term: e.term, index: e.index, type: e.type, data: e.data })),
    snapshot: m.snapshot
      ? { meta: { ...m.snapshot.meta, conf: { voters: [...m.snapshot.meta.conf.voters], learners: [...m.snapshot.meta.conf.learners] } }, data: m.snapshot.data }
      : null,
  };
}

export class SimNetwork {
  private queue: InFlight[] = [];
  private seq = 0;
  private readonly perLink = new Map<string, number>();
  /** Directed links "a>b" that are cut. */
  private readonly blocked = new Set<string>();
  opts: NetworkOptions;

  constructor(
    private readonly rng: Prng,
    opts: NetworkOptions,
  ) {
    this.opts = opts;
  }

  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  partitioned(): boolean {
    return this.blocked.size > 0;
  }

  /** Cut every link from group a to group b (and back, if symmetric). */
  partition(a: readonly NodeId[], b: readonly NodeId[], symmetric: boolean): void {
    for (const x of a) {
      for (const y of b) {
        this.blocked.add(`${x}>${y}`);
        if (symmetric) this.blocked.add(`${y}>${x}`);
      }
    }
  }

  heal(): void {
    this.blocked.clear();
  }

  send(msg: Message, now: number, fromIncarnation: number): SendOutcome {
    if (this.isBlocked(msg.from, msg.to)) return 'blocked';
    if (this.rng.chance(this.opts.dropProbability)) return 'dropped';
    const copies = this.rng.chance(this.opts.duplicateProbability) ? 2 : 1;
    const link = `${msg.from}>${msg.to}`;
    for (let k = 0; k < copies; k++) {
      const n = this.perLink.get(link) ?? 0;
      if (n >= this.opts.maxInFlightPerLink) return k === 0 ? 'full' : 'queued';
      this.perLink.set(link, n + 1);
      const delay = this.rng.range(this.opts.minDelayTicks, this.opts.maxDelayTicks);
      this.queue.push({ seq: this.seq++, msg: cloneMessage(msg), deliverAt: now + delay, fromIncarnation });
    }
    return 'queued';
  }

  /** Messages due at `now`, in queue order. */
  dueCount(now: number): number {
    let n = 0;
    for (const f of this.queue) if (f.deliverAt <= now) n++;
    return n;
  }

  /** Remove and return one due message chosen at random (reordering among due ones). */
  takeDue(now: number): InFlight | null {
    const due: number[] = [];
    for (let i = 0; i < this.queue.length; i++) if (this.queue[i].deliverAt <= now) due.push(i);
    if (due.length === 0) return null;
    const i = this.rng.pick(due);
    const f = this.queue[i];
    this.queue.splice(i, 1);
    const link = `${f.msg.from}>${f.msg.to}`;
    this.perLink.set(link, (this.perLink.get(link) ?? 1) - 1);
    return f;
  }

  inFlight(): number {
    return this.queue.length;
  }

  /** Drop everything addressed to `node` (e.g. it was removed for good). */
  dropTo(node: NodeId): void {
    const keep: InFlight[] = [];
    for (const f of this.queue) {
      if (f.msg.to === node) {
        const link = `${f.msg.from}>${f.msg.to}`;
        this.perLink.set(link, (this.perLink.get(link) ?? 1) - 1);
      } else keep.push(f);
    }
    this.queue = keep;
  }
}
