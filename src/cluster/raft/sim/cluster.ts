// The deterministic cluster simulator (after TigerBeetle's VOPR): N RawNodes, each with a
// simulated durable disk and a state machine, a faulty network, crashes injected between
// the steps of the Ready contract, client writes and linearizable reads, compaction and
// membership changes — all driven by one seeded PRNG, so a seed replays a whole run.
// Invariants are checked after every step (checker.ts); at the end the network heals,
// faults stop and the cluster must converge (liveness, reported separately).
import { createHash, type Hash } from 'node:crypto';
import type { RaftNode } from '../api.js';
import { RawNode } from '../core.js';
import type { ConfChange, ConfState, Entry, Message, NodeId, RaftConfig, Ready } from '../types.js';
import { Checker, itemOf } from './checker.js';
import { SimDisk, SimViolation } from './disk.js';
import { SimNetwork, type NetworkOptions } from './network.js';
import { Prng } from './prng.js';
import { isCommand, SimStateMachine } from './state-machine.js';

/**
 * A deliberately broken driver, to prove the checkers can fail:
 *  - sendBeforePersist: messages (votes, acks) leave before the Ready is made durable;
 *  - ackBeforeApply: a client is answered as soon as propose() returns;
 *  - forgetVote: the vote is not persisted (a restarted node may vote twice in a term).
 */
export type DriverBug = 'sendBeforePersist' | 'ackBeforeApply' | 'forgetVote';

export interface FaultOptions {
  /** Per-Ready probability that the node crashes at one of the contract's step boundaries. */
  crashInReadyProbability: number;
  /** Per-step weights (out of 1000) of the fault actions. */
  crashWeight: number;
  restartWeight: number;
  partitionWeight: number;
  healWeight: number;
  compactWeight: number;
  confChangeWeight: number;
  transferWeight: number;
}

/**
 * Optional observer of what clients see, for an external linearizability check
 * (../lincheck records these as a history). It never influences the run: no PRNG draws,
 * no trace events, so a seed replays the same with or without it.
 */
export interface SimClientObserver {
  /** A client is about to propose the command (the operation's invocation). */
  writeInvoked(cmd: string): void;
  /** The proposing node applied it where propose() put it: the client's success answer. */
  writeAcked(cmd: string): void;
  /** Known to have had no effect: propose() refused it, or its log slot went to another term. */
  writeFailed(cmd: string): void;
  readInvoked(ctx: string): void;
  /** The read was served: the application commands applied up to its read index, oldest first. */
  readServed(ctx: string, commands: readonly string[]): void;
}

export interface SimOptions {
  /** Name of the preset the options came from (printed in the replay line). */
  profile: SimProfile;
  nodes: number;
  /** Faulty steps before the quiet (liveness) phase. */
  steps: number;
  /** Bound on quiet steps to converge after healing. */
  quietSteps: number;
  network: NetworkOptions;
  faults: FaultOptions;
  /** Per-step weights (out of 1000) of client actions. */
  proposeWeight: number;
  readWeight: number;
  membership: boolean;
  /** Compact every node before a node joins, so it is caught up by snapshot (see confChange). */
  compactBeforeJoin: boolean;
  driverBug: DriverBug | null;
  /** Fixed protocol options; null picks them from the seed (on in most runs). */
  preVote: boolean | null;
  checkQuorum: boolean | null;
  /** Keep the whole trace (otherwise the last `traceTail` events). */
  fullTrace: boolean;
  traceTail: number;
  makeNode: (cfg: RaftConfig) => RaftNode;
  /** Client-history observer (lincheck); null: none. */
  clients: SimClientObserver | null;
}

export const defaultSimOptions: SimOptions = {
  profile: 'default',
  nodes: 3,
  steps: 4000,
  quietSteps: 3000,
  network: { minDelayTicks: 0, maxDelayTicks: 3, dropProbability: 0.05, duplicateProbability: 0.03, maxInFlightPerLink: 64 },
  faults: {
    crashInReadyProbability: 0.004,
    crashWeight: 6,
    restartWeight: 20,
    partitionWeight: 4,
    healWeight: 8,
    compactWeight: 10,
    confChangeWeight: 3,
    transferWeight: 2,
  },
  proposeWeight: 120,
  readWeight: 30,
  membership: true,
  compactBeforeJoin: true,
  driverBug: null,
  preVote: null,
  checkQuorum: null,
  fullTrace: false,
  traceTail: 60,
  makeNode: (cfg) => new RawNode(cfg),
  clients: null,
};

export interface SimStats {
  seed: number;
  nodes: number;
  steps: number;
  quietSteps: number;
  ticks: number;
  leadersElected: number;
  commits: number;
  crashes: number;
  restarts: number;
  proposals: number;
  acked: number;
  readsServed: number;
  snapshotsInstalled: number;
  compactions: number;
  confChanges: number;
  partitions: number;
  delivered: number;
  /** sha256 of the whole event trace: equal for equal seeds. */
  traceHash: string;
}

