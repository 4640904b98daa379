// dfs: the one command-line entry point (commander). Operating errors print one line
// `dfs: <message>` and exit 1; usage errors exit 2.
import { Command, CommanderError, Option } from 'commander';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ConfigError, readConfigFile, validateConfig, type RawConfig } from '../src/daemon/config.js';
import { Daemon, StartupError } from '../src/daemon/daemon.js';
import { DEFAULT_DEV_DATA_DIR, DEFAULT_DEV_MOUNT, DevError, devDown, devStatus, devUp, readDevState } from '../src/daemon/dev.js';
import { parseEcScheme } from '../src/chunks/ec.js';
import {
  errnoName,
  fileInfo,
  getattrOrFail,
  InspectError,
  isDirAttr,
  layoutText,
  locateInMount,
  locateInNamespace,
  parseLayoutOptions,
  type FileInfo,
  type Located,
  wallClock,
} from '../src/daemon/inspect.js';
import { MetaClient } from '../src/meta/grpc.js';
import { Errno, ROOT_INO, S_IFMT, S_IFREG } from '../src/meta/types.js';
import {
  agoText,
  eventLine,
  EVENTS_HEADER,
  fsckSummary,
  healthJson,
  healthLines,
  humanBytes,
  nodeProblem,
  nodeRow,
  nodesTable,
  parseTimeoutMs,
  progressLine,
  statusVerdict,
  type NodeRow,
} from '../src/daemon/ops-cli.js';
import { DEFAULT_STATTER_OPTIONS, fsck, GrpcCopyStatter, whatIfLost, type FsckReport } from '../src/daemon/fsck.js';
import { DEFAULT_WALK_OPTIONS, WalkError } from '../src/daemon/ns-walk.js';
import type { HealthStatusReply__Output } from '../src/meta/gen/dfs/meta/HealthStatusReply.js';
import type { ClusterViewReply__Output } from '../src/meta/gen/dfs/meta/ClusterViewReply.js';
import type { RaftStatusReply__Output } from '../src/meta/gen/dfs/meta/RaftStatusReply.js';
import type { RaftAdminRequest } from '../src/meta/gen/dfs/meta/RaftAdminRequest.js';

class CliError extends Error {}

function fail(message: string, code = 1): never {
  process.stderr.write(`dfs: ${message}\n`);
  process.exit(code);
}

function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n') + '\n';
}

/** The daemon address a command talks to: --addr, then --data-dir's dev cluster, then DFS_ADDR. */
async function resolveAddr(opts: { addr?: string; dataDir?: string }): Promise<string> {
  if (opts.addr) return opts.addr;
  if (opts.dataDir) {
    const st = await readDevState(opts.dataDir);
    if (!st || st.nodes.length === 0) throw new CliError(`no dev cluster state in ${opts.dataDir}`);
    return st.nodes[0].grpc;
  }
  if (process.env.DFS_ADDR) return process.env.DFS_ADDR;
  const st = await readDevState(DEFAULT_DEV_DATA_DIR);
  if (st && st.nodes.length > 0) return st.nodes[0].grpc;
  throw new CliError('no cluster given: use --addr HOST:PORT, --data-dir DIR or DFS_ADDR');
}

/** Connect to the daemon `o` names, check it answers, run `fn`, close. */
async function withClient<T>(o: { addr?: string; dataDir?: string }, fn: (client: MetaClient, addr: string) => Promise<T>): Promise<T> {
  const addr = await resolveAddr(o);
  const client = await MetaClient.connect(addr, { attempts: 1, deadlineMs: 5000 });
  try {
    await client.waitReady(5000).catch(() => {
      throw new CliError(`cannot reach a dfs daemon at ${addr}`);
    });
    return await fn(client, addr);
  } finally {
    client.close();
  }
}

/** Raft status as the leader sees it (it alone knows every member's progress). */
async function leaderView(client: MetaClient): Promise<RaftStatusReply__Output> {
  const s = await client.raftStatus();
  if (!s.leader || s.leader === s.nodeId) return s;
  const leaderAddr = s.members.find((m) => m.nodeId === s.leader)?.address;
  if (!leaderAddr) return s;
  const lc = await MetaClient.connect(leaderAddr, { attempts: 1, deadlineMs: 5000 });
  try {
    return await lc.raftStatus();
  } catch {
    return s; // the follower's view is better than none
  } finally {
    lc.close();
  }
}

/** First line of a failed call's message, without grpc-js's "12 UNIMPLEMENTED: " prefix. */
function rpcText(e: unknown): string {
  const err = e as { details?: string; message?: string };
  return (err.details || err.message || String(e)).split('\n')[0];
}

function isUnimplemented(e: unknown): boolean {
  return (e as { code?: number }).code === GrpcStatus.UNIMPLEMENTED;
}

/** The leader's HealthStatus, or why there is none (one line). */
async function healthOf(client: MetaClient): Promise<{ health: HealthStatusReply__Output | null; error: string | null }> {
  try {
    const h = await client.healthStatus();
    if (h.errno !== 0) return { health: null, error: `the leader answered HealthStatus with ${errnoName(h.errno)}` };
    return { health: h, error: null };
  } catch (e) {
    if (isUnimplemented(e)) return { health: null, error: `cluster health is not served by this cluster yet (HealthStatus: ${rpcText(e)})` };
    return { health: null, error: `cannot get cluster health: ${rpcText(e)}` };
  }
}

