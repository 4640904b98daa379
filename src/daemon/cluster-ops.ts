// The operator reads and actions that both the CLI (`dfs status`, `nodes`, `raft`, `events`,
// `drain`, `raft transfer-leader`, `cluster remove-member`, `layout set`, `info`, `nodes
// what-if-lost`) and the console's JSON API (http-api.ts) call, so the two cannot disagree.
// Each takes a MetaClient to any daemon of the cluster (a follower forwards to the leader).
// Operating errors are OpsError: a stable code (the API's JSON `code`) and a one-line message
// (the CLI's `dfs: ...` line). Formatting for a terminal stays in src/cli.
import { status as GrpcStatus } from '@grpc/grpc-js';
import { MetaClient } from '../meta/grpc.js';
import { Errno, ROOT_INO, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type Attr, type Layout, type StatFs } from '../meta/types.js';
import type { HealthStatusReply__Output } from '../meta/gen/dfs/meta/HealthStatusReply.js';
import type { ClusterViewReply__Output } from '../meta/gen/dfs/meta/ClusterViewReply.js';
import type { RaftStatusReply__Output } from '../meta/gen/dfs/meta/RaftStatusReply.js';
import type { ClusterEvent__Output } from '../meta/gen/dfs/meta/ClusterEvent.js';
import { errnoName, fileInfo, InspectError, isDirAttr, layoutText, locateInNamespace, wallClock, type FileInfo, type Located } from './inspect.js';
import { chunkVerdict, healthJson, type HealthJson, holderCounts, nodeProblem, nodeRow, statusVerdict, wantedCopies, type NodeRow, type NodeStateView } from './ops-cli.js';
import { whatIfLost, type WhatIfReport } from './fsck.js';
import { showBytes } from './names.js';
import { DEFAULT_WALK_OPTIONS, forEachChunkPage, walkFiles, type WalkOptions } from './ns-walk.js';

/** Stable codes of operating errors (docs/api/openapi.yaml lists them with their HTTP status). */
export type OpsCode =
  /** A node, member or path that does not exist. */
  | 'not_found'
  /** An argument the operation cannot take. */
  | 'invalid_argument'
  /** The cluster cannot answer now (no leader, a daemon unreachable, a call timed out). */
  | 'unavailable'
  /** The operation is refused in this state (quorum guard, not a directory...). */
  | 'failed_precondition'
  /** The daemon does not serve this (an older version). */
  | 'unimplemented'
  /** Anything else the cluster answered with (its errno in the message). */
  | 'internal';

export class OpsError extends Error {
  override name = 'OpsError';
  constructor(
    readonly code: OpsCode,
    message: string,
  ) {
    super(message);
  }
}

/** First line of a failed call's message, without grpc-js's "12 UNIMPLEMENTED: " prefix. */
export function rpcText(e: unknown): string {
  const err = e as { details?: string; message?: string };
  return (err.details || err.message || String(e)).split('\n')[0];
}

export function isUnimplemented(e: unknown): boolean {
  return (e as { code?: number }).code === GrpcStatus.UNIMPLEMENTED;
}

function sortById<T extends { nodeId: string }>(rows: T[]): T[] {
  return rows.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
}

// ---- reads ------------------------------------------------------------------------------

