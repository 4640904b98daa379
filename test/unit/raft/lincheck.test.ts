// The linearizability checker and its models: hand-written histories that are and are not
// linearizable, incomplete operations, the namespace model, the time and memory bounds,
// and randomized histories (from a linearizable executor: always 'ok'; mutated with a
// stale read: always 'illegal'; tiny random ones: same verdict as a brute-force search).
import { describe, expect, it } from 'vitest';
import { checkOperations, HistoryRecorder, type Model, type Operation } from '../../../src/cluster/raft/lincheck/checker.js';
import {
  appendLogModel,
  checkAppendLog,
  kvModel,
  namespaceModel,
  nsApply,
  type KvInput,
  type KvOutput,
  type LogInput,
  type LogOutput,
  type NsInput,
  type NsOutput,
  type NsState,
} from '../../../src/cluster/raft/lincheck/models.js';
import { seededInt } from '../../prng.js';

const T = { timeoutMs: 5000 };
type KvOp = Operation<KvInput, KvOutput>;

function put(clientId: string, key: string, value: string, call: number, ret: number | null): KvOp {
  return { clientId, input: { op: 'put', key, value }, output: ret === null ? undefined : { done: true }, call, ret: ret ?? Infinity };
}
function append(clientId: string, key: string, value: string, call: number, ret: number | null): KvOp {
  return { clientId, input: { op: 'append', key, value }, output: ret === null ? undefined : { done: true }, call, ret: ret ?? Infinity };
}
function get(clientId: string, key: string, value: string, call: number, ret: number): KvOp {
  return { clientId, input: { op: 'get', key }, output: { value }, call, ret };
}

/**
 * Reference answer by exhaustive search (no cache, no partitions): some op may go next if
 * no remaining op returned before it was called; incomplete ops may also be left out.
 * Exponential: only for a handful of operations.
 */
function bruteForce<S, I, O>(model: Model<S, I, O>, h: readonly Operation<I, O>[]): boolean {
  const go = (state: S, left: readonly number[]): boolean => {
    if (left.every((i) => h[i].output === undefined)) return true;
    for (const i of left) {
      if (left.some((j) => j !== i && h[j].ret < h[i].call)) continue;
      const r = model.step(state, h[i].input, h[i].output);
      if (r.ok && go(r.state, left.filter((j) => j !== i))) return true;
    }
    return false;
  };
  return go(model.init(), h.map((_, i) => i));
}

describe('lincheck: key-value registers', () => {
  it('accepts a sequential history and returns a linearization', () => {
    const h = [put('a', 'x', '1', 0, 1), get('b', 'x', '1', 2, 3), append('a', 'x', '2', 4, 5), get('b', 'x', '12', 6, 7)];
    const r = checkOperations(kvModel, h, T);
    expect(r.result).toBe('ok');
    expect(r.linearization).toEqual([0, 1, 2, 3]);
  });

  it('accepts concurrent operations in either order', () => {
    // The get overlaps the put: it may see the old or the new value.
    for (const v of ['', '1']) expect(checkOperations(kvModel, [put('a', 'x', '1', 0, 10), get('b', 'x', v, 5, 6)], T).result).toBe('ok');
  });

  it('rejects a stale read after a completed write, with a counterexample', () => {
    const h = [put('a', 'x', '1', 0, 1), put('a', 'x', '2', 2, 3), get('b', 'x', '1', 4, 5)];
    const r = checkOperations(kvModel, h, T);
    expect(r.result).toBe('illegal');
    expect(r.counterexample?.stuck).toContain(2);
    expect(r.counterexample?.longestPrefix).toEqual([0, 1]);
    expect(r.counterexample?.message).toMatch(/get\(x\) -> "1"/);
    expect(r.counterexample?.message).toMatch(/state after it: \{"x":"2"\}/);
  });

  it('rejects a lost write (acknowledged, then never seen)', () => {
    const h = [append('a', 'x', 'p', 0, 1), append('a', 'x', 'q', 2, 3), get('b', 'x', 'p', 10, 11)];
    expect(checkOperations(kvModel, h, T).result).toBe('illegal');
  });

  it('rejects two concurrent writes observed in both orders by two sequential readers', () => {
    const h = [
      put('w1', 'x', '1', 0, 100),
      put('w2', 'x', '2', 0, 100),
      get('a', 'x', '1', 10, 20),
      get('a', 'x', '2', 30, 40),
      get('b', 'x', '2', 10, 20),
      get('b', 'x', '1', 30, 40),
    ];
    expect(checkOperations(kvModel, h, T).result).toBe('illegal');
    // One reader alone is fine.
    expect(checkOperations(kvModel, h.slice(0, 4), T).result).toBe('ok');
  });

  it('checks keys independently (P-compositionality) and reports per-partition linearizations', () => {
    const h = [put('a', 'x', '1', 0, 1), put('a', 'y', '2', 0, 1), get('b', 'y', '2', 2, 3), get('b', 'x', '1', 2, 3)];
    const r = checkOperations(kvModel, h, T);
    expect(r.result).toBe('ok');
    expect(r.partitions).toBe(2);
    expect(r.linearizations?.map((l) => [...l].sort())).toEqual(expect.arrayContaining([[0, 3], [1, 2]]));
    expect(r.linearization).toBeUndefined();
    // A violation on one key fails the whole history.
    expect(checkOperations(kvModel, [...h, get('c', 'y', '', 4, 5)], T).result).toBe('illegal');
  });

  it('treats an operation that touches another in time as concurrent', () => {
    // ret == call: the clock cannot order them, so either order is allowed.
    expect(checkOperations(kvModel, [put('a', 'x', '1', 0, 5), get('b', 'x', '', 5, 6)], T).result).toBe('ok');
    expect(checkOperations(kvModel, [put('a', 'x', '1', 0, 5), get('b', 'x', '', 6, 7)], T).result).toBe('illegal');
  });
});

