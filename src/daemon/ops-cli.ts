// The pure parts of the cluster-health commands (`dfs status`, `dfs nodes`, `dfs events`,
// `dfs drain`, `dfs fsck`, `dfs nodes what-if-lost`): how healthy a cluster or a chunk is,
// and how it is shown. No I/O here: src/cli/ fetches, fsck.ts and ns-walk.ts walk.
import { chunkIdHex } from '../chunks/store.js';
import type { ChunkRef, Layout } from '../meta/types.js';
import type { HealthStatusReply__Output } from '../meta/gen/dfs/meta/HealthStatusReply.js';
import type { NodeView__Output } from '../meta/gen/dfs/meta/NodeView.js';
import type { ClusterEvent__Output } from '../meta/gen/dfs/meta/ClusterEvent.js';
import { agoText, humanBytes, humanRate } from '../common/format.js';

export { agoText, humanBytes, humanRate } from '../common/format.js';

/** A duration option: a number of seconds, or a number with ms/s/m/h ("90s", "1h"). */
export function parseTimeoutMs(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) return null;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  const ms = Math.round(Number(m[1]) * unit);
  return ms > 0 ? ms : null;
}

// ---- dfs nodes ------------------------------------------------------------------------

export interface NodeRow {
  nodeId: string;
  address: string;
  /** Liveness as the leader sees it: up, suspect, dead. */
  state: string;
  /** Replicated state: active, dead, draining, drained. */
  adminState: string;
  zone: string;
  rack: string;
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
  /** usedBytes / totalBytes × 100, one decimal; null when the node reported no capacity. */
  utilizationPct: number | null;
  chunkCount: number;
  /** Ms since the leader last heard from the node; null when it has not since it became leader. */
  lastHeartbeatAgoMs: number | null;
  /** The dfs version of its last heartbeat; null when unknown. */
  version: string | null;
  /** Reads of its chunk files that failed a CRC32C check since it started (its last heartbeat). */
  corruptReads: number;
  /** Why its namespace storage cannot write ('' when it can). */
  storageFault: string;
  /** Free space it keeps for its log and namespace, and what is free there (decision 0014). */
  reserveBytes: number;
  logFreeBytes: number;
  /** Below its reserve: the cluster refuses new data meanwhile. */
  spaceLow: boolean;
}

export function nodeRow(n: NodeView__Output): NodeRow {
  // The registry reports 0 both for "never" and a beat under 0.5 ms ago; a node that beat
  // has reported its capacity, a node that never did has not.
  const heardFrom = n.lastHeartbeatMs > 0 || n.totalBytes > 0;
  return {
    nodeId: n.nodeId,
    address: n.address,
    state: n.state,
    adminState: n.adminState || 'active',
    zone: n.zone,
    rack: n.rack,
    totalBytes: n.totalBytes,
    freeBytes: n.freeBytes,
    usedBytes: n.usedBytes,
    utilizationPct: n.totalBytes > 0 ? Math.round((1000 * (n.totalBytes - n.freeBytes)) / n.totalBytes) / 10 : null,
    chunkCount: n.chunkCount,
    lastHeartbeatAgoMs: heardFrom ? n.lastHeartbeatMs : null,
    version: n.version || null,
    corruptReads: Number(n.corruptReads ?? 0),
    storageFault: n.storageFault ?? '',
    reserveBytes: Number(n.reserveBytes ?? 0),
    logFreeBytes: Number(n.logFreeBytes ?? 0),
    spaceLow: n.spaceLow ?? false,
  };
}

type NodeFlags = Pick<NodeRow, 'state' | 'adminState'> & Partial<Pick<NodeRow, 'storageFault' | 'reserveBytes' | 'logFreeBytes' | 'spaceLow'>>;

/** "up", "up, draining", "dead", "suspect, drained", "suspect, storage fault", "up, disk full"... (the admin state only when it says more). */
export function nodeStateText(r: NodeFlags): string {
  let text = r.adminState === 'active' || r.adminState === r.state ? r.state : `${r.state}, ${r.adminState}`;
  if (r.storageFault) text += ', storage fault';
  if (r.spaceLow) text += ', disk full';
  return text;
}

