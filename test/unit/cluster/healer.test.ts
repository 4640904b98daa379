// The healer (the leader's executor of planner.ts) driven through its public API against
// in-memory twins: a namespace (chunk refs, node records, bad copies, garbage) whose
// commands apply as the real ones do, chunk servers holding objects in Maps, and a
// cluster view whose liveness the test sets. The healer runs on a 5 ms timer; each test
// waits for an end state with a deadline, never for a fixed time.
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkError, type ChunkApi, type ChunkCapacity } from '../../../src/chunks/api.js';
import { encodeStripe, shardSizeBytes } from '../../../src/chunks/ec.js';
import { EventLog } from '../../../src/cluster/events.js';
import { Healer, type HealerOptions, type HealerStore } from '../../../src/cluster/healer.js';
import type { ClusterViewReply__Output } from '../../../src/meta/gen/dfs/meta/ClusterViewReply.js';
import type { HealthStatusReply } from '../../../src/meta/gen/dfs/meta/HealthStatusReply.js';
import { S_IFREG, type Attr, type ChunkRef, type Command, type Ino, type Layout, type NodeRecord, type Result } from '../../../src/meta/types.js';
import { memoryLogger, patternBytes } from '../chunks/helpers.js';

const GiB = 1024 * 1024 * 1024;

/** One chunk server: objects in a Map, immutable as in ChunkStore (a different rewrite is refused). */
class FakeChunkServer implements ChunkApi {
  readonly objects = new Map<number, Buffer>();
  /** When the process is gone: every call fails as an unreachable server would. */
  down = false;
  readonly writes: Array<{ chunkId: number; atMs: number; bytes: number }> = [];

  constructor(readonly nodeId: string) {}

  private check(): void {
    if (this.down) throw new ChunkError('UNAVAILABLE', `${this.nodeId} is down`);
  }

  async writeChunk(chunkId: number, data: Buffer): Promise<void> {
    this.check();
    const old = this.objects.get(chunkId);
    if (old && !old.equals(data)) throw new ChunkError('INVALID', `chunk ${chunkId} exists with different content on ${this.nodeId}`);
    this.objects.set(chunkId, Buffer.from(data));
    this.writes.push({ chunkId, atMs: performance.now(), bytes: data.length });
  }

  async readChunk(chunkId: number, offset: number, length: number): Promise<Buffer> {
    this.check();
    const o = this.objects.get(chunkId);
    if (!o) throw new ChunkError('NOT_FOUND', `chunk ${chunkId} not on ${this.nodeId}`);
    return Buffer.from(o.subarray(offset, offset + length));
  }

  async deleteChunk(chunkId: number): Promise<void> {
    this.check();
    this.objects.delete(chunkId);
  }

  async capacity(): Promise<ChunkCapacity> {
    const used = [...this.objects.values()].reduce((a, b) => a + b.length, 0);
    return { totalBytes: GiB, freeBytes: GiB - used, usedBytes: used, chunkCount: this.objects.size };
  }
}

function attrOf(ino: Ino, layout: Layout): Attr {
  const t = { sec: 0, nsec: 0 };
  return { ino, mode: S_IFREG | 0o644, uid: 0, gid: 0, size: 0, nlink: 1, rdev: 0, atime: t, mtime: t, ctime: t, version: 1, chunkSizeBytes: 4 * 1024 * 1024, layout };
}

/** The namespace as the healer sees it, with commands applied as src/meta/apply.ts does. */
class FakeStore implements HealerStore {
  readonly refs = new Map<number, { ino: Ino; ref: ChunkRef }>();
  readonly layouts = new Map<Ino, Layout>();
  readonly garbage = new Map<number, string[]>();
  readonly bad = new Map<number, Set<string>>();
  readonly records = new Map<string, NodeRecord>();
  readonly commands: Command[] = [];