export class SimFailure extends Error {
  constructor(
    readonly kind: 'safety' | 'liveness',
    readonly seed: number,
    readonly step: number,
    readonly reason: string,
    readonly trace: readonly string[],
    readonly replay: string,
  ) {
    super(`raft sim ${kind} failure: seed ${seed} step ${step}: ${reason}\n  replay: ${replay}\n  last events:\n    ${trace.join('\n    ')}`);
  }
}

interface Pending {
  cmd: string;
  term: number;
}

interface ReadRequest {
  /** Highest index of a write acknowledged before the read was issued. */
  minIndex: number;
  /** Writes acknowledged before the read was issued. */
  minCount: number;
}

interface SimNode {
  id: NodeId;
  disk: SimDisk;
  raft: RaftNode | null;
  sm: SimStateMachine;
  incarnation: number;
  /** Out of the configuration for good: never restarted. */
  retired: boolean;
  /** Proposals this incarnation accepted: index -> command. */
  pending: Map<number, Pending>;
  /** ReadStates waiting for applied >= index. */
  waitingReads: { index: number; ctx: string }[];
  /** Reports to hand the core after advance(). */
  reports: { to: NodeId; kind: 'unreachable' | 'snapOk' | 'snapFail' }[];
}

class Trace {
  private readonly hash: Hash = createHash('sha256');
  readonly events: string[] = [];
  count = 0;
  constructor(
    private readonly full: boolean,
    private readonly tail: number,
  ) {}
  add(ev: string): void {
    this.hash.update(ev);
    this.hash.update('\n');
    this.count++;
    this.events.push(ev);
    if (!this.full && this.events.length > this.tail * 2) this.events.splice(0, this.events.length - this.tail);
  }
  last(): string[] {
    return this.full ? this.events : this.events.slice(-this.tail);
  }
  digest(): string {
    return this.hash.copy().digest('hex');
  }
}

const CRASH_POINTS = ['beforePersist', 'afterPersist', 'midSend', 'afterSend', 'midApply', 'beforeAdvance'] as const;
type CrashPoint = (typeof CRASH_POINTS)[number];

class Crashed extends Error {}

export class Cluster {
  readonly rng: Prng;
  readonly net: SimNetwork;
  readonly checker: Checker = new Checker();
  readonly nodes = new Map<NodeId, SimNode>();
  readonly trace: Trace;
  now = 0;
  step = 0;
  private readonly opts: SimOptions;
  private readonly initialVoters: NodeId[];
  private nextNodeNo: number;
  private cmdSeq = 0;
  private readSeq = 0;
  private leaderGuess: NodeId;
  private readonly reads = new Map<string, ReadRequest>();
  private ackedCount = 0;
  private ackedMaxIndex = 0;
  /** Acknowledged command -> index. */
  readonly acked = new Map<string, number>();
  private readonly electionTicks = 10;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  readonly stats: SimStats;

  constructor(
    readonly seed: number,
    opts: SimOptions,
  ) {
    this.opts = opts;
    this.rng = new Prng(seed);
    this.net = new SimNetwork(this.rng.fork(), { ...opts.network });
    this.trace = new Trace(opts.fullTrace, opts.traceTail);
    // Vary the protocol options by seed: pre-vote and check-quorum on most runs.
    const preVote = this.rng.chance(0.8);
    const checkQuorum = this.rng.chance(0.8);
    this.preVote = opts.preVote ?? preVote;
    this.checkQuorum = opts.checkQuorum ?? checkQuorum;
    this.initialVoters = [];
    for (let i = 1; i <= opts.nodes; i++) this.initialVoters.push(`n${i}`);
    this.nextNodeNo = opts.nodes + 1;
    this.leaderGuess = this.initialVoters[0];
    this.stats = {
      seed,
      nodes: opts.nodes,
      steps: 0,
      quietSteps: 0,
      ticks: 0,
      leadersElected: 0,
      commits: 0,
      crashes: 0,
      restarts: 0,
      proposals: 0,
      acked: 0,
      readsServed: 0,
      snapshotsInstalled: 0,
      compactions: 0,
      confChanges: 0,
      partitions: 0,
      delivered: 0,
      traceHash: '',
    };
    this.log(`seed ${seed} nodes ${opts.nodes} preVote ${this.preVote} checkQuorum ${this.checkQuorum}`);
    const boot: ConfState = { voters: [...this.initialVoters], learners: [] };
    for (const id of this.initialVoters) this.addNode(id, boot);
  }

  private log(ev: string): void {
    this.trace.add(`${this.step}@${this.now} ${ev}`);
  }

  private addNode(id: NodeId, boot: ConfState): SimNode {
    const n: SimNode = {
      id,
      disk: new SimDisk(boot),
      raft: null,
      sm: new SimStateMachine(boot),
      incarnation: 0,
      retired: false,
      pending: new Map(),
      waitingReads: [],
      reports: [],
    };
    this.nodes.set(id, n);
    this.start(n);
    return n;
  }

