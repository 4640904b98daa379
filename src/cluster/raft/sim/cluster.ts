// The deterministic cluster simulator (after TigerBeetle's VOPR): N production
// RaftDrivers, each over the production LogStore on a simulated disk (fs.ts) and a
// simulated state machine, connected by a faulty network, with virtual clocks that
// drift — all driven by one seeded PRNG and one event queue (scheduler.ts), so a seed
// replays a whole run. Faults: crashes (power loss: unsynced bytes are gone) at any
// event, disk latency/stalls/EIO/ENOSPC, drops, duplicates, delays, partitions,
// leadership transfers, membership changes, clock drift. Invariants are checked as the
// run observes durable writes, commits, applies and client answers (checker.ts); at the
// end the network heals, faults stop and the cluster must converge (liveness).
import { createHash, type Hash } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { RaftDriver, type ProposalOutcome, type RaftLogStorage } from '../driver.js';
import { LogStore, LogStoreError } from '../log-store.js';
import type { ConfChange, ConfState, Entry, HardState, NodeId, Snapshot, SnapshotMeta } from '../types.js';
import { EntryType } from '../types.js';
import { Checker, entryAt, itemOf, SimViolation } from './checker.js';
import { DEFAULT_DISK_FAULTS, SimFs, type DiskFaultOptions } from './fs.js';
import { SimNetwork, type NetworkOptions } from './network.js';
import { Prng } from './prng.js';
import { Scheduler, type SimClock } from './scheduler.js';
import { SimStateMachine } from './state-machine.js';

/**
 * Deliberately broken parts, to prove the checkers can fail. They sit in the storage the
 * driver writes through and in the client, so the driver itself runs unchanged:
 *  - earlyAck: the log store answers an append before its fsync (the follower acks, the
 *    leader counts entries that are not durable);
 *  - lostHardState: a hard state write is answered but never made (a restarted node may
 *    vote twice in a term, or forget its term);
 *  - lyingDisk: the disk's fsync does nothing (a volatile write cache that lies);
 *  - ackBeforeApply: the client is answered as soon as it proposed.
 */
export type SimBug = 'earlyAck' | 'lostHardState' | 'lyingDisk' | 'ackBeforeApply';
/** The old name of the option. */
export type DriverBug = SimBug;

export interface FaultOptions {
  /** Per chaos tick (every chaosTickMs of virtual time), weights out of 1000. */
  crashWeight: number;
  restartWeight: number;
  partitionWeight: number;
  healWeight: number;
  confChangeWeight: number;
  transferWeight: number;
  /** A node's disk fails every write (ENOSPC or EIO) for outageMinMs..outageMaxMs of virtual time, then clears. */
  outageWeight: number;
  outageMinMs: number;
  outageMaxMs: number;
  /** Largest |rate - 1| of a node's clock (drift); each incarnation draws its rate. */
  clockDrift: number;
}

/** Optional observer of what clients see, for an external linearizability check (../lincheck). */
export interface SimClientObserver {
  writeInvoked(cmd: string): void;
  /** The proposing node applied it where propose() put it: the client's success answer. */
  writeAcked(cmd: string): void;
  /** Known to have had no effect: propose() refused it, or its log slot went to another term. */
  writeFailed(cmd: string): void;
  readInvoked(ctx: string): void;
  /** The read was served: the application commands applied at its read point, oldest first. */
  readServed(ctx: string, commands: readonly string[]): void;
}

export interface SimOptions {
  profile: SimProfile;
  nodes: number;
  /** Virtual milliseconds of the faulty phase. */
  durationMs: number;
  /** Bound on the quiet phase (virtual ms) to converge after healing. */
  quietMs: number;
  network: NetworkOptions;
  disk: DiskFaultOptions;
  faults: FaultOptions;
  /** Mean virtual ms between client operations. */
  clientIntervalMs: number;
  /** Share of client operations that are reads (half ReadIndex, half lease reads). */
  readShare: number;
  /** Client operations in flight at most. */
  maxClientOps: number;
  membership: boolean;
  bug: SimBug | null;
  fullTrace: boolean;
  traceTail: number;
  clients: SimClientObserver | null;
  /** Bound on events of one run (a runaway stops with a failure). */
  maxEvents: number;
}

const TICK_MS = 10;
const ELECTION_TICKS = 10;
const CHAOS_TICK_MS = 5;

export const defaultSimOptions: SimOptions = {
  profile: 'default',
  nodes: 3,
  durationMs: 2_000,
  quietMs: 10_000,
  network: { minDelayMs: 0.05, maxDelayMs: 2, dropProbability: 0.03, duplicateProbability: 0.02, maxInFlightPerLink: 256 },
  disk: { ...DEFAULT_DISK_FAULTS },
  faults: { crashWeight: 8, restartWeight: 40, partitionWeight: 6, healWeight: 12, confChangeWeight: 6, transferWeight: 4, outageWeight: 0, outageMinMs: 50, outageMaxMs: 1500, clockDrift: 0.05 },
  clientIntervalMs: 4,
  readShare: 0.25,
  maxClientOps: 16,
  membership: true,
  bug: null,
  fullTrace: false,
  traceTail: 80,
  clients: null,
  maxEvents: 2_000_000,
};

