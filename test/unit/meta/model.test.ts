// Model-based test: random namespace operations run against MetaStore(MemKV) and a plain
// JS tree; every step must return the same errno and leave the same tree.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemKV } from '../../../src/meta/kv.js';
import { MetaStore } from '../../../src/meta/store.js';
import { Errno, RENAME_EXCHANGE, RENAME_NOREPLACE, ROOT_INO, S_IFDIR, S_IFMT, type Command, type Ino } from '../../../src/meta/types.js';
import { CALLER, errnoOf } from './helpers.js';

interface MNode {
  ino: Ino;
  dir: boolean;
  perm: number;
  size: number;
  nlink: number;
  parent: Ino;
  children: Map<string, Ino>;
}

class Model {
  readonly nodes = new Map<Ino, MNode>();
  private nextIno = 2;
  constructor() {
    this.nodes.set(ROOT_INO, { ino: ROOT_INO, dir: true, perm: 0o755, size: 4096, nlink: 2, parent: ROOT_INO, children: new Map() });
  }

  resolve(path: string[]): Ino {
    let cur: MNode | undefined = this.nodes.get(ROOT_INO);
    for (const name of path) {
      if (cur === undefined || !cur.dir) return cur?.ino ?? 9999;
      const next = cur.children.get(name);
      if (next === undefined) return 9999;
      cur = this.nodes.get(next);
    }
    return cur?.ino ?? 9999;
  }

  private dirOf(ino: Ino): MNode | number {
    const n = this.nodes.get(ino);
    if (n === undefined) return Errno.ENOENT;
    if (!n.dir) return Errno.ENOTDIR;
    return n;
  }

  create(parent: Ino, name: string, dir: boolean, perm: number): number {
    const p = this.dirOf(parent);
    if (typeof p === 'number') return p;
    if (p.children.has(name)) return Errno.EEXIST;
    const ino = this.nextIno++;
    this.nodes.set(ino, { ino, dir, perm, size: dir ? 4096 : 0, nlink: dir ? 2 : 1, parent: dir ? parent : 0, children: new Map() });
    p.children.set(name, ino);
    if (dir) p.nlink++;
    return 0;
  }

  private drop(n: MNode): void {
    n.nlink = n.dir ? 0 : n.nlink - 1;
    if (n.nlink === 0) this.nodes.delete(n.ino);
  }

  remove(parent: Ino, name: string, dir: boolean): number {
    const p = this.dirOf(parent);
    if (typeof p === 'number') return p;
    const ino = p.children.get(name);
    if (ino === undefined) return Errno.ENOENT;
    const n = this.nodes.get(ino) as MNode;
    if (dir) {
      if (!n.dir) return Errno.ENOTDIR;
      if (n.children.size > 0) return Errno.ENOTEMPTY;
      p.nlink--;
    } else if (n.dir) {
      return Errno.EISDIR;
    }
    p.children.delete(name);
    this.drop(n);
    return 0;
  }

  link(ino: Ino, parent: Ino, name: string): number {
    const n = this.nodes.get(ino);
    if (n === undefined) return Errno.ENOENT;
    if (n.dir) return Errno.EPERM;
    const p = this.dirOf(parent);
    if (typeof p === 'number') return p;
    if (p.children.has(name)) return Errno.EEXIST;
    p.children.set(name, ino);
    n.nlink++;
    return 0;
  }

  private within(ino: Ino, ancestor: Ino): boolean {
    for (let cur = ino; ; cur = (this.nodes.get(cur) as MNode).parent) {
      if (cur === ancestor) return true;
      if (cur === ROOT_INO) return false;
    }
  }

  rename(parent: Ino, name: string, newParent: Ino, newName: string, flags: number): number {
    const sp = this.dirOf(parent);
    if (typeof sp === 'number') return sp;
    const tp = this.dirOf(newParent);
    if (typeof tp === 'number') return tp;
    const srcIno = sp.children.get(name);
    if (srcIno === undefined) return Errno.ENOENT;
    const dstIno = tp.children.get(newName);
    const exchange = flags === RENAME_EXCHANGE;
    if (exchange && dstIno === undefined) return Errno.ENOENT;
    if (dstIno === srcIno) return 0;
    if (flags === RENAME_NOREPLACE && dstIno !== undefined) return Errno.EEXIST;
    const src = this.nodes.get(srcIno) as MNode;
    const dst = dstIno === undefined ? undefined : (this.nodes.get(dstIno) as MNode);
    if (!exchange && dst !== undefined) {
      if (src.dir && !dst.dir) return Errno.ENOTDIR;
      if (!src.dir && dst.dir) return Errno.EISDIR;
    }
    if (src.dir && this.within(newParent, src.ino)) return Errno.EINVAL;
    if (exchange && dst?.dir && this.within(parent, dst.ino)) return Errno.EINVAL;
    if (exchange && dst !== undefined) {
      sp.children.set(name, dst.ino);
      tp.children.set(newName, src.ino);
      if (src.dir) {
        sp.nlink--;
        tp.nlink++;
        src.parent = tp.ino;
      }
      if (dst.dir) {
        tp.nlink--;
        sp.nlink++;
        dst.parent = sp.ino;
      }
      return 0;
    }
    if (dst !== undefined) {
      if (dst.dir) {
        if (dst.children.size > 0) return Errno.ENOTEMPTY;
        tp.nlink--;
      }
      this.drop(dst);
    }
    sp.children.delete(name);
    tp.children.set(newName, src.ino);
    if (src.dir) {
      sp.nlink--;
      tp.nlink++;
      src.parent = tp.ino;
    }
    return 0;
  }

