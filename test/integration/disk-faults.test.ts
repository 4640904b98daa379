// Storage faults with real daemons (issue 16). Four daemons, R=3, 1 MiB chunks. Writes of a
// node's Raft log and namespace RocksDB fail with EIO while `<dataDir>/test-faults` names
// them (the daemons run with DFS_TEST_FAULTS=1, src/daemon/test-faults.ts):
// - a follower whose storage fails is not ready (/readyz 503 with the reason), shown by
//   `dfs nodes`, `dfs status`, /api/status and as a cluster event, while the cluster goes on
//   writing; once the fault clears it catches up and is ready again — same process;
// - a leader whose storage fails hands leadership over at once and recovers as a follower;
// - a fault that lasts past --storage-failed-after marks the node failed: its chunk copies
//   are re-created on the other nodes, as for a dead node; it comes back active afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dfs, dfsOk, dropCaches, sh, shTry, waitFor } from './harness.js';
import { RaftCluster } from './raft-harness.js';
import type { MetaClient } from '../../src/meta/grpc.js';
import type { ChunkRef } from '../../src/meta/types.js';

const CHUNK = 1024 * 1024;
const FAILED_AFTER_S = 4;
const EXTRA = ['--chunk-size', String(CHUNK), '--storage-failed-after', `${FAILED_AFTER_S}s`, '--dead-after', '60s'];

interface ApiStatus {
  pid: number;
  ready: boolean;
  readyReason: string;
  storageFault: { reason: string; forMs: number; attempts: number; failed: boolean } | null;
  raft: { applied: number; driver: { storageFaults: number; recoveries: number } };
}

