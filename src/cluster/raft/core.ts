// The pure Raft core: a synchronous state machine driven by tick(), step() and the
// propose/read/transfer calls, which hands its driver everything to persist, send and
// apply through ready()/advance(). No timers, no I/O, no clock; randomness only from
// config.random, so a seed reproduces a run.
import type { ProposeResult, RaftNode, RaftStatus, Progress as ProgressView } from './api.js';
import { encodeConfChange, nextConf } from './conf-change.js';
import { RaftLog } from './log.js';
import { Progress } from './progress.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  MessageType,
  NodeId,
  RaftConfig,
  ReadState,
  Ready,
  Role,
  SoftState,
} from './types.js';
import { EntryType } from './types.js';
import { assert } from './util.js';

export { encodeConfChange, decodeConfChange, confChangeOf } from './conf-change.js';

/** Vote context marking an election caused by a leadership transfer (bypasses lease and pre-vote). */
const TRANSFER_CONTEXT = Buffer.from('transfer');

/** Bound on read requests waiting at the leader; more are dropped (the client retries). */
const MAX_PENDING_READS = 4096;

interface PendingRead {
  index: number;
  context: Buffer;
  /** Who asked: this node (→ ReadState) or a follower (→ MsgReadIndexResp). */
  from: NodeId;
  acks: Set<NodeId>;
}

export class RawNode implements RaftNode {
  private readonly id: NodeId;
  private readonly cfg: RaftConfig;
  private readonly log: RaftLog;

  private term: number;
  private vote: NodeId | null;
  private lead: NodeId | null = null;
  private role: Role = 'follower';
  private voters: NodeId[];
  /** Index of the entry (or snapshot) the configuration reflects. */
  private confIndexValue = 0;
  private learners: NodeId[];

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;

  /** Leader only. */
  private progress = new Map<NodeId, Progress>();
  private leadTransferee: NodeId | null = null;
  /** Index of the last ConfChange proposed; none may be proposed until it is applied. */
  private pendingConfIndex = 0;
  /** Read requests confirmed by a heartbeat round, oldest first (keyed by context). */
  private reads: PendingRead[] = [];
  /** Read requests waiting for the leader's first commit in its term. */
  private readsAwaitingCommit: Array<{ context: Buffer; from: NodeId }> = [];

  /**
   * Leader: appends to every follower are owed (new entries, a new commit index). They are
   * built when the next Ready is (flushAppends), so a follower gets one MsgApp per Ready
   * carrying every entry proposed since the last one and the latest commit, instead of one
   * per proposal and one per commit advance.
   */
  private appendsOwed = false;
  /** Leader: the commit index advanced (or a probe is due): owed appends go out even empty. */
  private emptyAppendsOwed = false;

  /** Candidates: votes received for the current campaign. */
  private votes = new Map<NodeId, boolean>();

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private prevSoft: SoftState;
  private prevHard: HardState;
  private outstanding: Ready | null = null;

  constructor(config: RaftConfig) {
    assert(config.electionTicks > config.heartbeatTicks && config.heartbeatTicks >= 1, 'need electionTicks > heartbeatTicks >= 1');
    assert(config.maxMsgBytes >= 1 && config.maxInflightMsgs >= 1, 'maxMsgBytes and maxInflightMsgs must be >= 1');
    this.cfg = config;
    this.id = config.id;
    const { hardState, conf } = config.storage.initialState();
    this.log = new RaftLog(config.storage, hardState.commit, config.applied);
    this.confIndexValue = config.applied;
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.voters = [...conf.voters];
    this.learners = [...conf.learners];
    this.prevHard = { term: this.term, vote: this.vote, commit: this.log.committed };
    this.prevSoft = { leader: null, role: 'follower' };
    this.becomeFollower(this.term, null);
  }

  // ---------------------------------------------------------------- driver API