  /** (Re)start a node from its disk: the state machine is rebuilt from the snapshot. */
  private start(n: SimNode): void {
    const snap = n.disk.snapshot();
    if (snap) {
      n.sm = this.restoreSm(n, snap.data, snap.meta.index);
    } else {
      n.sm = new SimStateMachine(n.disk.initialState().conf);
    }
    n.incarnation++;
    n.pending = new Map();
    n.waitingReads = [];
    n.reports = [];
    const rng = this.rng.fork();
    n.raft = this.opts.makeNode({
      id: n.id,
      electionTicks: this.electionTicks,
      heartbeatTicks: 2,
      maxMsgBytes: 256,
      maxInflightMsgs: 4,
      preVote: this.preVote,
      checkQuorum: this.checkQuorum,
      random: (k) => rng.int(k),
      storage: n.disk,
      applied: n.sm.applied,
    });
    this.log(`start ${n.id}#${n.incarnation} applied ${n.sm.applied} last ${n.disk.lastIndex()} hs ${JSON.stringify(n.disk.hardState())}`);
  }

  private restoreSm(n: SimNode, data: Buffer, index: number): SimStateMachine {
    let sm: SimStateMachine;
    try {
      sm = SimStateMachine.restore(data, index);
    } catch (e) {
      return this.checker.fail(`snapshot: ${n.id} cannot restore image at ${index}: ${(e as Error).message}`);
    }
    for (let i = 1; i <= sm.applied; i++) this.checker.observeApply(n.id, i, sm.items[i - 1]);
    return sm;
  }