  async scanChunkRefs(cursor: Buffer | null, limit: number): Promise<{ refs: Array<{ ino: Ino; ref: ChunkRef }>; next: Buffer | null }> {
    const after = cursor ? Number(cursor.toString()) : 0;
    const ids = [...this.refs.keys()].filter((id) => id > after).sort((a, b) => a - b);
    const page = ids.slice(0, limit);
    const refs = page.map((id) => {
      const r = this.refs.get(id)!;
      return { ino: r.ino, ref: { ...r.ref, placement: [...r.ref.placement] } };
    });
    return { refs, next: ids.length > limit ? Buffer.from(String(page[page.length - 1])) : null };
  }

  async chunkOwner(chunkId: number): Promise<{ ino: Ino; ref: ChunkRef } | null> {
    const r = this.refs.get(chunkId);
    return r ? { ino: r.ino, ref: { ...r.ref, placement: [...r.ref.placement] } } : null;
  }

  async garbageHolders(chunkId: number): Promise<string[] | null> {
    return this.garbage.get(chunkId) ?? null;
  }

  async badCopies(limit: number): Promise<Array<{ chunkId: number; nodeId: string }>> {
    return [...this.bad].flatMap(([chunkId, nodes]) => [...nodes].map((nodeId) => ({ chunkId, nodeId }))).slice(0, limit);
  }

  async getattr(ino: Ino): Promise<Result<Attr>> {
    const layout = this.layouts.get(ino);
    return layout ? { ok: true, value: attrOf(ino, layout) } : { ok: false, errno: 2 };
  }

  async listNodes(): Promise<NodeRecord[]> {
    return [...this.records.values()].map((r) => ({ ...r }));
  }

  async execute(c: Command): Promise<Result<unknown>> {
    this.commands.push(c);
    switch (c.op) {
      case 'setNodeState': {
        const rec = this.records.get(c.nodeId);
        if (!rec) return { ok: false, errno: 2 };
        this.records.set(c.nodeId, { ...rec, state: c.state });
        return { ok: true, value: null };
      }
      case 'setPlacement': {
        const r = this.refs.get(c.chunkId);
        if (!r) {
          this.garbage.set(c.chunkId, [...new Set([...(this.garbage.get(c.chunkId) ?? []), ...c.placement.filter((p) => p !== '')])]);
          return { ok: true, value: null };
        }
        const ec = r.ref.ec;
        if (ec ? c.placement.length !== ec.k + ec.m : c.placement.some((p) => p === '') || new Set(c.placement).size !== c.placement.length) return { ok: false, errno: 22 };
        r.ref = { ...r.ref, placement: [...c.placement] };
        const bad = this.bad.get(c.chunkId);
        if (bad) for (const n of [...bad]) if (!c.placement.includes(n)) bad.delete(n);
        return { ok: true, value: null };
      }
      case 'reportBadCopy': {
        if (!this.bad.has(c.chunkId)) this.bad.set(c.chunkId, new Set());
        this.bad.get(c.chunkId)!.add(c.nodeId);
        return { ok: true, value: null };
      }
      default:
        throw new Error(`the healer sent an unexpected command ${c.op}`);
    }
  }
}

const silent = pino({ level: 'silent' });

// Rebalancing is off (threshold 1000 × the mean) except in the test about it, so that
// the other tests can assert where repairs and drains put copies.
const FAST: Partial<HealerOptions> = { intervalMs: 5, passIntervalMs: 0, scanPage: 100, concurrency: 2, rateBytesPerS: 1024 * 1024 * 1024, rebalanceThreshold: 1000 };

/** A cluster of fake chunk servers around one Healer. */
class Harness {
  readonly store = new FakeStore();
  readonly servers = new Map<string, FakeChunkServer>();
  readonly live = new Map<string, 'up' | 'suspect' | 'dead'>();
  readonly zones = new Map<string, string>();
  readonly events = new EventLog(silent);
  readonly forwarded: string[] = [];
  leader = true;
  readonly healer: Healer;