  tick(): void {
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  campaign(): void {
    this.hup(false);
  }

  propose(data: Buffer): ProposeResult {
    return this.appendProposal(EntryType.Normal, data);
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    if (this.role === 'leader' && this.pendingConfIndex > this.log.applied) {
      return { ok: false, reason: 'confChangePending', leader: this.id };
    }
    const r = this.appendProposal(EntryType.ConfChange, encodeConfChange(cc));
    if (r.ok) this.pendingConfIndex = r.index;
    return r;
  }

  /**
   * The index the configuration reflects: a snapshot restored while the driver was still
   * applying older entries moves it past them, and their ConfChanges must then not be
   * applied (the snapshot's configuration already includes them, and later ones).
   */
  get confIndex(): number {
    return this.confIndexValue;
  }

  applyConfChange(cc: ConfChange, index?: number): ConfState {
    if (index !== undefined) {
      if (index <= this.confIndexValue) return this.confState();
      this.confIndexValue = index;
    }
    const next = nextConf(this.confState(), cc);
    this.voters = next.voters;
    this.learners = next.learners;
    if (this.role === 'leader') this.leaderConfChanged(cc.node);
    return this.confState();
  }

  readIndex(context: Buffer): void {
    if (this.role === 'leader') {
      this.leaderReadIndex(context, this.id);
    } else if (this.lead !== null) {
      this.send({ ...blank('MsgReadIndex', this.id, this.lead), context });
    }
    // No known leader: dropped; the caller times out and retries.
  }

  transferLeader(to: NodeId): void {
    if (this.role !== 'leader') return;
    this.leaderTransfer(to);
  }

  reportUnreachable(to: NodeId): void {
    const pr = this.role === 'leader' ? this.progress.get(to) : undefined;
    if (pr !== undefined && pr.state === 'replicate') pr.becomeProbe();
  }

  reportSnapshot(to: NodeId, ok: boolean): void {
    const pr = this.role === 'leader' ? this.progress.get(to) : undefined;
    if (pr === undefined || pr.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's MsgAppResp (or a heartbeat response) before the next MsgApp.
    pr.probeSent = true;
  }

  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    return (
      !softEqual(this.softState(), this.prevSoft) ||
      !hardEqual(this.hardState(), this.prevHard) ||
      this.log.unstableEntries.length > 0 ||
      this.log.unstableSnapshot !== null ||
      this.msgs.length > 0 ||
      (this.appendsOwed && this.role === 'leader') ||
      this.readStates.length > 0 ||
      this.log.hasNextCommitted()
    );
  }

  ready(): Ready {
    assert(this.outstanding === null, 'ready() called again before advance()');
    this.flushAppends();
    // No message reveals a commit index beyond what this node has made durable: the
    // driver may send a leader's appends and heartbeats before it persists this Ready's
    // entries (Raft thesis §10.2.1), and with a single voter (and learners) the commit
    // index can already cover them. With more voters it never does here: a quorum needs a
    // follower's ack of entries sent in an earlier Ready, whose entries are durable.
    const durable = this.log.persistedIndex();
    for (const m of this.msgs) {
      if ((m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgReadIndexResp') && m.commit > durable) m.commit = durable;
    }
    const soft = this.softState();
    const hard = this.hardState();
    const rd: Ready = {
      softState: softEqual(soft, this.prevSoft) ? null : soft,
      hardState: hardEqual(hard, this.prevHard) ? null : hard,
      entries: [...this.log.unstableEntries],
      snapshot: this.log.unstableSnapshot,
      committedEntries: this.log.nextCommitted(this.cfg.maxMsgBytes),
      messages: this.msgs,
      readStates: this.readStates,
    };
    this.msgs = [];
    this.readStates = [];
    this.outstanding = rd;
    return rd;
  }

  advance(rd: Ready): void {
    assert(this.outstanding !== null, 'advance() without a ready()');
    assert(rd === this.outstanding, 'advance() with a Ready that is not the last one handed out');
    this.outstanding = null;
    if (rd.softState !== null) this.prevSoft = rd.softState;
    if (rd.hardState !== null) this.prevHard = rd.hardState;
    if (rd.snapshot !== null) {
      this.log.stableSnapTo(rd.snapshot.meta.index);
      this.log.appliedTo(rd.snapshot.meta.index);
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      this.log.stableTo(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      this.log.appliedTo(rd.committedEntries[rd.committedEntries.length - 1].index);
    }
  }

  status(): RaftStatus {
    const progress: Record<NodeId, ProgressView> = {};
    if (this.role === 'leader') for (const [id, pr] of this.progress) progress[id] = pr.view();
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      leader: this.lead,
      role: this.role,
      conf: this.confState(),
      progress,
      leadTransferee: this.leadTransferee,
    };
  }

  // ---------------------------------------------------------------- step

  step(m: Message): void {
    if (m.to !== this.id) return;
    if (m.term === 0 && (m.type === 'MsgReadIndex' || m.type === 'MsgTransferLeader')) {
      // Forwarded requests (MsgReadIndex, MsgTransferLeader) carry no term: local to the leader.
    } else if (m.term > this.term) {
      if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
        const transfer = isTransfer(m.context);
        const inLease = this.cfg.checkQuorum && this.lead !== null && this.electionElapsed < this.cfg.electionTicks;
        // Leader stickiness: while we hear from a leader, a disruptive candidate is ignored.
        if (inLease && !transfer) return;
      }
      if (m.type === 'MsgPreVote') {
        // A pre-vote never changes our term.
      } else if (m.type === 'MsgPreVoteResp' && !m.reject) {
        // Granted pre-votes carry the future term; we move there only by winning.
      } else if (m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === 'MsgHeartbeat' || m.type === 'MsgApp')) {
        // A stale leader (e.g. back from a partition): tell it our term so it steps down.
        // Without this, with pre-vote on, the partitioned side could never win and the
        // stale leader's followers would keep ignoring the newer cluster.
        this.send(blank('MsgAppResp', this.id, m.from));
      } else if (m.type === 'MsgPreVote') {
        this.send({ ...blank('MsgPreVoteResp', this.id, m.from), reject: true });
      }
      return;
    }

    if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  private handleVoteRequest(m: Message): void {
    const pre = m.type === 'MsgPreVote';
    const respType: MessageType = pre ? 'MsgPreVoteResp' : 'MsgVoteResp';
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.lead === null) ||
      // A pre-vote for a future term: our vote in this term does not matter.
      (pre && m.term > this.term);
    // Pre-vote: refuse while we still hear from a leader (unless the leader handed over).
    const heardFromLeader =
      pre && !isTransfer(m.context) && this.lead !== null && this.lead !== m.from && this.electionElapsed < this.cfg.electionTicks;
    if (canVote && !heardFromLeader && this.log.isUpToDate(m.index, m.logTerm)) {
      // A granted response carries the campaign's term so the candidate counts it.
      this.send({ ...blank(respType, this.id, m.from), term: m.term });
      if (!pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ ...blank(respType, this.id, m.from), reject: true });
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'MsgApp':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        break;
      case 'MsgHeartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
        this.send({ ...blank('MsgHeartbeatResp', this.id, m.from), context: m.context });
        break;
      case 'MsgSnap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        break;
      case 'MsgTimeoutNow':
        // The leader hands over: campaign now, past pre-vote and lease.
        this.hup(true);
        break;
      case 'MsgReadIndexResp':
        // The answer carries a commit index as a heartbeat does (never past what the
        // leader knows we hold), so the read need not wait for the next heartbeat.
        this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
        if (m.context !== null) this.readStates.push({ index: m.index, context: m.context });
        break;
      case 'MsgTransferLeader':
        if (this.lead !== null) this.send({ ...m, to: this.lead, term: 0 });
        break;
      default:
        break;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'MsgApp':
      case 'MsgHeartbeat':
      case 'MsgSnap':
        // A leader exists in our term: give up the campaign and follow it.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        break;
      case 'MsgPreVoteResp':
      case 'MsgVoteResp': {
        const mine = this.role === 'preCandidate' ? 'MsgPreVoteResp' : 'MsgVoteResp';
        if (m.type !== mine) break;
        this.votes.set(m.from, !m.reject);
        const result = this.tally();
        if (result === 'won') {
          if (this.role === 'preCandidate') this.campaignElection(false);
          else this.becomeLeaderAndBroadcast();
        } else if (result === 'lost') {
          this.becomeFollower(this.term, null);
        }
        break;
      }
      default:
        break;
    }
  }

