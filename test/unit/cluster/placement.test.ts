// Placement is pure: every test drives it with a seeded random source, so a failing seed
// replays exactly.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hasRoom, minCopies, placeCopies, RESERVE_BYTES, type PlacementNode } from '../../../src/cluster/placement.js';
import { seededRandom as seeded } from '../../prng.js';

const GiB = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;

function node(nodeId: string, over: Partial<PlacementNode> = {}): PlacementNode {
  return { nodeId, zone: '', rack: '', totalBytes: 100 * GiB, freeBytes: 50 * GiB, state: 'up', ...over };
}

function zoneOf(nodes: readonly PlacementNode[], id: string): string {
  const n = nodes.find((x) => x.nodeId === id);
  if (!n) throw new Error(`placed unknown node ${id}`);
  return n.zone;
}

function rackOf(nodes: readonly PlacementNode[], id: string): string {
  const n = nodes.find((x) => x.nodeId === id);
  if (!n) throw new Error(`placed unknown node ${id}`);
  return n.rack;
}

describe('hasRoom', () => {
  it('counts a node of unknown capacity (no heartbeat yet: totalBytes 0) as having room', () => {
    expect(hasRoom(node('a', { totalBytes: 0, freeBytes: 0 }), 4 * MiB)).toBe(true);
    expect(hasRoom(node('a', { totalBytes: 0, freeBytes: 0 }), 10 * GiB)).toBe(true);
  });

  it('keeps RESERVE_BYTES free on a large disk', () => {
    const bytes = 4 * MiB;
    const big = 100 * GiB; // 5% is far above the reserve: the reserve applies
    expect(hasRoom(node('a', { totalBytes: big, freeBytes: bytes + RESERVE_BYTES }), bytes)).toBe(true);
    expect(hasRoom(node('a', { totalBytes: big, freeBytes: bytes + RESERVE_BYTES - 1 }), bytes)).toBe(false);
    expect(hasRoom(node('a', { totalBytes: big, freeBytes: 0 }), bytes)).toBe(false);
  });

  it('keeps 5% free on a disk too small for the full reserve', () => {
    const bytes = MiB;
    const small = 200 * MiB; // 5% = 10 MiB < RESERVE_BYTES
    expect(hasRoom(node('a', { totalBytes: small, freeBytes: bytes + 10 * MiB }), bytes)).toBe(true);
    expect(hasRoom(node('a', { totalBytes: small, freeBytes: bytes + 10 * MiB - 1 }), bytes)).toBe(false);
  });
});