/** Why a node makes `dfs nodes` exit 1, or null: a storage fault, a disk below its reserve, not up, or dead/draining in the node table. */
export function nodeProblem(r: NodeFlags): string | null {
  if (r.storageFault) return `storage fault (${r.storageFault})`;
  if (r.spaceLow) return `disk full (${humanBytes(r.logFreeBytes ?? 0)} free, reserve ${humanBytes(r.reserveBytes ?? 0)})`;
  if (r.adminState === 'dead' || r.adminState === 'draining') return r.adminState;
  if (r.state !== 'up') return r.state;
  return null;
}

/** USED is the disk's utilization (all of it, not only dfs); DATA the bytes of chunk objects on it. */
export function nodesTable(rows: NodeRow[]): string[][] {
  const out = [['NODE', 'ADDRESS', 'STATE', 'ZONE/RACK', 'CAPACITY', 'USED', 'DATA', 'CHUNKS', 'HEARTBEAT']];
  for (const r of rows) {
    out.push([
      r.nodeId,
      r.address,
      nodeStateText(r),
      `${r.zone || '-'}/${r.rack || '-'}`,
      r.totalBytes > 0 ? humanBytes(r.totalBytes) : '-',
      r.utilizationPct === null ? '-' : `${r.utilizationPct.toFixed(1)}%`,
      humanBytes(r.usedBytes),
      String(r.chunkCount),
      r.lastHeartbeatAgoMs === null ? 'never' : agoText(r.lastHeartbeatAgoMs),
    ]);
  }
  return out;
}

// ---- dfs status -----------------------------------------------------------------------

export interface StatusInputs {
  leader: string | null;
  members: Array<{ nodeId: string; state: string }>;
  /** The leader's HealthStatus; null when it could not be had (see healthError). */
  health: HealthStatusReply__Output | null;
}

export interface StatusVerdict {
  healthy: boolean;
  /** Whether the leader has finished a full scan of the chunks (else chunk counts are unknown). */
  chunksKnown: boolean;
  /** Known problems, one short phrase each; empty when healthy. */
  problems: string[];
}

/**
 * Healthy unless a problem is known: no leader, a Raft member unreachable, a chunk server
 * suspect or dead, or (after the leader's first full scan) a chunk under-protected or lost.
 * Health the leader cannot tell yet (first scan running, or no HealthStatus) is not a problem.
 */
export function statusVerdict(i: StatusInputs): StatusVerdict {
  const problems: string[] = [];
  if (!i.leader) problems.push('no leader');
  const down = i.members.filter((m) => m.state !== 'up');
  if (down.length > 0) problems.push(`${plural(down.length, 'member')} unreachable (${down.map((m) => m.nodeId).join(', ')})`);
  const h = i.health;
  const chunksKnown = h !== null && h.scanPasses > 0;
  if (h) {
    if (h.nodesSuspect > 0) problems.push(`${plural(h.nodesSuspect, 'node')} suspect`);
    if (h.nodesDead > 0) problems.push(`${plural(h.nodesDead, 'node')} dead`);
    if (chunksKnown && h.chunksLost > 0) problems.push(`${plural(h.chunksLost, 'chunk')} lost`);
    if (chunksKnown && h.chunksUnderProtected > 0) problems.push(`${plural(h.chunksUnderProtected, 'chunk')} under-protected`);
  }
  return { healthy: problems.length === 0, chunksKnown, problems };
}

