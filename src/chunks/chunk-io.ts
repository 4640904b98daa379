// The client's write and read paths of chunk data across chunk servers (decision 0007).
//
// Write: a chunk goes to R distinct nodes as replicas, or is encoded into k+m shards on
// k+m distinct nodes (one stripe per chunk, src/chunks/ec.ts), all in parallel. A target
// that fails is replaced by another node; the write succeeds with every copy in place,
// or — only when the cluster has no node left to replace a failed one — with at least
// minCopies() of them (the chunk is then under-protected and repair brings it back).
// Fewer than that is an error (ENOSPC when space was the reason, else EIO).
//
// Read: replicas are tried local first, then in an order that spreads readers; every
// byte is CRC32C-checked by the chunk server, and a bad or unreachable copy falls over to
// the next. EC reads the data shards a range covers; only when one fails does it fetch
// any k shards and decode.
import type { Logger } from 'pino';
import { ChunkError, type ChunkApi } from './api.js';
import { decodeData, encodeStripe, shardSizeBytes } from './ec.js';
import type { ChunkEc, ChunkRef, Layout } from '../meta/types.js';

/** Where copies go and how to reach a node: the client's data plane implements it. */
export interface ChunkPlacer {
  /**
   * Up to `count` distinct up nodes with room for `bytes`, none of `exclude`, in other
   * failure domains (zones, racks) than `apartFrom` (the copies already placed) when it can.
   */
  place(layout: Layout, bytes: number, count: number, exclude: ReadonlySet<string>, apartFrom?: ReadonlySet<string>): Promise<string[]>;
  /** True when some node that is up lacks room for `bytes` (a shortfall of nodes is then a shortfall of space). */
  spaceLimited?(bytes: number): boolean;
  /** Copies a write must reach when no replacement node is left (see placement.ts minCopies). */
  minCopies(layout: Layout): number;
  /** Chunk servers the cluster has (up or not): fewer than a layout asks is a small cluster, not a fault. */
  clusterNodes(): number;
  /** The chunk server of a node, or undefined when the node is unknown. */
  node(nodeId: string): ChunkApi | undefined;
  /** This client's own node id (its copies are read first); '' for none. */
  readonly localId: string;
}

export interface ChunkIoCounters {
  /** Writes that ended with fewer copies than the layout asks (left to repair). */
  degradedWrites: number;
  /** Targets that failed during a write and were replaced. */
  replacedTargets: number;
  /** Reads that fell over to another copy. */
  readFailovers: number;
  /** Copies found corrupt (CRC32C mismatch) while reading. */
  corruptCopies: number;
  /** EC reads that had to decode (a data shard was missing). */
  ecDecodes: number;
}

export interface WrittenChunk {
  placement: string[];
  ec?: ChunkEc;
}

/** Attempts per copy slot (the first target plus replacements). */
const MAX_TRIES_PER_COPY = 4;

export class ChunkIo {
  readonly counters: ChunkIoCounters = { degradedWrites: 0, replacedTargets: 0, readFailovers: 0, corruptCopies: 0, ecDecodes: 0 };
  private rotation = 0;

  constructor(
    private readonly placer: ChunkPlacer,
    private readonly log?: Logger,
  ) {}

  // ---- write ----------------------------------------------------------------------------

  /** Stores one chunk object with its layout's protection; resolves with where it went. */
  async write(layout: Layout, chunkId: number, data: Buffer): Promise<WrittenChunk> {
    if (layout.kind === 'replicas') {
      const holders = await this.writeCopies(layout, chunkId, layout.replicas, () => data, data.length);
      return { placement: holders.filter((h) => h !== '') };
    }
    const shards = await encodeStripe(data, layout.k, layout.m);
    const shardBytes = shardSizeBytes(data.length, layout.k);
    const holders = await this.writeCopies(layout, chunkId, layout.k + layout.m, (i) => shards[i], shardBytes);
    return { placement: holders, ec: { k: layout.k, m: layout.m, shardBytes } };
  }

