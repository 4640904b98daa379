// A cluster of real `dfs daemon` processes on 127.0.0.1 for the Raft tests: started,
// killed and stopped by pid; nodes either start the cluster (--initial-cluster) or join
// it later (--join + `dfs cluster add-member`).
import { expect } from 'vitest';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MetaClient } from '../../src/meta/grpc.js';
import type { RaftReport } from '../../src/daemon/cluster-ops.js';
import {
  CLI,
  type DaemonProc,
  execFileAsync,
  freePort,
  httpReady,
  killDaemon,
  removeDir,
  startDaemon,
  stopDaemon,
  tempDir,
  unmount,
  waitFor,
} from './harness.js';

export const TICK_MS = '50';

/** `dfs raft status --json` (src/daemon/cluster-ops.ts's RaftReport). */
export type RaftStatusJson = RaftReport;
export type MemberStatus = RaftReport['members'][number];

export interface Node {
  id: string;
  grpcPort: number;
  grpc: string;
  dataDir: string;
  mount: string | null;
  proc: DaemonProc | null;
  /** Joins a running cluster (--join) instead of being one of its initial members. */
  joins: boolean;
}

export function alive(p: DaemonProc | null): p is DaemonProc {
  return p !== null && p.child.exitCode === null && p.child.signalCode === null;
}

/** A cluster of `dfs daemon` processes with one --initial-cluster; the test keeps the books. */
export class RaftCluster {
  base = '';
  nodes: Node[] = [];
  /** Nodes stopped with SIGSTOP (pause): never asked by agreedLeader, resumed before teardown whatever happens. */
  readonly paused = new Set<string>();
  /** One meta client per node, to that node itself (status queries only). */
  private readonly admins = new Map<string, MetaClient>();

  constructor(
    private readonly prefix: string,
    private readonly size: number,
    private readonly mounted: string[],
    private readonly extra: string[] = [],
  ) {}

  async create(): Promise<this> {
    this.base = await tempDir(this.prefix);
    const ports = new Set<number>();
    while (ports.size < this.size) ports.add(await freePort());
    for (let i = 1; i <= this.size; i++) {
      const id = `node${i}`;
      const grpcPort = [...ports][i - 1];
      const mount = this.mounted.includes(id) ? path.join(this.base, `mnt-${id}`) : null;
      if (mount) await mkdir(mount, { recursive: true });
      this.nodes.push({ id, grpcPort, grpc: `127.0.0.1:${grpcPort}`, dataDir: path.join(this.base, `data-${id}`), mount, proc: null, joins: false });
    }
    return this;
  }

  /** A node that is not started yet and will join the running cluster (--join). */
  async addNode(id: string, opts: { mount?: boolean } = {}): Promise<Node> {
    const grpcPort = await freePort();
    const mount = opts.mount ? path.join(this.base, `mnt-${id}`) : null;
    if (mount) await mkdir(mount, { recursive: true });
    const n: Node = { id, grpcPort, grpc: `127.0.0.1:${grpcPort}`, dataDir: path.join(this.base, `data-${id}`), mount, proc: null, joins: true };
    this.nodes.push(n);
    return n;
  }

