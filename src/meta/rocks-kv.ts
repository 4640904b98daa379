// Kv over RocksDB (@nxtedition/rocksdb, an abstract-level store). The package ships no
// type declarations, so the small part used here is typed locally.
import { createRequire } from 'node:module';
import { checkScanLimit, type Kv, type KvOp, type KvRange } from './kv.js';

interface RocksIterator {
  nextv(size: number): Promise<Array<[Buffer, Buffer]>>;
  close(): Promise<void>;
}

interface RocksLevelDb {
  open(): Promise<void>;
  close(): Promise<void>;
  getMany(keys: Buffer[]): Promise<Array<Buffer | undefined>>;
  batch(ops: KvOp[], options: { sync: boolean }): Promise<void>;
  iterator(options: KvRange & { keys: true; values: true }): RocksIterator;
}

type RocksLevelCtor = new (
  location: string,
  options: { keyEncoding: 'buffer'; valueEncoding: 'buffer' },
) => RocksLevelDb;

const require = createRequire(import.meta.url);
const { RocksLevel } = require('@nxtedition/rocksdb') as { RocksLevel: RocksLevelCtor };

export class RocksKV implements Kv {
  private constructor(private readonly db: RocksLevelDb) {}

  /** Opens (creating if missing) the database directory at `path`. */
  static async open(path: string): Promise<RocksKV> {
    const db = new RocksLevel(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    return new RocksKV(db);
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    const [value] = await this.db.getMany([key]);
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
        const rows = await it.nextv(range.limit - out.length);
        if (rows.length === 0) break;
        for (const row of rows) out.push(row);
      }
      return out;
    } finally {
      await it.close();
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