describe('lincheck: incomplete operations', () => {
  it('an incomplete write may have taken effect', () => {
    const h = [put('a', 'x', '1', 0, 1), put('b', 'x', '2', 2, null), get('c', 'x', '2', 10, 11), get('c', 'x', '2', 12, 13)];
    const r = checkOperations(kvModel, h, T);
    expect(r.result).toBe('ok');
    expect(r.linearization).toEqual([0, 1, 2, 3]);
  });

  it('an incomplete write may never have taken effect (and is left out of the linearization)', () => {
    const h = [put('a', 'x', '1', 0, 1), put('b', 'x', '2', 2, null), get('c', 'x', '1', 10, 11)];
    const r = checkOperations(kvModel, h, T);
    expect(r.result).toBe('ok');
    expect(r.linearization).toEqual([0, 2]);
  });

  it('but not both: seen, then unseen', () => {
    const h = [put('a', 'x', '1', 0, 1), put('b', 'x', '2', 2, null), get('c', 'x', '2', 10, 11), get('c', 'x', '1', 12, 13)];
    expect(checkOperations(kvModel, h, T).result).toBe('illegal');
  });

  it('and not before it was called', () => {
    const h = [get('c', 'x', '2', 0, 1), put('b', 'x', '2', 2, null)];
    expect(checkOperations(kvModel, h, T).result).toBe('illegal');
  });

  it('incomplete reads constrain nothing and are dropped', () => {
    const h: KvOp[] = [put('a', 'x', '1', 0, 1), { clientId: 'r', input: { op: 'get', key: 'x' }, output: undefined, call: 0, ret: Infinity }];
    const r = checkOperations(kvModel, h, T);
    expect(r.result).toBe('ok');
    expect(r.steps).toBe(1);
  });
});

