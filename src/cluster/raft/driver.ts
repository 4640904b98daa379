// The Raft driver: runs the pure core (RawNode) against real time, the disk log
// (LogStore), a transport and a state machine, following the Ready contract (README).
// It also turns proposals and reads into promises for the service above it.
import type { Logger } from 'pino';
import { RawNode } from './core.js';
import { decodeConfChange, encodeConfChange, nextConf } from './conf-change.js';
import { realClock, type Clock, type TimerHandle } from './clock.js';
import type { ProposeRefusal, RaftStatus } from './api.js';
import type { ConfChange, ConfState, Entry, HardState, LogReader, Message, NodeId, Ready, Snapshot, SnapshotMeta } from './types.js';
import { EntryType } from './types.js';

/** What the driver applies committed commands to (the namespace, in dfs). */
export interface StateMachine {
  /** Apply committed application entries in order; one result per entry. */
  apply(entries: Entry[]): Promise<unknown[]>;
  /** Index of the last entry whose effects are durably stored (after sync()). */
  appliedIndex(): Promise<number>;
  /** Make everything applied so far durable (before the log is compacted past it). */
  sync(): Promise<void>;
  /** The whole state, as of the last applied entry. */
  snapshot(): Promise<Buffer>;
  /** Replace the whole state (a follower too far behind). */
  restore(data: Buffer): Promise<void>;
  /**
   * Optional: after a failed write, make the state machine writable again from what its
   * storage holds (reopen it; caches dropped), as a restart would. appliedIndex() is
   * asked again afterwards.
   */
  recover?(): Promise<void>;
}

/**
 * The durable log the driver persists each Ready into (LogStore implements it; the
 * simulator runs that same LogStore over a simulated file system). Every promise resolves
 * only once what it wrote is durable; the LogReader view changes when a write is admitted.
 */
export interface RaftLogStorage extends LogReader {
  append(entries: Entry[]): Promise<void>;
  setHardState(hs: HardState): Promise<void>;
  setConfState(conf: ConfState): Promise<void>;
  createSnapshot(index: number, conf: ConfState, data: Buffer): Promise<Snapshot>;
  applySnapshot(snapshot: Snapshot): Promise<void>;
  compact(index: number): Promise<void>;
  /** After a reopen: the image of the latest snapshot, so snapshot() can serve it. */
  attachSnapshotData(data: Buffer): void;
  snapshotMeta(): SnapshotMeta;
}

/** What the driver needs from a transport (GrpcTransport implements it). */
export interface RaftTransport {
  /** Queue messages; they leave at the end of this event-loop turn at the latest. */
  send(messages: Message[]): void;
  /** Optional: write what is queued now (a message someone waits for). */
  flush?(): void;
  setPeers(peers: Map<NodeId, string>): void;
  close(): Promise<void> | void;
}

export interface RaftDriverOptions {
  id: NodeId;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  maxMsgBytes: number;
  maxInflightMsgs: number;
  /** Take a snapshot (and compact the log) every this many applied entries. */
  snapshotEveryEntries: number;
  /** Bound on the wait for a proposal to commit and apply. */
  proposalTimeoutMs: number;
  logger: Logger;
  random?: (n: number) => number;
  /** Time and timers; default the real ones (the simulator injects virtual ones). */
  clock?: Clock;
  /** How the node comes back after a storage fault; without it a failed write stops the node for good. */
  recovery?: StorageRecovery;
}

/**
 * Recovery from a failed write (issue 16): the node stops taking part (a leader hands
 * over), and after a backoff reopens its log and state machine from disk — exactly what
 * a restart would read, never the memory view of before the fault — and rejoins.
 */
export interface StorageRecovery {
  /** Close the failed log (what it still writes is waited for) and open it again from disk. */
  reopenLog(failed: RaftLogStorage): Promise<RaftLogStorage>;
  /** First retry this long after the fault; doubled after each failed attempt, up to maxBackoffMs. */
  initialBackoffMs: number;
  maxBackoffMs: number;
}

/** A storage fault the node is recovering from (null while it runs). */
export interface StorageFault {
  /** The last error, one line. */
  reason: string;
  /** When the fault began (clock ms), kept across failed attempts. */
  sinceMs: number;
  /** Recovery attempts that failed so far. */
  attempts: number;
}

export const DEFAULT_DRIVER_OPTIONS: Omit<RaftDriverOptions, 'id' | 'logger'> = {
  tickMs: 100,
  electionTicks: 10,
  heartbeatTicks: 1,
  maxMsgBytes: 1024 * 1024,
  maxInflightMsgs: 256,
  snapshotEveryEntries: 20_000,
  proposalTimeoutMs: 10_000,
};

export type ProposalOutcome =
  | { ok: true; result: unknown; index: number }
  | { ok: false; reason: ProposeRefusal | 'timeout' | 'stopped' | 'overwritten'; leader: NodeId | null };

