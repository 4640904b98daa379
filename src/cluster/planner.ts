// What the healer should do, as pure functions of a cluster view: how protected each
// chunk is, which copies to re-create (repair), move off draining nodes (drain) or move
// from over-full to under-full nodes (rebalance). No I/O: the healer (healer.ts) feeds
// it the namespace's chunk refs and the leader's view of the nodes, and executes moves.
//
// Rules:
// - A copy counts when its holder is not dead, not drained and the copy is not reported
//   bad. A suspect holder's copy still counts (it may come back; repair waits for dead).
// - Repair re-creates missing copies on other nodes (placement rules of placement.ts);
//   an EC chunk rebuilds exactly its missing shard slots from any k others.
// - Drain and rebalance copy first, commit the new placement, and only then delete the
//   old copy: a move never lowers a chunk's protection.
// - Rebalance triggers when a node holds more than `threshold` (1.2) × the mean share of
//   chunk bytes (used bytes / capacity) among active nodes that are up.
import type { ChunkEc, NodeState } from '../meta/types.js';
import { placeCopies, type PlacementNode } from './placement.js';

export interface PlanNode {
  nodeId: string;
  zone: string;
  rack: string;
  totalBytes: number;
  freeBytes: number;
  /** Bytes of chunk objects on the node. */
  usedBytes: number;
  /** Free space it keeps for itself (decision 0014); absent: the placement default. */
  reserveBytes?: number;
  /** Liveness as the leader sees it. */
  live: 'up' | 'suspect' | 'dead';
  admin: NodeState;
}

export interface PlanChunk {
  chunkId: number;
  sizeBytes: number;
  placement: readonly string[];
  ec?: ChunkEc;
  /** Replicas the file's layout asks for (ignored for EC). */
  replicas: number;
  /** Holders whose copy was reported bad. */
  bad: ReadonlySet<string>;
}

export type ChunkState = 'healthy' | 'under' | 'lost';

export interface ChunkHealth {
  /** Copies the layout asks for (R, or k+m). */
  want: number;
  /** Copies that can be read now (counting suspect and draining holders). */
  readable: number;
  /** Copies that count toward protection (readable and not on a suspect node). */
  protectedCopies: number;
  /** Copies needed to read the data at all (1, or k). */
  needToRead: number;
  state: ChunkState;
  /** readable − needToRead: how many more losses the chunk survives (lower = more at risk). */
  margin: number;
}

export interface Move {
  kind: 'repair' | 'drain' | 'rebalance';
  chunkId: number;
  /** Copies to create: `slot` is the EC shard index, −1 for a replica. */
  create: Array<{ slot: number; target: string }>;
  /** Holders to read from (replicas: any; EC: by slot, '' when unusable). */
  sources: string[];
  /** Placement to commit once every created copy is durable. */
  placement: string[];
  /** Copies to delete after the commit. */
  remove: string[];
  /** For ordering: the chunk's margin before the move. */
  margin: number;
  /** Bytes to copy. */
  bytes: number;
}

function copyCounts(node: PlanNode | undefined, holder: string, chunk: PlanChunk): 'ok' | 'suspect' | 'gone' {
  if (holder === '' || !node || chunk.bad.has(holder)) return 'gone';
  if (node.live === 'dead' || node.admin === 'dead' || node.admin === 'drained') return 'gone';
  return node.live === 'suspect' ? 'suspect' : 'ok';
}

export function chunkHealth(chunk: PlanChunk, nodes: ReadonlyMap<string, PlanNode>): ChunkHealth {
  const want = chunk.ec ? chunk.ec.k + chunk.ec.m : chunk.replicas;
  const needToRead = chunk.ec ? chunk.ec.k : 1;
  const holders = chunk.ec ? chunk.placement : [...new Set(chunk.placement)];
  let readable = 0;
  let prot = 0;
  for (const h of holders) {
    const c = copyCounts(nodes.get(h), h, chunk);
    if (c !== 'gone') readable++;
    if (c === 'ok') prot++;
  }
  const state: ChunkState = readable < needToRead ? 'lost' : readable < want ? 'under' : 'healthy';
  return { want, readable, protectedCopies: prot, needToRead, state, margin: readable - needToRead };
}

