// The repair/drain/rebalance planner is a pure function of a cluster view: every test here
// generates views with fast-check (nodes with zones, racks, capacities, liveness and admin
// states; replicated and erasure-coded chunks with missing, dead, suspect, draining and
// bad copies) and checks the plan against rules restated independently of planner.ts.
// A seeded random source drives placement, so a failing case replays from its seed.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chunkHealth, planDrain, planRebalance, planRepair, utilization, type Move, type PlanChunk, type PlanNode } from '../../../src/cluster/planner.js';
import { hasRoom } from '../../../src/cluster/placement.js';
import type { NodeState } from '../../../src/meta/types.js';
import { seededRandom as seeded } from '../../prng.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

// ---- the rules, restated ------------------------------------------------------------------

type CopyStatus = 'ok' | 'suspect' | 'gone';

/** Whether a holder's copy counts (README of planner.ts: "Rules"). */
function statusOf(nodes: ReadonlyMap<string, PlanNode>, chunk: PlanChunk, holder: string): CopyStatus {
  if (holder === '') return 'gone';
  const n = nodes.get(holder);
  if (!n || chunk.bad.has(holder)) return 'gone';
  if (n.live === 'dead' || n.admin === 'dead' || n.admin === 'drained') return 'gone';
  return n.live === 'suspect' ? 'suspect' : 'ok';
}

function copyBytesOf(chunk: PlanChunk): number {
  return chunk.ec ? chunk.ec.shardBytes : chunk.sizeBytes;
}

/** Nodes a new copy of `chunk` may go to: up, active, with room, not already in the placement. */
function eligibleTargets(nodes: ReadonlyMap<string, PlanNode>, chunk: PlanChunk): PlanNode[] {
  const inPlacement = new Set(chunk.placement);
  return [...nodes.values()].filter(
    (n) => n.live === 'up' && n.admin === 'active' && !inPlacement.has(n.nodeId) && hasRoom({ ...n, state: n.live, adminState: n.admin }, copyBytesOf(chunk)),
  );
}

function zonesOf(nodes: ReadonlyMap<string, PlanNode>, holders: Iterable<string>): Set<string> {
  const zones = new Set<string>();
  for (const h of holders) {
    const z = nodes.get(h)?.zone;
    if (z) zones.add(z);
  }
  return zones;
}

// ---- generated cluster views --------------------------------------------------------------

interface View {
  nodes: Map<string, PlanNode>;
  chunks: PlanChunk[];
  seed: number;
}

const arbNodeSpec = fc.record({
  zone: fc.constantFrom('', 'za', 'zb', 'zc'),
  rack: fc.constantFrom('', 'r1', 'r2', 'r3', 'r4'),
  totalBytes: fc.constantFrom(0, 200 * MiB, 10 * GiB, 100 * GiB),
  freeFraction: fc.constantFrom(0, 0.01, 0.3, 0.7, 1),
  live: fc.constantFrom<PlanNode['live']>('up', 'up', 'up', 'suspect', 'dead'),
  admin: fc.constantFrom<NodeState>('active', 'active', 'active', 'dead', 'draining', 'drained'),
});

const EC_SCHEMES: ReadonlyArray<readonly [number, number]> = [
  [2, 1],
  [4, 2],
  [6, 3],
];

