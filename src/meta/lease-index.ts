// The lease table of decision 0012 in memory, for questions the leader asks on every
// call ("does another session hold this directory exclusively?", "which sessions hold
// leases at all?") without reading the store. It follows the `l/<dir>` and `L/<session>
// <dir>` keys of every batch the store writes, and is rebuilt by a scan at open and
// after a snapshot restore, so it always matches the committed table.
import type { KvOp, KvReader } from './kv.js';
import * as K from './keys.js';
import type { Ino } from './types.js';

const LEASE = Buffer.from('l/', 'latin1');
const BY_SESSION = Buffer.from('L/', 'latin1');
/** `l/` + u64: an exclusive holder (shared ones are longer). */
const EXCLUSIVE_KEY_BYTES = LEASE.length + 8;

export class LeaseIndex {
  private readonly holders = new Map<Ino, string>();
  private readonly bySession = new Map<string, Set<Ino>>();
  private readonly listeners = new Set<() => void>();

  /** The session holding `dir` exclusively, if any. */
  exclusiveHolder(dir: Ino): string | undefined {
    return this.holders.get(dir);
  }

  /** Sessions holding at least one lease. */
  sessions(): IterableIterator<string> {
    return this.bySession.keys();
  }

  /** Leases (exclusive and shared) `session` holds. */
  count(session: string): number {
    return this.bySession.get(session)?.size ?? 0;
  }

  get size(): number {
    return this.holders.size;
  }

  /** Called after every change that touched the table (the leader's recall waits on it). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Follows one written batch. */
  follow(ops: readonly KvOp[]): void {
    let changed = false;
    for (const op of ops) {
      const key = op.key;
      if (key.length < 3 || key[1] !== 0x2f) continue;
      if (key[0] === LEASE[0] && key.length === EXCLUSIVE_KEY_BYTES) {
        const dir = K.readU64(key, LEASE.length);
        if (op.type === 'put') this.holders.set(dir, op.value.toString('utf8'));
        else this.holders.delete(dir);
        changed = true;
      } else if (key[0] === BY_SESSION[0]) {
        const len = key[BY_SESSION.length];
        const session = key.subarray(BY_SESSION.length + 1, BY_SESSION.length + 1 + len).toString('utf8');
        const dir = K.readU64(key, BY_SESSION.length + 1 + len);
        let dirs = this.bySession.get(session);
        if (op.type === 'put') {
          if (!dirs) this.bySession.set(session, (dirs = new Set()));
          dirs.add(dir);
        } else if (dirs) {
          dirs.delete(dir);
          if (dirs.size === 0) this.bySession.delete(session);
        }
        changed = true;
      }
    }
    if (changed) for (const l of this.listeners) l();
  }

  /** Rebuilds the index from the store (at open, after a snapshot restore). */
  async rebuild(kv: KvReader): Promise<void> {
    this.holders.clear();
    this.bySession.clear();
    const ops: KvOp[] = [];
    for (const prefix of [LEASE, BY_SESSION]) {
      // 'l/' .. 'l0': the byte after '/' ends the prefix.
      const end = Buffer.from([prefix[0], 0x30]);
      let after: Buffer | undefined;
      for (;;) {
        const rows = await kv.scan(after ? { gt: after, lt: end, limit: 1000 } : { gte: prefix, lt: end, limit: 1000 });
        for (const [key, value] of rows) ops.push({ type: 'put', key, value });
        if (rows.length < 1000) break;
        after = rows[rows.length - 1][0];
      }
    }
    this.follow(ops);
  }
}

