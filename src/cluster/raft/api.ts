// The surface of the pure Raft core (core.ts implements it as `RawNode`). Drivers (the
// daemon's raft node, the deterministic simulator) use only this.
import type { ConfChange, ConfState, Message, NodeId, RaftConfig, Ready, Role } from './types.js';

export interface Progress {
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  /** MsgApp sent and not yet acknowledged. */
  inflight: number;
  /** Heard from it within the last election timeout (leader's view). */
  recentActive: boolean;
  isLearner: boolean;
}

export interface RaftStatus {
  id: NodeId;
  term: number;
  vote: NodeId | null;
  commit: number;
  applied: number;
  lastIndex: number;
  leader: NodeId | null;
  role: Role;
  conf: ConfState;
  /** Only on the leader: per peer (self included). */
  progress: Record<NodeId, Progress>;
  /** A leadership transfer in progress, if any. */
  leadTransferee: NodeId | null;
}

/** Why a proposal was not appended. */
export type ProposeRefusal = 'notLeader' | 'transferring' | 'confChangePending' | 'tooLarge';

export type ProposeResult = { ok: true; index: number; term: number } | { ok: false; reason: ProposeRefusal; leader: NodeId | null };

export interface RaftNode {
  /** Advance logical time by one tick (the driver calls it every tickMs). */
  tick(): void;
  /** Feed a message from a peer. Messages for other terms/nodes are handled per the protocol. */
  step(msg: Message): void;
  /** Append an application command if this node is leader. */
  propose(data: Buffer): ProposeResult;
  /** Propose a membership change; at most one may be pending (appended, not applied). */
  proposeConfChange(cc: ConfChange): ProposeResult;
  /**
   * The driver applied a committed ConfChange entry: the core switches configuration
   * and returns the new ConfState (to be stored with the next snapshot).
   */
  applyConfChange(cc: ConfChange): ConfState;
  /** Ask for a linearizable read; a ReadState with this context appears in a later Ready. */
  readIndex(context: Buffer): void;
  /** Hand leadership to `to` (leader only; no-op elsewhere). */
  transferLeader(to: NodeId): void;
  /** Start an election now (tests, bootstrap of a single node). */
  campaign(): void;
  /** The transport could not deliver to `to`: fall back to probing. */
  reportUnreachable(to: NodeId): void;
  /** A snapshot sent to `to` finished (ok) or failed. */
  reportSnapshot(to: NodeId, ok: boolean): void;
  hasReady(): boolean;
  ready(): Ready;
  /** The driver did everything `ready` asked (persisted, sent, applied). */
  advance(ready: Ready): void;
  status(): RaftStatus;
}

export type { RaftConfig };
