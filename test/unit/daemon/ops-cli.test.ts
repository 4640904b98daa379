// The pure parts of the cluster-health commands: formatting, the `dfs status` verdict,
// and chunk protection / what-if-lost on synthetic chunk refs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  agoText,
  chunkVerdict,
  eventLine,
  fsckSummary,
  healthLines,
  humanBytes,
  lossImpact,
  nodeProblem,
  nodeRow,
  nodeStateText,
  nodesTable,
  parseTimeoutMs,
  progressLine,
  statusVerdict,
  type NodeStateView,
} from '../../../src/daemon/ops-cli.js';
import type { HealthStatusReply__Output } from '../../../src/meta/gen/dfs/meta/HealthStatusReply.js';
import type { NodeView__Output } from '../../../src/meta/gen/dfs/meta/NodeView.js';
import type { ChunkRef, Layout } from '../../../src/meta/types.js';

const GiB = 1024 ** 3;

function view(over: Partial<NodeView__Output> = {}): NodeView__Output {
  return {
    nodeId: 'n1',
    address: '127.0.0.1:7400',
    zone: 'z1',
    rack: 'r1',
    totalBytes: 100 * GiB,
    freeBytes: 75 * GiB,
    usedBytes: 20 * GiB,
    chunkCount: 42,
    lastHeartbeatMs: 400,
    state: 'up',
    adminState: 'active',
    version: '0.1.0',
    corruptReads: 0,
    storageFault: '',
    reserveBytes: 0,
    logFreeBytes: 0,
    chunkReserveBytes: 0,
    spaceLow: false,
    ...over,
  };
}

function health(over: Partial<HealthStatusReply__Output> = {}): HealthStatusReply__Output {
  return {
    errno: 0,
    leader: 'n1',
    nodesUp: 3,
    nodesSuspect: 0,
    nodesDead: 0,
    nodesDraining: 0,
    nodesDrained: 0,
    totalBytes: 300 * GiB,
    freeBytes: 200 * GiB,
    usedBytes: 60 * GiB,
    chunksTotal: 10,
    chunksHealthy: 10,
    chunksUnderProtected: 0,
    chunksLost: 0,
    scanPasses: 2,
    lastScanAgeMs: 1500,
    repairQueue: 0,
    repairsDone: 0,
    repairBytesPerS: 0,
    rebalanceQueue: 0,
    rebalanceMovesDone: 0,
    rebalanceBytesPerS: 0,
    drainRemaining: 0,
    nodes: [],
    protection: [],
    ...over,
  };
}