  private stepLeader(m: Message): void {
    if (m.type === 'MsgReadIndex') {
      if (m.context !== null) this.leaderReadIndex(m.context, m.from);
      return;
    }
    if (m.type === 'MsgTransferLeader') {
      this.leaderTransfer(m.from);
      return;
    }
    const pr = this.progress.get(m.from);
    if (pr === undefined) return; // not (or no longer) a member
    switch (m.type) {
      case 'MsgAppResp':
        pr.recentActive = true;
        this.handleAppendResponse(m, pr);
        break;
      case 'MsgHeartbeatResp':
        pr.recentActive = true;
        pr.probeSent = false;
        if (pr.state === 'replicate' && pr.inflightFull()) pr.freeFirstInflight();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
        if (m.context !== null) this.readAck(m.from, m.context);
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------- follower side

  private handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      this.send({ ...blank('MsgAppResp', this.id, m.from), index: this.log.committed });
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send({ ...blank('MsgAppResp', this.id, m.from), index: lastNew });
      return;
    }
    // Mismatch: hint the largest index whose term is <= the leader's logTerm, so the
    // leader skips a whole diverging term per round trip instead of one entry.
    const hintIndex = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send({
      ...blank('MsgAppResp', this.id, m.from),
      index: m.index,
      reject: true,
      rejectHint: hintIndex,
      logTerm: this.log.term(hintIndex) ?? 0,
    });
  }

