// The one storage interface the namespace needs: point reads, atomic batches and
// bounded ordered scans. RocksKV (rocks-kv.ts) is the real engine; MemKV is its in-memory
// twin for tests. Keys compare as unsigned bytes (Buffer.compare) in both.

export type KvOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

export interface KvRange {
  gt?: Buffer;
  gte?: Buffer;
  lt?: Buffer;
  lte?: Buffer;
  /** At most this many entries come back; required so no scan is unbounded. */
  limit: number;
  reverse?: boolean;
}

/** Upper bound on one scan page, so a caller can never load a whole table at once. */
export const KV_SCAN_LIMIT_MAX = 10_000;

export interface KvReader {
  get(key: Buffer): Promise<Buffer | undefined>;
  /** Entries in key order (or reverse), at most `range.limit` of them. */
  scan(range: KvRange): Promise<Array<[Buffer, Buffer]>>;
}

export interface Kv extends KvReader {
  /** Applies every op of the batch atomically, in order. */
  write(batch: KvOp[], opts: { sync: boolean }): Promise<void>;
  close(): Promise<void>;
  /**
   * Optional: close and open the store again, after a failed write left it refusing writes
   * (RocksDB keeps a background error until reopened); what it holds durably stays.
   */
  reopen?(): Promise<void>;
}

export function checkScanLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > KV_SCAN_LIMIT_MAX) {
    throw new RangeError(`scan limit must be an integer in [1, ${KV_SCAN_LIMIT_MAX}], got ${limit}`);
  }
}

/** The smallest key greater than every key starting with `prefix`; undefined if none. */
export function prefixEnd(prefix: Buffer): Buffer | undefined {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return undefined;
}

// Keys are held as latin1 strings: one char per byte, so JS string order (UTF-16 code
// units, all < 256 here) is exactly Buffer.compare order, and Map lookups are cheap.
function str(key: Buffer): string {
  return key.toString('latin1');
}

/**
 * Sorted in-memory KV. Writes go to a Map and new keys to an unsorted pending list that
 * is merged into the sorted key array at the next scan, so bulk inserts stay O(n log n).
 */
export class MemKV implements Kv {
  private readonly values = new Map<string, Buffer>();
  private sortedKeys: string[] = [];
  private pendingKeys: string[] = [];
  private hasDeletes = false;
  private closed = false;

  async get(key: Buffer): Promise<Buffer | undefined> {
    this.checkOpen();
    const value = this.values.get(str(key));
    return value === undefined ? undefined : Buffer.from(value);
  }

  async write(batch: KvOp[], _opts: { sync: boolean }): Promise<void> {
    this.checkOpen();
    for (const op of batch) {
      const k = str(op.key);
      if (op.type === 'put') {
        if (!this.values.has(k)) this.pendingKeys.push(k);
        this.values.set(k, Buffer.from(op.value));
      } else if (this.values.delete(k)) {
        this.hasDeletes = true;
      }
    }
  }

  async scan(range: KvRange): Promise<Array<[Buffer, Buffer]>> {
    this.checkOpen();
    checkScanLimit(range.limit);
    const keys = this.sorted();
    const lower = range.gte !== undefined ? str(range.gte) : range.gt !== undefined ? str(range.gt) : undefined;
    const lowerInclusive = range.gte !== undefined;
    const upper = range.lte !== undefined ? str(range.lte) : range.lt !== undefined ? str(range.lt) : undefined;
    const upperInclusive = range.lte !== undefined;
    const inLower = (k: string): boolean => lower === undefined || (lowerInclusive ? k >= lower : k > lower);
    const inUpper = (k: string): boolean => upper === undefined || (upperInclusive ? k <= upper : k < upper);
    const out: Array<[Buffer, Buffer]> = [];
    const emit = (k: string): void => {
      out.push([Buffer.from(k, 'latin1'), Buffer.from(this.values.get(k) as Buffer)]);
    };
    if (!range.reverse) {
      // First index whose key is inside the lower bound.
      let i = lower === undefined ? 0 : lowerBound(keys, lower, !lowerInclusive);
      for (; i < keys.length && out.length < range.limit && inUpper(keys[i]); i++) emit(keys[i]);
    } else {
      let i = upper === undefined ? keys.length - 1 : lowerBound(keys, upper, upperInclusive) - 1;
      for (; i >= 0 && out.length < range.limit && inLower(keys[i]); i--) emit(keys[i]);
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Number of live keys, for tests. */
  size(): number {
    return this.values.size;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('MemKV is closed');
  }

  private sorted(): string[] {
    if (this.pendingKeys.length === 0 && !this.hasDeletes) return this.sortedKeys;
    const kept = this.hasDeletes ? this.sortedKeys.filter((k) => this.values.has(k)) : this.sortedKeys;
    // A key deleted and put again (also within one batch) is both kept and pending: once.
    const keptSet = this.hasDeletes ? new Set(kept) : null;
    const added = [...new Set(this.pendingKeys)].filter((k) => this.values.has(k) && !(keptSet?.has(k) ?? false)).sort();
    const merged: string[] = new Array<string>(kept.length + added.length);
    let a = 0;
    let b = 0;
    let m = 0;
    while (a < kept.length || b < added.length) {
      if (b >= added.length || (a < kept.length && kept[a] < added[b])) merged[m++] = kept[a++];
      else merged[m++] = added[b++];
    }
    merged.length = m;
    this.sortedKeys = merged;
    this.pendingKeys = [];
    this.hasDeletes = false;
    return merged;
  }
}

/** First index i with keys[i] >= target (or > target when `strict`). */
function lowerBound(keys: string[], target: string, strict: boolean): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const before = strict ? keys[mid] <= target : keys[mid] < target;
    if (before) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
