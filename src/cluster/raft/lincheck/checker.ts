// A linearizability checker for recorded client histories, after Wing & Gong's search
// with Lowe's improvements as Porcupine implements them (written from the algorithm, not
// the code):
//  - the history is a list of call and return events ordered by time; the search walks
//    it depth first, each time trying to linearize a pending call (step the model with
//    its input and observed output); reaching a return event whose call has not been
//    linearized means the current prefix is a dead end, so it backtracks;
//  - every (set of linearized operations, model state) reached is cached; reaching one
//    again cannot lead anywhere new, which turns the factorial search into (in practice)
//    something near the number of distinct states;
//  - P-compositionality: when the model can split a history into independent parts (per
//    key), each part is linearizable on its own iff the whole is, and parts are checked
//    separately (an exponential in the history size becomes one in the part size);
//  - an operation that never completed (output undefined, ret Infinity) may have taken
//    effect at any point after its call, or never: the search may linearize it anywhere
//    after its call, and once every completed operation is linearized the rest are
//    dropped (they "never happened").
// Time and memory are bounded: past the deadline or the cache budget the answer is
// 'unknown', never a guess.

/** One client operation as recorded: invoked at `call`, answered at `ret`. */
export interface Operation<I, O> {
  clientId: string;
  input: I;
  /** undefined: never completed (timed out, crashed): it may or may not have taken effect. */
  output: O | undefined;
  call: number;
  /** Infinity when incomplete. */
  ret: number;
}

export interface StepResult<S> {
  ok: boolean;
  state: S;
}

/**
 * A sequential specification. States must be treated as immutable: the search keeps old
 * states to backtrack to and in its cache.
 */
export interface Model<S, I, O> {
  init(): S;
  /**
   * Apply `input` to `state`; ok says whether `output` is what the specification allows.
   * With output undefined (an incomplete operation) it must apply the effect and accept.
   */
  step(state: S, input: I, output: O | undefined): StepResult<S>;
  equal(a: S, b: S): boolean;
  /** Equal states must hash equal; unequal ones should rarely collide (collisions only cost time). Keep it cheap: it runs on every step. */
  hash(s: S): string;
  /** Independent sub-histories (P-compositionality), e.g. one per key. Every operation in exactly one. */
  partition?(history: readonly Operation<I, O>[]): Operation<I, O>[][];
  /** An input that never changes the state: when incomplete it is dropped before the search. */
  readOnly?(input: I): boolean;
  describeOperation?(input: I, output: O | undefined): string;
  describeState?(s: S): string;
}

export interface CheckOptions {
  /** Wall-clock budget for the whole check (all partitions). */
  timeoutMs: number;
  /** Refuse (throw) histories longer than this: the caller is recording without a bound. */
  maxOps?: number;
  /** Cache entries (linearized set, state) kept across the search before giving up as 'unknown'. */
  maxCacheEntries?: number;
}

export interface Counterexample {
  /** Indexes (into the history) of the partition that is not linearizable. */
  partition: number[];
  /** The longest linearization of a prefix the search found, in order. */
  longestPrefix: number[];
  /** Operations that could be linearized next after that prefix (by real time) but fit no model step. */
  stuck: number[];
  /** Human-readable explanation: the prefix's tail, the state it leads to, the stuck operations. */
  message: string;
}

export interface CheckResult {
  result: 'ok' | 'illegal' | 'unknown';
  /** Why 'unknown'. */
  reason?: 'timeout' | 'memory';
  /** When 'unknown': the longest linearized prefix of the partition the search gave up on (where it got stuck). */
  deepest?: number[];
  /** When 'ok': one linearization per partition (history indexes), omitted incomplete operations left out. */
  linearizations?: number[][];
  /** When 'ok' and the history is one partition: its linearization. */
  linearization?: number[];
  counterexample?: Counterexample;
  partitions: number;
  /** Model steps taken over all partitions (a measure of search effort). */
  steps: number;
  elapsedMs: number;
}

const DEFAULT_MAX_OPS = 100_000;
const DEFAULT_MAX_CACHE = 1_000_000;
/** How many search iterations between clock reads (performance.now is not free). */
const CLOCK_EVERY = 512;
/** Lines of the longest prefix shown in a counterexample message. */
const MESSAGE_PREFIX_TAIL = 12;

