// The simulated network between the drivers: every message gets a seeded delay (which
// also reorders), may be dropped or duplicated, and is dropped when a partition separates
// the two ends (at send and again at delivery). In-flight messages are bounded per
// directed link. Each node gets a RaftTransport over it; like the gRPC transport it
// reports snapshot outcomes and, now and then, unreachable peers.
import type { RaftTransport } from '../driver.js';
import type { Message, NodeId } from '../types.js';
import type { Prng } from './prng.js';
import type { Scheduler } from './scheduler.js';

export interface NetworkOptions {
  minDelayMs: number;
  maxDelayMs: number;
  dropProbability: number;
  duplicateProbability: number;
  /** Messages in flight per directed link; more are dropped (a full socket buffer). */
  maxInFlightPerLink: number;
}

/** Where the network hands a message: the receiving node's live incarnation, if any. */
export interface Endpoint {
  /** Incarnation owner id (scheduler owner) now running, or null when down. */
  owner(): number | null;
  receive(m: Message): void;
  reportSnapshot(to: NodeId, ok: boolean): void;
  reportUnreachable(to: NodeId): void;
}

/** A copy of the structure (no node may share a mutable object with another); payload bytes are never written to, so they are shared. */
function cloneMessage(m: Message): Message {
  return {
    ...m,
    entries: m.entries.map((e) => ({ term: e.term, index: e.index, type: e.type, data: e.data })),
    snapshot: m.snapshot
      ? { meta: { ...m.snapshot.meta, conf: { voters: [...m.snapshot.meta.conf.voters], learners: [...m.snapshot.meta.conf.learners] } }, data: m.snapshot.data }
      : null,
  };
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
}

export class SimNetwork {
  private readonly perLink = new Map<string, number>();
  /** Directed links "a>b" that are cut. */
  private readonly blocked = new Set<string>();
  private readonly endpoints = new Map<NodeId, Endpoint>();
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0 };
  opts: NetworkOptions;
  /** Optional event log (the cluster's trace). */
  trace: (ev: string) => void = () => undefined;

  constructor(
    private readonly sched: Scheduler,
    private readonly rng: Prng,
    opts: NetworkOptions,
  ) {
    this.opts = opts;
  }

  attach(id: NodeId, ep: Endpoint): void {
    this.endpoints.set(id, ep);
  }

  detach(id: NodeId): void {
    this.endpoints.delete(id);
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

  /** The transport of node `id`'s incarnation `owner`: sends stop when it dies. */
  transportFor(id: NodeId, owner: number): RaftTransport {
    return {
      send: (messages) => {
        if (this.sched.isDead(owner)) return;
        for (const m of messages) this.send(m, owner);
      },
      setPeers: () => undefined,
      close: () => undefined,
    };
  }

  private send(msg: Message, fromOwner: number): void {
    this.stats.sent++;
    const sender = this.endpoints.get(msg.from);
    const failed = (): void => {
      if (!sender) return;
      // Like the gRPC transport: a failed snapshot is reported, a broken stream sometimes.
      if (msg.type === 'MsgSnap') this.sched.at(0, () => sender.reportSnapshot(msg.to, false), fromOwner);
      else if (this.rng.chance(0.3)) this.sched.at(0, () => sender.reportUnreachable(msg.to), fromOwner);
    };
    if (this.isBlocked(msg.from, msg.to) || !this.endpoints.has(msg.to)) {
      this.stats.dropped++;
      failed();
      return;
    }
    if (this.rng.chance(this.opts.dropProbability)) {
      this.stats.dropped++;
      if (msg.type === 'MsgSnap') failed();
      return;
    }
    const copies = this.rng.chance(this.opts.duplicateProbability) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    const link = `${msg.from}>${msg.to}`;
    for (let k = 0; k < copies; k++) {
      const n = this.perLink.get(link) ?? 0;
      if (n >= this.opts.maxInFlightPerLink) {
        if (k === 0) {
          this.stats.dropped++;
          failed();
        }
        return;
      }
      this.perLink.set(link, n + 1);
      const copy = cloneMessage(msg);
      const delay = this.opts.minDelayMs + (this.opts.maxDelayMs - this.opts.minDelayMs) * (this.rng.int(1000) / 1000);
      this.sched.at(delay, () => this.deliver(copy, link, fromOwner, k === 0));
    }
  }

  private deliver(m: Message, link: string, fromOwner: number, first: boolean): void {
    this.perLink.set(link, (this.perLink.get(link) ?? 1) - 1);
    const target = this.endpoints.get(m.to);
    const sender = this.endpoints.get(m.from);
    const senderLive = sender !== undefined && sender.owner() === fromOwner;
    if (this.isBlocked(m.from, m.to) || !target || target.owner() === null) {
      this.stats.dropped++;
      this.trace(`drop ${m.type} ${m.from}->${m.to}`);
      if (m.type === 'MsgSnap' && first && senderLive) sender.reportSnapshot(m.to, false);
      return;
    }
    this.stats.delivered++;
    this.trace(`deliver ${m.type} ${m.from}->${m.to} t${m.term} i${m.index}/${m.logTerm} c${m.commit} n${m.entries.length}${m.reject ? ` rej(${m.rejectHint})` : ''}`);
    target.receive(m);
    if (m.type === 'MsgSnap' && first && senderLive) sender.reportSnapshot(m.to, true);
  }
}
