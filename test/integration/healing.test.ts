// Self-healing with real daemons (issue #6): 5 daemons, R=3 and ec 2+2, 1 MiB chunks,
// --dead-after 3s. kill -9 of a holder: after the timeout every chunk is back to full
// protection on live nodes (replicas copied, EC shards rebuilt); the node comes back as
// active. `drain` empties a node, which then shows as drained. A new daemon joins:
// copies move until no node is above 1.2 × the mean utilization. A copy flipped on disk
// is found by scrub and replaced from a good one. Deleting the files gives the space
// back on every node (GC of deleted chunks, orphan GC of stale copies). No file's bytes
// change while they exist.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { CLI, dropCaches, execFileAsync, flipByte, sh, waitFor } from './harness.js';
import { RaftCluster } from './raft-harness.js';
import { chunkObjectPath } from '../../src/chunks/store.js';
import type { MetaClient } from '../../src/meta/grpc.js';
import type { ChunkRef } from '../../src/meta/types.js';

const CHUNK = 1024 * 1024;
const EXTRA = ['--chunk-size', String(CHUNK), '--dead-after', '3s', '--orphan-grace', '2s', '--inventory-interval', '1s', '--scrub-rate', '64', '--scrub-pause', '1s'];

async function sha(file: string): Promise<string> {
  return (await sh(`sha256sum < '${file}'`, { timeoutMs: 120_000 })).split(' ')[0];
}

