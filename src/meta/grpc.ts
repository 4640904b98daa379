// The meta service over gRPC. The server adapts a MetaStore to dfs.meta.Meta;
// MetaClient is the same MetaApi across processes. Namespace errors travel as `errno`
// fields (they are answers, not failures); gRPC statuses mean the call itself failed.
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { loadProto } from '../common/proto.js';
import type { MetaApi, ReaddirPage, SessionEvents, SessionLink } from './api.js';
import type { SessionUp__Output } from './gen/dfs/meta/SessionUp.js';
import type { SessionDown, SessionDown__Output } from './gen/dfs/meta/SessionDown.js';
import type { ProtoGrpcType } from './gen/meta.js';
import type { MetaClient as MetaStub, MetaHandlers } from './gen/dfs/meta/Meta.js';
import type { AttrReply__Output } from './gen/dfs/meta/AttrReply.js';
import type { ReaddirReply__Output } from './gen/dfs/meta/ReaddirReply.js';
import type { ReadlinkReply__Output } from './gen/dfs/meta/ReadlinkReply.js';
import type { XattrReply__Output } from './gen/dfs/meta/XattrReply.js';
import type { ListxattrReply__Output } from './gen/dfs/meta/ListxattrReply.js';
import type { GetChunksReply__Output } from './gen/dfs/meta/GetChunksReply.js';
import type { StatfsReply__Output } from './gen/dfs/meta/StatfsReply.js';
import type { CommandReply__Output } from './gen/dfs/meta/CommandReply.js';
import type { InfoReply__Output } from './gen/dfs/meta/InfoReply.js';
import type { RaftStatusReply, RaftStatusReply__Output } from './gen/dfs/meta/RaftStatusReply.js';
import type { RaftAdminReply, RaftAdminReply__Output } from './gen/dfs/meta/RaftAdminReply.js';
import type { RaftAdminRequest, RaftAdminRequest__Output } from './gen/dfs/meta/RaftAdminRequest.js';
import type { HeartbeatRequest, HeartbeatRequest__Output } from './gen/dfs/meta/HeartbeatRequest.js';
import type { HeartbeatReply, HeartbeatReply__Output } from './gen/dfs/meta/HeartbeatReply.js';
import type { ClusterViewReply, ClusterViewReply__Output } from './gen/dfs/meta/ClusterViewReply.js';
import type { HealthStatusReply, HealthStatusReply__Output } from './gen/dfs/meta/HealthStatusReply.js';
import type { EventsRequest, EventsRequest__Output } from './gen/dfs/meta/EventsRequest.js';
import type { EventsReply, EventsReply__Output } from './gen/dfs/meta/EventsReply.js';
import type { CheckChunksRequest, CheckChunksRequest__Output } from './gen/dfs/meta/CheckChunksRequest.js';
import type { CheckChunksReply, CheckChunksReply__Output } from './gen/dfs/meta/CheckChunksReply.js';
import type { SessionsReply, SessionsReply__Output } from './gen/dfs/meta/SessionsReply.js';
import type { Attr, ChunkRef, Command, CommandValues, Envelope, Ino, Result, StatFs } from './types.js';
import { Errno } from './types.js';
import { ClientLanes } from './client-lanes.js';
import { attrFromWire, attrToWire, bytes, chunkFromWire, chunkToWire, commandFromWire, commandReply, commandToWire, resultOfReply, str } from './wire.js';

type MetaPackage = ProtoGrpcType['dfs']['meta'];
let metaPackagePromise: Promise<MetaPackage> | undefined;

function loadMetaPackage(): Promise<MetaPackage> {
  metaPackagePromise ??= loadProto('meta', 'meta.proto').then((root) => (root as unknown as ProtoGrpcType).dfs.meta);
  return metaPackagePromise;
}

/** What the server needs: the namespace plus at-most-once application of client commands. */
export interface MetaBackend extends MetaApi {
  executeEnvelope(envelope: Envelope): Promise<Result<unknown>>;
}

export interface MetaServerInfo {
  nodeId: string;
  chunkAddress: string;
  version: string;
}

