// The namespace behind Raft: MetaStore is the state machine, every mutation is a log
// entry, and reads on the leader wait for a ReadIndex barrier (linearizable). On a
// follower, calls answer NOT_LEADER (the router or the client then goes to the leader).
import type { Logger } from 'pino';
import type { MetaApi, ReaddirPage } from '../meta/api.js';
import type { MetaBackend } from '../meta/grpc.js';
import type { MetaStore } from '../meta/store.js';
import type { EnvelopeCodec } from '../meta/envelope-codec.js';
import type { Attr, ChunkRef, Command, CommandValues, Envelope, Ino, Result, StatFs } from '../meta/types.js';
import { Errno } from '../meta/types.js';
import type { RaftDriver, StateMachine } from '../cluster/raft/driver.js';
import type { Entry, NodeId } from '../cluster/raft/types.js';
import { EntryType } from '../cluster/raft/types.js';

/** Thrown (as a value) when this node cannot serve: the caller must go to `leader`. */
export class NotLeader {
  constructor(readonly leader: NodeId | null) {}
}

/** MetaStore as a Raft state machine. */
export function metaStateMachine(store: MetaStore, codec: EnvelopeCodec): StateMachine {
  return {
    apply: (entries: Entry[]) =>
      store.applyCommitted(
        entries.map((e) => ({
          index: e.index,
          envelope: e.type === EntryType.Normal && e.data.length > 0 ? codec.decode(e.data) : null,
        })),
      ),
    appliedIndex: () => store.appliedIndex(),
    sync: () => store.syncApplied(),
    snapshot: () => store.snapshotImage(),
    restore: (image: Buffer) => store.restoreImage(image),
  };
}

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
    const r = await this.driver.readBarrier();
    return r.ok;
  }
}

export class ReplicatedMeta implements MetaBackend {
  private readonly barrier: ReadBarrier;
  private seq = 0;

  constructor(
    private readonly store: MetaStore,
    private readonly driver: RaftDriver,
    private readonly codec: EnvelopeCodec,
    private readonly selfId: NodeId,
    private readonly clientId: string,
    private readonly log: Logger,
  ) {
    this.barrier = new ReadBarrier(driver);
  }

  isLeader(): boolean {
    return this.driver.leaderId === this.selfId;
  }

  get leader(): NodeId | null {
    return this.driver.leaderId;
  }

  private async readable(): Promise<NotLeader | null> {
    if (!this.isLeader()) return new NotLeader(this.driver.leaderId);
    // Within the leader lease the local state is linearizable; otherwise a ReadIndex round.
    if (this.driver.canReadLocally()) return null;
    if (!(await this.barrier.wait())) return new NotLeader(this.driver.leaderId);
    return null;
  }

  /** Runs a read on the leader after a barrier; NOT_LEADER (as EAGAIN-like value) elsewhere. */
  private async read<T>(fn: () => Promise<Result<T>>): Promise<Result<T> | NotLeader> {
    const nl = await this.readable();
    return nl ?? fn();
  }

  lookupR(parent: Ino, name: string) {
    return this.read(() => this.store.lookup(parent, name));
  }
  getattrR(ino: Ino) {
    return this.read(() => this.store.getattr(ino));
  }
  readdirR(ino: Ino, after: string | null, limit: number) {
    return this.read(() => this.store.readdir(ino, after, limit));
  }
  readlinkR(ino: Ino) {
    return this.read(() => this.store.readlink(ino));
  }
  getxattrR(ino: Ino, name: string) {
    return this.read(() => this.store.getxattr(ino, name));
  }
  listxattrR(ino: Ino) {
    return this.read(() => this.store.listxattr(ino));
  }
  getChunksR(ino: Ino, fromIndex: number, count: number) {
    return this.read(() => this.store.getChunks(ino, fromIndex, count));
  }
  statfsR() {
    return this.read(() => this.store.statfs());
  }

  async executeEnvelopeR(envelope: Envelope): Promise<Result<unknown> | NotLeader> {
    if (!this.isLeader()) return new NotLeader(this.driver.leaderId);
    const out = await this.driver.propose(this.codec.encode(envelope));
    if (out.ok) return out.result as Result<unknown>;
    if (out.reason === 'notLeader' || out.reason === 'overwritten' || out.reason === 'transferring') return new NotLeader(out.leader);
    if (out.reason === 'tooLarge') return { ok: false, errno: Errno.EFBIG };
    this.log.warn({ reason: out.reason }, 'proposal not applied');
    // Timeout or stop: the command may still commit; the client retries with the same
    // seq and the dedup table answers the retry.
    return new NotLeader(out.leader);
  }

  // ---- MetaBackend (NOT_LEADER folded into EIO for callers that cannot redirect) ------

  private static plain<T>(r: Result<T> | NotLeader): Result<T> {
    return r instanceof NotLeader ? { ok: false, errno: Errno.EAGAIN } : r;
  }

  async lookup(parent: Ino, name: string): Promise<Result<Attr>> {
    return ReplicatedMeta.plain(await this.lookupR(parent, name));
  }
  async getattr(ino: Ino): Promise<Result<Attr>> {
    return ReplicatedMeta.plain(await this.getattrR(ino));
  }
  async readdir(ino: Ino, after: string | null, limit: number): Promise<Result<ReaddirPage>> {
    return ReplicatedMeta.plain(await this.readdirR(ino, after, limit));
  }
  async readlink(ino: Ino): Promise<Result<string>> {
    return ReplicatedMeta.plain(await this.readlinkR(ino));
  }
  async getxattr(ino: Ino, name: string): Promise<Result<Buffer>> {
    return ReplicatedMeta.plain(await this.getxattrR(ino, name));
  }
  async listxattr(ino: Ino): Promise<Result<string[]>> {
    return ReplicatedMeta.plain(await this.listxattrR(ino));
  }
  async getChunks(ino: Ino, fromIndex: number, count: number): Promise<Result<ChunkRef[]>> {
    return ReplicatedMeta.plain(await this.getChunksR(ino, fromIndex, count));
  }
  async statfs(): Promise<Result<StatFs>> {
    return ReplicatedMeta.plain(await this.statfsR());
  }
  async executeEnvelope(envelope: Envelope): Promise<Result<unknown>> {
    return ReplicatedMeta.plain(await this.executeEnvelopeR(envelope));
  }
  execute<C extends Command>(command: C): Promise<Result<CommandValues[C['op']]>> {
    return this.executeEnvelope({ clientId: this.clientId, seq: ++this.seq, command }) as Promise<Result<CommandValues[C['op']]>>;
  }
}

export type { MetaApi };
