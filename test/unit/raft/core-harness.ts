// A tiny synchronous network over RawNode + MemoryStorage for the core's unit tests:
// every Ready is persisted, sent and applied at once; messages are delivered in rounds
// and can be dropped per link, per node or per type.
import { RawNode, confChangeOf } from '../../../src/cluster/raft/core.js';
import { MemoryStorage } from '../../../src/cluster/raft/memory-storage.js';
import type { ConfChangeType, ConfState, Message, MessageType, NodeId, ReadState } from '../../../src/cluster/raft/types.js';
import { seededInt } from '../../prng.js';

export interface NetOptions {
  preVote?: boolean;
  checkQuorum?: boolean;
  electionTicks?: number;
  heartbeatTicks?: number;
  maxMsgBytes?: number;
  maxInflightMsgs?: number;
  /** 'ordered': node i draws i (so node 1 times out first); a number seeds a PRNG. */
  random?: 'ordered' | number;
  /** The read lease check every node's core asks (RaftConfig.leaseValid); absent: none. */
  leaseValid?: (id: NodeId, term: number) => boolean;
}

export class Peer {
  node!: RawNode;
  /** Application data applied, in order (empty entries and conf changes skipped). */
  data: string[] = [];
  appliedIndex = 0;
  readStates: ReadState[] = [];

  constructor(
    readonly id: NodeId,
    readonly storage: MemoryStorage,
  ) {}
}

export class Network {
  readonly peers = new Map<NodeId, Peer>();
  /** Every message that left a node (before drops), for assertions on traffic. */
  sent: Message[] = [];
  /** Tell the sender how a MsgSnap fared (off: a transport that never reports). */
  reportSnapshots = true;
  /** Extra loss: return true to drop a message (e.g. a seeded coin). */
  lose: ((m: Message) => boolean) | null = null;
  private queue: Message[] = [];
  private isolated = new Set<NodeId>();
  private cutLinks = new Set<string>();
  private droppedTypes = new Set<MessageType>();
  private readonly opts: Required<Omit<NetOptions, 'random' | 'leaseValid'>> & { random: 'ordered' | number; leaseValid?: NetOptions['leaseValid'] };

  constructor(ids: NodeId[], opts: NetOptions = {}) {
    this.opts = {
      preVote: opts.preVote ?? false,
      checkQuorum: opts.checkQuorum ?? false,
      electionTicks: opts.electionTicks ?? 10,
      heartbeatTicks: opts.heartbeatTicks ?? 1,
      maxMsgBytes: opts.maxMsgBytes ?? 1 << 20,
      maxInflightMsgs: opts.maxInflightMsgs ?? 256,
      random: opts.random ?? 'ordered',
      leaseValid: opts.leaseValid,
    };
    for (const id of ids) this.addPeer(id, { voters: ids, learners: [] });
  }

  /** A fresh member; `conf` is what its storage is bootstrapped with. */
  addPeer(id: NodeId, conf: ConfState): Peer {
    const p = new Peer(id, new MemoryStorage(conf));
    this.peers.set(id, p);
    p.node = this.newNode(p);
    return p;
  }

  /** Crash and restart from storage: unpersisted state is lost. */
  restart(id: NodeId): void {
    const p = this.peer(id);
    p.node = this.newNode(p);
  }

  private newNode(p: Peer): RawNode {
    const position = this.peers.size === 0 ? 0 : [...this.peers.keys()].indexOf(p.id);
    const r = this.opts.random;
    const random = r === 'ordered' ? (n: number) => position % n : seededInt(r * 7919 + position);
    return new RawNode({
      id: p.id,
      electionTicks: this.opts.electionTicks,
      heartbeatTicks: this.opts.heartbeatTicks,
      maxMsgBytes: this.opts.maxMsgBytes,
      maxInflightMsgs: this.opts.maxInflightMsgs,
      preVote: this.opts.preVote,
      checkQuorum: this.opts.checkQuorum,
      random,
      storage: p.storage,
      applied: p.appliedIndex,
      leaseValid: this.opts.leaseValid ? (term) => this.opts.leaseValid!(p.id, term) : undefined,
    });
  }