type PartResult = { kind: 'ok'; order: number[] } | { kind: 'illegal'; longest: number[] } | { kind: 'unknown'; reason: 'timeout' | 'memory'; longest: number[] };

interface CacheEntry<S> {
  bits: Uint32Array;
  state: S;
}

/** Check a history against a model. Indexes in the result refer to positions in `history`. */
export function checkOperations<S, I, O>(model: Model<S, I, O>, history: readonly Operation<I, O>[], opts: CheckOptions): CheckResult {
  const t0 = performance.now();
  const deadline = t0 + opts.timeoutMs;
  const maxOps = opts.maxOps ?? DEFAULT_MAX_OPS;
  if (history.length > maxOps) throw new Error(`lincheck: history of ${history.length} operations exceeds maxOps ${maxOps}`);
  for (const op of history) {
    if (!(op.ret >= op.call)) throw new Error(`lincheck: operation of ${op.clientId} returns (${op.ret}) before its call (${op.call})`);
    if (op.output === undefined && op.ret !== Infinity) throw new Error(`lincheck: operation of ${op.clientId} has no output but returned at ${op.ret}`);
  }
  const indexOf = new Map<Operation<I, O>, number>();
  history.forEach((op, i) => indexOf.set(op, i));
  // Incomplete read-only operations constrain nothing: dropping them shrinks the search.
  const kept = history.filter((op) => !(op.output === undefined && model.readOnly?.(op.input) === true));
  const parts = model.partition ? model.partition(kept) : [kept.slice()];
  const partIdx: number[][] = parts.map((p) =>
    p.map((op) => {
      const i = indexOf.get(op);
      if (i === undefined) throw new Error('lincheck: partition() returned an operation not in the history');
      return i;
    }),
  );
  const seen = new Set<number>();
  for (const p of partIdx) for (const i of p) {
    if (seen.has(i)) throw new Error(`lincheck: partition() put operation ${i} in two partitions`);
    seen.add(i);
  }
  if (seen.size !== kept.length) throw new Error(`lincheck: partition() covers ${seen.size} of ${kept.length} operations`);
  // Small partitions first: a violation in one is found sooner and the budget goes further.
  const orderParts = partIdx.map((_, k) => k).sort((a, b) => partIdx[a].length - partIdx[b].length);
  const budget = { steps: 0, cacheEntries: 0, maxCache: opts.maxCacheEntries ?? DEFAULT_MAX_CACHE };
  const orders: number[][] = new Array<number[]>(partIdx.length);
  let unknown: 'timeout' | 'memory' | null = null;
  let deepest: number[] = [];
  for (const k of orderParts) {
    if (unknown !== null) break;
    const r = searchPartition(model, history, partIdx[k], deadline, budget);
    if (r.kind === 'ok') orders[k] = r.order;
    else if (r.kind === 'illegal') {
      return {
        result: 'illegal',
        counterexample: counterexample(model, history, partIdx[k], r.longest),
        partitions: partIdx.length,
        steps: budget.steps,
        elapsedMs: performance.now() - t0,
      };
    } else {
      unknown = r.reason;
      deepest = r.longest;
    }
  }
  const elapsedMs = performance.now() - t0;
  if (unknown !== null) return { result: 'unknown', reason: unknown, deepest, partitions: partIdx.length, steps: budget.steps, elapsedMs };
  return {
    result: 'ok',
    linearizations: orders,
    ...(orders.length === 1 ? { linearization: orders[0] } : {}),
    partitions: partIdx.length,
    steps: budget.steps,
    elapsedMs,
  };
}