  private handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (snap === null) return;
    const { index, term } = snap.meta;
    if (index <= this.log.committed) {
      this.send({ ...blank('MsgAppResp', this.id, m.from), index: this.log.committed });
      return;
    }
    if (this.log.matchTerm(index, term)) {
      // We already hold the snapshot's last entry: just fast-forward the commit.
      this.log.commitTo(index);
      this.send({ ...blank('MsgAppResp', this.id, m.from), index: this.log.committed });
      return;
    }
    this.log.restore(snap);
    this.confIndexValue = snap.meta.index;
    this.voters = [...snap.meta.conf.voters];
    this.learners = [...snap.meta.conf.learners];
    this.send({ ...blank('MsgAppResp', this.id, m.from), index: this.log.lastIndex() });
  }

  // ---------------------------------------------------------------- leader side

  private appendProposal(type: EntryType, data: Buffer): ProposeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leader: this.lead };
    if (this.leadTransferee !== null) return { ok: false, reason: 'transferring', leader: this.id };
    if (data.length > this.cfg.maxMsgBytes) return { ok: false, reason: 'tooLarge', leader: this.id };
    const index = this.log.lastIndex() + 1;
    this.appendEntry({ term: this.term, index, type, data });
    this.appendsOwed = true;
    return { ok: true, index, term: this.term };
  }

  private appendEntry(e: Entry): void {
    this.log.append([e]);
    this.progress.get(this.id)?.maybeUpdate(e.index);
    // A single voter commits on its own.
    this.maybeCommit();
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    if (m.reject) {
      let hint = m.rejectHint;
      if (m.logTerm > 0) hint = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    // A probe answered at our current match also proves the logs agree.
    const probeAgreed = pr.state === 'probe' && pr.match === m.index;
    if (!pr.maybeUpdate(m.index) && !probeAgreed) return;
    if (pr.state === 'probe') {
      pr.becomeReplicate();
    } else if (pr.state === 'snapshot' && pr.match + 1 >= this.log.firstIndex()) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') {
      pr.freeInflightsTo(m.index);
    }
    if (this.maybeCommit()) {
      // Followers that lack entries get them with the new commit index in the next Ready
      // (acks arriving together make one round of appends). The others learn it from the
      // next append, the next heartbeat (every heartbeat interval) or the answer to their
      // next ReadIndex: an empty append to each just for it would double the messages of
      // every commit, and nothing waits for a follower to apply but its own reads.
      this.appendsOwed = true;
    } else {
      if (wasPaused) this.sendAppend(m.from, true);
      // Fill the pipeline with whatever else the follower lacks.
      while (this.sendAppend(m.from, false)) {
        /* keep sending */
      }
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.send(blank('MsgTimeoutNow', this.id, m.from));
    }
  }

  /**
   * Send `to` the entries it lacks (or a snapshot). With sendIfEmpty false, only a MsgApp
   * that carries entries is sent. Returns whether a message went out.
   */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || to === this.id || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const last = this.log.lastIndex();
    const ents = prevTerm === undefined ? undefined : this.log.entries(pr.next, last + 1, this.cfg.maxMsgBytes);
    if (prevTerm === undefined || ents === undefined) return this.sendSnapshot(to, pr);
    if (ents.length === 0 && !sendIfEmpty) return false;
    this.send({
      ...blank('MsgApp', this.id, to),
      index: prevIndex,
      logTerm: prevTerm,
      entries: ents,
      commit: this.log.committed,
    });
    pr.sentEntries(ents.length, prevIndex + ents.length);
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false; // don't ship a snapshot to a node that may be down
    const snap = this.log.snapshot();
    // A restarted driver attaches its snapshot's image once it has one: try again later.
    if (snap === null) return false;
    this.send({ ...blank('MsgSnap', this.id, to), snapshot: snap });
    pr.becomeSnapshot(snap.meta.index);
    return true;
  }

  /** Owe every follower an append, even an empty one (a commit index, a probe). */
  private bcastAppend(): void {
    this.appendsOwed = true;
    this.emptyAppendsOwed = true;
  }

  /** Send the appends owed since the last Ready: per follower, what it lacks (pipelined). */
  private flushAppends(): void {
    if (!this.appendsOwed) return;
    const sendIfEmpty = this.emptyAppendsOwed;
    this.appendsOwed = false;
    this.emptyAppendsOwed = false;
    if (this.role !== 'leader') return;
    for (const id of this.progress.keys()) {
      if (id === this.id) continue;
      this.sendAppend(id, sendIfEmpty);
      while (this.sendAppend(id, false)) {
        /* keep sending */
      }
    }
  }

  private bcastHeartbeat(): void {
    const ctx = this.reads.length > 0 ? this.reads[this.reads.length - 1].context : null;
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      // Never tell a follower to commit past what it is known to hold.
      this.send({
        ...blank('MsgHeartbeat', this.id, id),
        commit: Math.min(pr.match, this.log.committed),
        context: ctx,
      });
    }
  }

  /** Commit the highest index a quorum of voters holds, if it is from our term. */
  private maybeCommit(): boolean {
    const matches = this.voters.map((v) => this.progress.get(v)?.match ?? 0).sort((a, b) => b - a);
    if (matches.length === 0) return false;
    const idx = matches[quorum(matches.length) - 1];
    if (idx <= this.log.committed || this.log.term(idx) !== this.term) return false;
    this.log.commitTo(idx);
    this.releaseReadsAwaitingCommit();
    return true;
  }

  private leaderConfChanged(node: NodeId): void {
    if (!this.voters.includes(this.id)) {
      // Removed (or demoted): stop leading; the others elect a leader among themselves.
      this.becomeFollower(this.term, null);
      return;
    }
    const member = this.voters.includes(node) || this.learners.includes(node);
    if (!member) {
      this.progress.delete(node);
      if (this.leadTransferee === node) this.leadTransferee = null;
    } else {
      const pr = this.progress.get(node);
      if (pr === undefined) {
        const fresh = new Progress(this.log.lastIndex() + 1, this.learners.includes(node), this.cfg.maxInflightMsgs);
        fresh.recentActive = true;
        this.progress.set(node, fresh);
      } else {
        pr.isLearner = this.learners.includes(node);
      }
    }
    // The quorum changed: something may now be committed.
    if (this.maybeCommit()) this.bcastAppend();
    else if (member) this.sendAppend(node, true);
  }

  private leaderReadIndex(context: Buffer, from: NodeId): void {
    if (this.voters.length === 1 && this.voters[0] === this.id) {
      this.respondRead({ index: this.log.committed, context, from, acks: new Set() });
      return;
    }
    if (this.log.term(this.log.committed) !== this.term) {
      // Our commit index may lag the true one until an entry of our term commits.
      if (this.readsAwaitingCommit.length < MAX_PENDING_READS) this.readsAwaitingCommit.push({ context, from });
      return;
    }
    if (from !== this.id && this.leadTransferee === null && this.cfg.leaseValid?.(this.term)) {
      // Lease-based ReadIndex (a follower asked): while the lease holds no other leader
      // exists, so our commit index covers every write acknowledged anywhere. Our own
      // reads still take a round: the lease itself is renewed by them.
      this.respondRead({ index: this.log.committed, context, from, acks: new Set() });
      return;
    }
    this.startRead(context, from);
  }

  /** The current term (cheap; status() builds a whole view). */
  currentTerm(): number {
    return this.term;
  }

  /** True while this leader hands leadership over (MsgTimeoutNow lets the target bypass leases). */
  transferring(): boolean {
    return this.leadTransferee !== null;
  }

  private startRead(context: Buffer, from: NodeId): void {
    if (this.reads.length >= MAX_PENDING_READS) return;
    if (this.reads.some((r) => r.context.equals(context))) return; // already asked
    this.reads.push({ index: this.log.committed, context, from, acks: new Set([this.id]) });
    this.bcastHeartbeat();
  }

  private releaseReadsAwaitingCommit(): void {
    if (this.readsAwaitingCommit.length === 0 || this.log.term(this.log.committed) !== this.term) return;
    const waiting = this.readsAwaitingCommit;
    this.readsAwaitingCommit = [];
    for (const r of waiting) this.startRead(r.context, r.from);
  }

  /** A heartbeat response echoed a read context: once a quorum echoed it, serve it and every earlier read. */
  private readAck(from: NodeId, context: Buffer): void {
    const at = this.reads.findIndex((r) => r.context.equals(context));
    if (at < 0) return;
    const r = this.reads[at];
    r.acks.add(from);
    const acked = this.voters.filter((v) => r.acks.has(v)).length;
    if (acked < quorum(this.voters.length)) return;
    const done = this.reads.slice(0, at + 1);
    this.reads = this.reads.slice(at + 1);
    for (const d of done) this.respondRead(d);
  }

  private respondRead(r: PendingRead): void {
    if (r.from === this.id) {
      this.readStates.push({ index: r.index, context: r.context });
    } else {
      const match = this.progress.get(r.from)?.match ?? 0;
      this.send({ ...blank('MsgReadIndexResp', this.id, r.from), index: r.index, context: r.context, commit: Math.min(match, this.log.committed) });
    }
  }

  private leaderTransfer(to: NodeId): void {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isLearner || to === this.id) return;
    if (this.leadTransferee === to) return; // already under way
    this.leadTransferee = to;
    // The transfer must finish within an election timeout (checked in tickHeartbeat).
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.send(blank('MsgTimeoutNow', this.id, to));
    else this.sendAppend(to, true);
  }

  // ---------------------------------------------------------------- time and roles

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    for (const pr of this.progress.values()) {
      // A snapshot neither acknowledged nor reported (lost without reportSnapshot) for two
      // election timeouts: retry rather than wait forever.
      if (pr.state === 'snapshot' && ++pr.snapshotTicks >= 2 * this.cfg.electionTicks) {
        pr.pendingSnapshot = 0;
        pr.becomeProbe();
      }
    }
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        const active = this.voters.filter((v) => v === this.id || this.progress.get(v)?.recentActive === true).length;
        for (const [id, pr] of this.progress) pr.recentActive = id === this.id;
        if (active < quorum(this.voters.length)) {
          this.becomeFollower(this.term, null);
          return;
        }
      }
      // The transfer did not finish in an election timeout: give up, accept proposals again.
      this.leadTransferee = null;
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  private promotable(): boolean {
    return this.voters.includes(this.id);
  }

  private hup(transfer: boolean): void {
    if (this.role === 'leader' || !this.promotable()) return;
    if (this.hasUnappliedConfChange()) return; // the configuration we'd campaign in may be stale
    if (this.cfg.preVote && !transfer) this.campaignPreVote();
    else this.campaignElection(transfer);
  }

  private hasUnappliedConfChange(): boolean {
    if (this.log.committed <= this.log.applied) return false;
    const lo = Math.max(this.log.applied + 1, this.log.firstIndex());
    const ents = this.log.entries(lo, this.log.committed + 1, Number.MAX_SAFE_INTEGER) ?? [];
    return ents.some((e) => e.type === EntryType.ConfChange);
  }

  private campaignPreVote(): void {
    this.role = 'preCandidate';
    this.lead = null;
    this.votes.clear();
    this.electionElapsed = 0;
    this.resetRandomizedTimeout();
    this.requestVotes('MsgPreVote', this.term + 1, null);
  }

  private campaignElection(transfer: boolean): void {
    this.reset(this.term + 1);
    this.role = 'candidate';
    this.vote = this.id;
    this.requestVotes('MsgVote', this.term, transfer ? TRANSFER_CONTEXT : null);
  }

  private requestVotes(type: 'MsgVote' | 'MsgPreVote', term: number, context: Buffer | null): void {
    this.votes.set(this.id, true);
    if (this.tally() === 'won') {
      if (type === 'MsgPreVote') this.campaignElection(false);
      else this.becomeLeaderAndBroadcast();
      return;
    }
    const index = this.log.lastIndex();
    const logTerm = this.log.lastTerm();
    for (const v of this.voters) {
      if (v === this.id) continue;
      this.send({ ...blank(type, this.id, v), term, index, logTerm, context });
    }
  }

  private tally(): 'won' | 'lost' | 'pending' {
    let granted = 0;
    let rejected = 0;
    for (const v of this.voters) {
      const g = this.votes.get(v);
      if (g === true) granted++;
      else if (g === false) rejected++;
    }
    const q = quorum(this.voters.length);
    if (granted >= q) return 'won';
    if (rejected > this.voters.length - q) return 'lost';
    return 'pending';
  }

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedTimeout();
    this.leadTransferee = null;
    this.votes.clear();
    this.progress.clear();
    this.appendsOwed = false;
    this.emptyAppendsOwed = false;
    this.reads = [];
    this.readsAwaitingCommit = [];
  }

  private resetRandomizedTimeout(): void {
    const n = this.cfg.electionTicks;
    const r = this.cfg.random(n);
    assert(Number.isInteger(r) && r >= 0 && r < n, `config.random(${n}) returned ${r}`);
    this.randomizedElectionTimeout = n + r;
  }

  private becomeFollower(term: number, lead: NodeId | null): void {
    this.reset(term);
    this.role = 'follower';
    this.lead = lead;
  }

  private becomeLeaderAndBroadcast(): void {
    assert(this.role === 'candidate', 'only a candidate becomes leader');
    this.reset(this.term);
    this.role = 'leader';
    this.lead = this.id;
    const last = this.log.lastIndex();
    for (const id of [...this.voters, ...this.learners]) {
      const pr = new Progress(last + 1, this.learners.includes(id), this.cfg.maxInflightMsgs);
      if (id === this.id) {
        pr.match = last;
        pr.becomeReplicate();
      }
      pr.recentActive = true; // give everyone an election timeout to answer before check-quorum counts
      this.progress.set(id, pr);
    }
    // A conf change may hide in the uncommitted tail: allow no new one until all is applied.
    this.pendingConfIndex = last;
    // An entry of our term: committing it commits everything before it (and enables reads).
    this.appendEntry({ term: this.term, index: last + 1, type: EntryType.Normal, data: Buffer.alloc(0) });
    this.bcastAppend();
  }

  // ---------------------------------------------------------------- helpers

  private send(m: Message): void {
    if (m.term === 0 && m.type !== 'MsgReadIndex' && m.type !== 'MsgTransferLeader') m.term = this.term;
    this.msgs.push(m);
  }

  private softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private confState(): ConfState {
    return { voters: [...this.voters], learners: [...this.learners] };
  }
}

function blank(type: MessageType, from: NodeId, to: NodeId): Message {
  return {
    type,
    from,
    to,
    term: 0,
    index: 0,
    logTerm: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: null,
    context: null,
  };
}

function quorum(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

function isTransfer(context: Buffer | null): boolean {
  return context !== null && context.equals(TRANSFER_CONTEXT);
}

function softEqual(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}

function hardEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