  peer(id: NodeId): Peer {
    const p = this.peers.get(id);
    if (p === undefined) throw new Error(`no peer ${id}`);
    return p;
  }

  node(id: NodeId): RawNode {
    return this.peer(id).node;
  }

  isolate(id: NodeId): void {
    this.isolated.add(id);
  }

  cut(a: NodeId, b: NodeId): void {
    this.cutLinks.add(`${a}>${b}`);
    this.cutLinks.add(`${b}>${a}`);
  }

  /** Drop messages from `a` to `b` only. */
  cutOneWay(a: NodeId, b: NodeId): void {
    this.cutLinks.add(`${a}>${b}`);
  }

  dropType(t: MessageType): void {
    this.droppedTypes.add(t);
  }

  heal(): void {
    this.isolated.clear();
    this.cutLinks.clear();
    this.droppedTypes.clear();
  }

  private blocked(m: Message): boolean {
    return (
      this.isolated.has(m.from) ||
      this.isolated.has(m.to) ||
      this.cutLinks.has(`${m.from}>${m.to}`) ||
      this.droppedTypes.has(m.type) ||
      (this.lose !== null && this.lose(m)) ||
      !this.peers.has(m.to)
    );
  }

  /** Handle every pending Ready of one peer, as a driver would. */
  processReady(p: Peer): void {
    while (p.node.hasReady()) {
      const rd = p.node.ready();
      if (rd.snapshot !== null) {
        p.storage.applySnapshot(rd.snapshot);
        p.data = JSON.parse(rd.snapshot.data.toString()) as string[];
        p.appliedIndex = rd.snapshot.meta.index;
      }
      p.storage.append(rd.entries);
      if (rd.hardState !== null) p.storage.setHardState(rd.hardState);
      for (const m of rd.messages) {
        this.sent.push(m);
        this.queue.push(m);
      }
      for (const e of rd.committedEntries) {
        const cc = confChangeOf(e);
        if (cc !== null) p.storage.setConfState(p.node.applyConfChange(cc));
        else if (e.data.length > 0) p.data.push(e.data.toString());
        p.appliedIndex = e.index;
      }
      p.readStates.push(...rd.readStates);
      p.node.advance(rd);
    }
  }

  /** Deliver one round of queued messages. Returns how many were delivered. */
  deliver(): number {
    const batch = this.queue;
    this.queue = [];
    let n = 0;
    for (const m of batch) {
      const target = this.peers.get(m.to);
      if (this.blocked(m) || target === undefined) {
        if (m.type === 'MsgSnap' && this.reportSnapshots) this.peers.get(m.from)?.node.reportSnapshot(m.to, false);
        continue;
      }
      target.node.step(m);
      if (m.type === 'MsgSnap' && this.reportSnapshots) this.peers.get(m.from)?.node.reportSnapshot(m.to, true);
      n++;
    }
    return n;
  }

  /** Process readies and deliver until quiet. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      for (const p of this.peers.values()) this.processReady(p);
      if (this.queue.length === 0) return;
      this.deliver();
    }
    throw new Error('network did not stabilize');
  }

  /** Tick the given peers (all by default) n times, stabilizing after each tick. */
  tick(n: number, ids: NodeId[] = [...this.peers.keys()]): void {
    for (let i = 0; i < n; i++) {
      for (const id of ids) this.node(id).tick();
      this.stabilize();
    }
  }

  /** Tick until some node is leader (bounded). */
  electLeader(maxTicks = 200): NodeId {
    for (let i = 0; i < maxTicks; i++) {
      const l = this.leaders();
      if (l.length > 0) return l[l.length - 1];
      this.tick(1);
    }
    throw new Error('no leader elected');
  }

  /** Leaders by ascending term. */
  leaders(): NodeId[] {
    return [...this.peers.values()]
      .filter((p) => p.node.status().role === 'leader')
      .sort((a, b) => a.node.status().term - b.node.status().term)
      .map((p) => p.id);
  }

