// The namespace behind Raft: MetaStore is the state machine, every mutation is a log
// entry, and reads on the leader are linearizable (leader lease or ReadIndex). On a
// follower, calls answer NotLeader (LeaderRouter then goes to the leader).
import type { Logger } from 'pino';
import type { CommittedItem, MetaStore } from '../meta/store.js';
import { confChangeOf } from '../cluster/raft/conf-change.js';
import type { EnvelopeCodec } from '../meta/envelope-codec.js';
import type { Command, Envelope, Ino, Result } from '../meta/types.js';
import { Errno } from '../meta/types.js';
import { LeaseGate, shownByLookup, shownByReaddir, type SessionHub } from './session-hub.js';
import type { ProposalOutcome, RaftDriver, StateMachine } from '../cluster/raft/driver.js';
import type { Entry, NodeId } from '../cluster/raft/types.js';
import { EntryType } from '../cluster/raft/types.js';

/** Thrown (as a value) when this node cannot serve: the caller must go to `leader`. */
export class NotLeader {
  constructor(readonly leader: NodeId | null) {}
}

/** MetaStore as a Raft state machine. */
export function metaStateMachine(store: MetaStore, codec: EnvelopeCodec): StateMachine {
  return {
    apply: (entries: Entry[]) => store.applyCommitted(entries.map((e) => committedItem(e, codec))),
    appliedIndex: () => store.appliedIndex(),
    sync: () => store.syncApplied(),
    snapshot: () => store.snapshotImage(),
    restore: (image: Buffer) => store.restoreImage(image),
    recover: () => store.recover(),
  };
}

function committedItem(e: Entry, codec: EnvelopeCodec): CommittedItem {
  if (e.type === EntryType.ConfChange) {
    const cc = confChangeOf(e);
    if (cc?.type === 'removeNode') return { index: e.index, envelope: null, member: { nodeId: cc.node, address: null } };
    if (cc?.address !== undefined) return { index: e.index, envelope: null, member: { nodeId: cc.node, address: cc.address } };
    return { index: e.index, envelope: null };
  }
  return { index: e.index, envelope: e.data.length > 0 ? codec.decode(e.data) : null };
}

/**
 * Bound on one ReadIndex round; past it the read is sent to the leader instead (a follower
 * cut off from the leader answers nothing made up).
 */
const READ_BARRIER_TIMEOUT_MS = 2_000;

/** Reads waiting for the same ReadIndex round share it. */
class ReadBarrier {
  private inflight: Promise<boolean> | null = null;
  private queued: Promise<boolean> | null = null;

  constructor(private readonly driver: RaftDriver) {}

  /** Resolves true once every write committed before this call is applied locally. */
  wait(): Promise<boolean> {
    if (!this.inflight) {
      this.inflight = this.round().finally(() => (this.inflight = null));
      return this.inflight;
    }
    // A round already in flight may predate writes this reader saw complete: take the next one.
    this.queued ??= this.inflight.then(() => {
      this.queued = null;
      return this.wait();
    });
    return this.queued;
  }

  private async round(): Promise<boolean> {
    const r = await this.driver.readBarrier(READ_BARRIER_TIMEOUT_MS);
    return r.ok;
  }
}

/**
 * The namespace calls on this node: each answers a result, or NotLeader when the caller
 * must go to the leader (LeaderRouter does).
 */
export class ReplicatedMeta {
  private readonly barrier: ReadBarrier;

  constructor(
    private readonly store: MetaStore,
    private readonly driver: RaftDriver,
    private readonly codec: EnvelopeCodec,
    private readonly selfId: NodeId,
    private readonly log: Logger,
    /** Client sessions and lease recalls (decision 0012); null: no leases are honoured here. */
    readonly hub: SessionHub | null = null,
    /**
     * The leader's admission of a command before it is proposed: an errno to refuse it with
     * at once (ENOSPC while a voter is below its reserve, decision 0014; EIO while too few
     * voters can write for a quorum), or null.
     */
    private readonly admit: (command: Command) => number | null = () => null,
  ) {
    this.barrier = new ReadBarrier(driver);
    this.gate = hub ? new LeaseGate(store, hub, () => this.isLeader(), log) : null;
  }

  private readonly gate: LeaseGate | null;

  /** 'leader' from the lease gate: a follower sends the call to the leader, which recalls. */
  private leaderOr<T>(g: 'leader' | T): NotLeader | T {
    return g === 'leader' ? new NotLeader(this.driver.leaderId) : g;
  }

  /** Called with the client id of every client command this leader executes (the session janitor's memory). */
  onClientCommand: ((clientId: string) => void) | null = null;