describe('formatting', () => {
  it('shows durations, sizes and timeouts', () => {
    expect(agoText(400)).toBe('0.4s ago');
    expect(agoText(12_300)).toBe('12s ago');
    expect(agoText(5 * 60_000)).toBe('5m ago');
    expect(agoText(3 * 3_600_000)).toBe('3h ago');
    expect(agoText(3 * 86_400_000)).toBe('3d ago');
    expect(humanBytes(0)).toBe('0 B');
    expect(humanBytes(1536)).toBe('1.5 KiB');
    expect(parseTimeoutMs('90')).toBe(90_000);
    expect(parseTimeoutMs('90s')).toBe(90_000);
    expect(parseTimeoutMs('30m')).toBe(1_800_000);
    expect(parseTimeoutMs('1h')).toBe(3_600_000);
    expect(parseTimeoutMs('250ms')).toBe(250);
    for (const bad of ['0', '', 'x', '-5s', '1d', '1h30m']) expect(parseTimeoutMs(bad), bad).toBeNull();
  });

  it('makes a node row with utilization and heartbeat age', () => {
    const r = nodeRow(view());
    expect(r).toMatchObject({ nodeId: 'n1', state: 'up', adminState: 'active', utilizationPct: 25, chunkCount: 42, lastHeartbeatAgoMs: 400, version: '0.1.0', corruptReads: 0 });
    expect(nodeRow(view({ corruptReads: 3, version: '' }))).toMatchObject({ corruptReads: 3, version: null });
    expect(nodesTable([r])).toEqual([
      ['NODE', 'ADDRESS', 'STATE', 'ZONE/RACK', 'CAPACITY', 'USED', 'DATA', 'CHUNKS', 'HEARTBEAT'],
      ['n1', '127.0.0.1:7400', 'up', 'z1/r1', '100.0 GiB', '25.0%', '20.0 GiB', '42', '0.4s ago'],
    ]);
    // Never heard from (since this leader started): no capacity, no heartbeat.
    const silent = nodeRow(view({ totalBytes: 0, freeBytes: 0, usedBytes: 0, lastHeartbeatMs: 0, zone: '', rack: '' }));
    expect(silent.utilizationPct).toBeNull();
    expect(silent.lastHeartbeatAgoMs).toBeNull();
    expect(nodesTable([silent])[1]).toEqual(['n1', '127.0.0.1:7400', 'up', '-/-', '-', '-', '0 B', '42', 'never']);
    // A beat under 0.5 ms ago rounds to 0 but the node has reported its capacity.
    expect(nodeRow(view({ lastHeartbeatMs: 0 })).lastHeartbeatAgoMs).toBe(0);
  });

  it('names node states and which make `dfs nodes` fail', () => {
    const s = (state: string, adminState: string) => ({ state, adminState });
    expect(nodeStateText(s('up', 'active'))).toBe('up');
    expect(nodeStateText(s('up', 'draining'))).toBe('up, draining');
    expect(nodeStateText(s('dead', 'dead'))).toBe('dead');
    expect(nodeStateText(s('suspect', 'drained'))).toBe('suspect, drained');
    expect(nodeProblem(s('up', 'active'))).toBeNull();
    expect(nodeProblem(s('up', 'drained'))).toBeNull();
    expect(nodeProblem(s('up', 'draining'))).toBe('draining');
    expect(nodeProblem(s('suspect', 'active'))).toBe('suspect');
    expect(nodeProblem(s('up', 'dead'))).toBe('dead');
    expect(nodeProblem(s('dead', 'active'))).toBe('dead');
  });

  it('prints events in fixed columns', () => {
    const line = eventLine({ seq: 1, timeMs: Date.UTC(2025, 0, 2, 3, 4, 5, 6), kind: 'node-dead', nodeId: 'n2', chunkId: 255, message: 'node n2 is dead' });
    expect(line).toBe(`2025-01-02T03:04:05.006Z  ${'node-dead'.padEnd(16)}  ${'n2'.padEnd(12)}  00000000000000ff  node n2 is dead`);
    const bare = eventLine({ seq: 2, timeMs: 0, kind: 'drain', nodeId: '', chunkId: 0, message: 'x' });
    expect(bare.split(/ {2,}/)).toEqual(['1970-01-01T00:00:00.000Z', 'drain', '-', '-', 'x']);
  });

  it('summarizes fsck and draws a bounded progress line', () => {
    expect(fsckSummary({ files: 3, chunks: 7, healthy: 5, underProtected: 1, lost: 1 })).toBe('fsck: 3 files, 7 chunks: 5 healthy, 1 under-protected, 1 lost');
    expect(fsckSummary({ files: 1, chunks: 1, healthy: 1, underProtected: 0, lost: 0 })).toBe('fsck: 1 file, 1 chunk: 1 healthy, 0 under-protected, 0 lost');
    const p = progressLine({ files: 10, chunks: 20, healthy: 18, underProtected: 2, lost: 0 }, 200);
    expect(p).toMatch(/fsck: 10 files scanned, 20 chunks checked, 2 not healthy$/);
    expect(progressLine({ files: 10, chunks: 20, healthy: 18, underProtected: 2, lost: 0 }, 30).length).toBeLessThan(30);
  });

  it('adds health lines to dfs status', () => {
    const lines = healthLines(health({ nodesDraining: 1, drainRemaining: 7, nodes: [{ nodeId: 'n3', copies: 9, toMove: 7 }], repairQueue: 4, repairBytesPerS: 2 * 1024 * 1024 }));
    expect(lines).toContain('chunk servers: 3 up, 0 suspect, 0 dead, 1 draining, 0 drained');
    expect(lines).toContain('chunks: 10 total: 10 healthy, 0 under-protected, 0 lost (scanned 1.5s ago)');
    expect(lines).toContain('repair: 4 queued, 0 done, 2.0 MiB/s');
    expect(lines).toContain('drain: 7 copies to move (n3 7)');
    expect(healthLines(health({ scanPasses: 0 }))).toContain('chunks: health unknown (first scan running)');
  });
});