  constructor(nodeIds: readonly string[], options: Partial<HealerOptions> = {}, log: Logger = silent) {
    for (const id of nodeIds) this.addNode(id);
    this.healer = new Healer(
      {
        isLeader: () => this.leader,
        leaderId: () => (this.leader ? 'm1' : 'm2'),
        view: async () => this.view(),
        store: this.store,
        execute: (c) => this.store.execute(c),
        node: (id) => this.servers.get(id),
        events: this.events,
        log,
        forward: {
          health: async () => {
            this.forwarded.push('health');
            return { errno: 0, leader: 'm2', chunksTotal: 42 };
          },
          events: async () => {
            this.forwarded.push('events');
            return { errno: 0, leader: 'm2', events: [] };
          },
          checkChunks: async (req) => {
            this.forwarded.push(`checkChunks ${req.nodeId}`);
            return { errno: 0, orphans: [7] };
          },
        },
      },
      { ...FAST, ...options },
    );
  }

  addNode(id: string, zone = ''): void {
    this.servers.set(id, new FakeChunkServer(id));
    this.live.set(id, 'up');
    this.zones.set(id, zone);
    this.store.records.set(id, { nodeId: id, address: `127.0.0.1:${7000 + this.servers.size}`, zone, rack: '', state: 'active' });
  }

  view(): ClusterViewReply__Output {
    return {
      errno: 0,
      leader: 'm1',
      nodes: [...this.servers.values()].map((s) => {
        const used = [...s.objects.values()].reduce((a, b) => a + b.length, 0);
        return {
          nodeId: s.nodeId,
          address: this.store.records.get(s.nodeId)!.address,
          zone: this.zones.get(s.nodeId) ?? '',
          rack: '',
          totalBytes: GiB,
          freeBytes: GiB - used,
          usedBytes: used,
          chunkCount: s.objects.size,
          lastHeartbeatMs: 0,
          state: this.live.get(s.nodeId)!,
          adminState: this.store.records.get(s.nodeId)!.state,
          version: '',
          corruptReads: 0,
          storageFault: '',
          reserveBytes: 0,
          logFreeBytes: 0,
          chunkReserveBytes: 0,
          spaceLow: false,
        };
      }),
    };
  }

  /** A node that stops: silent in the view, its process unreachable. */
  kill(id: string): void {
    this.live.set(id, 'dead');
    this.servers.get(id)!.down = true;
  }

  addReplicated(ino: Ino, chunkId: number, data: Buffer, holders: readonly string[], replicas = holders.length): void {
    this.store.layouts.set(ino, { kind: 'replicas', replicas });
    for (const h of holders) this.servers.get(h)?.objects.set(chunkId, Buffer.from(data));
    this.store.refs.set(chunkId, { ino, ref: { index: this.store.refs.size, chunkId, sizeBytes: data.length, placement: [...holders] } });
  }

  async addEc(ino: Ino, chunkId: number, data: Buffer, k: number, m: number, holders: readonly string[]): Promise<Buffer[]> {
    this.store.layouts.set(ino, { kind: 'ec', k, m });
    const shards = await encodeStripe(data, k, m);
    holders.forEach((h, i) => this.servers.get(h)?.objects.set(chunkId, Buffer.from(shards[i])));
    this.store.refs.set(chunkId, { ino, ref: { index: this.store.refs.size, chunkId, sizeBytes: data.length, placement: [...holders], ec: { k, m, shardBytes: shardSizeBytes(data.length, k) } } });
    return shards;
  }

  placement(chunkId: number): string[] {
    return this.store.refs.get(chunkId)!.ref.placement;
  }

  kinds(): string[] {
    return this.events.since(0, 1000).map((e) => e.kind);
  }
}

const running: Harness[] = [];

function start(h: Harness): Harness {
  running.push(h);
  h.healer.start();
  return h;
}

afterEach(async () => {
  for (const h of running.splice(0)) await h.healer.stop();
});

