// Composition root: builds a daemon from its config. A server daemon opens the
// namespace (RocksDB) and the chunk store, serves both over gRPC, and may mount the
// filesystem in process. A client-only daemon (`dfs mount`) reaches a server over gRPC.
import { access, mkdir, readFile, rename, stat, statfs, writeFile, constants as fsConstants } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Server as HttpServer } from 'node:http';
import { ChunkStore } from '../chunks/store.js';
import { ChunkClient, registerChunkService, CHUNK_SERVER_OPTIONS } from '../chunks/grpc.js';
import type { ChunkApi } from '../chunks/api.js';
import { MetaStore } from '../meta/store.js';
import { RocksKV } from '../meta/rocks-kv.js';
import { MetaClient, registerMetaService } from '../meta/grpc.js';
import type { MetaApi } from '../meta/api.js';
import { Vfs, nowTimespec } from '../fuse/vfs.js';
import { DEFAULT_LAYOUT, Errno, ROOT_INO, type Command } from '../meta/types.js';
import { needsSpace } from '../meta/space.js';
import { FuseAdapter, DEFAULT_ADAPTER_OPTIONS } from '../fuse/adapter.js';
import type { DataPlane } from '../fuse/data-plane.js';
import { ClusterDataPlane } from './cluster-data-plane.js';
import { LogStore } from '../cluster/raft/log-store.js';
import { TcpTransport } from '../cluster/raft/tcp-transport.js';
import { PortMux } from '../cluster/raft/port-mux.js';
import { DEFAULT_TRANSPORT_LIMITS } from '../cluster/raft/transport.js';
import { DEFAULT_DRIVER_OPTIONS, RaftDriver, type StorageRecovery } from '../cluster/raft/driver.js';
import { realClock } from '../cluster/raft/clock.js';
import { nodeLogFs } from '../cluster/raft/log-fs.js';
import { TestFaults } from './test-faults.js';
import { loadEnvelopeCodec } from '../meta/envelope-codec.js';
import { CommandForwarder } from './forward.js';
import { NotLeader, ReplicatedMeta, metaStateMachine } from './replicated-meta.js';
import { SessionHub } from './session-hub.js';
import { DEFAULT_JANITOR_TIMINGS, SessionJanitor } from './session-janitor.js';
import { LeaderRouter } from './leader-router.js';
import { RaftAdmin } from './raft-admin.js';
import { prepareMountpoint, MountError } from '../fuse/mountpoint.js';
import { GarbageCollector } from '../cluster/gc.js';
import { Membership } from '../cluster/membership.js';
import { DEFAULT_REGISTRY_OPTIONS, NodeRegistry } from '../cluster/registry.js';
import { EventLog } from '../cluster/events.js';
import { Healer } from '../cluster/healer.js';
import { ChunkChores } from '../cluster/chores.js';
import { ConfigError, NODE_ID_RE, defaultReserveBytes, parseAddress, type DaemonConfig } from './config.js';
import { DaemonMetrics } from './metrics.js';
import { createDaemonLog, type LogStats } from './log.js';
import { startHttp } from './http.js';
import { CONSOLE_STATIC_DIR, ConsoleApi } from './http-api.js';
import { ADMIN_TOKEN_FILE, ConsoleAccess, READONLY_TOKEN_FILE } from './console-access.js';
import { MetricsHistory } from './history.js';

export const DFS_VERSION = '0.1.0';
/** How often a client-only mount refreshes the member list it fails over to. */
const MEMBER_REFRESH_MS = 10_000;
const DEFAULT_LAYOUT_REPLICAS = DEFAULT_LAYOUT.kind === 'replicas' ? DEFAULT_LAYOUT.replicas : 3;
/** How often a server daemon heartbeats the meta leader. */
const HEARTBEAT_MS = 1000;
/** A node whose storage failed retries after 200 ms, then doubling up to 5 s between tries. */
const STORAGE_RETRY_FIRST_MS = 200;
const STORAGE_RETRY_MAX_MS = 5_000;
/**
 * The daemon's gRPC server (meta + chunk services). Server-side keepalive notices a client
 * that vanished without closing its streams; these are the values the server had while it
 * also carried Raft (RAFT_SERVER_OPTIONS), kept now that Raft has its own framed transport.
 */
const GRPC_SERVER_OPTIONS: grpc.ServerOptions = {
  ...CHUNK_SERVER_OPTIONS,
  'grpc.keepalive_time_ms': DEFAULT_TRANSPORT_LIMITS.keepaliveTimeMs,
  'grpc.keepalive_timeout_ms': DEFAULT_TRANSPORT_LIMITS.keepaliveTimeoutMs,
};

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** A meta client for the current Raft leader, re-dialled when the leader moves. */
class LeaderClient {
  private current: { address: string; client: Promise<MetaClient> } | null = null;
  /** A leader learned by asking a member (this node is not one, so Raft does not tell it). */
  private asked: { address: string; atMs: number } | null = null;

  constructor(
    private readonly leaderAddress: () => string | null,
    /** Members to ask when Raft names no leader here (a chunk server that is not a member). */
    private readonly members: () => string[],
  ) {}

  async get(): Promise<MetaClient> {
    const address = this.leaderAddress() ?? (await this.askMembers());
    if (!address) throw new Error('no raft leader known');
    if (this.current?.address !== address) {
      this.close();
      this.current = { address, client: MetaClient.connect(address, { attempts: 1, deadlineMs: 5_000 }) };
    }
    return this.current.client;
  }

  private async askMembers(): Promise<string | null> {
    if (this.asked && performance.now() - this.asked.atMs < 5_000) return this.asked.address;
    for (const address of this.members()) {
      const c = await MetaClient.connect(address, { attempts: 1, deadlineMs: 2_000 });
      try {
        const s = await c.raftStatus();
        const leader = s.members.find((m) => m.nodeId === s.leader)?.address;
        if (leader) {
          this.asked = { address: leader, atMs: performance.now() };
          return leader;
        }
      } catch {
        // try the next member
      } finally {
        c.close();
      }
    }
    return null;
  }

  close(): void {
    void this.current?.client.then((c) => c.close(), () => undefined);
    this.current = null;
  }
}