  node(id: string): Node {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  mnt(id: string): string {
    const m = this.node(id).mount;
    if (!m) throw new Error(`${id} has no mount`);
    return m;
  }

  private args(n: Node): string[] {
    const initial = this.nodes.filter((x) => !x.joins);
    const cluster = n.joins ? ['--join', initial.map((x) => x.grpc).join(',')] : ['--initial-cluster', initial.map((x) => `${x.id}=${x.grpc}`).join(',')];
    // The mount goes through extraArgs so that the harness leaves it alone: after a
    // kill -9 it is a dead FUSE mount that the restarted daemon must replace itself.
    return ['--node-id', n.id, ...cluster, '--raft-tick', TICK_MS, ...this.extra, ...(n.mount ? ['--mount', n.mount] : [])];
  }

  private spawn(n: Node): Promise<DaemonProc> {
    return startDaemon({ dataDir: n.dataDir, grpcPort: n.grpcPort, extraArgs: this.args(n), waitReady: false });
  }

  /** Start the given nodes at once (a lone member waits for a quorum before /readyz). */
  async start(ids: string[] = this.nodes.map((n) => n.id)): Promise<void> {
    const nodes = ids.map((id) => this.node(id));
    for (const n of nodes) {
      if (alive(n.proc)) throw new Error(`${n.id} is already running`);
      n.proc = await this.spawn(n);
    }
    let portRetries = 0;
    await waitFor(`${ids.join(', ')} to be ready`, 45_000, async () => {
      for (const n of nodes) {
        const p = n.proc!;
        if (p.child.exitCode === null && p.child.signalCode === null) continue;
        // The harness picks the HTTP port with freePort() just before the spawn; another
        // socket (a peer's outgoing connection) can take it first. Not a dfs failure.
        if (/EADDRINUSE|address already in use/.test(p.output()) && portRetries++ < 5) {
          n.proc = await this.spawn(n);
          continue;
        }
        throw new Error(`${n.id} exited (${p.child.exitCode ?? p.child.signalCode}): ${p.output()}`);
      }
      return (await Promise.all(nodes.map((n) => httpReady(n.proc!.http)))).every(Boolean);
    });
  }

  async kill(id: string): Promise<void> {
    const n = this.node(id);
    if (n.proc) await killDaemon(n.proc);
  }

  /** SIGTERM (a graceful stop: the daemon flushes and unmounts itself). */
  async stop(ids: string[]): Promise<void> {
    await Promise.all(
      ids.map(async (id) => {
        const n = this.node(id);
        // Past 10 s the harness sends SIGKILL, and the exit code is then null, not 0.
        if (n.proc) expect(await stopDaemon(n.proc, 10_000), `${id} exit code after SIGTERM: ${n.proc.output()}`).toBe(0);
      }),
    );
  }

  /** SIGSTOP: the process stays, frozen, until resume (or teardown). */
  pause(id: string): void {
    const p = this.node(id).proc;
    if (!alive(p)) throw new Error(`${id} is not running`);
    process.kill(p.pid, 'SIGSTOP');
    this.paused.add(id);
  }

  resume(id: string): void {
    const p = this.node(id).proc;
    if (alive(p)) process.kill(p.pid, 'SIGCONT');
    this.paused.delete(id);
  }

  liveIds(): string[] {
    return this.nodes.filter((n) => alive(n.proc)).map((n) => n.id);
  }

  /** `dfs raft status --addr <id> --json` (the CLI asks the leader when it knows one). */
  async status(id: string): Promise<RaftStatusJson> {
    const { stdout } = await execFileAsync(process.execPath, [CLI, 'raft', 'status', '--addr', this.node(id).grpc, '--json'], { timeout: 15_000 });
    return JSON.parse(stdout) as RaftStatusJson;
  }

  /**
   * Wait for a live node that reports itself leader (asked through `dfs raft status`,
   * which a follower forwards to the leader it knows).
   */
  async leader(timeoutMs = 20_000): Promise<{ id: string; status: RaftStatusJson }> {
    let found: { id: string; status: RaftStatusJson } | null = null;
    await waitFor('a raft leader', timeoutMs, async () => {
      const live = this.liveIds();
      for (const id of live) {
        const s = await this.status(id).catch(() => null);
        if (!s || !s.leader || !live.includes(s.leader)) continue;
        if (s.nodeId !== s.leader || s.role !== 'leader') continue;
        found = { id: s.leader, status: s };
        return true;
      }
      return false;
    });
    return found!;
  }

  private async admin(id: string): Promise<MetaClient> {
    let m = this.admins.get(id);
    if (!m) {
      m = await MetaClient.connect(this.node(id).grpc, { attempts: 1, deadlineMs: 1000 });
      this.admins.set(id, m);
    }
    return m;
  }

  /**
   * Wait for a leader that is not in `exclude`, as the nodes themselves see it: a node that
   * says it leads, and another node that names it leader in the same term. Each running
   * node is asked for its own Raft status over gRPC (no CLI process, no forwarding), so
   * polling is cheap and a paused node holds nothing up.
   */
  async agreedLeader(exclude: readonly string[] = [], timeoutMs = 20_000): Promise<{ id: string; term: number }> {
    let found: { id: string; term: number } | null = null;
    await waitFor(`a raft leader${exclude.length ? ` other than ${exclude.join(', ')}` : ''}`, timeoutMs, async () => {
      const askable = this.nodes.filter((n) => alive(n.proc) && !this.paused.has(n.id));
      const views = (await Promise.all(askable.map(async (n) => (await this.admin(n.id)).raftStatus().catch(() => null)))).filter((s) => s !== null);
      for (const s of views) {
        if (s.role !== 'leader' || s.leader !== s.nodeId || exclude.includes(s.nodeId)) continue;
        if (!views.some((o) => o.nodeId !== s.nodeId && o.leader === s.nodeId && o.term === s.term)) continue;
        found = { id: s.nodeId, term: s.term };
        return true;
      }
      return false;
    });
    return found!;
  }

  async apiStatus<T = { raft: { driver: { snapshotsInstalled: number; snapshotsTaken: number } } }>(id: string): Promise<T> {
    const r = await fetch(`http://${this.node(id).proc!.http}/api/status`, { signal: AbortSignal.timeout(5000) });
    return (await r.json()) as T;
  }

  /** A node's `/readyz`: its HTTP status and the body (`ready: …` / `not ready: <reason>`). */
  async readyz(id: string): Promise<{ status: number; body: string }> {
    const r = await fetch(`http://${this.node(id).proc!.http}/readyz`, { signal: AbortSignal.timeout(5000) });
    return { status: r.status, body: await r.text() };
  }

  /** A meta client that fails over between every member (the caller closes it). */
  metaClient(): Promise<MetaClient> {
    return MetaClient.connect(
      this.nodes.map((n) => n.grpc),
      { attempts: 3, deadlineMs: 10_000 },
    );
  }

  async teardown(): Promise<void> {
    for (const id of [...this.paused]) this.resume(id);
    for (const m of this.admins.values()) m.close();
    this.admins.clear();
    await Promise.all(
      this.nodes.map(async (n) => {
        if (n.proc) await stopDaemon(n.proc, 10_000).catch(() => undefined);
        // The last of each daemon's log, kept beside its data dir with DFS_KEEP_TEST_DIRS.
        if (n.proc && this.base && process.env.DFS_KEEP_TEST_DIRS) await writeFile(path.join(this.base, `${n.id}.log`), n.proc.output()).catch(() => undefined);
      }),
    );
    for (const n of this.nodes) if (n.mount) await unmount(n.mount);
    // DFS_KEEP_TEST_DIRS=1 keeps data dirs and daemon logs for a post-mortem.
    if (this.base && !process.env.DFS_KEEP_TEST_DIRS) await removeDir(this.base);
  }
}