/** The health lines `dfs status` adds under leader/members/capacity. */
export function healthLines(h: HealthStatusReply__Output): string[] {
  const lines = [
    `chunk servers: ${h.nodesUp} up, ${h.nodesSuspect} suspect, ${h.nodesDead} dead, ${h.nodesDraining} draining, ${h.nodesDrained} drained`,
    `chunk space: ${humanBytes(h.usedBytes)} used, ${humanBytes(h.freeBytes)} free of ${humanBytes(h.totalBytes)}`,
  ];
  if (h.scanPasses > 0) {
    lines.push(
      `chunks: ${h.chunksTotal} total: ${h.chunksHealthy} healthy, ${h.chunksUnderProtected} under-protected, ${h.chunksLost} lost (scanned ${agoText(h.lastScanAgeMs)})`,
    );
  } else lines.push('chunks: health unknown (first scan running)');
  lines.push(`repair: ${h.repairQueue} queued, ${h.repairsDone} done, ${humanRate(h.repairBytesPerS)}`);
  lines.push(`rebalance: ${h.rebalanceQueue} queued, ${h.rebalanceMovesDone} done, ${humanRate(h.rebalanceBytesPerS)}`);
  if (h.nodesDraining > 0 || h.drainRemaining > 0) {
    const per = h.nodes.filter((n) => n.toMove > 0).map((n) => `${n.nodeId} ${n.toMove}`);
    lines.push(`drain: ${plural(h.drainRemaining, 'copy', 'copies')} to move${per.length ? ` (${per.join(', ')})` : ''}`);
  }
  return lines;
}

/** What `dfs status --json` (and the console's overview) has under `health`. */
export interface HealthJson {
  nodes: { up: number; suspect: number; dead: number; draining: number; drained: number };
  capacity: { totalBytes: number; usedBytes: number; freeBytes: number };
  /** null until the leader has finished a full scan. */
  chunks: { total: number; healthy: number; underProtected: number; lost: number; scanPasses: number; lastScanAgeMs: number } | null;
  repair: { queue: number; done: number; bytesPerS: number };
  rebalance: { queue: number; done: number; bytesPerS: number };
  drainRemaining: number;
  perNode: Array<{ nodeId: string; copies: number; toMove: number }>;
}