/** One chunk over `ids` (plus 'ghost', a holder the view does not know). */
function arbChunk(ids: readonly string[], chunkId: number): fc.Arbitrary<PlanChunk> {
  const holders = [...ids, 'ghost'];
  const sizeBytes = fc.constantFrom(0, 1, 4 * KiB, MiB, 4 * MiB, 64 * MiB);
  const replicated = fc
    .record({
      replicas: fc.integer({ min: 1, max: 5 }),
      sizeBytes,
      // Up to R+1 holders (a layout lowered since the write leaves an extra copy).
      held: fc.shuffledSubarray(holders, { minLength: 0, maxLength: Math.min(6, holders.length) }),
      blanks: fc.integer({ min: 0, max: 1 }),
      badMask: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 7, maxLength: 7 }),
    })
    .map(({ replicas, sizeBytes: size, held, blanks, badMask }): PlanChunk => {
      const placement = held.slice(0, replicas + 1);
      for (let i = 0; i < blanks; i++) placement.splice(placement.length >> 1, 0, '');
      const bad = new Set(placement.filter((h, i) => h !== '' && badMask[i] === 0));
      return { chunkId, sizeBytes: size, placement, replicas, bad };
    });
  const erasure = fc
    .record({
      scheme: fc.constantFrom(...EC_SCHEMES),
      sizeBytes,
      held: fc.shuffledSubarray(holders, { minLength: holders.length, maxLength: holders.length }),
      blankMask: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 9, maxLength: 9 }),
      badMask: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 9, maxLength: 9 }),
    })
    .map(({ scheme: [k, m], sizeBytes: size, held, blankMask, badMask }): PlanChunk => {
      const placement = Array.from({ length: k + m }, (_, i) => (i < held.length && blankMask[i] !== 0 ? held[i] : ''));
      const bad = new Set(placement.filter((h, i) => h !== '' && badMask[i] === 0));
      const shardBytes = Math.ceil(Math.ceil(size / k) / 8) * 8;
      return { chunkId, sizeBytes: size, placement, replicas: 0, ec: { k, m, shardBytes }, bad };
    });
  return fc.oneof(replicated, erasure);
}

function toNodes(specs: ReadonlyArray<typeof arbNodeSpec extends fc.Arbitrary<infer T> ? T : never>): Map<string, PlanNode> {
  return new Map(
    specs.map((s, i): [string, PlanNode] => {
      const freeBytes = Math.floor(s.totalBytes * s.freeFraction);
      return [`n${i}`, { nodeId: `n${i}`, zone: s.zone, rack: s.rack, totalBytes: s.totalBytes, freeBytes, usedBytes: s.totalBytes - freeBytes, live: s.live, admin: s.admin }];
    }),
  );
}

/** 3–12 nodes and up to `maxChunks` chunks over them. */
function arbView(maxChunks: number): fc.Arbitrary<View> {
  return fc
    .integer({ min: 3, max: 12 })
    .chain((count) => fc.tuple(fc.array(arbNodeSpec, { minLength: count, maxLength: count }), fc.integer({ min: 1, max: maxChunks }), fc.integer()))
    .chain(([specs, chunkCount, seed]) => {
      const nodes = toNodes(specs);
      const ids = [...nodes.keys()];
      return fc.tuple(...Array.from({ length: chunkCount }, (_, i) => arbChunk(ids, i + 1))).map((chunks): View => ({ nodes, chunks, seed }));
    });
}

const RUNS = 400;

// ---- chunkHealth --------------------------------------------------------------------------