function placementNodes(nodes: ReadonlyMap<string, PlanNode>): PlacementNode[] {
  return [...nodes.values()].map((n) => ({ nodeId: n.nodeId, zone: n.zone, rack: n.rack, totalBytes: n.totalBytes, freeBytes: n.freeBytes, reserveBytes: n.reserveBytes, state: n.live, adminState: n.admin }));
}

function domains(nodes: ReadonlyMap<string, PlanNode>, holders: Iterable<string>): { usedZones: Set<string>; usedRacks: Set<string> } {
  const usedZones = new Set<string>();
  const usedRacks = new Set<string>();
  for (const h of holders) {
    const n = nodes.get(h);
    if (n?.zone) usedZones.add(n.zone);
    if (n?.rack) usedRacks.add(n.rack);
  }
  return { usedZones, usedRacks };
}

function copyBytes(chunk: PlanChunk): number {
  return chunk.ec ? chunk.ec.shardBytes : chunk.sizeBytes;
}

/**
 * The repair for a chunk with missing copies, or null when it needs none or cannot be
 * repaired now (lost, or no node can take a copy). Suspect copies are not replaced.
 */
export function planRepair(chunk: PlanChunk, nodes: ReadonlyMap<string, PlanNode>, random: () => number = Math.random): Move | null {
  const h = chunkHealth(chunk, nodes);
  if (h.state !== 'under') return null;
  const states = chunk.placement.map((p) => copyCounts(nodes.get(p), p, chunk));
  const everyHolder = new Set(chunk.placement.filter((p) => p !== ''));
  const bytes = copyBytes(chunk);
  if (chunk.ec) {
    const missing = states.flatMap((s, i) => (s === 'gone' ? [i] : []));
    // A rebuild reads k shards from holders that are up; suspect ones count as readable
    // (the chunk is not lost) but are not read: wait until k can be.
    if (states.filter((s) => s === 'ok').length < chunk.ec.k) return null;
    const kept = chunk.placement.filter((_, i) => states[i] !== 'gone');
    const targets = placeCopies(placementNodes(nodes), { count: missing.length, bytes, exclude: everyHolder, ...domains(nodes, kept) }, random);
    if (targets.length === 0) return null;
    const create = missing.slice(0, targets.length).map((slot, i) => ({ slot, target: targets[i] }));
    const placement = [...chunk.placement];
    for (const c of create) placement[c.slot] = c.target;
    // Slots still without a holder stay '' for the next round.
    for (const slot of missing.slice(targets.length)) placement[slot] = '';
    const sources = chunk.placement.map((p, i) => (states[i] === 'ok' ? p : ''));
    return { kind: 'repair', chunkId: chunk.chunkId, create, sources, placement, remove: [], margin: h.margin, bytes: bytes * create.length };
  }
  const kept = [...new Set(chunk.placement)].filter((p, i, all) => all.indexOf(p) === i && copyCounts(nodes.get(p), p, chunk) !== 'gone');
  const need = h.want - kept.length;
  if (need <= 0) return null;
  const sources = kept.filter((p) => copyCounts(nodes.get(p), p, chunk) === 'ok');
  if (sources.length === 0) return null;
  const targets = placeCopies(placementNodes(nodes), { count: need, bytes, exclude: everyHolder, ...domains(nodes, kept) }, random);
  if (targets.length === 0) return null;
  return {
    kind: 'repair',
    chunkId: chunk.chunkId,
    create: targets.map((target) => ({ slot: -1, target })),
    sources,
    placement: [...kept, ...targets],
    remove: [],
    margin: h.margin,
    bytes: bytes * targets.length,
  };
}

/** Moves a copy off a draining node (one per call), or null when the chunk has none there. */
export function planDrain(chunk: PlanChunk, nodes: ReadonlyMap<string, PlanNode>, random: () => number = Math.random): Move | null {
  const at = chunk.placement.findIndex((p) => {
    const n = nodes.get(p);
    return n !== undefined && n.admin === 'draining' && n.live !== 'dead' && !chunk.bad.has(p);
  });
  if (at < 0) return null;
  return moveCopy(chunk, nodes, at, 'drain', random, null);
}

