// The `batch` command (decision 0012): a client's commands applied in order as one; the
// first that fails stops it, and what stays is exactly the prefix before it.
import { beforeEach, describe, expect, it } from 'vitest';
import { loadEnvelopeCodec } from '../../../src/meta/envelope-codec.js';
import { MemKV } from '../../../src/meta/kv.js';
import { Tx } from '../../../src/meta/tx.js';
import { BATCH_OPS_MAX, Errno, ROOT_INO, type Command } from '../../../src/meta/types.js';
import { CALLER, Fixture } from './helpers.js';

let f: Fixture;
beforeEach(async () => {
  f = await Fixture.create({ chunkSizeBytes: 1 << 20 });
});

const mk = (name: string, now: number, parent = ROOT_INO): Command => ({ op: 'mknod', parent, name, mode: 0o100644, rdev: 0, caller: CALLER, now: { sec: now, nsec: 0 } });
const mkd = (name: string, now: number, parent = ROOT_INO): Command => ({ op: 'mkdir', parent, name, mode: 0o755, caller: CALLER, now: { sec: now, nsec: 0 } });

describe('batch', () => {
  it('applies every command in order and returns the directories they changed', async () => {
    const r = await f.run({ op: 'batch', ops: [mkd('d', 10), mk('a', 11), mk('b', 12), { op: 'rename', parent: ROOT_INO, name: 'a', newParent: ROOT_INO, newName: 'c', flags: 0, now: { sec: 13, nsec: 0 } }] });
    expect(r).toMatchObject({ ok: true, value: { applied: 4, errno: 0 } });
    expect(await f.names(ROOT_INO)).toEqual(['b', 'c', 'd']);
    const root = await f.attr(ROOT_INO);
    expect(r.ok && r.dirs?.find((d) => d.ino === ROOT_INO)).toEqual(root);
    expect(root.mtime).toEqual({ sec: 13, nsec: 0 });
  });

  it('keeps exactly the prefix before the first failure, and nothing of it or after it', async () => {
    await f.file(ROOT_INO, 'taken');
    const before = await f.attr(ROOT_INO);
    const r = await f.run({ op: 'batch', ops: [mk('x', 20), mkd('y', 21), mk('taken', 22), mk('z', 23)] });
    expect(r).toMatchObject({ ok: true, value: { applied: 2, errno: Errno.EEXIST } });
    expect(await f.names(ROOT_INO)).toEqual(['taken', 'x', 'y']);
    const root = await f.attr(ROOT_INO);
    expect(root.mtime).toEqual({ sec: 21, nsec: 0 });
    expect(root.nlink).toBe(before.nlink + 1);
    // A later command sees the batch's prefix as committed state.
    expect(await f.mknod(ROOT_INO, 'z')).toMatchObject({ ok: true });
  });

  it('sees its own earlier commands (a directory made, removed, a file made beside it, in one batch)', async () => {
    const r = await f.run({ op: 'batch', ops: [mkd('dir', 30)] });
    expect(r).toMatchObject({ ok: true, value: { applied: 1 } });
    const look = await f.store.lookup(ROOT_INO, 'dir');
    if (!look.ok) throw new Error(`lookup dir: errno ${look.errno}`);
    const dir = look.value;
    const r2 = await f.run({ op: 'batch', ops: [mkd('sub', 31, dir.ino), { op: 'rmdir', parent: dir.ino, name: 'sub', now: { sec: 32, nsec: 0 } }, mk('f', 33, dir.ino)] });
    expect(r2).toMatchObject({ ok: true, value: { applied: 3, errno: 0 } });
    expect(await f.names(dir.ino)).toEqual(['f']);
  });

  it('refuses an empty, oversized or nested batch, and cluster commands in it, applying nothing', async () => {
    const n = (await f.names(ROOT_INO)).length;
    expect(await f.run({ op: 'batch', ops: [] })).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await f.run({ op: 'batch', ops: Array.from({ length: BATCH_OPS_MAX + 1 }, (_, i) => mk(`n${i}`, 40)) })).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await f.run({ op: 'batch', ops: [mk('p', 41), { op: 'batch', ops: [mk('q', 42)] }] })).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await f.run({ op: 'batch', ops: [mk('p', 43), { op: 'setNodeState', nodeId: 'n1', state: 'dead' }] })).toEqual({ ok: false, errno: Errno.EINVAL });
    expect((await f.names(ROOT_INO)).length).toBe(n);
  });

  it('round-trips through the log encoding', async () => {
    const codec = await loadEnvelopeCodec();
    const command: Command = { op: 'batch', ops: [mkd('d', 1), mk('a', 2), { op: 'unlink', parent: ROOT_INO, name: 'a', now: { sec: 3, nsec: 0 } }] };
    expect(codec.decode(codec.encode({ clientId: 'c', seq: 7, command }))).toEqual({ clientId: 'c', seq: 7, command });
  });
});

