// Sends every namespace call to the Raft leader: served in process when this node
// leads, forwarded over gRPC otherwise. A forwarded command keeps its client id and
// sequence number, so a retry after a leader change is applied once (dedup table).
// It serves both the local FUSE mount and remote clients (the gRPC service), so a
// client may talk to any node of the cluster.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ReaddirPage, SessionEvents, SessionLink } from '../meta/api.js';
import { MetaClient, type MetaBackend } from '../meta/grpc.js';
import type { Attr, ChunkRef, Command, CommandValues, Envelope, Ino, Result, StatFs } from '../meta/types.js';
import { Errno } from '../meta/types.js';
import { ClientLanes } from '../meta/client-lanes.js';
import type { NodeId } from '../cluster/raft/types.js';
import { NotLeader, type ReplicatedMeta } from './replicated-meta.js';
import type { CommandForwarder } from './forward.js';

export interface RouterOptions {
  /** How long a call keeps trying to find a leader that answers. */
  deadlineMs: number;
  /** Per forwarded call. */
  forwardDeadlineMs: number;
}

export const DEFAULT_ROUTER_OPTIONS: RouterOptions = { deadlineMs: 20_000, forwardDeadlineMs: 8_000 };

type Local<T> = () => Promise<Result<T> | NotLeader>;
type Remote<T> = (c: MetaClient) => Promise<Result<T>>;
/** Another way to the leader than its MetaClient (a forwarded command), or null when there is none now. */
type Direct<T> = (leader: NodeId) => (() => Promise<Result<T>>) | null;

export class LeaderRouter implements MetaBackend {
  private readonly clients = new Map<NodeId, Promise<MetaClient>>();
  private readonly clientId = `router-${randomUUID()}`;
  private readonly lanes = new ClientLanes(this.clientId);
  /** Set by close() (daemon stop): calls still looking for a leader give up with EIO. */
  private closed = false;
  private forwarder: CommandForwarder | null = null;
  readonly counters = { forwarded: 0, retries: 0, noLeaderWaits: 0 };

  constructor(
    private readonly local: ReplicatedMeta,
    private readonly selfId: NodeId,
    /** gRPC address of each member, for forwarding. */
    private readonly addresses: () => Map<NodeId, string>,
    private readonly log: Logger,
    private readonly opts: RouterOptions = DEFAULT_ROUTER_OPTIONS,
  ) {}

  private client(id: NodeId): Promise<MetaClient> | null {
    const addr = this.addresses().get(id);
    if (!addr) return null;
    let c = this.clients.get(id);
    if (!c) {
      c = MetaClient.connect(addr, { attempts: 1, deadlineMs: this.opts.forwardDeadlineMs, clientId: this.clientId });
      this.clients.set(id, c);
    }
    return c;
  }

  close(): void {
    this.closed = true;
    for (const c of this.clients.values()) void c.then((x) => x.close(), () => undefined);
    this.clients.clear();
  }

