// A KvReader that serves point lookups (inodes, dentries, counters, chunk refs, ...)
// from an LRU bounded by entries and by bytes. It holds only
// committed state: the store writes each applied batch through (writeThrough) after
// the KV write returns. A miss that raced a write is not cached (epoch check), so a
// read that started before a write can never plant the old value after it.
import { LRUCache } from 'lru-cache';
import type { KvOp, KvRange, KvReader } from './kv.js';

const ABSENT: { absent: true } = { absent: true };
/** Bytes of keys and values the cache may hold. */
const CACHE_MAX_BYTES = 64 * 1024 * 1024;
/** Larger values (inline file data) are read from the store, not cached. */
const CACHE_VALUE_MAX_BYTES = 4096;
type Cached = Buffer | typeof ABSENT;

export interface CacheStats {
  cacheHits: number;
  cacheMisses: number;
  cacheEntries: number;
}

export class CachedReader implements KvReader {
  private readonly cache: LRUCache<string, Cached>;
  private epoch = 0;
  hits = 0;
  misses = 0;

  constructor(
    private readonly base: KvReader,
    maxEntries: number,
  ) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('cache size must be a positive integer');
    this.cache = new LRUCache<string, Cached>({
      max: maxEntries,
      maxSize: CACHE_MAX_BYTES,
      sizeCalculation: (v, k) => k.length + (v === ABSENT ? 16 : (v as Buffer).length + 16),
    });
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    const k = key.toString('latin1');
    const hit = this.cache.get(k);
    if (hit !== undefined) {
      this.hits++;
      return hit === ABSENT ? undefined : (hit as Buffer);
    }
    this.misses++;
    const epoch = this.epoch;
    const value = await this.base.get(key);
    if (epoch === this.epoch && (value === undefined || value.length <= CACHE_VALUE_MAX_BYTES)) this.cache.set(k, value ?? ABSENT);
    return value;
  }

  scan(range: KvRange): Promise<Array<[Buffer, Buffer]>> {
    return this.base.scan(range);
  }

  /** Makes the cache match the store after `ops` were written. */
  writeThrough(ops: KvOp[]): void {
    this.epoch++;
    for (const op of ops) {
      if (op.type === 'put' && op.value.length > CACHE_VALUE_MAX_BYTES) {
        this.cache.delete(op.key.toString('latin1'));
        continue;
      }
      this.cache.set(op.key.toString('latin1'), op.type === 'put' ? op.value : ABSENT);
    }
  }

  /** Forgets everything, e.g. after a failed write left the store state unknown. */
  clear(): void {
    this.epoch++;
    this.cache.clear();
  }

  stats(): CacheStats {
    return { cacheHits: this.hits, cacheMisses: this.misses, cacheEntries: this.cache.size };
  }
}
