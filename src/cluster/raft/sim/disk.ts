// The simulated durable disk of one node: the log, the hard state and the latest
// snapshot. Everything written here survives a crash (the driver writes it in step 1 of
// a Ready, "fsynced"); whatever a Ready carried that the driver had not written yet is
// lost with the node's RawNode. It implements the LogReader the core reads from.
import type { ConfState, Entry, HardState, LogReader, Snapshot } from '../types.js';

export class SimViolation extends Error {}

function cloneConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners] };
}

export class SimDisk implements LogReader {
  /** Index and term of the entry before the first retained one. */
  private offset = 0;
  private offsetTerm = 0;
  private ents: Entry[] = [];
  private hs: HardState = { term: 0, vote: null, commit: 0 };
  private snap: Snapshot | null = null;
  /** Conf the node boots with when it has no snapshot. */
  private readonly bootConf: ConfState;
  /** Bytes written (a size limit on the simulated disk). */
  writes = 0;

  constructor(bootConf: ConfState) {
    this.bootConf = cloneConf(bootConf);
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.ents.length;
  }

  term(index: number): number {
    if (index === this.offset) return this.offsetTerm;
    if (index < this.offset || index > this.lastIndex()) {
      throw new RangeError(`term(${index}): outside [${this.offset}, ${this.lastIndex()}]`);
    }
    return this.ents[index - this.offset - 1].term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.offset) throw new RangeError(`entries(${lo}): compacted (first ${this.firstIndex()})`);
    if (hi > this.lastIndex() + 1 || lo > hi) throw new RangeError(`entries(${lo}, ${hi}): beyond last ${this.lastIndex()}`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - this.offset - 1];
      bytes += e.data.length + 16;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  snapshot(): Snapshot | null {
    return this.snap;
  }

  initialState(): { hardState: HardState; conf: ConfState } {
    return { hardState: { ...this.hs }, conf: cloneConf(this.snap ? this.snap.meta.conf : this.bootConf) };
  }

  hardState(): HardState {
    return this.hs;
  }

  /** Entry at `index` if retained. */
  entry(index: number): Entry | undefined {
    if (index <= this.offset || index > this.lastIndex()) return undefined;
    return this.ents[index - this.offset - 1];
  }

  // ---- writes (the driver's step 1) ----

  setHardState(hs: HardState): void {
    this.hs = { ...hs };
    this.writes++;
  }

  /** Append, truncating any conflicting suffix. Entries at or below the compaction point are skipped. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    let list = entries;
    if (list[0].index <= this.offset) list = list.filter((e) => e.index > this.offset);
    if (list.length === 0) return;
    const first = list[0].index;
    if (first > this.lastIndex() + 1) {
      throw new SimViolation(`disk append: gap (append at ${first}, last ${this.lastIndex()})`);
    }
    for (let k = 1; k < list.length; k++) {
      if (list[k].index !== first + k) throw new SimViolation(`disk append: non-contiguous batch at ${list[k].index}`);
    }
    this.ents.length = first - this.offset - 1;
    for (const e of list) {
      this.ents.push({ term: e.term, index: e.index, type: e.type, data: e.data });
      this.writes += e.data.length;
    }
  }

  /** Install a snapshot received from the leader: the log is replaced by it. */
  applySnapshot(snap: Snapshot): void {
    if (this.snap && snap.meta.index < this.snap.meta.index) {
      throw new SimViolation(`disk applySnapshot: older snapshot ${snap.meta.index} < ${this.snap.meta.index}`);
    }
    this.snap = { meta: { index: snap.meta.index, term: snap.meta.term, conf: cloneConf(snap.meta.conf) }, data: snap.data };
    this.offset = snap.meta.index;
    this.offsetTerm = snap.meta.term;
    this.ents = [];
    this.writes += snap.data.length;
  }

  /** Record a snapshot of the local state machine at `index` (<= applied). */
  createSnapshot(index: number, conf: ConfState, data: Buffer): Snapshot {
    const term = this.term(index);
    this.snap = { meta: { index, term, conf: cloneConf(conf) }, data };
    this.writes += data.length;
    return this.snap;
  }

  /** Drop entries up to `index` (which must be covered by the snapshot). */
  compact(index: number): void {
    if (index <= this.offset) return;
    if (!this.snap || index > this.snap.meta.index) throw new SimViolation(`disk compact(${index}) beyond snapshot`);
    const term = this.term(index);
    this.ents = this.ents.slice(index - this.offset);
    this.offset = index;
    this.offsetTerm = term;
  }
}