  propose(id: NodeId, data: string): void {
    const r = this.node(id).propose(Buffer.from(data));
    if (!r.ok) throw new Error(`propose on ${id} refused: ${r.reason}`);
    this.stabilize();
  }

  /** Snapshot the peer's applied state at its applied index and compact its log there. */
  compact(id: NodeId): number {
    const p = this.peer(id);
    const index = p.appliedIndex;
    p.storage.createSnapshot(index, p.node.status().conf, Buffer.from(JSON.stringify(p.data)));
    p.storage.compact(index);
    return index;
  }

  /** One line per peer: role, term, leader, commit, applied, last index. */
  state(ids: NodeId[] = [...this.peers.keys()]): string {
    return ids
      .map((id) => {
        const s = this.node(id).status();
        return `${id} ${s.role} term=${s.term} lead=${s.leader ?? '-'} commit=${s.commit} applied=${s.applied} last=${s.lastIndex}`;
      })
      .join('\n');
  }
}

/**
 * Run a transcript: lines "> command args" followed by the expected output. Returns the
 * transcript as actually produced, to compare with the input.
 */
export function runTranscript(net: Network, text: string): { expected: string; actual: string } {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
  const actual: string[] = [];
  for (const line of lines) {
    if (!line.startsWith('> ')) continue;
    actual.push(line);
    const out = runCommand(net, line.slice(2).trim().split(/\s+/));
    if (out.length > 0) actual.push(...out.split('\n'));
  }
  return { expected: lines.join('\n'), actual: actual.join('\n') };
}

function runCommand(net: Network, argv: string[]): string {
  const [cmd, ...args] = argv;
  switch (cmd) {
    case 'campaign':
      net.node(args[0]).campaign();
      net.stabilize();
      return '';
    case 'tick':
      net.tick(Number(args[0]), args.length > 1 ? args.slice(1) : undefined);
      return '';
    case 'stabilize':
      net.stabilize();
      return '';
    case 'propose': {
      const r = net.node(args[0]).propose(Buffer.from(args[1]));
      net.stabilize();
      return r.ok ? `ok index=${r.index} term=${r.term}` : `refused ${r.reason} leader=${r.leader ?? '-'}`;
    }
    case 'conf': {
      const r = net.node(args[0]).proposeConfChange({ type: args[1] as ConfChangeType, node: args[2] });
      net.stabilize();
      return r.ok ? `ok index=${r.index} term=${r.term}` : `refused ${r.reason} leader=${r.leader ?? '-'}`;
    }
    case 'add-peer': {
      // A joining node starts with the cluster's current configuration.
      net.addPeer(args[0], net.node(args[1]).status().conf);
      return '';
    }
    case 'transfer':
      net.node(args[0]).transferLeader(args[1]);
      net.stabilize();
      return '';
    case 'read':
      net.node(args[0]).readIndex(Buffer.from(args[1]));
      net.stabilize();
      return '';
    case 'reads': {
      const p = net.peer(args[0]);
      const out = p.readStates.map((r) => `read ${r.context.toString()} index=${r.index}`);
      p.readStates = [];
      return out.length > 0 ? out.join('\n') : 'no reads';
    }
    case 'isolate':
      net.isolate(args[0]);
      return '';
    case 'heal':
      net.heal();
      return '';
    case 'restart':
      net.restart(args[0]);
      return '';
    case 'compact':
      return `compacted to ${net.compact(args[0])}`;
    case 'data':
      return args.map((id) => `${id}: ${net.peer(id).data.join(',') || '(none)'}`).join('\n');
    case 'conf-state':
      return args
        .map((id) => {
          const c = net.node(id).status().conf;
          return `${id}: voters=${c.voters.join(',')} learners=${c.learners.join(',') || '-'}`;
        })
        .join('\n');
    case 'state':
      return net.state(args.length > 0 ? args : undefined);
    default:
      throw new Error(`unknown transcript command ${cmd}`);
  }
}