interface PendingProposal {
  term: number;
  resolve: (o: ProposalOutcome) => void;
  timer: TimerHandle;
}

interface PendingRead {
  resolve: (o: { ok: true } | { ok: false; reason: 'timeout' | 'stopped'; leader: NodeId | null }) => void;
  timer: TimerHandle;
  /** Set once the ReadState arrived: wait until applied reaches it. */
  index: number | null;
}

export interface DriverStats {
  readies: number;
  /** Storage faults the node stopped on, and the recoveries that brought it back. */
  storageFaults: number;
  recoveries: number;
  entriesPersisted: number;
  messagesSent: number;
  entriesApplied: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  proposals: number;
}

/** Leader lease as a share of the election timeout: the other 20% absorb clock rate drift and timer jitter. */
const LEASE_RATIO = 0.8;

/** Readies handled in one run of the loop before it yields a turn of the event loop. */
const MAX_ROUNDS = 64;

/** Leader-to-follower replication messages (only a leader sends them) that may leave before the leader's own fsync. */
const EARLY_TYPES: ReadonlySet<Message['type']> = new Set(['MsgApp', 'MsgHeartbeat', 'MsgSnap']);

export class RaftDriver {
  private core: RawNode;
  private store: RaftLogStorage;
  private running = false;
  private stopped = false;
  private tickTimer: TimerHandle | null = null;
  private readonly clock: Clock;
  private applied: number;
  private lastSnapshotIndex: number;
  /** Last committed index the core handed out (applied, or skipped as already applied). */
  private replayedTo = 0;
  private readonly proposals = new Map<number, PendingProposal>();
  private readonly reads = new Map<string, PendingRead>();
  private nextReadId = 1;
  private leader: NodeId | null = null;
  private readonly leaderListeners: Array<(leader: NodeId | null) => void> = [];
  private readonly confListeners: Array<(change: ConfChange | null, conf: ConfState) => void> = [];
  private failure: unknown = null;
  private fault: StorageFault | null = null;
  /** The leader and term this node followed when its storage faulted (it answers their heartbeats). */
  private faultedUnder: { leader: NodeId; term: number } | null = null;
  private answeredWhileFaulted = false;
  /** No vote is granted before this time (ms, clock): set after a recovery that answered heartbeats. */
  private votesQuietUntilMs = 0;
  /**
   * First log index written since the last write this driver saw succeed (Infinity when
   * none): from there on the log may hold what never reached the disk.
   */
  private unprovenFrom = Number.POSITIVE_INFINITY;
  private retryTimer: TimerHandle | null = null;
  private readonly faultListeners: Array<(fault: StorageFault | null) => void> = [];
  private persistedTerm = -1;
  private lazyHardState: HardState | null = null;
  private persistedVote: NodeId | null = null;
  private persistedTermBefore = -1;
  private persistedVoteBefore: NodeId | null = null;
  /** Local reads are linearizable until this time (ms, monotonic): see lease(). */
  private leaseUntilMs = 0;
  /** Commit index confirmed by the lease round: reads wait until applied reaches it. */
  private leaseIndex = 0;
  /** Term the lease was confirmed in: a lease never outlives the term it was won in. */
  private leaseTerm = 0;
  private leaseRound: { context: string; issuedAtMs: number; term: number } | null = null;
  private leaseSeq = 0;
  readonly stats: DriverStats = { readies: 0, storageFaults: 0, recoveries: 0, entriesPersisted: 0, messagesSent: 0, entriesApplied: 0, snapshotsTaken: 0, snapshotsInstalled: 0, proposals: 0 };

  private constructor(
    store: RaftLogStorage,
    private transport: RaftTransport,
    private readonly sm: StateMachine,
    private readonly opts: RaftDriverOptions,
    applied: number,
    snapIndex: number,
  ) {
    this.clock = opts.clock ?? realClock;
    this.store = store;
    this.applied = applied;
    this.lastSnapshotIndex = snapIndex;
    this.core = this.newCore(snapIndex);
    this.replayedTo = snapIndex;
  }

  private newCore(snapIndex: number): RawNode {
    const opts = this.opts;
    return new RawNode({
      id: opts.id,
      electionTicks: opts.electionTicks,
      heartbeatTicks: opts.heartbeatTicks,
      maxMsgBytes: opts.maxMsgBytes,
      maxInflightMsgs: opts.maxInflightMsgs,
      preVote: true,
      checkQuorum: true,
      random: opts.random ?? ((n) => Math.floor(Math.random() * n)),
      storage: coreView(this.store),
      applied: snapIndex,
      leaseValid: (term) => this.leaseHeld(term),
    });
  }