/** The leader's view of the chunk servers, or a one-line CliError. */
async function clusterViewOrFail(client: MetaClient): Promise<ClusterViewReply__Output> {
  let v: ClusterViewReply__Output;
  try {
    v = await client.clusterView();
  } catch (e) {
    throw new CliError(isUnimplemented(e) ? `this daemon serves no cluster view (${rpcText(e)})` : `cannot get the cluster view: ${rpcText(e)}`);
  }
  if (v.errno !== 0) throw new CliError(`the leader answered ClusterView with ${errnoName(v.errno)}`);
  return v;
}

/** A namespace root for fsck: PATH in a mount, or (with --addr/--data-dir, or no PATH) a path in the namespace. */
async function withWalkRoot<T>(
  p: string | undefined,
  o: { addr?: string; dataDir?: string },
  fn: (client: MetaClient, root: { ino: number; path: string }) => Promise<T>,
): Promise<T> {
  if (p === undefined) return withClient(o, (client) => fn(client, { ino: ROOT_INO, path: '/' }));
  if (o.addr || o.dataDir) return withClient(o, async (client, addr) => fn(client, { ino: (await locateInNamespace(client, addr, p)).ino, path: p }));
  const loc = await locateInMount(p);
  return withClient({ addr: loc.address }, (client) => fn(client, { ino: loc.ino, path: p }));
}