  setattr(ino: Ino, perm: number | undefined, size: number | undefined): number {
    const n = this.nodes.get(ino);
    if (n === undefined) return Errno.ENOENT;
    if (size !== undefined && n.dir) return Errno.EISDIR;
    if (perm !== undefined) n.perm = perm;
    if (size !== undefined) n.size = size;
    return 0;
  }

  /** path -> "ino kind nlink perm size", for comparison with the store. */
  snapshot(): Map<string, string> {
    const out = new Map<string, string>();
    const walk = (n: MNode, path: string): void => {
      out.set(path, `${n.ino} ${n.dir ? 'd' : 'f'} ${n.nlink} ${n.perm.toString(8)} ${n.size}`);
      if (!n.dir) return;
      for (const [name, ino] of n.children) walk(this.nodes.get(ino) as MNode, `${path}/${name}`);
    };
    walk(this.nodes.get(ROOT_INO) as MNode, '');
    return out;
  }
}

async function storeSnapshot(store: MetaStore): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (ino: Ino, path: string): Promise<void> => {
    const r = await store.getattr(ino);
    if (!r.ok) throw new Error(`getattr ${ino} -> ${r.errno}`);
    const a = r.value;
    const dir = (a.mode & S_IFMT) === S_IFDIR;
    out.set(path, `${a.ino} ${dir ? 'd' : 'f'} ${a.nlink} ${(a.mode & 0o7777).toString(8)} ${a.size}`);
    if (!dir) return;
    let after: string | null = null;
    for (;;) {
      // Small pages so the cursor path is exercised too.
      const page = await store.readdir(ino, after, 2);
      if (!page.ok) throw new Error(`readdir ${ino} -> ${page.errno}`);
      for (const e of page.value.entries) await walk(e.ino, `${path}/${e.name}`);
      if (page.value.done) break;
      after = page.value.entries[page.value.entries.length - 1].name;
    }
  };
  await walk(ROOT_INO, '');
  return out;
}

const NAMES = ['a', 'b', 'c'];
const name = fc.constantFrom(...NAMES);
// Mostly shallow paths, so most operations find what they name and do something.
const path = fc.oneof(
  { weight: 3, arbitrary: fc.constant<string[]>([]) },
  { weight: 3, arbitrary: fc.tuple(name) },
  { weight: 1, arbitrary: fc.tuple(name, name) },
);
const perm = fc.constantFrom(0o644, 0o600, 0o755);

type Op =
  | { op: 'mknod' | 'mkdir' | 'unlink' | 'rmdir'; dir: string[]; name: string }
  | { op: 'link'; from: string[]; dir: string[]; name: string }
  | { op: 'rename'; dir: string[]; name: string; toDir: string[]; toName: string; flags: number }
  | { op: 'setattr'; target: string[]; perm?: number; size?: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('mknod' as const), dir: path, name }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('mkdir' as const), dir: path, name }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('unlink' as const), dir: path, name }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('rmdir' as const), dir: path, name }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('link' as const), from: path, dir: path, name }) },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('rename' as const),
      dir: path,
      name,
      toDir: path,
      toName: name,
      flags: fc.constantFrom(0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record(
      { op: fc.constant('setattr' as const), target: path, perm, size: fc.constantFrom(0, 10, 5000) },
      { requiredKeys: ['op', 'target'] },
    ),
  },
);

function toCommand(m: Model, o: Op, sec: number): { command: Command; expected: number } {
  const now = { sec, nsec: 0 };
  switch (o.op) {
    case 'mknod': {
      const parent = m.resolve(o.dir);
      return { command: { op: 'mknod', parent, name: o.name, mode: 0o100644, rdev: 0, caller: CALLER, now }, expected: m.create(parent, o.name, false, 0o644) };
    }
    case 'mkdir': {
      const parent = m.resolve(o.dir);
      return { command: { op: 'mkdir', parent, name: o.name, mode: 0o755, caller: CALLER, now }, expected: m.create(parent, o.name, true, 0o755) };
    }
    case 'unlink':
    case 'rmdir': {
      const parent = m.resolve(o.dir);
      return { command: { op: o.op, parent, name: o.name, now }, expected: m.remove(parent, o.name, o.op === 'rmdir') };
    }
    case 'link': {
      const ino = m.resolve(o.from);
      const parent = m.resolve(o.dir);
      return { command: { op: 'link', ino, newParent: parent, newName: o.name, now }, expected: m.link(ino, parent, o.name) };
    }
    case 'rename': {
      const parent = m.resolve(o.dir);
      const newParent = m.resolve(o.toDir);
      return {
        command: { op: 'rename', parent, name: o.name, newParent, newName: o.toName, flags: o.flags, now },
        expected: m.rename(parent, o.name, newParent, o.toName, o.flags),
      };
    }
    case 'setattr': {
      const ino = m.resolve(o.target);
      const set = { ...(o.perm === undefined ? {} : { mode: o.perm }), ...(o.size === undefined ? {} : { size: o.size }) };
      return { command: { op: 'setattr', ino, set, now }, expected: m.setattr(ino, o.perm, o.size) };
    }
  }
}

describe('namespace vs reference model', () => {
  it('agrees on every errno and on the tree after every step', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 10, maxLength: 50, size: 'max' }), async (ops) => {
        const store = await MetaStore.open(new MemKV(), { cacheEntries: 16 });
        const model = new Model();
        let sec = 1;
        for (const o of ops) {
          const { command, expected } = toCommand(model, o, sec++);
          const got = errnoOf(await store.execute(command));
          expect({ op: o, errno: got }).toEqual({ op: o, errno: expected });
          expect(await storeSnapshot(store)).toEqual(model.snapshot());
        }
        const st = await store.statfs();
        expect(st.ok && st.value.files).toBe(model.nodes.size);
      }),
      { numRuns: 400 },
    );
  });
});