describe('dfs status verdict', () => {
  const members = [
    { nodeId: 'n1', state: 'up' },
    { nodeId: 'n2', state: 'up' },
  ];

  it('is healthy with a leader, every member up and every chunk protected', () => {
    expect(statusVerdict({ leader: 'n1', members, health: health() })).toEqual({ healthy: true, chunksKnown: true, problems: [] });
  });

  it('names each known problem', () => {
    const v = statusVerdict({
      leader: null,
      members: [...members, { nodeId: 'n3', state: 'unreachable' }],
      health: health({ nodesSuspect: 1, nodesDead: 2, chunksLost: 1, chunksUnderProtected: 5 }),
    });
    expect(v.healthy).toBe(false);
    expect(v.problems).toEqual(['no leader', '1 member unreachable (n3)', '1 node suspect', '2 nodes dead', '1 chunk lost', '5 chunks under-protected']);
  });

  it('does not fail on what it cannot know yet: no scan done, or no HealthStatus', () => {
    const early = statusVerdict({ leader: 'n1', members, health: health({ scanPasses: 0, chunksLost: 0, chunksUnderProtected: 0 }) });
    expect(early).toEqual({ healthy: true, chunksKnown: false, problems: [] });
    expect(statusVerdict({ leader: 'n1', members, health: null })).toEqual({ healthy: true, chunksKnown: false, problems: [] });
    // Node liveness is known before the first scan.
    expect(statusVerdict({ leader: 'n1', members, health: health({ scanPasses: 0, nodesDead: 1 }) }).healthy).toBe(false);
    // Draining and drained nodes are an operator's doing, not a fault.
    expect(statusVerdict({ leader: 'n1', members, health: health({ nodesDraining: 1, nodesDrained: 1, drainRemaining: 3 }) }).healthy).toBe(true);
  });
});

const R = (n: number): Layout => ({ kind: 'replicas', replicas: n });
const EC = (k: number, m: number): Layout => ({ kind: 'ec', k, m });

function rep(placement: string[]): ChunkRef {
  return { index: 0, chunkId: 7, sizeBytes: 100, placement };
}
function ec(placement: string[], k: number, m: number): ChunkRef {
  return { index: 0, chunkId: 8, sizeBytes: 100, placement, ec: { k, m, shardBytes: 25 } };
}

function nodeMap(states: Record<string, [string, string]>): Map<string, NodeStateView> {
  return new Map(Object.entries(states).map(([id, [state, adminState]]) => [id, { state, adminState }]));
}