describe('a storage fault is visible and recovers by itself', () => {
  const c = new RaftCluster('diskfault', 4, ['node1'], EXTRA);
  let client: MetaClient;
  const envBefore = process.env.DFS_TEST_FAULTS;

  const api = (id: string): Promise<ApiStatus> => c.apiStatus<ApiStatus>(id);
  const readyz = (id: string): Promise<{ status: number; body: string }> => c.readyz(id);
  const inject = (id: string, targets: string): Promise<void> => writeFile(path.join(c.node(id).dataDir, 'test-faults'), targets);
  const clear = (id: string): Promise<void> => rm(path.join(c.node(id).dataDir, 'test-faults'), { force: true });
  const eventKinds = async (nodeId: string): Promise<string[]> =>
    (await client.events({ afterSeq: 0, limit: 1000 })).events.filter((e) => e.nodeId === nodeId).map((e) => e.kind);
  /** A few small files through node1's mount: the followers must append and apply them. */
  let written = 0;
  const writeSome = async (n: number): Promise<void> => {
    const mnt = c.mnt('node1');
    for (let i = 0; i < n; i++, written++) await writeFile(path.join(mnt, `small-${written}`), `file ${written}\n`);
  };
  const caughtUp = async (id: string): Promise<boolean> => {
    const leader = await c.agreedLeader();
    const [l, s] = await Promise.all([api(leader.id), api(id)]);
    return s.raft.applied >= l.raft.applied;
  };

  beforeAll(async () => {
    process.env.DFS_TEST_FAULTS = '1';
    await c.create();
    await c.start();
    await c.leader();
    client = await c.metaClient();
    await writeFile(path.join(c.mnt('node1'), 'readable'), 'committed before the faults\n');
  });

  afterAll(async () => {
    if (envBefore === undefined) delete process.env.DFS_TEST_FAULTS;
    else process.env.DFS_TEST_FAULTS = envBefore;
    client?.close();
    for (const n of c.nodes) await clear(n.id).catch(() => undefined);
    await c.teardown();
  });

  it('a follower that cannot write is not ready, reported, and rejoins once the fault clears (same process)', async () => {
    const leader = await c.agreedLeader();
    const victim = c.nodes.map((n) => n.id).find((id) => id !== leader.id && id !== 'node1')!;
    const pid = (await api(victim)).pid;
    await inject(victim, 'log\nmeta\n');
    await waitFor(`${victim} to fault on its next write`, 20_000, async () => {
      await writeSome(2);
      return (await api(victim)).storageFault !== null;
    });
    const rz = await readyz(victim);
    expect(rz.status).toBe(503);
    expect(rz.body).toMatch(/storage fault: .*EIO/);
    const st = await api(victim);
    expect(st.ready).toBe(false);
    expect(st.storageFault!.reason).toMatch(/EIO/);

    // Reported by the leader (heartbeats): `dfs nodes`, `dfs status`, an event.
    await waitFor('the leader to report the fault', 10_000, async () => {
      const r = await dfs(['nodes', '--addr', c.node('node1').grpc, '--json']);
      const rows = (JSON.parse(r.stdout) as { nodes: Array<{ nodeId: string; storageFault: string; state: string }> }).nodes;
      return r.code === 1 && rows.some((n) => n.nodeId === victim && /EIO/.test(n.storageFault) && n.state === 'suspect');
    });
    const table = await dfs(['nodes', '--addr', c.node('node1').grpc]);
    expect(table.stdout).toMatch(new RegExp(`${victim} .*suspect, storage fault`));
    expect(table.stdout).toMatch(new RegExp(`not healthy: .*${victim} storage fault \\(`));
    const status = await dfs(['status', '--addr', c.node('node1').grpc]);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/DEGRADED/);
    expect(status.stdout).toMatch(new RegExp(victim));
    expect(await eventKinds(victim)).toContain('storage-fault');

    // The cluster goes on without it: three of four voters write.
    await writeSome(20);
    expect((await readyz('node1')).status).toBe(200);

    await clear(victim);
    await waitFor(`${victim} ready again`, 30_000, async () => (await readyz(victim)).status === 200);
    await waitFor(`${victim} caught up`, 20_000, async () => {
      await writeSome(1);
      return caughtUp(victim);
    });
    const after = await api(victim);
    expect(after.pid).toBe(pid);
    expect(after.storageFault).toBeNull();
    expect(after.raft.driver.recoveries).toBeGreaterThanOrEqual(1);
    await waitFor('the storage-recovered event', 10_000, async () => (await eventKinds(victim)).includes('storage-recovered'));
    await waitFor('dfs nodes healthy again', 10_000, async () => (await dfs(['nodes', '--addr', c.node('node1').grpc])).code === 0);
  });

  it('a leader that cannot write hands leadership over at once and recovers as a follower', async () => {
    const leader = await c.agreedLeader();
    const pid = (await api(leader.id)).pid;
    await inject(leader.id, 'log\n');
    const t0 = performance.now();
    // The next write fails on the leader; it tells its most caught-up follower to campaign.
    void writeSome(1).catch(() => undefined);
    const next = await c.agreedLeader([leader.id], 10_000);
    const handOverMs = performance.now() - t0;
    expect(next.id).not.toBe(leader.id);
    expect((await readyz(leader.id)).status).toBe(503);
    // Writes go on under the new leader (node1's mount may be the old leader's: it forwards).
    await writeSome(5);
    await clear(leader.id);
    await waitFor(`${leader.id} ready again`, 30_000, async () => (await readyz(leader.id)).status === 200);
    await waitFor(`${leader.id} caught up`, 20_000, async () => {
      await writeSome(1);
      return caughtUp(leader.id);
    });
    expect((await api(leader.id)).pid).toBe(pid);
    console.log(`leader storage fault: a new leader in ${Math.round(handOverMs)} ms`);
  });

  it('no quorum can write: reads of committed data keep working, writes fail at once with EIO', async () => {
    const mnt = c.mnt('node1');
    // The mount's node is a follower (its writes are forwarded): the leader's refusal must
    // reach the writer as an answer, not be taken for a leader that did not answer.
    if ((await c.agreedLeader()).id === 'node1') {
      await dfsOk(['raft', 'transfer-leader', 'node2', '--addr', c.node('node1').grpc]);
      await c.agreedLeader(['node1']);
    }
    const leader = await c.agreedLeader();
    expect(leader.id).not.toBe('node1');
    // The fault is injected on three of four voters (all but the leader): no quorum can write.
    const victims = c.nodes.map((n) => n.id).filter((id) => id !== leader.id);
    for (const id of victims) await inject(id, 'log\nmeta\n');
    // The faults are cleared even when an expectation fails (the next test needs a quorum).
    try {
      // Writes make them fault (the daemons see the fault file within 100 ms); the write that
      // hits it is answered (EIO) once the leader hears of the faults, not at a 20 s deadline.
      let firstMs = 0;
      let tries = 0;
      await waitFor('a write to fail on the faults', 20_000, async () => {
        const t = performance.now();
        const r = await shTry(`printf x > '${mnt}/trigger-${tries++}'`);
        firstMs = performance.now() - t;
        return r.code !== 0;
      });
      // Two of four voters that cannot write are enough to lose the quorum (the third may never get a write to fail on).
      const faulted = (await Promise.all(victims.map(async (id) => (await api(id)).storageFault !== null))).filter(Boolean).length;
      expect(faulted).toBeGreaterThanOrEqual(2);
      // The faulted followers still answer the leader's heartbeats: it keeps its lease and
      // its ReadIndex rounds, so reads are served, without waiting.
      await dropCaches();
      const t0 = performance.now();
      expect(await readFile(path.join(mnt, 'readable'), 'utf8')).toBe('committed before the faults\n');
      expect(await sh(`ls '${mnt}' | grep -c '^small-'`)).not.toBe('0\n');
      const readMs = performance.now() - t0;
      expect((await c.agreedLeader()).id).toBe(leader.id);
      // A write is refused at once (the leader knows from heartbeats who cannot write).
      const t1 = performance.now();
      const w = await shTry(`printf x > '${mnt}/during-no-quorum'`);
      const writeMs = performance.now() - t1;
      expect(w.code).not.toBe(0);
      expect(w.out).toMatch(/Input\/output error/);
      console.log(`no write quorum: the write that hit it failed in ${Math.round(firstMs)} ms; reads ${Math.round(readMs)} ms, a later write refused in ${Math.round(writeMs)} ms`);
      expect(firstMs).toBeLessThan(8_000);
      expect(readMs).toBeLessThan(5_000);
      expect(writeMs).toBeLessThan(5_000);
    } finally {
      for (const id of victims) await clear(id);
    }
    await waitFor('the followers ready again', 30_000, async () => (await Promise.all(victims.map(async (id) => (await readyz(id)).status === 200))).every(Boolean));
    await waitFor('writes accepted again', 10_000, async () => (await shTry(`printf x > '${mnt}/after-no-quorum'`)).code === 0);
  });

  it('a fault that lasts is a failed node: its copies are re-created elsewhere, as for a dead node', async () => {
    const mnt = c.mnt('node1');
    const src = path.join(c.base, 'big.src');
    await sh(`head -c ${4 * CHUNK} /dev/urandom > '${src}' && cp '${src}' '${mnt}/big'`);
    const ino = (await stat(`${mnt}/big`)).ino;
    const refs = async (): Promise<ChunkRef[]> => {
      const r = await client.getChunks(ino, 0, 1000);
      if (!r.ok) throw new Error(`getChunks errno ${r.errno}`);
      return r.value;
    };
    const leader = await c.agreedLeader();
    const victim = ['node4', 'node3', 'node2'].find((id) => id !== leader.id && id !== 'node1')!;
    // Make sure the victim holds a copy (R=3 of 4 nodes: it may not).
    await waitFor(`a chunk with a copy on ${victim}`, 5_000, async () => (await refs()).some((r) => r.placement.includes(victim)));
    await inject(victim, 'log\nmeta\n');
    await waitFor(`${victim} to fault`, 20_000, async () => {
      await writeSome(1);
      return (await api(victim)).storageFault !== null;
    });
    await waitFor(`${victim} failed (after ${FAILED_AFTER_S} s) and its copies re-created on the others`, 60_000, async () => {
      const now = await refs();
      return now.every((r) => !r.placement.includes(victim) && r.placement.filter((p) => p !== '').length === 3);
    });
    const rows = JSON.parse((await dfs(['nodes', '--addr', c.node('node1').grpc, '--json'])).stdout) as { nodes: Array<{ nodeId: string; state: string; adminState: string }> };
    const row = rows.nodes.find((n) => n.nodeId === victim)!;
    expect(row.state).toBe('failed');
    expect(row.adminState).toBe('dead');
    expect(await eventKinds(victim)).toEqual(expect.arrayContaining(['storage-failed', 'node-dead']));
    await clear(victim);
    await waitFor(`${victim} back: ready, active`, 30_000, async () => {
      if ((await readyz(victim)).status !== 200) return false;
      const v = JSON.parse((await dfs(['nodes', '--addr', c.node('node1').grpc, '--json'])).stdout) as { nodes: Array<{ nodeId: string; state: string; adminState: string }> };
      const r = v.nodes.find((n) => n.nodeId === victim)!;
      return r.state === 'up' && r.adminState === 'active';
    });
    await dropCaches();
    expect(await sh(`cmp '${src}' '${mnt}/big' && echo same`)).toMatch(/same/);
  });
});