export interface SimStats {
  seed: number;
  nodes: number;
  events: number;
  virtualMs: number;
  leadersElected: number;
  commits: number;
  crashes: number;
  restarts: number;
  proposals: number;
  acked: number;
  readsServed: number;
  leaseReads: number;
  snapshotsInstalled: number;
  snapshotsTaken: number;
  confChanges: number;
  partitions: number;
  delivered: number;
  diskErrors: number;
  /** Storage faults a driver came back from by itself (no restart). */
  storageRecoveries: number;
  /** Disk outages injected (a node's writes all fail for a while). */
  outages: number;
  tornWrites: number;
  lostWrites: number;
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
    super(`raft sim ${kind} failure: seed ${seed} at ${step} ms: ${reason}\n  replay: ${replay}\n  last events:\n    ${trace.join('\n    ')}`);
  }
}

class Trace {
  private readonly hash: Hash = createHash('sha256');
  readonly events: string[] = [];
  constructor(
    private readonly full: boolean,
    private readonly tail: number,
  ) {}
  add(ev: string): void {
    this.hash.update(ev);
    this.hash.update('\n');
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

/** What the checker knows a node's log store made durable (to prove recovery keeps it). */
interface DurableView {
  hardState: HardState;
  /** index -> "term|item" of every entry whose append resolved (and was not cut or compacted). */
  entries: Map<number, string>;
  last: number;
  /**
   * A snapshot whose install was asked for and has not resolved: it replaces the whole
   * log, and a crash may leave it installed (its meta durable) or not, never half.
   */
  installing: SnapshotMeta | null;
}

interface SimNode {
  id: NodeId;
  fs: SimFs;
  sm: SimStateMachine;
  /** Scheduler owner id of the running incarnation; null while down. */
  owner: number | null;
  incarnation: number;
  driver: RaftDriver | null;
  store: ObservedStorage | null;
  /** The LogStore under `store` (a storage recovery closes and reopens it). */
  raw: LogStore | null;
  /** First index of an append not known to have succeeded (its bytes may be in the page cache only). */
  unsettledFrom: number;
  appendsInFlight: number;
  appendFailed: boolean;
  clock: SimClock | null;
  retired: boolean;
  /** Started with the cluster's bootstrap configuration (else it joined). */
  bootstrap: ConfState | null;
  durable: DurableView;
  /** The configuration the driver's core switched to at the latest ConfChange it applied. */
  appliedConf: ConfState | null;
}

const SILENT: Logger = pino({ level: 'silent' });
const DIR = '/raft';

/** The LogStore seen through the checker: every durable write is observed. */
class ObservedStorage implements RaftLogStorage {
  constructor(
    private readonly inner: LogStore,
    private readonly cluster: Cluster,
    private readonly node: SimNode,
    private readonly bug: SimBug | null,
  ) {}

  firstIndex(): number {
    return this.inner.firstIndex();
  }
  lastIndex(): number {
    return this.inner.lastIndex();
  }
  term(index: number): number {
    return this.inner.term(index);
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.inner.entries(lo, hi, maxBytes);
  }
  snapshot(): Snapshot | null {
    return this.inner.snapshot();
  }
  initialState(): { hardState: HardState; conf: ConfState } {
    return this.inner.initialState();
  }
  snapshotMeta(): SnapshotMeta {
    return this.inner.snapshotMeta();
  }
  attachSnapshotData(data: Buffer): void {
    this.inner.attachSnapshotData(data);
  }
  setConfState(conf: ConfState): Promise<void> {
    return this.inner.setConfState(conf);
  }
  createSnapshot(index: number, conf: ConfState, data: Buffer): Promise<Snapshot> {
    return this.inner.createSnapshot(index, conf, data);
  }

  append(entries: Entry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    let prevTerm: number | null = null;
    try {
      prevTerm = this.inner.term(entries[0].index - 1);
    } catch {
      prevTerm = null;
    }
    this.cluster.observe(() => this.cluster.checker.observeAppend(this.node.id, prevTerm, entries));
    const node = this.node;
    node.unsettledFrom = Math.min(node.unsettledFrom, entries[0].index);
    node.appendsInFlight++;
    const p = this.inner.append(entries);
    p.then(
      () => {
        if (--node.appendsInFlight === 0 && !node.appendFailed) node.unsettledFrom = Number.POSITIVE_INFINITY;
      },
      () => {
        node.appendsInFlight--;
        node.appendFailed = true;
      },
    );
    const done = (): void => this.cluster.durableAppend(this.node, entries);
    if (this.bug === 'earlyAck') {
      p.then(done, () => undefined);
      return Promise.resolve();
    }
    return p.then(done);
  }

  setHardState(hs: HardState): Promise<void> {
    if (this.bug === 'lostHardState' && hs.vote !== null && this.cluster.rng.chance(0.5)) return Promise.resolve();
    return this.inner.setHardState(hs).then(() => this.cluster.durableHardState(this.node, hs, this.inner));
  }

  applySnapshot(snapshot: Snapshot): Promise<void> {
    this.node.durable.installing = snapshot.meta;
    return this.inner.applySnapshot(snapshot).then(() => this.cluster.durableSnapshot(this.node, snapshot.meta));
  }

  compact(index: number): Promise<void> {
    return this.inner.compact(index).then(() => {
      for (const i of [...this.node.durable.entries.keys()]) if (i <= index) this.node.durable.entries.delete(i);
    });
  }
}

interface ReadCheck {
  /** Acknowledged writes (in ack order) when the read was issued. */
  ackedBefore: number;
}

const NO_EFFECT: ReadonlySet<string> = new Set(['notLeader', 'transferring', 'confChangePending', 'tooLarge', 'overwritten']);

export class Cluster {
  readonly rng: Prng;
  readonly sched = new Scheduler();
  readonly net: SimNetwork;
  readonly checker = new Checker();
  readonly nodes = new Map<NodeId, SimNode>();
  readonly trace: Trace;
  readonly stats: SimStats;
  private readonly opts: SimOptions;
  private readonly initialVoters: NodeId[];
  private readonly snapshotEvery: number;
  private readonly segmentBytes: number;
  private nextNodeNo: number;
  private nextOwner = 1;
  private cmdSeq = 0;
  private readSeq = 0;
  private clientOps = 0;
  private leaderGuess: NodeId;
  /** Acknowledged commands in ack order with their index (null: acked by a broken client). */
  private readonly ackedList: { cmd: string; index: number | null }[] = [];
  readonly acked = new Map<string, number | null>();
  private faultsOn = true;
  private failure: SimViolation | null = null;
  private readonly removed = new Set<NodeId>();
  private readonly everMember = new Set<NodeId>();

  constructor(
    readonly seed: number,
    opts: SimOptions,
  ) {
    this.opts = opts;
    this.rng = new Prng(seed);
    this.net = new SimNetwork(this.sched, this.rng.fork(), { ...opts.network });
    this.trace = new Trace(opts.fullTrace, opts.traceTail);
    this.net.trace = (ev) => this.log(ev);
    this.snapshotEvery = this.rng.pick([8, 20, 50, 200]);
    this.segmentBytes = this.rng.pick([4096, 16384, 65536]);
    this.initialVoters = [];
    for (let i = 1; i <= opts.nodes; i++) this.initialVoters.push(`n${i}`);
    for (const id of this.initialVoters) this.everMember.add(id);
    this.nextNodeNo = opts.nodes + 1;
    this.leaderGuess = this.initialVoters[0];
    this.stats = {
      seed,
      nodes: opts.nodes,
      events: 0,
      virtualMs: 0,
      leadersElected: 0,
      commits: 0,
      crashes: 0,
      restarts: 0,
      proposals: 0,
      acked: 0,
      readsServed: 0,
      leaseReads: 0,
      snapshotsInstalled: 0,
      snapshotsTaken: 0,
      confChanges: 0,
      partitions: 0,
      delivered: 0,
      diskErrors: 0,
      storageRecoveries: 0,
      outages: 0,
      tornWrites: 0,
      lostWrites: 0,
      traceHash: '',
    };
    this.log(`seed ${seed} nodes ${opts.nodes} snapshotEvery ${this.snapshotEvery} segmentBytes ${this.segmentBytes}`);
    const boot: ConfState = { voters: [...this.initialVoters], learners: [] };
    for (const id of this.initialVoters) this.addNode(id, boot);
  }

  log(ev: string): void {
    this.trace.add(`${this.sched.now.toFixed(3)} ${ev}`);
  }

  /** Record a violation found inside an event (thrown at the end of that event). */
  private violate(reason: string): void {
    if (!this.failure) this.failure = new SimViolation(reason);
  }

  /** Run a check from inside the code under test: a violation is recorded, never thrown into it. */
  observe(fn: () => void): void {
    this.guard(fn);
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (e instanceof SimViolation) this.violate(e.message);
      else this.violate(`simulator threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
  }

  // ------------------------------------------------------------------ nodes

  private addNode(id: NodeId, boot: ConfState | null): SimNode {
    const sm = new SimStateMachine(id, this.sched, this.rng.fork(), {
      applied: (node, index, item, e) => this.guard(() => this.observeApply(node, index, item, e)),
    });
    const n: SimNode = {
      id,
      fs: new SimFs(this.sched, this.rng.fork(), { ...this.opts.disk }),
      sm,
      owner: null,
      incarnation: 0,
      driver: null,
      store: null,
      raw: null,
      unsettledFrom: Number.POSITIVE_INFINITY,
      appendsInFlight: 0,
      appendFailed: false,
      clock: null,
      retired: false,
      bootstrap: boot,
      durable: { hardState: { term: 0, vote: null, commit: 0 }, entries: new Map(), last: 0, installing: null },
      appliedConf: null,
    };
    n.fs.trace = (ev) => this.log(`fs ${id} ${ev}`);
    this.nodes.set(id, n);
    this.net.attach(id, {
      owner: () => (n.driver ? n.owner : null),
      receive: (m) => n.driver?.receive(m),
      reportSnapshot: (to, ok) => n.driver?.reportSnapshot(to, ok),
      reportUnreachable: (to) => n.driver?.reportUnreachable(to),
    });
    this.start(n);
    return n;
  }

  /** (Re)start a node from its disk, as a new incarnation (asynchronous, like a real boot). */
  private start(n: SimNode): void {
    const owner = this.nextOwner++;
    n.owner = owner;
    n.incarnation++;
    n.fs.owner = owner;
    n.sm.owner = owner;
    const drift = this.opts.faults.clockDrift;
    const rate = 1 + drift * (this.rng.int(2001) / 1000 - 1);
    n.clock = this.sched.clockFor(owner, rate, this.rng.int(1_000_000));
    const rng = this.rng.fork();
    this.log(`start ${n.id}#${n.incarnation} rate ${rate.toFixed(3)}`);
    const boot = n.bootstrap;
    const openLog = (): Promise<LogStore> =>
      LogStore.open(DIR, {
        fs: n.fs,
        segmentBytes: this.segmentBytes,
        preallocate: 'sparse',
        maxEntryBytes: 1024,
        bootstrapConf: boot ?? { voters: [], learners: [] },
      });
    // The driver's own way back from a disk error (issue 16): the same process reopens its
    // log, which reads what the page cache holds, not only what was synced.
    const reopenLog = async (): Promise<RaftLogStorage> => {
      await n.raw?.close();
      const store = await openLog();
      if (n.owner !== owner) throw new Error('node went down during its storage recovery');
      this.checkRecovery(n, store, 'reopen');
      const observed = new ObservedStorage(store, this, n, this.opts.bug);
      n.raw = store;
      n.store = observed;
      this.log(`reopen ${n.id}#${n.incarnation} last ${store.lastIndex()} hs ${JSON.stringify(store.initialState().hardState)}`);
      return observed;
    };
    void (async () => {
      const store = await openLog();
      if (n.owner !== owner) return;
      this.checkRecovery(n, store, 'boot');
      const observed = new ObservedStorage(store, this, n, this.opts.bug);
      const clock = n.clock as SimClock;
      const driver = await RaftDriver.start(
        observed,
        this.net.transportFor(n.id, owner),
        n.sm,
        {
          id: n.id,
          tickMs: TICK_MS,
          electionTicks: ELECTION_TICKS,
          heartbeatTicks: 1,
          maxMsgBytes: 512,
          maxInflightMsgs: 8,
          snapshotEveryEntries: this.snapshotEvery,
          proposalTimeoutMs: 2_000,
          logger: SILENT,
          random: (k) => rng.int(k),
          clock,
          recovery: { reopenLog, initialBackoffMs: 20, maxBackoffMs: 500 },
        },
        boot,
      );
      if (n.owner !== owner) return;
      n.store = observed;
      n.raw = store;
      n.driver = driver;
      driver.onStorageFault((fault) => {
        if (n.owner !== owner) return;
        if (fault === null) {
          this.stats.storageRecoveries++;
          this.log(`recovered ${n.id}#${n.incarnation} applied ${driver.appliedIndex}`);
          return;
        }
        this.log(`storage fault ${n.id}#${n.incarnation} attempt ${fault.attempts}: ${fault.reason}`);
        if (fault.attempts === 0) this.stats.diskErrors++;
      });
      driver.onLeaderChange((leader) => this.guard(() => this.leaderChanged(n, owner, leader)));
      driver.onConfChange((change, conf) => {
        if (change && n.owner === owner) n.appliedConf = { voters: [...conf.voters], learners: [...conf.learners] };
      });
      this.log(`up ${n.id}#${n.incarnation} applied ${driver.appliedIndex} last ${store.lastIndex()} hs ${JSON.stringify(store.initialState().hardState)}`);
    })().catch((e: unknown) => {
      if (n.owner !== owner) return;
      if (isIoError(e)) {
        this.log(`boot of ${n.id}#${n.incarnation} failed: ${(e as Error).message}`);
        this.crash(n, 'boot failed on a disk error');
        return;
      }
      this.violate(`boot of ${n.id} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    });
  }

  /** Power loss of one node: its events die, its disk and state machine lose what was not synced. */
  private crash(n: SimNode, why: string): void {
    if (n.owner === null) return;
    this.sched.kill(n.owner);
    n.owner = null;
    n.driver = null;
    n.store = null;
    n.raw = null;
    n.unsettledFrom = Number.POSITIVE_INFINITY;
    n.appendsInFlight = 0;
    n.appendFailed = false;
    n.clock = null;
    n.fs.crash();
    n.sm.crash();
    this.stats.crashes++;
    this.log(`crash ${n.id}#${n.incarnation} (${why}); state machine keeps ${n.sm.applied}`);
  }

  /**
   * After a boot or an in-process reopen: everything the log store had acknowledged durable
   * is there. A boot follows a power loss (the disk twin kept only what was synced, plus a
   * prefix), so all it reads is now the durable view; a reopen may read unsynced writes from
   * the page cache, which stay unproven until written again (the driver does).
   */
  private checkRecovery(n: SimNode, store: LogStore, how: 'boot' | 'reopen'): void {
    const hs = store.initialState().hardState;
    const was = n.durable.hardState;
    if (hs.term < was.term) this.violate(`durability: ${n.id} recovered term ${hs.term}, it had made term ${was.term} durable`);
    else if (hs.term === was.term && was.vote !== null && hs.vote !== was.vote) {
      this.violate(`durability: ${n.id} recovered vote ${hs.vote ?? 'none'} in term ${hs.term}, it had made vote ${was.vote} durable`);
    }
    if (hs.commit < was.commit) this.violate(`durability: ${n.id} recovered commit ${hs.commit} < durable ${was.commit}`);
    const first = store.firstIndex();
    // An install cut short by the crash that took effect replaced the log: nothing of
    // the old one need survive (whether it took effect is the snapshot's meta, durable or not).
    const installing = n.durable.installing;
    const snap = store.snapshotMeta();
    const replaced = installing !== null && snap.index === installing.index && snap.term === installing.term;
    n.durable.installing = null;
    for (const [i, sig] of replaced ? [] : n.durable.entries) {
      if (i < first || (how === 'reopen' && i >= n.unsettledFrom)) continue;
      const e = entryAt(store, i);
      const got = e ? `${e.term}|${itemOf(e)}` : 'nothing';
      if (got !== sig) this.violate(`durability: ${n.id} lost entry ${i} (${sig}) that its log store had acknowledged durable; recovered ${got} (last ${store.lastIndex()})`);
    }
    n.durable.hardState = { ...hs };
    if (how === 'reopen') {
      // The reopen's new segment synced the directory: the snapshot's metadata (written and
      // synced before its rename) is durable now, and so is the hard state it copied. From
      // the first append that did not succeed on, the page cache may show an overwrite that
      // never reached the disk: those entries are the driver's to write again.
      if (replaced) n.durable.entries.clear();
      for (const i of [...n.durable.entries.keys()]) if (i >= n.unsettledFrom) n.durable.entries.delete(i);
      n.unsettledFrom = Number.POSITIVE_INFINITY;
      n.appendFailed = false;
      for (const i of [...n.durable.entries.keys()]) if (i < first || i > store.lastIndex()) n.durable.entries.delete(i);
      n.durable.last = Math.max(Math.min(n.durable.last, store.lastIndex()), snap.index);
      return;
    }
    n.durable.entries = new Map();
    for (let i = first; i <= store.lastIndex(); i++) {
      const e = entryAt(store, i);
      if (e) n.durable.entries.set(i, `${e.term}|${itemOf(e)}`);
    }
    n.durable.last = store.lastIndex();
  }

  durableAppend(n: SimNode, entries: Entry[]): void {
    const d = n.durable;
    const first = entries[0].index;
    for (const i of [...d.entries.keys()]) if (i >= first) d.entries.delete(i);
    for (const e of entries) d.entries.set(e.index, `${e.term}|${itemOf(e)}`);
    d.last = entries[entries.length - 1].index;
  }

  durableHardState(n: SimNode, hs: HardState, log: LogStore): void {
    this.guard(() => {
      const prev = n.durable.hardState;
      if (hs.term < prev.term) this.checker.fail(`hard state: ${n.id} term went back from ${prev.term} to ${hs.term}`);
      if (hs.term === prev.term && prev.vote !== null && hs.vote !== prev.vote) {
        this.checker.fail(`hard state: ${n.id} changed its vote in term ${hs.term} from ${prev.vote} to ${hs.vote ?? 'none'}`);
      }
      this.checker.observeCommit(n.id, log, hs.term, Math.max(prev.commit, log.firstIndex() - 1), hs.commit, n.durable.last);
      n.durable.hardState = { ...hs };
    });
  }

  durableSnapshot(n: SimNode, meta: SnapshotMeta): void {
    n.durable.installing = null;
    n.durable.entries.clear();
    n.durable.last = meta.index;
    this.stats.snapshotsInstalled++;
    const c = this.checker.committed.get(meta.index);
    if (c && c.term !== meta.term) this.violate(`snapshot: ${n.id} installed ${meta.index}/${meta.term}, committed term there is ${c.term}`);
  }

  private leaderChanged(n: SimNode, owner: number, leader: NodeId | null): void {
    if (n.owner !== owner || !n.driver || !n.store) return;
    const st = n.driver.status();
    this.log(`leader ${n.id} sees ${leader ?? '-'} (term ${st.term})`);
    if (leader !== n.id) return;
    this.leaderGuess = n.id;
    this.checker.observeLeader(st.term, n.id);
    this.checker.checkLeaderCompleteness(n.id, st.term, n.store);
  }

  private observeApply(node: NodeId, index: number, item: string, e: Entry): void {
    const n = this.nodes.get(node);
    if (!n) return;
    if (index > n.durable.last && !n.durable.entries.has(index) && this.opts.bug === null) {
      this.checker.fail(`apply: ${node} applies ${index} before its log made it durable (durable last ${n.durable.last})`);
    }
    if (e.type === EntryType.ConfChange && n.appliedConf === null) {
      // Superseded: the core restored a snapshot past it while this Ready was applied.
      if (!n.driver || n.driver.confIndex < index) return this.checker.fail(`membership: ${node} applies ConfChange ${index} without the core applying it`);
      this.log(`conf ${node} @${index} superseded by a snapshot`);
    } else if (e.type === EntryType.ConfChange) {
      const conf = n.appliedConf;
      if (!conf) return;
      n.appliedConf = null;
      this.checker.observeConf(node, index, conf);
      this.log(`conf ${node} @${index} ${item} -> v[${conf.voters.join(',')}] l[${conf.learners.join(',')}]`);
    }
    this.checker.observeApply(node, index, item);
    if (index > this.stats.commits) this.stats.commits = index;
  }

  live(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.driver && !n.retired) out.push(n);
    return out;
  }

  members(): ConfState {
    return this.checker.latestConf ?? { voters: [...this.initialVoters], learners: [] };
  }

  private leader(): SimNode | null {
    let best: SimNode | null = null;
    let bestTerm = -1;
    for (const n of this.live()) {
      const st = n.driver?.status();
      if (st && st.role === 'leader' && st.term > bestTerm) {
        best = n;
        bestTerm = st.term;
      }
    }
    return best;
  }

  // ------------------------------------------------------------------ clients

  private clientTarget(): SimNode | null {
    const live = this.live();
    if (live.length === 0) return null;
    const guess = this.nodes.get(this.leaderGuess);
    if (guess?.driver && this.rng.int(10) < 8) return guess;
    return this.rng.pick(live);
  }

  private clientOp(): void {
    if (this.clientOps >= this.opts.maxClientOps) return;
    if (this.rng.chance(this.opts.readShare)) this.read(this.rng.chance(0.5));
    else this.write();
  }

  private ack(cmd: string, index: number | null): void {
    if (this.acked.has(cmd)) return;
    this.acked.set(cmd, index);
    this.ackedList.push({ cmd, index });
    this.stats.acked++;
    this.log(`ack ${cmd} @${index ?? '?'}`);
    this.opts.clients?.writeAcked(cmd);
  }

  private write(): void {
    const n = this.clientTarget();
    if (!n || !n.driver) return;
    const owner = n.owner;
    const cmd = `c${++this.cmdSeq}`;
    this.stats.proposals++;
    this.clientOps++;
    this.opts.clients?.writeInvoked(cmd);
    this.log(`propose ${cmd} -> ${n.id}`);
    if (this.opts.bug === 'ackBeforeApply') this.ack(cmd, null);
    n.driver.propose(Buffer.from(cmd)).then(
      (out) => this.guard(() => this.writeAnswered(n, owner, cmd, out)),
      (e: unknown) => this.violate(`propose threw: ${String(e)}`),
    );
  }

  private writeAnswered(n: SimNode, owner: number | null, cmd: string, out: ProposalOutcome): void {
    this.clientOps--;
    if (out.ok) {
      if (n.owner === owner) {
        const at = n.sm.items[out.index - 1];
        if (at !== cmd) this.checker.fail(`proposal: ${n.id} answered ${cmd} applied at ${out.index}, its state machine has "${at ?? '(nothing)'}" there`);
      }
      this.ack(cmd, out.index);
      return;
    }
    this.log(`propose ${cmd} -> ${n.id}: ${out.reason} (leader ${out.leader ?? '-'})`);
    if (out.leader) this.leaderGuess = out.leader;
    else this.leaderGuess = this.rng.pick([...this.nodes.keys()]);
    if (NO_EFFECT.has(out.reason)) this.opts.clients?.writeFailed(cmd);
  }

  private read(lease: boolean): void {
    const n = this.clientTarget();
    if (!n || !n.driver) return;
    const owner = n.owner;
    const ctx = `r${++this.readSeq}`;
    const check: ReadCheck = { ackedBefore: this.ackedList.length };
    if (lease) {
      if (!n.driver.canReadLocally()) return;
      this.opts.clients?.readInvoked(ctx);
      this.stats.leaseReads++;
      this.serveRead(n, ctx, check, 'lease');
      return;
    }
    this.clientOps++;
    this.opts.clients?.readInvoked(ctx);
    this.log(`readIndex ${ctx} -> ${n.id} (acked ${check.ackedBefore})`);
    n.driver.readBarrier(1_000).then(
      (r) => {
        this.clientOps--;
        if (r.ok && n.owner === owner) this.guard(() => this.serveRead(n, ctx, check, 'readIndex'));
      },
      (e: unknown) => this.violate(`readBarrier threw: ${String(e)}`),
    );
  }

  /** A read sees every write acknowledged before it was issued. */
  private serveRead(n: SimNode, ctx: string, check: ReadCheck, how: string): void {
    const applied = n.sm.applied;
    this.opts.clients?.readServed(ctx, n.sm.commands(applied));
    const items = n.sm.items;
    for (let k = 0; k < check.ackedBefore; k++) {
      const { cmd, index } = this.ackedList[k];
      const seen = index === null ? items.includes(cmd) : index <= applied && items[index - 1] === cmd;
      if (!seen) {
        this.checker.fail(`linearizable read: ${ctx} (${how}) served by ${n.id} at applied ${applied} misses ${cmd} (acked @${index ?? '?'} before the read was issued)`);
      }
    }
    this.stats.readsServed++;
    this.log(`read ${ctx} ${how} ${n.id} @${applied}`);
  }

  // ------------------------------------------------------------------ faults

  private chaos(): void {
    // A node whose log store failed stops taking part and recovers by itself (the driver
    // reopens its log with backoff); anything but a disk error is a bug.
    for (const n of this.nodes.values()) {
      const f = n.driver?.failed;
      if (n.driver && f && !isIoError(f)) this.checker.fail(`driver ${n.id} failed: ${f instanceof Error ? (f.stack ?? f.message) : String(f)}`);
    }
    this.retireRemoved();
    if (!this.faultsOn) return;
    const f = this.opts.faults;
    let r = this.rng.int(1000);
    const pick = (w: number): boolean => {
      if (r < w) return true;
      r -= w;
      return false;
    };
    if (pick(f.crashWeight)) this.crashRandom();
    else if (pick(f.restartWeight)) this.restartRandom();
    else if (pick(f.partitionWeight)) {
      if (!this.net.partitioned()) this.partition();
    } else if (pick(f.healWeight)) {
      if (this.net.partitioned()) {
        this.net.heal();
        this.log('heal');
      }
    } else if (pick(this.opts.membership ? f.confChangeWeight : 0)) this.confChange();
    else if (pick(f.transferWeight)) this.transfer();
    else if (pick(f.outageWeight)) this.outage();
  }

  /** One node's disk refuses writes for a while; its driver must step aside and come back alone. */
  private outage(): void {
    const candidates = [...this.nodes.values()].filter((n) => !n.retired && n.driver !== null && n.fs.outage === null);
    if (candidates.length === 0) return;
    const n = this.rng.pick(candidates);
    const kind = this.rng.chance(0.5) ? 'ENOSPC' : 'EIO';
    const ms = this.rng.range(this.opts.faults.outageMinMs, this.opts.faults.outageMaxMs);
    n.fs.outage = kind;
    this.stats.outages++;
    this.log(`outage ${n.id} ${kind} for ${ms} ms`);
    this.sched.at(ms, () => {
      n.fs.outage = null;
      this.log(`outage ${n.id} cleared`);
    });
  }

  private crashRandom(): void {
    const live = this.live();
    const members = this.members();
    const down = members.voters.filter((id) => !this.nodes.get(id)?.driver).length;
    // Keep a majority of voters up most of the time so the run makes progress.
    if (live.length === 0 || down >= Math.floor((members.voters.length - 1) / 2) + (this.rng.chance(0.1) ? 1 : 0)) return;
    this.crash(this.rng.pick(live), 'power loss');
  }

  private restartRandom(): void {
    const down = [...this.nodes.values()].filter((n) => n.owner === null && !n.retired);
    if (down.length === 0) return;
    this.stats.restarts++;
    this.start(this.rng.pick(down));
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

  private confChange(): void {
    const l = this.leader();
    if (!l || !l.driver) return;
    const members = this.members();
    const st = l.driver.status();
    let cc: ConfChange;
    if (members.learners.length > 0) {
      const learner = this.rng.pick(members.learners);
      const pr = st.progress[learner];
      // Promote once it caught up (as `dfs cluster add-member` does).
      if (!pr || pr.match + 5 < st.lastIndex) return;
      cc = { type: 'addVoter', node: learner };
    } else if (members.voters.length > 3) {
      const others = members.voters.filter((id) => id !== l.id);
      cc = { type: 'removeNode', node: this.rng.chance(0.8) ? this.rng.pick(others) : l.id };
    } else if (this.nextNodeNo <= this.opts.nodes + 3) {
      const id = `n${this.nextNodeNo++}`;
      this.addNode(id, null);
      cc = { type: 'addLearner', node: id };
    } else {
      return;
    }
    this.stats.confChanges++;
    this.log(`confChange ${cc.type} ${cc.node} -> ${l.id}`);
    l.driver.proposeConfChange(cc).then(
      (out) => this.log(`confChange ${cc.type} ${cc.node}: ${out.ok ? `@${out.index}` : out.reason}`),
      (e: unknown) => this.violate(`proposeConfChange threw: ${String(e)}`),
    );
  }

  /** Nodes removed from the configuration stop for good. */
  private retireRemoved(): void {
    const m = this.members();
    const inConf = new Set([...m.voters, ...m.learners]);
    for (const n of this.nodes.values()) {
      if (n.retired) continue;
      if (inConf.has(n.id)) {
        this.everMember.add(n.id);
        continue;
      }
      if (!this.everMember.has(n.id) || this.checker.latestConf === null) continue;
      this.removed.add(n.id);
      n.retired = true;
      this.crash(n, 'retired (removed from the configuration)');
      this.net.detach(n.id);
    }
  }


  private transfer(): void {
    const l = this.leader();
    if (!l || !l.driver) return;
    const others = this.members().voters.filter((id) => id !== l.id);
    if (others.length === 0) return;
    const to = this.rng.pick(others);
    this.log(`transferLeader ${l.id} -> ${to}`);
    l.driver.transferLeader(to);
  }

  // ------------------------------------------------------------------ the run

  private loop(every: number, fn: () => void): void {
    const jitter = every * (this.rng.int(1000) / 1000);
    this.sched.at(every / 2 + jitter, () => {
      this.guard(fn);
      this.loop(every, fn);
    });
  }

  private async runFor(ms: number, stop: () => boolean = () => false): Promise<void> {
    const until = this.sched.now + ms;
    const budget = this.opts.maxEvents - this.sched.eventsRun;
    await this.sched.runUntil(until, () => this.failure !== null || stop(), budget);
    if (this.failure) throw this.failure;
    if (this.sched.eventsRun >= this.opts.maxEvents) {
      throw new SimFailure('liveness', this.seed, Math.round(this.sched.now), `runaway: ${this.opts.maxEvents} events`, this.trace.last(), this.replayLine());
    }
  }

  /** Heal everything, stop faults, and wait (bounded) until every member caught up. */
  private async quiet(): Promise<void> {
    this.faultsOn = false;
    this.net.heal();
    this.net.opts = { ...this.net.opts, dropProbability: 0, duplicateProbability: 0 };
    for (const n of this.nodes.values()) {
      n.fs.faults = { ...n.fs.faults, eioProbability: 0, enospcProbability: 0, stallProbability: 0 };
      n.fs.outage = null;
    }
    this.log('quiet: heal, no more faults');
    for (const n of this.nodes.values()) {
      if (n.owner === null && !n.retired) {
        this.stats.restarts++;
        this.start(n);
      }
    }
    let probe: string | null = null;
    let probeAt = -1;
    let converged = false;
    const deadline = this.sched.now + this.opts.quietMs;
    while (!converged && this.sched.now < deadline) {
      await this.runFor(Math.min(20, deadline - this.sched.now));
      // A node that went down meanwhile (its last disk error, or a boot that failed) restarts.
      for (const n of this.nodes.values()) {
        if (n.owner === null && !n.retired) {
          this.stats.restarts++;
          this.start(n);
        }
      }
      const l = this.leader();
      if (!l || !l.driver) continue;
      if (probe === null || (!this.acked.has(probe) && this.rng.chance(0.05))) {
        const cmd = `c${++this.cmdSeq}`;
        probe = cmd;
        this.opts.clients?.writeInvoked(cmd);
        const owner = l.owner;
        const node = l;
        this.log(`probe ${cmd} -> ${l.id}`);
        l.driver.propose(Buffer.from(cmd)).then(
          (out) => {
            this.guard(() => this.writeAnswered(node, owner, cmd, out));
            if (out.ok) probeAt = out.index;
          },
          (e: unknown) => this.violate(`propose threw: ${String(e)}`),
        );
        this.clientOps++;
        continue;
      }
      if (!this.acked.has(probe)) continue;
      const st = l.driver.status();
      const members = this.members();
      const lagging = [...members.voters, ...members.learners].filter((id) => {
        const n = this.nodes.get(id);
        const pr = st.progress[id];
        return !n || !n.driver || !pr || pr.match !== st.lastIndex || n.sm.applied < st.lastIndex;
      });
      if (lagging.length === 0 && st.lastIndex >= probeAt) {
        converged = true;
        this.log(`converged at ${st.lastIndex}, leader ${l.id} term ${st.term}`);
      }
    }
    if (!converged) {
      const l = this.leader();
      const st = l?.driver?.status();
      const view = [...this.nodes.values()].map((n) => {
        const s = n.driver?.status();
        const pr = st?.progress[n.id];
        return s
          ? `${n.id}:${s.role}/t${s.term}/c${s.commit}/a${n.sm.applied}/l${s.lastIndex}${pr ? `/match${pr.match}/${pr.state}` : ''}`
          : `${n.id}:${n.retired ? 'retired' : 'down'}`;
      });
      throw new SimFailure(
        'liveness',
        this.seed,
        Math.round(this.sched.now),
        `no convergence within ${this.opts.quietMs} ms after healing (probe ${probe ?? 'not proposed'}, leader ${l?.id ?? 'none'}; ${view.join(' ')})`,
        this.trace.last(),
        this.replayLine(),
      );
    }
  }

  /** Every acknowledged write is on every member, once, at its index. */
  private finalCheck(): void {
    const m = this.members();
    for (const id of [...m.voters, ...m.learners]) {
      const n = this.nodes.get(id);
      if (!n || !n.driver) return this.checker.fail(`final: member ${id} is not running`);
      for (const [cmd, index] of this.acked) {
        if (index === null) {
          if (!n.sm.items.includes(cmd)) this.checker.fail(`acknowledged write lost: ${cmd} (acked before apply) is not on ${id}`);
        } else if (n.sm.items[index - 1] !== cmd) {
          this.checker.fail(`acknowledged write lost: ${cmd} acked at ${index}, ${id} has "${n.sm.items[index - 1] ?? '(nothing)'}" there`);
        }
      }
    }
  }

  replayLine(): string {
    const bug = this.opts.bug ? ` DFS_SIM_BUG=${this.opts.bug}` : '';
    return `DFS_SIM_SEED=${this.seed} DFS_SIM_NODES=${this.opts.nodes} DFS_SIM_PROFILE=${this.opts.profile} DFS_SIM_MS=${this.opts.durationMs}${bug} npx vitest run test/unit/raft/sim-replay`;
  }

  async run(): Promise<SimStats> {
    try {
      this.loop(CHAOS_TICK_MS, () => this.chaos());
      this.loop(this.opts.clientIntervalMs, () => {
        if (this.faultsOn) this.clientOp();
      });
      await this.runFor(this.opts.durationMs);
      await this.quiet();
      this.finalCheck();
    } catch (e) {
      if (e instanceof SimFailure) throw e;
      const reason = e instanceof SimViolation ? e.message : `simulator threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
      this.log(`FAIL ${reason}`);
      throw new SimFailure('safety', this.seed, Math.round(this.sched.now), reason, this.trace.last(), this.replayLine());
    }
    this.stats.leadersElected = this.checker.leaders.size;
    this.stats.events = this.sched.eventsRun;
    this.stats.virtualMs = Math.round(this.sched.now);
    this.stats.delivered = this.net.stats.delivered;
    for (const n of this.nodes.values()) {
      this.stats.tornWrites += n.fs.stats.tornWrites;
      this.stats.lostWrites += n.fs.stats.lostWrites;
    }
    this.stats.traceHash = this.trace.digest();
    return this.stats;
  }
}

function isIoError(e: unknown): boolean {
  if (e instanceof LogStoreError) return e.code === 'IO';
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'EIO' || code === 'ENOSPC';
}

export type SimProfile = 'default' | 'harsh' | 'chaos' | 'disk';

/**
 * Presets: `default` is the mix above; `harsh` crashes often; `chaos` is a bad network
 * (slow, lossy, duplicating, often partitioned); `disk` is a bad disk (stalls, EIO, ENOSPC).
 */
export const simProfiles: Record<SimProfile, { faults?: Partial<FaultOptions>; network?: Partial<NetworkOptions>; disk?: Partial<DiskFaultOptions> }> = {
  default: {},
  harsh: { faults: { crashWeight: 40, restartWeight: 80 } },
  chaos: {
    network: { minDelayMs: 0.05, maxDelayMs: 25, dropProbability: 0.2, duplicateProbability: 0.1, maxInFlightPerLink: 32 },
    faults: { partitionWeight: 25, healWeight: 20 },
  },
  disk: {
    disk: { stallProbability: 0.02, stallLatencyMs: 150, eioProbability: 0.002, enospcProbability: 0.001, maxLatencyMs: 3 },
    // Disks that fill up or fail for a while, then come back (issue 16).
    faults: { outageWeight: 6 },
  },
};

export interface RunOptions extends Partial<Omit<SimOptions, 'faults' | 'network' | 'disk'>> {
  faults?: Partial<FaultOptions>;
  network?: Partial<NetworkOptions>;
  disk?: Partial<DiskFaultOptions>;
}

/** Build the options of a run: defaults, then the profile's preset, then `opts`. */
export function simOptions(opts: RunOptions = {}): SimOptions {
  const profile = opts.profile ?? 'default';
  const preset = simProfiles[profile];
  const bug = opts.bug ?? null;
  return {
    ...defaultSimOptions,
    ...opts,
    profile,
    bug,
    network: { ...defaultSimOptions.network, ...preset.network, ...opts.network },
    faults: { ...defaultSimOptions.faults, ...preset.faults, ...opts.faults },
    disk: { ...defaultSimOptions.disk, ...preset.disk, ...opts.disk, ...(bug === 'lyingDisk' ? { lyingFsync: true } : {}) },
  };
}

/** Run one seed; rejects with SimFailure (safety or liveness) with the replay line and a trace tail. */
export function runSeed(seed: number, opts: RunOptions = {}): Promise<SimStats> {
  return new Cluster(seed, simOptions(opts)).run();
}
