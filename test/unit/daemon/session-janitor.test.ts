// The leader's cleanup of what clients leave behind: dedup records of clients not heard
// from (clientsExpire keeps a record whose seq moved on) and the handles and inode ranges
// of silent sessions (closeSession), never before a new leader has led for the idle time.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { SessionJanitor, type JanitorDeps } from '../../../src/daemon/session-janitor.js';
import type { MetaStore } from '../../../src/meta/store.js';
import { Errno, ROOT_INO, type Command } from '../../../src/meta/types.js';
import { CALLER, Fixture } from '../meta/helpers.js';

const log = pino({ level: 'silent' });
const TIMINGS = { passMs: 3_600_000, sessionIdleMs: 1_000, clientIdleMs: 2_000 };

async function rows(store: MetaStore): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let cursor: Buffer | null = null;
  for (let i = 0; i < 100; i++) {
    const page: Awaited<ReturnType<MetaStore['scanClients']>> = await store.scanClients(cursor, 2);
    for (const c of page.clients) out.set(c.clientId, c.seq);
    if (page.next === null) return out;
    cursor = page.next;
  }
  throw new Error('scanClients did not end');
}

/** A janitor over a real MetaStore (MemKV), with a clock and leadership the test moves. */
function janitorOver(f: Fixture, renewals = new Map<string, number>()): { j: SessionJanitor; clock: { now: number; leader: boolean }; proposed: Command[] } {
  const clock = { now: 0, leader: true };
  const proposed: Command[] = [];
  const deps: JanitorDeps = {
    isLeader: () => clock.leader,
    now: () => clock.now,
    lastRenewal: (s) => renewals.get(s),
    sessionsHolding: (limit) => f.store.sessionsHolding(limit),
    scanClients: (cursor, limit) => f.store.scanClients(cursor, limit),
    propose: async (command) => {
      proposed.push(command);
      return (await f.store.execute(command)).ok;
    },
    log,
  };
  return { j: new SessionJanitor(deps, TIMINGS), clock, proposed };
}

describe('dedup records expire', () => {
  it('clientsExpire drops a record only while its seq is the one named', async () => {
    const f = await Fixture.create();
    const mk = (name: string): Command => ({ op: 'mknod', parent: ROOT_INO, name, mode: 0o100644, rdev: 0, caller: CALLER, now: f.now() });
    expect((await f.store.executeEnvelope({ clientId: 'a', seq: 1, command: mk('a1') })).ok).toBe(true);
    expect((await f.store.executeEnvelope({ clientId: 'b', seq: 1, command: mk('b1') })).ok).toBe(true);
    expect((await f.store.executeEnvelope({ clientId: 'b', seq: 2, command: mk('b2') })).ok).toBe(true);
    expect(await rows(f.store)).toEqual(new Map([['a', 1], ['b', 2]]));

    // b moved on to seq 2 after the leader looked (seq 1): its record stays.
    await f.ok({ op: 'clientsExpire', clients: [{ clientId: 'a', seq: 1 }, { clientId: 'b', seq: 1 }, { clientId: 'never', seq: 3 }] });
    expect(await rows(f.store)).toEqual(new Map([['b', 2]]));
    // b's retry is still answered from its record (EEXIST would mean it applied again).
    expect((await f.store.executeEnvelope({ clientId: 'b', seq: 2, command: mk('b2') })).ok).toBe(true);
    // Bad input is refused whole.
    expect(await f.run({ op: 'clientsExpire', clients: [{ clientId: '', seq: 1 }] })).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(await f.run({ op: 'clientsExpire', clients: Array.from({ length: 1025 }, (_, i) => ({ clientId: `c${i}`, seq: 1 })) })).toEqual({ ok: false, errno: Errno.EINVAL });
  });

  it('the janitor expires clients not seen for clientIdleMs, counting from when it became leader', async () => {
    const f = await Fixture.create();
    for (const id of ['old', 'busy']) {
      expect((await f.store.executeEnvelope({ clientId: id, seq: 1, command: { op: 'mkdir', parent: ROOT_INO, name: id, mode: 0o755, caller: CALLER, now: f.now() } })).ok).toBe(true);
    }
    const { j, clock } = janitorOver(f);
    await j.pass(); // leads from t=0
    clock.now = 1_500;
    j.clientSeen('busy');
    clock.now = 2_000; // exactly the idle time since it leads: nothing yet
    await j.pass();
    expect(await rows(f.store)).toEqual(new Map([['old', 1], ['busy', 1]]));
    clock.now = 2_001;
    await j.pass();
    expect(await rows(f.store)).toEqual(new Map([['busy', 1]]));
    clock.now = 3_600;
    await j.pass();
    expect(await rows(f.store)).toEqual(new Map());
    expect(j.counters.clientsExpired).toBe(2);
    expect(j.remembered).toBe(0);
    await j.close();
  });

  it('a node that stops leading forgets what it saw and starts counting again when it leads again', async () => {
    const f = await Fixture.create();
    expect((await f.store.executeEnvelope({ clientId: 'x', seq: 1, command: { op: 'allocChunkIds', count: 1 } })).ok).toBe(true);
    const { j, clock, proposed } = janitorOver(f);
    await j.pass();
    clock.leader = false;
    clock.now = 10_000;
    await j.pass();
    clock.leader = true;
    clock.now = 11_000;
    await j.pass(); // leads again from 11 000
    clock.now = 12_900;
    await j.pass();
    expect(proposed).toEqual([]);
    clock.now = 13_001;
    await j.pass();
    expect(proposed).toEqual([{ op: 'clientsExpire', clients: [{ clientId: 'x', seq: 1 }] }]);
    await j.close();
  });
});

