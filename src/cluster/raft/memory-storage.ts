// The in-memory twin of the durable log store: what the simulator and unit tests hand
// to RawNode as its LogReader, and what their driver writes each Ready into.
import type { ConfState, Entry, HardState, LogReader, Snapshot } from './types.js';
import { EntryType } from './types.js';
import { assert, limitSize } from './util.js';

export class MemoryStorage implements LogReader {
  private hardState: HardState = { term: 0, vote: null, commit: 0 };
  private conf: ConfState;
  private snap: Snapshot;
  /** ents[0] is a dummy standing for the snapshot (its index/term answer term()). */
  private ents: Entry[];

  /** `conf` bootstraps a fresh member (the initial voters); a joining node may start empty. */
  constructor(conf: ConfState = { voters: [], learners: [] }) {
    this.conf = copyConf(conf);
    this.snap = { meta: { index: 0, term: 0, conf: copyConf(conf) }, data: Buffer.alloc(0) };
    this.ents = [dummy(0, 0)];
  }

  initialState(): { hardState: HardState; conf: ConfState } {
    return { hardState: { ...this.hardState }, conf: copyConf(this.conf) };
  }

  firstIndex(): number {
    return this.ents[0].index + 1;
  }

  lastIndex(): number {
    return this.ents[0].index + this.ents.length - 1;
  }

  term(index: number): number {
    const offset = this.ents[0].index;
    if (index < offset) throw new RangeError(`raft storage: index ${index} compacted (first ${offset + 1})`);
    if (index > this.lastIndex()) throw new RangeError(`raft storage: index ${index} unavailable (last ${this.lastIndex()})`);
    return this.ents[index - offset].term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.ents[0].index;
    if (lo <= offset) throw new RangeError(`raft storage: index ${lo} compacted (first ${offset + 1})`);
    if (hi > this.lastIndex() + 1) throw new RangeError(`raft storage: entries up to ${hi - 1} unavailable (last ${this.lastIndex()})`);
    if (lo >= hi) return [];
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  snapshot(): Snapshot | null {
    return this.snap.meta.index === 0 ? null : this.snap;
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  /** The driver records the ConfState applyConfChange returned, so a restart sees it. */
  setConfState(conf: ConfState): void {
    this.conf = copyConf(conf);
  }

  /** Append, truncating any conflicting suffix. Entries already compacted are skipped. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    if (last < first) return;
    let ents = entries;
    if (ents[0].index < first) ents = ents.slice(first - ents[0].index);
    const at = ents[0].index - this.ents[0].index;
    assert(at <= this.ents.length, `storage append leaves a gap: last ${this.lastIndex()}, appending ${ents[0].index}`);
    if (at < this.ents.length) this.ents.length = at; // drop the conflicting suffix
    for (const e of ents) this.ents.push(e);
  }

  /** Replace the whole log with a snapshot received from the leader. Install it before appending the Ready's entries. */
  applySnapshot(snap: Snapshot): void {
    assert(snap.meta.index > this.snap.meta.index, `snapshot ${snap.meta.index} is not newer than ${this.snap.meta.index}`);
    this.snap = snap;
    this.ents = [dummy(snap.meta.index, snap.meta.term)];
    this.conf = copyConf(snap.meta.conf);
  }

  /** Make a snapshot of the state machine at `index` (already applied). */
  createSnapshot(index: number, conf: ConfState, data: Buffer): Snapshot {
    assert(index > this.snap.meta.index, `snapshot at ${index} is not newer than ${this.snap.meta.index}`);
    assert(index <= this.lastIndex(), `snapshot at ${index} beyond last index ${this.lastIndex()}`);
    this.snap = { meta: { index, term: this.term(index), conf: copyConf(conf) }, data };
    return this.snap;
  }

  /**
   * Drop entries <= index, keeping a dummy so term(index) still answers. A follower
   * behind the compaction point catches up from snapshot(), so index must be covered
   * by the current snapshot.
   */
  compact(index: number): void {
    const offset = this.ents[0].index;
    if (index <= offset) return;
    assert(index <= this.lastIndex(), `compact ${index} beyond last index ${this.lastIndex()}`);
    assert(index <= this.snap.meta.index, `compact ${index} beyond snapshot ${this.snap.meta.index}`);
    const kept = this.ents.slice(index - offset);
    kept[0] = dummy(kept[0].index, kept[0].term);
    this.ents = kept;
  }
}

function dummy(index: number, term: number): Entry {
  return { index, term, type: EntryType.Normal, data: Buffer.alloc(0) };
}

function copyConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners] };
}
