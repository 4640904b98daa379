// A KvReader that serves inode and dentry keys from a bounded LRU. It holds only
// committed state: the store writes each applied batch through (writeThrough) after
// the KV write returns. A miss that raced a write is not cached (epoch check), so a
// read that started before a write can never plant the old value after it.
import { LRUCache } from 'lru-cache';
import { isDentryKey, isInodeKey } from './keys.js';
import type { KvOp, KvRange, KvReader } from './kv.js';

const ABSENT: { absent: true } = { absent: true };
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
    this.cache = new LRUCache<string, Cached>({ max: maxEntries });
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    if (!isInodeKey(key) && !isDentryKey(key)) return this.base.get(key);
    const k = key.toString('latin1');
    const hit = this.cache.get(k);
    if (hit !== undefined) {
      this.hits++;
      return hit === ABSENT ? undefined : (hit as Buffer);
    }
    this.misses++;
    const epoch = this.epoch;
    const value = await this.base.get(key);
    if (epoch === this.epoch) this.cache.set(k, value ?? ABSENT);
    return value;
  }

  scan(range: KvRange): Promise<Array<[Buffer, Buffer]>> {
    return this.base.scan(range);
  }

  /** Makes the cache match the store after `ops` were written. */
  writeThrough(ops: KvOp[]): void {
    this.epoch++;
    for (const op of ops) {
      if (!isInodeKey(op.key) && !isDentryKey(op.key)) continue;
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