describe('silent sessions are closed', () => {
  it('sessionsHolding names every session with handles or inode ranges, one seek each', async () => {
    const f = await Fixture.create();
    const file = await f.file(ROOT_INO, 'f');
    await f.ok({ op: 'handles', session: 's1', items: [{ open: true, ino: file.ino, handle: 1 }, { open: true, ino: file.ino, handle: 2 }] });
    await f.ok({ op: 'handles', session: 's2', items: [{ open: true, ino: file.ino, handle: 1 }] });
    await f.ok({ op: 'allocInodes', session: 's3', count: 16 });
    expect(await f.store.sessionsHolding(100)).toEqual(new Set(['s1', 's2', 's3']));
    expect((await f.store.sessionsHolding(1)).size).toBe(1);
    await f.ok({ op: 'closeSession', session: 's1' });
    expect(await f.store.sessionsHolding(100)).toEqual(new Set(['s2', 's3']));
  });

  it('a session not renewed for sessionIdleMs loses its handles (an unlinked file it held is reclaimed); a renewed one keeps them', async () => {
    const f = await Fixture.create();
    const gone = await f.file(ROOT_INO, 'gone');
    const kept = await f.file(ROOT_INO, 'kept');
    await f.ok({ op: 'handles', session: 'dead', items: [{ open: true, ino: gone.ino, handle: 7 }] });
    await f.ok({ op: 'handles', session: 'alive', items: [{ open: true, ino: kept.ino, handle: 8 }] });
    await f.ok({ op: 'unlink', parent: ROOT_INO, name: 'gone', now: f.now() });
    await f.ok({ op: 'unlink', parent: ROOT_INO, name: 'kept', now: f.now() });
    // Both unlinked inodes live on while open.
    expect((await f.store.getattr(gone.ino)).ok).toBe(true);
    expect((await f.store.getattr(kept.ino)).ok).toBe(true);

    const renewals = new Map<string, number>();
    const { j, clock, proposed } = janitorOver(f, renewals);
    await j.pass();
    clock.now = 900;
    renewals.set('alive', 900);
    clock.now = 1_000;
    await j.pass();
    expect(proposed).toEqual([]); // not led for the idle time yet
    clock.now = 1_500;
    await j.pass();
    expect(proposed).toEqual([{ op: 'closeSession', session: 'dead' }]);
    expect((await f.store.getattr(gone.ino)).ok).toBe(false);
    expect((await f.store.getattr(kept.ino)).ok).toBe(true);
    expect(await f.store.sessionsHolding(100)).toEqual(new Set(['alive']));
    expect(j.counters.sessionsClosed).toBe(1);
    await j.close();
  });
});
