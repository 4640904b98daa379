// Kv over RocksDB (@nxtedition/rocksdb, an abstract-level store). The package ships no
// type declarations, so the small part used here is typed locally.
import { createRequire } from 'node:module';
import { checkScanLimit, type Kv, type KvOp, type KvRange } from './kv.js';

interface RocksIterator {
  nextv(size: number): Promise<Array<[Buffer, Buffer]>>;
  close(): Promise<void>;
  /** Binding-level synchronous variants (flat [k, v, k, v...] rows). */
  _nextvSync(size: number, options: object): { rows: Buffer[]; finished: boolean };
  _closeSync(): void;
}

interface RocksLevelDb {
  open(): Promise<void>;
  close(): Promise<void>;
  getMany(keys: Buffer[]): Promise<Array<Buffer | undefined>>;
  _getManySync(keys: Buffer[], options: object): Array<Buffer | undefined>;
  batch(ops: KvOp[], options: { sync: boolean }): Promise<void>;
  iterator(options: KvRange & { keys: true; values: true }): RocksIterator;
}

type RocksLevelCtor = new (
  location: string,
  options: { keyEncoding: 'buffer'; valueEncoding: 'buffer' },
) => RocksLevelDb;

const require = createRequire(import.meta.url);
const { RocksLevel } = require('@nxtedition/rocksdb') as { RocksLevel: RocksLevelCtor };

const EMPTY = {};

async function openDb(path: string): Promise<RocksLevelDb> {
  const db = new RocksLevel(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  return db;
}

export class RocksKV implements Kv {
  private constructor(
    private readonly path: string,
    private db: RocksLevelDb,
  ) {}

  /** Opens (creating if missing) the database directory at `path`. */
  static async open(path: string): Promise<RocksKV> {
    return new RocksKV(path, await openDb(path));
  }

  /** After a failed write: RocksDB refuses writes until reopened; the WAL replay keeps every whole batch. */
  async reopen(): Promise<void> {
    await this.db.close().catch(() => undefined);
    this.db = await openDb(this.path);
  }

  // Reads run synchronously on the calling thread: a memtable or block-cache hit costs
  // ~3 us (a scan ~20 us), against ~30 us for a round trip through the libuv thread
  // pool, and the namespace's working set is cached. A cold read blocks for one disk
  // read; measured in docs/decisions/0003-rocksdb-binding.md.
  async get(key: Buffer): Promise<Buffer | undefined> {
    const [value] = this.db._getManySync([key], EMPTY);
    return value ?? undefined;
  }

  // Note: this binding writes the batch on the calling thread; with sync=true the
  // WAL fsync blocks the event loop for its duration, which is why MetaStore groups
  // commands and only syncs when a command needs it.
  async write(batch: KvOp[], opts: { sync: boolean }): Promise<void> {
    if (batch.length === 0) return;
    await this.db.batch(batch, { sync: opts.sync });
  }

  async scan(range: KvRange): Promise<Array<[Buffer, Buffer]>> {
    checkScanLimit(range.limit);
    // Only defined bounds are passed: the binding treats a present-but-undefined bound
    // differently from an absent one in some versions.
    const options: KvRange & { keys: true; values: true } = { limit: range.limit, keys: true, values: true };
    if (range.gt !== undefined) options.gt = range.gt;
    if (range.gte !== undefined) options.gte = range.gte;
    if (range.lt !== undefined) options.lt = range.lt;
    if (range.lte !== undefined) options.lte = range.lte;
    if (range.reverse === true) options.reverse = true;
    const it = this.db.iterator(options);
    try {
      const out: Array<[Buffer, Buffer]> = [];
      while (out.length < range.limit) {
        const { rows, finished } = it._nextvSync(range.limit - out.length, EMPTY);
        for (let i = 0; i + 1 < rows.length; i += 2) out.push([rows[i], rows[i + 1]]);
        if (finished || rows.length === 0) break;
      }
      return out;
    } finally {
      it._closeSync();
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