describe('lincheck: input validation and bounds', () => {
  it('rejects malformed histories', () => {
    expect(() => checkOperations(kvModel, [put('a', 'x', '1', 5, 4)], T)).toThrow(/before its call/);
    expect(() => checkOperations(kvModel, [{ ...put('a', 'x', '1', 0, 1), output: undefined }], T)).toThrow(/no output/);
    expect(() => checkOperations(kvModel, [put('a', 'x', '1', 0, 1), put('a', 'x', '1', 2, 3)], { ...T, maxOps: 1 })).toThrow(/maxOps/);
    const bad: Model<KvOutput | null, KvInput, KvOutput> = { init: () => null, step: (s) => ({ ok: true, state: s }), equal: () => true, hash: () => '', partition: () => [] };
    expect(() => checkOperations(bad, [put('a', 'x', '1', 0, 1)], T)).toThrow(/covers 0 of 1/);
  });

  /** n overlapping appends and a read no order explains: the plain sequence model must try them all. */
  function hard(n: number): Operation<LogInput, LogOutput>[] {
    const h: Operation<LogInput, LogOutput>[] = [];
    for (let i = 0; i < n; i++) h.push({ clientId: `w${i}`, input: { op: 'append', value: `v${i}` }, output: { op: 'append', applied: true }, call: 0, ret: 100 });
    h.push({ clientId: 'r', input: { op: 'read' }, output: { op: 'read', values: ['nope'] }, call: 0, ret: 100 });
    return h;
  }

  it('gives up with unknown (timeout) past its time budget', () => {
    const t0 = performance.now();
    const r = checkOperations(appendLogModel, hard(40), { timeoutMs: 150, maxCacheEntries: 1e9 });
    expect(r.result).toBe('unknown');
    expect(r.reason).toBe('timeout');
    expect(r.deepest?.length).toBeGreaterThan(0);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('gives up with unknown (memory) past its cache budget', () => {
    const r = checkOperations(appendLogModel, hard(40), { timeoutMs: 10_000, maxCacheEntries: 5000 });
    expect(r.result).toBe('unknown');
    expect(r.reason).toBe('memory');
  });

  it('records histories with a bounded recorder', () => {
    const rec = new HistoryRecorder<KvInput, KvOutput>(2);
    const a = rec.invoke('c1', { op: 'put', key: 'x', value: '1' });
    const b = rec.invoke('c2', { op: 'get', key: 'x' });
    rec.complete(a, { done: true });
    expect(() => rec.complete(a, { done: true })).toThrow(/twice/);
    expect(() => rec.invoke('c3', { op: 'get', key: 'x' })).toThrow(/full/);
    const h = rec.history();
    expect(h[a]).toMatchObject({ call: 1, ret: 3 });
    expect(h[b]).toMatchObject({ call: 2, ret: Infinity, output: undefined });
    expect(checkOperations(kvModel, h, T).result).toBe('ok');
  });
});

describe('lincheck: append-only log', () => {
  type LogOp = Operation<LogInput, LogOutput>;
  const ap = (v: string, call: number, ret: number | null, applied = true): LogOp => ({
    clientId: `w${v}`,
    input: { op: 'append', value: v },
    output: ret === null ? undefined : { op: 'append', applied },
    call,
    ret: ret ?? Infinity,
  });
  const rd = (values: string[], call: number, ret: number): LogOp => ({ clientId: 'r', input: { op: 'read' }, output: { op: 'read', values }, call, ret });
  const rl = (length: number, call: number, ret: number): LogOp => ({ clientId: 'r', input: { op: 'read' }, output: { op: 'read', length }, call, ret });

  const cases: { name: string; h: LogOp[]; ok: boolean }[] = [
    { name: 'sequential', h: [ap('a', 0, 1), rd(['a'], 2, 3), ap('b', 4, 5), rd(['a', 'b'], 6, 7)], ok: true },
    { name: 'concurrent appends in either order', h: [ap('a', 0, 5), ap('b', 0, 5), rd(['b', 'a'], 6, 7)], ok: true },
    { name: 'stale read', h: [ap('a', 0, 1), rd([], 2, 3)], ok: false },
    { name: 'two orders', h: [ap('a', 0, 5), ap('b', 0, 5), rd(['a', 'b'], 6, 7), rd(['b', 'a'], 8, 9)], ok: false },
    { name: 'incomplete append seen', h: [ap('a', 0, null), rd(['a'], 2, 3)], ok: true },
    { name: 'incomplete append unseen', h: [ap('a', 0, null), rd([], 2, 3), ap('b', 4, 5), rd(['b'], 6, 7)], ok: true },
    { name: 'incomplete append seen late (after an unseeing read)', h: [ap('a', 0, null), rd([], 2, 3), rd(['a'], 6, 7)], ok: true },
    { name: 'incomplete append seen, then unseen', h: [ap('a', 0, null), rd(['a'], 2, 3), rd([], 6, 7)], ok: false },
    { name: '"no effect" append seen', h: [ap('a', 0, 1, false), rd(['a'], 2, 3)], ok: false },
    { name: '"no effect" append unseen', h: [ap('a', 0, 1, false), ap('b', 2, 3), rd(['b'], 4, 5)], ok: true },
    { name: 'acknowledged append never seen by a later read', h: [ap('a', 0, 1), ap('b', 0, 9), rd(['a'], 2, 3), rd(['a'], 10, 11)], ok: false },
    { name: 'a read of a value never appended', h: [ap('a', 0, 1), rd(['a', 'z'], 2, 3)], ok: false },
    { name: 'read before the read it must precede', h: [ap('a', 0, 9), rd(['a'], 1, 2), rd([], 3, 4)], ok: false },
  ];
  for (const { name, h, ok } of cases) {
    it(`${name}: ${ok ? 'ok' : 'illegal'} (plain model and narrowed checker agree)`, () => {
      expect(checkOperations(appendLogModel, h, T).result).toBe(ok ? 'ok' : 'illegal');
      expect(checkAppendLog(h, T).result).toBe(ok ? 'ok' : 'illegal');
      expect(bruteForce(appendLogModel, h)).toBe(ok);
    });
  }

  it('reads of the length only', () => {
    expect(checkOperations(appendLogModel, [ap('a', 0, 1), rl(1, 2, 3), ap('b', 4, 5), rl(2, 6, 7)], T).result).toBe('ok');
    expect(checkOperations(appendLogModel, [ap('a', 0, 1), rl(0, 2, 3)], T).result).toBe('illegal');
    expect(() => checkAppendLog([rl(0, 0, 1)], T)).toThrow(/return values/);
  });

  it('the narrowed checker names the reads that disagree', () => {
    const r = checkAppendLog([ap('a', 0, 5), ap('b', 0, 5), rd(['a', 'b'], 6, 7), rd(['b', 'a'], 8, 9)], T);
    expect(r.result).toBe('illegal');
    expect(r.counterexample?.message).toMatch(/not prefixes/);
    expect(r.counterexample?.stuck.sort()).toEqual([2, 3]);
  });

  it('random small histories: the narrowed checker, the plain model and brute force agree', () => {
    let legal = 0;
    let illegal = 0;
    for (let seed = 1; seed <= 400; seed++) {
      const h = randomLogHistory(seededInt(seed), 6);
      const expected = bruteForce(appendLogModel, h);
      expect(checkOperations(appendLogModel, h, T).result, `seed ${seed}`).toBe(expected ? 'ok' : 'illegal');
      expect(checkAppendLog(h, T).result, `seed ${seed}`).toBe(expected ? 'ok' : 'illegal');
      if (expected) legal++;
      else illegal++;
    }
    // Both verdicts must be exercised.
    expect(legal).toBeGreaterThan(40);
    expect(illegal).toBeGreaterThan(40);
  });

  /** Appends with random outcomes; reads return a random prefix-ish guess of the real log. */
  function randomLogHistory(r: (n: number) => number, n: number): LogOp[] {
    const h: LogOp[] = [];
    const log: string[] = [];
    for (let i = 0; i < n; i++) {
      const call = r(20);
      const ret = call + r(8);
      if (r(3) === 0) {
        // A read: the true log now, or a mangled version of it.
        let values = log.slice(0, r(log.length + 1));
        if (r(3) === 0 && values.length > 1) values = [...values].reverse();
        h.push(rd(values, call, ret));
      } else {
        const v = `v${i}`;
        log.push(v);
        const kind = r(4);
        h.push(kind === 0 ? ap(v, call, null) : kind === 1 ? ap(v, call, ret, false) : ap(v, call, ret));
      }
    }
    return h;
  }
});

describe('lincheck: namespace model', () => {
  type NsOp = Operation<NsInput, NsOutput>;
  let clock = 0;
  /** A sequential op of one client, or (with times) a concurrent one. */
  const op = (clientId: string, input: NsInput, output: NsOutput | undefined, call?: number, ret?: number): NsOp => {
    const c = call ?? ++clock;
    const r = output === undefined ? Infinity : (ret ?? ++clock);
    return { clientId, input, output, call: c, ret: r };
  };
  const OK: NsOutput = { ok: true };
  const E = (errno: 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EINVAL'): NsOutput => ({ ok: false, errno });

  it('follows POSIX errno rules sequentially', () => {
    let s: NsState = new Map();
    const run = (input: NsInput): NsOutput => {
      const r = nsApply(s, input);
      s = r.state;
      return r.out;
    };
    expect(run({ op: 'create', path: '/d/f' })).toEqual(E('ENOENT'));
    expect(run({ op: 'mkdir', path: '/d' })).toEqual(OK);
    expect(run({ op: 'mkdir', path: '/d' })).toEqual(E('EEXIST'));
    expect(run({ op: 'create', path: '/d/f' })).toEqual(OK);
    expect(run({ op: 'create', path: '/d/f' })).toEqual(E('EEXIST'));
    expect(run({ op: 'create', path: '/d/f/g' })).toEqual(E('ENOTDIR'));
    expect(run({ op: 'write', path: '/d/f', value: 'hello' })).toEqual(OK);
    expect(run({ op: 'read', path: '/d/f' })).toEqual({ ok: true, value: 'hello' });
    expect(run({ op: 'read', path: '/d' })).toEqual(E('EISDIR'));
    expect(run({ op: 'unlink', path: '/d' })).toEqual(E('EISDIR'));
    expect(run({ op: 'rmdir', path: '/d' })).toEqual(E('ENOTEMPTY'));
    expect(run({ op: 'rmdir', path: '/d/f' })).toEqual(E('ENOTDIR'));
    expect(run({ op: 'stat', path: '/d' })).toEqual({ ok: true, type: 'dir' });
    // Renaming a directory moves its subtree.
    expect(run({ op: 'rename', from: '/d', to: '/e' })).toEqual(OK);
    expect(run({ op: 'stat', path: '/d' })).toEqual(E('ENOENT'));
    expect(run({ op: 'read', path: '/e/f' })).toEqual({ ok: true, value: 'hello' });
    expect(run({ op: 'rename', from: '/e', to: '/e/x' })).toEqual(E('EINVAL'));
    expect(run({ op: 'rename', from: '/e', to: '/e' })).toEqual(OK);
    expect(run({ op: 'rename', from: '/nope', to: '/x' })).toEqual(E('ENOENT'));
    expect(run({ op: 'create', path: '/g' })).toEqual(OK);
    expect(run({ op: 'rename', from: '/g', to: '/e' })).toEqual(E('EISDIR'));
    expect(run({ op: 'rename', from: '/e', to: '/g' })).toEqual(E('ENOTDIR'));
    expect(run({ op: 'mkdir', path: '/h' })).toEqual(OK);
    expect(run({ op: 'rename', from: '/h', to: '/e' })).toEqual(E('ENOTEMPTY'));
    expect(run({ op: 'rename', from: '/e/f', to: '/g' })).toEqual(OK); // a file replaces a file
    expect(run({ op: 'read', path: '/g' })).toEqual({ ok: true, value: 'hello' });
    expect(run({ op: 'rename', from: '/e', to: '/h' })).toEqual(OK); // a directory replaces an empty one
    expect(run({ op: 'unlink', path: '/g' })).toEqual(OK);
    expect(run({ op: 'unlink', path: '/g' })).toEqual(E('ENOENT'));
    expect(namespaceModel.describeState?.(s)).toBe('{/h/}');
  });

  it('a rename concurrent with stats may be seen before or after, but atomically', () => {
    clock = 0;
    const setup = [op('a', { op: 'create', path: '/a' }, OK)];
    const ren = op('a', { op: 'rename', from: '/a', to: '/b' }, OK, 100, 200);
    const stat = (p: string, exists: boolean, call: number, ret: number): NsOp =>
      op('b', { op: 'stat', path: p }, exists ? { ok: true, type: 'file' } : E('ENOENT'), call, ret);
    // Reader sees /b then /a gone: fine.
    expect(checkOperations(namespaceModel, [...setup, ren, stat('/b', true, 110, 120), stat('/a', false, 130, 140)], T).result).toBe('ok');
    // Reader sees /a still there, then /b: fine (rename between).
    expect(checkOperations(namespaceModel, [...setup, ren, stat('/a', true, 110, 120), stat('/b', true, 130, 140)], T).result).toBe('ok');
    // Reader sees /b, then /a again: the rename happened before the first stat, so /a cannot be back.
    expect(checkOperations(namespaceModel, [...setup, ren, stat('/b', true, 110, 120), stat('/a', true, 130, 140)], T).result).toBe('illegal');
    // Neither name, seen by one reader's two sequential stats: the rename was not atomic.
    expect(checkOperations(namespaceModel, [...setup, ren, stat('/a', false, 110, 120), stat('/b', false, 130, 140)], T).result).toBe('illegal');
    // After the rename returned, the old name must be gone.
    expect(checkOperations(namespaceModel, [...setup, ren, stat('/a', true, 210, 220)], T).result).toBe('illegal');
  });

  it('exclusive create races: one winner', () => {
    clock = 0;
    const c1 = (out: NsOutput): NsOp => op('a', { op: 'create', path: '/f' }, out, 1, 10);
    const c2 = (out: NsOutput): NsOp => op('b', { op: 'create', path: '/f' }, out, 2, 11);
    expect(checkOperations(namespaceModel, [c1(OK), c2(E('EEXIST'))], T).result).toBe('ok');
    expect(checkOperations(namespaceModel, [c1(E('EEXIST')), c2(OK)], T).result).toBe('ok');
    expect(checkOperations(namespaceModel, [c1(OK), c2(OK)], T).result).toBe('illegal');
    expect(checkOperations(namespaceModel, [c1(E('EEXIST')), c2(E('EEXIST'))], T).result).toBe('illegal');
    // With an incomplete create from a third client, both EEXIST become possible.
    expect(checkOperations(namespaceModel, [c1(E('EEXIST')), c2(E('EEXIST')), op('c', { op: 'create', path: '/f' }, undefined, 0)], T).result).toBe('ok');
  });

  it('unlink vs write vs read', () => {
    clock = 0;
    const h = [
      op('a', { op: 'create', path: '/f' }, OK, 0, 1),
      op('a', { op: 'write', path: '/f', value: 'x' }, OK, 2, 3),
      op('b', { op: 'unlink', path: '/f' }, OK, 4, 20),
      op('c', { op: 'read', path: '/f' }, { ok: true, value: 'x' }, 5, 6),
      op('c', { op: 'read', path: '/f' }, E('ENOENT'), 7, 8),
    ];
    expect(checkOperations(namespaceModel, h, T).result).toBe('ok');
    // The file cannot come back after reads saw it gone.
    expect(checkOperations(namespaceModel, [...h, op('c', { op: 'read', path: '/f' }, { ok: true, value: 'x' }, 9, 10)], T).result).toBe('illegal');
    // A write that returned ENOENT must have come after the unlink.
    const w = op('d', { op: 'write', path: '/f', value: 'y' }, E('ENOENT'), 2, 3);
    expect(checkOperations(namespaceModel, [h[0], w], T).result).toBe('illegal');
  });

  it('random small namespace histories agree with brute force', () => {
    const paths = ['/a', '/b', '/a/x'];
    let legal = 0;
    let illegal = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const r = seededInt(seed);
      const h: NsOp[] = [];
      let s: NsState = new Map();
      for (let i = 0; i < 6; i++) {
        const p = paths[r(paths.length)];
        const inputs: NsInput[] = [
          { op: 'mkdir', path: p },
          { op: 'create', path: p },
          { op: 'unlink', path: p },
          { op: 'rename', from: p, to: paths[r(paths.length)] },
          { op: 'stat', path: p },
          { op: 'write', path: p, value: `v${i}` },
          { op: 'read', path: p },
        ];
        const input = inputs[r(inputs.length)];
        const res = nsApply(s, input);
        s = res.state;
        // Outputs are from a sequential run, so the times decide: overlaps reorder them.
        const call = r(30);
        h.push(op(`c${i}`, input, r(8) === 0 ? undefined : res.out, call, call + r(10)));
      }
      const expected = bruteForce(namespaceModel, h);
      expect(checkOperations(namespaceModel, h, T).result, `seed ${seed}`).toBe(expected ? 'ok' : 'illegal');
      if (expected) legal++;
      else illegal++;
    }
    expect(legal).toBeGreaterThan(30);
    expect(illegal).toBeGreaterThan(30);
  });

  it('checks a few hundred operations from 6 concurrent clients within seconds', () => {
    const h = linearizableNsHistory(seededInt(7), 400, 6);
    const r = checkOperations(namespaceModel, h, T);
    console.log(`namespace: ${h.length} ops, 6 clients: ${r.result} in ${r.elapsedMs.toFixed(1)} ms, ${r.steps} steps`);
    expect(r.result).toBe('ok');
    expect(r.elapsedMs).toBeLessThan(5000);
  });
});

/**
 * A linearizable in-memory executor: clients interleave at random; each operation takes
 * effect atomically at a random moment between its call and its return (and a crashed
 * client's last operation may or may not take effect, and never returns).
 */
function executor<S, I, O>(
  r: (n: number) => number,
  nOps: number,
  clients: number,
  init: S,
  gen: (r: (n: number) => number, i: number) => I,
  apply: (s: S, input: I) => { out: O; state: S },
): Operation<I, O>[] {
  type Slot = { op: Operation<I, O>; out: O | null; crashing: boolean } | null;
  const h: Operation<I, O>[] = [];
  const slots: Slot[] = new Array<Slot>(clients).fill(null);
  const names = Array.from({ length: clients }, (_, c) => `c${c}`);
  let s = init;
  let t = 0;
  let issued = 0;
  for (let guard = 0; guard < nOps * 20 && (issued < nOps || slots.some((x) => x !== null)); guard++) {
    const c = r(clients);
    const slot = slots[c];
    if (slot === null) {
      if (issued >= nOps) continue;
      const op: Operation<I, O> = { clientId: names[c], input: gen(r, issued), output: undefined, call: ++t, ret: Infinity };
      issued++;
      h.push(op);
      slots[c] = { op, out: null, crashing: r(25) === 0 };
    } else if (slot.out === null) {
      // The linearization point (or, for a crashing client, maybe none).
      if (slot.crashing && r(2) === 0) {
        slots[c] = null;
        names[c] += "'";
        continue;
      }
      const res = apply(s, slot.op.input);
      s = res.state;
      slot.out = res.out;
    } else {
      if (slot.crashing) names[c] += "'";
      else {
        slot.op.output = slot.out;
        slot.op.ret = ++t;
      }
      slots[c] = null;
    }
  }
  return h;
}

function linearizableNsHistory(r: (n: number) => number, n: number, clients: number): Operation<NsInput, NsOutput>[] {
  const paths = ['/a', '/b', '/c', '/a/x', '/b/y'];
  return executor<NsState, NsInput, NsOutput>(
    r,
    n,
    clients,
    new Map(),
    (g, i) => {
      const p = paths[g(paths.length)];
      const k = g(10);
      if (k === 0) return { op: 'mkdir', path: p };
      if (k === 1) return { op: 'create', path: p };
      if (k === 2) return { op: 'unlink', path: p };
      if (k === 3) return { op: 'rmdir', path: p };
      if (k === 4) return { op: 'rename', from: p, to: paths[g(paths.length)] };
      if (k === 5) return { op: 'stat', path: p };
      if (k === 6) return { op: 'write', path: p, value: `v${i}` };
      return { op: 'read', path: p };
    },
    (s, input) => {
      const res = nsApply(s, input);
      return { out: res.out, state: res.state };
    },
  );
}

describe('lincheck: randomized histories from a linearizable executor', () => {
  const keys = ['k0', 'k1', 'k2'];
  const genKv = (g: (n: number) => number, i: number): KvInput => {
    const key = keys[g(keys.length)];
    const k = g(5);
    if (k < 2) return { op: 'get', key };
    // Unique values: every state of a key is then a distinct string.
    return k === 2 ? { op: 'put', key, value: `<p${i}>` } : { op: 'append', key, value: `<a${i}>` };
  };
  const applyKv = (s: ReadonlyMap<string, string>, input: KvInput): { out: KvOutput; state: ReadonlyMap<string, string> } => {
    const cur = s.get(input.key) ?? '';
    if (input.op === 'get') return { out: { value: cur }, state: s };
    const next = new Map(s);
    next.set(input.key, input.op === 'put' ? input.value : cur + input.value);
    return { out: { done: true }, state: next };
  };

  const HISTORIES = 40;
  /**
   * Illegal histories cost the most (the search must exhaust them): most take milliseconds,
   * a few ~10 s (seeds 6 and 13 here), so the mutated ones get a budget of their own.
   */
  const BAD_T = { timeoutMs: 30_000 };

  it('always ok; a stale read swapped in is always caught', () => {
    const t0 = performance.now();
    let mutated = 0;
    let maxMs = 0;
    let maxBadMs = 0;
    for (let seed = 1; seed <= HISTORIES; seed++) {
      const r = seededInt(seed);
      const clients = 3 + r(6);
      const h = executor(r, 200 + r(300), clients, new Map<string, string>(), genKv, applyKv);
      const ok = checkOperations(kvModel, h, T);
      maxMs = Math.max(maxMs, ok.elapsedMs);
      expect(ok.result, `seed ${seed}`).toBe('ok');
      const m = staleMutation(h, r);
      if (m === null) continue;
      mutated++;
      const bad = checkOperations(kvModel, m, BAD_T);
      expect(bad.result, `seed ${seed} (mutated)`).toBe('illegal');
      maxBadMs = Math.max(maxBadMs, bad.elapsedMs);
    }
    console.log(`kv randomized: ${HISTORIES} histories of 200-500 ops, 3-8 clients; slowest check ${maxMs.toFixed(1)} ms; ${mutated} mutated, slowest ${maxBadMs.toFixed(1)} ms; total ${(performance.now() - t0).toFixed(0)} ms`);
    expect(mutated).toBeGreaterThan(HISTORIES * 0.8);
  });

  it('namespace histories from the executor are ok (6 seeds, 200-300 ops, 3-8 clients)', () => {
    for (let seed = 1; seed <= 6; seed++) {
      const r = seededInt(seed + 100);
      const h = linearizableNsHistory(r, 200 + r(100), 3 + r(6));
      const res = checkOperations(namespaceModel, h, T);
      expect(res.result, `seed ${seed}`).toBe('ok');
    }
  });

  /**
   * Swap a completed get's value for a stale one: the key's value just before some write
   * w that returned before the get was called, where the op that produced that value
   * returned before w was called (so it is ordered before w in every linearization) or
   * the value is the initial ''. Values are unique, so no later state equals it: illegal.
   */
  function staleMutation(h: KvOp[], r: (n: number) => number): KvOp[] | null {
    // Replay the executor's effects in order to know each state's producer: use the
    // linearization the checker found instead (any valid one gives the same argument).
    const lin = checkOperations(kvModel, h, T).linearizations ?? [];
    const candidates: { get: number; value: string }[] = [];
    for (const order of lin) {
      let value = '';
      let producer = -1;
      const states: { value: string; producer: number; until: number }[] = [];
      for (const i of order) {
        const op = h[i];
        if (op.input.op === 'get') continue;
        states.push({ value, producer, until: i });
        value = op.input.op === 'put' ? op.input.value : value + op.input.value;
        producer = i;
      }
      for (const i of order) {
        const g = h[i];
        if (g.input.op !== 'get' || g.output === undefined) continue;
        for (const st of states) {
          const w = h[st.until];
          if (w.output === undefined || w.ret >= g.call) continue;
          if (st.producer >= 0 && h[st.producer].ret >= w.call) continue;
          if ('value' in g.output && g.output.value !== st.value) candidates.push({ get: i, value: st.value });
        }
      }
    }
    if (candidates.length === 0) return null;
    const c = candidates[r(candidates.length)];
    return h.map((op, i) => (i === c.get ? { ...op, output: { value: c.value } } : op));
  }

  it('tiny random kv histories agree with brute force', () => {
    let legal = 0;
    let illegal = 0;
    for (let seed = 1; seed <= 400; seed++) {
      const r = seededInt(seed + 5000);
      const h: KvOp[] = [];
      for (let i = 0; i < 6; i++) {
        const key = r(2) === 0 ? 'x' : 'y';
        const call = r(20);
        const ret = call + r(8);
        const k = r(4);
        if (k === 0) h.push(get(`c${i}`, key, ['', '1', '2', '12'][r(4)], call, ret));
        else if (k === 1) h.push(put(`c${i}`, key, String(1 + r(2)), call, r(6) === 0 ? null : ret));
        else h.push(append(`c${i}`, key, String(1 + r(2)), call, r(6) === 0 ? null : ret));
      }
      const expected = bruteForce(kvModel, h);
      expect(checkOperations(kvModel, h, T).result, `seed ${seed}`).toBe(expected ? 'ok' : 'illegal');
      if (expected) legal++;
      else illegal++;
    }
    expect(legal).toBeGreaterThan(40);
    expect(illegal).toBeGreaterThan(40);
  });
});