/** A one-line progress indicator on a terminal's stderr, redrawn at most 10 times a second. */
function progressBar(enabled: boolean): { update(draw: () => string): void; clear(): void } {
  let lastMs = 0;
  let shown = false;
  return {
    update(draw) {
      if (!enabled) return;
      const now = Date.now();
      if (now - lastMs < 100) return;
      lastMs = now;
      shown = true;
      process.stderr.write(`\r\x1b[K${draw()}`);
    },
    clear() {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * PATH in a dfs mount (the daemon from the mount's fsname), or with --addr an absolute
 * path in the filesystem; then connect and run `fn` with the inode it names.
 */
async function withPath<T>(p: string, o: { addr?: string }, fn: (client: MetaClient, loc: Located) => Promise<T>): Promise<T> {
  if (o.addr) return withClient({ addr: o.addr }, async (client, addr) => fn(client, await locateInNamespace(client, addr, p)));
  const loc = await locateInMount(p);
  return withClient({ addr: loc.address }, (client) => fn(client, loc));
}

function printFileInfo(shown: string, info: FileInfo): void {
  const lines = [
    `${shown}: ${info.sizeBytes} bytes (${humanBytes(info.sizeBytes)}), layout ${layoutText(info.layout)}, chunk size ${humanBytes(info.chunkSizeBytes)}, inode ${info.ino}`,
  ];
  if (info.inline) lines.push('data: inline (stored in the namespace)');
  else if (info.chunks.length === 0) lines.push(info.sizeBytes === 0 ? 'data: none (empty file)' : 'data: no chunks (all holes, read as zeros)');
  else {
    lines.push(`chunks: ${info.chunks.length}${info.holes > 0 ? ` (+${info.holes} holes, read as zeros)` : ''}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  if (info.inline || info.chunks.length === 0) return;
  const rows = [['CHUNK', 'ID', 'SIZE', 'COPY', 'NODE', 'ADDRESS', 'HEALTH']];
  for (const ch of info.chunks) {
    for (const c of ch.copies) {
      const copy = c.kind === 'shard' && ch.ec ? `${c.number < ch.ec.k ? 'data' : 'parity'} shard ${c.number}` : `${c.kind} ${c.number}`;
      rows.push([String(ch.index), ch.chunkIdHex, humanBytes(ch.sizeBytes), copy, c.nodeId || '-', c.address ?? '?', c.health + (c.detail && c.health !== 'ok' ? ` (${c.detail})` : '')]);
    }
  }
  process.stdout.write(table(rows));
  const copies = info.chunks.reduce((n, ch) => n + ch.copies.length, 0);
  process.stdout.write(info.unhealthyCopies === 0 ? `all ${copies} copies ok\n` : `${info.unhealthyCopies} of ${copies} copies NOT ok\n`);
}

/** Most chunks listed per file in text output (--json has them all). */
const FSCK_CHUNKS_SHOWN = 3;

function printFsck(r: FsckReport): void {
  const out: string[] = [];
  for (const f of r.problems) {
    out.push(`${f.state === 'lost' ? 'LOST' : 'under-protected'}  ${f.path}`);
    for (const c of f.chunks.slice(0, FSCK_CHUNKS_SHOWN)) {
      const bad = c.copies.filter((x) => x.health !== 'ok').map((x) => `${x.nodeId || `slot ${x.slot}`}: ${x.health}${x.detail && x.health !== 'missing' ? ` (${x.detail})` : ''}`);
      out.push(`  chunk ${c.index} (${c.chunkIdHex}): ${c.good} of ${c.want} copies ok${bad.length ? `; ${bad.join(', ')}` : ''}`);
    }
    if (f.chunks.length > FSCK_CHUNKS_SHOWN) out.push(`  ... and ${f.chunks.length - FSCK_CHUNKS_SHOWN} more chunks not healthy`);
  }
  for (const x of r.repairs) {
    out.push(
      x.reported
        ? `repair: reported the ${x.health} copy of chunk ${x.chunkIdHex} on ${x.nodeId} (${x.path}); the leader re-creates it from a good copy if one is left`
        : `repair: could not report the copy of chunk ${x.chunkIdHex} on ${x.nodeId}: ${x.error}`,
    );
  }
  out.push(fsckSummary(r));
  process.stdout.write(out.join('\n') + '\n');
}

async function runDaemon(raw: RawConfig, mode: 'server' | 'client', configFile?: string): Promise<void> {
  const fromFile = configFile ? await readConfigFile(configFile) : {};
  const merged: RawConfig = { ...fromFile };
  for (const [k, v] of Object.entries(raw)) if (v !== undefined) merged[k as keyof RawConfig] = v;
  const config = validateConfig(merged, mode);
  const daemon = await Daemon.start(config);
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      daemon.log.warn({ sig }, 'second signal: exiting without a clean stop');
      process.exit(1);
    }
    daemon.log.info({ sig }, 'stopping');
    daemon.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        daemon.log.error({ err: String(e) }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

function buildProgram(): Command {
  const program = new Command();
  program.name('dfs').description('dfs: a distributed filesystem').version('0.1.0').exitOverride();

  program
    .command('daemon')
    .description('run one daemon in the foreground (meta + chunk server, optionally mounting)')
    .option('--config <file>', 'JSON config file (keys as in systemd/dfs.json.example)')
    .option('--data-dir <dir>', 'where the namespace and chunks live')
    .option('--listen <host:port>', 'gRPC address')
    .option('--http <host:port>', 'HTTP address for /healthz, /readyz, /metrics')
    .option('--mount <dir>', 'mount the filesystem here')
    .option('--node-id <id>', 'stable node id')
    .option('--log-level <level>', 'trace|debug|info|warn|error')
    .option('--chunk-size <bytes>', 'chunk size of new files')
    .option('--initial-cluster <members>', 'Raft voters of a new cluster: id=host:port,... (this node included)')
    .option('--zone <label>', 'failure-domain zone of this chunk server (placement spreads copies over zones)')
    .option('--rack <label>', 'failure-domain rack of this chunk server')
    .option('--dead-after <duration>', 'a chunk server silent this long is dead (default 30s; e.g. 45s, 2m)')
    .option('--repair-rate <MBps>', 'MB/s the leader may copy to repair, drain and rebalance (default 64)')
    .option('--orphan-grace <duration>', 'unreferenced chunk objects older than this are deleted (default 1h)')
    .option('--inventory-interval <duration>', 'pause between orphan-GC passes over this node\'s chunks (default 10m; 0 = off)')
    .option('--scrub-rate <MBps>', 'MB/s of background checksum verification (default 8; 0 = off)')
    .option('--scrub-pause <duration>', 'pause between scrub passes (default 10m)')
    .option('--join <addrs>', 'join an existing cluster through any of its members (host:port,...); then run `dfs cluster add-member`')
    .option('--raft-tick <ms>', 'Raft tick length (elections take 10-20 ticks)')
    .option('--raft-snapshot-every <n>', 'take a Raft snapshot and compact the log every N applied entries (default 20000)')
    .action(
      async (o: {
        config?: string;
        dataDir?: string;
        listen?: string;
        http?: string;
        mount?: string;
        nodeId?: string;
        logLevel?: string;
        chunkSize?: string;
        initialCluster?: string;
        join?: string;
        zone?: string;
        rack?: string;
        deadAfter?: string;
        repairRate?: string;
        orphanGrace?: string;
        inventoryInterval?: string;
        scrubRate?: string;
        scrubPause?: string;
        raftTick?: string;
        raftSnapshotEvery?: string;
      }) => {
      await runDaemon(
        {
          dataDir: o.dataDir,
          listen: o.listen,
          http: o.http,
          mount: o.mount,
          nodeId: o.nodeId,
          logLevel: o.logLevel,
          chunkSizeBytes: o.chunkSize,
          initialCluster: o.initialCluster,
          join: o.join,
          zone: o.zone,
          rack: o.rack,
          deadAfterMs: o.deadAfter,
          repairRateMBps: o.repairRate,
          orphanGraceMs: o.orphanGrace,
          inventoryIntervalMs: o.inventoryInterval,
          scrubMBps: o.scrubRate,
          scrubPauseMs: o.scrubPause,
          raftTickMs: o.raftTick,
          raftSnapshotEvery: o.raftSnapshotEvery,
        },
        'server',
        o.config,
      );
      },
    );

  program
    .command('mount')
    .description('mount a dfs cluster at DIR as a client only (stores nothing)')
    .argument('<addr>', 'address (host:port) of a dfs daemon')
    .argument('<dir>', 'mount point')
    .option('--http <host:port>', 'HTTP address for /healthz, /readyz, /metrics')
    .option('--log-level <level>', 'trace|debug|info|warn|error')
    .option('--node-id <id>', 'name of this client in logs and sessions')
    .action(async (addr: string, dir: string, o: { http?: string; logLevel?: string; nodeId?: string }) => {
      await runDaemon({ connect: addr, mount: dir, http: o.http, logLevel: o.logLevel, nodeId: o.nodeId ?? 'client' }, 'client');
    });

  program
    .command('status')
    .description(
      'state of the cluster: leader, members up, capacity, chunk servers up/suspect/dead/draining, chunks healthy/under-protected/lost, ' +
        'repair, rebalance and drain progress. Exit 1 on a known problem (no leader, a member or chunk server down, a chunk under-protected or lost); ' +
        "chunk health the leader has not scanned yet is shown as unknown and does not fail",
    )
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (o: { addr?: string; dataDir?: string; json?: boolean }) => {
      await withClient(o, async (client, addr) => {
        const raft = await leaderView(client);
        const fs = await client.statfs();
        if (!fs.ok) throw new CliError(`statfs failed: errno ${fs.errno}`);
        const nodes = raft.members.map((m) => ({
          nodeId: m.nodeId,
          address: m.address,
          state: m.nodeId === raft.leader || m.recentActive ? 'up' : 'unreachable',
          role: m.nodeId === raft.leader ? 'leader' : m.isLearner ? 'learner' : 'follower',
        }));
        const up = nodes.filter((n) => n.state === 'up').length;
        const { health, error: healthError } = await healthOf(client);
        const verdict = statusVerdict({ leader: raft.leader || null, members: nodes, health });
        const healthy = verdict.healthy;
        if (o.json) {
          printJson({
            addr,
            leader: raft.leader || null,
            term: raft.term,
            nodes,
            capacity: fs.value,
            healthy,
            problems: verdict.problems,
            chunksKnown: verdict.chunksKnown,
            health: health ? healthJson(health) : null,
            healthError,
          });
        } else {
          const lines = [
            `cluster: ${healthy ? 'healthy' : 'DEGRADED'}${verdict.problems.length ? ` (${verdict.problems.join('; ')})` : ''}  leader: ${raft.leader || '(none)'}  nodes: ${up}/${nodes.length} up`,
            `capacity: ${humanBytes(fs.value.totalBytes - fs.value.freeBytes)} used of ${humanBytes(fs.value.totalBytes)} (${humanBytes(fs.value.availBytes)} free)`,
            `files: ${fs.value.files}`,
            ...(health ? healthLines(health) : [`health: ${healthError}`]),
          ];
          process.stdout.write(lines.join('\n') + '\n');
        }
        if (!healthy) process.exitCode = 1;
      });
    });

  const nodesCmd = program
    .command('nodes')
    .description('the chunk servers: state (liveness, and draining/drained/dead), zone/rack, capacity, utilization, chunks, last heartbeat; exit 1 when any is not up, or dead or draining')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (o: { addr?: string; dataDir?: string; json?: boolean }) => {
      await withClient(o, async (client) => {
        const view = await clusterViewOrFail(client);
        const rows: Array<NodeRow & { toMove: number | null }> = view.nodes.map(nodeRow).map((r) => ({ ...r, toMove: null }));
        rows.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
        // Drain progress comes from the leader's last scan; without it the table still shows.
        if (rows.some((r) => r.adminState === 'draining')) {
          const { health } = await healthOf(client);
          for (const r of rows) r.toMove = health?.nodes.find((n) => n.nodeId === r.nodeId)?.toMove ?? null;
        }
        const problems = rows.map((r) => [r.nodeId, nodeProblem(r)] as const).filter(([, p]) => p !== null);
        if (o.json) printJson({ leader: view.leader || null, nodes: rows, healthy: problems.length === 0 });
        else if (rows.length === 0) process.stdout.write('no chunk servers have registered yet\n');
        else {
          const t = nodesTable(rows);
          if (rows.some((r) => r.adminState === 'draining')) {
            t[0].push('TO MOVE');
            rows.forEach((r, i) => t[i + 1].push(r.adminState === 'draining' ? (r.toMove === null ? '?' : String(r.toMove)) : '-'));
          }
          process.stdout.write(table(t));
          const up = rows.filter((r) => r.state === 'up').length;
          process.stdout.write(`${rows.length} node${rows.length === 1 ? '' : 's'}: ${up} up${problems.length ? `; not healthy: ${problems.map(([id, p]) => `${id} ${p}`).join(', ')}` : ''}\n`);
        }
        if (problems.length > 0) process.exitCode = 1;
      });
    });
  nodesCmd
    .command('what-if-lost')
    .description(
      'dry run: which files would lose data (no copy left: every replica, or more than m shards, on those nodes) or protection (fewer copies than the layout) ' +
        'if the given nodes died now, from where the namespace places copies and which nodes are alive. Exit 1 when any file would lose data',
    )
    .argument('<node...>', 'node ids')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (ids: string[], own: { addr?: string; dataDir?: string; json?: boolean }, cmd: Command) => {
      // `dfs nodes --addr X what-if-lost N` and `dfs nodes what-if-lost N --addr X` alike (the parent takes its options from anywhere).
      const o = cmd.optsWithGlobals<{ addr?: string; dataDir?: string; json?: boolean }>();
      void own;
      await withClient(o, async (client) => {
        const view = await clusterViewOrFail(client);
        const known = new Map(view.nodes.map((n) => [n.nodeId, { state: n.state, adminState: n.adminState || 'active' }]));
        const unknown = ids.filter((id) => !known.has(id));
        if (unknown.length > 0) {
          throw new CliError(`no chunk server named ${unknown.map((u) => `'${u}'`).join(', ')} in the cluster (known: ${[...known.keys()].sort().join(', ') || 'none'})`);
        }
        const bar = progressBar(!o.json && process.stderr.isTTY === true);
        const r = await whatIfLost(client, { ino: ROOT_INO, path: '/' }, known, new Set(ids), DEFAULT_WALK_OPTIONS, (p) =>
          bar.update(() => `what-if-lost: ${p.files} files, ${p.chunks} chunks looked at`),
        );
        bar.clear();
        const losingData = r.affected.filter((f) => f.impact === 'lose-data');
        const losingProtection = r.affected.filter((f) => f.impact === 'lose-protection');
        if (o.json) printJson({ nodes: ids, files: r.files, chunks: r.chunks, loseData: losingData.length, loseProtection: losingProtection.length, affected: r.affected });
        else {
          for (const f of r.affected) {
            const what = f.impact === 'lose-data' ? 'LOSES DATA' : 'loses protection';
            const chunks = (n: number) => `${n} chunk${n === 1 ? '' : 's'}`;
            const detail = [f.chunksLosingData ? `${chunks(f.chunksLosingData)} with no copy left` : '', f.chunksLosingProtection ? `${chunks(f.chunksLosingProtection)} below their copies` : '']
              .filter(Boolean)
              .join(', ');
            process.stdout.write(`${what.padEnd(17)} ${f.path}  (${detail})\n`);
          }
          process.stdout.write(
            `what-if-lost ${ids.join(' ')}: ${r.files} files, ${r.chunks} chunks: ${losingData.length} files would lose data, ${losingProtection.length} would lose protection\n`,
          );
        }
        if (losingData.length > 0) process.exitCode = 1;
      });
    });

  program
    .command('events')
    .description("the leader's recent cluster events (node dead, repair, rebalance, drain, scrub errors...), oldest first")
    .option('--limit <n>', 'how many of the latest events to show (1-1000)', '100')
    .option('--follow', 'keep printing new events (polls every second) until Ctrl-C')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output (with --follow: one JSON object per line)')
    .action(async (o: { limit: string; follow?: boolean; addr?: string; dataDir?: string; json?: boolean }) => {
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new CliError('--limit must be an integer from 1 to 1000');
      await withClient(o, async (client) => {
        const fetchEvents = async (afterSeq: number) => {
          try {
            const r = await client.events({ afterSeq, limit });
            if (r.errno !== 0) throw new CliError(`the leader answered Events with ${errnoName(r.errno)}`);
            return r;
          } catch (e) {
            if (e instanceof CliError) throw e;
            throw new CliError(isUnimplemented(e) ? `cluster events are not served by this cluster yet (Events: ${rpcText(e)})` : `cannot get events: ${rpcText(e)}`);
          }
        };
        const first = await fetchEvents(0);
        if (!o.follow) {
          if (o.json) printJson({ leader: first.leader || null, events: first.events });
          else if (first.events.length === 0) process.stdout.write('no events\n');
          else process.stdout.write([EVENTS_HEADER, ...first.events.map(eventLine)].join('\n') + '\n');
          return;
        }
        const show = (events: typeof first.events) => {
          for (const e of events) process.stdout.write(o.json ? JSON.stringify(e) + '\n' : eventLine(e) + '\n');
        };
        if (!o.json) process.stdout.write(EVENTS_HEADER + '\n');
        show(first.events);
        let leader = first.leader;
        let after = first.events.length ? Number(first.events[first.events.length - 1].seq) : 0;
        let lastError = '';
        process.on('SIGINT', () => process.exit(0));
        for (;;) {
          await sleep(1000);
          try {
            const r = await fetchEvents(after);
            lastError = '';
            // Each daemon numbers its own events: a new leader's list starts over.
            if (r.leader && leader && r.leader !== leader) {
              process.stderr.write(`dfs: the leader is now ${r.leader}; its events follow\n`);
              const all = await fetchEvents(0);
              show(all.events);
              after = all.events.length ? Number(all.events[all.events.length - 1].seq) : 0;
            } else {
              show(r.events);
              if (r.events.length) after = Number(r.events[r.events.length - 1].seq);
            }
            if (r.leader) leader = r.leader;
          } catch (e) {
            const msg = (e as Error).message;
            if (msg !== lastError) process.stderr.write(`dfs: ${msg} (retrying every second)\n`);
            lastError = msg;
          }
        }
      });
    });

  program
    .command('drain')
    .description(
      "move every copy off a chunk server so it can be removed: sets the node draining (the leader's healer moves its copies, never lowering protection, " +
        'and marks it drained when it holds nothing the cluster needs); --cancel makes it active again',
    )
    .argument('<node>', 'node id of the chunk server')
    .option('--cancel', 'stop draining: the node is active again (copies already moved stay moved)')
    .option('--wait', 'print progress until the node is drained')
    .option('--timeout <duration>', 'with --wait: give up (exit 1) after this long, e.g. 90s, 30m, 2h', '1h')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (node: string, o: { cancel?: boolean; wait?: boolean; timeout: string; addr?: string; dataDir?: string; json?: boolean }) => {
      const timeoutMs = parseTimeoutMs(o.timeout);
      if (timeoutMs === null || timeoutMs > 7 * 86_400_000) throw new CliError(`--timeout: expected a duration like 90s, 30m or 2h (at most 7 days), got '${o.timeout}'`);
      await withClient(o, async (client) => {
        const view = await clusterViewOrFail(client);
        const before = view.nodes.find((n) => n.nodeId === node);
        if (!before) throw new CliError(`no chunk server named '${node}' in the cluster (known: ${view.nodes.map((n) => n.nodeId).sort().join(', ') || 'none'})`);
        const target = o.cancel ? 'active' : 'draining';
        if (!o.cancel && before.adminState === 'drained') {
          if (o.json) printJson({ nodeId: node, state: 'drained', toMove: 0 });
          else process.stdout.write(`${node}: already drained; it can be removed from the cluster\n`);
          return;
        }
        const r = await client.execute({ op: 'setNodeState', nodeId: node, state: target });
        if (!r.ok) {
          if (r.errno === Errno.ENOENT) throw new CliError(`no chunk server named '${node}' in the cluster`);
          throw new CliError(`${node}: setting it ${target} failed: ${errnoName(r.errno)}`);
        }
        if (o.cancel || !o.wait) {
          if (o.json) printJson({ nodeId: node, state: target, previous: before.adminState || 'active' });
          else if (o.cancel) process.stdout.write(`${node}: active (was ${before.adminState || 'active'}); copies already moved stay where they are\n`);
          else process.stdout.write(`${node}: draining; its copies move to other nodes (progress: dfs nodes, dfs status, or dfs drain ${node} --wait)\n`);
          return;
        }
        const started = Date.now();
        let shown = '';
        for (;;) {
          const v = await clusterViewOrFail(client);
          const n = v.nodes.find((x) => x.nodeId === node);
          if (!n) throw new CliError(`${node} left the cluster's node table while draining`);
          if (n.adminState === 'drained') {
            if (o.json) printJson({ nodeId: node, state: 'drained', toMove: 0, waitedMs: Date.now() - started });
            else process.stdout.write(`${node}: drained after ${Math.round((Date.now() - started) / 1000)}s; it can be removed from the cluster\n`);
            return;
          }
          if (n.adminState !== 'draining') throw new CliError(`${node} is ${n.adminState} now, no longer draining (cancelled?)`);
          const { health, error } = await healthOf(client);
          const per = health?.nodes.find((x) => x.nodeId === node);
          // Printed when the numbers change (the scan age alone is no news).
          const key = per ? `${per.toMove}/${per.copies}` : `objects ${n.chunkCount}`;
          const line = per
            ? `${node}: draining, ${per.toMove} copies to move (${per.copies} placed on it${health && health.scanPasses > 0 ? `, scanned ${agoText(health.lastScanAgeMs)}` : ''})`
            : `${node}: draining, holds ${n.chunkCount} chunk objects (${error ?? 'no per-node progress yet'})`;
          if (key !== shown && !o.json) process.stdout.write(line + '\n');
          shown = key;
          if (Date.now() - started >= timeoutMs) throw new CliError(`${node}: still draining after ${o.timeout}; the drain goes on (dfs nodes shows it)`);
          await sleep(1000);
        }
      });
    });

  program
    .command('fsck')
    .description(
      "check the namespace against the chunk servers: every copy of every chunk of every file under PATH is asked for on its holder (exists, header, length; with --verify every block's CRC32C). " +
        'Lists files with lost data (no readable copy, or fewer than k shards) or at risk (fewer healthy copies than the layout asks), then a summary line. ' +
        'Exit 0 only when every chunk has its full protection',
    )
    .argument('[path]', 'a directory or file inside a dfs mount, or with --addr/--data-dir an absolute path in the filesystem (default: the root)')
    .option('--repair', 'report every missing, corrupt or short copy to the leader, whose repair re-creates it from a good copy')
    .option('--verify', 'read every copy whole and check its block checksums (slow: reads all data once)')
    .option('--timeout <seconds>', 'deadline of each check on a holder', '10')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (p: string | undefined, o: { repair?: boolean; verify?: boolean; timeout: string; addr?: string; dataDir?: string; json?: boolean }) => {
      const seconds = Number(o.timeout);
      if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) throw new CliError('--timeout must be a number of seconds above 0, at most 3600');
      await withWalkRoot(p, o, async (client, root) => {
        const view = await clusterViewOrFail(client);
        const nodes = new Map(view.nodes.map((n) => [n.nodeId, { address: n.address, dead: n.state === 'dead' }]));
        const statter = new GrpcCopyStatter(nodes, { ...DEFAULT_STATTER_OPTIONS, verify: o.verify === true, timeoutMs: Math.round(seconds * 1000) });
        const bar = progressBar(!o.json && process.stderr.isTTY === true);
        let report: FsckReport;
        try {
          report = await fsck(client, root, statter, {
            repair: o.repair === true,
            walk: DEFAULT_WALK_OPTIONS,
            onProgress: (c) => bar.update(() => progressLine(c, process.stderr.columns || 80)),
          });
        } finally {
          bar.clear();
          statter.close();
        }
        const ok = report.underProtected === 0 && report.lost === 0;
        if (o.json) printJson({ path: root.path, verify: o.verify === true, repair: o.repair === true, ...report, ok });
        else printFsck(report);
        if (!ok) process.exitCode = 1;
      });
    });

  const raft = program.command('raft').description('the Raft group that replicates the namespace');
  raft
    .command('status')
    .description("term, leader, commit and applied index, and each member's match index and lag")
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (o: { addr?: string; dataDir?: string; json?: boolean }) => {
      await withClient(o, async (client) => {
        const s = await leaderView(client);
        const members = s.members.map((m) => ({
          nodeId: m.nodeId,
          address: m.address,
          role: m.nodeId === s.leader ? 'leader' : m.isLearner ? 'learner' : 'follower',
          match: m.match,
          next: m.next,
          lag: Math.max(0, s.lastIndex - m.match),
          state: m.state,
          active: m.recentActive,
        }));
        if (o.json) {
          printJson({ nodeId: s.nodeId, term: s.term, leader: s.leader || null, role: s.role, commit: s.commit, applied: s.applied, lastIndex: s.lastIndex, leadTransferee: s.leadTransferee || null, members });
          return;
        }
        process.stdout.write(`term ${s.term}  leader ${s.leader || '(none)'}  commit ${s.commit}  applied ${s.applied}  last ${s.lastIndex}  (answered by ${s.nodeId})\n`);
        process.stdout.write(table([['NODE', 'ADDRESS', 'ROLE', 'MATCH', 'LAG', 'STATE'], ...members.map((m) => [m.nodeId, m.address, m.role, String(m.match), String(m.lag), m.state || '-'])]));
        if (!s.leader) process.exitCode = 1;
      });
    });
  raft
    .command('transfer-leader')
    .description('hand leadership to another voter')
    .argument('<node>', 'node id of the new leader')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (node: string, o: { addr?: string; dataDir?: string; json?: boolean }) => {
      const addr = await resolveAddr(o);
      const client = await MetaClient.connect(addr, { attempts: 1, deadlineMs: 20_000 });
      try {
        const r = await client.raftAdmin({ action: 'transfer-leader', nodeId: node });
        if (o.json) printJson({ ok: r.errno === 0, leader: r.leader || null, message: r.message });
        if (r.errno !== 0) throw new CliError(r.message);
        if (!o.json) process.stdout.write(`${r.message}\n`);
      } finally {
        client.close();
      }
    });

  const cluster = program.command('cluster').description('membership of the metadata (Raft) group');
  /** One membership admin call: prints the outcome, fails with its message. */
  const membershipCall = async (o: { addr?: string; dataDir?: string; json?: boolean }, req: RaftAdminRequest, deadlineMs: number) => {
    const addr = await resolveAddr(o);
    const client = await MetaClient.connect(addr, { attempts: 1, deadlineMs });
    try {
      const r = await client.raftAdmin(req).catch((e: Error) => {
        throw new CliError(`cannot reach a dfs daemon at ${addr}: ${e.message.split('\n')[0]}`);
      });
      if (o.json) printJson({ ok: r.errno === 0, errno: r.errno, leader: r.leader || null, message: r.message });
      if (r.errno !== 0) throw new CliError(r.message);
      if (!o.json) process.stdout.write(`${r.message}\n`);
    } finally {
      client.close();
    }
  };
  cluster
    .command('add-member')
    .description('add a node (started with `dfs daemon --join`) as a learner, then promote it to voter once it caught up')
    .argument('<node>', 'node id of the new member (its --node-id)')
    .argument('<address>', 'host:port the new member listens on (its --listen)')
    .option('--timeout <seconds>', 'how long to wait for the learner to catch up', '120')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (node: string, address: string, o: { timeout: string; addr?: string; dataDir?: string; json?: boolean }) => {
      const seconds = Number(o.timeout);
      if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400) throw new CliError('--timeout must be a number of seconds from 1 to 86400');
      await membershipCall(o, { action: 'add-member', nodeId: node, address, timeoutMs: Math.round(seconds * 1000) }, seconds * 1000 + 60_000);
    });
  cluster
    .command('remove-member')
    .description('remove a node from the metadata group (the leader hands over leadership first if it is the one removed)')
    .argument('<node>', 'node id of the member to remove')
    .option('--force', 'remove even when the remaining voters have no live quorum')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (node: string, o: { force?: boolean; addr?: string; dataDir?: string; json?: boolean }) => {
      await membershipCall(o, { action: 'remove-member', nodeId: node, force: o.force === true }, 60_000);
    });

  const layout = program
    .command('layout')
    .description('how file data is protected: R replicas or k+m erasure coding, set per directory and inherited by what is created under it');
  layout
    .command('set')
    .description('set the layout of a directory; files and directories created under it afterwards inherit it (existing files keep theirs)')
    .argument('<path>', 'a directory inside a dfs mount (or, with --addr, an absolute path in the filesystem)')
    .option('--replicas <n>', 'keep N full copies on distinct nodes (1-16)')
    .option('--ec <k+m>', 'erasure code: k data + m parity shards on distinct nodes (k 1-24, m 1-6), e.g. 6+3')
    .option('--addr <host:port>', 'a daemon of the cluster, when PATH is not in a mount')
    .option('--json', 'machine-readable output')
    .action(async (p: string, o: { replicas?: string; ec?: string; addr?: string; json?: boolean }) => {
      const wanted = parseLayoutOptions(o, parseEcScheme);
      await withPath(p, o, async (client, loc) => {
        const attr = await getattrOrFail(client, loc);
        if (!isDirAttr(attr)) throw new CliError(`${p} is not a directory: layouts are set on directories (a file keeps the layout it was created with)`);
        const r = await client.execute({ op: 'setlayout', ino: loc.ino, layout: wanted, now: wallClock() });
        if (!r.ok) {
          if (r.errno === Errno.EINVAL) throw new CliError(`the namespace refused layout ${layoutText(wanted)} for ${p}`);
          throw new CliError(`${p}: setting the layout failed: ${errnoName(r.errno)}`);
        }
        if (o.json) printJson({ path: p, ino: loc.ino, layout: r.value.layout });
        else process.stdout.write(`${p}: ${layoutText(r.value.layout)} (inherited by files and directories created under it from now on)\n`);
      });
    });
  layout
    .command('get')
    .description('the layout of a directory (what new entries under it inherit) or of a file (what its data was written with)')
    .argument('<path>', 'a file or directory inside a dfs mount (or, with --addr, an absolute path in the filesystem)')
    .option('--addr <host:port>', 'a daemon of the cluster, when PATH is not in a mount')
    .option('--json', 'machine-readable output')
    .action(async (p: string, o: { addr?: string; json?: boolean }) => {
      await withPath(p, o, async (client, loc) => {
        const attr = await getattrOrFail(client, loc);
        const type = isDirAttr(attr) ? 'directory' : (attr.mode & S_IFMT) === S_IFREG ? 'file' : 'other';
        if (o.json) printJson({ path: p, ino: loc.ino, type, layout: attr.layout });
        else process.stdout.write(`${p}: ${layoutText(attr.layout)}\n`);
      });
    });

  program
    .command('info')
    .description(
      "a file's size, layout and chunks: for each chunk its id, size and every replica/shard with its node and health " +
        '(ok, missing, corrupt, unreachable, error), checked by the holder reading the whole copy and verifying its CRC32C. ' +
        'Exit 1 when any copy is not ok.',
    )
    .argument('<file>', 'a regular file inside a dfs mount (or, with --addr, an absolute path in the filesystem)')
    .option('--no-verify', 'only ask whether each copy exists (header and length checked), without reading it all')
    .option('--timeout <seconds>', 'deadline of each check on a holder', '5')
    .option('--addr <host:port>', 'a daemon of the cluster, when FILE is not in a mount')
    .option('--json', 'machine-readable output')
    .action(async (p: string, o: { verify: boolean; timeout: string; addr?: string; json?: boolean }) => {
      const seconds = Number(o.timeout);
      if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) throw new CliError('--timeout must be a number of seconds above 0, at most 3600');
      await withPath(p, o, async (client, loc) => {
        const attr = await getattrOrFail(client, loc);
        if ((attr.mode & S_IFMT) !== S_IFREG) throw new CliError(`${p} is not a regular file${isDirAttr(attr) ? ' (for a directory, use dfs layout get)' : ''}`);
        const status = await client.raftStatus().catch((e: Error) => {
          throw new CliError(`cannot list the cluster's nodes: ${e.message.split('\n')[0]}`);
        });
        const nodes = new Map(status.members.filter((m) => m.address).map((m) => [m.nodeId, m.address]));
        const info = await fileInfo(client, attr, nodes, { verify: o.verify, timeoutMs: Math.round(seconds * 1000) });
        if (o.json) printJson({ path: p, ...info, healthy: info.unhealthyCopies === 0 });
        else printFileInfo(p, info);
        if (info.unhealthyCopies > 0) process.exitCode = 1;
      });
    });

  const dev = program.command('dev').description('a local cluster on 127.0.0.1 for development');
  dev
    .command('up')
    .description('start daemons, wait until ready, mount, print what runs where')
    .option('--nodes <n>', 'number of daemons', '1')
    .option('--mount <dir>', 'mount point', DEFAULT_DEV_MOUNT)
    .option('--no-mount', 'do not mount')
    .option('--mount-all <dir>', 'also mount node i at DIR/i')
    .option('--data-dir <dir>', 'where the daemons keep their data', DEFAULT_DEV_DATA_DIR)
    .option('--base-port <port>', 'first port to try', '7400')
    .option('--dead-after <duration>', 'a chunk server silent this long is dead (default 30s)')
    .option('--json', 'machine-readable output')
    .action(async (o: { nodes: string; mount: string | false; mountAll?: string; dataDir: string; basePort: string; deadAfter?: string; json?: boolean }) => {
      const nodes = Number(o.nodes);
      if (!Number.isInteger(nodes) || nodes < 1 || nodes > 64) throw new CliError('--nodes must be an integer from 1 to 64');
      const state = await devUp({
        nodes,
        mount: o.mount === false ? null : o.mount,
        mountAll: o.mountAll ?? null,
        dataDir: o.dataDir,
        basePort: Number(o.basePort),
        readyTimeoutMs: 60_000,
        extraArgs: o.deadAfter ? ['--dead-after', o.deadAfter] : [],
      });
      if (o.json) printJson(state);
      else {
        process.stdout.write(
          table([['NODE', 'PID', 'GRPC', 'HTTP', 'DATA DIR', 'MOUNT'], ...state.nodes.map((n) => [n.nodeId, String(n.pid), n.grpc, n.http, n.dataDir, n.mount ?? '-'])]),
        );
        process.stdout.write(`dev cluster up; logs in <data dir>/daemon.log; stop with: dfs dev down --data-dir ${o.dataDir}\n`);
      }
    });
  dev
    .command('status')
    .description('list the dev cluster daemons')
    .option('--data-dir <dir>', 'dev cluster data dir', DEFAULT_DEV_DATA_DIR)
    .option('--json', 'machine-readable output')
    .action(async (o: { dataDir: string; json?: boolean }) => {
      const st = await devStatus(o.dataDir);
      if (o.json) {
        printJson(st ?? { dataDir: o.dataDir, nodes: [], leader: null });
        return;
      }
      if (!st || st.nodes.length === 0) {
        process.stdout.write(`no dev cluster in ${o.dataDir}\n`);
        return;
      }
      process.stdout.write(
        table([
          ['NODE', 'PID', 'STATE', 'ROLE', 'GRPC', 'HTTP', 'DATA DIR', 'MOUNT'],
          ...st.nodes.map((n) => [
            n.nodeId,
            String(n.pid),
            n.ready ? 'ready' : n.alive ? 'starting' : 'dead',
            n.nodeId === st.leader ? 'leader' : n.alive ? 'follower' : '-',
            n.grpc,
            n.http,
            n.dataDir,
            n.mount ?? '-',
          ]),
        ]),
      );
      if (st.nodes.some((n) => !n.ready)) process.exitCode = 1;
    });
  dev
    .command('down')
    .description('stop the dev cluster gracefully (flush, unmount, exit)')
    .option('--data-dir <dir>', 'dev cluster data dir', DEFAULT_DEV_DATA_DIR)
    .action(async (o: { dataDir: string }) => {
      const stopped = await devDown(o.dataDir, 30_000);
      process.stdout.write(stopped.length ? `stopped ${stopped.map((n) => `${n.nodeId} (pid ${n.pid})`).join(', ')}\n` : `no dev cluster in ${o.dataDir}\n`);
    });

  program.addOption(new Option('--no-color').hideHelp());
  return program;
}

// `dfs ... | head` closes stdout early: that is not an error of ours.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') process.exit(0);
      process.exit(2);
    }
    if (e instanceof CliError || e instanceof ConfigError || e instanceof StartupError || e instanceof DevError || e instanceof InspectError || e instanceof WalkError) fail(e.message);
    fail(e instanceof Error ? (e.stack ?? e.message) : String(e));
  }
}

void main();