  /**
   * Start a node over an opened LogStore. On a fresh store with `bootstrap` voters the
   * cluster's initial configuration is installed as a snapshot at index 1 (term 1) of
   * the state machine's initial image, identical on every initial member, so a node that
   * joins later always starts from a snapshot that names the membership.
   */
  static async start(
    store: RaftLogStorage,
    transport: RaftTransport,
    sm: StateMachine,
    opts: RaftDriverOptions,
    bootstrap: ConfState | null,
  ): Promise<RaftDriver> {
    if (bootstrap && store.lastIndex() === 0 && store.snapshotMeta().index === 0) {
      const image = await sm.snapshot();
      await store.applySnapshot({ meta: { index: 1, term: 1, conf: bootstrap }, data: image });
      await store.setHardState({ term: 1, vote: null, commit: 1 });
    }
    const { applied, snapIndex } = await recoveredState(store, sm);
    // The core restarts from the snapshot: its configuration is the snapshot's, and it
    // hands out every committed entry after it again. The driver skips what the state
    // machine already has (its applied index may be ahead of the lazily written commit
    // index) but still applies each ConfChange to the core, so the core's configuration at
    // every index is the one every other node had there. (Starting from the latest stored
    // ConfState instead gave a restarted node, whose state machine had lost unsynced
    // applies, a configuration from its future while it re-applied older entries: found by
    // the simulator.)
    const driver = new RaftDriver(store, transport, sm, opts, applied, snapIndex);
    await driver.attachSnapshotImage();
    driver.tickTimer = driver.clock.setInterval(() => driver.tick(), opts.tickMs);
    return driver;
  }

  /**
   * After a reopen the store has the snapshot's metadata but not its image; the state
   * machine holds exactly that image when nothing was applied past it. Otherwise a new
   * snapshot is taken now, at the applied index (a leader may have to send it before the
   * core has replayed that far); the log is kept from the old snapshot on for the replay.
   */
  private async attachSnapshotImage(): Promise<void> {
    const snapIndex = this.store.snapshotMeta().index;
    if (snapIndex === 0 || this.store.snapshot() !== null) return;
    if (this.applied === snapIndex) this.store.attachSnapshotData(await this.sm.snapshot());
    else await this.takeSnapshot();
  }

  // ---- inputs --------------------------------------------------------------------------

  /**
   * While recovering the core is not stepped: nothing is persisted, nothing acknowledged.
   * Two things still happen. The leader's traffic names the leader, so this node's callers
   * are sent there instead of waiting for one. And a heartbeat of the term and leader the
   * node was following when it faulted is answered: that promises nothing durable (a
   * follower answers heartbeats without writing), and it keeps the leader's quorum checks,
   * ReadIndex rounds and lease working, so committed data stays readable even when no
   * quorum can write (issue 16). Having answered, the node grants no vote for an election
   * timeout after it recovers (the lease it helped confirm must run out first).
   */
  private receiveWhileFaulted(msg: Message): void {
    if (EARLY_TYPES.has(msg.type) && msg.from !== this.leader) this.setLeader(msg.from);
    const under = this.faultedUnder;
    if (msg.type !== 'MsgHeartbeat' || under === null || msg.from !== under.leader || msg.term !== under.term) return;
    this.answeredWhileFaulted = true;
    this.transport.send([
      { type: 'MsgHeartbeatResp', from: this.opts.id, to: msg.from, term: msg.term, index: 0, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot: null, context: msg.context },
    ]);
    this.transport.flush?.();
  }

  /** A message from a peer (the transport calls this). */
  receive(msg: Message): void {
    if (this.stopped) return;
    if (this.failure) {
      if (this.fault) this.receiveWhileFaulted(msg);
      return;
    }
    // Votes wait out the lease this node confirmed while it was faulted (see receiveWhileFaulted).
    if ((msg.type === 'MsgVote' || msg.type === 'MsgPreVote') && this.clock.nowMs() < this.votesQuietUntilMs && msg.context?.toString() !== 'transfer') return;
    this.core.step(msg);
    this.kick();
  }

  reportUnreachable(peer: NodeId): void {
    if (!this.stopped && !this.failure) this.core.reportUnreachable(peer);
  }

  reportSnapshot(peer: NodeId, ok: boolean): void {
    if (this.stopped || this.failure) return;
    this.core.reportSnapshot(peer, ok);
    this.kick();
  }

  private tick(): void {
    if (this.stopped || this.failure) return;
    this.core.tick();
    this.renewLease();
    this.kick();
  }

