// Invariant checkers. They see every durable write, commit, apply and leader the
// simulation observes and throw a SimViolation (with the step and a trace, added by the
// cluster) the moment one of Raft's safety properties breaks:
//  - election safety: at most one leader per term, ever;
//  - log matching: an (index, term) pair names one entry, with one predecessor term, on
//    every node (by induction: same index+term => identical prefix);
//  - leader completeness: an entry committed while some node was in term T is in the
//    log of every leader of term >= T (checked on the leader's durable log);
//  - state machine safety: no two nodes apply different things at one index, a command
//    is applied at one index only, membership results agree per index.
import type { ConfState, Entry, LogReader, NodeId } from '../types.js';

export class SimViolation extends Error {}

/** The entry at `index` if the log holds it. */
export function entryAt(log: LogReader, index: number): Entry | undefined {
  if (index < log.firstIndex() || index > log.lastIndex()) return undefined;
  return log.entries(index, index + 1, Number.MAX_SAFE_INTEGER)[0];
}

export function itemOf(e: Entry): string {
  if (e.data.length === 0) return '.';
  if (e.type === 1) {
    try {
      const cc = JSON.parse(e.data.toString('utf8')) as { type: string; node: string };
      return `@${cc.type}:${cc.node}`;
    } catch {
      return `@?${e.data.toString('hex')}`;
    }
  }
  return e.data.toString('utf8');
}

function confKey(c: ConfState): string {
  return `${[...c.voters].sort().join(',')}|${[...c.learners].sort().join(',')}`;
}

interface Committed {
  term: number;
  item: string;
  /** Term of the node that first reported it committed (an upper bound on the commit term). */
  commitTerm: number;
}

export class Checker {
  readonly leaders = new Map<number, NodeId>();
  /** "index:term" -> "prevTerm|item". */
  private readonly entrySig = new Map<string, string>();
  readonly committed = new Map<number, Committed>();
  maxCommitted = 0;
  readonly applied = new Map<number, string>();
  private readonly commandIndex = new Map<string, number>();
  /** Membership after applying the ConfChange at an index. */
  readonly confs = new Map<number, string>();
  latestConfIndex = 0;
  latestConf: ConfState | null = null;

  fail(msg: string): never {
    throw new SimViolation(msg);
  }

  observeLeader(term: number, id: NodeId): void {
    const prev = this.leaders.get(term);
    if (prev === undefined) this.leaders.set(term, id);
    else if (prev !== id) this.fail(`election safety: term ${term} has two leaders, ${prev} and ${id}`);
  }

  /**
   * `node` appended `entries` to its log; `prevTerm` is the term of the entry before the
   * first one (null when it is not known, e.g. at the compaction point).
   */
  observeAppend(node: NodeId, prevTerm: number | null, entries: readonly Entry[]): void {
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k];
      const before = k === 0 ? prevTerm : entries[k - 1].term;
      if (before === null) continue;
      if (e.index > 1 && e.term < before) this.fail(`log: ${node} entry ${e.index} term ${e.term} below predecessor term ${before}`);
      const sig = `${before}|${itemOf(e)}`;
      const key = `${e.index}:${e.term}`;
      const prev = this.entrySig.get(key);
      if (prev === undefined) this.entrySig.set(key, sig);
      else if (prev !== sig) this.fail(`log matching: ${node} has entry ${key} as "${sig}", another node as "${prev}"`);
    }
  }

  /**
   * `node` made a hard state durable whose commit went from `prevCommit` to `commit`;
   * `durableLast` is the last index of its durable log then.
   */
  observeCommit(node: NodeId, log: LogReader, term: number, prevCommit: number, commit: number, durableLast: number): void {
    if (commit < prevCommit) this.fail(`commit: ${node} durable commit went back from ${prevCommit} to ${commit}`);
    if (commit > durableLast) this.fail(`commit: ${node} commit ${commit} beyond its durable log (last ${durableLast})`);
    for (let i = Math.max(prevCommit + 1, log.firstIndex()); i <= commit; i++) {
      const e = entryAt(log, i);
      if (!e) continue;
      const item = itemOf(e);
      const c = this.committed.get(i);
      if (c === undefined) {
        this.committed.set(i, { term: e.term, item, commitTerm: term });
        if (i > this.maxCommitted) this.maxCommitted = i;
      } else if (c.term !== e.term || c.item !== item) {
        this.fail(`commit: ${node} committed ${i} as term ${e.term} "${item}", earlier committed as term ${c.term} "${c.item}"`);
      }
    }
  }

  /** The log of the leader of `term` holds every entry committed in terms <= term. */
  checkLeaderCompleteness(node: NodeId, term: number, log: LogReader): void {
    for (let i = log.firstIndex(); i <= this.maxCommitted; i++) {
      const c = this.committed.get(i);
      if (c === undefined || c.commitTerm > term) continue;
      const e = entryAt(log, i);
      if (!e) this.fail(`leader completeness: leader ${node} of term ${term} lacks entry ${i} (term ${c.term}, committed by term ${c.commitTerm}); its last is ${log.lastIndex()}`);
      if (e.term !== c.term || itemOf(e) !== c.item) {
        this.fail(`leader completeness: leader ${node} of term ${term} has ${i} as term ${e.term} "${itemOf(e)}", committed was term ${c.term} "${c.item}"`);
      }
    }
  }

  observeApply(node: NodeId, index: number, item: string): void {
    const prev = this.applied.get(index);
    if (prev === undefined) this.applied.set(index, item);
    else if (prev !== item) this.fail(`state machine safety: ${node} applied "${item}" at ${index}, another node applied "${prev}"`);
    if (item[0] === 'c') {
      const at = this.commandIndex.get(item);
      if (at === undefined) this.commandIndex.set(item, index);
      else if (at !== index) this.fail(`state machine safety: command ${item} applied at ${index} and at ${at}`);
    }
  }

  observeConf(node: NodeId, index: number, conf: ConfState): void {
    const key = confKey(conf);
    const prev = this.confs.get(index);
    if (prev === undefined) this.confs.set(index, key);
    else if (prev !== key) this.fail(`membership: ${node} got conf ${key} applying ${index}, another node got ${prev}`);
    if (index > this.latestConfIndex) {
      this.latestConfIndex = index;
      this.latestConf = { voters: [...conf.voters], learners: [...conf.learners] };
    }
  }

  commandAppliedAt(cmd: string): number | undefined {
    return this.commandIndex.get(cmd);
  }
}
