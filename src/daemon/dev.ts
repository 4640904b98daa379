// `dfs dev up|down|status`: a local cluster of daemon processes on 127.0.0.1 for
// development and tests. Its state file (<dataDir>/dev.json) says what runs where.
import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lazyUnmount, listMounts } from '../fuse/mountpoint.js';

export interface DevNode {
  nodeId: string;
  pid: number;
  grpc: string;
  http: string;
  dataDir: string;
  mount: string | null;
  log: string;
}

export interface DevState {
  version: 1;
  dataDir: string;
  nodes: DevNode[];
}

export const DEFAULT_DEV_DATA_DIR = '/var/lib/dfs-dev';
export const DEFAULT_DEV_MOUNT = '/mnt/dfs';

export class DevError extends Error {}

function statePath(dataDir: string): string {
  return path.join(dataDir, 'dev.json');
}

export async function readDevState(dataDir: string): Promise<DevState | null> {
  try {
    return JSON.parse(await readFile(statePath(dataDir), 'utf8')) as DevState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new DevError(`cannot read ${statePath(dataDir)}: ${(e as Error).message}`);
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** `count` free ports at or above `from`, probing at most 1000 candidates. */
async function freePorts(from: number, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let p = from; p < from + 1000 && out.length < count; p++) if (await portFree(p)) out.push(p);
  if (out.length < count) throw new DevError(`no ${count} free ports found from ${from}`);
  return out;
}

async function pollUntil(what: string, deadlineMs: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + deadlineMs;
  let delay = 25;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 250);
  }
  throw new DevError(`timed out after ${deadlineMs} ms waiting for ${what}`);
}

async function httpReady(addr: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${addr}/readyz`, { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

/**
 * Extra Node.js flags for the daemons a dev cluster starts, from `DFS_DEV_NODE_FLAGS`
 * (space-separated, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`: flags NODE_OPTIONS refuses).
 */
function nodeFlags(): string[] {
  return (process.env.DFS_DEV_NODE_FLAGS ?? '').split(' ').filter((f) => f.length > 0);
}

function cliEntry(): string {
  // dist/src/daemon/dev.js -> dist/bin/dfs.js
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'dfs.js');
}

export interface DevUpOptions {
  nodes: number;
  mount: string | null;
  /** Mount node i at <mountAll>/<i> (1-based) too. */
  mountAll: string | null;
  dataDir: string;
  basePort: number;
  readyTimeoutMs: number;
  extraArgs: string[];
}

export async function devUp(opts: DevUpOptions): Promise<DevState> {
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1) throw new DevError('--nodes must be a positive integer');
  const existing = await readDevState(opts.dataDir);
  if (existing && existing.nodes.some((n) => alive(n.pid))) {
    throw new DevError(`a dev cluster is already running from ${opts.dataDir} (dfs dev status / dfs dev down)`);
  }
  await mkdir(opts.dataDir, { recursive: true });
  if (opts.mount) await mkdir(opts.mount, { recursive: true });
  const ports = await freePorts(opts.basePort, opts.nodes * 2);
  const nodes: DevNode[] = [];
  const state: DevState = { version: 1, dataDir: opts.dataDir, nodes };
  // Every daemon starts at once (a Raft cluster needs a quorum up to elect a leader);
  // readiness is awaited afterwards.
  const members = Array.from({ length: opts.nodes }, (_, i) => `node${i + 1}=127.0.0.1:${ports[i * 2]}`).join(',');
  for (let i = 0; i < opts.nodes; i++) {
    const nodeId = `node${i + 1}`;
    const dataDir = path.join(opts.dataDir, nodeId);
    await mkdir(dataDir, { recursive: true });
    const log = path.join(dataDir, 'daemon.log');
    const grpcAddr = `127.0.0.1:${ports[i * 2]}`;
    const httpAddr = `127.0.0.1:${ports[i * 2 + 1]}`;
    let mount = i === 0 ? opts.mount : null;
    if (opts.mountAll) {
      // With --mount-all, node i (1-based) is mounted at DIR/i, and --mount is node 1's too.
      mount = i === 0 && opts.mount ? opts.mount : path.join(opts.mountAll, String(i + 1));
    }
    if (mount) await mkdir(mount, { recursive: true });
    const args = [cliEntry(), 'daemon', '--node-id', nodeId, '--data-dir', dataDir, '--listen', grpcAddr, '--http', httpAddr, '--initial-cluster', members, ...opts.extraArgs];
    if (mount) args.push('--mount', mount);
    const fh = await open(log, 'a');
    const child = spawn(process.execPath, [...nodeFlags(), ...args], { detached: true, stdio: ['ignore', fh.fd, fh.fd] });
    await fh.close();
    child.unref();
    if (!child.pid) throw new DevError(`could not start ${nodeId}`);
    nodes.push({ nodeId, pid: child.pid, grpc: grpcAddr, http: httpAddr, dataDir, mount, log });
    await writeFile(statePath(opts.dataDir), JSON.stringify(state, null, 2) + '\n');
  }
  try {
    for (const n of nodes) {
      await pollUntil(`${n.nodeId} to be ready (log: ${n.log})`, opts.readyTimeoutMs, async () => {
        if (!alive(n.pid)) throw new DevError(`${n.nodeId} exited during start-up; see ${n.log}:\n${await tail(n.log, 5)}`);
        return httpReady(n.http);
      });
    }
  } catch (e) {
    await devDown(opts.dataDir, 10_000).catch(() => undefined);
    throw e;
  }
  return state;
}

async function tail(file: string, lines: number): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export interface DevNodeStatus extends DevNode {
  alive: boolean;
  ready: boolean;
}

export async function devStatus(dataDir: string): Promise<{ dataDir: string; nodes: DevNodeStatus[]; leader: string | null } | null> {
  const state = await readDevState(dataDir);
  if (!state) return null;
  let leader: string | null = null;
  const nodes = await Promise.all(
    state.nodes.map(async (n) => {
      const up = alive(n.pid);
      const ready = up && (await httpReady(n.http));
      if (ready && leader === null) leader = await leaderSeenBy(n.http);
      return { ...n, alive: up, ready };
    }),
  );
  return { dataDir: state.dataDir, nodes, leader };
}

/** The Raft leader as a daemon sees it (from its /api/status), or null. */
async function leaderSeenBy(http: string): Promise<string | null> {
  try {
    const res = await fetch(`http://${http}/api/status`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { leader?: unknown };
    return typeof body.leader === 'string' ? body.leader : null;
  } catch {
    return null;
  }
}

/** Stop every daemon gracefully (SIGTERM: flush, unmount, exit), SIGKILL past the deadline. */
export async function devDown(dataDir: string, timeoutMs: number): Promise<DevNode[]> {
  const state = await readDevState(dataDir);
  if (!state) return [];
  for (const n of state.nodes) {
    if (alive(n.pid)) {
      try {
        process.kill(n.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  }
  const stopped: DevNode[] = [];
  for (const n of state.nodes) {
    try {
      await pollUntil(`${n.nodeId} (pid ${n.pid}) to exit`, timeoutMs, async () => !alive(n.pid));
    } catch {
      try {
        process.kill(n.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    stopped.push(n);
  }
  const mounts = new Set((await listMounts()).map((m) => m.mountpoint));
  for (const n of state.nodes) if (n.mount && mounts.has(n.mount)) await lazyUnmount(n.mount).catch(() => undefined);
  await rm(statePath(dataDir), { force: true });
  return stopped;
}