  /**
   * Leader lease for local reads. Each round is a ReadIndex (a quorum heartbeat) issued
   * at time t; once it is confirmed, no other leader can be elected before
   * t + electionTicks * tickMs (followers that answered refuse votes for a full election
   * timeout after hearing from us: check-quorum). The lease is 80% of that, leaving 20%
   * for clock rate drift and timer jitter. A leadership transfer ends it at once
   * (MsgTimeoutNow bypasses the followers' refusal).
   */
  private renewLease(): void {
    // A round issued during a transfer proves nothing: the target may win at any moment,
    // with the votes of the very followers that answered it. One issued before the
    // transfer began expires before the transfer can time out (0.8 vs 1 election timeout).
    if (this.leader !== this.opts.id || this.leaseRound || this.core.transferring()) return;
    const context = `lease:${this.opts.id}:${++this.leaseSeq}`;
    this.leaseRound = { context, issuedAtMs: this.clock.nowMs(), term: this.core.currentTerm() };
    this.core.readIndex(Buffer.from(context));
  }

  private leaseDurationMs(): number {
    return this.opts.electionTicks * this.opts.tickMs * LEASE_RATIO;
  }

  /** True when a read served from the local state now is linearizable. */
  canReadLocally(): boolean {
    if (this.failure || this.leader !== this.opts.id || this.applied < this.leaseIndex || !this.leaseHeld(this.core.currentTerm())) return false;
    return !this.core.transferring();
  }

  /** The lease check the core asks before answering a follower's ReadIndex at once. */
  private leaseHeld(term: number): boolean {
    return term === this.leaseTerm && this.clock.nowMs() < this.leaseUntilMs;
  }