/** Raft state and administration, provided by the daemon (the meta layer knows no Raft). */
export interface RaftAdminBackend {
  status(): RaftStatusReply;
  admin(request: RaftAdminRequest__Output): Promise<RaftAdminReply>;
}

/** Chunk servers' heartbeats and the leader's view of them, provided by the daemon. */
export interface ClusterBackend {
  heartbeat(request: HeartbeatRequest__Output): Promise<HeartbeatReply>;
  view(): Promise<ClusterViewReply>;
  health(): Promise<HealthStatusReply>;
  events(request: EventsRequest__Output): Promise<EventsReply>;
  checkChunks(request: CheckChunksRequest__Output): Promise<CheckChunksReply>;
  sessions(): Promise<SessionsReply>;
}

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;

function internal(err: unknown): grpc.ServiceError {
  const details = `internal error: ${err instanceof Error ? err.message : String(err)}`;
  return Object.assign(new Error(details), { code: grpc.status.INTERNAL, details, metadata: new grpc.Metadata() });
}

function unimplemented(details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code: grpc.status.UNIMPLEMENTED, details, metadata: new grpc.Metadata() });
}

function unavailable(details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code: grpc.status.UNAVAILABLE, details, metadata: new grpc.Metadata() });
}

function invalid(details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code: grpc.status.INVALID_ARGUMENT, details, metadata: new grpc.Metadata() });
}

/** Runs an async handler and answers its callback, turning a thrown bug into INTERNAL (a thrown status stays itself). */
function serve<T>(cb: Callback<T>, run: () => Promise<T>): void {
  run().then(
    (v) => cb(null, v),
    (e: unknown) => cb(e instanceof Error && e.message.length > 0 && typeof (e as Partial<grpc.ServiceError>).code === 'number' && (e as Partial<grpc.ServiceError>).metadata instanceof grpc.Metadata ? (e as grpc.ServiceError) : internal(e)),
  );
}

/** One session stream: the first message names the session, every message renews it. */
function serveSession(call: grpc.ServerDuplexStream<SessionUp__Output, SessionDown>, backend: MetaBackend): void {
  if (!backend.openSession) {
    call.emit('error', unimplemented('no sessions on this server'));
    return;
  }
  const open = backend.openSession.bind(backend);
  let link: SessionLink | null = null;
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    link?.close();
    call.end();
  };
  call.on('data', (m: SessionUp__Output) => {
    if (ended) return;
    if (!link) {
      if (!m.session) {
        ended = true;
        call.emit('error', invalid('the first SessionUp names no session'));
        return;
      }
      link = open(m.session, {
        renewed: (seq) => {
          if (!ended) call.write({ renewed: seq, recall: [] });
        },
        recall: (dirs) => {
          if (!ended) call.write({ renewed: 0, recall: dirs });
        },
        closed: () => end(),
      });
    }
    if (m.renew > 0) link.renew(m.renew);
  });
  call.on('end', end);
  call.on('cancelled', end);
  call.on('error', end);
}