describe('chunk protection', () => {
  const all = () => true;

  it('counts distinct replica holders against the layout', () => {
    expect(chunkVerdict(rep(['a', 'b', 'c']), R(3), all)).toMatchObject({ want: 3, needToRead: 1, good: 3, state: 'healthy' });
    expect(chunkVerdict(rep(['a', 'a', 'b']), R(3), all)).toMatchObject({ good: 2, state: 'under-protected' });
    expect(chunkVerdict(rep(['a']), R(3), all)).toMatchObject({ good: 1, state: 'under-protected' });
    expect(chunkVerdict(rep(['a', 'b', 'c']), R(3), (h) => h === 'c')).toMatchObject({ good: 1, state: 'under-protected' });
    expect(chunkVerdict(rep(['a', 'b', 'c']), R(3), () => false)).toMatchObject({ good: 0, state: 'lost' });
    expect(chunkVerdict(rep(['a', 'b']), R(1), all)).toMatchObject({ want: 1, state: 'healthy' });
  });

  it('counts EC shard slots: lost below k, under-protected below k+m', () => {
    const ref = ec(['a', 'b', 'c', 'd', 'e', 'f'], 4, 2);
    expect(chunkVerdict(ref, EC(4, 2), all)).toMatchObject({ want: 6, needToRead: 4, good: 6, state: 'healthy' });
    expect(chunkVerdict(ref, EC(4, 2), (_h, slot) => slot !== 5)).toMatchObject({ good: 5, state: 'under-protected' });
    expect(chunkVerdict(ref, EC(4, 2), (_h, slot) => slot < 4)).toMatchObject({ good: 4, state: 'under-protected' });
    expect(chunkVerdict(ref, EC(4, 2), (_h, slot) => slot < 3)).toMatchObject({ good: 3, state: 'lost' });
    // A lost shard is recorded as an empty holder.
    expect(chunkVerdict(ec(['a', '', 'c', 'd', 'e', 'f'], 4, 2), EC(4, 2), all)).toMatchObject({ good: 5, state: 'under-protected' });
    // The ref's own scheme wins over the file's layout.
    expect(chunkVerdict(ref, R(3), all)).toMatchObject({ want: 6, needToRead: 4 });
  });

  it('what-if-lost: data lost when no copy survives, protection when copies drop below the layout', () => {
    const nodes = nodeMap({ a: ['up', 'active'], b: ['up', 'active'], c: ['up', 'active'], d: ['dead', 'dead'], e: ['up', 'drained'], f: ['suspect', 'draining'] });
    const lose = (ref: ChunkRef, layout: Layout, lost: string[]) => lossImpact(ref, layout, nodes, new Set(lost));
    expect(lose(rep(['a']), R(1), ['a'])).toBe('lose-data');
    expect(lose(rep(['a']), R(1), ['b'])).toBeNull();
    expect(lose(rep(['a', 'b', 'c']), R(3), ['a'])).toBe('lose-protection');
    expect(lose(rep(['a', 'b', 'c']), R(3), ['a', 'b'])).toBe('lose-protection');
    expect(lose(rep(['a', 'b', 'c']), R(3), ['a', 'b', 'c'])).toBe('lose-data');
    // Copies on a dead or drained node do not count now, so losing the rest loses the data.
    expect(lose(rep(['a', 'd', 'e']), R(3), ['a'])).toBe('lose-data');
    // A suspect, draining holder still counts as a readable copy.
    expect(lose(rep(['a', 'f']), R(2), ['a'])).toBe('lose-protection');
    // Spare copies (placement above the layout's R): losing one keeps full protection.
    expect(lose(rep(['a', 'b', 'c']), R(2), ['a'])).toBeNull();
    // Already lost: not a what-if.
    expect(lose(rep(['d']), R(1), ['d'])).toBeNull();
    // EC 2+1 on a, b, c: one node costs protection, two cost the data.
    const e = ec(['a', 'b', 'c'], 2, 1);
    expect(lose(e, EC(2, 1), ['c'])).toBe('lose-protection');
    expect(lose(e, EC(2, 1), ['a', 'c'])).toBe('lose-data');
    // Inline data lives in the namespace.
    expect(lossImpact({ index: 0, chunkId: 0, sizeBytes: 3, placement: [], inline: Buffer.from('abc') }, R(3), nodes, new Set(['a']))).toBeNull();
  });

  it('what-if-lost is monotonic: losing more nodes never loses less', () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const nodes = nodeMap(Object.fromEntries(ids.map((id) => [id, ['up', 'active']])));
    const rank = { null: 0, 'lose-protection': 1, 'lose-data': 2 } as const;
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...ids), { minLength: 1, maxLength: 5 }),
        fc.subarray(ids),
        fc.subarray(ids),
        fc.integer({ min: 1, max: 5 }),
        (placement, lostA, more, replicas) => {
          const ref = rep(placement);
          const small = lossImpact(ref, R(replicas), nodes, new Set(lostA));
          const big = lossImpact(ref, R(replicas), nodes, new Set([...lostA, ...more]));
          // Losing every holder of a readable chunk always loses its data.
          if (placement.every((h) => lostA.includes(h))) expect(small).toBe('lose-data');
          // With no spare copies, more losses never rank lower.
          if (new Set(placement).size <= replicas) expect(rank[String(big) as keyof typeof rank]).toBeGreaterThanOrEqual(rank[String(small) as keyof typeof rank]);
        },
      ),
    );
  });
});