  /** Writes `count` copies (slot i gets payload(i)) to distinct nodes; '' marks a slot that could not be filled. */
  private async writeCopies(layout: Layout, chunkId: number, count: number, payload: (slot: number) => Buffer, bytes: number): Promise<string[]> {
    const used = new Set<string>();
    const initial = await this.placer.place(layout, bytes, count, used);
    for (const n of initial) used.add(n);
    // Placement had no (further) node to offer: the only case a short write is accepted.
    let exhausted = initial.length < count;
    const errors: string[] = [];
    const failed = new Set<string>();

    const fill = async (slot: number): Promise<string> => {
      let target: string | undefined = initial[slot];
      let collisions = 0;
      for (let tries = 0; tries < MAX_TRIES_PER_COPY; tries++) {
        if (target === undefined) {
          // Replacement: another node nobody in this write has used (placement is async,
          // so a node picked concurrently by another slot is skipped).
          const placed = new Set([...used].filter((n) => !failed.has(n)));
          const next = (await this.placer.place(layout, bytes, 1, used, placed))[0];
          if (next === undefined) {
            exhausted = true;
            return '';
          }
          if (used.has(next)) {
            // Taken by another slot meanwhile, not a failed target: ask again without
            // spending a try (bounded by the nodes one write can ever claim).
            if (collisions++ < count * MAX_TRIES_PER_COPY) tries--;
            continue;
          }
          used.add(next);
          target = next;
        }
        const node = this.placer.node(target);
        try {
          if (!node) throw new ChunkError('UNAVAILABLE', `unknown chunk server ${target}`);
          await node.writeChunk(chunkId, payload(slot));
          return target;
        } catch (e) {
          const err = e instanceof ChunkError ? e : new ChunkError('UNAVAILABLE', (e as Error).message);
          errors.push(`${target}: ${err.code} ${err.message}`);
          failed.add(target);
          this.counters.replacedTargets++;
          this.log?.warn({ chunkId, node: target, code: err.code, err: err.message }, 'chunk write to a target failed; replacing it');
          target = undefined;
        }
      }
      return '';
    };

    // Every slot settles before this returns, even when one throws: callers reuse `payload`'s
    // buffers once the write is over, so no copy may still be sending from them.
    const settled = await Promise.allSettled(Array.from({ length: count }, (_, slot) => fill(slot)));
    const holders = settled.map((r) => {
      if (r.status === 'rejected') throw r.reason;
      return r.value;
    });
    const copies = holders.filter((h) => h !== '').length;
    if (copies === count) return holders;
    const floor = this.placer.minCopies(layout);
    if (copies >= floor && exhausted) {
      this.counters.degradedWrites++;
      if (this.placer.clusterNodes() >= count) this.log?.warn({ chunkId, copies, wanted: count, errors }, 'chunk written with fewer copies than its layout asks (no node left to replace a failed one); repair will complete it');
      return holders;
    }
    const why = errors.length > 0 ? `: ${errors.slice(0, 4).join('; ')}` : '';
    const msg = `chunk ${chunkId}: ${copies} of ${count} copies written, at least ${floor} needed${why}`;
    // ENOSPC when space is what ran out (every failure said so, or no node had room), else EIO.
    const noSpace = errors.length > 0 ? errors.every((e) => e.includes(': NO_SPACE ')) : exhausted && (this.placer.spaceLimited?.(bytes) ?? true);
    throw new ChunkError(noSpace ? 'NO_SPACE' : 'UNAVAILABLE', msg);
  }

  // ---- read -----------------------------------------------------------------------------

  /** [offset, offset+length) of a chunk's data, clamped to ref.sizeBytes. */
  async read(ref: ChunkRef, offset: number, length: number): Promise<Buffer> {
    const end = Math.min(ref.sizeBytes, offset + length);
    if (end <= offset) return Buffer.alloc(0);
    return ref.ec ? this.readEc(ref, ref.ec, offset, end - offset) : this.readReplicas(ref, offset, end - offset);
  }

  /** Holders in read order: this node first, then a rotating start so readers spread. */
  private order(placement: readonly string[]): string[] {
    const holders = placement.filter((p) => p !== '');
    const local = holders.filter((h) => h === this.placer.localId);
    const others = holders.filter((h) => h !== this.placer.localId);
    const start = others.length > 0 ? this.rotation++ % others.length : 0;
    return [...local, ...others.slice(start), ...others.slice(0, start)];
  }