export async function registerMetaService(
  server: grpc.Server,
  backend: MetaBackend,
  info: MetaServerInfo,
  raft?: RaftAdminBackend,
  cluster?: ClusterBackend,
): Promise<void> {
  const pkg = await loadMetaPackage();
  const handlers: MetaHandlers = {
    Lookup: (call, cb) =>
      serve(cb, async () => {
        const r = await backend.lookup(call.request.parent, str(call.request.name), call.request.session || undefined);
        return r.ok ? { errno: 0, attr: attrToWire(r.value) } : { errno: r.errno };
      }),
    Getattr: (call, cb) =>
      serve(cb, async () => {
        const r = await backend.getattr(call.request.ino, call.request.session || undefined);
        return r.ok ? { errno: 0, attr: attrToWire(r.value) } : { errno: r.errno };
      }),
    Readdir: (call, cb) =>
      serve(cb, async () => {
        const q = call.request;
        const r = await backend.readdir(q.ino, q.hasAfter ? str(q.after) : null, q.limit, q.session || undefined);
        if (!r.ok) return { errno: r.errno };
        return {
          errno: 0,
          done: r.value.done,
          entries: r.value.entries.map((e) => ({ name: bytes(e.name), ino: e.ino, type: e.type, attr: attrToWire(e.attr) })),
        };
      }),
    Readlink: (call, cb) =>
      serve(cb, async () => {
        const r = await backend.readlink(call.request.ino);
        return r.ok ? { errno: 0, target: bytes(r.value) } : { errno: r.errno };
      }),
    Getxattr: (call, cb) =>
      serve(cb, async () => {
        const r = await backend.getxattr(call.request.ino, str(call.request.name), call.request.session || undefined);
        return r.ok ? { errno: 0, value: r.value } : { errno: r.errno };
      }),
    Listxattr: (call, cb) =>
      serve(cb, async () => {
        const r = await backend.listxattr(call.request.ino, call.request.session || undefined);
        return r.ok ? { errno: 0, names: r.value.map(bytes) } : { errno: r.errno };
      }),
    GetChunks: (call, cb) =>
      serve(cb, async () => {
        const q = call.request;
        const r = await backend.getChunks(q.ino, q.fromIndex, q.count);
        return r.ok ? { errno: 0, chunks: r.value.map(chunkToWire) } : { errno: r.errno };
      }),
    Statfs: (_call, cb) =>
      serve(cb, async () => {
        const r = await backend.statfs();
        return r.ok ? { errno: 0, ...r.value } : { errno: r.errno };
      }),
    Execute: (call, cb) => {
      const command = commandFromWire(call.request);
      if (!command) {
        cb(invalid('CommandRequest names no command'));
        return;
      }
      serve(cb, async () => {
        const { clientId, seq } = call.request;
        const r = clientId ? await backend.executeEnvelope({ clientId, seq, command }) : await backend.execute(command);
        // This server could not get an answer (it is stopping): UNAVAILABLE, so the caller
        // fails over and retries under the same seq instead of taking EIO for an answer.
        if (!r.ok && r.noAnswer) throw unavailable('no answer from the leader (this daemon is stopping)');
        return commandReply(command, r);
      });
    },
    Session: (call) => serveSession(call, backend),
    Info: (_call, cb) => cb(null, { nodeId: info.nodeId, chunkAddress: info.chunkAddress, version: info.version }),
    RaftStatus: (_call, cb) => {
      if (!raft) cb(Object.assign(new Error('no raft on this server'), { code: grpc.status.UNIMPLEMENTED, details: 'no raft on this server', metadata: new grpc.Metadata() }));
      else cb(null, raft.status());
    },
    RaftAdmin: (call, cb) => {
      if (!raft) {
        cb(Object.assign(new Error('no raft on this server'), { code: grpc.status.UNIMPLEMENTED, details: 'no raft on this server', metadata: new grpc.Metadata() }));
        return;
      }
      serve(cb, () => raft.admin(call.request));
    },
    Heartbeat: (call, cb) => {
      if (!cluster) cb(unimplemented('no cluster registry on this server'));
      else serve(cb, () => cluster.heartbeat(call.request));
    },
    ClusterView: (_call, cb) => {
      if (!cluster) cb(unimplemented('no cluster registry on this server'));
      else serve(cb, () => cluster.view());
    },
    HealthStatus: (_call, cb) => {
      if (!cluster) cb(unimplemented('no cluster registry on this server'));
      else serve(cb, () => cluster.health());
    },
    Events: (call, cb) => {
      if (!cluster) cb(unimplemented('no cluster registry on this server'));
      else serve(cb, () => cluster.events(call.request));
    },
    CheckChunks: (call, cb) => {
      if (!cluster) cb(unimplemented('no cluster registry on this server'));
      else serve(cb, () => cluster.checkChunks(call.request));
    },
    Sessions: (_call, cb) => {
      if (!cluster) cb(unimplemented('no cluster registry on this server'));
      else serve(cb, () => cluster.sessions());
    },
  };
  server.addService(pkg.Meta.service, handlers);
}

export interface MetaClientOptions {
  /** Deadline of one call. */
  deadlineMs: number;
  /** Attempts of a call that failed with UNAVAILABLE before giving up with EIO. */
  attempts: number;
  /** First retry delay; doubles each attempt. */
  backoffMs: number;
  clientId: string;
}