function moveCopy(chunk: PlanChunk, nodes: ReadonlyMap<string, PlanNode>, at: number, kind: 'drain' | 'rebalance', random: () => number, onlyTo: ReadonlySet<string> | null): Move | null {
  const from = chunk.placement[at];
  const others = chunk.placement.filter((p, i) => i !== at && p !== '');
  const pool = placementNodes(nodes).filter((n) => onlyTo === null || onlyTo.has(n.nodeId));
  const target = placeCopies(pool, { count: 1, bytes: copyBytes(chunk), exclude: new Set(chunk.placement), ...domains(nodes, others) }, random)[0];
  if (target === undefined) return null;
  const placement = [...chunk.placement];
  placement[at] = target;
  const sources = chunk.ec ? chunk.placement.map((p, i) => (i === at ? p : '')) : [from];
  return {
    kind,
    chunkId: chunk.chunkId,
    create: [{ slot: chunk.ec ? at : -1, target }],
    sources,
    placement,
    remove: [from],
    margin: chunkHealth(chunk, nodes).margin,
    bytes: copyBytes(chunk),
  };
}

/** Share of a node's capacity used by chunk objects (what rebalance evens out). */
export function utilization(n: PlanNode): number {
  return n.totalBytes > 0 ? n.usedBytes / n.totalBytes : 0;
}

export interface RebalanceOptions {
  /** Move off nodes above threshold × mean utilization. */
  threshold: number;
  maxMoves: number;
}

/**
 * Moves that bring every active, up node to at most threshold × the mean utilization:
 * from the fullest node, chunks it holds (from `chunksOn`) go to the least utilized
 * nodes below the mean, tracking the bytes planned so far.
 */
export function planRebalance(
  nodes: ReadonlyMap<string, PlanNode>,
  chunksOn: ReadonlyMap<string, readonly PlanChunk[]>,
  opts: RebalanceOptions,
  random: () => number = Math.random,
): Move[] {
  const pool = [...nodes.values()].filter((n) => n.live === 'up' && n.admin === 'active' && n.totalBytes > 0);
  if (pool.length < 2) return [];
  const used = new Map(pool.map((n) => [n.nodeId, n.usedBytes]));
  const util = (id: string): number => (used.get(id) ?? 0) / nodes.get(id)!.totalBytes;
  const mean = pool.reduce((a, n) => a + util(n.nodeId), 0) / pool.length;
  if (mean <= 0) return [];
  const moves: Move[] = [];
  const moved = new Set<number>();
  for (let guard = 0; guard < opts.maxMoves * 4 && moves.length < opts.maxMoves; guard++) {
    const source = pool.map((n) => n.nodeId).sort((a, b) => util(b) - util(a))[0];
    if (util(source) <= opts.threshold * mean) break;
    let planned: Move | null = null;
    for (const chunk of chunksOn.get(source) ?? []) {
      if (moved.has(chunk.chunkId)) continue;
      if (chunkHealth(chunk, nodes).state !== 'healthy') continue; // repair first
      const at = chunk.placement.indexOf(source);
      // The moving copy is read from the source: never a copy reported bad.
      if (at < 0 || chunk.bad.has(source)) continue;
      // Only to nodes below the mean that stay at or below the source after the move:
      // a move must narrow the spread, never swap it (no ping-pong between passes).
      const b = copyBytes(chunk);
      const sourceAfter = ((used.get(source) ?? 0) - b) / nodes.get(source)!.totalBytes;
      const below = new Set(pool.filter((n) => util(n.nodeId) < mean && ((used.get(n.nodeId) ?? 0) + b) / n.totalBytes <= sourceAfter).map((n) => n.nodeId));
      if (below.size === 0) continue;
      planned = moveCopy(chunk, nodes, at, 'rebalance', random, below);
      if (planned) break;
    }
    if (!planned) break;
    moves.push(planned);
    moved.add(planned.chunkId);
    const t = planned.create[0].target;
    used.set(source, (used.get(source) ?? 0) - planned.bytes);
    used.set(t, (used.get(t) ?? 0) + planned.bytes);
  }
  return moves;
}
