// Sequential specifications for the checker:
//  - kvModel: a map of string registers with get/put/append, partitioned per key (the
//    keys are independent, so each key's history is checked alone);
//  - appendLogModel: one append-only log (the Raft simulator's replicated state machine is
//    exactly that: the ordered list of applied commands); a read returns the whole
//    sequence or just its length;
//  - namespaceModel: a tiny filesystem namespace (paths -> file/dir, files hold a value)
//    with mkdir/create/unlink/rmdir/rename/stat/write/read and errno results, for
//    histories recorded against a real cluster. Not partitionable (rename and parent
//    checks tie paths together), so keep those histories to a few hundred operations.
import { checkOperations, type CheckOptions, type CheckResult, type Model, type Operation } from './checker.js';

// ------------------------------------------------------------------ key-value registers

export type KvInput = { op: 'get'; key: string } | { op: 'put'; key: string; value: string } | { op: 'append'; key: string; value: string };
/** get: the value ('' when the key was never written); put/append: nothing to observe. */
export type KvOutput = { value: string } | { done: true };
export type KvState = ReadonlyMap<string, string>;

export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => new Map(),
  step(state, input, output) {
    const cur = state.get(input.key) ?? '';
    if (input.op === 'get') {
      // An incomplete get never reaches the search (readOnly), but stay total anyway.
      if (output === undefined) return { ok: true, state };
      return { ok: 'value' in output && output.value === cur, state };
    }
    const next = new Map(state);
    next.set(input.key, input.op === 'put' ? input.value : cur + input.value);
    return { ok: true, state: next };
  },
  equal(a, b) {
    if (a.size !== b.size) return false;
    for (const [k, v] of a) if (b.get(k) !== v) return false;
    return true;
  },
  hash(s) {
    // Per-key partitions hold one key: usually one pair, no sorting needed.
    if (s.size <= 1) {
      for (const [k, v] of s) return `${k}\u0000${v}`;
      return '';
    }
    return [...s].map(([k, v]) => `${k}\u0000${v}`).sort().join('\u0001');
  },
  partition(history) {
    const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
    for (const op of history) {
      const list = byKey.get(op.input.key);
      if (list) list.push(op);
      else byKey.set(op.input.key, [op]);
    }
    return [...byKey.values()];
  },
  readOnly: (input) => input.op === 'get',
  describeOperation(input, output) {
    const res = output === undefined ? '?' : 'value' in output ? JSON.stringify(output.value) : 'ok';
    return input.op === 'get' ? `get(${input.key}) -> ${res}` : `${input.op}(${input.key}, ${JSON.stringify(input.value)}) -> ${res}`;
  },
  describeState: (s) => JSON.stringify(Object.fromEntries(s)),
};

// ------------------------------------------------------------------ append-only log

/**
 * The log as a persistent (shared-tail) list, newest first, with a running hash: an
 * append is O(1) and shares everything before it, so the search's many states cost
 * little, and equality stops at the first shared node.
 */
export interface LogNode {
  readonly value: string;
  readonly prev: LogNode | null;
  readonly length: number;
  readonly h1: number;
  readonly h2: number;
}
export type LogState = LogNode | null;

export type LogInput = { op: 'append'; value: string } | { op: 'read' };
/**
 * append: applied, or known to have had no effect (refused, or overwritten in the log);
 * read: the whole sequence (strongest) or only its length.
 */
export type LogOutput = { op: 'append'; applied: boolean } | { op: 'read'; values: readonly string[] } | { op: 'read'; length: number };

