// ChunkIo against in-memory chunk servers and a placer built on the real placement code
// (seeded, so a failing run replays). Faults are injected per node: writes or reads
// failing with a ChunkError code, a CORRUPT copy of one chunk, or a "hang" — a promise
// rejected the way a client deadline rejects it, so no test waits on a real timer.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkError, type ChunkApi, type ChunkCapacity, type ChunkErrorCode } from '../../../src/chunks/api.js';
import { ChunkIo, type ChunkPlacer } from '../../../src/chunks/chunk-io.js';
import { encodeStripe, shardSizeBytes } from '../../../src/chunks/ec.js';
import { minCopies, placeCopies, type PlacementNode } from '../../../src/cluster/placement.js';
import type { ChunkRef, Layout } from '../../../src/meta/types.js';
import { memoryLogger, patternBytes } from './helpers.js';
import { seededRandom } from '../../prng.js';

/** A ChunkError code, or 'hang': a plain Error as a timed-out RPC rejects (no real wait). */
type Fault = ChunkErrorCode | 'hang' | null;

function faultError(fault: Exclude<Fault, null>, nodeId: string): Error {
  if (fault === 'hang') return new Error(`deadline exceeded talking to ${nodeId}`);
  return new ChunkError(fault, `injected ${fault} on ${nodeId}`);
}

/** Lets other async work run between the steps of a call, as a network round trip would. */
function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

class FakeServer implements ChunkApi {
  readonly chunks = new Map<number, Buffer>();
  writeFault: Fault = null;
  readFault: Fault = null;
  /** Chunk ids whose copy here fails its CRC32C. */
  readonly corrupt = new Set<number>();
  writeCalls = 0;
  readonly readCalls: Array<{ chunkId: number; offset: number; length: number }> = [];

  constructor(readonly nodeId: string) {}

  async writeChunk(chunkId: number, data: Buffer): Promise<void> {
    this.writeCalls++;
    await tick();
    if (this.writeFault) throw faultError(this.writeFault, this.nodeId);
    this.chunks.set(chunkId, Buffer.from(data));
  }

  async readChunk(chunkId: number, offset: number, length: number): Promise<Buffer> {
    this.readCalls.push({ chunkId, offset, length });
    await tick();
    if (this.readFault) throw faultError(this.readFault, this.nodeId);
    if (this.corrupt.has(chunkId)) throw new ChunkError('CORRUPT', `chunk ${chunkId} on ${this.nodeId}: CRC32C mismatch`);
    const data = this.chunks.get(chunkId);
    if (!data) throw new ChunkError('NOT_FOUND', `chunk ${chunkId} not on ${this.nodeId}`);
    return Buffer.from(data.subarray(Math.min(offset, data.length), Math.min(data.length, offset + length)));
  }

  async deleteChunk(chunkId: number): Promise<void> {
    this.chunks.delete(chunkId);
  }

  async capacity(): Promise<ChunkCapacity> {
    return { totalBytes: 0, freeBytes: 0, usedBytes: 0, chunkCount: this.chunks.size };
  }
}

interface ClusterOptions {
  /** 'random': placement.ts with a seeded draw; 'first-fit': eligible nodes in list order (to aim faults). */
  mode?: 'random' | 'first-fit';
  seed?: number;
  /** Nodes registered in the cluster (default: the number of servers). */
  registered?: number;
  localId?: string;
  /**
   * Answer from the exclude set as it was when place() was called, then resolve a tick
   * later: concurrent callers get answers computed from the same view (as the cluster
   * data plane's callers do when they share one view fetch), so two may get the same node.
   */
  staleAnswers?: boolean;
}

/** A ChunkPlacer over fake servers; every node is up with room unless a test says otherwise. */
class FakeCluster implements ChunkPlacer {
  readonly servers = new Map<string, FakeServer>();
  readonly nodes: PlacementNode[];
  readonly placeCalls: Array<{ count: number; exclude: string[] }> = [];
  localId: string;
  private readonly mode: 'random' | 'first-fit';
  private readonly random: () => number;
  private readonly registered: number | undefined;
  private readonly staleAnswers: boolean;

  constructor(ids: readonly string[], options: ClusterOptions = {}) {
    this.nodes = ids.map((nodeId) => ({ nodeId, zone: '', rack: '', totalBytes: 0, freeBytes: 0, state: 'up' }));
    for (const id of ids) this.servers.set(id, new FakeServer(id));
    this.mode = options.mode ?? 'random';
    this.random = seededRandom(options.seed ?? 1);
    this.registered = options.registered;
    this.localId = options.localId ?? '';
    this.staleAnswers = options.staleAnswers ?? false;
  }

  server(id: string): FakeServer {
    const s = this.servers.get(id);
    if (!s) throw new Error(`no server ${id}`);
    return s;
  }