/** Raft status as the leader sees it (it alone knows every member's progress). */
export async function leaderView(client: MetaClient): Promise<RaftStatusReply__Output> {
  const s = await client.raftStatus().catch((e: unknown) => {
    throw new OpsError('unavailable', `cannot get the Raft status: ${rpcText(e)}`);
  });
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

/** The leader's HealthStatus, or why there is none (one line). */
export async function healthOf(client: MetaClient): Promise<{ health: HealthStatusReply__Output | null; error: string | null }> {
  try {
    const h = await client.healthStatus();
    if (h.errno !== 0) return { health: null, error: `the leader answered HealthStatus with ${errnoName(h.errno)}` };
    return { health: h, error: null };
  } catch (e) {
    if (isUnimplemented(e)) return { health: null, error: `cluster health is not served by this cluster yet (HealthStatus: ${rpcText(e)})` };
    return { health: null, error: `cannot get cluster health: ${rpcText(e)}` };
  }
}

/** The leader's view of the chunk servers, or an OpsError. */
export async function clusterViewOrFail(client: MetaClient): Promise<ClusterViewReply__Output> {
  let v: ClusterViewReply__Output;
  try {
    v = await client.clusterView();
  } catch (e) {
    if (isUnimplemented(e)) throw new OpsError('unimplemented', `this daemon serves no cluster view (${rpcText(e)})`);
    throw new OpsError('unavailable', `cannot get the cluster view: ${rpcText(e)}`);
  }
  if (v.errno !== 0) throw new OpsError(v.errno === Errno.EAGAIN ? 'unavailable' : 'internal', `the leader answered ClusterView with ${errnoName(v.errno)}`);
  return v;
}

export type MemberRole = 'leader' | 'learner' | 'follower';

export interface StatusReport {
  addr: string;
  leader: string | null;
  term: number;
  /** The Raft members: up when the leader hears from them; a storage fault or a disk below its reserve (issue 16) says so, with `problem`. */
  nodes: Array<{ nodeId: string; address: string; state: 'up' | 'unreachable' | 'storage fault' | 'disk full'; role: MemberRole; problem?: string }>;
  capacity: StatFs;
  healthy: boolean;
  problems: string[];
  chunksKnown: boolean;
  health: HealthJson | null;
  healthError: string | null;
}

/** `dfs status --json` and the console's overview: leader, members, capacity, chunk health. */
export async function clusterStatus(client: MetaClient, addr: string): Promise<StatusReport> {
  return (await clusterStatusWithHealth(client, addr)).report;
}

/** clusterStatus, with the leader's HealthStatus as it came (for the CLI's text lines). */
export async function clusterStatusWithHealth(client: MetaClient, addr: string): Promise<{ report: StatusReport; health: HealthStatusReply__Output | null }> {
  const raft = await leaderView(client);
  const fs = await client.statfs().catch((e: unknown) => {
    throw new OpsError('unavailable', `statfs failed: ${rpcText(e)}`);
  });
  if (!fs.ok) throw new OpsError('unavailable', `statfs failed: errno ${fs.errno}`);
  // A member whose storage cannot write or whose disk is below its reserve is reported by its heartbeats.
  const problems = new Map((await client.clusterView().catch(() => null))?.nodes.map((n) => [n.nodeId, nodeProblem(nodeRow(n))] as const) ?? []);
  const nodes: StatusReport['nodes'] = raft.members.map((m) => {
    const problem = problems.get(m.nodeId);
    const disk = problem?.startsWith('storage fault') ? ('storage fault' as const) : problem?.startsWith('disk full') ? ('disk full' as const) : null;
    return {
      nodeId: m.nodeId,
      address: m.address,
      state: disk ?? (m.nodeId === raft.leader || m.recentActive ? ('up' as const) : ('unreachable' as const)),
      role: (m.nodeId === raft.leader ? 'leader' : m.isLearner ? 'learner' : 'follower') as MemberRole,
      ...(disk && problem ? { problem } : {}),
    };
  });
  const { health, error: healthError } = await healthOf(client);
  const verdict = statusVerdict({ leader: raft.leader || null, members: nodes, health });
  const report: StatusReport = {
    addr,
    leader: raft.leader || null,
    term: raft.term,
    nodes,
    capacity: fs.value,
    healthy: verdict.healthy,
    problems: verdict.problems,
    chunksKnown: verdict.chunksKnown,
    health: health ? healthJson(health) : null,
    healthError,
  };
  return { report, health };
}

export interface NodesReport {
  leader: string | null;
  /** `toMove`: copies still to move off a draining node (null when not draining or unknown). */
  nodes: Array<NodeRow & { toMove: number | null }>;
  healthy: boolean;
  /** The nodes that make `dfs nodes` exit 1, with why. */
  problems: Array<{ nodeId: string; problem: string }>;
}

/** `dfs nodes --json` and the console's Nodes page. */
export async function nodesReport(client: MetaClient): Promise<NodesReport> {
  const view = await clusterViewOrFail(client);
  const rows = sortById(view.nodes.map(nodeRow).map((r) => ({ ...r, toMove: null as number | null })));
  // Drain progress comes from the leader's last scan; without it the table still shows.
  if (rows.some((r) => r.adminState === 'draining')) {
    const { health } = await healthOf(client);
    for (const r of rows) r.toMove = health?.nodes.find((n) => n.nodeId === r.nodeId)?.toMove ?? null;
  }
  const problems = rows.flatMap((r) => {
    const p = nodeProblem(r);
    return p === null ? [] : [{ nodeId: r.nodeId, problem: p }];
  });
  return { leader: view.leader || null, nodes: rows, healthy: problems.length === 0, problems };
}

export interface RaftReport {
  nodeId: string;
  term: number;
  leader: string | null;
  role: string;
  commit: number;
  applied: number;
  lastIndex: number;
  leadTransferee: string | null;
  members: Array<{ nodeId: string; address: string; role: MemberRole; match: number; next: number; lag: number; state: string; active: boolean }>;
}

/** `dfs raft status --json` and the console's Raft page (the leader's view when it answers). */
export async function raftReport(client: MetaClient): Promise<RaftReport> {
  const s = await leaderView(client);
  return {
    nodeId: s.nodeId,
    term: s.term,
    leader: s.leader || null,
    role: s.role,
    commit: s.commit,
    applied: s.applied,
    lastIndex: s.lastIndex,
    leadTransferee: s.leadTransferee || null,
    members: s.members.map((m) => ({
      nodeId: m.nodeId,
      address: m.address,
      role: m.nodeId === s.leader ? 'leader' : m.isLearner ? 'learner' : 'follower',
      match: m.match,
      next: m.next,
      lag: Math.max(0, s.lastIndex - m.match),
      state: m.state,
      active: m.recentActive,
    })),
  };
}

export type EventView = Pick<ClusterEvent__Output, 'seq' | 'timeMs' | 'kind' | 'nodeId' | 'chunkId' | 'message'>;

/** The leader's events after `afterSeq` (oldest first, at most `limit`), and who the leader is. */
export async function eventsPage(client: MetaClient, afterSeq: number, limit: number): Promise<{ leader: string | null; events: EventView[] }> {
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new OpsError('invalid_argument', 'limit must be an integer from 1 to 1000');
  try {
    const r = await client.events({ afterSeq, limit });
    if (r.errno !== 0) throw new OpsError('unavailable', `the leader answered Events with ${errnoName(r.errno)}`);
    return { leader: r.leader || null, events: r.events };
  } catch (e) {
    if (e instanceof OpsError) throw e;
    if (isUnimplemented(e)) throw new OpsError('unimplemented', `cluster events are not served by this cluster yet (Events: ${rpcText(e)})`);
    throw new OpsError('unavailable', `cannot get events: ${rpcText(e)}`);
  }
}

/** `dfs nodes what-if-lost` and the console's what-if: which files lose data or protection if `ids` died now. */
export async function whatIfLostReport(client: MetaClient, ids: string[], onProgress?: (r: WhatIfReport) => void): Promise<WhatIfReport & { nodes: string[]; loseData: number; loseProtection: number }> {
  if (ids.length === 0) throw new OpsError('invalid_argument', 'name at least one node');
  const view = await clusterViewOrFail(client);
  const known = new Map(view.nodes.map((n) => [n.nodeId, { state: n.state, adminState: n.adminState || 'active' }]));
  const unknown = ids.filter((id) => !known.has(id));
  if (unknown.length > 0) {
    throw new OpsError('not_found', `no chunk server named ${unknown.map((u) => `'${u}'`).join(', ')} in the cluster (known: ${[...known.keys()].sort().join(', ') || 'none'})`);
  }
  const r = await whatIfLost(client, { ino: ROOT_INO, path: '/' }, known, new Set(ids), DEFAULT_WALK_OPTIONS, onProgress);
  const loseData = r.affected.filter((f) => f.impact === 'lose-data').length;
  // Names as shown to a person: control characters and non-UTF-8 bytes escaped (names.ts).
  const affected = r.affected.map((f) => ({ ...f, path: showBytes(f.path) }));
  return { nodes: ids, ...r, affected, loseData, loseProtection: r.affected.length - loseData };
}

export interface SessionRow {
  session: string;
  /** Streams open to the leader now (0: not connected). */
  streams: number;
  leases: number;
  /** Ms since the leader acknowledged a renewal; null when it has not since it became leader. */
  lastRenewalAgoMs: number | null;
}

/** `dfs clients` and the console's Clients page: the mounts' sessions as the leader knows them. */
export async function sessionsReport(client: MetaClient): Promise<{ leader: string | null; sessions: SessionRow[] }> {
  try {
    const r = await client.sessions();
    if (r.errno !== 0) throw new OpsError('unavailable', `the leader answered Sessions with ${errnoName(r.errno)}`);
    return {
      leader: r.leader || null,
      sessions: r.sessions.map((s) => ({ session: s.session, streams: s.streams, leases: s.leases, lastRenewalAgoMs: Number(s.lastRenewalAgoMs) < 0 ? null : Number(s.lastRenewalAgoMs) })),
    };
  } catch (e) {
    if (e instanceof OpsError) throw e;
    if (isUnimplemented(e)) throw new OpsError('unimplemented', `client sessions are not served by this cluster yet (Sessions: ${rpcText(e)})`);
    throw new OpsError('unavailable', `cannot get the client sessions: ${rpcText(e)}`);
  }
}

/** One cell of the protection matrix: chunks of a layout kind that want `want` copies and have `valid`. */
export interface ProtectionCell {
  /** 'replicas' or the EC scheme ('ec 4+2'). */
  scheme: string;
  want: number;
  valid: number;
  state: 'healthy' | 'under-protected' | 'lost';
  chunks: number;
  /** Files with at least one chunk in this cell. */
  files: number;
}

export interface ProtectionMatrix {
  files: number;
  chunks: number;
  cells: ProtectionCell[];
  /** Paths per cell key (`scheme/want/valid`), sorted, at most `maxPathsPerCell` each. */
  paths: Map<string, string[]>;
  /** Cells whose path list was cut at the bound. */
  truncated: string[];
}

export interface ProtectionCounts {
  /** The leader has finished a full scan (else there are no cells yet). */
  scanned: boolean;
  lastScanAgeMs: number;
  chunks: number;
  cells: Array<Omit<ProtectionCell, 'files'>>;
}

/**
 * The protection matrix's counts from the leader's last full scan of the chunk refs (cheap at
 * any size; the healer counts a copy valid when it can be read: suspect holders count, dead,
 * drained and reported-bad ones do not). Which files are behind a cell needs a walk:
 * protectionMatrix.
 */
export async function protectionCounts(client: MetaClient): Promise<ProtectionCounts> {
  const { health, error } = await healthOf(client);
  if (!health) throw new OpsError('unavailable', error ?? 'no cluster health');
  const cells = (health.protection ?? []).map((p) => {
    const needToRead = p.scheme.startsWith('ec ') ? Number(/^ec (\d+)\+/.exec(p.scheme)?.[1] ?? 1) : 1;
    const state: ProtectionCell['state'] = p.valid < needToRead ? 'lost' : p.valid < p.want ? 'under-protected' : 'healthy';
    return { scheme: p.scheme, want: p.want, valid: p.valid, state, chunks: Number(p.chunks) };
  });
  cells.sort((a, b) => (a.scheme < b.scheme ? -1 : a.scheme > b.scheme ? 1 : a.want - b.want || a.valid - b.valid));
  return { scanned: health.scanPasses > 0, lastScanAgeMs: health.lastScanAgeMs, chunks: cells.reduce((n, c) => n + c.chunks, 0), cells };
}

export const cellKey = (c: Pick<ProtectionCell, 'scheme' | 'want' | 'valid'>): string => `${c.scheme}/${c.want}/${c.valid}`;

/**
 * Wanted × valid copies for every chunk under the root (MooseFS's goal matrix), from where the
 * namespace places copies and which nodes the leader sees alive (no chunk server is asked:
 * `dfs fsck` does that). Bounded like fsck's walk; at most `maxPathsPerCell` paths kept per cell.
 */
export async function protectionMatrix(client: MetaClient, maxPathsPerCell = 10_000, walk: WalkOptions = DEFAULT_WALK_OPTIONS): Promise<ProtectionMatrix> {
  const view = await clusterViewOrFail(client);
  const nodes = new Map<string, NodeStateView>(view.nodes.map((n) => [n.nodeId, { state: n.state, adminState: n.adminState || 'active' }]));
  const cells = new Map<string, ProtectionCell>();
  const paths = new Map<string, string[]>();
  const truncated = new Set<string>();
  const out: ProtectionMatrix = { files: 0, chunks: 0, cells: [], paths, truncated: [] };
  await walkFiles(
    client,
    { ino: ROOT_INO, path: '/' },
    async (f) => {
      out.files++;
      // An empty file has no chunk to protect: no GetChunks round trip for it.
      if (f.attr.size === 0) return;
      const touched = new Set<string>();
      await forEachChunkPage(client, f.attr, async (refs) => {
        for (const ref of refs) {
          if (ref.inline !== undefined || ref.placement.length === 0) continue;
          out.chunks++;
          const v = chunkVerdict(ref, f.attr.layout, (h) => holderCounts(nodes.get(h)));
          const scheme = ref.ec ? `ec ${ref.ec.k}+${ref.ec.m}` : 'replicas';
          const key = cellKey({ scheme, want: wantedCopies(ref, f.attr.layout).want, valid: v.good });
          let cell = cells.get(key);
          if (!cell) {
            cell = { scheme, want: v.want, valid: v.good, state: v.state, chunks: 0, files: 0 };
            cells.set(key, cell);
          }
          cell.chunks++;
          if (!touched.has(key)) {
            touched.add(key);
            cell.files++;
            const list = paths.get(key) ?? [];
            paths.set(key, list);
            if (list.length < maxPathsPerCell) list.push(f.path);
            else truncated.add(key);
          }
        }
      });
    },
    walk,
  );
  out.cells = [...cells.values()].sort((a, b) => (a.scheme < b.scheme ? -1 : a.scheme > b.scheme ? 1 : a.want - b.want || a.valid - b.valid));
  for (const list of paths.values()) list.sort();
  out.truncated = [...truncated].sort();
  return out;
}

// ---- paths --------------------------------------------------------------------------------

/** An absolute path in the namespace → its inode (inspect.ts's lookups from the root, symlinks not followed). */
export async function resolvePath(client: MetaClient, address: string, nsPath: string): Promise<Located> {
  if (!nsPath.startsWith('/')) throw new OpsError('invalid_argument', `a path in the filesystem starts with '/', not '${nsPath}'`);
  try {
    return await locateInNamespace(client, address, nsPath);
  } catch (e) {
    if (!(e instanceof InspectError)) throw new OpsError('unavailable', `${nsPath}: ${rpcText(e)}`);
    throw new OpsError(/no such file or directory$/.test(e.message) ? 'not_found' : 'invalid_argument', e.message);
  }
}

export async function getattrAt(client: MetaClient, loc: Located): Promise<Attr> {
  const r = await client.getattr(loc.ino);
  if (!r.ok) throw new OpsError(r.errno === Errno.ENOENT ? 'not_found' : 'internal', `${loc.shown}: getattr failed: ${errnoName(r.errno)}`);
  return r.value;
}

export type EntryType = 'file' | 'directory' | 'symlink' | 'other';

export function entryType(mode: number): EntryType {
  const t = mode & S_IFMT;
  return t === S_IFREG ? 'file' : t === S_IFDIR ? 'directory' : t === S_IFLNK ? 'symlink' : 'other';
}

export interface DirEntryView {
  name: string;
  ino: number;
  type: EntryType;
  sizeBytes: number;
  mode: number;
  mtimeMs: number;
  layout: string;
}

/** One page of a directory, names after `after` in the namespace's order, with each entry's attributes. */
export async function listDirectory(client: MetaClient, loc: Located, after: string | null, limit: number): Promise<{ entries: DirEntryView[]; next: string | null }> {
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new OpsError('invalid_argument', 'limit must be an integer from 1 to 1000');
  const page = await client.readdir(loc.ino, after, limit);
  if (!page.ok) {
    if (page.errno === Errno.ENOTDIR) throw new OpsError('failed_precondition', `${loc.shown} is not a directory`);
    throw new OpsError(page.errno === Errno.ENOENT ? 'not_found' : 'internal', `${loc.shown}: readdir failed: ${errnoName(page.errno)}`);
  }
  const entries = page.value.entries.map(
    (e): DirEntryView => ({
      name: e.name,
      ino: e.ino,
      type: entryType(e.attr.mode),
      sizeBytes: e.attr.size,
      mode: e.attr.mode,
      mtimeMs: e.attr.mtime.sec * 1000 + Math.floor(e.attr.mtime.nsec / 1e6),
      layout: layoutText(e.attr.layout),
    }),
  );
  const last = page.value.entries.at(-1);
  return { entries, next: page.value.done || !last ? null : last.name };
}

/** `dfs info` and the console's file view: size, layout, chunks and each copy's health. */
export async function fileInfoAt(client: MetaClient, loc: Located, attr: Attr, opts: { verify: boolean; timeoutMs: number }): Promise<FileInfo> {
  if ((attr.mode & S_IFMT) !== S_IFREG) throw new OpsError('failed_precondition', `${loc.shown} is not a regular file${isDirAttr(attr) ? ' (for a directory, use dfs layout get)' : ''}`);
  const status = await client.raftStatus().catch((e: unknown) => {
    throw new OpsError('unavailable', `cannot list the cluster's nodes: ${rpcText(e)}`);
  });
  const nodes = new Map(status.members.filter((m) => m.address).map((m) => [m.nodeId, m.address]));
  return fileInfo(client, attr, nodes, opts);
}

// ---- actions ------------------------------------------------------------------------------

export interface DrainResult {
  nodeId: string;
  state: 'draining' | 'active' | 'drained';
  previous: string;
  /** The node was drained already: nothing was changed. */
  alreadyDrained: boolean;
}

/** `dfs drain NODE [--cancel]` and the console's drain / cancel drain. */
export async function setDrain(client: MetaClient, node: string, cancel: boolean): Promise<DrainResult> {
  const view = await clusterViewOrFail(client);
  const before = view.nodes.find((n) => n.nodeId === node);
  if (!before) throw new OpsError('not_found', `no chunk server named '${node}' in the cluster (known: ${view.nodes.map((n) => n.nodeId).sort().join(', ') || 'none'})`);
  const previous = before.adminState || 'active';
  if (!cancel && previous === 'drained') return { nodeId: node, state: 'drained', previous, alreadyDrained: true };
  const target = cancel ? 'active' : 'draining';
  const r = await client.execute({ op: 'setNodeState', nodeId: node, state: target }).catch((e: unknown) => {
    throw new OpsError('unavailable', `${node}: setting it ${target} failed: ${rpcText(e)}`);
  });
  if (!r.ok) {
    if (r.errno === Errno.ENOENT) throw new OpsError('not_found', `no chunk server named '${node}' in the cluster`);
    throw new OpsError('internal', `${node}: setting it ${target} failed: ${errnoName(r.errno)}`);
  }
  return { nodeId: node, state: target, previous, alreadyDrained: false };
}

export interface RaftAdminResult {
  ok: true;
  leader: string | null;
  message: string;
}

/** The leader waits up to 10 s for a transfer (raft-admin.ts); a forwarded call adds its hop. */
export const TRANSFER_DEADLINE_MS = 20_000;
export const REMOVE_MEMBER_DEADLINE_MS = 60_000;

/** Errnos RaftAdmin answers with, as codes. */
function raftAdminCode(errno: number): OpsCode {
  if (errno === Errno.ENOENT) return 'not_found';
  if (errno === Errno.EINVAL) return 'invalid_argument';
  if (errno === Errno.EAGAIN || errno === Errno.ETIMEDOUT) return 'unavailable';
  if (errno === Errno.ENOSYS) return 'unimplemented';
  return 'failed_precondition';
}

async function raftAdminCall(client: MetaClient, via: string, what: string, req: { action: string; nodeId: string; force?: boolean }): Promise<RaftAdminResult> {
  const r = await client.raftAdmin(req).catch((e: unknown) => {
    throw new OpsError('unavailable', `cannot ${what} through ${via}: ${rpcText(e)}`);
  });
  if (r.errno !== 0) throw new OpsError(raftAdminCode(r.errno), r.message);
  return { ok: true, leader: r.leader || null, message: r.message };
}

/** `dfs raft transfer-leader NODE` and the console's transfer leadership. */
export function transferLeader(client: MetaClient, via: string, node: string): Promise<RaftAdminResult> {
  return raftAdminCall(client, via, `transfer leadership to ${node}`, { action: 'transfer-leader', nodeId: node });
}

/** `dfs cluster remove-member NODE [--force]` and the console's remove member (the leader's quorum guard refuses without --force). */
export function removeMember(client: MetaClient, via: string, node: string, force: boolean): Promise<RaftAdminResult> {
  return raftAdminCall(client, via, `remove ${node}`, { action: 'remove-member', nodeId: node, force });
}

/** `dfs layout set` and the console's layout change: a directory's layout, inherited by what is created under it. */
export async function setLayout(client: MetaClient, loc: Located, wanted: Layout): Promise<{ path: string; ino: number; layout: Layout }> {
  const attr = await getattrAt(client, loc);
  if (!isDirAttr(attr)) throw new OpsError('failed_precondition', `${loc.shown} is not a directory: layouts are set on directories (a file keeps the layout it was created with)`);
  const r = await client.execute({ op: 'setlayout', ino: loc.ino, layout: wanted, now: wallClock() });
  if (!r.ok) {
    if (r.errno === Errno.EINVAL) throw new OpsError('invalid_argument', `the namespace refused layout ${layoutText(wanted)} for ${loc.shown}`);
    throw new OpsError('internal', `${loc.shown}: setting the layout failed: ${errnoName(r.errno)}`);
  }
  return { path: loc.shown, ino: loc.ino, layout: r.value.layout };
}
