// Where the copies of a new chunk go: a pure function of the leader's view of the chunk
// servers. Rules, in order: only nodes that are up and have room; distinct nodes; then
// distinct zones, then distinct racks, as far as the labels allow; among the rest, the
// least utilized first — by a random draw weighted by free space, so that a burst of
// writes placed from one view spreads instead of piling onto the single emptiest node.

export interface PlacementNode {
  nodeId: string;
  zone: string;
  rack: string;
  totalBytes: number;
  freeBytes: number;
  state: 'up' | 'suspect' | 'dead' | string;
  /** Replicated state; only 'active' nodes (not draining, drained or dead) take new data. */
  adminState?: string;
  /** The free space the node keeps for itself (its heartbeat says; decision 0014); 0 or absent: RESERVE_BYTES rule. */
  reserveBytes?: number;
}

export interface PlacementRequest {
  /** Copies (replicas) or shards wanted. */
  count: number;
  /** Bytes each copy needs. */
  bytes: number;
  /** Nodes not to use (already holding a copy, or failed during this write). */
  exclude?: ReadonlySet<string>;
  /** Zones and racks already used by copies placed earlier (for replacements). */
  usedZones?: ReadonlySet<string>;
  usedRacks?: ReadonlySet<string>;
}

/** Free space kept on every node: placement never fills a disk to the last byte. */
export const RESERVE_BYTES = 64 * 1024 * 1024;

function utilization(n: PlacementNode): number {
  return n.totalBytes > 0 ? 1 - n.freeBytes / n.totalBytes : 0.5;
}

/** True when the node can take `bytes` more (unknown capacity counts as room: its first heartbeat is pending). */
export function hasRoom(n: PlacementNode, bytes: number): boolean {
  const reserve = n.reserveBytes ? n.reserveBytes : Math.min(RESERVE_BYTES, n.totalBytes / 20);
  return n.totalBytes === 0 || n.freeBytes >= bytes + reserve;
}

/**
 * Up to `count` distinct node ids for the copies of one chunk (fewer when fewer nodes
 * qualify). `random` returns a number in [0, 1).
 */
export function placeCopies(nodes: readonly PlacementNode[], req: PlacementRequest, random: () => number = Math.random): string[] {
  const exclude = req.exclude ?? new Set<string>();
  let pool = nodes.filter((n) => n.state === 'up' && (n.adminState ?? 'active') === 'active' && !exclude.has(n.nodeId) && hasRoom(n, req.bytes));
  const zones = new Set(req.usedZones ?? []);
  const racks = new Set(req.usedRacks ?? []);
  const chosen: string[] = [];
  while (chosen.length < req.count && pool.length > 0) {
    // The best failure-domain tier still available: a new zone, else a new rack, else any.
    const newZone = pool.filter((n) => n.zone !== '' && !zones.has(n.zone));
    const newRack = pool.filter((n) => n.rack !== '' && !racks.has(n.rack));
    const tier = newZone.length > 0 ? newZone : newRack.length > 0 ? newRack : pool;
    const pick = weightedPick(tier, random);
    chosen.push(pick.nodeId);
    if (pick.zone !== '') zones.add(pick.zone);
    if (pick.rack !== '') racks.add(pick.rack);
    pool = pool.filter((n) => n !== pick);
  }
  return chosen;
}

/** A draw weighted by headroom (1 − utilization), squared so emptier nodes are clearly preferred. */
function weightedPick(tier: readonly PlacementNode[], random: () => number): PlacementNode {
  const weights = tier.map((n) => {
    const free = 1 - utilization(n);
    return 0.01 + free * free;
  });
  const total = weights.reduce((a, b) => a + b, 0);
  let r = random() * total;
  for (let i = 0; i < tier.length; i++) {
    r -= weights[i];
    if (r < 0) return tier[i];
  }
  return tier[tier.length - 1];
}

/**
 * How many copies a write must reach before close()/fsync() may succeed (see decision
 * 0007): all of them when the cluster has that many nodes up; otherwise — a node already
 * down and no replacement — a majority of them for replicas (R − ⌊R/2⌋, as Ceph's
 * min_size; never more than the nodes the cluster has, so one- and two-node clusters
 * work) or k+1 shards for erasure coding.
 */
export function minCopies(layout: { kind: 'replicas'; replicas: number } | { kind: 'ec'; k: number; m: number }, registeredNodes: number): number {
  // Fewer than k+1 shards could not survive the loss of even one holder: never accepted.
  if (layout.kind === 'ec') return Math.min(layout.k + layout.m, layout.k + 1);
  const degraded = layout.replicas - Math.floor(layout.replicas / 2);
  return Math.max(1, Math.min(layout.replicas, degraded, registeredNodes));
}