  live(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.raft) out.push(n);
    return out;
  }

  /** Current membership (the latest applied ConfChange, else the bootstrap). */
  members(): ConfState {
    return this.checker.latestConf ?? { voters: [...this.initialVoters], learners: [] };
  }

  // ---------------------------------------------------------------- the driver

  /** Run the Ready loop of a node until it has nothing more to do (or crashes). */
  private drive(n: SimNode): void {
    for (let guard = 0; n.raft && n.raft.hasReady(); guard++) {
      if (guard > 1000) this.checker.fail(`driver: ${n.id} still has a Ready after 1000 rounds`);
      const raft = n.raft;
      const rd = raft.ready();
      try {
        this.handleReady(n, raft, rd);
      } catch (e) {
        if (e instanceof Crashed) return;
        throw e;
      }
      const reports = n.reports;
      n.reports = [];
      for (const r of reports) {
        if (r.kind === 'unreachable') raft.reportUnreachable(r.to);
        else raft.reportSnapshot(r.to, r.kind === 'snapOk');
      }
    }
  }

  private crash(n: SimNode, where: string): never {
    this.crashNow(n, where);
    throw new Crashed();
  }

  private crashNow(n: SimNode, where: string): void {
    n.raft = null;
    n.pending = new Map();
    n.waitingReads = [];
    n.reports = [];
    this.stats.crashes++;
    this.log(`crash ${n.id}#${n.incarnation} ${where}`);
  }

  private handleReady(n: SimNode, raft: RaftNode, rd: Ready): void {
    const crashAt: CrashPoint | null = this.faultsOn && this.rng.chance(this.opts.faults.crashInReadyProbability) ? this.rng.pick(CRASH_POINTS) : null;
    this.log(
      `ready ${n.id} ${rd.softState ? `ss ${rd.softState.role}/${rd.softState.leader ?? '-'} ` : ''}${rd.hardState ? `hs ${rd.hardState.term}/${rd.hardState.vote ?? '-'}/${rd.hardState.commit} ` : ''}` +
        `ents ${spanOf(rd.entries)} ${rd.snapshot ? `snap ${rd.snapshot.meta.index}/${rd.snapshot.meta.term} ` : ''}apply ${spanOf(rd.committedEntries)} msgs ${rd.messages.length} reads ${rd.readStates.length}`,
    );
    const bug = this.opts.driverBug;
    if (bug === 'sendBeforePersist') {
      this.send(n, rd.messages, crashAt === 'midSend');
      if (crashAt === 'beforePersist' || crashAt === 'afterSend') this.crash(n, 'after send, before persist');
    }
    // 1. persist (and fsync) hard state, entries, snapshot.
    if (crashAt === 'beforePersist') this.crash(n, 'before persist');
    this.persist(n, raft, rd);
    if (crashAt === 'afterPersist') this.crash(n, 'after persist');
    // 2. send.
    if (bug !== 'sendBeforePersist') {
      this.send(n, rd.messages, crashAt === 'midSend');
      if (crashAt === 'afterSend') this.crash(n, 'after send');
    }
    // 3. apply.
    if (rd.snapshot) {
      n.sm = this.restoreSm(n, rd.snapshot.data, rd.snapshot.meta.index);
      this.stats.snapshotsInstalled++;
      this.dropResolvedPending(n);
    }
    const cut = crashAt === 'midApply' ? this.rng.int(rd.committedEntries.length + 1) : -1;
    for (let k = 0; k < rd.committedEntries.length; k++) {
      if (k === cut) this.crash(n, `mid apply (${k} of ${rd.committedEntries.length})`);
      this.applyEntry(n, raft, rd.committedEntries[k]);
    }
    if (cut === rd.committedEntries.length) this.crash(n, 'after apply');
    // 4. reads.
    for (const rs of rd.readStates) n.waitingReads.push({ index: rs.index, ctx: rs.context.toString('utf8') });
    this.serveReads(n);
    // 5. advance.
    if (crashAt === 'beforeAdvance') this.crash(n, 'before advance');
    raft.advance(rd);
  }

  private persist(n: SimNode, raft: RaftNode, rd: Ready): void {
    const disk = n.disk;
    if (rd.snapshot) disk.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) {
      disk.append(rd.entries);
      this.checker.observeAppend(n.id, disk, rd.entries);
    }
    if (rd.snapshot) {
      const c = this.checker.committed.get(rd.snapshot.meta.index);
      if (c && c.term !== rd.snapshot.meta.term) {
        this.checker.fail(`snapshot: ${n.id} installed ${rd.snapshot.meta.index}/${rd.snapshot.meta.term}, committed term there is ${c.term}`);
      }
    }
    if (rd.hardState) {
      const prev = disk.hardState();
      const hs = this.opts.driverBug === 'forgetVote' ? { ...rd.hardState, vote: null } : rd.hardState;
      if (hs.term < prev.term) this.checker.fail(`hard state: ${n.id} term went back from ${prev.term} to ${hs.term}`);
      if (hs.term === prev.term && prev.vote !== null && hs.vote !== prev.vote) {
        this.checker.fail(`hard state: ${n.id} changed its vote in term ${hs.term} from ${prev.vote} to ${hs.vote ?? 'none'}`);
      }
      disk.setHardState(hs);
      this.checker.observeCommit(n.id, disk, hs.term, Math.max(prev.commit, disk.firstIndex() - 1), hs.commit);
    }
    const st = raft.status();
    if (st.role === 'leader') {
      this.checker.observeLeader(st.term, n.id);
      if (st.lastIndex === disk.lastIndex()) this.checker.checkLeaderCompleteness(n.id, st.term, disk);
    }
  }

  private send(n: SimNode, messages: readonly Message[], crashMidway: boolean): void {
    const cut = crashMidway ? this.rng.int(messages.length + 1) : -1;
    for (let k = 0; k < messages.length; k++) {
      if (k === cut) this.crash(n, `mid send (${k} of ${messages.length})`);
      const m = messages[k];
      if (m.from !== n.id) this.checker.fail(`driver: ${n.id} emitted a message from ${m.from}`);
      const target = this.nodes.get(m.to);
      const outcome = target && !target.retired ? this.net.send(m, this.now, n.incarnation) : 'blocked';
      if (outcome !== 'queued') {
        if (m.type === 'MsgSnap') n.reports.push({ to: m.to, kind: 'snapFail' });
        else if (outcome !== 'dropped' && this.rng.chance(0.5)) n.reports.push({ to: m.to, kind: 'unreachable' });
      }
    }
    if (cut === messages.length) this.crash(n, 'after send (all)');
  }

  private applyEntry(n: SimNode, raft: RaftNode, e: Entry): void {
    if (e.index > n.disk.hardState().commit) {
      this.checker.fail(`apply: ${n.id} applies ${e.index} beyond its durable commit ${n.disk.hardState().commit}`);
    }
    if (e.index !== n.sm.applied + 1) this.checker.fail(`apply: ${n.id} applies ${e.index} after ${n.sm.applied}`);
    const item = itemOf(e);
    const onDisk = n.disk.entry(e.index);
    if (onDisk && (onDisk.term !== e.term || itemOf(onDisk) !== item)) {
      this.checker.fail(`apply: ${n.id} applies ${e.index}/${e.term} "${item}" but its log has ${onDisk.term} "${itemOf(onDisk)}"`);
    }
    if (e.type === 1) {
      const cc = JSON.parse(e.data.toString('utf8')) as ConfChange;
      const conf = raft.applyConfChange({ type: cc.type, node: cc.node });
      n.sm.conf = { voters: [...conf.voters], learners: [...conf.learners] };
      this.checker.observeConf(n.id, e.index, conf);
      this.log(`conf ${n.id} @${e.index} ${cc.type} ${cc.node} -> v[${conf.voters.join(',')}] l[${conf.learners.join(',')}]`);
    }
    n.sm.apply(e.index, item);
    this.checker.observeApply(n.id, e.index, item);
    if (e.index > this.stats.commits) this.stats.commits = e.index;
    const p = n.pending.get(e.index);
    if (p) {
      n.pending.delete(e.index);
      if (p.term === e.term) {
        if (p.cmd !== item) this.checker.fail(`proposal: ${n.id} proposed ${p.cmd} at ${e.index}/${e.term} but applied "${item}" there`);
        if (this.opts.driverBug !== 'ackBeforeApply') this.ack(p.cmd, e.index);
      } else {
        this.log(`lost ${p.cmd} (${n.id} proposed at ${e.index}/${p.term}, applied term ${e.term})`);
        this.opts.clients?.writeFailed(p.cmd);
      }
    }
  }

  /** After a snapshot jumped the state machine, proposals it covers are answered from it. */
  private dropResolvedPending(n: SimNode): void {
    for (const [index, p] of n.pending) {
      if (index > n.sm.applied) continue;
      n.pending.delete(index);
      // The image says what landed there; the term is unknown, so the client gets "unknown".
      this.log(`unknown ${p.cmd} (${n.id} jumped past ${index} by snapshot)`);
    }
  }

  private ack(cmd: string, index: number): void {
    if (this.acked.has(cmd)) return;
    this.acked.set(cmd, index);
    this.ackedCount++;
    if (index > this.ackedMaxIndex) this.ackedMaxIndex = index;
    this.stats.acked++;
    this.log(`ack ${cmd} @${index}`);
    this.opts.clients?.writeAcked(cmd);
  }

  private serveReads(n: SimNode): void {
    if (n.waitingReads.length === 0) return;
    const keep: { index: number; ctx: string }[] = [];
    for (const w of n.waitingReads) {
      if (w.index > n.sm.applied) {
        keep.push(w);
        continue;
      }
      const req = this.reads.get(w.ctx);
      if (!req) continue;
      this.reads.delete(w.ctx);
      const count = n.sm.commandsUpTo(w.index);
      // Reported before the check below, so a history recorded up to a failure includes the bad read.
      this.opts.clients?.readServed(w.ctx, n.sm.items.slice(0, w.index).filter(isCommand));
      if (w.index < req.minIndex || count < req.minCount) {
        this.checker.fail(
          `linearizable read: ${w.ctx} served by ${n.id} at index ${w.index} sees ${count} writes; ${req.minCount} were acknowledged before it (last at ${req.minIndex})`,
        );
      }
      this.stats.readsServed++;
      this.log(`read ${w.ctx} ${n.id} @${w.index} = ${count}`);
    }
    n.waitingReads = keep;
  }

  // ---------------------------------------------------------------- actions

  private deliverOne(): boolean {
    const f = this.net.takeDue(this.now);
    if (!f) return false;
    const m = f.msg;
    const target = this.nodes.get(m.to);
    const sender = this.nodes.get(m.from);
    if (this.net.isBlocked(m.from, m.to) || !target || !target.raft) {
      this.log(`drop ${m.type} ${m.from}->${m.to}`);
      if (m.type === 'MsgSnap' && sender && sender.raft && sender.incarnation === f.fromIncarnation) {
        sender.raft.reportSnapshot(m.to, false);
        this.drive(sender);
      }
      return true;
    }
    this.stats.delivered++;
    this.log(`deliver ${m.type} ${m.from}->${m.to} t${m.term} i${m.index}/${m.logTerm} c${m.commit} n${m.entries.length}${m.reject ? ` rej(${m.rejectHint})` : ''}`);
    target.raft.step(m);
    this.drive(target);
    if (m.type === 'MsgSnap' && sender && sender.raft && sender.incarnation === f.fromIncarnation) {
      sender.raft.reportSnapshot(m.to, true);
      this.drive(sender);
    }
    return true;
  }

  private tickAll(skew: boolean): void {
    this.now++;
    this.stats.ticks++;
    for (const n of this.nodes.values()) {
      if (!n.raft) continue;
      // Clock skew: a node now and then misses a tick.
      if (skew && this.rng.chance(0.05)) continue;
      n.raft.tick();
      this.drive(n);
    }
  }

  private clientTarget(): SimNode | null {
    const live = this.live().filter((n) => !n.retired);
    if (live.length === 0) return null;
    // Clients have different, possibly stale, views: some talk to any node that believes
    // it leads (a deposed leader included), most to the last leader seen, a few to anyone.
    const r = this.rng.int(10);
    if (r < 4) {
      const leaders = live.filter((n) => n.raft?.status().role === 'leader');
      if (leaders.length > 0) return this.rng.pick(leaders);
    }
    const guess = this.nodes.get(this.leaderGuess);
    if (guess && guess.raft && r < 9) return guess;
    return this.rng.pick(live);
  }

  private propose(): void {
    const n = this.clientTarget();
    if (!n || !n.raft) return;
    const cmd = `c${++this.cmdSeq}`;
    this.stats.proposals++;
    this.opts.clients?.writeInvoked(cmd);
    const r = n.raft.propose(Buffer.from(cmd));
    if (!r.ok) this.opts.clients?.writeFailed(cmd);
    if (r.ok) {
      this.log(`propose ${cmd} -> ${n.id} @${r.index}/${r.term}`);
      n.pending.set(r.index, { cmd, term: r.term });
      if (this.opts.driverBug === 'ackBeforeApply') this.ack(cmd, r.index);
    } else {
      this.log(`propose ${cmd} -> ${n.id} refused ${r.reason} (leader ${r.leader ?? '-'})`);
      this.leaderGuess = r.leader ?? this.rng.pick([...this.nodes.keys()]);
    }
    this.drive(n);
  }

  private readIndex(): void {
    const n = this.clientTarget();
    if (!n || !n.raft) return;
    const ctx = `r${++this.readSeq}`;
    this.reads.set(ctx, { minIndex: this.ackedMaxIndex, minCount: this.ackedCount });
    this.opts.clients?.readInvoked(ctx);
    this.log(`readIndex ${ctx} -> ${n.id} (acked ${this.ackedCount} up to ${this.ackedMaxIndex})`);
    n.raft.readIndex(Buffer.from(ctx));
    this.drive(n);
  }

  private crashRandom(): void {
    const live = this.live();
    const members = this.members();
    const downVoters = members.voters.filter((id) => !this.nodes.get(id)?.raft).length;
    // Keep a majority of voters up most of the time so the run makes progress.
    if (live.length === 0 || downVoters >= Math.floor((members.voters.length - 1) / 2) + (this.rng.chance(0.1) ? 1 : 0)) return;
    this.crashNow(this.rng.pick(live), 'between steps');
  }

  private restartRandom(): void {
    const down = [...this.nodes.values()].filter((n) => !n.raft && !n.retired);
    if (down.length === 0) return;
    const n = this.rng.pick(down);
    this.stats.restarts++;
    this.start(n);
    this.drive(n);
  }

  private partition(): void {
    const ids = [...this.nodes.keys()].filter((id) => !this.nodes.get(id)?.retired);
    if (ids.length < 2) return;
    const shuffled = [...ids];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
    }
    const k = this.rng.range(1, shuffled.length - 1);
    const a = shuffled.slice(0, k);
    const b = shuffled.slice(k);
    const symmetric = this.rng.chance(0.7);
    this.net.partition(a, b, symmetric);
    this.stats.partitions++;
    this.log(`partition [${a.join(',')}] ${symmetric ? '<x>' : '-x>'} [${b.join(',')}]`);
  }

  private compact(n: SimNode, exact = false): void {
    const applied = n.sm.applied;
    const snap = n.disk.snapshot();
    const snapIndex = snap ? snap.meta.index : 0;
    if (applied <= snapIndex) {
      if (exact && snapIndex > 0) n.disk.compact(snapIndex);
      return;
    }
    const e = n.disk.entry(applied);
    if (e && itemOf(e) !== n.sm.items[applied - 1]) {
      this.checker.fail(`compact: ${n.id} log at ${applied} is "${itemOf(e)}", state machine applied "${n.sm.items[applied - 1]}"`);
    }
    n.disk.createSnapshot(applied, n.sm.conf, n.sm.image());
    const to = Math.max(n.disk.firstIndex() - 1, applied - (exact ? 0 : this.rng.int(4)));
    n.disk.compact(to);
    this.stats.compactions++;
    this.log(`compact ${n.id} snap ${applied} log from ${n.disk.firstIndex()}`);
  }

  private leader(): SimNode | null {
    let best: SimNode | null = null;
    let bestTerm = -1;
    for (const n of this.live()) {
      const st = n.raft?.status();
      if (st && st.role === 'leader' && st.term > bestTerm) {
        best = n;
        bestTerm = st.term;
      }
    }
    return best;
  }

  private confChange(): void {
    const l = this.leader();
    if (!l || !l.raft) return;
    const members = this.members();
    let cc: ConfChange;
    if (members.learners.length > 0) {
      cc = { type: 'addVoter', node: this.rng.pick(members.learners) };
    } else if (members.voters.length > 3) {
      const others = members.voters.filter((id) => id !== l.id);
      cc = { type: 'removeNode', node: this.rng.chance(0.8) ? this.rng.pick(others) : l.id };
    } else if (this.nextNodeNo <= this.opts.nodes + 3) {
      // The newcomer boots with an empty conf and must learn the cluster from a snapshot
      // (the bootstrap conf is not in the log). The core sends entries from index 1 when
      // it still has them, so (unless told not to) first compact every node past index 1.
      if (this.opts.compactBeforeJoin) {
        const all = [...this.nodes.values()].filter((n) => !n.retired);
        if (all.some((n) => !n.raft || n.sm.applied < 1)) return;
        for (const n of all) this.compact(n, true);
      }
      const id = `n${this.nextNodeNo++}`;
      this.addNode(id, { voters: [], learners: [] });
      cc = { type: 'addLearner', node: id };
    } else {
      return;
    }
    const r = l.raft.proposeConfChange(cc);
    this.stats.confChanges++;
    this.log(`confChange ${cc.type} ${cc.node} -> ${l.id}: ${r.ok ? `@${r.index}/${r.term}` : `refused ${r.reason}`}`);
    this.drive(l);
  }

  /** Nodes removed from the configuration stop for good once the removal is applied everywhere it matters. */
  private retireRemoved(): void {
    const m = this.members();
    const inConf = new Set([...m.voters, ...m.learners]);
    for (const n of this.nodes.values()) {
      if (n.retired || inConf.has(n.id)) continue;
      // Only nodes that were once members and have been removed (a newcomer not yet added is kept).
      if (!this.wasRemoved(n.id)) continue;
      n.retired = true;
      if (n.raft) this.crashNow(n, 'retired (removed from the configuration)');
      this.net.dropTo(n.id);
    }
  }

  private wasRemoved(id: NodeId): boolean {
    return this.removedIds.has(id);
  }

  private readonly removedIds = new Set<NodeId>();

  private transfer(): void {
    const l = this.leader();
    if (!l || !l.raft) return;
    const others = this.members().voters.filter((id) => id !== l.id);
    if (others.length === 0) return;
    const to = this.rng.pick(others);
    this.log(`transferLeader ${l.id} -> ${to}`);
    l.raft.transferLeader(to);
    this.drive(l);
  }

  // ---------------------------------------------------------------- checks per step

  private checkStep(): void {
    for (const n of this.nodes.values()) {
      if (!n.raft) continue;
      const st = n.raft.status();
      if (st.role === 'leader') {
        this.checker.observeLeader(st.term, n.id);
        this.leaderGuess = n.id;
      }
      if (st.applied > st.commit) this.checker.fail(`status: ${n.id} applied ${st.applied} > commit ${st.commit}`);
    }
    this.stats.leadersElected = this.checker.leaders.size;
    const m = this.members();
    for (const id of m.voters) if (!this.nodes.has(id)) this.checker.fail(`membership: voter ${id} is not a node`);
    // Track removals for retirement.
    for (const id of this.nodes.keys()) {
      if (this.checker.latestConf && !m.voters.includes(id) && !m.learners.includes(id) && this.everMember.has(id)) this.removedIds.add(id);
      if (m.voters.includes(id) || m.learners.includes(id)) this.everMember.add(id);
    }
    this.retireRemoved();
  }

  private readonly everMember = new Set<NodeId>();
  private faultsOn = true;

  // ---------------------------------------------------------------- the run

  private faultyStep(): void {
    const f = this.opts.faults;
    const due = this.net.dueCount(this.now) > 0;
    if (due && this.rng.chance(0.6)) {
      this.deliverOne();
      return;
    }
    let r = this.rng.int(1000);
    const pick = (w: number): boolean => {
      if (r < w) return true;
      r -= w;
      return false;
    };
    if (pick(this.opts.proposeWeight)) this.propose();
    else if (pick(this.opts.readWeight)) this.readIndex();
    else if (pick(f.crashWeight)) this.crashRandom();
    else if (pick(f.restartWeight)) this.restartRandom();
    else if (pick(f.partitionWeight)) {
      if (!this.net.partitioned()) this.partition();
    } else if (pick(f.healWeight)) {
      if (this.net.partitioned()) {
        this.net.heal();
        this.log('heal');
      }
    } else if (pick(f.compactWeight)) {
      const live = this.live();
      if (live.length > 0) this.compact(this.rng.pick(live));
    } else if (pick(this.opts.membership ? f.confChangeWeight : 0)) this.confChange();
    else if (pick(f.transferWeight)) this.transfer();
    else this.tickAll(true);
  }

  /** Heal everything, stop faults, and wait (bounded) for the cluster to converge. */
  private quiet(): void {
    this.faultsOn = false;
    this.net.heal();
    this.net.opts = { ...this.net.opts, dropProbability: 0, duplicateProbability: 0, minDelayTicks: 0, maxDelayTicks: 2 };
    this.log('quiet: heal, no more faults');
    for (const n of this.nodes.values()) {
      if (!n.raft && !n.retired) {
        this.stats.restarts++;
        this.start(n);
        this.drive(n);
      }
    }
    let probe: string | null = null;
    let probeAt = -1;
    let probeLeader: NodeId | null = null;
    let probeStep = 0;
    for (let q = 0; q < this.opts.quietSteps; q++) {
      this.step++;
      this.stats.quietSteps++;
      if (!this.deliverOne()) this.tickAll(false);
      this.checkStep();
      const l = this.leader();
      if (!l || !l.raft) continue;
      const lst = l.raft.status();
      // A probe lost with its leader (or stuck) is proposed again.
      if (probe !== null && !this.acked.has(probe) && (probeLeader !== l.id || q - probeStep > 500)) probe = null;
      if (probe === null) {
        if (lst.commit !== lst.lastIndex) continue;
        probe = `c${++this.cmdSeq}`;
        this.opts.clients?.writeInvoked(probe);
        const r = l.raft.propose(Buffer.from(probe));
        if (!r.ok) {
          this.opts.clients?.writeFailed(probe);
          probe = null;
          continue;
        }
        probeAt = r.index;
        probeLeader = l.id;
        probeStep = q;
        l.pending.set(r.index, { cmd: probe, term: r.term });
        this.log(`probe ${probe} -> ${l.id} @${r.index}`);
        this.drive(l);
        continue;
      }
      if (!this.acked.has(probe) || lst.commit !== lst.lastIndex) continue;
      const members = this.members();
      const all = [...members.voters, ...members.learners].map((id) => this.nodes.get(id));
      if (all.every((n) => n !== undefined && n.raft !== null && n.sm.applied === lst.lastIndex && lst.lastIndex >= probeAt)) {
        this.log(`converged at ${lst.lastIndex}, leader ${l.id} term ${lst.term}`);
        return;
      }
    }
    const st = [...this.nodes.values()].map((n) => {
      const s = n.raft?.status();
      return s ? `${n.id}:${s.role}/t${s.term}/c${s.commit}/a${n.sm.applied}/l${s.lastIndex}` : `${n.id}:${n.retired ? 'retired' : 'down'}`;
    });
    throw new SimFailure('liveness', this.seed, this.step, `no convergence within ${this.opts.quietSteps} quiet steps (probe ${probe ?? 'not proposed'}; ${st.join(' ')})`, this.trace.last(), this.replayLine());
  }

  /** Every acknowledged write is on every live member, once, in one order. */
  private finalCheck(): void {
    const m = this.members();
    for (const id of [...m.voters, ...m.learners]) {
      const n = this.nodes.get(id);
      if (!n || !n.raft) this.checker.fail(`final: member ${id} is not running`);
      for (const [cmd, index] of this.acked) {
        if (n.sm.items[index - 1] !== cmd) this.checker.fail(`acknowledged write lost: ${cmd} acked at ${index}, ${id} has "${n.sm.items[index - 1] ?? '(nothing)'}" there`);
      }
    }
    for (const [cmd, index] of this.acked) {
      const at = this.checker.commandAppliedAt(cmd);
      if (at !== index) this.checker.fail(`acknowledged write ${cmd} at ${index} applied at ${at ?? 'nowhere'}`);
    }
  }

  replayLine(): string {
    const bug = this.opts.driverBug ? ` DFS_SIM_BUG=${this.opts.driverBug}` : '';
    return `DFS_SIM_SEED=${this.seed} DFS_SIM_NODES=${this.opts.nodes} DFS_SIM_PROFILE=${this.opts.profile} DFS_SIM_STEPS=${this.opts.steps}${bug} npx vitest run test/unit/raft/sim-replay`;
  }

  run(): SimStats {
    try {
      for (const n of this.nodes.values()) this.drive(n);
      for (this.step = 1; this.step <= this.opts.steps; this.step++) {
        this.faultyStep();
        this.checkStep();
      }
      this.stats.steps = this.opts.steps;
      this.quiet();
      this.finalCheck();
    } catch (e) {
      if (e instanceof SimFailure) throw e;
      const reason = e instanceof SimViolation ? e.message : `core threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
      this.log(`FAIL ${reason}`);
      throw new SimFailure('safety', this.seed, this.step, reason, this.trace.last(), this.replayLine());
    }
    this.stats.traceHash = this.trace.digest();
    return this.stats;
  }
}

function spanOf(ents: readonly Entry[]): string {
  if (ents.length === 0) return '-';
  return `${ents[0].index}..${ents[ents.length - 1].index}/t${ents[ents.length - 1].term}`;
}

export type SimProfile = 'default' | 'harsh' | 'chaos';

/**
 * Presets: `default` is the mix above; `harsh` crashes often (also inside Ready handling)
 * with pre-vote off, to provoke split votes and crash-recovery races; `chaos` is a bad
 * network (slow, lossy, duplicating, often partitioned).
 */
export const simProfiles: Record<SimProfile, { faults?: Partial<FaultOptions>; network?: Partial<NetworkOptions>; preVote?: boolean | null }> = {
  default: {},
  harsh: { preVote: false, faults: { crashInReadyProbability: 0.05, crashWeight: 30, restartWeight: 60 } },
  chaos: {
    network: { minDelayTicks: 0, maxDelayTicks: 12, dropProbability: 0.2, duplicateProbability: 0.1, maxInFlightPerLink: 16 },
    faults: { partitionWeight: 20, healWeight: 15 },
  },
};

export interface RunOptions extends Partial<Omit<SimOptions, 'faults' | 'network'>> {
  faults?: Partial<FaultOptions>;
  network?: Partial<NetworkOptions>;
}

/** Build the options of a run: defaults, then the profile's preset, then `opts`. */
export function simOptions(opts: RunOptions = {}): SimOptions {
  const profile = opts.profile ?? 'default';
  const preset = simProfiles[profile];
  return {
    ...defaultSimOptions,
    ...(preset.preVote !== undefined ? { preVote: preset.preVote } : {}),
    ...opts,
    profile,
    network: { ...defaultSimOptions.network, ...preset.network, ...opts.network },
    faults: { ...defaultSimOptions.faults, ...preset.faults, ...opts.faults },
  };
}

/** Run one seed; throws SimFailure (safety or liveness) with the replay line and a trace tail. */
export function runSeed(seed: number, opts: RunOptions = {}): SimStats {
  return new Cluster(seed, simOptions(opts)).run();
}
