// The lease table of decision 0012 in memory, for questions the leader asks on every
// call ("does another session hold this directory exclusively?", "which sessions hold
// leases at all?") without reading the store. It follows the `l/<dir>` and `L/<session>
// <dir>` keys of every batch the store writes, and is rebuilt by a scan at open and
// after a snapshot restore, so it always matches the committed table.
import { prefixEnd, type KvOp, type KvReader } from './kv.js';
import * as K from './keys.js';
import type { Ino } from './types.js';

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
      const dir = K.exclusiveLeaseDir(op.key);
      if (dir !== undefined) {
        if (op.type === 'put') this.holders.set(dir, op.value.toString('utf8'));
        else this.holders.delete(dir);
        changed = true;
        continue;
      }
      const lease = K.sessionLeaseOf(op.key);
      if (lease === undefined) continue;
      let dirs = this.bySession.get(lease.session);
      if (op.type === 'put') {
        if (!dirs) this.bySession.set(lease.session, (dirs = new Set()));
        dirs.add(lease.dir);
      } else if (dirs) {
        dirs.delete(lease.dir);
        if (dirs.size === 0) this.bySession.delete(lease.session);
      }
      changed = true;
    }
    if (changed) for (const l of this.listeners) l();
  }

  /** Rebuilds the index from the store (at open, after a snapshot restore). */
  async rebuild(kv: KvReader): Promise<void> {
    this.holders.clear();
    this.bySession.clear();
    const ops: KvOp[] = [];
    for (const prefix of K.leasePrefixes()) {
      const end = prefixEnd(prefix)!;
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