  async place(_layout: Layout, bytes: number, count: number, exclude: ReadonlySet<string>): Promise<string[]> {
    this.placeCalls.push({ count, exclude: [...exclude] });
    if (!this.staleAnswers) await tick();
    const answer =
      this.mode === 'random'
        ? placeCopies(this.nodes, { count, bytes, exclude }, this.random)
        : this.nodes
            .filter((n) => n.state === 'up' && !exclude.has(n.nodeId))
            .slice(0, count)
            .map((n) => n.nodeId);
    if (this.staleAnswers) await tick();
    return answer;
  }

  minCopies(layout: Layout): number {
    return minCopies(layout, this.clusterNodes());
  }

  clusterNodes(): number {
    return this.registered ?? this.nodes.length;
  }

  node(nodeId: string): ChunkApi | undefined {
    return this.servers.get(nodeId);
  }
}

function ids(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`);
}

const R3: Layout = { kind: 'replicas', replicas: 3 };

function refOf(chunkId: number, sizeBytes: number, written: { placement: string[]; ec?: ChunkRef['ec'] }): ChunkRef {
  return { index: 0, chunkId, sizeBytes, placement: written.placement, ...(written.ec ? { ec: written.ec } : {}) };
}

async function expectChunkError(promise: Promise<unknown>, code: ChunkErrorCode, message?: RegExp): Promise<ChunkError> {
  let caught: unknown;
  try {
    await promise;
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ChunkError);
  const err = caught as ChunkError;
  expect(err.code).toBe(code);
  if (message) expect(err.message).toMatch(message);
  return err;
}

function totalWrites(cluster: FakeCluster): number {
  let n = 0;
  for (const s of cluster.servers.values()) n += s.writeCalls;
  return n;
}

describe('ChunkIo write, replicas', () => {
  it('puts R=3 identical copies on 3 distinct nodes of 5', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const cluster = new FakeCluster(ids('n', 5), { seed });
      const io = new ChunkIo(cluster);
      const data = patternBytes(10_000, seed);
      const written = await io.write(R3, 7, data);
      expect(written.ec).toBeUndefined();
      expect(written.placement).toHaveLength(3);
      expect(new Set(written.placement).size).toBe(3);
      for (const id of written.placement) expect(cluster.server(id).chunks.get(7)?.equals(data)).toBe(true);
      // Nobody else got a copy, and nothing was retried.
      const holders = [...cluster.servers.values()].filter((s) => s.chunks.has(7)).map((s) => s.nodeId);
      expect(holders.sort()).toEqual([...written.placement].sort());
      expect(totalWrites(cluster)).toBe(3);
      expect(io.counters).toEqual({ degradedWrites: 0, replacedTargets: 0, readFailovers: 0, corruptCopies: 0, ecDecodes: 0 });
    }
  });

  it.each<[string, (c: FakeCluster) => void]>([
    ['fails with UNAVAILABLE', (c) => (c.server('n0').writeFault = 'UNAVAILABLE')],
    ['fails with IO', (c) => (c.server('n0').writeFault = 'IO')],
    ['hangs until its deadline', (c) => (c.server('n0').writeFault = 'hang')],
    ['is unknown to the data plane', (c) => c.servers.delete('n0')],
  ])('replaces a target that %s: still 3 copies, on other nodes', async (_what, inject) => {
    const cluster = new FakeCluster(ids('n', 5), { mode: 'first-fit' });
    inject(cluster);
    const io = new ChunkIo(cluster);
    const data = patternBytes(4096, 5);
    const written = await io.write(R3, 1, data);
    expect(written.placement).toHaveLength(3);
    expect(new Set(written.placement).size).toBe(3);
    expect(written.placement).not.toContain('n0');
    expect(written.placement).toContain('n3'); // the replacement
    for (const id of written.placement) expect(cluster.server(id).chunks.get(1)?.equals(data)).toBe(true);
    expect(io.counters.replacedTargets).toBe(1);
    expect(io.counters.degradedWrites).toBe(0);
    // The replacement was asked for with the failed node (and the other targets) excluded.
    const replacement = cluster.placeCalls.find((p) => p.count === 1);
    expect(replacement?.exclude).toEqual(expect.arrayContaining(['n0', 'n1', 'n2']));
  });

  it('replaces failed targets under random placement and concurrent writes', async () => {
    for (let seed = 1; seed <= 10; seed++) {
      const cluster = new FakeCluster(ids('n', 8), { seed });
      cluster.server('n2').writeFault = 'UNAVAILABLE';
      cluster.server('n5').writeFault = 'hang';
      const io = new ChunkIo(cluster);
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => io.write(R3, 100 + i, patternBytes(512, i + 1))));
      results.forEach((written, i) => {
        expect(written.placement).toHaveLength(3);
        expect(new Set(written.placement).size).toBe(3);
        for (const id of written.placement) {
          expect(['n2', 'n5']).not.toContain(id);
          expect(cluster.server(id).chunks.get(100 + i)?.equals(patternBytes(512, i + 1))).toBe(true);
        }
      });
      expect(io.counters.degradedWrites).toBe(0);
      expect(io.counters.replacedTargets).toBe(cluster.server('n2').writeCalls + cluster.server('n5').writeCalls);
    }
  });

  it('never puts two copies on one node when concurrent replacements are offered the same node', async () => {
    // First-fit from a stale view: the failed n0, n1 and n2 are replaced at the same time
    // and all three are offered n3 first.
    const cluster = new FakeCluster(ids('n', 8), { mode: 'first-fit', staleAnswers: true });
    for (const id of ['n0', 'n1', 'n2']) cluster.server(id).writeFault = 'UNAVAILABLE';
    const io = new ChunkIo(cluster);
    const data = patternBytes(1000, 8);
    const written = await io.write(R3, 2, data);
    expect(written.placement.sort()).toEqual(['n3', 'n4', 'n5']);
    for (const id of written.placement) expect(cluster.server(id).writeCalls).toBe(1);
    expect(io.counters.replacedTargets).toBe(3);
    // The same for EC, where a doubled node would hold two shards under one chunk id.
    const ec = new FakeCluster(ids('n', 10), { mode: 'first-fit', staleAnswers: true });
    for (const id of ['n1', 'n2', 'n4']) ec.server(id).writeFault = 'hang';
    const shards = await encodeStripe(data, 4, 2);
    const ecWritten = await new ChunkIo(ec).write({ kind: 'ec', k: 4, m: 2 }, 2, data);
    expect(new Set(ecWritten.placement).size).toBe(6);
    ecWritten.placement.forEach((id, i) => expect(ec.server(id).chunks.get(2)?.equals(shards[i])).toBe(true));
  });

  it('a replacement offered a node another slot just took asks again without using up its tries', async () => {
    // 6+3 with four targets failing at once, replaced from one stale view: all four are
    // offered n9, then the three losers n10, and so on. Collisions are not failures of a
    // target, so the last slot still gets a node while healthy ones remain (n9..n13).
    const cluster = new FakeCluster(ids('n', 14), { mode: 'first-fit', staleAnswers: true });
    for (const id of ['n0', 'n2', 'n5', 'n7']) cluster.server(id).writeFault = 'UNAVAILABLE';
    const io = new ChunkIo(cluster);
    const data = patternBytes(20_000, 6);
    const written = await io.write({ kind: 'ec', k: 6, m: 3 }, 3, data);
    expect(written.placement.every((p) => p !== '')).toBe(true);
    expect(new Set(written.placement).size).toBe(9);
    const shards = await encodeStripe(data, 6, 3);
    written.placement.forEach((id, i) => expect(cluster.server(id).chunks.get(3)?.equals(shards[i]), `shard ${i}`).toBe(true));
    expect(io.counters.replacedTargets).toBe(4);
    expect(io.counters.degradedWrites).toBe(0);
  });

  it('stays bounded when placement keeps offering a node the write already uses', async () => {
    // A placer that ignores `exclude`: the replacement for the failed n2 is always n0.
    const cluster = new FakeCluster(ids('n', 5), { mode: 'first-fit' });
    cluster.server('n2').writeFault = 'UNAVAILABLE';
    cluster.place = async (_layout, _bytes, count) => {
      cluster.placeCalls.push({ count, exclude: [] });
      await tick();
      return count === 1 ? ['n0'] : ['n0', 'n1', 'n2'].slice(0, count);
    };
    const io = new ChunkIo(cluster);
    await expectChunkError(io.write(R3, 4, patternBytes(100, 1)), 'UNAVAILABLE', /2 of 3 copies written/);
    expect(cluster.placeCalls.length).toBeLessThan(30);
    expect(cluster.server('n0').writeCalls).toBe(1);
  });

  it('accepts 2 of 3 copies when no node is left to replace a failed one (3 registered, 1 failing): degraded, logged', async () => {
    const { logger, lines } = memoryLogger();
    const cluster = new FakeCluster(ids('n', 3));
    cluster.server('n1').writeFault = 'UNAVAILABLE';
    const io = new ChunkIo(cluster, logger);
    const data = patternBytes(3000, 2);
    const written = await io.write(R3, 9, data);
    expect(written.placement.sort()).toEqual(['n0', 'n2']);
    for (const id of written.placement) expect(cluster.server(id).chunks.get(9)?.equals(data)).toBe(true);
    expect(io.counters.degradedWrites).toBe(1);
    expect(io.counters.replacedTargets).toBe(1);
    expect(lines.some((l) => l.level === 40 && /fewer copies than its layout asks/.test(String(l.msg)))).toBe(true);
  });

  it('accepts the 2 good nodes of 5 when the other 3 fail (placement exhausted, 2 ≥ minCopies)', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const cluster = new FakeCluster(ids('n', 5), { seed });
      for (const id of ['n0', 'n2', 'n4']) cluster.server(id).writeFault = 'UNAVAILABLE';
      const io = new ChunkIo(cluster);
      const written = await io.write(R3, 4, patternBytes(100, seed));
      expect(written.placement.sort()).toEqual(['n1', 'n3']);
      expect(io.counters.degradedWrites).toBe(1);
      expect(io.counters.replacedTargets).toBe(3);
    }
  });

  it('a small cluster (2 nodes registered, R=3) writes 2 copies without calling it a fault', async () => {
    const { logger, lines } = memoryLogger();
    const cluster = new FakeCluster(ids('n', 2));
    const io = new ChunkIo(cluster, logger);
    const written = await io.write(R3, 3, patternBytes(64, 1));
    expect(written.placement.sort()).toEqual(['n0', 'n1']);
    expect(io.counters.degradedWrites).toBe(1);
    expect(io.counters.replacedTargets).toBe(0);
    expect(lines.filter((l) => Number(l.level) >= 40)).toEqual([]);
  });

  it('a one-node cluster writes R=3 as one copy (minCopies capped by registered nodes)', async () => {
    const cluster = new FakeCluster(['solo']);
    const io = new ChunkIo(cluster);
    const written = await io.write(R3, 3, patternBytes(64, 1));
    expect(written.placement).toEqual(['solo']);
  });

  it('fails with UNAVAILABLE when fewer than minCopies can be written (3 registered, 2 failing)', async () => {
    const cluster = new FakeCluster(ids('n', 3));
    cluster.server('n0').writeFault = 'UNAVAILABLE';
    cluster.server('n2').writeFault = 'hang';
    const io = new ChunkIo(cluster);
    await expectChunkError(io.write(R3, 5, patternBytes(100, 1)), 'UNAVAILABLE', /1 of 3 copies written, at least 2 needed/);
    expect(io.counters.degradedWrites).toBe(0);
  });

  it('fails when nodes are registered but not up (placement offers 1 of 3); reported as NO_SPACE', async () => {
    const cluster = new FakeCluster(ids('n', 3));
    cluster.nodes[0].state = 'dead';
    cluster.nodes[1].state = 'suspect';
    const io = new ChunkIo(cluster);
    // Nothing failed, placement just ran out: 1 < minCopies(R=3, 3 registered) = 2.
    const err = await expectChunkError(io.write(R3, 5, patternBytes(100, 1)), 'NO_SPACE', /1 of 3 copies written/);
    // NB: ChunkIo cannot tell "no node up" from "no node with room" (place() gives no
    // reason), so a short placement with no write error is reported as NO_SPACE.
    expect(err.code).toBe('NO_SPACE');
    expect(io.counters.degradedWrites).toBe(0);
  });

  it('fails with NO_SPACE when every target says NO_SPACE', async () => {
    const cluster = new FakeCluster(ids('n', 5));
    for (const s of cluster.servers.values()) s.writeFault = 'NO_SPACE';
    const io = new ChunkIo(cluster);
    await expectChunkError(io.write(R3, 6, patternBytes(100, 1)), 'NO_SPACE', /0 of 3 copies written, at least 2 needed.*NO_SPACE/);
    expect(io.counters.degradedWrites).toBe(0);
  });

  it('fails with NO_SPACE when no node has room (placement offers none, nothing is written)', async () => {
    const cluster = new FakeCluster(ids('n', 4));
    for (const n of cluster.nodes) {
      n.totalBytes = 100 * 1024 * 1024 * 1024;
      n.freeBytes = 1024;
    }
    const io = new ChunkIo(cluster);
    await expectChunkError(io.write(R3, 6, patternBytes(100, 1)), 'NO_SPACE', /0 of 3 copies/);
    expect(totalWrites(cluster)).toBe(0);
  });

  it('fails with UNAVAILABLE (not NO_SPACE) when failures are mixed', async () => {
    const cluster = new FakeCluster(ids('n', 4));
    cluster.server('n0').writeFault = 'NO_SPACE';
    cluster.server('n1').writeFault = 'NO_SPACE';
    cluster.server('n2').writeFault = 'UNAVAILABLE';
    cluster.server('n3').writeFault = 'NO_SPACE';
    const io = new ChunkIo(cluster);
    await expectChunkError(io.write(R3, 6, patternBytes(100, 1)), 'UNAVAILABLE');
  });

  it('gives up on a copy after a bounded number of targets, and then never accepts a short write while placement could offer more', async () => {
    // g0, g1 good; f0..f9 fail. First-fit places g0, g1, f0; the third copy burns its
    // tries on f0, f1, ... while untried nodes remain: not exhausted, so an error.
    const cluster = new FakeCluster(['g0', 'g1', ...ids('f', 10)], { mode: 'first-fit' });
    for (let i = 0; i < 10; i++) cluster.server(`f${i}`).writeFault = 'UNAVAILABLE';
    const io = new ChunkIo(cluster);
    await expectChunkError(io.write(R3, 8, patternBytes(100, 1)), 'UNAVAILABLE', /2 of 3 copies written/);
    const failedAttempts = ids('f', 10).reduce((n, id) => n + cluster.server(id).writeCalls, 0);
    expect(failedAttempts).toBeGreaterThan(1);
    expect(failedAttempts).toBeLessThan(10); // bounded: it did not sweep the cluster
    expect(io.counters.degradedWrites).toBe(0);
  });
});

describe('ChunkIo write, erasure coding', () => {
  it.each([
    [4, 2, 8],
    [6, 3, 12],
  ])('%i+%i on %i nodes: shard i on placement[i], all distinct, bytes as encodeStripe', async (k, m, nodes) => {
    for (let seed = 1; seed <= 5; seed++) {
      const cluster = new FakeCluster(ids('n', nodes), { seed });
      const io = new ChunkIo(cluster);
      const data = patternBytes(10_000 + seed * 37, seed);
      const written = await io.write({ kind: 'ec', k, m }, 11, data);
      expect(written.ec).toEqual({ k, m, shardBytes: shardSizeBytes(data.length, k) });
      expect(written.placement).toHaveLength(k + m);
      expect(new Set(written.placement).size).toBe(k + m);
      const shards = await encodeStripe(data, k, m);
      written.placement.forEach((id, i) => expect(cluster.server(id).chunks.get(11)?.equals(shards[i]), `shard ${i} on ${id}`).toBe(true));
      expect(io.counters.replacedTargets).toBe(0);
    }
  });

  it('replaces a failed shard target keeping shard order (first-fit: the failed node was shard 2)', async () => {
    const cluster = new FakeCluster(ids('n', 8), { mode: 'first-fit' });
    cluster.server('n2').writeFault = 'UNAVAILABLE';
    const io = new ChunkIo(cluster);
    const data = patternBytes(5000, 3);
    const written = await io.write({ kind: 'ec', k: 4, m: 2 }, 12, data);
    expect(written.placement).toEqual(['n0', 'n1', 'n6', 'n3', 'n4', 'n5']);
    const shards = await encodeStripe(data, 4, 2);
    written.placement.forEach((id, i) => expect(cluster.server(id).chunks.get(12)?.equals(shards[i])).toBe(true));
    expect(io.counters.replacedTargets).toBe(1);
  });

  it('replaces failed shard targets keeping shard order (random placement, 3 failing of 10)', async () => {
    for (let seed = 1; seed <= 15; seed++) {
      const cluster = new FakeCluster(ids('n', 10), { seed });
      cluster.server('n1').writeFault = 'UNAVAILABLE';
      cluster.server('n4').writeFault = 'hang';
      cluster.server('n8').writeFault = 'NO_SPACE';
      const io = new ChunkIo(cluster);
      const data = patternBytes(7777, seed);
      const written = await io.write({ kind: 'ec', k: 4, m: 2 }, 13, data);
      expect(written.placement).toHaveLength(6);
      expect(new Set(written.placement).size).toBe(6);
      const shards = await encodeStripe(data, 4, 2);
      written.placement.forEach((id, i) => {
        expect(['n1', 'n4', 'n8']).not.toContain(id);
        expect(cluster.server(id).chunks.get(13)?.equals(shards[i]), `seed ${seed} shard ${i}`).toBe(true);
      });
      // Every shard that any node holds sits where the placement says.
      for (const s of cluster.servers.values()) if (s.chunks.has(13)) expect(written.placement).toContain(s.nodeId);
    }
  });

  it('accepts k+1 shards when the cluster has no node for the rest (4+2 on 5 nodes), marking the missing slot', async () => {
    const cluster = new FakeCluster(ids('n', 5), { mode: 'first-fit' });
    const io = new ChunkIo(cluster);
    const data = patternBytes(9000, 4);
    const written = await io.write({ kind: 'ec', k: 4, m: 2 }, 14, data);
    expect(written.placement).toEqual(['n0', 'n1', 'n2', 'n3', 'n4', '']);
    expect(io.counters.degradedWrites).toBe(1);
    const ref = refOf(14, data.length, written);
    expect((await io.read(ref, 0, data.length)).equals(data)).toBe(true);
    // With a data shard lost as well, k shards remain and the read decodes.
    cluster.server('n1').readFault = 'UNAVAILABLE';
    expect((await io.read(ref, 0, data.length)).equals(data)).toBe(true);
    expect(io.counters.ecDecodes).toBe(1);
  });

  it('fails with fewer than k+1 shards: 4+2 on 4 nodes, or on 6 nodes with 2 failing', async () => {
    const small = new FakeCluster(ids('n', 4));
    await expectChunkError(new ChunkIo(small).write({ kind: 'ec', k: 4, m: 2 }, 15, patternBytes(100, 1)), 'NO_SPACE', /4 of 6 copies written, at least 5 needed/);
    const failing = new FakeCluster(ids('n', 6));
    failing.server('n0').writeFault = 'UNAVAILABLE';
    failing.server('n3').writeFault = 'UNAVAILABLE';
    const io = new ChunkIo(failing);
    await expectChunkError(io.write({ kind: 'ec', k: 4, m: 2 }, 15, patternBytes(100, 1)), 'UNAVAILABLE', /4 of 6 copies written, at least 5 needed/);
    expect(io.counters.degradedWrites).toBe(0);
  });

  it('an empty chunk encodes to empty shards and reads back empty', async () => {
    const cluster = new FakeCluster(ids('n', 6));
    const io = new ChunkIo(cluster);
    const written = await io.write({ kind: 'ec', k: 4, m: 2 }, 16, Buffer.alloc(0));
    expect(written.ec?.shardBytes).toBe(0);
    expect(written.placement).toHaveLength(6);
    expect((await io.read(refOf(16, 0, written), 0, 100)).length).toBe(0);
  });
});

describe('ChunkIo read, replicas', () => {
  async function threeCopies(options: ClusterOptions = {}): Promise<{ cluster: FakeCluster; io: ChunkIo; data: Buffer; ref: ChunkRef }> {
    const cluster = new FakeCluster(ids('n', 5), { mode: 'first-fit', ...options });
    const io = new ChunkIo(cluster);
    const data = patternBytes(20_000, 77);
    const written = await io.write(R3, 21, data);
    expect(written.placement).toEqual(['n0', 'n1', 'n2']);
    return { cluster, io, data, ref: refOf(21, data.length, written) };
  }

  function readsOf(cluster: FakeCluster): Record<string, number> {
    return Object.fromEntries([...cluster.servers.values()].map((s) => [s.nodeId, s.readCalls.length]));
  }

  it('reads the local copy first, every time, when this node holds one', async () => {
    const { cluster, io, data, ref } = await threeCopies({ localId: 'n2' });
    for (let i = 0; i < 6; i++) expect((await io.read(ref, i * 1000, 500)).equals(data.subarray(i * 1000, i * 1000 + 500))).toBe(true);
    expect(readsOf(cluster)).toEqual({ n0: 0, n1: 0, n2: 6, n3: 0, n4: 0 });
    expect(io.counters.readFailovers).toBe(0);
  });

  it('spreads first reads over the holders when none is local', async () => {
    const { cluster, io, ref } = await threeCopies({ localId: 'n4' });
    for (let i = 0; i < 9; i++) await io.read(ref, 0, 10);
    expect(readsOf(cluster)).toEqual({ n0: 3, n1: 3, n2: 3, n3: 0, n4: 0 });
  });

  it('falls over from a corrupt first copy to a good one (corruptCopies, readFailovers)', async () => {
    const { cluster, io, data, ref } = await threeCopies({ localId: 'n1' });
    cluster.server('n1').corrupt.add(21);
    expect((await io.read(ref, 100, 5000)).equals(data.subarray(100, 5100))).toBe(true);
    expect(cluster.server('n1').readCalls).toHaveLength(1);
    expect(io.counters.corruptCopies).toBe(1);
    expect(io.counters.readFailovers).toBe(1);
  });

  it('falls over past unreachable, hung, missing and unknown holders to the last good one', async () => {
    const { cluster, io, data } = await threeCopies({ localId: 'n0' });
    cluster.server('n0').readFault = 'UNAVAILABLE';
    cluster.server('n1').readFault = 'hang';
    cluster.server('n3').chunks.clear(); // listed but never got it: NOT_FOUND
    const ref: ChunkRef = { index: 0, chunkId: 21, sizeBytes: data.length, placement: ['n0', 'ghost', '', 'n1', 'n3', 'n2'] };
    expect((await io.read(ref, 0, data.length)).equals(data)).toBe(true);
    expect(io.counters.readFailovers).toBe(4);
    expect(io.counters.corruptCopies).toBe(0);
  });

  it('rejects with the last error when no copy is readable', async () => {
    const { cluster, io, ref } = await threeCopies();
    cluster.server('n0').readFault = 'UNAVAILABLE';
    cluster.server('n1').corrupt.add(21);
    cluster.server('n2').readFault = 'IO';
    const err = await io.read(ref, 0, 10).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ChunkError);
    expect(['UNAVAILABLE', 'CORRUPT', 'IO']).toContain((err as ChunkError).code);
    expect(io.counters.corruptCopies).toBe(1);
    await expectChunkError(io.read({ ...ref, placement: [] }, 0, 10), 'UNAVAILABLE', /no replica/);
  });

  it('clamps to sizeBytes and reads nothing for a range past it', async () => {
    const { cluster, io, data, ref } = await threeCopies({ localId: 'n0' });
    expect((await io.read(ref, data.length - 10, 1000)).equals(data.subarray(data.length - 10))).toBe(true);
    const before = cluster.server('n0').readCalls.length;
    expect((await io.read(ref, data.length, 100)).length).toBe(0);
    expect((await io.read(ref, data.length + 5, 100)).length).toBe(0);
    expect((await io.read(ref, 0, 0)).length).toBe(0);
    expect(cluster.server('n0').readCalls.length).toBe(before);
    // A truncated ref (sizeBytes below the object's length) reads only its prefix.
    expect((await io.read({ ...ref, sizeBytes: 1234 }, 1000, 5000)).equals(data.subarray(1000, 1234))).toBe(true);
  });

  it('property: any range of a replicated chunk reads back its slice, with any copy but one failing', async () => {
    const { cluster, io, data, ref } = await threeCopies();
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: data.length + 10 }),
        fc.nat({ max: data.length + 10 }),
        fc.integer({ min: 0, max: 2 }),
        fc.constantFrom<Exclude<Fault, null> | 'corrupt'>('UNAVAILABLE', 'hang', 'corrupt', 'IO'),
        async (offset, length, good, fault) => {
          for (const [i, id] of ['n0', 'n1', 'n2'].entries()) {
            const s = cluster.server(id);
            s.readFault = null;
            s.corrupt.clear();
            if (i === good) continue;
            if (fault === 'corrupt') s.corrupt.add(21);
            else s.readFault = fault;
          }
          const got = await io.read(ref, offset, length);
          expect(got.equals(data.subarray(offset, Math.min(data.length, offset + length)))).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('ChunkIo read, erasure coding', () => {
  const schemes: Array<[number, number]> = [
    [4, 2],
    [6, 3],
  ];

  async function ecChunk(k: number, m: number, sizeBytes: number, seed: number): Promise<{ cluster: FakeCluster; io: ChunkIo; data: Buffer; ref: ChunkRef }> {
    const cluster = new FakeCluster(ids('n', k + m + 2), { seed });
    const io = new ChunkIo(cluster);
    const data = patternBytes(sizeBytes, seed);
    const written = await io.write({ kind: 'ec', k, m }, 31, data);
    expect(written.placement.every((p) => p !== '')).toBe(true);
    return { cluster, io, data, ref: refOf(31, sizeBytes, written) };
  }

  /** Data shards a healthy read of [offset, end) touches. */
  function coveredShards(offset: number, end: number, shardBytes: number): number[] {
    const out: number[] = [];
    for (let s = Math.floor(offset / shardBytes); s * shardBytes < end; s++) out.push(s);
    return end > offset ? out : [];
  }

  const rangeCase = fc
    .record({
      scheme: fc.constantFrom(...schemes),
      sizeBytes: fc.integer({ min: 1, max: 6000 }),
      seed: fc.integer({ min: 1, max: 1_000_000 }),
    })
    .chain((c) =>
      fc.record({
        scheme: fc.constant(c.scheme),
        sizeBytes: fc.constant(c.sizeBytes),
        seed: fc.constant(c.seed),
        offset: fc.nat({ max: c.sizeBytes + 8 }),
        length: fc.nat({ max: c.sizeBytes + 8 }),
      }),
    );

  it('healthy path: any range equals the data slice, touching only the data shards it covers, no decode', async () => {
    await fc.assert(
      fc.asyncProperty(rangeCase, async ({ scheme: [k, m], sizeBytes, seed, offset, length }) => {
        const { cluster, io, data, ref } = await ecChunk(k, m, sizeBytes, seed);
        const got = await io.read(ref, offset, length);
        const end = Math.min(sizeBytes, offset + length);
        expect(got.equals(data.subarray(offset, end))).toBe(true);
        expect(io.counters.ecDecodes).toBe(0);
        expect(io.counters.readFailovers).toBe(0);
        const shardBytes = ref.ec?.shardBytes ?? 0;
        const touched = ref.placement.map((id, i) => (cluster.server(id).readCalls.length > 0 ? i : -1)).filter((i) => i >= 0);
        expect(touched).toEqual(coveredShards(offset, end, shardBytes));
      }),
      { numRuns: 120 },
    );
  });

  it('a small read inside one shard is one range read on one server', async () => {
    const { cluster, io, data, ref } = await ecChunk(6, 3, 60_000, 5);
    const S = ref.ec?.shardBytes ?? 0;
    expect((await io.read(ref, 2 * S + 100, 128)).equals(data.subarray(2 * S + 100, 2 * S + 228))).toBe(true);
    const calls = [...cluster.servers.values()].flatMap((s) => s.readCalls);
    expect(calls).toEqual([{ chunkId: 31, offset: 100, length: 128 }]);
    expect(cluster.server(ref.placement[2]).readCalls).toHaveLength(1);
  });

  type ShardFault = 'UNAVAILABLE' | 'hang' | 'corrupt' | 'no-holder' | 'unknown-node' | 'short';

  function breakShard(cluster: FakeCluster, ref: ChunkRef, shard: number, fault: ShardFault): void {
    const id = ref.placement[shard];
    const s = cluster.server(id);
    if (fault === 'corrupt') s.corrupt.add(ref.chunkId);
    else if (fault === 'no-holder') ref.placement[shard] = '';
    else if (fault === 'unknown-node') ref.placement[shard] = `gone-${shard}`;
    else if (fault === 'short') s.chunks.set(ref.chunkId, Buffer.alloc(0)); // a shard object cut short: every range read comes back short
    else s.readFault = fault;
  }

  const shardFault = fc.constantFrom<ShardFault>('UNAVAILABLE', 'hang', 'corrupt', 'no-holder', 'unknown-node', 'short');

  it('degraded path: with up to m shards unreadable, any range still reads right (decoding only when a covered data shard failed)', async () => {
    await fc.assert(
      fc.asyncProperty(
        rangeCase.chain((c) =>
          fc.record({
            c: fc.constant(c),
            broken: fc.uniqueArray(fc.integer({ min: 0, max: c.scheme[0] + c.scheme[1] - 1 }), { minLength: 1, maxLength: c.scheme[1] }),
            faults: fc.array(shardFault, { minLength: c.scheme[1], maxLength: c.scheme[1] }),
          }),
        ),
        async ({ c: { scheme: [k, m], sizeBytes, seed, offset, length }, broken, faults }) => {
          const { cluster, io, data, ref } = await ecChunk(k, m, sizeBytes, seed);
          broken.forEach((shard, i) => breakShard(cluster, ref, shard, faults[i]));
          const got = await io.read(ref, offset, length);
          const end = Math.min(sizeBytes, offset + length);
          expect(got.equals(data.subarray(offset, end))).toBe(true);
          const covered = coveredShards(offset, end, ref.ec?.shardBytes ?? 0);
          const decoded = covered.some((s) => broken.includes(s));
          expect(io.counters.ecDecodes).toBe(decoded ? 1 : 0);
          if (!broken.some((_, i) => faults[i] === 'corrupt')) expect(io.counters.corruptCopies).toBe(0);
        },
      ),
      { numRuns: 150 },
    );
  });

  it.each(schemes)('%i+%i: every set of m failing shard holders still reads the whole chunk', async (k, m) => {
    const { cluster, io, data, ref } = await ecChunk(k, m, 12_345, 9);
    const n = k + m;
    let sets = 0;
    for (let mask = 0; mask < 1 << n; mask++) {
      const broken = [...Array(n).keys()].filter((i) => (mask >> i) & 1);
      if (broken.length !== m) continue;
      sets++;
      for (const s of cluster.servers.values()) {
        s.readFault = null;
        s.corrupt.clear();
      }
      broken.forEach((shard, i) => (i % 2 === 0 ? (cluster.server(ref.placement[shard]).readFault = 'UNAVAILABLE') : cluster.server(ref.placement[shard]).corrupt.add(31)));
      expect((await io.read(ref, 0, data.length)).equals(data), `without shards ${broken.join(',')}`).toBe(true);
    }
    expect(io.counters.ecDecodes).toBe(sets - 1); // all but the set of m parity shards needed a decode
    expect(io.counters.corruptCopies).toBeGreaterThan(0);
  });

  it.each(schemes)('%i+%i: m+1 unreadable shards (one a data shard the read needs) is an error', async (k, m) => {
    const { cluster, io, ref } = await ecChunk(k, m, 9_999, 4);
    // Shard 0 plus m parity/data shards: only k-1 remain.
    for (let shard = 0; shard <= m; shard++) cluster.server(ref.placement[shard]).readFault = shard % 2 === 0 ? 'UNAVAILABLE' : 'hang';
    await expectChunkError(io.read(ref, 0, 10), 'UNAVAILABLE', new RegExp(`only ${k - 1} of the ${k} shards needed are readable`));
    expect(io.counters.ecDecodes).toBe(1);
    // With the same m+1 shards corrupt instead, also an error (never made-up bytes).
    for (let shard = 0; shard <= m; shard++) {
      const s = cluster.server(ref.placement[shard]);
      s.readFault = null;
      s.corrupt.add(31);
    }
    await expectChunkError(io.read(ref, 0, ref.sizeBytes), 'UNAVAILABLE');
  });

  it('a truncated ref (sizeBytes below the encoded length, shardBytes unchanged) reads right up to sizeBytes, healthy or degraded', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...schemes),
        fc.integer({ min: 100, max: 8000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.nat({ max: 9000 }),
        fc.nat({ max: 9000 }),
        fc.boolean(),
        async ([k, m], encodedBytes, keep, offset, length, degraded) => {
          const { cluster, io, data, ref } = await ecChunk(k, m, encodedBytes, encodedBytes);
          const truncated: ChunkRef = { ...ref, placement: [...ref.placement], sizeBytes: Math.floor(encodedBytes * keep) };
          expect(truncated.ec?.shardBytes).toBe(shardSizeBytes(encodedBytes, k));
          if (degraded) for (let shard = 0; shard < m; shard++) cluster.server(ref.placement[shard]).readFault = 'UNAVAILABLE';
          const got = await io.read(truncated, offset, length);
          expect(got.equals(data.subarray(offset, Math.min(truncated.sizeBytes, offset + length)))).toBe(true);
        },
      ),
      { numRuns: 120 },
    );
  });
});