/** Polls `cond` until it holds; fails with `what` after `timeoutMs`. */
async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function passes(h: Harness): Promise<number> {
  return Number((await h.healer.health()).scanPasses ?? 0);
}

/** Waits for `n` more complete scan passes (health counts are as of the last one). */
async function morePasses(h: Harness, n = 2): Promise<HealthStatusReply> {
  const from = await passes(h);
  await until(`${n} more scan passes`, async () => (await passes(h)) >= from + n);
  return h.healer.health();
}

describe('Healer', () => {
  it('declares a silent node dead and re-creates its replicas and EC shards on live nodes, placement committed without it', async () => {
    const h = new Harness(['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7']);
    const data = new Map<number, Buffer>();
    // R=3 chunks, some on n1; one that is not (must be left alone).
    const replicaPlacements = [
      ['n1', 'n2', 'n3'],
      ['n2', 'n1', 'n4'],
      ['n5', 'n6', 'n1'],
      ['n2', 'n3', 'n4'],
    ];
    replicaPlacements.forEach((p, i) => {
      const d = patternBytes(10_000 + i * 777, i + 1);
      data.set(i + 1, d);
      h.addReplicated(10, i + 1, d, p);
    });
    // 4+2 stripes: n1 holds a data shard of one and a parity shard of the other.
    const ecData5 = patternBytes(40_000, 55);
    const ecData6 = patternBytes(33_333, 66);
    const shards5 = await h.addEc(11, 5, ecData5, 4, 2, ['n1', 'n2', 'n3', 'n4', 'n5', 'n6']);
    const shards6 = await h.addEc(11, 6, ecData6, 4, 2, ['n2', 'n3', 'n4', 'n5', 'n6', 'n1']);
    start(h);
    expect((await morePasses(h, 1)).chunksHealthy).toBe(6);

    h.kill('n1');
    await until('n1 recorded dead', () => h.store.records.get('n1')!.state === 'dead');
    expect(h.store.commands).toContainEqual({ op: 'setNodeState', nodeId: 'n1', state: 'dead' });
    expect(h.events.since(0, 100).find((e) => e.kind === 'node-dead')).toMatchObject({ nodeId: 'n1' });
    await until('every chunk off n1 and complete', () => [1, 2, 3, 4, 5, 6].every((id) => !h.placement(id).includes('n1') && !h.placement(id).includes('')));

    // One commit per repaired chunk; the one not on n1 untouched.
    const commits = h.store.commands.filter((c): c is Extract<Command, { op: 'setPlacement' }> => c.op === 'setPlacement');
    expect(commits.map((c) => c.chunkId).sort()).toEqual([1, 2, 3, 5, 6]);
    expect(h.placement(4)).toEqual(['n2', 'n3', 'n4']);
    for (let id = 1; id <= 4; id++) {
      const p = h.placement(id);
      expect(p).toHaveLength(3);
      expect(new Set(p).size).toBe(3);
      // Surviving copies stay where they were.
      for (const old of replicaPlacements[id - 1]) if (old !== 'n1') expect(p).toContain(old);
      for (const holder of p) expect(h.servers.get(holder)!.objects.get(id)).toEqual(data.get(id));
    }
    // The rebuilt shard is the encoder's shard for that slot, on a node new to the stripe.
    for (const [id, shards, oldPlacement] of [
      [5, shards5, ['n1', 'n2', 'n3', 'n4', 'n5', 'n6']],
      [6, shards6, ['n2', 'n3', 'n4', 'n5', 'n6', 'n1']],
    ] as const) {
      const p = h.placement(id);
      expect(p).toHaveLength(6);
      expect(new Set(p).size).toBe(6);
      p.forEach((holder, slot) => {
        if (oldPlacement[slot] !== 'n1') expect(holder).toBe(oldPlacement[slot]);
        expect(h.servers.get(holder)!.objects.get(id)).toEqual(shards[slot]);
      });
    }
    expect(h.placement(5)[0]).toBe('n7');
    expect(h.placement(6)[5]).toBe('n7');

    const health = await morePasses(h);
    expect(health).toMatchObject({ chunksTotal: 6, chunksHealthy: 6, chunksUnderProtected: 0, chunksLost: 0, nodesDead: 1, nodesUp: 6, repairQueue: 0 });
    expect(health.repairsDone).toBe(5);
    await until('repair-finished event', () => h.kinds().includes('repair-finished'));
    expect(h.kinds().indexOf('node-dead')).toBeLessThan(h.kinds().indexOf('repair-started'));
  });

  it('empties a draining node without lowering protection, then marks it drained', async () => {
    const h = new Harness(['n1', 'n2', 'n3', 'n4', 'n5']);
    const data = new Map<number, Buffer>();
    const placements = [
      ['n2', 'n1'],
      ['n1', 'n2'],
      ['n3', 'n4'],
      ['n2', 'n5'],
    ];
    placements.forEach((p, i) => {
      const d = patternBytes(5_000 + i, 100 + i);
      data.set(i + 1, d);
      h.addReplicated(20, i + 1, d, p);
    });
    const shards = await h.addEc(21, 9, patternBytes(24_000, 9), 2, 1, ['n3', 'n2', 'n4']);
    start(h);
    await morePasses(h, 1);
    h.store.records.set('n2', { ...h.store.records.get('n2')!, state: 'draining' });
    await until('n2 drained', () => h.store.records.get('n2')!.state === 'drained');

    for (const id of [1, 2, 3, 4, 9]) expect(h.placement(id)).not.toContain('n2');
    expect(h.servers.get('n2')!.objects.size).toBe(0);
    for (const [id, d] of data) for (const holder of h.placement(id)) expect(h.servers.get(holder)!.objects.get(id)).toEqual(d);
    expect(h.placement(9)[0]).toBe('n3');
    expect(h.placement(9)[2]).toBe('n4');
    h.placement(9).forEach((holder, slot) => expect(h.servers.get(holder)!.objects.get(9)).toEqual(shards[slot]));
    // Every placement committed during the drain kept the chunk's full count of copies.
    const commits = h.store.commands.filter((c): c is Extract<Command, { op: 'setPlacement' }> => c.op === 'setPlacement');
    expect(commits.length).toBe(4);
    for (const c of commits) {
      expect(c.placement).toHaveLength(c.chunkId === 9 ? 3 : 2);
      expect(c.placement).not.toContain('');
    }
    expect(h.events.since(0, 100).find((e) => e.kind === 'drain-finished')).toMatchObject({ nodeId: 'n2' });
    const health = await morePasses(h);
    expect(health).toMatchObject({ nodesDrained: 1, nodesDraining: 0, drainRemaining: 0, chunksHealthy: 5 });
  });

  it('replaces a stale object under the same id on the target (a copy or another shard it held before)', async () => {
    const h = new Harness(['n1', 'n2', 'n3', 'n4']);
    const d = patternBytes(8_000, 1);
    h.addReplicated(30, 1, d, ['n1', 'n2', 'n3']);
    const shards = await h.addEc(31, 2, patternBytes(16_000, 2), 2, 1, ['n1', 'n2', 'n3']);
    // n4 is the only node that can take the new copies, and holds other bytes under both ids.
    h.servers.get('n4')!.objects.set(1, patternBytes(8_000, 999));
    h.servers.get('n4')!.objects.set(2, Buffer.from(shards[1]));
    h.kill('n1');
    start(h);
    await until('both chunks repaired onto n4', () => h.placement(1).includes('n4') && h.placement(2)[0] === 'n4');
    expect(h.placement(1).sort()).toEqual(['n2', 'n3', 'n4']);
    expect(h.servers.get('n4')!.objects.get(1)).toEqual(d);
    expect(h.placement(2)).toEqual(['n4', 'n2', 'n3']);
    expect(h.servers.get('n4')!.objects.get(2)).toEqual(shards[0]);
  });

  it('replaces a copy reported bad from a good one; the bad mark goes with the commit', async () => {
    const h = new Harness(['n1', 'n2', 'n3']);
    const d = patternBytes(6_000, 5);
    h.addReplicated(35, 1, d, ['n1', 'n2']);
    h.servers.get('n2')!.objects.set(1, patternBytes(6_000, 6)); // what a scrub found
    await h.store.execute({ op: 'reportBadCopy', chunkId: 1, nodeId: 'n2' });
    start(h);
    await until('the bad copy replaced', () => !h.placement(1).includes('n2'));
    expect(h.placement(1)).toEqual(['n1', 'n3']);
    expect(h.servers.get('n3')!.objects.get(1)).toEqual(d);
    expect(await h.store.badCopies(10)).toEqual([]);
  });

  it('waits while an EC stripe has fewer than k shards on nodes that are up (suspect ones are not read), then rebuilds', async () => {
    const { logger, lines } = memoryLogger();
    const h = new Harness(['n1', 'n2', 'n3', 'n4'], {}, logger);
    const shards = await h.addEc(36, 1, patternBytes(16_000, 7), 2, 1, ['n1', 'n2', 'n3']);
    h.kill('n1');
    h.live.set('n2', 'suspect');
    start(h);
    await morePasses(h, 3);
    expect(h.placement(1)).toEqual(['n1', 'n2', 'n3']);
    expect((await h.healer.health()).chunksUnderProtected).toBe(1);
    // The console's protection matrix: 3 shards wanted, 2 readable (the suspect one counts).
    expect((await h.healer.health()).protection).toEqual([{ scheme: 'ec 2+1', want: 3, valid: 2, chunks: 1 }]);
    // Nothing was attempted: no move failed for want of shards.
    expect(lines.filter((l) => l.msg === 'chunk move failed; the next scan plans it again')).toEqual([]);
    h.live.set('n2', 'up');
    await until('shard 0 rebuilt', () => h.placement(1)[0] === 'n4');
    expect(h.servers.get('n4')!.objects.get(1)).toEqual(shards[0]);
  });

  it('bounds the bytes it copies per second by rateBytesPerS', async () => {
    const rate = 200_000;
    const size = 100_000;
    const h = new Harness(['n1', 'n2', 'n3', 'n4'], { rateBytesPerS: rate, concurrency: 8 });
    for (let id = 1; id <= 6; id++) h.addReplicated(40, id, patternBytes(size, id), ['n1', 'n2', 'n3']);
    h.kill('n1');
    start(h);
    const target = h.servers.get('n4')!;
    // Right after the first moves start the bucket is in debt: a big copy is paid up front.
    await until('first copy written', () => target.writes.length > 0);
    expect((h.healer as unknown as { tokens: number }).tokens).toBeLessThan(0);
    await until('all six copies written', () => target.writes.length === 6, 20_000);
    const t0 = target.writes[0].atMs;
    let bytes = 0;
    for (const w of target.writes) {
      bytes += w.bytes;
      // A full bucket (one second of rate) plus the move that overdraws it, then the rate.
      expect(bytes).toBeLessThanOrEqual(rate + size + (rate * (w.atMs - t0)) / 1000 + 1);
    }
    // 600 kB at 200 kB/s with a 200 kB bucket and one overdraw: at least ~1.5 s of pacing.
    expect(target.writes[5].atMs - t0).toBeGreaterThan(1_200);
    await until('placements committed', () => [1, 2, 3, 4, 5, 6].every((id) => h.placement(id).includes('n4')));
  });

  it('rebalances onto a new empty node until no node is above 1.2 × the mean, bytes unchanged, never lowering protection', async () => {
    const h = new Harness(['n1', 'n2', 'n3'], { rebalanceThreshold: 1.2 });
    const data = new Map<number, Buffer>();
    for (let id = 1; id <= 30; id++) {
      const d = patternBytes(4_000, id);
      data.set(id, d);
      h.addReplicated(45, id, d, ['n1', 'n2', 'n3'].filter((_, i) => i !== id % 3));
    }
    start(h);
    await morePasses(h, 1);
    h.addNode('n4');
    await until('rebalance-finished event', () => h.kinds().includes('rebalance-finished'));
    // 60 equal copies over 4 equal nodes: the mean is 15, so at most 18 on any node and
    // at least 60 − 3 × 18 = 6 on the new one.
    const placed = new Map<string, number>();
    for (const id of data.keys()) for (const p of h.placement(id)) placed.set(p, (placed.get(p) ?? 0) + 1);
    for (const [, copies] of placed) expect(copies).toBeLessThanOrEqual(18);
    expect(placed.get('n4')).toBeGreaterThanOrEqual(6);
    for (const [id, d] of data) {
      expect(new Set(h.placement(id)).size).toBe(2);
      for (const holder of h.placement(id)) expect(h.servers.get(holder)!.objects.get(id)).toEqual(d);
    }
    // Copies that moved away were deleted after the commit.
    for (const s of h.servers.values()) for (const id of s.objects.keys()) expect(h.placement(id)).toContain(s.nodeId);
    for (const c of h.store.commands) if (c.op === 'setPlacement') expect(c.placement).toHaveLength(2);
    expect(h.kinds()).toContain('rebalance');
    expect((await h.healer.health()).rebalanceMovesDone).toBe(placed.get('n4'));
  });

  it('after a pass with nothing to do, waits passIntervalMs before the next, unless a node changes: then it scans and repairs at once', async () => {
    const h = start(new Harness(['n1', 'n2', 'n3', 'n4'], { passIntervalMs: 60_000 }));
    h.addReplicated(10, 1, patternBytes(5_000, 1), ['n1', 'n2', 'n3']);
    await until('the first pass', async () => (await passes(h)) >= 1);
    const after = await passes(h);
    // ~200 ticks of 5 ms: not one more pass while nothing changes.
    const deadline = performance.now() + 1_000;
    while (performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(await passes(h)).toBe(after);
    h.kill('n1');
    await until('n1 repaired elsewhere', () => !h.placement(1).includes('n1') && h.placement(1).length === 3);
    expect(await passes(h)).toBeGreaterThan(after);
  });

  it('reports health counts after a pass: node states, chunk states, copies per node', async () => {
    const h = new Harness(['n1', 'n2', 'n3', 'n4', 'n5', 'n6']);
    h.addReplicated(50, 1, patternBytes(1_000, 1), ['n1', 'n2']);
    h.addReplicated(51, 2, patternBytes(1_000, 2), ['n1', 'n3']);
    // Wants 5 copies and the cluster has 4 nodes that may take one: under-protected, no repair possible.
    h.addReplicated(52, 3, patternBytes(1_000, 3), ['n1', 'n2', 'n3', 'n4'], 5);
    // Its only copy is on a node that dies: lost.
    h.addReplicated(53, 4, patternBytes(1_000, 4), ['n5']);
    h.live.set('n3', 'suspect');
    h.kill('n5');
    // Draining and holding nothing: drained at the end of the first pass.
    h.store.records.set('n6', { ...h.store.records.get('n6')!, state: 'draining' });
    start(h);
    await until('n5 dead and n6 drained', () => h.store.records.get('n5')!.state === 'dead' && h.store.records.get('n6')!.state === 'drained');
    const health = await morePasses(h);
    expect(health).toMatchObject({
      errno: 0,
      leader: 'm1',
      nodesUp: 3,
      nodesSuspect: 1,
      nodesDead: 1,
      nodesDraining: 0,
      nodesDrained: 1,
      chunksTotal: 4,
      chunksHealthy: 2,
      chunksUnderProtected: 1,
      chunksLost: 1,
      repairQueue: 0,
      rebalanceQueue: 0,
      drainRemaining: 0,
    });
    expect(health.nodes).toEqual([
      { nodeId: 'n1', copies: 3, toMove: 0 },
      { nodeId: 'n2', copies: 2, toMove: 0 },
      { nodeId: 'n3', copies: 2, toMove: 0 },
      { nodeId: 'n4', copies: 1, toMove: 0 },
      { nodeId: 'n5', copies: 1, toMove: 0 },
      { nodeId: 'n6', copies: 0, toMove: 0 },
    ]);
    // Capacity of the nodes that are not dead.
    expect(health.totalBytes).toBe(5 * GiB);
    // Nothing was copied: the under-protected chunk has nowhere to go, the lost one no source.
    expect(h.store.commands.filter((c) => c.op === 'setPlacement')).toEqual([]);
    const ev = await h.healer.events({ afterSeq: 0, limit: 100 });
    expect(ev.leader).toBe('m1');
    expect((ev.events ?? []).map((e) => e.kind)).toEqual(expect.arrayContaining(['node-dead', 'drain-finished']));
  });

  it('checkChunks: an id is an orphan on a node unless a file places it there or the GC will delete it there', async () => {
    const h = new Harness(['n1', 'n2', 'n3']);
    h.addReplicated(60, 1, patternBytes(100, 1), ['n1', 'n2']); // referenced on n1
    h.addReplicated(60, 2, patternBytes(100, 2), ['n2', 'n3']); // referenced, not on n1
    h.store.garbage.set(3, ['n1', 'n3']); // garbage the GC deletes on n1
    h.store.garbage.set(4, ['n2']); // garbage elsewhere
    // 5: unknown everywhere.
    expect(await h.healer.checkChunks({ nodeId: 'n1', chunkIds: [1, 2, 3, 4, 5] })).toEqual({ errno: 0, orphans: [2, 4, 5] });
    expect(await h.healer.checkChunks({ nodeId: 'n2', chunkIds: [1, 2, 3, 4, 5] })).toEqual({ errno: 0, orphans: [3, 5] });
    expect(await h.healer.checkChunks({ nodeId: 'n1', chunkIds: [] })).toEqual({ errno: 0, orphans: [] });
    // A bounded request.
    expect(await h.healer.checkChunks({ nodeId: 'n1', chunkIds: Array.from({ length: 10_001 }, (_, i) => i + 1) })).toEqual({ errno: 22, orphans: [] });
  });

  it('a node that is not the leader forwards the RPCs and heals nothing; once leader it takes over', async () => {
    const h = new Harness(['n1', 'n2', 'n3', 'n4']);
    h.addReplicated(70, 1, patternBytes(1_000, 1), ['n1', 'n2', 'n3']);
    h.leader = false;
    h.kill('n1');
    start(h);
    expect(await h.healer.health()).toEqual({ errno: 0, leader: 'm2', chunksTotal: 42 });
    expect(await h.healer.events({ afterSeq: 0, limit: 10 })).toEqual({ errno: 0, leader: 'm2', events: [] });
    expect(await h.healer.checkChunks({ nodeId: 'n2', chunkIds: [1] })).toEqual({ errno: 0, orphans: [7] });
    expect(h.forwarded).toEqual(['health', 'events', 'checkChunks n2']);
    await new Promise((r) => setTimeout(r, 100)); // ~20 ticks as a follower
    expect(h.store.commands).toEqual([]);
    expect(h.servers.get('n4')!.objects.size).toBe(0);

    h.leader = true;
    await until('the new leader repairs the chunk', () => h.placement(1).includes('n4'));
    expect(h.store.records.get('n1')!.state).toBe('dead');
    expect(h.placement(1).sort()).toEqual(['n2', 'n3', 'n4']);
    expect((await h.healer.health()).leader).toBe('m1');
  });
});