  /** Propose an application command; resolves once it is committed and applied here. */
  propose(data: Buffer): Promise<ProposalOutcome> {
    if (this.stopped || this.failure) return Promise.resolve({ ok: false, reason: 'stopped', leader: this.leader });
    const r = this.core.propose(data);
    if (!r.ok) return Promise.resolve({ ok: false, reason: r.reason, leader: r.leader });
    this.stats.proposals++;
    this.kick();
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(() => {
        this.proposals.delete(r.index);
        resolve({ ok: false, reason: 'timeout', leader: this.leader });
      }, this.opts.proposalTimeoutMs);
      this.proposals.set(r.index, { term: r.term, resolve, timer });
    });
  }

  /** Propose a membership change (at most one pending). */
  proposeConfChange(cc: ConfChange): Promise<ProposalOutcome> {
    if (this.stopped || this.failure) return Promise.resolve({ ok: false, reason: 'stopped', leader: this.leader });
    const r = this.core.proposeConfChange(cc);
    if (!r.ok) return Promise.resolve({ ok: false, reason: r.reason, leader: r.leader });
    this.kick();
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(() => {
        this.proposals.delete(r.index);
        resolve({ ok: false, reason: 'timeout', leader: this.leader });
      }, this.opts.proposalTimeoutMs);
      this.proposals.set(r.index, { term: r.term, resolve, timer });
    });
  }

  /**
   * Linearizable read barrier: resolves once this node's state machine reflects every
   * write committed before the call (ReadIndex, confirmed by a quorum heartbeat).
   */
  readBarrier(timeoutMs = this.opts.proposalTimeoutMs): Promise<{ ok: true } | { ok: false; reason: 'timeout' | 'stopped'; leader: NodeId | null }> {
    if (this.stopped || this.failure) return Promise.resolve({ ok: false, reason: 'stopped', leader: this.leader });
    const id = `r${this.opts.id}:${this.nextReadId++}`;
    this.core.readIndex(Buffer.from(id));
    this.kick();
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(() => {
        this.reads.delete(id);
        resolve({ ok: false, reason: 'timeout', leader: this.leader });
      }, timeoutMs);
      this.reads.set(id, { resolve, timer, index: null });
    });
  }

  transferLeader(to: NodeId): void {
    if (this.failure) return;
    this.core.transferLeader(to);
    this.kick();
  }

  campaign(): void {
    if (this.failure) return;
    this.core.campaign();
    this.kick();
  }

  status(): RaftStatus {
    return this.core.status();
  }

  get leaderId(): NodeId | null {
    return this.leader;
  }

  get appliedIndex(): number {
    return this.applied;
  }

  /** Index of the entry or snapshot the core's configuration reflects. */
  get confIndex(): number {
    return this.core.confIndex;
  }

  /** Why the node stopped taking part (a failed fsync or apply), or null while it runs. */
  get failed(): unknown {
    return this.failure;
  }

  /** The storage fault being recovered from, or null (also null after a stop for good). */
  get storageFault(): StorageFault | null {
    return this.fault ? { ...this.fault } : null;
  }

  /** The log the node runs on now (a recovery reopens it). */
  get logStorage(): RaftLogStorage {
    return this.store;
  }

  /** Calls `cb` when a storage fault begins or a recovery attempt fails (the fault), and with null once recovered. */
  onStorageFault(cb: (fault: StorageFault | null) => void): () => void {
    this.faultListeners.push(cb);
    return () => {
      const at = this.faultListeners.indexOf(cb);
      if (at >= 0) this.faultListeners.splice(at, 1);
    };
  }

  /** Calls `cb` on every leader change; returns a function that unsubscribes it. */
  onLeaderChange(cb: (leader: NodeId | null) => void): () => void {
    this.leaderListeners.push(cb);
    return () => {
      const at = this.leaderListeners.indexOf(cb);
      if (at >= 0) this.leaderListeners.splice(at, 1);
    };
  }

  /**
   * Calls `cb` after every membership change applied here: with the change for a
   * committed ConfChange entry, with null after a snapshot replaced the configuration.
   * Called before the next messages go out, so a new member's address can be learned in time.
   */
  onConfChange(cb: (change: ConfChange | null, conf: ConfState) => void): () => void {
    this.confListeners.push(cb);
    return () => {
      const at = this.confListeners.indexOf(cb);
      if (at >= 0) this.confListeners.splice(at, 1);
    };
  }

  private notifyConf(change: ConfChange | null, conf: ConfState): void {
    for (const cb of [...this.confListeners]) {
      try {
        cb(change, conf);
      } catch (e) {
        this.opts.logger.error({ err: e }, 'membership listener failed');
      }
    }
  }

  setTransport(t: RaftTransport): void {
    this.transport = t;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.tickTimer) this.clock.clearInterval(this.tickTimer);
    if (this.retryTimer) this.clock.clearTimeout(this.retryTimer);
    this.failWaiters();
    while (this.running) await new Promise<void>((r) => this.clock.defer(r));
    if (this.lazyHardState && !this.failure) await this.store.setHardState(this.lazyHardState).catch(() => undefined);
  }

  /**
   * Answer every proposal waiting here with 'timeout' now, not at its deadline: the caller
   * knows the cluster cannot commit them soon (too few voters can write). They may still
   * commit later, exactly as after a timeout (clients retry under the dedup table).
   */
  abandonProposals(): number {
    const n = this.proposals.size;
    for (const [index, p] of this.proposals) {
      this.clock.clearTimeout(p.timer);
      p.resolve({ ok: false, reason: 'timeout', leader: this.leader });
      this.proposals.delete(index);
    }
    return n;
  }

  /** Everything that waits on this node gets 'stopped' (a caller retries elsewhere or later). */
  private failWaiters(): void {
    for (const [index, p] of this.proposals) {
      this.clock.clearTimeout(p.timer);
      p.resolve({ ok: false, reason: 'stopped', leader: this.leader });
      this.proposals.delete(index);
    }
    for (const [id, r] of this.reads) {
      this.clock.clearTimeout(r.timer);
      r.resolve({ ok: false, reason: 'stopped', leader: this.leader });
      this.reads.delete(id);
    }
  }

  // ---- the Ready loop ------------------------------------------------------------------

  /**
   * Start the Ready loop unless it runs. On a microtask, not a turn of the event loop:
   * everything the current synchronous run feeds the core (a transport batch's messages,
   * the proposals a settled batch of promises makes) still lands in one Ready, without
   * waiting for the rest of the turn (a hop measured at 30–40 µs on each side of a
   * commit). While the loop waits on an fsync, inputs pile up and form the next Ready.
   */
  private kick(): void {
    if (this.running || this.stopped || this.failure) return;
    this.running = true;
    queueMicrotask(() => this.runLoop());
  }

  private runLoop(): void {
    this.loop().then(
      (exhausted) => {
        this.running = false;
        // Inputs that arrived during the last advance are handled in a new round; after
        // MAX_ROUNDS Readies in a row, on the next turn, so I/O callbacks get to run.
        if (!this.core.hasReady() || this.stopped || this.failure) return;
        if (exhausted) {
          this.running = true;
          this.clock.defer(() => this.runLoop());
        } else {
          this.kick();
        }
      },
      (err: unknown) => {
        this.running = false;
        this.fail(err);
      },
    );
  }

  private fail(err: unknown): void {
    // A failed fsync or apply leaves the node's durable state unknown: stop taking part
    // (never retry a write on the same file state) and fail what waits. With a recovery,
    // come back later from what the disk holds; without one, the operator restarts it.
    const reason = oneLine(err);
    this.failure = err;
    if (!this.opts.recovery) {
      this.opts.logger.error({ err: reason }, 'raft node failed; it stops until restarted');
      void this.stop();
      return;
    }
    this.stats.storageFaults++;
    this.fault = { reason, sinceMs: this.clock.nowMs(), attempts: 0 };
    this.opts.logger.error({ err: reason }, 'raft storage failed: not taking part until it can write again');
    const term = this.core.currentTerm();
    this.faultedUnder = this.leader !== null && this.leader !== this.opts.id ? { leader: this.leader, term } : null;
    this.answeredWhileFaulted = false;
    this.handOver();
    this.lazyHardState = null;
    this.failWaiters();
    this.setLeader(null);
    this.notifyFault();
    this.scheduleRecovery();
  }

  /**
   * A leader that cannot write tells its most caught-up voter to campaign now
   * (MsgTimeoutNow), so the cluster does not wait an election timeout for it. Safe
   * whatever that voter's log: the vote rules still decide; at worst the election fails
   * and another one follows.
   */
  private handOver(): void {
    if (this.leader !== this.opts.id) return;
    const st = this.core.status();
    let best: NodeId | null = null;
    let bestMatch = -1;
    for (const id of st.conf.voters) {
      const pr = st.progress[id];
      if (id === this.opts.id || !pr || !pr.recentActive || pr.match <= bestMatch) continue;
      best = id;
      bestMatch = pr.match;
    }
    if (best === null) return;
    this.opts.logger.warn({ to: best, match: bestMatch }, 'raft storage failed on the leader: handing leadership over');
    this.transport.send([
      { type: 'MsgTimeoutNow', from: this.opts.id, to: best, term: st.term, index: 0, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot: null, context: null },
    ]);
    this.transport.flush?.();
  }

  private scheduleRecovery(): void {
    const r = this.opts.recovery!;
    const f = this.fault!;
    const delayMs = Math.min(r.maxBackoffMs, r.initialBackoffMs * 2 ** Math.min(f.attempts, 30));
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      void this.recover();
    }, delayMs);
  }

  /**
   * Reopen the log and the state machine from disk and start a new core over them, as a
   * restart would; on success the node takes part again (catching up from the leader).
   */
  private async recover(): Promise<void> {
    if (this.stopped) return;
    while (this.running) await new Promise<void>((r) => this.clock.defer(r));
    const fault = this.fault!;
    try {
      this.store = await this.opts.recovery!.reopenLog(this.store);
      await this.rewriteUnproven();
      if (this.sm.recover) await this.sm.recover();
      const { applied, snapIndex } = await recoveredState(this.store, this.sm);
      if (this.stopped) return;
      this.applied = applied;
      this.lastSnapshotIndex = snapIndex;
      this.replayedTo = snapIndex;
      this.core = this.newCore(snapIndex);
      await this.attachSnapshotImage();
    } catch (e) {
      if (this.stopped) return;
      fault.attempts++;
      fault.reason = oneLine(e);
      this.opts.logger.warn({ err: fault.reason, attempts: fault.attempts }, 'raft storage still failing; retrying');
      this.notifyFault();
      this.scheduleRecovery();
      return;
    }
    if (this.stopped) return;
    this.persistedTerm = -1;
    this.persistedVote = null;
    this.leaseUntilMs = 0;
    this.leaseTerm = 0;
    this.leaseRound = null;
    this.failure = null;
    this.fault = null;
    this.faultedUnder = null;
    if (this.answeredWhileFaulted) this.votesQuietUntilMs = this.clock.nowMs() + this.opts.electionTicks * this.opts.tickMs;
    this.stats.recoveries++;
    this.opts.logger.info({ applied: this.applied, lastIndex: this.store.lastIndex(), downMs: Math.round(this.clock.nowMs() - fault.sinceMs) }, 'raft storage recovered: rejoining');
    this.notifyFault();
    this.kick();
  }

  /**
   * A reopened log reads what the failed writes left in the page cache: entries from the
   * first one of the failed write on may not be on disk (a failed fdatasync can drop
   * dirty pages, and a later fsync on a new descriptor does not report it). They were never
   * acknowledged; they are written again, fresh, and synced, before the node uses them —
   * or the recovery fails and is tried later. (Term and vote: the reopen starts a new
   * segment with a fresh, synced copy of them.)
   */
  private async rewriteUnproven(): Promise<void> {
    const last = this.store.lastIndex();
    const from = Math.max(this.unprovenFrom, this.store.firstIndex());
    if (last >= from) await this.store.append(this.store.entries(from, last + 1, Number.MAX_SAFE_INTEGER));
    this.unprovenFrom = Number.POSITIVE_INFINITY;
  }

  private notifyFault(): void {
    const f = this.storageFault;
    for (const cb of [...this.faultListeners]) {
      try {
        cb(f);
      } catch (e) {
        this.opts.logger.error({ err: e }, 'storage fault listener failed');
      }
    }
  }

  private setLeader(leader: NodeId | null): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.leaseUntilMs = 0;
    this.leaseRound = null;
    if (this.leader === this.opts.id) this.renewLease();
    for (const cb of this.leaderListeners) cb(this.leader);
  }

  /** Handles Readies while there are any, at most MAX_ROUNDS; true if it stopped at the bound. */
  private async loop(): Promise<boolean> {
    for (let rounds = 0; !this.stopped && this.core.hasReady(); rounds++) {
      if (rounds >= MAX_ROUNDS) return true;
      const rd = this.core.ready();
      await this.handle(rd);
      this.core.advance(rd);
    }
    return false;
  }

  private async handle(rd: Ready): Promise<void> {
    this.stats.readies++;
    if (rd.softState) this.setLeader(rd.softState.leader);
    // 1. Persist: snapshot, then entries, then hard state — one group commit.
    if (rd.snapshot) await this.installSnapshot(rd.snapshot);
    const writes: Array<Promise<void>> = [];
    this.persistedTermBefore = this.persistedTerm;
    this.persistedVoteBefore = this.persistedVote;
    if (rd.entries.length > 0) {
      this.unprovenFrom = Math.min(this.unprovenFrom, rd.entries[0].index);
      writes.push(this.store.append(rd.entries));
      this.stats.entriesPersisted += rd.entries.length;
    }
    if (rd.hardState) {
      const hs = rd.hardState;
      // Term and vote must be durable before anything leaves. A commit index alone need
      // not be (a restarted node learns it again from the log and its peers): it is
      // written with the next batch that has to be fsynced anyway, which saves one
      // fsync per write on a sequential workload.
      if (hs.term !== this.persistedTerm || hs.vote !== this.persistedVote || rd.entries.length > 0) {
        writes.push(this.store.setHardState(hs));
        this.persistedTerm = hs.term;
        this.persistedVote = hs.vote;
        this.lazyHardState = null;
      } else {
        this.lazyHardState = hs;
      }
    }
    // 2. Send. A leader's own replication traffic (appends, heartbeats, snapshots) goes
    // out before its fsync, so followers write in parallel with the leader instead of
    // after it (Raft thesis §10.2.1). Safe: the leader counts its own entries toward a
    // commit, but nothing that reveals that commit — applying, answering a client, a
    // message carrying the new commit index — happens before this Ready's writes are
    // durable, because the next Ready is taken only after them. Everything else (acks,
    // votes) waits for the writes: it promises what is on disk. Not when this Ready
    // changes term or vote: those must be durable before anything leaves.
    // With a single voter the leader's commit index covers its entries at once, and an
    // early append would carry it to learners before the entries are durable: not then.
    const termStable =
      this.core.status().conf.voters.length > 1 &&
      (!rd.hardState || (rd.hardState.term === this.persistedTermBefore && rd.hardState.vote === this.persistedVoteBefore));
    const early: Message[] = [];
    const late: Message[] = [];
    for (const m of rd.messages) (termStable && EARLY_TYPES.has(m.type) ? early : late).push(m);
    if (early.length > 0) {
      this.transport.send(early);
      this.stats.messagesSent += early.length;
      // Appends that carry entries (and heartbeats: read rounds wait on them) leave now.
      // Appends that only carry a commit index wait for the end of the turn, and at one
      // proposer share a write with the next proposal's append.
      if (early.some((m) => m.type !== 'MsgApp' || m.entries.length > 0)) this.transport.flush?.();
    }
    if (writes.length > 0) await Promise.all(writes);
    this.unprovenFrom = Number.POSITIVE_INFINITY;
    if (late.length > 0) {
      this.transport.send(late);
      this.stats.messagesSent += late.length;
      // Acks, votes and read answers are waited for: out as soon as they may leave.
      this.transport.flush?.();
    }
    // 3. Apply.
    if (rd.committedEntries.length > 0) await this.applyEntries(rd.committedEntries);
    // 4. Reads.
    for (const rs of rd.readStates) {
      const ctx = rs.context.toString();
      if (this.leaseRound && ctx === this.leaseRound.context) {
        this.leaseUntilMs = this.leaseRound.issuedAtMs + this.leaseDurationMs();
        this.leaseTerm = this.leaseRound.term;
        this.leaseIndex = rs.index;
        this.leaseRound = null;
        continue;
      }
      const pending = this.reads.get(ctx);
      if (pending) pending.index = rs.index;
    }
    this.serveReads();
    await this.maybeSnapshot();
  }

  private async installSnapshot(snap: Snapshot): Promise<void> {
    // The log first: it keeps the image durably, so a crash before the state machine has
    // it is repaired at the next start (never a state machine ahead of its log).
    await this.store.applySnapshot(snap);
    await this.sm.restore(snap.data);
    this.applied = snap.meta.index;
    this.lastSnapshotIndex = snap.meta.index;
    this.stats.snapshotsInstalled++;
    this.opts.logger.info({ index: snap.meta.index, term: snap.meta.term, bytes: snap.data.length }, 'installed snapshot from leader');
    this.notifyConf(null, snap.meta.conf);
  }

  private async applyEntries(entries: Entry[]): Promise<void> {
    let batch: Entry[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const results = await this.sm.apply(batch);
      batch.forEach((e, i) => this.settle(e, { ok: true, result: results[i], index: e.index }));
      batch = [];
    };
    for (const e of entries) {
      this.replayedTo = e.index;
      if (e.index <= this.applied) {
        // Replayed after a restart: the state machine has it; the core's configuration must follow.
        if (e.type === EntryType.ConfChange && e.index > this.core.confIndex) {
          const cc = decodeConfChange(e.data);
          this.notifyConf(cc, this.core.applyConfChange(cc, e.index));
        }
        continue;
      }
      if (e.type === EntryType.ConfChange) {
        await flush();
        const cc = decodeConfChange(e.data);
        // A snapshot the core took meanwhile (stepped while this Ready was applied) already
        // holds this change and later ones: the core's configuration stays the snapshot's.
        // (Found by the simulator: an old addVoter re-added a removed node.)
        const superseded = e.index <= this.core.confIndex;
        const conf = superseded ? this.core.status().conf : this.core.applyConfChange(cc, e.index);
        if (!superseded) {
          await this.store.setConfState(conf);
          this.notifyConf(cc, conf);
        }
        // The state machine sees the change too (it keeps members' addresses, and its
        // applied index stays contiguous).
        await this.sm.apply([e]);
        this.settle(e, { ok: true, result: conf, index: e.index });
        this.opts.logger.info({ index: e.index, change: cc, conf }, 'membership changed');
      } else {
        batch.push(e);
      }
      this.applied = e.index;
    }
    await flush();
    this.stats.entriesApplied += entries.length;
  }

  private settle(e: Entry, outcome: ProposalOutcome): void {
    const p = this.proposals.get(e.index);
    if (!p) return;
    this.proposals.delete(e.index);
    this.clock.clearTimeout(p.timer);
    // Another leader's entry took this index: ours was overwritten and never applied.
    if (p.term !== e.term) p.resolve({ ok: false, reason: 'overwritten', leader: this.leader });
    else p.resolve(outcome);
  }

  private serveReads(): void {
    for (const [id, r] of this.reads) {
      if (r.index !== null && r.index <= this.applied) {
        this.reads.delete(id);
        this.clock.clearTimeout(r.timer);
        r.resolve({ ok: true });
      }
    }
  }

  private async maybeSnapshot(): Promise<void> {
    if (this.applied - this.lastSnapshotIndex < this.opts.snapshotEveryEntries) return;
    await this.takeSnapshot();
  }

  /**
   * Snapshot at the applied index. Its configuration is the core's, plus the ConfChanges
   * the core has not replayed yet (after a restart the state machine may be ahead of the
   * core's replay). The log is compacted up to the snapshot, but never past the replay:
   * the core still hands those entries out.
   */
  private async takeSnapshot(): Promise<void> {
    const index = this.applied;
    if (index <= this.store.snapshotMeta().index) return;
    await this.sm.sync();
    const image = await this.sm.snapshot();
    let conf = this.core.status().conf;
    if (this.replayedTo < index) {
      for (const e of this.store.entries(this.replayedTo + 1, index + 1, Number.MAX_SAFE_INTEGER)) {
        if (e.type === EntryType.ConfChange) conf = nextConf(conf, decodeConfChange(e.data));
      }
    }
    await this.store.createSnapshot(index, conf, image);
    const upTo = Math.min(index, this.replayedTo);
    if (upTo >= this.store.firstIndex()) await this.store.compact(upTo);
    this.lastSnapshotIndex = index;
    this.stats.snapshotsTaken++;
    this.opts.logger.info({ index, bytes: image.length }, 'snapshot taken, log compacted');
  }
}

/**
 * Where a (re)started node begins: the state machine's applied index, and the log's
 * snapshot. A state machine behind the log's snapshot means a crash came between
 * installing a snapshot from the leader in the log (which keeps its image) and restoring
 * the state machine from it: restore now. Without an image (a fresh bootstrap) it is the state.
 */
async function recoveredState(store: RaftLogStorage, sm: StateMachine): Promise<{ applied: number; snapIndex: number }> {
  let applied = await sm.appliedIndex();
  const snapIndex = store.snapshotMeta().index;
  if (applied < snapIndex) {
    const installed = store.snapshot();
    if (installed !== null) await sm.restore(installed.data);
    applied = snapIndex;
  }
  return { applied, snapIndex };
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}

/** The log as the core sees it at start: the configuration is the snapshot's (see start()). */
function coreView(store: RaftLogStorage): LogReader {
  return {
    firstIndex: () => store.firstIndex(),
    lastIndex: () => store.lastIndex(),
    term: (index) => store.term(index),
    entries: (lo, hi, maxBytes) => store.entries(lo, hi, maxBytes),
    snapshot: () => store.snapshot(),
    initialState: () => ({ hardState: store.initialState().hardState, conf: store.snapshotMeta().conf }),
  };
}

export { encodeConfChange };
