// What the namespace lincheck tests share: how a call's result becomes a model output
// (an answer the model judges, or no answer: it may or may not have happened), the
// fixed directories' inodes, and paths as (parent inode, name).
import { Errno, ROOT_INO, type Ino, type Result, type Timespec } from '../../src/meta/types.js';
import type { Operation } from '../../src/cluster/raft/lincheck/checker.js';
import type { NsErrno, NsInput, NsOutput } from '../../src/cluster/raft/lincheck/models.js';

export type History = Operation<NsInput, NsOutput>[];

/** The namespace's fixed directories and files: model path -> inode. */
export interface Layout {
  dirs: Map<string, Ino>;
  regs: Map<string, Ino>;
}

/** What a call came back with: an answer the model judges, or no answer (it may or may not have happened). */
export type Outcome = { answered: true; output: NsOutput } | { answered: false; why: string };

const MODEL_ERRNOS: ReadonlyMap<number, NsErrno> = new Map([
  [Errno.ENOENT, 'ENOENT'],
  [Errno.EEXIST, 'EEXIST'],
  [Errno.ENOTDIR, 'ENOTDIR'],
  [Errno.EISDIR, 'EISDIR'],
  [Errno.ENOTEMPTY, 'ENOTEMPTY'],
  [Errno.EINVAL, 'EINVAL'],
]);
const ERRNO_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(Errno).map(([k, v]) => [v, k]));
/** No answer: the call failed on the way (node gone, no leader within the deadline). */
const AMBIGUOUS = new Set<number>([Errno.EIO, Errno.ETIMEDOUT, Errno.EAGAIN]);

/** Errno results the model does not know (a bug, or a mapping to fix): reported, and the test fails. */
export class Unexpected extends Error {}

export function outcome<T>(r: Result<T>, onOk: (v: T) => NsOutput): Outcome {
  if (r.ok) return { answered: true, output: onOk(r.value) };
  if (AMBIGUOUS.has(r.errno)) return { answered: false, why: ERRNO_NAMES.get(r.errno) ?? `errno ${r.errno}` };
  const name = MODEL_ERRNOS.get(r.errno);
  if (name === undefined) throw new Unexpected(`errno ${r.errno}`);
  return { answered: true, output: { ok: false, errno: name } };
}

export function parentIno(layout: Layout, p: string): { parent: Ino; name: string } {
  const i = p.lastIndexOf('/');
  const dir = i === 0 ? '/' : p.slice(0, i);
  const parent = dir === '/' ? ROOT_INO : layout.dirs.get(dir);
  if (parent === undefined) throw new Error(`no inode for ${dir}`);
  return { parent, name: p.slice(i + 1) };
}

export function nowTs(): Timespec {
  const ms = Date.now();
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1e6 };
}

export function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)];
}

export function touches(input: NsInput, p: string): boolean {
  return input.op === 'rename' ? input.from === p || input.to === p : input.path === p;
}

/** Counts of each operation's outcome, for the log. */
export function describeOutcomes(h: History): string {
  const counts = new Map<string, number>();
  for (const op of h) {
    const o = op.output;
    const key = `${op.input.op}:${o === undefined ? '?' : o.ok ? 'ok' : o.errno}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([k, n]) => `${k}=${n}`).join(' ');
}

/** Whether `input` may change what a stat of `p` finds (the path itself, or a directory above it). */
function affects(input: NsInput, p: string): boolean {
  if (touches(input, p)) return true;
  const above = (d: string): boolean => p.startsWith(`${d}/`);
  return input.op === 'rename' ? above(input.from) || above(input.to) : input.op === 'rmdir' && above(input.path);
}

/**
 * For the self-check: up to five stats whose answer nothing else can explain (no
 * operation on its name overlaps it, and no unanswered call that could have taken effect
 * before it, i.e. sent before it returned, affects its name), latest first.
 */
export function doctorableStats(history: History): Array<{ op: History[number]; i: number }> {
  const unanswered = history.filter((op) => op.output === undefined);
  return history
    .map((op, i) => ({ op, i }))
    .filter(({ op }) => op.input.op === 'stat' && op.output !== undefined)
    .filter(({ op, i }) => {
      const p = (op.input as { path: string }).path;
      if (unanswered.some((u) => u.call <= op.ret && affects(u.input, p))) return false;
      return !history.some((o, j) => j !== i && affects(o.input, p) && o.call <= op.ret && o.ret >= op.call);
    })
    .reverse()
    .slice(0, 5);
}

/** A stat's answer changed into another one it could have been. */
export function flipStat(o: NsOutput): NsOutput {
  return !o.ok ? { ok: true, type: 'file' } : 'type' in o && o.type === 'file' ? { ok: true, type: 'dir' } : { ok: false, errno: 'ENOENT' };
}