describe('Tx nested scopes', () => {
  it('keeps or drops a nested scope over the enclosing one, and reads see the innermost write', async () => {
    const kv = new MemKV();
    const tx = new Tx(kv);
    const k = (s: string) => Buffer.from(s);
    tx.begin();
    tx.put(k('a'), k('1'));
    tx.beginNested();
    tx.put(k('a'), k('2'));
    tx.put(k('b'), k('2'));
    expect((await tx.get(k('a')))?.toString()).toBe('2');
    tx.endNested(false);
    expect((await tx.get(k('a')))?.toString()).toBe('1');
    expect(await tx.get(k('b'))).toBeUndefined();
    tx.beginNested();
    tx.del(k('a'));
    tx.put(k('c'), k('3'));
    const seen: string[] = [];
    for await (const [key] of tx.scanPrefix(Buffer.alloc(0))) seen.push(key.toString());
    expect(seen).toEqual(['c']);
    tx.endNested(true);
    expect(() => tx.endNested(true)).toThrow();
    tx.commit();
    expect(tx.ops().map((o) => [o.key.toString(), o.type])).toEqual([['a', 'del'], ['c', 'put']]);
  });
});

describe('delegated inode numbers', () => {
  it('a session creates with numbers it reserved; others, used or foreign numbers are refused', async () => {
    const range = await f.ok({ op: 'allocInodes', session: 's1', count: 3 });
    const other = await f.ok({ op: 'allocInodes', session: 's2', count: 2 });
    expect(other.first).toBe(range.first + 3);
    const d = { session: 's1', ino: range.first + 1 };
    const a = await f.ok({ ...(mk('a', 50) as Extract<Command, { op: 'mknod' }>), delegated: d });
    expect(a.ino).toBe(range.first + 1);
    expect((await f.attr(a.ino)).ino).toBe(a.ino);
    // Used already, another session's, outside every range, the root: EINVAL, nothing made.
    expect(await f.run({ ...(mk('b', 51) as Extract<Command, { op: 'mknod' }>), delegated: d })).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await f.run({ ...(mkd('c', 52) as Extract<Command, { op: 'mkdir' }>), delegated: { session: 's1', ino: other.first } })).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await f.run({ ...(mkd('c', 53) as Extract<Command, { op: 'mkdir' }>), delegated: { session: 's1', ino: range.first + 3 } })).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await f.names(ROOT_INO)).toEqual(['a']);
    const dir = await f.ok({ ...(mkd('c', 54) as Extract<Command, { op: 'mkdir' }>), delegated: { session: 's1', ino: range.first } });
    expect(dir.ino).toBe(range.first);
    const link = await f.ok({ op: 'symlink', parent: dir.ino, name: 'l', target: '../a', caller: CALLER, now: { sec: 55, nsec: 0 }, delegated: { session: 's1', ino: range.first + 2 } });
    expect(link.ino).toBe(range.first + 2);
    // Creates without a delegated number never take one of a range.
    const plain = await f.file(ROOT_INO, 'plain');
    expect(plain.ino).toBe(other.first + 2);
  });

  it('with the range named (first), checks that one range: inside it a create works, outside it or with a range not the session\'s it is refused', async () => {
    const range = await f.ok({ op: 'allocInodes', session: 's1', count: 3 });
    const other = await f.ok({ op: 'allocInodes', session: 's2', count: 3 });
    const at = (name: string, ino: number, first: number, session = 's1') => f.run({ ...(mk(name, 70) as Extract<Command, { op: 'mknod' }>), delegated: { session, ino, first } });
    expect(await at('a', range.first + 2, range.first)).toMatchObject({ ok: true, value: { ino: range.first + 2 } });
    expect(await at('b', range.first + 3, range.first)).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await at('c', other.first, other.first)).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await at('d', range.first + 1, range.first + 1)).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await at('e', range.first, range.first + 1)).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await at('f', other.first + 1, other.first, 's2')).toMatchObject({ ok: true, value: { ino: other.first + 1 } });
    expect(await f.names(ROOT_INO)).toEqual(['a', 'f']);
  });

  it('keeps a session\'s last 4 ranges, and closeSession drops them', async () => {
    const firsts: number[] = [];
    for (let i = 0; i < 5; i++) firsts.push((await f.ok({ op: 'allocInodes', session: 's1', count: 10 })).first);
    const at = (first: number, name: string) => f.run({ ...(mk(name, 60) as Extract<Command, { op: 'mknod' }>), delegated: { session: 's1', ino: first } });
    expect(await at(firsts[0], 'oldest')).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await at(firsts[1], 'kept')).toMatchObject({ ok: true });
    await f.ok({ op: 'closeSession', session: 's1' });
    expect(await at(firsts[4], 'after-close')).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await f.run({ op: 'allocInodes', session: 's1', count: 0 })).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await f.run({ op: 'allocInodes', session: '', count: 1 })).toEqual({ ok: false, errno: Errno.EINVAL });
  });

  it('round-trips delegated numbers and allocInodes through the log encoding', async () => {
    const codec = await loadEnvelopeCodec();
    for (const command of [
      { op: 'allocInodes', session: 's1', count: 5 },
      { ...(mk('a', 1) as Extract<Command, { op: 'mknod' }>), delegated: { session: 's1', ino: 77 } },
      { ...(mk('b', 1) as Extract<Command, { op: 'mknod' }>), delegated: { session: 's1', ino: 80, first: 76 } },
      { ...(mkd('d', 2) as Extract<Command, { op: 'mkdir' }>), delegated: { session: 's1', ino: 78 } },
      { op: 'symlink', parent: 1, name: 'l', target: 't', caller: CALLER, now: { sec: 3, nsec: 0 }, delegated: { session: 's1', ino: 79 } },
      mk('plain', 4),
    ] as Command[]) {
      expect(codec.decode(codec.encode({ clientId: 'c', seq: 1, command }))).toEqual({ clientId: 'c', seq: 1, command });
    }
  });
});