/** An operating error that stops the daemon with a one-line message. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

/** `cannot listen on ADDRESS[ (what)]: address already in use` (or the errno code). */
function listenError(address: string, what: string, e: unknown): StartupError {
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'EADDRINUSE' ? 'address already in use' : (err.code ?? err.message);
  return new StartupError(`cannot listen on ${address}${what ? ` (${what})` : ''}: ${why}`);
}

/**
 * Binds `address` for a moment and lets it go. The real listeners bind only once the
 * stores are open (gRPC and Raft need them), so without this a port in use would be found
 * after a fresh data dir got its node id, Raft log and a bootstrapped cluster. A port
 * taken between the probe and the real bind still fails there, with the same message.
 */
/**
 * A port bound at start-up, before the data dir is touched, and kept: the server that
 * serves it later adopts it (no window between a check and the bind). Until then
 * `early` answers what arrives (a refused connection, a 503 `starting`).
 */
class EarlyListener<S extends net.Server> {
  private adopted = false;

  private constructor(
    readonly server: S,
    private readonly detachEarly: () => void,
  ) {}

  /** Binds `server` to `address`; `early(server)` adds the interim handler and returns its removal. */
  static async bind<S extends net.Server>(server: S, address: string, what: string, early: (server: S) => () => void): Promise<EarlyListener<S>> {
    const { host, port } = parseAddress(address, what || 'listen');
    const detach = early(server);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: host.replace(/^\[(.*)\]$/, '$1'), port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      throw listenError(address, what, e);
    }
    return new EarlyListener(server, detach);
  }

  /** The server, for its real owner (which adds its handler in the same synchronous step). */
  adopt(): S {
    this.detachEarly();
    this.adopted = true;
    return this.server;
  }

  /** Closes it unless it was adopted (its owner closes it then). */
  async closeUnadopted(): Promise<void> {
    if (!this.adopted) await new Promise((resolve) => this.server.close(resolve));
  }
}

/** Size and free space of the filesystem holding `dir` (bavail: root's blocks are not ours). */
async function diskSpace(dir: string): Promise<{ totalBytes: number; freeBytes: number }> {
  const s = await statfs(dir);
  return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
}

interface Parts {
  hub?: SessionHub;
  janitor?: SessionJanitor;
  transport?: TcpTransport;
  /** The listener of `listen`: Raft connections to the transport, the rest to gRPC. */
  mux?: PortMux;
  logStore?: LogStore;
  driver?: RaftDriver;
  router?: LeaderRouter;
  forwarder?: CommandForwarder;
  dataPlane?: ClusterDataPlane;
  leaderClient?: LeaderClient;
  replicated?: ReplicatedMeta;
  healer?: Healer;
  chores?: ChunkChores;
  kv?: RocksKV;
  meta?: MetaStore;
  chunks?: ChunkStore;
  grpcServer?: grpc.Server;
  metaClient?: MetaClient;
  chunkClient?: ChunkClient;
  vfs?: Vfs;
  fuse?: FuseAdapter;
  http?: HttpServer;
  gc?: GarbageCollector;
  metrics?: DaemonMetrics;
  /** The console API's client of this daemon's own gRPC port. */
  consoleClient?: MetaClient;
  consoleAccess?: ConsoleAccess;
  history?: MetricsHistory;
}

export class Daemon {
  private readonly parts: Parts = {};
  private ready = false;
  /** Session of a client-only daemon, closed on a graceful stop so its orphans are reaped. */
  private clientSession: string | null = null;
  private memberRefresh: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** The leader's view of the chunk servers (server daemons). */
  registry: NodeRegistry | null = null;
  /** This daemon's cluster events (the leader's are the cluster's). */
  events: EventLog | null = null;
  private stopping: Promise<void> | null = null;
  /** Free space this server keeps for itself (decision 0014); 0 for a client-only daemon. */
  reserveBytes = 0;
  /** Free bytes on the data dir's filesystem at the last heartbeat (null before the first). */
  private logFreeBytes: number | null = null;

  /** Below the reserve this node is not ready (it holds up every write of the cluster); logged once per change. */
  private noteSpace(freeBytes: number): void {
    const wasLow = this.spaceLow();
    this.logFreeBytes = freeBytes;
    const low = this.spaceLow();
    if (low && !wasLow) this.log.warn({ freeBytes, reserveBytes: this.reserveBytes }, 'free space below the reserve: new data is refused until space is freed');
    else if (!low && wasLow) this.log.info({ freeBytes, reserveBytes: this.reserveBytes }, 'free space above the reserve again');
  }

  private spaceLow(): boolean {
    return this.logFreeBytes !== null && this.reserveBytes > 0 && this.logFreeBytes < this.reserveBytes + this.config.chunkSizeBytes;
  }
  /** The `listen` and `http` ports, bound at start-up until their servers adopt them. */
  private bound: { listen?: EarlyListener<net.Server>; http?: EarlyListener<http.Server> } = {};
  /** Injected storage faults (integration tests only: DFS_TEST_FAULTS=1). */
  private testFaults: TestFaults | null = null;
  /** Failed writes of the daemon's own log (none when the caller passed a logger). */
  private logStats: (() => LogStats) | null = null;
  grpcPort = 0;
  httpPort = 0;

  private constructor(
    readonly config: DaemonConfig,
    readonly log: Logger,
    nodeId: string,
  ) {
    this.nodeId = nodeId;
  }