/** Deterministic 32-bit values per operation for an incremental (Zobrist) hash of the linearized set. */
function zobrist(n: number): { lo: Uint32Array; hi: Uint32Array } {
  const lo = new Uint32Array(n);
  const hi = new Uint32Array(n);
  let x = 0x9e3779b9;
  const next = (): number => {
    // xorshift32: cheap and good enough to spread set hashes over the cache map.
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  for (let i = 0; i < n; i++) {
    lo[i] = next();
    hi[i] = next();
  }
  return { lo, hi };
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The depth-first search over one partition. Events live in a doubly linked list (arrays
 * of prev/next) so that linearizing an operation ("lifting" its call and return out of
 * the list) and undoing it are O(1).
 */
function searchPartition<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  idx: readonly number[],
  deadline: number,
  budget: { steps: number; cacheEntries: number; maxCache: number },
): PartResult {
  const n = idx.length;
  const ops = idx.map((i) => history[i]);
  // Events 0..2n-1: event 2k is op k's call, 2k+1 its return. Ties: calls before
  // returns, so operations touching in time count as concurrent (the permissive reading
  // of a clock that cannot order them).
  const events: number[] = [];
  for (let k = 0; k < n; k++) events.push(2 * k, 2 * k + 1);
  const timeOf = (e: number): number => (e % 2 === 0 ? ops[e >> 1].call : ops[e >> 1].ret);
  events.sort((a, b) => timeOf(a) - timeOf(b) || (a % 2) - (b % 2) || a - b);
  const HEAD = 2 * n;
  const next = new Int32Array(2 * n + 1).fill(-1);
  const prev = new Int32Array(2 * n + 1).fill(-1);
  let last = HEAD;
  for (const e of events) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  const lift = (call: number): void => {
    next[prev[call]] = next[call];
    prev[next[call]] = prev[call];
    const r = call + 1;
    next[prev[r]] = next[r];
    if (next[r] !== -1) prev[next[r]] = prev[r];
  };
  const unlift = (call: number): void => {
    const r = call + 1;
    next[prev[r]] = r;
    if (next[r] !== -1) prev[next[r]] = r;
    next[prev[call]] = call;
    prev[next[call]] = call;
  };

  let completeLeft = ops.reduce((c, op) => c + (op.output === undefined ? 0 : 1), 0);
  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const z = zobrist(n);
  let zlo = 0;
  let zhi = 0;
  const toggle = (k: number): void => {
    bits[k >>> 5] ^= 1 << (k & 31);
    zlo ^= z.lo[k];
    zhi ^= z.hi[k];
  };
  // Keyed by the linearized set (53 bits of its Zobrist hash) and the model's hash of the
  // state; a hit is confirmed with the exact set and equal(), so collisions cost only time.
  // (Keying by the set alone, as Porcupine does, degrades when one set is reached in many
  // states: concurrent appends in different orders.)
  const cache = new Map<string, CacheEntry<S>[]>();
  /** Record (bits, state); false if it was already there (nothing new below it). */
  const cacheInsert = (state: S): boolean => {
    const key = `${zlo * 0x200000 + (zhi & 0x1fffff)}|${model.hash(state)}`;
    const list = cache.get(key);
    if (list) {
      for (const c of list) if (sameBits(c.bits, bits) && model.equal(c.state, state)) return false;
      list.push({ bits: bits.slice(), state });
    } else cache.set(key, [{ bits: bits.slice(), state }]);
    budget.cacheEntries++;
    return true;
  };

  const stack: { call: number; state: S }[] = [];
  let state = model.init();
  let longest: number[] = [];
  let entry = next[HEAD];
  for (let iter = 1; ; iter++) {
    // Every completed operation is linearized: the incomplete rest may never have happened.
    if (completeLeft === 0) return { kind: 'ok', order: stack.map((s) => idx[s.call >> 1]) };
    if (iter % CLOCK_EVERY === 0 && performance.now() > deadline) return { kind: 'unknown', reason: 'timeout', longest };
    if (budget.cacheEntries > budget.maxCache) return { kind: 'unknown', reason: 'memory', longest };
    if (entry === -1) throw new Error('lincheck: ran off the event list (internal error)');
    if (entry % 2 === 0) {
      const k = entry >> 1;
      const op = ops[k];
      budget.steps++;
      const r = model.step(state, op.input, op.output);
      if (r.ok) {
        toggle(k);
        if (cacheInsert(r.state)) {
          stack.push({ call: entry, state });
          state = r.state;
          if (op.output !== undefined) completeLeft--;
          lift(entry);
          if (stack.length > longest.length) longest = stack.map((s) => idx[s.call >> 1]);
          entry = next[HEAD];
          continue;
        }
        toggle(k);
      }
      entry = next[entry];
    } else {
      // A return whose call is still in the list: that operation had to take effect by
      // now and cannot with this prefix. Undo the last choice and try the next candidate.
      const top = stack.pop();
      if (top === undefined) return { kind: 'illegal', longest };
      const k = top.call >> 1;
      state = top.state;
      toggle(k);
      if (ops[k].output !== undefined) completeLeft++;
      unlift(top.call);
      entry = next[top.call];
    }
  }
}

function describeOp<S, I, O>(model: Model<S, I, O>, history: readonly Operation<I, O>[], i: number): string {
  const op = history[i];
  const what = model.describeOperation ? model.describeOperation(op.input, op.output) : `${JSON.stringify(op.input)} -> ${op.output === undefined ? '?' : JSON.stringify(op.output)}`;
  return `#${i} ${op.clientId} [${op.call}, ${op.ret === Infinity ? '∞' : op.ret}] ${what}`;
}

function counterexample<S, I, O>(model: Model<S, I, O>, history: readonly Operation<I, O>[], part: number[], longest: number[]): Counterexample {
  let state = model.init();
  for (const i of longest) state = model.step(state, history[i].input, history[i].output).state;
  const done = new Set(longest);
  const rest = part.filter((i) => !done.has(i));
  // What could come next by real time: everything called no later than the first return still due.
  let firstRet = Infinity;
  for (const i of rest) if (history[i].output !== undefined) firstRet = Math.min(firstRet, history[i].ret);
  const stuck = rest.filter((i) => history[i].call <= firstRet);
  const shown = longest.slice(-MESSAGE_PREFIX_TAIL);
  const lines = [
    `not linearizable: ${part.length} operations in the partition; the longest linearizable prefix has ${longest.length}`,
    ...(shown.length < longest.length ? [`  ... ${longest.length - shown.length} earlier`] : []),
    ...shown.map((i) => `  ${describeOp(model, history, i)}`),
    `state after it: ${model.describeState ? model.describeState(state) : model.hash(state)}`,
    `none of these fits next:`,
    ...stuck.map((i) => `  ${describeOp(model, history, i)}`),
  ];
  return { partition: part, longestPrefix: longest, stuck, message: lines.join('\n') };
}

/**
 * Records a history as it happens: invoke() when a client sends, complete() when it gets
 * its answer; never-completed operations stay incomplete. Time is a logical counter by
 * default (every event gets a distinct, increasing stamp), so events recorded from one
 * thread are totally ordered by recording order.
 */
export class HistoryRecorder<I, O> {
  private readonly ops: Operation<I, O>[] = [];
  private tick = 0;

  constructor(
    /** Bound on recorded operations: a runaway workload fails loudly instead of eating memory. */
    private readonly maxOps = 100_000,
    private readonly clock: () => number = () => ++this.tick,
  ) {}

  invoke(clientId: string, input: I): number {
    if (this.ops.length >= this.maxOps) throw new Error(`lincheck: history recorder is full (${this.maxOps} operations)`);
    this.ops.push({ clientId, input, output: undefined, call: this.clock(), ret: Infinity });
    return this.ops.length - 1;
  }

  complete(id: number, output: O): void {
    const op = this.ops[id];
    if (!op) throw new Error(`lincheck: no operation ${id}`);
    if (op.output !== undefined) throw new Error(`lincheck: operation ${id} completed twice`);
    op.output = output;
    op.ret = this.clock();
  }

  /**
   * Turns a completed operation back into one that never completed (it may or may not have
   * taken effect): for answers a crash may take back, e.g. a client's changes acknowledged
   * before they were durable. Returns whether it had completed.
   */
  forget(id: number): boolean {
    const op = this.ops[id];
    if (!op) throw new Error(`lincheck: no operation ${id}`);
    if (op.output === undefined) return false;
    op.output = undefined;
    op.ret = Infinity;
    return true;
  }

  get size(): number {
    return this.ops.length;
  }

  /** A copy of the history so far (in-flight operations appear incomplete). */
  history(): Operation<I, O>[] {
    return this.ops.map((op) => ({ ...op }));
  }
}