  /**
   * `eioAnswers`: an EIO the leader replied is its answer (a command it refused, decision
   * 0014); for reads an EIO reply still means "look again" (a leader on its way down).
   */
  private async route<T>(local: Local<T>, remote: Remote<T>, eioAnswers = false, direct?: Direct<T>): Promise<Result<T>> {
    const end = Date.now() + this.opts.deadlineMs;
    let delay = 20;
    for (let attempt = 0; ; attempt++) {
      const r = await local();
      if (!(r instanceof NotLeader)) return r;
      const leader = r.leader;
      if (leader && leader !== this.selfId) {
        const way = direct?.(leader) ?? null;
        const c = way ? null : this.client(leader);
        if (way || c) {
          this.counters.forwarded++;
          const out = way ? await way() : await remote(await c!);
          // No answer (it may have died): look again; EAGAIN means it is no longer leader.
          // Anything else is the answer.
          if (out.ok) return out;
          const lookAgain = out.noAnswer === true || out.errno === Errno.EAGAIN || (!eioAnswers && (out.errno === Errno.EIO || out.errno === Errno.ETIMEDOUT));
          if (!lookAgain) return out;
        }
      } else {
        this.counters.noLeaderWaits++;
      }
      if (Date.now() > end || this.closed) {
        this.log.warn({ attempt }, this.closed ? 'router closed while looking for a leader' : 'no leader answered within the deadline');
        // A daemon on its way down did not answer (its callers look elsewhere); a deadline is an answer.
        return this.closed ? { ok: false, errno: Errno.EIO, noAnswer: true } : { ok: false, errno: Errno.EIO };
      }
      this.counters.retries++;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 500);
    }
  }

  lookup(parent: Ino, name: string, session?: string): Promise<Result<Attr>> {
    return this.route(
      () => this.local.lookupR(parent, name, session),
      (c) => c.lookup(parent, name, session),
    );
  }
  getattr(ino: Ino, session?: string): Promise<Result<Attr>> {
    return this.route(
      () => this.local.getattrR(ino, session),
      (c) => c.getattr(ino, session),
    );
  }
  readdir(ino: Ino, after: string | null, limit: number, session?: string): Promise<Result<ReaddirPage>> {
    return this.route(
      () => this.local.readdirR(ino, after, limit, session),
      (c) => c.readdir(ino, after, limit, session),
    );
  }

  /**
   * A session's stream to the leader: attached to this node's SessionHub when it leads,
   * passed on to the leader otherwise. It ends when the leader changes; the client opens
   * a new one (through whichever node it talks to).
   */
  openSession(session: string, events: SessionEvents): SessionLink {
    const leader = this.local.leader;
    const hub = this.local.hub;
    if (leader === this.selfId && hub) return hub.attach(session, events);
    const c = leader && leader !== this.selfId ? this.client(leader) : null;
    let closed = false;
    const fail = (why: string): void => {
      if (closed) return;
      closed = true;
      events.closed(why);
    };
    if (!c) {
      queueMicrotask(() => fail('no leader'));
      return { renew: () => undefined, close: () => (closed = true) };
    }
    let inner: SessionLink | null = null;
    let firstSeq = 0;
    void c.then(
      (client) => {
        if (closed) return;
        inner = client.openSession(session, { renewed: (seq) => !closed && events.renewed(seq), recall: (dirs) => !closed && events.recall(dirs), closed: fail });
        if (firstSeq > 0) inner.renew(firstSeq);
      },
      () => fail('cannot reach the leader'),
    );
    return {
      renew: (seq) => {
        if (inner) inner.renew(seq);
        else firstSeq = seq;
      },
      close: () => {
        if (closed) return;
        closed = true;
        inner?.close();
      },
    };
  }
  readlink(ino: Ino): Promise<Result<string>> {
    return this.route(
      () => this.local.readlinkR(ino),
      (c) => c.readlink(ino),
    );
  }
  getxattr(ino: Ino, name: string, session?: string): Promise<Result<Buffer>> {
    return this.route(
      () => this.local.getxattrR(ino, name, session),
      (c) => c.getxattr(ino, name, session),
    );
  }
  listxattr(ino: Ino, session?: string): Promise<Result<string[]>> {
    return this.route(
      () => this.local.listxattrR(ino, session),
      (c) => c.listxattr(ino, session),
    );
  }
  getChunks(ino: Ino, fromIndex: number, count: number): Promise<Result<ChunkRef[]>> {
    return this.route(
      () => this.local.getChunksR(ino, fromIndex, count),
      (c) => c.getChunks(ino, fromIndex, count),
    );
  }
  statfs(): Promise<Result<StatFs>> {
    return this.route(
      () => this.local.statfsR(),
      (c) => c.statfs(),
    );
  }
  executeEnvelope(envelope: Envelope): Promise<Result<unknown>> {
    const forwarder = this.forwarder;
    return this.route(
      () => this.local.executeEnvelopeR(envelope),
      (c) => c.executeEnvelope(envelope),
      true,
      forwarder
        ? (leader) =>
            forwarder.reaches(leader)
              ? async () => {
                  const r = await forwarder.forward(leader, envelope);
                  // The leader we asked does not lead (any more): looked for again, as EAGAIN over gRPC.
                  return r instanceof NotLeader ? { ok: false, errno: Errno.EAGAIN } : r;
                }
              : null
        : undefined,
    );
  }

  /** Commands go to the leader through `f` (the Raft transport) instead of gRPC. */
  useForwarder(f: CommandForwarder): void {
    this.forwarder = f;
  }
  execute<C extends Command>(command: C): Promise<Result<CommandValues[C['op']]>> {
    // One command in flight per client id (see ClientLanes): retries after a leader change
    // land in any order.
    return this.lanes.run((clientId, seq) => this.executeEnvelope({ clientId, seq, command })) as Promise<Result<CommandValues[C['op']]>>;
  }
}