describe('chunkHealth', () => {
  it('counts readable and protected copies and classifies lost < needToRead ≤ under < want ≤ healthy', () => {
    fc.assert(
      fc.property(arbView(6), ({ nodes, chunks }) => {
        for (const chunk of chunks) {
          const h = chunkHealth(chunk, nodes);
          const holders = chunk.ec ? chunk.placement : [...new Set(chunk.placement)];
          const statuses = holders.map((p) => statusOf(nodes, chunk, p));
          const readable = statuses.filter((s) => s !== 'gone').length;
          const protectedCopies = statuses.filter((s) => s === 'ok').length;
          const needToRead = chunk.ec ? chunk.ec.k : 1;
          const want = chunk.ec ? chunk.ec.k + chunk.ec.m : chunk.replicas;
          expect(h).toEqual({
            want,
            readable,
            protectedCopies,
            needToRead,
            state: readable < needToRead ? 'lost' : readable >= want ? 'healthy' : 'under',
            margin: readable - needToRead,
          });
          expect(h.state === 'lost').toBe(h.readable < h.needToRead);
          expect(h.state === 'healthy').toBe(h.readable >= h.want);
          expect(h.protectedCopies).toBeLessThanOrEqual(h.readable);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('counts a suspect or draining holder as readable, and a dead, drained, bad, unknown or empty one not', () => {
    const n = (nodeId: string, over: Partial<PlanNode> = {}): PlanNode => ({ nodeId, zone: '', rack: '', totalBytes: 10 * GiB, freeBytes: 5 * GiB, usedBytes: 5 * GiB, live: 'up', admin: 'active', ...over });
    const nodes = new Map(
      [n('ok'), n('sus', { live: 'suspect' }), n('drn', { admin: 'draining' }), n('dead', { live: 'dead' }), n('adead', { admin: 'dead' }), n('gone', { admin: 'drained' }), n('bad')].map((x) => [x.nodeId, x]),
    );
    const chunk: PlanChunk = { chunkId: 1, sizeBytes: MiB, placement: ['ok', 'sus', 'drn', 'dead', 'adead', 'gone', 'bad', 'ghost', ''], replicas: 3, bad: new Set(['bad']) };
    expect(chunkHealth(chunk, nodes)).toEqual({ want: 3, readable: 3, protectedCopies: 2, needToRead: 1, state: 'healthy', margin: 2 });
    // A repeated holder is one copy.
    expect(chunkHealth({ ...chunk, placement: ['ok', 'ok', 'dead'] }, nodes)).toMatchObject({ readable: 1, state: 'under', margin: 0 });
    expect(chunkHealth({ ...chunk, placement: ['dead', 'bad', ''] }, nodes)).toMatchObject({ readable: 0, state: 'lost', margin: -1 });
    const ec: PlanChunk = { chunkId: 2, sizeBytes: MiB, placement: ['ok', 'sus', '', 'dead', 'drn', 'bad'], replicas: 0, ec: { k: 4, m: 2, shardBytes: MiB / 4 }, bad: new Set(['bad']) };
    expect(chunkHealth(ec, nodes)).toEqual({ want: 6, readable: 3, protectedCopies: 2, needToRead: 4, state: 'lost', margin: -1 });
  });
});

// ---- planRepair ---------------------------------------------------------------------------

function checkRepair(nodes: ReadonlyMap<string, PlanNode>, chunk: PlanChunk, move: Move | null): void {
  const h = chunkHealth(chunk, nodes);
  if (h.state !== 'under') {
    expect(move).toBeNull();
    return;
  }
  const statuses = chunk.placement.map((p) => statusOf(nodes, chunk, p));
  const eligible = eligibleTargets(nodes, chunk);
  const okHolders = chunk.placement.filter((_, i) => statuses[i] === 'ok');
  const readableSources = chunk.ec ? okHolders.length >= chunk.ec.k : okHolders.length > 0;
  if (move === null) {
    // Null for an under-protected chunk only when the copy cannot be made now.
    expect(eligible.length === 0 || !readableSources).toBe(true);
    return;
  }
  expect(eligible.length).toBeGreaterThan(0);
  expect(readableSources).toBe(true);
  expect(move.kind).toBe('repair');
  expect(move.chunkId).toBe(chunk.chunkId);
  expect(move.remove).toEqual([]);
  expect(move.margin).toBe(h.margin);
  expect(move.bytes).toBe(copyBytesOf(chunk) * move.create.length);

  // Targets: distinct, up, active, with room, never a node already in the placement.
  const targets = move.create.map((c) => c.target);
  const eligibleIds = new Set(eligible.map((n) => n.nodeId));
  expect(new Set(targets).size).toBe(targets.length);
  for (const t of targets) {
    expect(eligibleIds.has(t)).toBe(true);
    expect(chunk.placement).not.toContain(t);
  }
  const kept = chunk.placement.filter((_, i) => statuses[i] !== 'gone');
  const missing = chunk.ec ? statuses.filter((s) => s === 'gone').length : h.want - new Set(kept).size;
  expect(move.create.length).toBe(Math.min(missing, eligible.length));

  // Zone spreading: the first new copy goes to an unused zone when an eligible node offers one.
  const usedZones = zonesOf(nodes, kept);
  if (eligible.some((n) => n.zone !== '' && !usedZones.has(n.zone))) {
    const z = nodes.get(move.create[0].target)!.zone;
    expect(z).not.toBe('');
    expect(usedZones.has(z)).toBe(false);
  }

  if (chunk.ec) {
    const { k, m } = chunk.ec;
    expect(move.placement).toHaveLength(k + m);
    const createdSlots = new Map(move.create.map((c) => [c.slot, c.target]));
    for (let i = 0; i < k + m; i++) {
      if (statuses[i] !== 'gone') {
        // Every surviving shard (suspect ones included) stays in its slot.
        expect(move.placement[i]).toBe(chunk.placement[i]);
        expect(createdSlots.has(i)).toBe(false);
      } else {
        // Only gone slots change: to a new holder, or '' when no node could take it yet.
        expect(move.placement[i]).toBe(createdSlots.get(i) ?? '');
      }
    }
    // Each created shard is rebuilt from at least k usable shards, named by slot.
    expect(move.sources).toHaveLength(k + m);
    const usable = move.sources.filter((s, i) => s !== '' && s === chunk.placement[i] && statuses[i] === 'ok');
    expect(usable.length).toBe(move.sources.filter((s) => s !== '').length);
    expect(usable.length).toBeGreaterThanOrEqual(k);
  } else {
    for (const c of move.create) expect(c.slot).toBe(-1);
    // The new placement: every surviving copy (suspect ones too), the new ones, nothing gone.
    for (const p of new Set(kept)) expect(move.placement).toContain(p);
    for (const p of move.placement) expect(statusOf(nodes, chunk, p) === 'gone' && !targets.includes(p)).toBe(false);
    expect(new Set(move.placement).size).toBe(move.placement.length);
    expect(move.placement.length).toBeLessThanOrEqual(h.want);
    expect(move.placement.length).toBe(new Set(kept).size + targets.length);
    expect(move.sources.length).toBeGreaterThan(0);
    for (const s of move.sources) expect(statusOf(nodes, chunk, s)).toBe('ok');
  }
}

describe('planRepair', () => {
  it('property: null for healthy and lost chunks; otherwise a move that only adds copies on eligible nodes', () => {
    fc.assert(
      fc.property(arbView(6), ({ nodes, chunks, seed }) => {
        const random = seeded(seed);
        for (const chunk of chunks) checkRepair(nodes, chunk, planRepair(chunk, nodes, random));
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('re-creates a dead node’s replica in a zone the chunk does not use yet', () => {
    const n = (nodeId: string, zone: string, over: Partial<PlanNode> = {}): PlanNode => ({ nodeId, zone, rack: '', totalBytes: 10 * GiB, freeBytes: 5 * GiB, usedBytes: 5 * GiB, live: 'up', admin: 'active', ...over });
    const nodes = new Map([n('a1', 'za'), n('b1', 'zb'), n('c1', 'zc', { live: 'dead' }), n('a2', 'za'), n('b2', 'zb'), n('c2', 'zc')].map((x) => [x.nodeId, x]));
    const chunk: PlanChunk = { chunkId: 7, sizeBytes: MiB, placement: ['a1', 'b1', 'c1'], replicas: 3, bad: new Set() };
    for (let seed = 1; seed <= 50; seed++) {
      const move = planRepair(chunk, nodes, seeded(seed));
      expect(move).toMatchObject({ kind: 'repair', create: [{ slot: -1, target: 'c2' }], placement: ['a1', 'b1', 'c2'], remove: [], margin: 1, bytes: MiB });
    }
  });

  it('does not replace a suspect copy (it may come back)', () => {
    const n = (nodeId: string, over: Partial<PlanNode> = {}): PlanNode => ({ nodeId, zone: '', rack: '', totalBytes: 10 * GiB, freeBytes: 5 * GiB, usedBytes: 5 * GiB, live: 'up', admin: 'active', ...over });
    const nodes = new Map([n('a'), n('b', { live: 'suspect' }), n('c'), n('d')].map((x) => [x.nodeId, x]));
    expect(planRepair({ chunkId: 1, sizeBytes: MiB, placement: ['a', 'b', 'c'], replicas: 3, bad: new Set() }, nodes, seeded(1))).toBeNull();
    const ec: PlanChunk = { chunkId: 2, sizeBytes: MiB, placement: ['a', 'b', 'c'], replicas: 0, ec: { k: 2, m: 1, shardBytes: MiB / 2 }, bad: new Set() };
    expect(planRepair(ec, nodes, seeded(1))).toBeNull();
  });

  it('rebuilds an EC shard only from k shards that are up, not from a suspect one', () => {
    const n = (nodeId: string, over: Partial<PlanNode> = {}): PlanNode => ({ nodeId, zone: '', rack: '', totalBytes: 10 * GiB, freeBytes: 5 * GiB, usedBytes: 5 * GiB, live: 'up', admin: 'active', ...over });
    const nodes = new Map([n('a'), n('b', { live: 'suspect' }), n('c', { live: 'dead' }), n('d'), n('e')].map((x) => [x.nodeId, x]));
    // 2+1 with shard 0 up, shard 1 suspect, shard 2 dead: readable (2 ≥ k) but only one
    // shard can be read now; a rebuild needs k = 2 of them, so no repair yet.
    const ec: PlanChunk = { chunkId: 3, sizeBytes: MiB, placement: ['a', 'b', 'c'], replicas: 0, ec: { k: 2, m: 1, shardBytes: MiB / 2 }, bad: new Set() };
    expect(chunkHealth(ec, nodes).state).toBe('under');
    expect(planRepair(ec, nodes, seeded(1))).toBeNull();
    // Once the suspect node is up again the dead shard is rebuilt from the other two.
    nodes.set('b', n('b'));
    const move = planRepair(ec, nodes, seeded(1));
    expect(move).not.toBeNull();
    expect(move!.sources).toEqual(['a', 'b', '']);
    expect(move!.create).toHaveLength(1);
    expect(move!.create[0].slot).toBe(2);
  });
});

// ---- planDrain ----------------------------------------------------------------------------

describe('planDrain', () => {
  it('property: moves exactly one copy off a draining node that is not dead, to a node outside the placement', () => {
    fc.assert(
      fc.property(arbView(6), ({ nodes, chunks, seed }) => {
        const random = seeded(seed);
        for (const chunk of chunks) {
          const move = planDrain(chunk, nodes, random);
          const at = chunk.placement.findIndex((p) => {
            const n = nodes.get(p);
            return n !== undefined && n.admin === 'draining' && n.live !== 'dead' && !chunk.bad.has(p);
          });
          const eligible = eligibleTargets(nodes, chunk);
          if (at < 0 || eligible.length === 0) {
            expect(move).toBeNull();
            continue;
          }
          expect(move).not.toBeNull();
          const m = move!;
          expect(m.kind).toBe('drain');
          expect(m.chunkId).toBe(chunk.chunkId);
          expect(m.create).toHaveLength(1);
          const target = m.create[0].target;
          expect(eligible.map((n) => n.nodeId)).toContain(target);
          expect(chunk.placement).not.toContain(target);
          expect(m.create[0].slot).toBe(chunk.ec ? at : -1);
          // Exactly one slot changes: the draining holder's, to the target.
          expect(m.placement).toHaveLength(chunk.placement.length);
          const changed = m.placement.flatMap((p, i) => (p !== chunk.placement[i] ? [i] : []));
          expect(changed).toEqual([at]);
          expect(m.placement[at]).toBe(target);
          const from = chunk.placement[at];
          expect(nodes.get(from)!.admin).toBe('draining');
          expect(nodes.get(from)!.live).not.toBe('dead');
          expect(m.remove).toEqual([from]);
          expect(m.bytes).toBe(copyBytesOf(chunk));
          // The copy is read from the draining node itself (by slot for EC).
          if (chunk.ec) expect(m.sources[at]).toBe(from);
          else expect(m.sources).toEqual([from]);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

// ---- planRebalance ------------------------------------------------------------------------

function chunksByNode(chunks: readonly PlanChunk[]): Map<string, PlanChunk[]> {
  const on = new Map<string, PlanChunk[]>();
  for (const c of chunks) {
    for (const p of new Set(c.placement)) {
      if (p === '') continue;
      if (!on.has(p)) on.set(p, []);
      on.get(p)!.push(c);
    }
  }
  return on;
}

/** The view the healer hands planRebalance: used bytes = bytes of the copies placed on each node. */
function withPlacedBytes(nodes: ReadonlyMap<string, PlanNode>, chunks: readonly PlanChunk[]): Map<string, PlanNode> {
  const used = new Map<string, number>();
  for (const c of chunks) for (const p of c.placement) if (p !== '') used.set(p, (used.get(p) ?? 0) + copyBytesOf(c));
  return new Map([...nodes].map(([id, n]) => [id, { ...n, usedBytes: used.get(id) ?? 0 }]));
}

function rebalancePool(nodes: ReadonlyMap<string, PlanNode>): PlanNode[] {
  return [...nodes.values()].filter((n) => n.live === 'up' && n.admin === 'active' && n.totalBytes > 0);
}

/** Σ used²/total over the pool: every move that narrows the spread lowers it, so plans cannot cycle. */
function potential(used: ReadonlyMap<string, number>, pool: readonly PlanNode[]): number {
  return pool.reduce((a, n) => a + ((used.get(n.nodeId) ?? 0) * (used.get(n.nodeId) ?? 0)) / n.totalBytes, 0);
}

/**
 * Checks one plan move by move against the state it was planned on and returns the chunks
 * with the moves applied.
 */
function checkRebalance(nodes: ReadonlyMap<string, PlanNode>, chunks: readonly PlanChunk[], moves: readonly Move[], opts: { threshold: number; maxMoves: number }): PlanChunk[] {
  expect(moves.length).toBeLessThanOrEqual(opts.maxMoves);
  expect(new Set(moves.map((m) => m.chunkId)).size).toBe(moves.length);
  const pool = rebalancePool(nodes);
  const poolIds = new Set(pool.map((n) => n.nodeId));
  const used = new Map(pool.map((n) => [n.nodeId, n.usedBytes]));
  const util = (id: string): number => (used.get(id) ?? 0) / nodes.get(id)!.totalBytes;
  const mean = pool.reduce((a, n) => a + util(n.nodeId), 0) / Math.max(1, pool.length);
  const byId = new Map(chunks.map((c) => [c.chunkId, c]));
  const after = new Map(byId);
  for (const m of moves) {
    const chunk = byId.get(m.chunkId)!;
    expect(m.kind).toBe('rebalance');
    // Never for an unhealthy chunk: repair comes first.
    expect(chunkHealth(chunk, nodes).state).toBe('healthy');
    expect(m.create).toHaveLength(1);
    expect(m.remove).toHaveLength(1);
    const source = m.remove[0];
    const target = m.create[0].target;
    const at = chunk.placement.indexOf(source);
    expect(at).toBeGreaterThanOrEqual(0);
    expect(m.create[0].slot).toBe(chunk.ec ? at : -1);
    expect(poolIds.has(source)).toBe(true);
    expect(poolIds.has(target)).toBe(true);
    expect(chunk.placement).not.toContain(target);
    expect(m.placement).toEqual(chunk.placement.map((p, i) => (i === at ? target : p)));
    // The copy that moves is read from the source: it must be a good copy.
    expect(statusOf(nodes, chunk, source)).toBe('ok');
    const b = copyBytesOf(chunk);
    expect(m.bytes).toBe(b);
    // From a node above threshold × mean to one below the mean, narrowing the spread.
    expect(util(source)).toBeGreaterThan(opts.threshold * mean);
    expect(util(target)).toBeLessThan(mean);
    const before = potential(used, pool);
    used.set(source, (used.get(source) ?? 0) - b);
    used.set(target, (used.get(target) ?? 0) + b);
    expect(util(target)).toBeLessThanOrEqual(util(source));
    if (b > 0) expect(potential(used, pool)).toBeLessThan(before);
    after.set(m.chunkId, { ...chunk, placement: m.placement });
  }
  return [...after.values()];
}

/** Nodes with the used bytes and free bytes that follow from the chunks placed on them. */
function afterMoves(nodes: ReadonlyMap<string, PlanNode>, chunks: readonly PlanChunk[]): Map<string, PlanNode> {
  const placed = withPlacedBytes(nodes, chunks);
  for (const n of placed.values()) {
    const was = nodes.get(n.nodeId)!;
    n.freeBytes = Math.max(0, was.freeBytes - (n.usedBytes - was.usedBytes));
  }
  return placed;
}

describe('planRebalance', () => {
  it('property: only healthy chunks, from above threshold × mean to below the mean, each move narrowing the spread; re-planning reaches a fixpoint', () => {
    fc.assert(
      fc.property(arbView(30), fc.integer({ min: 1, max: 16 }), fc.constantFrom(1.05, 1.2, 1.5), ({ nodes: generated, chunks, seed }, maxMoves, threshold) => {
        const random = seeded(seed);
        const opts = { threshold, maxMoves };
        let nodes = withPlacedBytes(generated, chunks);
        let current = chunks;
        const rounds = 200;
        for (let round = 0; ; round++) {
          expect(round).toBeLessThan(rounds);
          const moves = planRebalance(nodes, chunksByNode(current), opts, random);
          if (moves.length === 0) break;
          current = checkRebalance(nodes, current, moves, opts);
          nodes = afterMoves(nodes, current);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('property: with every chunk a candidate, re-planning until the plan is empty leaves no node above threshold × mean unless none of its chunks fits anywhere', () => {
    // Equal capacities, every node up and active with plenty of room, single-copy chunks:
    // a move is possible whenever a node is above the threshold, except when the fullest
    // node and the emptiest differ by less than two of its chunks.
    const arb = fc
      .integer({ min: 3, max: 12 })
      .chain((count) =>
        fc.tuple(
          fc.array(fc.array(fc.integer({ min: 64 * KiB, max: 4 * MiB }), { maxLength: 40 }), { minLength: count, maxLength: count }),
          fc.constantFrom('', 'za', 'zb'),
          fc.integer({ min: 1, max: 64 }),
          fc.constantFrom(1.05, 1.2, 1.5),
          fc.integer(),
        ),
      );
    fc.assert(
      fc.property(arb, ([perNode, zone, maxMoves, threshold, seed]) => {
        const random = seeded(seed);
        let chunkId = 0;
        const chunks: PlanChunk[] = perNode.flatMap((sizes, i) => sizes.map((sizeBytes) => ({ chunkId: ++chunkId, sizeBytes, placement: [`n${i}`], replicas: 1, bad: new Set<string>() })));
        const base = new Map(
          perNode.map((_, i): [string, PlanNode] => [`n${i}`, { nodeId: `n${i}`, zone: i % 2 === 0 ? zone : '', rack: '', totalBytes: TiB, freeBytes: TiB, usedBytes: 0, live: 'up', admin: 'active' }]),
        );
        let nodes = afterMoves(base, chunks);
        let current = chunks;
        const opts = { threshold, maxMoves };
        for (let round = 0; ; round++) {
          expect(round).toBeLessThan(200);
          const moves = planRebalance(nodes, chunksByNode(current), opts, random);
          if (moves.length === 0) break;
          current = checkRebalance(nodes, current, moves, opts);
          nodes = afterMoves(nodes, current);
        }
        // Done: the spread is within the threshold, or too narrow for any chunk of the
        // fullest node to move without overshooting the emptiest.
        const list = [...nodes.values()];
        const mean = list.reduce((a, n) => a + utilization(n), 0) / list.length;
        const fullest = list.reduce((a, n) => (n.usedBytes > a.usedBytes ? n : a));
        const emptiest = list.reduce((a, n) => (n.usedBytes < a.usedBytes ? n : a));
        if (utilization(fullest) > threshold * mean) {
          const smallest = Math.min(...current.filter((c) => c.placement[0] === fullest.nodeId).map((c) => c.sizeBytes));
          expect(fullest.usedBytes - emptiest.usedBytes).toBeLessThan(2 * smallest);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('brings a new empty node in: copies move to it until no node is above 1.2 × the mean', () => {
    const n = (nodeId: string, zone: string): PlanNode => ({ nodeId, zone, rack: '', totalBytes: 100 * GiB, freeBytes: 100 * GiB, usedBytes: 0, live: 'up', admin: 'active' });
    const base = new Map(['a', 'b', 'c', 'd', 'e'].map((id, i) => [id, n(id, `z${i}`)]));
    const rnd = seeded(3);
    // 200 R=3 chunks over a..d; e joins empty.
    const ids = ['a', 'b', 'c', 'd'];
    const chunks: PlanChunk[] = Array.from({ length: 200 }, (_, i) => ({ chunkId: i + 1, sizeBytes: 4 * MiB, placement: [ids[i % 4], ids[(i + 1) % 4], ids[(i + 2) % 4]], replicas: 3, bad: new Set<string>() }));
    let nodes = afterMoves(base, chunks);
    let current = chunks;
    let rounds = 0;
    for (; rounds < 50; rounds++) {
      const moves = planRebalance(nodes, chunksByNode(current), { threshold: 1.2, maxMoves: 64 }, rnd);
      if (moves.length === 0) break;
      current = checkRebalance(nodes, current, moves, { threshold: 1.2, maxMoves: 64 });
      nodes = afterMoves(nodes, current);
    }
    expect(rounds).toBeLessThan(50);
    const utils = [...nodes.values()].map(utilization);
    const mean = utils.reduce((a, b) => a + b, 0) / utils.length;
    for (const u of utils) expect(u).toBeLessThanOrEqual(1.2 * mean);
    expect(nodes.get('e')!.usedBytes).toBeGreaterThan(0);
    // Every chunk still has 3 distinct holders.
    for (const c of current) expect(new Set(c.placement).size).toBe(3);
  });

  it('never moves a copy reported bad (the move would read it)', () => {
    const n = (nodeId: string, usedBytes: number): PlanNode => ({ nodeId, zone: '', rack: '', totalBytes: 10 * GiB, freeBytes: 10 * GiB - usedBytes, usedBytes, live: 'up', admin: 'active' });
    // A layout lowered to R=1 leaves two copies; the one on the full node is bad.
    const chunk: PlanChunk = { chunkId: 1, sizeBytes: GiB, placement: ['full', 'mid'], replicas: 1, bad: new Set(['full']) };
    const nodes = new Map([n('full', 4 * GiB), n('mid', GiB), n('empty', 0)].map((x) => [x.nodeId, x]));
    expect(chunkHealth(chunk, nodes).state).toBe('healthy');
    expect(planRebalance(nodes, new Map([['full', [chunk]], ['mid', [chunk]]]), { threshold: 1.2, maxMoves: 10 }, seeded(1))).toEqual([]);
    // The same chunk with a good copy there moves.
    const good = { ...chunk, bad: new Set<string>() };
    expect(planRebalance(nodes, new Map([['full', [good]], ['mid', [good]]]), { threshold: 1.2, maxMoves: 10 }, seeded(1))).toMatchObject([{ remove: ['full'], create: [{ target: 'empty' }] }]);
  });

  it('plans nothing with fewer than two eligible nodes or an empty cluster', () => {
    const n = (nodeId: string, over: Partial<PlanNode> = {}): PlanNode => ({ nodeId, zone: '', rack: '', totalBytes: 10 * GiB, freeBytes: 5 * GiB, usedBytes: 5 * GiB, live: 'up', admin: 'active', ...over });
    const a = n('a');
    const chunk: PlanChunk = { chunkId: 1, sizeBytes: MiB, placement: ['a'], replicas: 1, bad: new Set() };
    const on = new Map([['a', [chunk]]]);
    expect(planRebalance(new Map([['a', a]]), on, { threshold: 1.2, maxMoves: 10 })).toEqual([]);
    expect(planRebalance(new Map([['a', a], ['b', n('b', { live: 'dead', usedBytes: 0 })]]), on, { threshold: 1.2, maxMoves: 10 })).toEqual([]);
    expect(planRebalance(new Map([['a', n('a', { usedBytes: 0 })], ['b', n('b', { usedBytes: 0 })]]), new Map(), { threshold: 1.2, maxMoves: 10 })).toEqual([]);
  });
});
