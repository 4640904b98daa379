// The core's view of the log: the durable part (read through LogReader) plus what the
// core appended or received since the last Ready was persisted ("unstable").
import type { Entry, LogReader, Snapshot } from './types.js';
import { assert, limitSize } from './util.js';

export class RaftLog {
  /** A snapshot received from the leader, not yet installed by the driver. */
  unstableSnapshot: Snapshot | null = null;
  /** Index of unstableEntries[0]. Entries below it are read from storage. */
  private offset: number;
  unstableEntries: Entry[] = [];
  committed: number;
  /** Highest index the driver applied (moved in advance()). */
  applied: number;

  constructor(
    readonly storage: LogReader,
    committed: number,
    applied: number,
  ) {
    this.offset = storage.lastIndex() + 1;
    const first = storage.firstIndex();
    assert(committed <= storage.lastIndex(), `commit ${committed} beyond last index ${storage.lastIndex()}`);
    this.committed = Math.max(committed, first - 1);
    this.applied = Math.max(applied, first - 1);
    assert(this.applied <= this.committed, `applied ${applied} beyond commit ${committed}`);
  }

  /** Highest index up to which the driver has persisted the log (advance() after a Ready). */
  persistedIndex(): number {
    return this.offset - 1;
  }

  firstIndex(): number {
    return this.unstableSnapshot !== null ? this.unstableSnapshot.meta.index + 1 : this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.unstableEntries.length > 0) return this.offset + this.unstableEntries.length - 1;
    if (this.unstableSnapshot !== null) return this.unstableSnapshot.meta.index;
    return this.storage.lastIndex();
  }

  /** Term of `index`, or undefined if compacted or beyond the log. */
  term(index: number): number | undefined {
    if (index < this.firstIndex() - 1 || index > this.lastIndex()) return undefined;
    if (index >= this.offset) return this.unstableEntries[index - this.offset].term;
    const snap = this.unstableSnapshot;
    if (snap !== null) return index === snap.meta.index ? snap.meta.term : undefined;
    try {
      return this.storage.term(index);
    } catch (e) {
      if (e instanceof RangeError) return undefined;
      throw e;
    }
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    assert(t !== undefined, 'term of the last index is unknown');
    return t;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Entries [lo, hi) within maxBytes, or undefined if lo is compacted. */
  entries(lo: number, hi: number, maxBytes: number): Entry[] | undefined {
    if (lo < this.firstIndex()) return undefined;
    assert(hi <= this.lastIndex() + 1, `entries up to ${hi - 1} beyond last index ${this.lastIndex()}`);
    if (lo >= hi) return [];
    let out: Entry[] = [];
    if (lo < this.offset) {
      try {
        out = this.storage.entries(lo, Math.min(hi, this.offset), maxBytes);
      } catch (e) {
        if (e instanceof RangeError) return undefined;
        throw e;
      }
      if (out.length < Math.min(hi, this.offset) - lo) return out; // size limit reached
    }
    if (hi > this.offset) {
      const from = Math.max(lo, this.offset);
      out = out.concat(this.unstableEntries.slice(from - this.offset, hi - this.offset));
    }
    return limitSize(out, maxBytes);
  }

  /**
   * The follower side of MsgApp: if (index, logTerm) matches, append what conflicts or is
   * new and return the index of the last new entry; otherwise undefined.
   */
  maybeAppend(index: number, logTerm: number, commit: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const conflict = this.findConflict(ents);
    if (conflict !== 0) {
      assert(conflict > this.committed, `entry ${conflict} conflicts with committed entry (commit ${this.committed})`);
      this.append(ents.slice(conflict - (index + 1)));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  /** The first entry whose term differs from ours (or is new); 0 if all match. */
  private findConflict(ents: Entry[]): number {
    for (const e of ents) if (!this.matchTerm(e.index, e.term)) return e.index;
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term` (used to skip a whole term at a
   * time when logs diverge). An unknown (compacted) term stops the search there.
   */
  findConflictByTerm(index: number, term: number): number {
    for (let i = index; i > 0; i--) {
      const t = this.term(i);
      if (t === undefined || t <= term) return i;
    }
    return 0;
  }

  /** Append after a possibly truncated suffix. Entries must follow the log without a gap. */
  append(ents: Entry[]): void {
    if (ents.length === 0) return;
    const after = ents[0].index;
    assert(after <= this.lastIndex() + 1, `entry index gap: last ${this.lastIndex()}, appending ${after}`);
    assert(after > this.committed, `append at ${after} would truncate committed entries (commit ${this.committed})`);
    for (let i = 1; i < ents.length; i++) assert(ents[i].index === after + i, 'entries not contiguous');
    if (after === this.offset + this.unstableEntries.length) {
      for (const e of ents) this.unstableEntries.push(e);
    } else if (after <= this.offset) {
      this.offset = after;
      this.unstableEntries = [...ents];
    } else {
      this.unstableEntries = this.unstableEntries.slice(0, after - this.offset).concat(ents);
    }
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Install a snapshot from the leader: the whole log is replaced. */
  restore(snap: Snapshot): void {
    this.committed = snap.meta.index;
    this.unstableSnapshot = snap;
    this.offset = snap.meta.index + 1;
    this.unstableEntries = [];
  }

  hasNextCommitted(): boolean {
    return this.unstableSnapshot === null && this.committed > this.applied;
  }

  /** Committed, unapplied entries within maxBytes. */
  nextCommitted(maxBytes: number): Entry[] {
    if (!this.hasNextCommitted()) return [];
    const lo = Math.max(this.applied + 1, this.firstIndex());
    const ents = this.entries(lo, this.committed + 1, maxBytes);
    assert(ents !== undefined, `committed entries from ${lo} are compacted (applied ${this.applied})`);
    return ents;
  }

  /** The driver persisted entries up to (index, term). */
  stableTo(index: number, term: number): void {
    if (index < this.offset) return;
    const at = index - this.offset;
    if (at >= this.unstableEntries.length || this.unstableEntries[at].term !== term) return; // replaced meanwhile
    this.unstableEntries = this.unstableEntries.slice(at + 1);
    this.offset = index + 1;
  }

  stableSnapTo(index: number): void {
    if (this.unstableSnapshot !== null && this.unstableSnapshot.meta.index === index) this.unstableSnapshot = null;
  }

  appliedTo(index: number): void {
    if (index <= this.applied) return;
    assert(index <= this.committed, `applied ${index} beyond commit ${this.committed}`);
    this.applied = index;
  }

  /** The snapshot to send a follower that is behind the compaction point. */
  snapshot(): Snapshot | null {
    return this.unstableSnapshot ?? this.storage.snapshot();
  }
}
