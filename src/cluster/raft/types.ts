// The Raft contract: messages, log entries, persistent state and the Ready batch the
// pure core (core.ts) hands to its driver. Shaped after etcd-io/raft: the core never
// does I/O, never reads a clock and never draws randomness except from the injected
// source, so a seed reproduces a whole cluster run.

export type NodeId = string;

export const enum EntryType {
  /** An application command (opaque bytes: a namespace command). */
  Normal = 0,
  /** A configuration change (ConfChange encoded as JSON bytes). */
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Buffer;
}

/** Durable state that must be fsynced before the messages of the same Ready are sent. */
export interface HardState {
  term: number;
  vote: NodeId | null;
  commit: number;
}

/** Cluster membership. Learners receive the log but do not vote. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMeta {
  index: number;
  term: number;
  conf: ConfState;
}

export interface Snapshot {
  meta: SnapshotMeta;
  /** The state machine image (opaque to the core). */
  data: Buffer;
}

export type ConfChangeType = 'addVoter' | 'addLearner' | 'removeNode';

export interface ConfChange {
  type: ConfChangeType;
  node: NodeId;
  /**
   * Where the node listens (host:port), replicated with the change so every member (and
   * every snapshot) knows how to reach it. Opaque to the core.
   */
  address?: string;
}

export type MessageType =
  | 'MsgPreVote'
  | 'MsgPreVoteResp'
  | 'MsgVote'
  | 'MsgVoteResp'
  | 'MsgApp'
  | 'MsgAppResp'
  | 'MsgHeartbeat'
  | 'MsgHeartbeatResp'
  | 'MsgSnap'
  | 'MsgTimeoutNow'
  | 'MsgReadIndex'
  | 'MsgReadIndexResp'
  | 'MsgTransferLeader';

export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  /** MsgApp: index/term of the entry before `entries`. Vote: last log index/term. */
  index: number;
  logTerm: number;
  entries: Entry[];
  /** MsgApp/MsgHeartbeat: leader commit. */
  commit: number;
  /** Responses: rejected? (MsgAppResp, MsgVoteResp, MsgPreVoteResp). */
  reject: boolean;
  /** MsgAppResp rejection: follower's hint for the next index to try. */
  rejectHint: number;
  /** MsgSnap only. */
  snapshot: Snapshot | null;
  /** MsgReadIndex / MsgHeartbeat / resps: the read request context echoed back. */
  context: Buffer | null;
}

/** A linearizable read that may be served once `applied >= index`. */
export interface ReadState {
  index: number;
  context: Buffer;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

export interface SoftState {
  leader: NodeId | null;
  role: Role;
}

/**
 * What the driver must do, in this order:
 *  1. install `snapshot` (if not null; it replaces the whole log), then append `entries`
 *     (truncating any conflicting suffix; they follow the snapshot) and persist
 *     `hardState` (if not null) — and fsync all of it;
 *  2. send `messages` (only after step 1: a vote or an ack must be durable first);
 *  3. apply `committedEntries` to the state machine, in order;
 *  4. serve `readStates` once applied >= their index;
 *  5. call advance(ready).
 */
export interface Ready {
  softState: SoftState | null;
  hardState: HardState | null;
  entries: Entry[];
  snapshot: Snapshot | null;
  committedEntries: Entry[];
  messages: Message[];
  readStates: ReadState[];
}

/** Read access to the durable log the core needs (the driver's storage implements it). */
export interface LogReader {
  firstIndex(): number;
  lastIndex(): number;
  /** Term of entry `index`; the snapshot's index/term is answerable too. Throws RangeError if compacted/unavailable. */
  term(index: number): number;
  /** Entries [lo, hi) capped at maxBytes (at least one entry is returned if any). */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  snapshot(): Snapshot | null;
  initialState(): { hardState: HardState; conf: ConfState };
}

export interface RaftConfig {
  id: NodeId;
  /** Ticks without a leader message before a follower campaigns: randomized in [electionTicks, 2*electionTicks). */
  electionTicks: number;
  heartbeatTicks: number;
  /** Bound on bytes per MsgApp. */
  maxMsgBytes: number;
  /** Bound on unacknowledged MsgApp per follower (pipelining window). */
  maxInflightMsgs: number;
  preVote: boolean;
  checkQuorum: boolean;
  /** Uniform integer in [0, n): injected so simulations are reproducible. */
  random: (n: number) => number;
  storage: LogReader;
  /** Index of the last entry already applied (on restart). */
  applied: number;
  /**
   * True while this node, leader in `term`, holds a read lease: no other leader can have
   * been elected since the lease round was confirmed (the driver times it). With it, a
   * follower's ReadIndex is answered at once with the commit index instead of after a
   * heartbeat round. Absent: every ReadIndex takes a round.
   */
  leaseValid?: (term: number) => boolean;
}
