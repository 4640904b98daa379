import { describe, expect, it } from 'vitest';
import { ClientLanes } from '../../../src/meta/client-lanes.js';
import { ROOT_INO, type Command } from '../../../src/meta/types.js';
import { CALLER, errnoOf, Fixture } from './helpers.js';

const mknod = (name: string): Command => ({ op: 'mknod', parent: ROOT_INO, name, mode: 0o100644, rdev: 0, caller: CALLER, now: { sec: 1, nsec: 0 } });

describe('ClientLanes', () => {
  it('reuses one client id for sequential commands, with increasing seqs', async () => {
    const lanes = new ClientLanes('c');
    const seen: Array<[string, number]> = [];
    for (let i = 0; i < 3; i++) await lanes.run(async (id, seq) => seen.push([id, seq]));
    expect(seen).toEqual([
      ['c', 1],
      ['c', 2],
      ['c', 3],
    ]);
    expect(lanes.size).toBe(1);
  });

  it('gives concurrent commands distinct client ids, and reuses a lane once its command finished', async () => {
    const lanes = new ClientLanes('c');
    const release: Array<() => void> = [];
    const ids: Array<[string, number]> = [];
    const running = [0, 1, 2].map(() =>
      lanes.run(async (id, seq) => {
        ids.push([id, seq]);
        await new Promise<void>((r) => release.push(r));
      }),
    );
    await new Promise((r) => setImmediate(r));
    expect(new Set(ids.map(([id]) => id)).size).toBe(3);
    release.forEach((r) => r());
    await Promise.all(running);
    await lanes.run(async (id, seq) => ids.push([id, seq]));
    expect(lanes.size).toBe(3);
    expect(ids[3][1]).toBe(2);
  });

  it('a retry that lands after a later command is applied once, not refused (the dedup table keeps one seq per id)', async () => {
    const f = await Fixture.create();
    // Two commands in flight; the second reaches the store first, then the first is retried.
    const lanes = new ClientLanes('router');
    let first: { clientId: string; seq: number } | null = null;
    let unblock: () => void = () => undefined;
    const a = lanes.run(async (clientId, seq) => {
      first = { clientId, seq };
      await new Promise<void>((r) => (unblock = r));
      return f.store.executeEnvelope({ clientId, seq, command: mknod('a') });
    });
    const b = await lanes.run((clientId, seq) => f.store.executeEnvelope({ clientId, seq, command: mknod('b') }));
    expect(b.ok).toBe(true);
    unblock();
    expect((await a).ok).toBe(true);
    // The same retry applied once only.
    expect(errnoOf(await f.store.executeEnvelope({ ...first!, command: mknod('a') }))).toBe(0);
    expect(await f.names(ROOT_INO)).toEqual(['a', 'b']);
    // With one client id for both, the late one would have been refused.
    expect(errnoOf(await f.store.executeEnvelope({ clientId: 'one', seq: 2, command: mknod('c') }))).toBe(0);
    expect(errnoOf(await f.store.executeEnvelope({ clientId: 'one', seq: 1, command: mknod('d') }))).not.toBe(0);
  });
});