  /** Commands refused before they were proposed: a voter below its reserve (ENOSPC), too few voters that can write (EIO). */
  readonly refusals = { noSpace: 0, noQuorum: 0 };

  /** Reads served under the leader lease, after a ReadIndex round on the leader, or on a follower after one. */
  readonly readStats = { lease: 0, barrier: 0, follower: 0 };

  isLeader(): boolean {
    return this.driver.leaderId === this.selfId;
  }

  get leader(): NodeId | null {
    return this.driver.leaderId;
  }

  private async readable(): Promise<NotLeader | null> {
    if (!this.isLeader()) {
      // A follower serves reads itself after a ReadIndex round (one Raft round trip to the
      // leader, shared by concurrent reads): its state then reflects every write committed
      // before the read began, so the read is linearizable, and the leader does no work
      // for it beyond a heartbeat. Without a leader, or if the round fails, the caller
      // goes to the leader.
      const leader = this.driver.leaderId;
      if (leader === null || !(await this.barrier.wait())) return new NotLeader(this.driver.leaderId);
      this.readStats.follower++;
      return null;
    }
    // Within the leader lease the local state is linearizable; otherwise a ReadIndex round.
    if (this.driver.canReadLocally()) {
      this.readStats.lease++;
      return null;
    }
    this.readStats.barrier++;
    if (!(await this.barrier.wait())) return new NotLeader(this.driver.leaderId);
    return null;
  }

  /**
   * Runs a read under the leader lease, after a barrier, or on a follower after one
   * (NotLeader when none of those is possible). `dirs`: directories it reads, which another
   * session's exclusive lease must not cover; `shown`: directories its answer shows
   * (LeaseGate.read).
   */
  private async read<T>(fn: () => Promise<Result<T>>, dirs: readonly Ino[] = [], self: string | null = null, shown?: (r: Result<T>) => Ino[]): Promise<Result<T> | NotLeader> {
    const nl = await this.readable();
    if (nl) return nl;
    return this.gate ? this.leaderOr(await this.gate.read(dirs, self, fn, shown)) : fn();
  }

  lookupR(parent: Ino, name: string, session?: string) {
    return this.read(() => this.store.lookup(parent, name), [parent], session ?? null, shownByLookup);
  }
  getattrR(ino: Ino, session?: string) {
    return this.read(() => this.store.getattr(ino), [ino], session ?? null);
  }
  readdirR(ino: Ino, after: string | null, limit: number, session?: string) {
    return this.read(() => this.store.readdir(ino, after, limit), [ino], session ?? null, shownByReaddir);
  }
  readlinkR(ino: Ino) {
    return this.read(() => this.store.readlink(ino));
  }
  getxattrR(ino: Ino, name: string, session?: string) {
    return this.read(() => this.store.getxattr(ino, name), [ino], session ?? null);
  }
  listxattrR(ino: Ino, session?: string) {
    return this.read(() => this.store.listxattr(ino), [ino], session ?? null);
  }
  getChunksR(ino: Ino, fromIndex: number, count: number) {
    return this.read(() => this.store.getChunks(ino, fromIndex, count));
  }
  statfsR() {
    return this.read(() => this.store.statfs());
  }

  async executeEnvelopeR(envelope: Envelope): Promise<Result<unknown> | NotLeader> {
    if (!this.isLeader()) return new NotLeader(this.driver.leaderId);
    if (envelope.clientId) this.onClientCommand?.(envelope.clientId);
    const refused = this.admit(envelope.command);
    if (refused !== null) {
      this.refusals[refused === Errno.ENOSPC ? 'noSpace' : 'noQuorum']++;
      return { ok: false, errno: refused };
    }
    const propose = () => this.driver.propose(this.codec.encode(envelope));
    let out: ProposalOutcome;
    if (this.gate) {
      const g = await this.gate.execute(envelope.command, propose);
      if (g === 'leader') return new NotLeader(this.driver.leaderId);
      if ('errno' in g) return g;
      out = g;
    } else {
      out = await propose();
    }
    if (out.ok) return out.result as Result<unknown>;
    if (out.reason === 'notLeader' || out.reason === 'overwritten' || out.reason === 'transferring') return new NotLeader(out.leader);
    if (out.reason === 'tooLarge') return { ok: false, errno: Errno.EFBIG };
    this.log.warn({ reason: out.reason }, 'proposal not applied');
    // Timeout or stop: the command may still commit; the client retries with the same
    // seq and the dedup table answers the retry.
    return new NotLeader(out.leader);
  }
}