export const DEFAULT_META_CLIENT_OPTIONS: Omit<MetaClientOptions, 'clientId'> = { deadlineMs: 15_000, attempts: 6, backoffMs: 100 };

const RETRYABLE = new Set<number>([grpc.status.UNAVAILABLE]);

export class MetaClient implements MetaApi {
  private readonly opts: MetaClientOptions;
  private readonly lanes: ClientLanes;
  private stub: MetaStub;
  /** Daemons to talk to, in order of preference; the current one is endpoints[at]. */
  private endpoints: string[];
  private at = 0;
  private readonly retired = new Set<MetaStub>();
  private closed = false;

  private constructor(
    private readonly pkg: MetaPackage,
    endpoints: string[],
    options: Partial<MetaClientOptions>,
  ) {
    this.opts = { ...DEFAULT_META_CLIENT_OPTIONS, clientId: randomUUID(), ...options };
    this.lanes = new ClientLanes(this.opts.clientId);
    this.endpoints = [...endpoints];
    this.stub = this.dial(this.endpoints[0]);
  }

  /**
   * A client of the daemon at `address`; given several, it fails over to the next one
   * when the current one stops answering (commands keep their client id and sequence
   * number across the switch, so a retried mutation is still applied once).
   */
  static async connect(address: string | string[], options: Partial<MetaClientOptions> = {}): Promise<MetaClient> {
    const endpoints = typeof address === 'string' ? [address] : address;
    if (endpoints.length === 0) throw new Error('MetaClient.connect: no address');
    return new MetaClient(await loadMetaPackage(), endpoints, options);
  }

