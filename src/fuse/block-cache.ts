// Client read cache of chunk data in fixed blocks, with read-ahead. Chunk objects are
// immutable, so a cached block can never be stale: close-to-open consistency is kept by
// re-reading the chunk refs at open, not by invalidating this cache.
import { LRUCache } from 'lru-cache';
import type { ChunkRef } from '../meta/types.js';

export const BLOCK_BYTES = 1024 * 1024;
/** Reads no larger than this that do not continue the previous one bypass the block cache. */
const RANDOM_READ_MAX_BYTES = 256 * 1024;
/** Random reads are widened to the chunk store's checksum block (64 KiB). */
const RANDOM_ALIGN_BYTES = 64 * 1024;

export interface BlockSource {
  /** Read [offset, offset+length) of the object behind ref (clamped to ref.sizeBytes). */
  fetch(ref: ChunkRef, offset: number, length: number): Promise<Buffer>;
}

export interface BlockCacheStats {
  hits: number;
  misses: number;
  bytes: number;
}

export class BlockCache {
  private readonly cache: LRUCache<string, Buffer>;
  private readonly inflight = new Map<string, Promise<Buffer>>();
  private hits = 0;
  private misses = 0;

  constructor(
    private readonly source: BlockSource,
    maxBytes: number,
    private readonly readAheadBlocks: number,
  ) {
    this.cache = new LRUCache<string, Buffer>({ maxSize: Math.max(maxBytes, BLOCK_BYTES), sizeCalculation: (b) => Math.max(1, b.length) });
  }

  stats(): BlockCacheStats {
    return { hits: this.hits, misses: this.misses, bytes: this.cache.calculatedSize };
  }

  /** Read [offset, offset+length) of ref's object; length must stay within ref.sizeBytes. */
  async read(ref: ChunkRef, offset: number, length: number, sequential: boolean): Promise<Buffer> {
    if (!sequential && length <= RANDOM_READ_MAX_BYTES) {
      const cached = this.cache.get(`${ref.chunkId}:${Math.floor(offset / BLOCK_BYTES)}`);
      const blockStart = Math.floor(offset / BLOCK_BYTES) * BLOCK_BYTES;
      if (cached && offset + length <= blockStart + cached.length) {
        this.hits++;
        return cached.subarray(offset - blockStart, offset - blockStart + length);
      }
      // A random reader gets the checksum blocks it touches, not a whole 1 MiB block:
      // 4 KiB random reads would otherwise move 256x the data.
      this.misses++;
      const start = Math.floor(offset / RANDOM_ALIGN_BYTES) * RANDOM_ALIGN_BYTES;
      const end = Math.min(ref.sizeBytes, Math.ceil((offset + length) / RANDOM_ALIGN_BYTES) * RANDOM_ALIGN_BYTES);
      const buf = await this.source.fetch(ref, start, end - start);
      return buf.subarray(offset - start, offset - start + length);
    }
    const first = Math.floor(offset / BLOCK_BYTES);
    const last = Math.floor((offset + length - 1) / BLOCK_BYTES);
    if (sequential && this.readAheadBlocks > 0) {
      const lastBlock = Math.floor((ref.sizeBytes - 1) / BLOCK_BYTES);
      for (let b = last + 1; b <= Math.min(lastBlock, last + this.readAheadBlocks); b++) {
        this.block(ref, b).catch(() => undefined);
      }
    }
    if (first === last) {
      const block = await this.block(ref, first);
      const start = offset - first * BLOCK_BYTES;
      return block.subarray(start, start + length);
    }
    const parts: Buffer[] = [];
    for (let b = first; b <= last; b++) parts.push(await this.block(ref, b));
    const joined = Buffer.concat(parts);
    const start = offset - first * BLOCK_BYTES;
    return joined.subarray(start, start + length);
  }

  private block(ref: ChunkRef, blockIndex: number): Promise<Buffer> {
    const key = `${ref.chunkId}:${blockIndex}`;
    const hit = this.cache.get(key);
    if (hit && hit.length >= Math.min(BLOCK_BYTES, ref.sizeBytes - blockIndex * BLOCK_BYTES)) {
      this.hits++;
      return Promise.resolve(hit);
    }
    const running = this.inflight.get(key);
    if (running) return running;
    this.misses++;
    const start = blockIndex * BLOCK_BYTES;
    const length = Math.min(BLOCK_BYTES, ref.sizeBytes - start);
    const p = this.source
      .fetch(ref, start, length)
      .then((buf) => {
        this.cache.set(key, buf);
        return buf;
      })
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }
}