/** The JSON `dfs status --json` adds under `health` (null when unavailable). */
export function healthJson(h: HealthStatusReply__Output): HealthJson {
  const known = h.scanPasses > 0;
  return {
    nodes: { up: h.nodesUp, suspect: h.nodesSuspect, dead: h.nodesDead, draining: h.nodesDraining, drained: h.nodesDrained },
    capacity: { totalBytes: h.totalBytes, usedBytes: h.usedBytes, freeBytes: h.freeBytes },
    chunks: known
      ? { total: h.chunksTotal, healthy: h.chunksHealthy, underProtected: h.chunksUnderProtected, lost: h.chunksLost, scanPasses: h.scanPasses, lastScanAgeMs: h.lastScanAgeMs }
      : null,
    repair: { queue: h.repairQueue, done: h.repairsDone, bytesPerS: h.repairBytesPerS },
    rebalance: { queue: h.rebalanceQueue, done: h.rebalanceMovesDone, bytesPerS: h.rebalanceBytesPerS },
    drainRemaining: h.drainRemaining,
    perNode: h.nodes.map((n) => ({ nodeId: n.nodeId, copies: n.copies, toMove: n.toMove })),
  };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

// ---- dfs events -----------------------------------------------------------------------

/** One event as a line with fixed-width columns (so `--follow` output lines up too). */
export function eventLine(e: ClusterEvent__Output): string {
  return [
    new Date(Number(e.timeMs)).toISOString(),
    (e.kind || '-').padEnd(16),
    (e.nodeId || '-').padEnd(12),
    e.chunkId ? chunkIdHex(e.chunkId) : '-'.padEnd(16),
    e.message,
  ].join('  ').trimEnd();
}

export const EVENTS_HEADER = ['TIME'.padEnd(24), 'KIND'.padEnd(16), 'NODE'.padEnd(12), 'CHUNK'.padEnd(16), 'MESSAGE'].join('  ');

// ---- chunk protection (fsck, what-if-lost) ---------------------------------------------

export type ChunkState = 'healthy' | 'under-protected' | 'lost';

export interface ChunkVerdict {
  /** Copies the layout asks for: R, or k+m. */
  want: number;
  /** Copies needed to read the data at all: 1, or k. */
  needToRead: number;
  /** Copies that count (per the caller's test). */
  good: number;
  state: ChunkState;
}

/** R for a replicated chunk (its file's layout; its placement when the layout says EC), k+m for EC. */
export function wantedCopies(ref: ChunkRef, layout: Layout): { want: number; needToRead: number } {
  if (ref.ec) return { want: ref.ec.k + ref.ec.m, needToRead: ref.ec.k };
  return { want: layout.kind === 'replicas' ? layout.replicas : Math.max(1, new Set(ref.placement).size), needToRead: 1 };
}

/**
 * How protected a chunk is, given which of its copies count (`counts(holder, slot)`):
 * lost below the copies needed to read (1, or k distinct shard slots), under-protected
 * below the layout's copies. Replicas count once per distinct holder; '' is no holder.
 */
export function chunkVerdict(ref: ChunkRef, layout: Layout, counts: (holder: string, slot: number) => boolean): ChunkVerdict {
  const { want, needToRead } = wantedCopies(ref, layout);
  let good = 0;
  if (ref.ec) {
    ref.placement.forEach((h, slot) => {
      if (h !== '' && counts(h, slot)) good++;
    });
  } else {
    const seen = new Set<string>();
    ref.placement.forEach((h, slot) => {
      if (h === '' || seen.has(h)) return;
      seen.add(h);
      if (counts(h, slot)) good++;
    });
  }
  return { want, needToRead, good, state: good < needToRead ? 'lost' : good < want ? 'under-protected' : 'healthy' };
}

/** What the view says of a node, for what-if-lost. */
export interface NodeStateView {
  state: string;
  adminState: string;
}

/** A copy counts now when its holder is known, not dead and not dead/drained in the node table. */
export function holderCounts(node: NodeStateView | undefined): boolean {
  if (!node) return false;
  return node.state !== 'dead' && node.adminState !== 'dead' && node.adminState !== 'drained';
}

export type LossImpact = 'lose-data' | 'lose-protection';

/**
 * What losing the nodes in `lost` would do to a chunk: 'lose-data' when it is readable now
 * and would not be, 'lose-protection' when it would drop (further) below its layout's
 * copies, null when it keeps what it has (no counting copy on those nodes, or copies to spare).
 * A chunk already lost is fsck's business, not a what-if.
 */
export function lossImpact(ref: ChunkRef, layout: Layout, nodes: ReadonlyMap<string, NodeStateView>, lost: ReadonlySet<string>): LossImpact | null {
  if (ref.inline !== undefined || ref.placement.length === 0) return null;
  const now = (h: string) => holderCounts(nodes.get(h));
  const before = chunkVerdict(ref, layout, now);
  const after = chunkVerdict(ref, layout, (h) => now(h) && !lost.has(h));
  if (after.good === before.good || before.state === 'lost') return null;
  if (after.state === 'lost') return 'lose-data';
  if (after.state === 'under-protected') return 'lose-protection';
  return null;
}

// ---- fsck -----------------------------------------------------------------------------

export interface FsckCounts {
  files: number;
  chunks: number;
  healthy: number;
  underProtected: number;
  lost: number;
}

export function fsckSummary(c: FsckCounts): string {
  return `fsck: ${plural(c.files, 'file')}, ${plural(c.chunks, 'chunk')}: ${c.healthy} healthy, ${c.underProtected} under-protected, ${c.lost} lost`;
}

/** One line for a terminal's progress bar (the caller rewrites it with \r). */
export function progressLine(c: FsckCounts, width: number): string {
  const problems = c.underProtected + c.lost;
  const text = `fsck: ${c.files} files scanned, ${c.chunks} chunks checked${problems > 0 ? `, ${problems} not healthy` : ''}`;
  const spin = '|/-\\'[c.chunks % 4];
  return `${spin} ${text}`.slice(0, Math.max(10, width - 1));
}