function strHash(s: string, seed: number): number {
  // FNV-1a variant; two seeds give a 64-bit-ish combined hash.
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function logAppend(prev: LogState, value: string): LogNode {
  const h1 = (Math.imul(prev?.h1 ?? 17, 31) + strHash(value, 0x811c9dc5)) >>> 0;
  const h2 = (Math.imul(prev?.h2 ?? 19, 37) ^ strHash(value, 0x2545f491)) >>> 0;
  return { value, prev, length: (prev?.length ?? 0) + 1, h1, h2 };
}

function logEqual(a: LogState, b: LogState): boolean {
  while (a !== b) {
    if (a === null || b === null || a.length !== b.length || a.value !== b.value) return false;
    a = a.prev;
    b = b.prev;
  }
  return true;
}

/** The log's values, oldest first. */
export function logValues(s: LogState): string[] {
  const out: string[] = [];
  for (let n = s; n !== null; n = n.prev) out.push(n.value);
  return out.reverse();
}

function logMatches(s: LogState, values: readonly string[]): boolean {
  if ((s?.length ?? 0) !== values.length) return false;
  let i = values.length - 1;
  for (let n = s; n !== null; n = n.prev, i--) if (n.value !== values[i]) return false;
  return true;
}

export const appendLogModel: Model<LogState, LogInput, LogOutput> = {
  init: () => null,
  step(state, input, output) {
    if (input.op === 'append') {
      if (output !== undefined && output.op === 'append' && !output.applied) return { ok: true, state };
      return { ok: output === undefined || output.op === 'append', state: logAppend(state, input.value) };
    }
    if (output === undefined) return { ok: true, state };
    if (output.op !== 'read') return { ok: false, state };
    return { ok: 'values' in output ? logMatches(state, output.values) : output.length === (state?.length ?? 0), state };
  },
  equal: logEqual,
  hash: (s) => (s === null ? '0' : `${s.length}.${s.h1}.${s.h2}`),
  readOnly: (input) => input.op === 'read',
  describeOperation(input, output) {
    if (input.op === 'append') return `append(${input.value}) -> ${output === undefined ? '?' : output.op === 'append' && !output.applied ? 'no effect' : 'ok'}`;
    if (output === undefined || output.op !== 'read') return 'read -> ?';
    return 'values' in output ? `read -> [${shorten(output.values)}]` : `read -> length ${output.length}`;
  },
  describeState: (s) => `[${shorten(logValues(s))}] (length ${s?.length ?? 0})`,
};

/**
 * The append log narrowed by what the reads saw. With full-sequence reads, the search on
 * the plain model is hopeless on long histories: each state is a sequence, so every order
 * of concurrent appends is a distinct state, refuted only at the next read, and every
 * incomplete append doubles what may be in the log. But the log only grows, so in ANY
 * linearization every read sees a prefix of the final log; the longest read R* therefore
 * fixes the first |R*| effective appends and their order, and every other effective
 * append comes after all of them (and after every read). So, without changing the answer:
 *  - reads that are not prefixes of one another prove the history illegal (returned
 *    directly, naming the reads), as does an append answered "no effect" that a read saw;
 *  - appends answered "no effect" that no read saw constrain nothing and are dropped, and
 *    so are incomplete appends no read saw (they can always be placed after every read,
 *    which is the same as never having happened);
 *  - the model allows append(v), v at position p of R*, only at length p, and an append
 *    R* lacks only at length >= |R*|; the state is just the length, with every length
 *    past |R*| one state (no read can tell them apart).
 * That keeps every valid linearization and admits no invalid one, and the search becomes
 * close to linear. Needs distinct append values (the simulator's commands are) and reads
 * that return values (not lengths); throws otherwise.
 */
export function checkAppendLog(history: readonly Operation<LogInput, LogOutput>[], opts: CheckOptions): CheckResult {
  const t0 = performance.now();
  const values = new Set<string>();
  let longest = -1;
  const reads: number[] = [];
  history.forEach((op, i) => {
    if (op.input.op === 'append') {
      if (values.has(op.input.value)) throw new Error(`lincheck: checkAppendLog needs distinct values; ${op.input.value} is appended twice`);
      values.add(op.input.value);
      return;
    }
    if (op.output === undefined) return;
    if (op.output.op !== 'read' || !('values' in op.output)) throw new Error(`lincheck: checkAppendLog needs reads that return values (#${i})`);
    reads.push(i);
    if (longest < 0 || op.output.values.length > readValues(history[longest]).length) longest = i;
  });
  const ref: readonly string[] = longest >= 0 ? readValues(history[longest]) : [];
  const describe = (i: number): string => `  #${i} ${history[i].clientId}: ${appendLogModel.describeOperation?.(history[i].input, history[i].output) ?? ''}`;
  const illegal = (ops: number[], why: string): CheckResult => ({
    result: 'illegal',
    counterexample: { partition: history.map((_, k) => k), longestPrefix: [], stuck: ops, message: [`not linearizable: ${why}`, ...ops.map(describe)].join('\n') },
    partitions: 1,
    steps: 0,
    elapsedMs: performance.now() - t0,
  });
  const pos = new Map<string, number>();
  for (let k = 0; k < ref.length; k++) {
    if (pos.has(ref[k])) return illegal([longest], `a read saw ${ref[k]} twice in the log`);
    pos.set(ref[k], k);
  }
  for (const i of reads) {
    const v = readValues(history[i]);
    for (let k = 0; k < v.length; k++) if (v[k] !== ref[k]) return illegal([i, longest], `two reads saw logs that are not prefixes of one another (position ${k})`);
  }
  const kept: Operation<LogInput, LogOutput>[] = [];
  const origin: number[] = [];
  for (let i = 0; i < history.length; i++) {
    const op = history[i];
    if (op.input.op === 'append' && !pos.has(op.input.value)) {
      if (op.output === undefined || (op.output.op === 'append' && !op.output.applied)) continue;
    }
    if (op.input.op === 'append' && op.output?.op === 'append' && !op.output.applied && pos.has(op.input.value)) {
      return illegal([i, longest], `${op.input.value} was answered "no effect" but a read saw it`);
    }
    kept.push(op);
    origin.push(i);
  }
  // A read that saw p commands is placed between the appends at positions p-1 and p, so
  // ALL reads of length p precede the append at p (and all reads precede every append R*
  // lacks). The state counts the reads placed at the current length and an append waits
  // for them: otherwise the search, having run ahead, backtracks through every order of
  // what it placed meanwhile (appends R* lacks commute, 2^k orders) before it finds the
  // read that had to come first. With this, every step but the order of reads of one
  // length is forced.
  const readsAt = new Map<number, number>();
  for (const i of reads) {
    const l = readValues(history[i]).length;
    readsAt.set(l, (readsAt.get(l) ?? 0) + 1);
  }
  const readsDone = (s: LogCursor): boolean => s.len > ref.length || s.done === (readsAt.get(s.len) ?? 0);
  const over: LogCursor = { len: ref.length + 1, done: 0 };
  const model: Model<LogCursor, LogInput, LogOutput> = {
    init: () => ({ len: 0, done: 0 }),
    step(s, input, output) {
      if (input.op === 'read') {
        if (output === undefined) return { ok: true, state: s };
        // Values were checked against R* up front: the prefix of R* of this length is the state.
        const ok = output.op === 'read' && 'values' in output && output.values.length === s.len;
        return { ok, state: ok ? { len: s.len, done: s.done + 1 } : s };
      }
      if (output !== undefined && output.op !== 'append') return { ok: false, state: s };
      const p = pos.get(input.value);
      if (p === undefined) return { ok: s.len >= ref.length && readsDone(s), state: over };
      return { ok: p === s.len && readsDone(s), state: { len: s.len + 1, done: 0 } };
    },
    equal: (a, b) => a.len === b.len && a.done === b.done,
    hash: (s) => `${s.len}.${s.done}`,
    readOnly: (input) => input.op === 'read',
    describeOperation: appendLogModel.describeOperation,
    describeState: (s) => `[${shorten(ref.slice(0, Math.min(s.len, ref.length)))}${s.len > ref.length ? ', +unobserved appends' : ''}] (length ${Math.min(s.len, ref.length)})`,
  };
  const r = checkOperations(model, kept, opts);
  // In the narrowed model an append waits for the reads of its length, so the search
  // often stops at an append while the culprit is a read: name those reads.
  const explain = (prefix: number[], message: string): string => {
    let st = model.init();
    for (const k of prefix) st = model.step(st, kept[k].input, kept[k].output).state;
    const waiting = reads.filter((i) => readValues(history[i]).length === st.len);
    const lines = waiting.slice(0, MESSAGE_READS).map((i) => `  #${i} ${history[i].clientId} [${history[i].call}, ${history[i].ret}] read of ${st.len} commands`);
    return [
      renumber(message, origin),
      `(append log narrowed by the reads: the append at position ${st.len} must follow every read that saw ${st.len} commands:)`,
      ...lines,
      ...(waiting.length > lines.length ? [`  ... ${waiting.length - lines.length} more`] : []),
    ].join('\n');
  };
  // Map indexes in the reduced history back to the caller's.
  const back = (xs: number[]): number[] => xs.map((k) => origin[k]);
  const ce = r.counterexample;
  return {
    ...r,
    ...(r.linearizations ? { linearizations: r.linearizations.map(back) } : {}),
    ...(r.linearization ? { linearization: back(r.linearization) } : {}),
    ...(r.deepest ? { deepest: back(r.deepest) } : {}),
    ...(ce ? { counterexample: { ...ce, partition: back(ce.partition), longestPrefix: back(ce.longestPrefix), stuck: back(ce.stuck), message: explain(ce.longestPrefix, ce.message) } } : {}),
    elapsedMs: performance.now() - t0,
  };
}

/** The counterexample text names operations as #k of the reduced history: name them as the caller's. */
function renumber(message: string, origin: readonly number[]): string {
  return message.replace(/#(\d+) /g, (m: string, k: string) => `#${origin[Number(k)] ?? k} `);
}

/** Reads listed in a counterexample's explanation. */
const MESSAGE_READS = 8;

/** Where the search is in R*: the length so far (past |R*|: one state), and how many reads of that length are placed. */
interface LogCursor {
  len: number;
  done: number;
}

function readValues(op: Operation<LogInput, LogOutput>): readonly string[] {
  return op.output?.op === 'read' && 'values' in op.output ? op.output.values : [];
}

function shorten(values: readonly string[]): string {
  return values.length <= 12 ? values.join(',') : `${values.slice(0, 4).join(',')},…(${values.length - 8} more)…,${values.slice(-4).join(',')}`;
}

// ------------------------------------------------------------------ filesystem namespace

export type NsErrno = 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EINVAL';
export type NsType = 'file' | 'dir';

export type NsInput =
  | { op: 'mkdir'; path: string }
  /** Exclusive create (O_CREAT|O_EXCL): an existing name is EEXIST. The file starts empty. */
  | { op: 'create'; path: string }
  | { op: 'unlink'; path: string }
  | { op: 'rmdir'; path: string }
  | { op: 'rename'; from: string; to: string }
  | { op: 'stat'; path: string }
  /** Replaces the whole content. */
  | { op: 'write'; path: string; value: string }
  | { op: 'read'; path: string };

/** Success carries what the operation observes (stat: the type; read: the content). */
export type NsOutput = { ok: true } | { ok: true; type: NsType } | { ok: true; value: string } | { ok: false; errno: NsErrno };

export interface NsEntry {
  readonly type: NsType;
  readonly value: string;
}
/** path -> entry; "/" is the implicit root directory and never appears. */
export type NsState = ReadonlyMap<string, NsEntry>;

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

function lookup(s: NsState, path: string): NsEntry | undefined {
  return path === '/' ? { type: 'dir', value: '' } : s.get(path);
}

function isUnder(path: string, dir: string): boolean {
  return path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

function hasChildren(s: NsState, dir: string): boolean {
  for (const p of s.keys()) if (isUnder(p, dir)) return true;
  return false;
}

/** The errno for a path whose parent is not a usable directory, else null. */
function parentErr(s: NsState, path: string): NsErrno | null {
  const p = lookup(s, parentOf(path));
  if (p === undefined) return 'ENOENT';
  return p.type === 'dir' ? null : 'ENOTDIR';
}

const OK: NsOutput = { ok: true };
const err = (errno: NsErrno): NsOutput => ({ ok: false, errno });

/**
 * The specification: what the operation returns and the state after it, following Linux
 * errno choices (an unlink of a directory is EISDIR; rename of a directory into itself is
 * EINVAL; renaming onto itself succeeds and changes nothing).
 */
export function nsApply(s: NsState, input: NsInput): { out: NsOutput; state: NsState } {
  const same = (out: NsOutput): { out: NsOutput; state: NsState } => ({ out, state: s });
  switch (input.op) {
    case 'mkdir':
    case 'create': {
      const pe = parentErr(s, input.path);
      if (pe) return same(err(pe));
      if (lookup(s, input.path)) return same(err('EEXIST'));
      const next = new Map(s);
      next.set(input.path, { type: input.op === 'mkdir' ? 'dir' : 'file', value: '' });
      return { out: OK, state: next };
    }
    case 'unlink':
    case 'rmdir': {
      const pe = parentErr(s, input.path);
      if (pe) return same(err(pe));
      const e = lookup(s, input.path);
      if (!e) return same(err('ENOENT'));
      if (input.op === 'unlink' && e.type === 'dir') return same(err('EISDIR'));
      if (input.op === 'rmdir' && e.type !== 'dir') return same(err('ENOTDIR'));
      if (input.path === '/') return same(err('EINVAL'));
      if (input.op === 'rmdir' && hasChildren(s, input.path)) return same(err('ENOTEMPTY'));
      const next = new Map(s);
      next.delete(input.path);
      return { out: OK, state: next };
    }
    case 'stat': {
      const pe = parentErr(s, input.path);
      if (pe) return same(err(pe));
      const e = lookup(s, input.path);
      return same(e ? { ok: true, type: e.type } : err('ENOENT'));
    }
    case 'write':
    case 'read': {
      const pe = parentErr(s, input.path);
      if (pe) return same(err(pe));
      const e = lookup(s, input.path);
      if (!e) return same(err('ENOENT'));
      if (e.type === 'dir') return same(err('EISDIR'));
      if (input.op === 'read') return same({ ok: true, value: e.value });
      const next = new Map(s);
      next.set(input.path, { type: 'file', value: input.value });
      return { out: OK, state: next };
    }
    case 'rename': {
      const { from, to } = input;
      const pf = parentErr(s, from);
      if (pf) return same(err(pf));
      const src = lookup(s, from);
      if (!src) return same(err('ENOENT'));
      const pt = parentErr(s, to);
      if (pt) return same(err(pt));
      if (from === '/' || to === '/') return same(err(from === '/' ? 'EINVAL' : 'EEXIST'));
      if (from === to) return same(OK);
      if (src.type === 'dir' && isUnder(to, from)) return same(err('EINVAL'));
      const dst = lookup(s, to);
      if (dst) {
        if (src.type === 'file' && dst.type === 'dir') return same(err('EISDIR'));
        if (src.type === 'dir' && dst.type === 'file') return same(err('ENOTDIR'));
        if (dst.type === 'dir' && hasChildren(s, to)) return same(err('ENOTEMPTY'));
      }
      // Move the entry and (for a directory) its whole subtree.
      const next = new Map<string, NsEntry>();
      for (const [p, e] of s) {
        if (p === to) continue;
        if (p === from) next.set(to, e);
        else if (src.type === 'dir' && isUnder(p, from)) next.set(to + p.slice(from.length), e);
        else next.set(p, e);
      }
      return { out: OK, state: next };
    }
  }
}

function sameOutput(a: NsOutput, b: NsOutput): boolean {
  if (a.ok !== b.ok) return false;
  if (!a.ok || !b.ok) return !a.ok && !b.ok && a.errno === b.errno;
  const at = 'type' in a ? a.type : undefined;
  const bt = 'type' in b ? b.type : undefined;
  const av = 'value' in a ? a.value : undefined;
  const bv = 'value' in b ? b.value : undefined;
  return at === bt && av === bv;
}

function describeNs(input: NsInput): string {
  switch (input.op) {
    case 'rename':
      return `rename(${input.from}, ${input.to})`;
    case 'write':
      return `write(${input.path}, ${JSON.stringify(input.value)})`;
    default:
      return `${input.op}(${input.path})`;
  }
}

function nsOutputText(o: NsOutput): string {
  if (!o.ok) return o.errno;
  if ('type' in o) return o.type;
  if ('value' in o) return JSON.stringify(o.value);
  return 'ok';
}

export const namespaceModel: Model<NsState, NsInput, NsOutput> = {
  init: () => new Map(),
  step(state, input, output) {
    const r = nsApply(state, input);
    return { ok: output === undefined || sameOutput(r.out, output), state: r.state };
  },
  equal(a, b) {
    if (a.size !== b.size) return false;
    for (const [p, e] of a) {
      const f = b.get(p);
      if (!f || f.type !== e.type || f.value !== e.value) return false;
    }
    return true;
  },
  hash(s) {
    const parts: string[] = [];
    for (const [p, e] of s) parts.push(`${p}\u0000${e.type}\u0000${e.value}`);
    return parts.sort().join('\u0001');
  },
  readOnly: (input) => input.op === 'stat' || input.op === 'read',
  describeOperation: (input, output) => `${describeNs(input)} -> ${output === undefined ? '?' : nsOutputText(output)}`,
  describeState(s) {
    const parts = [...s].sort((x, y) => (x[0] < y[0] ? -1 : 1)).map(([p, e]) => (e.type === 'dir' ? `${p}/` : `${p}=${JSON.stringify(e.value)}`));
    return `{${parts.join(' ')}}`;
  },
};