describe('placeCopies', () => {
  it('uses only nodes that are up and have room', () => {
    const nodes = [
      node('up'),
      node('suspect', { state: 'suspect' }),
      node('dead', { state: 'dead' }),
      node('draining', { state: 'draining' }),
      node('full', { freeBytes: RESERVE_BYTES }),
      node('fresh', { totalBytes: 0, freeBytes: 0 }),
    ];
    for (let seed = 1; seed <= 50; seed++) {
      const got = placeCopies(nodes, { count: 5, bytes: 4 * MiB }, seeded(seed));
      expect(got.sort()).toEqual(['fresh', 'up']);
    }
  });

  it('returns distinct nodes and never an excluded one', () => {
    const nodes = Array.from({ length: 8 }, (_, i) => node(`n${i}`));
    const exclude = new Set(['n1', 'n4', 'n6']);
    for (let seed = 1; seed <= 100; seed++) {
      const got = placeCopies(nodes, { count: 4, bytes: MiB, exclude }, seeded(seed));
      expect(got).toHaveLength(4);
      expect(new Set(got).size).toBe(4);
      for (const id of got) expect(exclude.has(id)).toBe(false);
    }
  });

  it('returns fewer than count when not enough nodes qualify, and none for count 0 or an empty cluster', () => {
    const nodes = [node('a'), node('b'), node('c', { state: 'dead' })];
    expect(placeCopies(nodes, { count: 3, bytes: MiB }, seeded(1)).sort()).toEqual(['a', 'b']);
    expect(placeCopies(nodes, { count: 3, bytes: MiB, exclude: new Set(['a', 'b']) }, seeded(1))).toEqual([]);
    expect(placeCopies(nodes, { count: 0, bytes: MiB }, seeded(1))).toEqual([]);
    expect(placeCopies([], { count: 3, bytes: MiB }, seeded(1))).toEqual([]);
  });

  it('puts each of 3 copies in a distinct zone when there are 3 zones, whatever the seed and load', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = seeded(seed * 7919);
      // 3 zones of unequal size and random load: the zone rule must beat the utilization draw.
      const nodes: PlacementNode[] = [];
      const sizes = [1 + Math.floor(rnd() * 4), 1 + Math.floor(rnd() * 4), 1 + Math.floor(rnd() * 4)];
      ['za', 'zb', 'zc'].forEach((zone, z) => {
        for (let i = 0; i < sizes[z]; i++) {
          nodes.push(node(`${zone}-${i}`, { zone, rack: `r${i}`, freeBytes: Math.floor(rnd() * 90 * GiB) + GiB }));
        }
      });
      const got = placeCopies(nodes, { count: 3, bytes: 4 * MiB }, seeded(seed));
      expect(got).toHaveLength(3);
      expect(new Set(got.map((id) => zoneOf(nodes, id))).size).toBe(3);
    }
  });

  it('avoids zones already used by earlier copies (a replacement)', () => {
    const nodes = ['za', 'zb', 'zc'].flatMap((zone) => [node(`${zone}-0`, { zone }), node(`${zone}-1`, { zone })]);
    for (let seed = 1; seed <= 100; seed++) {
      const got = placeCopies(nodes, { count: 1, bytes: MiB, exclude: new Set(['za-0', 'zb-0', 'zc-0']), usedZones: new Set(['za', 'zb']) }, seeded(seed));
      expect(got).toEqual(['zc-1']);
      const two = placeCopies(nodes, { count: 2, bytes: MiB, usedZones: new Set(['zb']) }, seeded(seed));
      expect(two.map((id) => zoneOf(nodes, id)).sort()).toEqual(['za', 'zc']);
    }
  });

  it('spreads over racks when nodes carry no zone', () => {
    const nodes = ['r1', 'r2', 'r3'].flatMap((rack) => [0, 1, 2].map((i) => node(`${rack}-${i}`, { rack, freeBytes: (10 + i * 40) * GiB })));
    for (let seed = 1; seed <= 200; seed++) {
      const got = placeCopies(nodes, { count: 3, bytes: MiB }, seeded(seed));
      expect(new Set(got.map((id) => rackOf(nodes, id))).size).toBe(3);
    }
    // With earlier copies on r1 and r2, a replacement goes to r3.
    for (let seed = 1; seed <= 50; seed++) {
      const got = placeCopies(nodes, { count: 1, bytes: MiB, usedRacks: new Set(['r1', 'r2']) }, seeded(seed));
      expect(rackOf(nodes, got[0])).toBe('r3');
    }
  });

  it('uses every zone first, then a new rack, when there are fewer zones than copies', () => {
    // Two zones; zone za has racks r1 and r2. After one copy in each zone the third
    // goes to a rack not used yet.
    const nodes = [node('a1', { zone: 'za', rack: 'r1' }), node('a2', { zone: 'za', rack: 'r1' }), node('a3', { zone: 'za', rack: 'r2' }), node('b1', { zone: 'zb', rack: 'r3' })];
    for (let seed = 1; seed <= 200; seed++) {
      const got = placeCopies(nodes, { count: 3, bytes: MiB }, seeded(seed));
      expect(new Set(got.slice(0, 2).map((id) => zoneOf(nodes, id))).size).toBe(2);
      expect(new Set(got.map((id) => rackOf(nodes, id))).size).toBe(3);
    }
  });

  it('prefers the least utilized node: over 2000 draws an empty node beats a 90% full one by far', () => {
    const nodes = [node('full90', { totalBytes: 100 * GiB, freeBytes: 10 * GiB }), node('empty', { totalBytes: 100 * GiB, freeBytes: 100 * GiB })];
    const rnd = seeded(42);
    let empty = 0;
    const draws = 2000;
    for (let i = 0; i < draws; i++) if (placeCopies(nodes, { count: 1, bytes: MiB }, rnd)[0] === 'empty') empty++;
    // Weights 0.01 + free²: 1.01 vs 0.02, so ~98% of draws; 90% leaves a wide margin.
    expect(empty / draws).toBeGreaterThan(0.9);
    // ...yet the full node is still drawn sometimes: a burst placed from one view spreads.
    expect(empty).toBeLessThan(draws);
  });

  it('spreads a burst over equally loaded nodes instead of piling onto one', () => {
    const nodes = Array.from({ length: 4 }, (_, i) => node(`n${i}`));
    const rnd = seeded(7);
    const hits = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const id = placeCopies(nodes, { count: 1, bytes: MiB }, rnd)[0];
      hits.set(id, (hits.get(id) ?? 0) + 1);
    }
    for (const n of nodes) expect(hits.get(n.nodeId) ?? 0).toBeGreaterThan(800); // ~1000 each
  });

  it('property: a set of distinct eligible nodes of size min(count, eligible), covering min(count, zones) zones', () => {
    const arbNode = fc.record({
      zone: fc.constantFrom('', 'za', 'zb', 'zc'),
      rack: fc.constantFrom('', 'r1', 'r2', 'r3', 'r4'),
      totalBytes: fc.constantFrom(0, 200 * MiB, 10 * GiB, 100 * GiB),
      freeFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      state: fc.constantFrom('up', 'up', 'up', 'suspect', 'dead'),
    });
    fc.assert(
      fc.property(
        fc.array(arbNode, { maxLength: 12 }),
        fc.integer({ min: 0, max: 8 }),
        fc.constantFrom(0, MiB, 64 * MiB),
        fc.array(fc.integer({ min: 0, max: 11 }), { maxLength: 4 }),
        fc.integer(),
        (specs, count, bytes, excludeIdx, seed) => {
          const nodes: PlacementNode[] = specs.map((s, i) => ({
            nodeId: `n${i}`,
            zone: s.zone,
            rack: s.rack,
            totalBytes: s.totalBytes,
            freeBytes: Math.floor(s.totalBytes * s.freeFraction),
            state: s.state,
          }));
          const exclude = new Set(excludeIdx.map((i) => `n${i}`));
          const eligible = nodes.filter((n) => n.state === 'up' && !exclude.has(n.nodeId) && hasRoom(n, bytes));
          const eligibleIds = new Set(eligible.map((n) => n.nodeId));
          const got = placeCopies(nodes, { count, bytes, exclude }, seeded(seed));
          expect(new Set(got).size).toBe(got.length);
          for (const id of got) expect(eligibleIds.has(id)).toBe(true);
          expect(got.length).toBe(Math.min(count, eligible.length));
          const zones = new Set(eligible.map((n) => n.zone).filter((z) => z !== ''));
          const placedZones = new Set(got.map((id) => zoneOf(nodes, id)).filter((z) => z !== ''));
          expect(placedZones.size).toBe(Math.min(got.length, zones.size));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('minCopies', () => {
  it('replicas: R − ⌊R/2⌋ (a majority, as Ceph min_size)', () => {
    const many = 100;
    expect(minCopies({ kind: 'replicas', replicas: 1 }, many)).toBe(1);
    expect(minCopies({ kind: 'replicas', replicas: 2 }, many)).toBe(1);
    expect(minCopies({ kind: 'replicas', replicas: 3 }, many)).toBe(2);
    expect(minCopies({ kind: 'replicas', replicas: 4 }, many)).toBe(2);
    expect(minCopies({ kind: 'replicas', replicas: 5 }, many)).toBe(3);
    for (let r = 1; r <= 10; r++) expect(minCopies({ kind: 'replicas', replicas: r }, many)).toBe(r - Math.floor(r / 2));
  });

  it('replicas: never more than the nodes the cluster has, and at least 1', () => {
    expect(minCopies({ kind: 'replicas', replicas: 3 }, 1)).toBe(1);
    expect(minCopies({ kind: 'replicas', replicas: 3 }, 2)).toBe(2);
    expect(minCopies({ kind: 'replicas', replicas: 5 }, 2)).toBe(2);
    expect(minCopies({ kind: 'replicas', replicas: 5 }, 3)).toBe(3);
    expect(minCopies({ kind: 'replicas', replicas: 3 }, 0)).toBe(1);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 30 }), (r, registered) => {
        expect(minCopies({ kind: 'replicas', replicas: r }, registered)).toBe(Math.max(1, Math.min(r - Math.floor(r / 2), registered)));
      }),
    );
  });

  it('erasure coding: k+1 shards whatever the cluster size', () => {
    for (const registered of [0, 1, 3, 5, 9, 100]) {
      expect(minCopies({ kind: 'ec', k: 4, m: 2 }, registered)).toBe(5);
      expect(minCopies({ kind: 'ec', k: 6, m: 3 }, registered)).toBe(7);
      expect(minCopies({ kind: 'ec', k: 2, m: 1 }, registered)).toBe(3);
      expect(minCopies({ kind: 'ec', k: 10, m: 4 }, registered)).toBe(11);
    }
  });
});
