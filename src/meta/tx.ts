// A transaction over a KvReader: reads see the writes made so far (an overlay of pending
// puts/deletes), and the writes come out as one ordered batch. A group of commands
// shares one Tx; each command runs between begin() and commit()/rollback() so a failed
// or throwing command leaves nothing behind.
import { prefixEnd, type KvOp, type KvReader } from './kv.js';

const SCAN_PAGE = 256;
/**
 * Overlay keys are indexed by their first BUCKET_CHARS bytes (table letter, '/', u64: an
 * inode's chunk refs, xattrs, entries, open handles share them), so a prefix scan looks at
 * the writes under its own bucket instead of every write of the group (which made a batch
 * of 1000 unlinks quadratic).
 */
const BUCKET_CHARS = 10;

function str(key: Buffer): string {
  return key.toString('latin1');
}

export class Tx {
  /** Committed writes of earlier commands in the group, in first-write order. */
  private readonly group = new Map<string, Buffer | null>();
  /** Writes of the command in progress. */
  private current = new Map<string, Buffer | null>();
  private inCommand = false;
  /** Writes of the enclosing scopes while a nested one (a command of a batch) runs, innermost last. */
  private outer: Array<Map<string, Buffer | null>> = [];
  /** Every key written in any scope, by bucket (a superset: rolled-back keys stay). */
  private readonly written = new Map<string, Set<string>>();

  constructor(private readonly base: KvReader) {}

  begin(): void {
    if (this.inCommand) throw new Error('Tx.begin inside a command');
    this.inCommand = true;
    this.current = new Map();
  }

  commit(): void {
    if (!this.inCommand) throw new Error('Tx.commit outside a command');
    if (this.outer.length > 0) throw new Error('Tx.commit inside a nested scope');
    for (const [k, v] of this.current) this.group.set(k, v);
    this.current = new Map();
    this.inCommand = false;
  }

  rollback(): void {
    this.current = new Map();
    this.outer = [];
    this.inCommand = false;
  }

  /** Open a scope inside the command: its writes are kept by endNested(true), dropped by endNested(false). */
  beginNested(): void {
    if (!this.inCommand) throw new Error('Tx.beginNested outside a command');
    this.outer.push(this.current);
    this.current = new Map();
  }

  endNested(keep: boolean): void {
    const enclosing = this.outer.pop();
    if (enclosing === undefined) throw new Error('Tx.endNested without beginNested');
    if (keep) for (const [k, v] of this.current) enclosing.set(k, v);
    this.current = enclosing;
  }

  private pending(k: string): Buffer | null | undefined {
    const c = this.current.get(k);
    if (c !== undefined) return c;
    for (let i = this.outer.length - 1; i >= 0; i--) {
      const o = this.outer[i].get(k);
      if (o !== undefined) return o;
    }
    return this.group.get(k);
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    const p = this.pending(str(key));
    if (p === null) return undefined;
    if (p !== undefined) return p;
    return this.base.get(key);
  }

  put(key: Buffer, value: Buffer): void {
    if (!this.inCommand) throw new Error('Tx.put outside a command');
    const k = str(key);
    this.current.set(k, value);
    this.note(k);
  }

  del(key: Buffer): void {
    if (!this.inCommand) throw new Error('Tx.del outside a command');
    const k = str(key);
    this.current.set(k, null);
    this.note(k);
  }

  private note(k: string): void {
    const b = k.slice(0, BUCKET_CHARS);
    let set = this.written.get(b);
    if (!set) this.written.set(b, (set = new Set()));
    set.add(k);
  }

  /** Written keys that may start with `p` (a superset). */
  private candidates(p: string): Iterable<string> {
    if (p.length >= BUCKET_CHARS) return this.written.get(p.slice(0, BUCKET_CHARS)) ?? [];
    const all: string[] = [];
    for (const [b, keys] of this.written) if (b.startsWith(p) || p.startsWith(b)) for (const k of keys) all.push(k);
    return all;
  }

  /**
   * Entries whose key starts with `prefix` and sorts after `after` (if given), in key
   * order, merged with the pending writes. Reads the base in pages, so stopping early
   * (break) costs only what was read.
   */
  async *scanPrefix(prefix: Buffer, after?: Buffer): AsyncGenerator<[Buffer, Buffer]> {
    const lo = after !== undefined && Buffer.compare(after, prefix) >= 0 ? str(after) : undefined;
    const loInclusive = lo === undefined;
    const loKey = lo ?? str(prefix);
    const endBuf = prefixEnd(prefix);
    const hi = endBuf === undefined ? undefined : str(endBuf);
    const inRange = (k: string): boolean => (loInclusive ? k >= loKey : k > loKey) && (hi === undefined || k < hi);
    const overlay: string[] = [];
    // A key written and then rolled back is in the index but pending nowhere: not overlay.
    for (const k of this.candidates(str(prefix))) if (inRange(k) && this.pending(k) !== undefined) overlay.push(k);
    overlay.sort();

    let oi = 0;
    let page: Array<[Buffer, Buffer]> = [];
    let bi = 0;
    let baseDone = false;
    let cursor: Buffer | undefined = lo === undefined ? undefined : Buffer.from(lo, 'latin1');
    for (;;) {
      if (bi >= page.length && !baseDone) {
        page = await this.base.scan({
          ...(cursor === undefined ? { gte: prefix } : { gt: cursor }),
          ...(endBuf === undefined ? {} : { lt: endBuf }),
          limit: SCAN_PAGE,
        });
        bi = 0;
        if (page.length < SCAN_PAGE) baseDone = true;
        if (page.length > 0) cursor = page[page.length - 1][0];
      }
      const baseKey = bi < page.length ? str(page[bi][0]) : undefined;
      const ovKey = oi < overlay.length ? overlay[oi] : undefined;
      if (baseKey === undefined && ovKey === undefined) return;
      if (ovKey !== undefined && (baseKey === undefined || ovKey <= baseKey)) {
        if (ovKey === baseKey) bi++;
        oi++;
        const v = this.pending(ovKey);
        if (v !== null && v !== undefined) yield [Buffer.from(ovKey, 'latin1'), v];
      } else {
        yield page[bi++];
      }
    }
  }

  /** True if any live key starts with `prefix`. */
  async hasPrefix(prefix: Buffer): Promise<boolean> {
    for await (const _ of this.scanPrefix(prefix)) return true;
    return false;
  }

  /** The group's writes as one batch, in first-write order (deterministic). */
  ops(): KvOp[] {
    if (this.inCommand) throw new Error('Tx.ops inside a command');
    const out: KvOp[] = [];
    for (const [k, v] of this.group) {
      const key = Buffer.from(k, 'latin1');
      out.push(v === null ? { type: 'del', key } : { type: 'put', key, value: v });
    }
    return out;
  }
}