  private async readReplicas(ref: ChunkRef, offset: number, length: number): Promise<Buffer> {
    // Made only when every copy failed: an Error (with its stack) per read shows in profiles.
    let lastErr: unknown = null;
    let first = true;
    for (const nodeId of this.order(ref.placement)) {
      if (!first) this.counters.readFailovers++;
      first = false;
      try {
        return await this.readFrom(nodeId, ref.chunkId, offset, length);
      } catch (e) {
        lastErr = e;
      }
    }
    throw lastErr ?? new ChunkError('UNAVAILABLE', `no replica of chunk ${ref.chunkId} is reachable`);
  }

  private async readFrom(nodeId: string, chunkId: number, offset: number, length: number): Promise<Buffer> {
    const node = this.placer.node(nodeId);
    if (!node) throw new ChunkError('UNAVAILABLE', `unknown chunk server ${nodeId}`);
    try {
      return await node.readChunk(chunkId, offset, length);
    } catch (e) {
      if (e instanceof ChunkError && e.code === 'CORRUPT') {
        this.counters.corruptCopies++;
        this.log?.error({ chunkId, node: nodeId }, 'corrupt chunk copy (CRC32C mismatch); reading another copy');
      } else {
        this.log?.warn({ chunkId, node: nodeId, err: (e as Error).message }, 'chunk read failed; trying another copy');
      }
      throw e;
    }
  }

  private async readEc(ref: ChunkRef, ec: ChunkEc, offset: number, length: number): Promise<Buffer> {
    const S = ec.shardBytes;
    // Healthy path: the data shards the range covers, read in parallel.
    const parts: Array<{ shard: number; from: number; len: number }> = [];
    for (let pos = offset; pos < offset + length; ) {
      const shard = Math.floor(pos / S);
      const from = pos - shard * S;
      const len = Math.min(S - from, offset + length - pos);
      parts.push({ shard, from, len });
      pos += len;
    }
    try {
      const bufs = await Promise.all(
        parts.map(async (p) => {
          const holder = ref.placement[p.shard];
          if (!holder) throw new ChunkError('UNAVAILABLE', `shard ${p.shard} of chunk ${ref.chunkId} has no holder`);
          const b = await this.readFrom(holder, ref.chunkId, p.from, p.len);
          if (b.length !== p.len) throw new ChunkError('CORRUPT', `shard ${p.shard} of chunk ${ref.chunkId} is short`);
          return b;
        }),
      );
      return bufs.length === 1 ? bufs[0] : Buffer.concat(bufs);
    } catch {
      this.counters.readFailovers++;
    }
    // Degraded: any k whole shards, then decode.
    this.counters.ecDecodes++;
    const shards = await this.gatherShards(ref, ec);
    const data = await decodeData(shards, ec.k, ec.m, ec.k * S);
    return Buffer.from(data.subarray(offset, offset + length));
  }

  /** Reads whole shards from their holders until k are in hand (data shards first). */
  private async gatherShards(ref: ChunkRef, ec: ChunkEc): Promise<Array<Buffer | null>> {
    const n = ec.k + ec.m;
    const shards: Array<Buffer | null> = new Array<Buffer | null>(n).fill(null);
    let have = 0;
    const tryShard = async (i: number): Promise<void> => {
      const holder = ref.placement[i];
      if (!holder) return;
      try {
        const b = await this.readFrom(holder, ref.chunkId, 0, ec.shardBytes);
        if (b.length === ec.shardBytes) {
          shards[i] = b;
          have++;
        }
      } catch {
        // counted and logged by readFrom; another shard stands in
      }
    };
    // First the k data shards, then parity shards as many as are still needed.
    await Promise.all(Array.from({ length: ec.k }, (_, i) => tryShard(i)));
    for (let i = ec.k; i < n && have < ec.k; ) {
      const batch: number[] = [];
      for (; i < n && batch.length < ec.k - have; i++) batch.push(i);
      await Promise.all(batch.map(tryShard));
    }
    if (have < ec.k) throw new ChunkError('UNAVAILABLE', `chunk ${ref.chunkId}: only ${have} of the ${ec.k} shards needed are readable`);
    return shards;
  }
}