  private dial(address: string): MetaStub {
    return new this.pkg.Meta(address, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': 16 * 1024 * 1024,
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
    }) as unknown as MetaStub;
  }

  /** The daemon calls go to now. */
  get endpoint(): string {
    return this.endpoints[this.at];
  }

  /** Replaces the fail-over list (e.g. with the cluster's current members); keeps the current daemon when it is still listed. */
  setEndpoints(addresses: string[]): void {
    const list = [...new Set(addresses)];
    if (list.length === 0) return;
    const current = this.endpoint;
    const keep = list.indexOf(current);
    if (keep >= 0) {
      this.endpoints = list;
      this.at = keep;
      return;
    }
    this.endpoints = list;
    this.switchTo(0);
  }

  /** The call on `failed` found its daemon unreachable: move to the next one (once per failure). */
  private failover(failed: MetaStub): void {
    if (this.closed || this.endpoints.length < 2 || this.stub !== failed) return;
    this.switchTo((this.at + 1) % this.endpoints.length);
  }

  private switchTo(at: number): void {
    const old = this.stub;
    this.at = at;
    this.stub = this.dial(this.endpoints[at]);
    // Calls still in flight on the old channel finish (or time out) before it closes.
    this.retired.add(old);
    setTimeout(() => {
      if (this.retired.delete(old)) old.close();
    }, this.opts.deadlineMs + 1000).unref();
  }

  close(): void {
    this.closed = true;
    this.stub.close();
    for (const s of this.retired) s.close();
    this.retired.clear();
  }

  /** Waits until the server answers, up to `timeoutMs`. */
  waitReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.stub.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve()));
    });
  }

  raftStatus(): Promise<RaftStatusReply__Output> {
    return this.call<RaftStatusReply__Output>((d, cb) => this.stub.RaftStatus({}, { deadline: d }, cb));
  }

  raftAdmin(request: RaftAdminRequest): Promise<RaftAdminReply__Output> {
    return this.call<RaftAdminReply__Output>((d, cb) => this.stub.RaftAdmin(request, { deadline: d }, cb));
  }

  heartbeat(request: HeartbeatRequest): Promise<HeartbeatReply__Output> {
    return this.call<HeartbeatReply__Output>((d, cb) => this.stub.Heartbeat(request, { deadline: d }, cb));
  }

  clusterView(): Promise<ClusterViewReply__Output> {
    return this.call<ClusterViewReply__Output>((d, cb) => this.stub.ClusterView({}, { deadline: d }, cb));
  }

  healthStatus(): Promise<HealthStatusReply__Output> {
    return this.call<HealthStatusReply__Output>((d, cb) => this.stub.HealthStatus({}, { deadline: d }, cb));
  }

  events(request: EventsRequest): Promise<EventsReply__Output> {
    return this.call<EventsReply__Output>((d, cb) => this.stub.Events(request, { deadline: d }, cb));
  }

  checkChunks(request: CheckChunksRequest): Promise<CheckChunksReply__Output> {
    return this.call<CheckChunksReply__Output>((d, cb) => this.stub.CheckChunks(request, { deadline: d }, cb));
  }

  sessions(): Promise<SessionsReply__Output> {
    return this.call<SessionsReply__Output>((d, cb) => this.stub.Sessions({}, { deadline: d }, cb));
  }

  info(): Promise<{ nodeId: string; chunkAddress: string; version: string }> {
    return this.call<InfoReply__Output>((d, cb) => this.stub.Info({}, { deadline: d }, cb));
  }

  /**
   * One unary call with a deadline and bounded retries on UNAVAILABLE; with several
   * endpoints each retry goes to the next one, and the backoff applies per round.
   */
  private async call<T>(fn: (deadline: Date, cb: (err: grpc.ServiceError | null, v?: T) => void) => void): Promise<T> {
    let delay = this.opts.backoffMs;
    const attempts = this.opts.attempts * Math.max(1, this.endpoints.length);
    for (let attempt = 1; ; attempt++) {
      const stub = this.stub;
      try {
        return await new Promise<T>((resolve, reject) => {
          fn(new Date(Date.now() + this.opts.deadlineMs), (err, v) => (err ? reject(err) : resolve(v as T)));
        });
      } catch (e) {
        const code = (e as grpc.ServiceError).code;
        if (!RETRYABLE.has(code) || attempt >= attempts) throw e;
        this.failover(stub);
        if (attempt % Math.max(1, this.endpoints.length) !== 0) continue;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  /** Like call(), but a failed call becomes EIO (or ETIMEDOUT) instead of an exception. */
  private async ask<T>(fn: (deadline: Date, cb: (err: grpc.ServiceError | null, v?: T) => void) => void): Promise<Result<T>> {
    try {
      return { ok: true, value: await this.call(fn) };
    } catch (e) {
      const code = (e as grpc.ServiceError).code;
      return { ok: false, errno: code === grpc.status.DEADLINE_EXCEEDED ? Errno.ETIMEDOUT : Errno.EIO, noAnswer: true };
    }
  }

  async lookup(parent: Ino, name: string, session?: string): Promise<Result<Attr>> {
    const r = await this.ask<AttrReply__Output>((d, cb) => this.stub.Lookup({ parent, name: bytes(name), session: session ?? '' }, { deadline: d }, cb));
    if (!r.ok) return r;
    return r.value.errno ? { ok: false, errno: r.value.errno } : { ok: true, value: attrFromWire(r.value.attr) };
  }

  async getattr(ino: Ino, session?: string): Promise<Result<Attr>> {
    const r = await this.ask<AttrReply__Output>((d, cb) => this.stub.Getattr({ ino, session: session ?? '' }, { deadline: d }, cb));
    if (!r.ok) return r;
    return r.value.errno ? { ok: false, errno: r.value.errno } : { ok: true, value: attrFromWire(r.value.attr) };
  }

  async readdir(ino: Ino, after: string | null, limit: number, session?: string): Promise<Result<ReaddirPage>> {
    const q = { ino, hasAfter: after !== null, after: bytes(after ?? ''), limit, session: session ?? '' };
    const r = await this.ask<ReaddirReply__Output>((d, cb) => this.stub.Readdir(q, { deadline: d }, cb));
    if (!r.ok) return r;
    if (r.value.errno) return { ok: false, errno: r.value.errno };
    return {
      ok: true,
      value: { done: r.value.done, entries: r.value.entries.map((e) => ({ name: str(e.name), ino: e.ino, type: e.type, attr: attrFromWire(e.attr) })) },
    };
  }

  async readlink(ino: Ino): Promise<Result<string>> {
    const r = await this.ask<ReadlinkReply__Output>((d, cb) => this.stub.Readlink({ ino }, { deadline: d }, cb));
    if (!r.ok) return r;
    return r.value.errno ? { ok: false, errno: r.value.errno } : { ok: true, value: str(r.value.target) };
  }

  async getxattr(ino: Ino, name: string, session?: string): Promise<Result<Buffer>> {
    const r = await this.ask<XattrReply__Output>((d, cb) => this.stub.Getxattr({ ino, name: bytes(name), session: session ?? '' }, { deadline: d }, cb));
    if (!r.ok) return r;
    return r.value.errno ? { ok: false, errno: r.value.errno } : { ok: true, value: r.value.value };
  }

  async listxattr(ino: Ino, session?: string): Promise<Result<string[]>> {
    const r = await this.ask<ListxattrReply__Output>((d, cb) => this.stub.Listxattr({ ino, session: session ?? '' }, { deadline: d }, cb));
    if (!r.ok) return r;
    return r.value.errno ? { ok: false, errno: r.value.errno } : { ok: true, value: r.value.names.map((n) => str(n)) };
  }

  async getChunks(ino: Ino, fromIndex: number, count: number): Promise<Result<ChunkRef[]>> {
    const r = await this.ask<GetChunksReply__Output>((d, cb) => this.stub.GetChunks({ ino, fromIndex, count }, { deadline: d }, cb));
    if (!r.ok) return r;
    return r.value.errno ? { ok: false, errno: r.value.errno } : { ok: true, value: r.value.chunks.map(chunkFromWire) };
  }

  async statfs(): Promise<Result<StatFs>> {
    const r = await this.ask<StatfsReply__Output>((d, cb) => this.stub.Statfs({}, { deadline: d }, cb));
    if (!r.ok) return r;
    const v = r.value;
    if (v.errno) return { ok: false, errno: v.errno };
    return {
      ok: true,
      value: {
        totalBytes: v.totalBytes,
        freeBytes: v.freeBytes,
        availBytes: v.availBytes,
        files: v.files,
        freeFiles: v.freeFiles,
        blockSizeBytes: v.blockSizeBytes,
        nameMaxBytes: v.nameMaxBytes,
      },
    };
  }

  /**
   * The session's stream to whichever server this client talks to (which passes it on to
   * the leader). One stream; `closed` fires once when it ends, for any reason.
   */
  openSession(session: string, events: SessionEvents): SessionLink {
    const call = this.stub.Session();
    let closed = false;
    const finish = (reason: string): void => {
      if (closed) return;
      closed = true;
      call.cancel();
      events.closed(reason);
    };
    call.on('data', (m: SessionDown__Output) => {
      if (closed) return;
      if (m.renewed > 0) events.renewed(m.renewed);
      if (m.recall.length > 0) events.recall(m.recall);
    });
    call.on('error', (e: grpc.ServiceError) => finish(e.details || e.message));
    call.on('end', () => finish('stream ended'));
    let first = true;
    return {
      renew: (seq) => {
        if (closed) return;
        call.write(first ? { session, renew: seq } : { renew: seq });
        first = false;
      },
      close: () => finish('closed by client'),
    };
  }

  /** Send a command under a given client id and sequence number (a forwarded or retried command). */
  async executeEnvelope(envelope: Envelope): Promise<Result<unknown>> {
    const request = commandToWire(envelope.command, envelope.clientId, envelope.seq);
    const r = await this.ask<CommandReply__Output>((d, cb) => this.stub.Execute(request, { deadline: d }, cb));
    return r.ok ? resultOfReply(r.value) : r;
  }

  async execute<C extends Command>(command: C): Promise<Result<CommandValues[C['op']]>> {
    // One sequence number per command, reused by retries, so the server applies it once;
    // one command in flight per client id (see ClientLanes).
    const r = await this.lanes.run((clientId, seq) => {
      const request = commandToWire(command, clientId, seq);
      return this.ask<CommandReply__Output>((d, cb) => this.stub.Execute(request, { deadline: d }, cb));
    });
    return (r.ok ? resultOfReply(r.value) : r) as Result<CommandValues[C['op']]>;
  }
}