  /**
   * The node id lives with the data: chunk placements name it, so it must not change
   * when the daemon restarts on another port. Written once, atomically.
   */
  private static async loadNodeId(dataDir: string, wanted: string | null): Promise<string> {
    const file = path.join(dataDir, 'node.json');
    let stored: string | null = null;
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as { nodeId?: unknown };
      if (typeof parsed.nodeId !== 'string' || !NODE_ID_RE.test(parsed.nodeId)) throw new StartupError(`${file}: no valid nodeId`);
      stored = parsed.nodeId;
    } catch (e) {
      if (e instanceof StartupError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new StartupError(`cannot read ${file}: ${code ?? (e as Error).message}`);
    }
    if (stored !== null) {
      if (wanted !== null && wanted !== stored) {
        throw new StartupError(`data dir ${dataDir} belongs to node '${stored}', not '${wanted}' (remove --node-id or use the right data dir)`);
      }
      return stored;
    }
    const nodeId = wanted ?? `node-${randomBytes(4).toString('hex')}`;
    try {
      await mkdir(dataDir, { recursive: true });
      await writeFile(`${file}.tmp`, JSON.stringify({ nodeId }) + '\n');
      await rename(`${file}.tmp`, file);
    } catch (e) {
      throw new StartupError(`data dir ${dataDir} is not usable: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    return nodeId;
  }

  /** This daemon's node id (stable across restarts for a server). */
  nodeId: string;

  static async start(config: DaemonConfig, log?: Logger): Promise<Daemon> {
    // Ports first, bound and kept: nothing in the data dir may change when the daemon cannot serve.
    const bound: Daemon['bound'] = {};
    let detachedStale = false;
    let nodeId: string;
    try {
      if (config.listen) {
        bound.listen = await EarlyListener.bind(net.createServer({ noDelay: true }), config.listen, '', (server) => {
          const refuse = (socket: net.Socket): void => void socket.destroy();
          server.on('connection', refuse);
          return () => server.off('connection', refuse);
        });
      }
      if (config.http) {
        bound.http = await EarlyListener.bind(http.createServer(), config.http, 'http', (server) => {
          const starting = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
            res.writeHead(503, { 'content-type': 'text/plain' });
            res.end('not ready: starting\n');
          };
          server.on('request', starting);
          return () => server.off('request', starting);
        });
      }
      // The mount point too, once (a stale dfs mount there is detached now; a busy or missing one ends it).
      detachedStale = config.mount ? await Daemon.checkMountpoint(config.mount) : false;
      nodeId = config.dataDir ? await Daemon.loadNodeId(config.dataDir, config.nodeId) : (config.nodeId ?? 'client');
    } catch (e) {
      await bound.listen?.closeUnadopted();
      await bound.http?.closeUnadopted();
      throw e;
    }
    const own = log ? null : createDaemonLog({ level: config.logLevel, base: { node: nodeId } });
    const logger = log ?? own!.logger;
    // grpc-js logs to stderr by default ("E No address added out of total 1 resolved"
    // next to our own one-line error); its messages belong in the daemon log.
    grpc.setLogger({ error: (...args: unknown[]) => logger.warn({ module: 'grpc' }, args.map(String).join(' ')) });
    if (detachedStale) logger.warn({ mount: config.mount }, 'detached a stale dfs mount left by a previous run');
    const d = new Daemon(config, logger, nodeId);
    d.bound = bound;
    d.logStats = own ? own.stats : null;
    try {
      if (config.connect) await d.startClient();
      else await d.startServer();
    } catch (e) {
      await d.stop().catch(() => undefined);
      throw e;
    }
    return d;
  }

  private async checkDataDir(dir: string): Promise<void> {
    try {
      await mkdir(dir, { recursive: true });
      await access(dir, fsConstants.R_OK | fsConstants.W_OK | fsConstants.X_OK);
    } catch (e) {
      throw new StartupError(`data dir ${dir} is not usable: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }

  private async startServer(): Promise<void> {
    const cfg = this.config;
    const dataDir = cfg.dataDir!;
    await this.checkDataDir(dataDir);
    const chunks = await ChunkStore.open({ dataDir: path.join(dataDir, 'chunks'), logger: this.log });
    this.parts.chunks = chunks;
    const faults = TestFaults.fromEnv(dataDir);
    this.testFaults = faults;
    try {
      const kv = await RocksKV.open(path.join(dataDir, 'meta'));
      this.parts.kv = faults ? faults.kv(kv) : kv;
    } catch (e) {
      // The level API reports "Database is not open"; what went wrong is in the cause.
      const err = e as Error & { cause?: unknown };
      const cause = err.cause instanceof Error ? err.cause.message : err.cause !== undefined ? String(err.cause) : '';
      const msg = String(err.message ?? e);
      if (/lock/i.test(msg) || /lock/i.test(cause)) throw new StartupError(`data dir ${dataDir} is in use by another dfs daemon (RocksDB lock held)`);
      throw new StartupError(`cannot open namespace in ${dataDir}/meta: ${(cause || msg).split('\n')[0]}`);
    }
    // The space this daemon keeps for its Raft log, namespace and logs (decision 0014):
    // statfs shows it as used, and below it the leader refuses new data.
    const reserveBytes = cfg.reserveBytes ?? defaultReserveBytes((await diskSpace(dataDir)).totalBytes);
    this.reserveBytes = reserveBytes;
    // Chunk placement leaves the reserve free too when the chunk store shares the disk.
    const chunkReserveBytes = (await stat(path.join(dataDir, 'chunks'))).dev === (await stat(dataDir)).dev ? reserveBytes : 0;
    chunks.reserveBytes = chunkReserveBytes;
    const meta = await MetaStore.open(this.parts.kv, {
      chunkSizeBytes: cfg.chunkSizeBytes,
      capacity: async () => {
        const c = await chunks.capacity();
        const free = Math.max(0, c.freeBytes - chunkReserveBytes);
        return { totalBytes: c.totalBytes, freeBytes: free, availBytes: free };
      },
    });
    this.parts.meta = meta;
    const codec = await loadEnvelopeCodec();

    // 16 MiB segments: each start begins a fresh, zero-filled segment (no append after a
    // possibly torn tail), so smaller segments keep restarts and small disks cheap.
    const openLog = (): Promise<LogStore> =>
      LogStore.open(path.join(dataDir, 'raft'), { segmentBytes: 16 * 1024 * 1024, fs: faults ? faults.logFs(nodeLogFs) : nodeLogFs });
    let store: LogStore;
    try {
      store = await openLog();
    } catch (e) {
      throw new StartupError(`cannot open the raft log in ${dataDir}/raft: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    this.parts.logStore = store;
    // After a failed write the node stops taking part and retries with backoff; each try
    // reopens the log (and the namespace, if it failed) from disk, as a restart would.
    const recovery: StorageRecovery = {
      reopenLog: async () => {
        await this.parts.logStore?.close().catch(() => undefined);
        this.parts.logStore = undefined;
        const reopened = await openLog();
        this.parts.logStore = reopened;
        return reopened;
      },
      initialBackoffMs: STORAGE_RETRY_FIRST_MS,
      maxBackoffMs: STORAGE_RETRY_MAX_MS,
    };
    const fresh = store.lastIndex() === 0 && store.snapshotMeta().index === 0;

    // Members: the initial cluster when given; when joining, what a member reports;
    // else a single-node cluster of this daemon. After the first start the Raft
    // configuration and the replicated addresses decide (see cluster/membership.ts).
    const joining = fresh && cfg.join !== null;
    let hints: Map<string, string>;
    if (cfg.initialCluster) hints = new Map(cfg.initialCluster.map((m) => [m.nodeId, m.address]));
    else if (cfg.join) hints = joining ? await this.membersFrom(cfg.join) : new Map();
    else hints = new Map([[this.nodeId, cfg.listen!]]);
    if (joining && hints.has(this.nodeId)) {
      throw new StartupError(`node id '${this.nodeId}' is already a member of the cluster at ${cfg.join!.join(',')}; pick another --node-id or remove that member first`);
    }
    const membership = new Membership(this.nodeId, cfg.listen!, hints);
    this.membership = membership;
    if (!fresh) membership.reset(store.initialState().conf, await meta.memberAddresses());
    else if (!joining) await meta.seedMembers(hints);

    const server = new grpc.Server(GRPC_SERVER_OPTIONS);
    this.parts.grpcServer = server;
    await registerChunkService(server, chunks, { logger: this.log });

    let driver: RaftDriver | null = null;
    let forwarder: CommandForwarder | null = null;
    // Raft's framed transport (decision 0009); its connections arrive on the gRPC port
    // through the PortMux bound below, so a member's one replicated address serves both.
    const transport = new TcpTransport({
      selfId: this.nodeId,
      peers: membership.peers(),
      onMessage: (m) => driver?.receive(m),
      onApp: (from, payload) => forwarder?.onApp(from, payload),
      logger: this.log,
    });
    this.parts.transport = transport;
    membership.onChange(() => transport.setPeers(membership.peers()));
    driver = await RaftDriver.start(
      store,
      transport,
      metaStateMachine(meta, codec),
      { ...DEFAULT_DRIVER_OPTIONS, id: this.nodeId, tickMs: cfg.raftTickMs, snapshotEveryEntries: cfg.raftSnapshotEvery, logger: this.log, recovery },
      fresh && !joining ? { voters: [...hints.keys()], learners: [] } : null,
    );
    this.parts.driver = driver;
    transport.onUnreachable((p) => {
      driver?.reportUnreachable(p);
      forwarder?.peerUnreachable(p);
    });
    transport.onSnapshotDone((p, ok) => driver?.reportSnapshot(p, ok));
    driver.onLeaderChange((leader) => this.log.info({ leader }, 'raft leader changed'));
    driver.onConfChange((cc, conf) => {
      if (cc) membership.apply(cc);
      else {
        void meta.memberAddresses().then(
          (replicated) => membership.reset(conf, replicated),
          (e: unknown) => this.log.error({ err: e }, 'cannot read member addresses after a snapshot'),
        );
      }
    });
    const members = membership.addresses;
    // A cluster of one needs no election timeout to find its leader.
    if (fresh && !joining && hints.size === 1) driver.campaign();
    else if (!fresh && store.initialState().conf.voters.length === 1 && store.initialState().conf.voters[0] === this.nodeId) driver.campaign();

    // Client sessions and directory lease recalls (decision 0012); expiry goes through the log.
    const hub = new SessionHub({
      leases: meta.leases,
      leaseHeld: () => driver.canReadLocally(),
      isLeader: () => driver.leaderId === this.nodeId,
      expire: async (session) => {
        const r = await replicated.executeEnvelopeR({ clientId: '', seq: 0, command: { op: 'sessionExpire', session } });
        if (r instanceof NotLeader || !r.ok) this.log.warn({ session }, 'session expiry not applied (no longer leader?)');
      },
      now: () => performance.now(),
      log: this.log,
    });
    this.parts.hub = hub;
    driver.onLeaderChange(() => hub.tick());
    // Set once the registry exists: whether a voter's heartbeat shows it below its reserve.
    let spaceLow: () => boolean = () => false;
    let writers: () => { voters: number; faulted: number } = () => ({ voters: 0, faulted: 0 });
    const quorumCannotWrite = (): boolean => {
      const w = writers();
      return w.faulted > 0 && w.voters - w.faulted < Math.floor(w.voters / 2) + 1;
    };
    const admit = (command: Command): number | null => {
      if (needsSpace(command) && spaceLow()) return Errno.ENOSPC;
      // A quorum whose storage cannot write would only time out: say so at once.
      return quorumCannotWrite() ? Errno.EIO : null;
    };
    const replicated = new ReplicatedMeta(meta, driver, codec, this.nodeId, this.log, hub, admit);
    this.parts.replicated = replicated;
    // What clients leave behind: handles and inode ranges of silent sessions, dedup records.
    const janitor = new SessionJanitor(
      {
        isLeader: () => driver.leaderId === this.nodeId,
        now: () => performance.now(),
        lastRenewal: (session) => hub.lastRenewal(session),
        sessionsHolding: (limit) => meta.sessionsHolding(limit),
        scanClients: (cursor, limit) => meta.scanClients(cursor, limit),
        propose: async (command) => {
          const r = await replicated.executeEnvelopeR({ clientId: '', seq: 0, command });
          return !(r instanceof NotLeader) && r.ok;
        },
        log: this.log,
      },
      { ...DEFAULT_JANITOR_TIMINGS, sessionIdleMs: cfg.sessionIdleMs, clientIdleMs: cfg.clientIdleMs, passMs: Math.min(DEFAULT_JANITOR_TIMINGS.passMs, Math.max(1_000, cfg.sessionIdleMs / 5)) },
    );
    this.parts.janitor = janitor;
    replicated.onClientCommand = (id) => janitor.clientSeen(id);
    const router = new LeaderRouter(replicated, this.nodeId, () => members, this.log);
    this.parts.router = router;
    // A follower's commands reach the leader over the Raft transport, not gRPC (forward.ts).
    forwarder = new CommandForwarder(transport, replicated, codec, this.log);
    this.parts.forwarder = forwarder;
    router.useForwarder(forwarder);
    // The chunk servers as the leader sees them (heartbeats); a follower forwards.
    const leaderClient = new LeaderClient(
      () => (driver.leaderId ? (members.get(driver.leaderId) ?? null) : null),
      () => [...membership.peers().values()],
    );
    this.parts.leaderClient = leaderClient;
    const events = new EventLog(this.log);
    this.events = events;
    driver.onStorageFault((fault) => {
      if (fault && fault.attempts === 0) events.emit('storage-fault', `this node's namespace storage cannot write: ${fault.reason}`, { nodeId: this.nodeId });
      else if (!fault) events.emit('storage-recovered', "this node's namespace storage writes again; rejoined", { nodeId: this.nodeId });
    });
    const registry = new NodeRegistry(
      {
        isLeader: () => replicated.isLeader(),
        leaderId: () => driver.leaderId,
        forward: {
          heartbeat: async (req) => (await leaderClient.get()).heartbeat(req),
          view: async () => (await leaderClient.get()).clusterView(),
        },
        listNodes: () => meta.listNodes(),
        register: (node) => router.execute({ op: 'registerNode', node }),
        nowMs: () => performance.now(),
        log: this.log,
        event: (kind, message, nodeId) => {
          events.emit(kind, message, { nodeId });
          // Proposals waiting for a quorum that can no longer write are answered now (the
          // callers retry and get EIO at once), so nothing holds a directory for 20 s.
          if (kind === 'storage-fault' && quorumCannotWrite()) {
            const n = driver.abandonProposals();
            if (n > 0) this.log.warn({ proposals: n }, 'too few voters can write: waiting proposals answered');
          }
        },
      },
      { ...DEFAULT_REGISTRY_OPTIONS, deadAfterMs: cfg.deadAfterMs, storageFailedAfterMs: cfg.storageFailedAfterMs, spaceHeadroomBytes: cfg.chunkSizeBytes },
    );
    this.registry = registry;
    // The voters, kept current without asking the core for its status on every command.
    let voters = driver.status().conf.voters;
    driver.onConfChange((_change, conf) => (voters = conf.voters));
    writers = () => ({ voters: voters.length, faulted: registry.storageFaulted(voters).length });
    let lowWas: string[] = [];
    spaceLow = () => {
      const low = registry.belowReserve(voters);
      if (low.join(',') !== lowWas.join(',')) {
        if (low.length > 0) {
          this.log.warn({ nodes: low }, 'a voter is below its free-space reserve: new data is refused with ENOSPC');
          events.emit('space-low', `below the free-space reserve: ${low.join(', ')}; new data gets ENOSPC until space is freed`, { nodeId: low[0] });
        } else {
          this.log.info('every voter has its free-space reserve again: new data is accepted');
          events.emit('space-ok', 'every voter has its free-space reserve again; new data is accepted');
        }
        lowWas = low;
      }
      return low.length > 0;
    };
    const dataPlane = new ClusterDataPlane(this.nodeId, chunks, () => members, () => registry.view());
    this.parts.dataPlane = dataPlane;
    // The leader's healer: node states, repair, drain, rebalance; health and events.
    const healer = new Healer(
      {
        isLeader: () => replicated.isLeader(),
        leaderId: () => driver.leaderId,
        view: () => registry.view(),
        store: meta,
        execute: (c) => router.execute(c),
        node: (id) => dataPlane.node(id),
        events,
        log: this.log,
        forward: {
          health: async () => (await leaderClient.get()).healthStatus(),
          events: async (req) => (await leaderClient.get()).events(req),
          checkChunks: async (req) => (await leaderClient.get()).checkChunks(req),
        },
      },
      { rateBytesPerS: cfg.repairRateMBps * 1024 * 1024 },
    );
    this.parts.healer = healer;
    await registerMetaService(
      server,
      router,
      { nodeId: this.nodeId, chunkAddress: cfg.listen!, version: DFS_VERSION },
      new RaftAdmin(driver, this.nodeId, () => members, this.log),
      {
        heartbeat: (req) => registry.heartbeat(req),
        view: () => registry.view(),
        health: () => healer.health(),
        events: (req) => healer.events(req),
        checkChunks: (req) => healer.checkChunks(req),
        // The leader's hub knows the sessions; a follower asks the leader.
        sessions: async () => {
          if (replicated.isLeader()) {
            return { errno: 0, leader: this.nodeId, sessions: hub.list().map((s) => ({ session: s.session, streams: s.streams, leases: s.leases, lastRenewalAgoMs: s.lastRenewalAgoMs })) };
          }
          return (await leaderClient.get()).sessions();
        },
      },
    );
    this.grpcPort = await this.listen(server, transport, cfg.listen!);

    const isMember = (): boolean => {
      const conf = driver.status().conf;
      return conf.voters.includes(this.nodeId) || conf.learners.includes(this.nodeId);
    };
    if (isMember()) {
      // Wait (bounded) for a leader so the first operations do not all queue up on retries.
      await this.waitForLeader(driver, 30_000);
      // The bootstrap is deterministic (times 0); stamp a new root with the wall clock once.
      const root = await router.getattr(ROOT_INO);
      if (root.ok && root.value.mtime.sec === 0 && root.value.ctime.sec === 0) {
        await router.execute({ op: 'setattr', ino: ROOT_INO, set: { atime: 'now', mtime: 'now' }, now: nowTimespec() });
        // A new cluster of fewer than 3 nodes cannot hold the default 3 replicas: its root
        // starts with as many as it has nodes (change it with `dfs layout set`).
        const voters = driver.status().conf.voters.length;
        if (voters < DEFAULT_LAYOUT_REPLICAS && root.value.layout.kind === 'replicas' && root.value.layout.replicas === DEFAULT_LAYOUT_REPLICAS) {
          await router.execute({ op: 'setlayout', ino: ROOT_INO, layout: { kind: 'replicas', replicas: voters }, now: nowTimespec() });
        }
      }
    } else {
      this.log.info({ join: cfg.join }, 'not a member yet: waiting for `dfs cluster add-member` to add this node');
    }

    // Heartbeats: this node's capacity and load to the leader, every second. The first
    // one is sent now so that placement knows this node before the mount takes writes.
    const beat = async (): Promise<void> => {
      const c = await chunks.capacity();
      const fault = driver.storageFault;
      const logFreeBytes = (await diskSpace(dataDir)).freeBytes;
      this.noteSpace(logFreeBytes);
      await registry.heartbeat({
        storageFault: fault?.reason ?? '',
        storageFaultMs: fault ? Math.round(realClock.nowMs() - fault.sinceMs) : 0,
        reserveBytes,
        logFreeBytes,
        chunkReserveBytes,
        nodeId: this.nodeId,
        address: cfg.listen!,
        zone: cfg.zone,
        rack: cfg.rack,
        totalBytes: c.totalBytes,
        freeBytes: c.freeBytes,
        usedBytes: c.usedBytes,
        chunkCount: c.chunkCount,
        version: DFS_VERSION,
        corruptReads: chunks.stats().corruptDetected,
      });
    };
    if (isMember()) await withTimeout(beat(), 5_000).catch((e: unknown) => this.log.warn({ err: e }, 'first heartbeat failed; retrying every second'));
    this.heartbeatTimer = setInterval(() => {
      beat().catch((e: unknown) => this.log.debug({ err: e }, 'heartbeat failed'));
    }, HEARTBEAT_MS);
    this.heartbeatTimer.unref();

    // GC runs on the leader only: it reads the garbage list locally and commits through Raft.
    const gc = new GarbageCollector(
      { listGarbage: (limit) => (replicated.isLeader() ? meta.listGarbage(limit) : Promise.resolve([])), execute: (c) => router.execute(c) },
      (nodeId) => dataPlane.node(nodeId),
      { intervalMs: 1000, graceMs: cfg.gcGraceMs, batch: 1000 },
      this.log,
    );
    this.parts.gc = gc;
    gc.start();
    healer.start();
    // This chunk server's own chores: delete orphans (asking the leader), scrub checksums.
    const chores = new ChunkChores(
      {
        nodeId: this.nodeId,
        store: chunks,
        checkChunks: async (nodeId, chunkIds) => {
          const r = await healer.checkChunks({ nodeId, chunkIds });
          return { errno: r.errno ?? 0, orphans: (r.orphans ?? []).map(Number) };
        },
        reportBad: async (chunkId) => {
          const r = await router.execute({ op: 'reportBadCopy', chunkId, nodeId: this.nodeId });
          if (!r.ok) throw new Error(`reportBadCopy failed: errno ${r.errno}`);
        },
        event: (kind, message, fields) => events.emit(kind, message, { nodeId: this.nodeId, chunkId: fields.chunkId }),
        log: this.log,
      },
      {
        orphanGraceMs: cfg.orphanGraceMs,
        inventoryIntervalMs: cfg.inventoryIntervalMs,
        scrubBytesPerS: cfg.scrubMBps * 1024 * 1024,
        scrubPauseMs: cfg.scrubPauseMs,
      },
    );
    this.parts.chores = chores;
    chores.start();

    if (cfg.mount) {
      const mount = async (): Promise<void> => {
        // Handles left open by a previous run of this node's mount are closed first.
        await router.execute({ op: 'closeSession', session: this.nodeId });
        if (!this.stopping) this.mountVfs(router, dataPlane, this.nodeId);
      };
      if (isMember()) await mount();
      else {
        // A joining node mounts once it is a member and has the namespace.
        const unsubscribe = driver.onConfChange(() => {
          if (!isMember() || this.stopping) return;
          unsubscribe();
          void this.waitForLeader(driver, 30_000)
            .then(mount)
            .then(
              () => this.log.info({ mount: cfg.mount }, 'mounted after joining the cluster'),
              (e: unknown) => this.log.error({ err: e, mount: cfg.mount }, 'cannot mount after joining the cluster'),
            );
        });
      }
    }
    await this.startHttpIfAsked();
    this.ready = true;
    this.log.info({ listen: cfg.listen, grpcPort: this.grpcPort, http: cfg.http, httpPort: this.httpPort, mount: cfg.mount, dataDir, members: [...members.keys()] }, 'daemon ready');
  }

  /** Members of the cluster (node id → gRPC address), for status and forwarding. */
  membership: Membership | null = null;

  get members(): Map<string, string> {
    return this.membership?.addresses ?? new Map();
  }

  /** The member list of the cluster this node joins, from the first member that answers. */
  private async membersFrom(addresses: string[]): Promise<Map<string, string>> {
    const errors: string[] = [];
    for (const address of addresses) {
      let client: MetaClient | null = null;
      try {
        client = await MetaClient.connect(address, { attempts: 1, deadlineMs: 5_000 });
        const status = await client.raftStatus();
        const found = new Map((status.members ?? []).filter((m) => m.address).map((m) => [m.nodeId, m.address]));
        if (found.size > 0) return found;
        errors.push(`${address}: reports no members`);
      } catch (e) {
        errors.push(`${address}: ${(e as Error).message.split('\n')[0]}`);
      } finally {
        client?.close();
      }
    }
    throw new StartupError(`cannot join: no member of the cluster answered (${errors.join('; ')})`);
  }

  private async waitForLeader(driver: RaftDriver, timeoutMs: number): Promise<void> {
    if (driver.leaderId) return;
    let unsubscribe: () => void = () => undefined;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      unsubscribe = driver.onLeaderChange((leader) => {
        if (leader) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    unsubscribe();
    if (!driver.leaderId) this.log.warn('no raft leader yet; serving anyway (calls wait for one)');
  }

  private async startClient(): Promise<void> {
    const cfg = this.config;
    const metaClient = await MetaClient.connect(cfg.connect!);
    this.parts.metaClient = metaClient;
    try {
      await metaClient.waitReady(10_000);
    } catch {
      throw new StartupError(`cannot reach a dfs daemon at ${cfg.connect} (is it running?)`);
    }
    const info = await metaClient.info();
    // The cluster's members: the client fails over to them when its daemon stops
    // answering, and reads chunks from the member that holds them.
    const members = new Map<string, string>([[info.nodeId, info.chunkAddress || cfg.connect!]]);
    const refreshMembers = async (): Promise<void> => {
      const s = await metaClient.raftStatus();
      const found = (s.members ?? []).filter((m) => m.address && !m.isLearner);
      if (found.length === 0) return;
      members.clear();
      for (const m of found) members.set(m.nodeId, m.address);
      metaClient.setEndpoints([...members.values()]);
    };
    await refreshMembers().catch((e: unknown) => this.log.warn({ err: e }, 'cannot list the cluster members; no fail-over until they are known'));
    this.memberRefresh = setInterval(() => {
      refreshMembers().catch((e: unknown) => this.log.debug({ err: e }, 'member list refresh failed'));
    }, MEMBER_REFRESH_MS);
    this.memberRefresh.unref();
    const dataPlane = new ClusterDataPlane('', null, () => members, () => metaClient.clusterView());
    this.parts.dataPlane = dataPlane;
    const sessionId = `${this.nodeId}-${process.pid}-${Date.now().toString(36)}`;
    this.clientSession = sessionId;
    this.mountVfs(metaClient, dataPlane, sessionId);
    await this.startHttpIfAsked();
    this.ready = true;
    this.log.info({ connect: cfg.connect, server: info.nodeId, mount: cfg.mount }, 'client ready');
  }

  /** prepareMountpoint with its errors as StartupErrors; true when it detached a stale mount. */
  private static async checkMountpoint(dir: string): Promise<boolean> {
    try {
      return await prepareMountpoint(dir);
    } catch (e) {
      if (e instanceof MountError) throw new StartupError(e.message);
      throw e;
    }
  }

  private mountVfs(meta: MetaApi, dataPlane: DataPlane, sessionId: string): void {
    const cfg = this.config;
    const vfs = new Vfs(meta, dataPlane, { sessionId, logger: this.log, maxDirtyBytes: cfg.maxDirtyBytes, readCacheBytes: cfg.readCacheBytes, attrTtlMs: cfg.attrTimeoutS * 1000 });
    this.parts.vfs = vfs;
    const metrics = this.metrics();
    const fuse = new FuseAdapter(vfs, { ...DEFAULT_ADAPTER_OPTIONS, entryTimeoutS: cfg.attrTimeoutS, attrTimeoutS: cfg.attrTimeoutS }, (op, errno, start) =>
      metrics.observeFuseOp(op, errno, start),
    );
    // fsname dfs:<node>@<daemon gRPC address>: how the CLI (dfs layout, dfs info) finds the
    // daemon behind a mount from /proc/self/mounts.
    const address = cfg.listen ? cfg.listen.replace(/:0$/, `:${this.grpcPort}`) : cfg.connect!;
    try {
      fuse.mount(cfg.mount!, `dfs:${this.nodeId}@${address}`);
    } catch (e) {
      throw new StartupError(`cannot mount ${cfg.mount}: ${(e as Error).message}`);
    }
    this.parts.fuse = fuse;
    fuse.whenExited().then(() => {
      if (!this.stopping) {
        this.log.warn({ mount: cfg.mount }, 'the mount was removed from outside; stopping');
        void this.stop().then(() => process.exit(0));
      }
    });
  }

  private metrics(): DaemonMetrics {
    if (!this.parts.metrics) {
      const p = this.parts;
      this.parts.metrics = new DaemonMetrics({
        metaStats: p.meta ? () => p.meta!.stats() : undefined,
        chunkStats: p.chunks ? () => p.chunks!.stats() : undefined,
        vfs: () => {
          const v = p.vfs;
          const c = v?.cache.stats();
          return {
            dirtyBytes: v?.dirtyBytes ?? 0,
            openHandles: v?.openHandles ?? 0,
            cacheHits: c?.hits ?? 0,
            cacheMisses: c?.misses ?? 0,
            cacheBytes: c?.bytes ?? 0,
            uploads: v?.counters.uploads ?? 0,
            uploadBytes: v?.counters.uploadBytes ?? 0,
            commits: v?.counters.commits ?? 0,
            leasedDirs: v?.ns?.leasedDirs ?? 0,
            nsQueued: v?.ns?.queued ?? 0,
            nsAsyncOps: v?.ns?.counters.asyncOps ?? 0,
            nsSyncOps: v?.ns?.counters.syncOps ?? 0,
            nsBatches: v?.ns?.counters.batches ?? 0,
            nsPoisoned: v?.ns?.counters.poisoned ?? 0,
            nsRecalls: v?.ns?.counters.recalls ?? 0,
            nsTaken: v?.ns?.counters.existingTaken ?? 0,
            nsTakeFailed: v?.ns?.counters.takeFailed ?? 0,
            nsResent: v?.ns?.counters.resent ?? 0,
          };
        },
        gc: p.gc ? () => p.gc!.stats() : undefined,
        log: this.logStats ?? undefined,
      });
    }
    return this.parts.metrics;
  }

  private async startHttpIfAsked(): Promise<void> {
    if (!this.config.http) return;
    const metrics = this.metrics();
    const consoleApi = await this.consoleApi();
    try {
      const { server, port } = await startHttp(
        this.config.http,
        {
          registry: metrics.registry,
          ready: () => this.readiness(),
          status: () => this.status(),
          console: consoleApi ?? undefined,
        },
        this.bound.http?.adopt(),
      );
      this.parts.http = server;
      this.httpPort = port;
    } catch (e) {
      throw listenError(this.config.http, 'http', e);
    }
  }

  /** A server daemon's console API: its tokens (created at first start), a client of its own gRPC port. */
  private async consoleApi(): Promise<ConsoleApi | null> {
    const cfg = this.config;
    if (!cfg.dataDir || !cfg.listen) return null;
    const access = await ConsoleAccess.open(cfg.dataDir, { onAuditError: (e) => this.log.warn({ err: e }, 'console audit log: write failed') });
    this.parts.consoleAccess = access;
    this.log.info({ adminToken: path.join(cfg.dataDir, ADMIN_TOKEN_FILE), readOnlyToken: path.join(cfg.dataDir, READONLY_TOKEN_FILE) }, 'console tokens (files, mode 0600)');
    const selfAddress = cfg.listen.replace(/:0$/, `:${this.grpcPort}`);
    let client: Promise<MetaClient> | null = null;
    const connect = (): Promise<MetaClient> => {
      client ??= MetaClient.connect(selfAddress, { attempts: 2, deadlineMs: 10_000 }).then((c) => (this.parts.consoleClient = c));
      return client;
    };
    const p = this.parts;
    const history = new MetricsHistory(async () => {
      const h = await (await connect()).healthStatus().catch(() => null);
      const ok = h !== null && h.errno === 0;
      const scanned = ok && h.scanPasses > 0;
      return {
        usedBytes: ok ? h.totalBytes - h.freeBytes : null,
        totalBytes: ok ? h.totalBytes : null,
        chunksUnderProtected: scanned ? h.chunksUnderProtected : null,
        chunksLost: scanned ? h.chunksLost : null,
        repairBytesPerS: ok ? h.repairBytesPerS : null,
        rebalanceBytesPerS: ok ? h.rebalanceBytesPerS : null,
        repairQueue: ok ? h.repairQueue : null,
        raftCommit: p.driver?.status().commit ?? 0,
        chunkDiskBytesRead: p.chunks?.stats().diskBytesRead ?? 0,
        mountUploadBytes: p.vfs?.counters.uploadBytes ?? 0,
      };
    });
    p.history = history;
    history.start();
    return new ConsoleApi({
      client: connect,
      history,
      selfAddress,
      access,
      staticDir: CONSOLE_STATIC_DIR,
      log: this.log,
    });
  }

  /** Listens on `address` for gRPC and Raft (one port); returns the bound port. */
  private async listen(server: grpc.Server, transport: TcpTransport, address: string): Promise<number> {
    parseAddress(address, 'listen');
    try {
      const mux = await PortMux.listen({
        address,
        server: this.bound.listen?.adopt(),
        grpcServer: server,
        grpcCredentials: grpc.ServerCredentials.createInsecure(),
        onRaftConnection: (s) => transport.acceptConnection(s),
        logger: this.log,
      });
      this.parts.mux = mux;
      return mux.port;
    } catch (e) {
      throw listenError(address, '', e);
    }
  }

  /** `/readyz`: not ready while starting, stopping, or while this node's storage cannot write. */
  readiness(): { ready: boolean; reason: string } {
    if (this.stopping) return { ready: false, reason: 'stopping' };
    if (!this.ready) return { ready: false, reason: 'starting' };
    const fault = this.parts.driver?.storageFault;
    if (fault) return { ready: false, reason: `storage fault: ${fault.reason}` };
    if (this.spaceLow()) {
      return { ready: false, reason: `disk full: ${this.logFreeBytes} bytes free, below the reserve of ${this.reserveBytes} plus one chunk (delete files to free space)` };
    }
    return { ready: true, reason: 'serving' };
  }

  /** This node's storage fault as `/api/status` shows it, or null. */
  private storageStatus(): Record<string, unknown> | null {
    const fault = this.parts.driver?.storageFault;
    if (!fault) return null;
    const forMs = Math.round(realClock.nowMs() - fault.sinceMs);
    return { reason: fault.reason, forMs, attempts: fault.attempts, failed: forMs >= this.config.storageFailedAfterMs };
  }

  async status(): Promise<Record<string, unknown>> {
    const cfg = this.config;
    const capacity = this.parts.chunks ? await this.parts.chunks.capacity() : null;
    return {
      nodeId: this.nodeId,
      pid: process.pid,
      version: DFS_VERSION,
      role: cfg.connect ? 'client' : 'server',
      listen: cfg.listen,
      grpcPort: this.grpcPort,
      http: cfg.http,
      httpPort: this.httpPort,
      dataDir: cfg.dataDir,
      mount: cfg.mount,
      ready: this.readiness().ready,
      readyReason: this.readiness().reason,
      storageFault: this.storageStatus(),
      capacity: capacity ? { ...capacity, reserveBytes: this.reserveBytes, logFreeBytes: this.logFreeBytes, spaceLow: this.spaceLow() } : null,
      refusals: this.parts.replicated?.refusals ?? null,
      meta: this.parts.meta?.stats() ?? null,
      members: Object.fromEntries(this.members),
      leader: this.parts.driver?.leaderId ?? null,
      raft: this.parts.driver
        ? {
            ...this.parts.driver.status(),
            driver: this.parts.driver.stats,
            reads: this.parts.replicated?.readStats,
            log: this.parts.logStore?.stats(),
            transport: this.parts.transport?.stats(),
            listener: this.parts.mux?.stats(),
            // Commands this node sent to the leader (forwarded, answered, unanswered) and served as leader.
            forwarding: this.parts.forwarder?.counters,
            router: this.parts.router?.counters,
          }
        : null,
      gc: this.parts.gc?.stats() ?? null,
      log: this.logStats?.() ?? null,
      client: this.parts.vfs
        ? {
            dirtyBytes: this.parts.vfs.dirtyBytes,
            openHandles: this.parts.vfs.openHandles,
            ...this.parts.vfs.counters,
            leases: this.parts.vfs.ns ? { leasedDirs: this.parts.vfs.ns.leasedDirs, queued: this.parts.vfs.ns.queued, ...this.parts.vfs.ns.counters } : null,
          }
        : null,
      sessions: this.parts.hub ? { attached: this.parts.hub.attached, ...this.parts.hub.counters } : null,
      // Handles of silent sessions closed, dedup records expired (session-janitor.ts).
      janitor: this.parts.janitor ? { clientsRemembered: this.parts.janitor.remembered, ...this.parts.janitor.counters } : null,
    };
  }

  /** Graceful stop: flush buffered writes, unmount, stop serving, close the stores. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const p = this.parts;
    if (p.vfs) {
      const failed = await p.vfs.flushAll();
      if (failed > 0) this.log.error({ failed }, 'some open files could not be flushed before unmount');
    }
    if (p.fuse) await p.fuse.unmount();
    if (p.metaClient && this.clientSession) {
      const r = await p.metaClient.execute({ op: 'closeSession', session: this.clientSession });
      if (!r.ok) this.log.warn({ errno: r.errno }, 'could not close the client session');
    }
    if (p.gc) await p.gc.stop();
    if (p.healer) await p.healer.stop();
    if (p.chores) await p.chores.stop();
    if (p.driver) await p.driver.stop();
    p.router?.close();
    p.forwarder?.close();
    p.hub?.close();
    await p.janitor?.close();
    p.dataPlane?.close();
    p.transport?.close();
    if (p.logStore) await p.logStore.close();
    this.testFaults?.stop();
    if (p.http) {
      p.http.closeAllConnections();
      await new Promise((resolve) => p.http!.close(resolve));
    }
    await this.bound.listen?.closeUnadopted();
    await this.bound.http?.closeUnadopted();
    p.history?.stop();
    p.consoleClient?.close();
    await p.consoleAccess?.flush();
    if (p.grpcServer) {
      const server = p.grpcServer;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 5000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    // After the gRPC shutdown (which also ends the sessions the mux injected); frees the port.
    if (p.mux) await p.mux.close();
    if (this.memberRefresh) clearInterval(this.memberRefresh);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    p.leaderClient?.close();
    p.metaClient?.close();
    p.chunkClient?.close();
    p.chunks?.close();
    if (p.meta) await p.meta.close();
    else if (p.kv) await p.kv.close();
    p.metrics?.close();
    this.log.info('daemon stopped');
  }
}

export { ConfigError };
export type { ChunkApi };