describe('self-healing on 5 daemons', () => {
  const c = new RaftCluster('heal5', 5, ['node1'], EXTRA);
  const files: Array<{ path: string; sha: string }> = [];
  let client: MetaClient;

  const refsOf = async (file: string): Promise<ChunkRef[]> => {
    const r = await client.getChunks((await stat(file)).ino, 0, 10_000);
    if (!r.ok) throw new Error(`getChunks errno ${r.errno}`);
    return r.value;
  };
  const allRefs = async (): Promise<ChunkRef[]> => (await Promise.all(files.map((f) => refsOf(f.path)))).flat();
  const health = () => client.healthStatus();
  const intact = async (): Promise<void> => {
    await dropCaches();
    for (const f of files) expect(await sha(f.path), f.path).toBe(f.sha);
  };

  beforeAll(async () => {
    await c.create();
    await c.start();
    await c.leader();
    client = await c.metaClient();
    const src = path.join(c.base, 'src');
    await sh(`head -c ${24 * CHUNK + 5} /dev/urandom > '${src}'`);
    const mnt = c.mnt('node1');
    await sh(`cp '${src}' '${mnt}/r3'`);
    await sh(`mkdir '${mnt}/ec'`);
    const now = { sec: Math.floor(Date.now() / 1000), nsec: 0 };
    const lay = await client.execute({ op: 'setlayout', ino: (await stat(`${mnt}/ec`)).ino, layout: { kind: 'ec', k: 2, m: 2 }, now });
    expect(lay.ok).toBe(true);
    await sh(`cp '${src}' '${mnt}/ec/f'`);
    const want = await sha(src);
    files.push({ path: `${mnt}/r3`, sha: want }, { path: `${mnt}/ec/f`, sha: want });
  });

  afterAll(async () => {
    client?.close();
    await c.teardown();
  });

  it('re-creates the copies of a killed node on live nodes after the dead-node timeout', async () => {
    const refs = await allRefs();
    // A holder other than the mount's node.
    const victim = ['node5', 'node4', 'node3', 'node2'].find((n) => refs.some((r) => r.placement.includes(n)))!;
    await c.kill(victim);
    await waitFor('every chunk back to full protection without the dead node', 90_000, async () => {
      const now = await allRefs();
      return now.every((r) => !r.placement.includes(victim) && r.placement.filter((p) => p !== '').length === (r.ec ? 4 : 3) && new Set(r.placement).size === r.placement.length);
    });
    await waitFor('a complete scan that finds nothing under-protected', 30_000, async () => {
      const h = await health();
      return h.scanPasses > 0 && h.chunksUnderProtected === 0 && h.chunksLost === 0 && Number(h.repairsDone) > 0;
    });
    const h = await health();
    expect(h.nodesDead).toBe(1);
    const events = await client.events({ afterSeq: 0, limit: 1000 });
    const kinds = events.events.map((e) => e.kind);
    expect(kinds).toContain('node-dead');
    expect(kinds).toContain('repair-finished');
    await intact();
    // Back: the node is active again (its stale copies are orphans for the inventory GC).
    await c.start([victim]);
    await waitFor(`${victim} active again`, 30_000, async () => (await client.clusterView()).nodes.some((n) => n.nodeId === victim && n.adminState === 'active' && n.state === 'up'));
  });

  it('drain moves every copy off a node, which then shows as drained', async () => {
    const target = 'node2';
    const r = await client.execute({ op: 'setNodeState', nodeId: target, state: 'draining' });
    expect(r.ok).toBe(true);
    await waitFor(`${target} drained`, 120_000, async () => {
      const v = await client.clusterView();
      return v.nodes.some((n) => n.nodeId === target && n.adminState === 'drained');
    });
    for (const ref of await allRefs()) expect(ref.placement, `chunk ${ref.chunkId}`).not.toContain(target);
    await intact();
  });

  it('a new node joins and copies move until no node is above 1.2 × the mean', async () => {
    const n6 = await c.addNode('node6');
    await c.start(['node6']);
    await execFileAsync(process.execPath, [CLI, 'cluster', 'add-member', 'node6', n6.grpc, '--addr', c.node('node1').grpc], { timeout: 120_000 });
    // Every daemon shares this machine's disk (same capacity), so utilization is
    // proportional to the bytes of the copies the namespace places on each node.
    const spread = async (): Promise<{ max: number; mean: number; n6: number }> => {
      const v = await client.clusterView();
      const active = v.nodes.filter((n) => n.adminState === 'active' && n.state === 'up').map((n) => n.nodeId);
      const bytes = new Map(active.map((id) => [id, 0]));
      for (const r of await allRefs()) {
        for (const p of r.placement) if (bytes.has(p)) bytes.set(p, bytes.get(p)! + (r.ec ? r.ec.shardBytes : r.sizeBytes));
      }
      const u = [...bytes.values()];
      const mean = u.reduce((a, b) => a + b, 0) / u.length;
      return { max: Math.max(...u), mean, n6: bytes.get('node6') ?? 0 };
    };
    await waitFor('utilization within 1.2 × the mean with node6 holding copies', 180_000, async () => {
      const s = await spread();
      return s.n6 > 0 && s.max <= 1.2 * s.mean * 1.02;
    });
    const h = await health();
    expect(Number(h.rebalanceMovesDone)).toBeGreaterThan(0);
    for (const ref of await allRefs()) expect(new Set(ref.placement.filter((p) => p !== '')).size, `chunk ${ref.chunkId}`).toBe(ref.ec ? 4 : 3);
    await intact();
  });

  it('scrub finds a copy flipped on disk and the healer replaces it from a good one', async () => {
    const refs = await refsOf(files[0].path);
    const ref = refs.find((r) => r.placement.some((p) => p !== 'node2'))!;
    const holder = ref.placement.find((p) => p !== 'node2')!;
    await flipByte(chunkObjectPath(path.join(c.node(holder).dataDir, 'chunks'), ref.chunkId));
    await waitFor(`chunk ${ref.chunkId} re-created away from the bad copy on ${holder}`, 60_000, async () => {
      const now = (await refsOf(files[0].path)).find((r) => r.chunkId === ref.chunkId);
      return now !== undefined && !now.placement.includes(holder) && new Set(now.placement).size === 3;
    });
    const kinds = (await client.events({ afterSeq: 0, limit: 1000 })).events.map((e) => e.kind);
    // The holder's scrub reported it; the leader's list says so.
    expect(kinds).toContain('bad-copy');
    await intact();
  });

  it('deleting the files gives the space back on every node', async () => {
    for (const f of files) await sh(`rm '${f.path}'`);
    await waitFor('chunk bytes on every node back to ~0', 90_000, async () => {
      const v = await client.clusterView();
      return v.nodes.every((n) => n.state !== 'up' || Number(n.usedBytes) < 64 * 1024);
    });
  });
});