describe('directory leases', () => {
  const un = (name: string, now: number, parent = ROOT_INO): Command => ({ op: 'unlink', parent, name, now: { sec: now, nsec: 0 } });

  it("an exclusive lease lets its session's batches change the directory, and keeps everyone else out", async () => {
    const d = await f.dir(ROOT_INO, 'd');
    expect(await f.run({ op: 'leaseGrant', session: 'A', ino: d.ino, exclusive: true })).toEqual({ ok: true, value: null });
    // A's batch: creates and a mkdir; the new directory is A's too.
    const r = await f.run({ op: 'batch', session: 'A', ops: [mk('a', 70, d.ino), mkd('sub', 71, d.ino)] });
    expect(r).toMatchObject({ ok: true, value: { applied: 2, errno: 0 } });
    const sub = await f.store.lookup(d.ino, 'sub');
    if (!sub.ok) throw new Error('no sub');
    expect(await f.run({ op: 'batch', session: 'A', ops: [mk('deep', 72, sub.value.ino)] })).toMatchObject({ value: { applied: 1, errno: 0 } });
    // Anyone else: EAGAIN (the leader recalls A first); another session's batch: ESTALE, nothing applied.
    expect(await f.mknod(d.ino, 'b')).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(await f.run(un('a', 73, d.ino))).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(await f.run({ op: 'rename', parent: d.ino, name: 'a', newParent: ROOT_INO, newName: 'moved', flags: 0, now: { sec: 74, nsec: 0 } })).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(await f.run({ op: 'batch', session: 'B', ops: [mk('b', 75, d.ino)] })).toMatchObject({ value: { applied: 0, errno: Errno.ESTALE } });
    expect(await f.run({ op: 'leaseGrant', session: 'B', ino: d.ino, exclusive: false })).toEqual({ ok: false, errno: Errno.EAGAIN });
    // Outside its leases A's batch stops with ESTALE: the prefix stays.
    expect(await f.run({ op: 'batch', session: 'A', ops: [mk('c', 76, d.ino), mk('x', 77, ROOT_INO), mk('y', 78, d.ino)] })).toMatchObject({
      value: { applied: 1, errno: Errno.ESTALE },
    });
    expect(await f.names(d.ino)).toEqual(['a', 'c', 'sub']);
    // Released: everyone may again; a second release is a no-op.
    expect(await f.run({ op: 'leaseRelease', session: 'A', ino: d.ino })).toEqual({ ok: true, value: null });
    expect(await f.run({ op: 'leaseRelease', session: 'A', ino: d.ino })).toEqual({ ok: true, value: null });
    expect(await f.mknod(d.ino, 'b')).toMatchObject({ ok: true });
    expect(await f.mknod(sub.value.ino, 'still-A')).toEqual({ ok: false, errno: Errno.EAGAIN });
  });

  it('shared leases coexist with each other, never with an exclusive one', async () => {
    const d = await f.dir(ROOT_INO, 'd');
    expect(await f.run({ op: 'leaseGrant', session: 'A', ino: d.ino, exclusive: false })).toMatchObject({ ok: true });
    expect(await f.run({ op: 'leaseGrant', session: 'B', ino: d.ino, exclusive: false })).toMatchObject({ ok: true });
    expect(await f.run({ op: 'leaseGrant', session: 'B', ino: d.ino, exclusive: true })).toEqual({ ok: false, errno: Errno.EAGAIN });
    // Shared leases hold nobody out at apply (the leader recalls them before a change).
    expect(await f.mknod(d.ino, 'x')).toMatchObject({ ok: true });
    await f.ok({ op: 'leaseRelease', session: 'A', ino: d.ino });
    // B alone: it may upgrade its shared lease.
    expect(await f.run({ op: 'leaseGrant', session: 'B', ino: d.ino, exclusive: true })).toMatchObject({ ok: true });
    expect(await f.run({ op: 'leaseGrant', session: 'A', ino: d.ino, exclusive: false })).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(await f.run({ op: 'leaseGrant', session: 'A', ino: (await f.file(ROOT_INO, 'file')).ino, exclusive: true })).toEqual({ ok: false, errno: Errno.ENOTDIR });
  });

  it('closeSession and the removal of the directory drop its leases', async () => {
    const d = await f.dir(ROOT_INO, 'd');
    const e = await f.dir(ROOT_INO, 'e');
    await f.ok({ op: 'leaseGrant', session: 'A', ino: d.ino, exclusive: true });
    await f.ok({ op: 'leaseGrant', session: 'A', ino: e.ino, exclusive: false });
    await f.ok({ op: 'closeSession', session: 'A' });
    expect(await f.mknod(d.ino, 'free')).toMatchObject({ ok: true });
    expect(await f.run({ op: 'leaseGrant', session: 'B', ino: e.ino, exclusive: true })).toMatchObject({ ok: true });
    // B's directory e goes away (removed by B's own batch): its lease with it.
    await f.ok({ op: 'leaseGrant', session: 'B', ino: ROOT_INO, exclusive: true });
    expect(await f.run({ op: 'batch', session: 'B', ops: [{ op: 'rmdir', parent: ROOT_INO, name: 'e', now: { sec: 80, nsec: 0 } }] })).toMatchObject({ value: { applied: 1, errno: 0 } });
    await f.ok({ op: 'leaseRelease', session: 'B', ino: ROOT_INO });
    const again = await f.dir(ROOT_INO, 'e');
    expect(await f.run({ op: 'leaseGrant', session: 'C', ino: again.ino, exclusive: true })).toMatchObject({ ok: true });
    // What is left of the lease tables: C's lease on the new e, nothing of A's or B's.
    const left = async (from: string) => (await f.kv.scan({ gte: Buffer.from(from), lt: Buffer.from(from.replace('/', '0')), limit: 100 })).map(([k]) => k);
    expect(await left('L/')).toEqual([Buffer.concat([Buffer.from('L/\x01C', 'latin1'), Buffer.from(again.ino.toString(16).padStart(16, '0'), 'hex')])]);
    expect((await left('l/')).length).toBe(1);
  });

  it('round-trip through the log encoding', async () => {
    const codec = await loadEnvelopeCodec();
    for (const command of [
      { op: 'leaseGrant', session: 's', ino: 9, exclusive: true },
      { op: 'leaseRelease', session: 's', ino: 9 },
      { op: 'batch', session: 's', ops: [mk('a', 1)] },
    ] as Command[]) {
      expect(codec.decode(codec.encode({ clientId: 'c', seq: 2, command }))).toEqual({ clientId: 'c', seq: 2, command });
    }
  });
});
