// The cluster-health commands against a real single daemon and its mount: `dfs nodes`,
// `dfs fsck` (healthy, then a chunk object deleted on disk = lost), `dfs nodes
// what-if-lost`, `dfs drain` and, where the leader serves them, `dfs status` health and
// `dfs events`. Errors are one line and exit 1.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, dfs, dfsJson, expectOneLineError, MountedFs, sh, waitFor } from './harness.js';

const MiB = 1024 * 1024;

interface NodesJson {
  leader: string;
  healthy: boolean;
  nodes: Array<{ nodeId: string; address: string; state: string; adminState: string; totalBytes: number; freeBytes: number; utilizationPct: number | null; chunkCount: number; lastHeartbeatAgoMs: number | null }>;
}
interface FsckJson {
  path: string;
  files: number;
  chunks: number;
  healthy: number;
  underProtected: number;
  lost: number;
  ok: boolean;
  problems: Array<{ path: string; state: string; chunks: Array<{ index: number; chunkIdHex: string; copies: Array<{ nodeId: string; health: string }> }> }>;
  repairs: Array<{ path: string; nodeId: string; health: string; reported: boolean }>;
}
interface StatusJson {
  healthy: boolean;
  leader: string;
  problems: string[];
  chunksKnown: boolean;
  health: { nodes: { up: number }; chunks: { lost: number } | null } | null;
  healthError: string | null;
}

describe('dfs nodes, fsck, what-if-lost, drain, status, events', () => {
  const fs = new MountedFs();
  let addr = '';
  let node = '';
  beforeAll(async () => {
    await fs.start(['--chunk-size', String(MiB)]);
    addr = fs.daemon!.grpc;
    // The node is in the view once its first heartbeat registered it.
    await waitFor('the node registers with its capacity', 30_000, async () => {
      const r = await dfs(['nodes', '--addr', addr, '--json']);
      if (r.code !== 0) return false;
      const n = (JSON.parse(r.stdout) as NodesJson).nodes;
      return n.length === 1 && n[0].totalBytes > 0;
    });
    await sh(`node ${CLI} layout set ${fs.mnt} --replicas 1`);
    await sh(`mkdir -p ${fs.mnt}/d/sub && head -c ${2.5 * MiB} /dev/urandom > ${fs.mnt}/d/big && head -c ${1.5 * MiB} /dev/urandom > ${fs.mnt}/d/sub/f`);
    await sh(`echo small > ${fs.mnt}/small && ln ${fs.mnt}/d/sub/f ${fs.mnt}/hard && ln -s d/big ${fs.mnt}/sym`);
  });
  afterAll(async () => {
    await fs.stop();
  });

  it('dfs nodes: one up node with capacity, chunks and a recent heartbeat', async () => {
    const n = await dfsJson<NodesJson>(['nodes', '--addr', addr]);
    expect(n.healthy).toBe(true);
    expect(n.nodes).toHaveLength(1);
    const x = n.nodes[0];
    node = x.nodeId;
    expect(n.leader).toBe(node);
    expect(x).toMatchObject({ address: addr, state: 'up', adminState: 'active' });
    expect(x.totalBytes).toBeGreaterThan(0);
    expect(x.utilizationPct).toBeGreaterThanOrEqual(0);
    expect(x.lastHeartbeatAgoMs).not.toBeNull();
    expect(x.lastHeartbeatAgoMs!).toBeLessThan(10_000);
    const text = await dfs(['nodes', '--addr', addr]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^NODE +ADDRESS +STATE +ZONE\/RACK +CAPACITY +USED +DATA +CHUNKS +HEARTBEAT$/m);
    expect(text.stdout).toMatch(new RegExp(`^${node} +${addr} +up +-/- +.* \\d+\\.\\ds ago$`, 'm'));
    expect(text.stdout).toMatch(/^1 node: 1 up$/m);
  });

  it('dfs fsck: every chunk healthy (mount path, --addr path, --verify, --json)', async () => {
    const r = await dfs(['fsck', fs.mnt]);
    expect(r.code, r.stderr).toBe(0);
    // big: 3 chunks, f: 2 (hard link counted once); small is inline; the symlink is not a file.
    expect(r.stdout).toBe('fsck: 3 files, 5 chunks: 5 healthy, 0 under-protected, 0 lost\n');
    expect(r.stderr).toBe(''); // no progress bar without a terminal
    expect(await dfsJson<FsckJson>(['fsck', '/', '--addr', addr])).toMatchObject({ path: '/', files: 3, chunks: 5, healthy: 5, lost: 0, ok: true, problems: [] });
    expect((await dfs(['fsck', fs.mnt, '--verify'])).code).toBe(0);
    expect(await dfsJson<FsckJson>(['fsck', path.join(fs.mnt, 'd', 'sub')])).toMatchObject({ files: 1, chunks: 2, ok: true });
  });

  it('dfs status: healthy, with chunk health', async () => {
    const s = await dfsJson<StatusJson>(['status', '--addr', addr]);
    expect(s.healthy, JSON.stringify(s)).toBe(true);
    expect(s.leader).toBe(node);
    expect(s.health, s.healthError ?? '').not.toBeNull();
    expect(s.health!.nodes.up).toBe(1);
    const text = await dfs(['status', '--addr', addr]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^cluster: healthy/);
    expect(text.stdout).toMatch(/^chunk servers: 1 up, 0 suspect, 0 dead, 0 draining, 0 drained$/m);
  });

  it('dfs nodes what-if-lost: losing the only node loses every chunked file (exit 1)', async () => {
    const w = await dfsJson<{ files: number; chunks: number; loseData: number; affected: Array<{ path: string; impact: string }> }>(['nodes', 'what-if-lost', node, '--addr', addr], 1);
    expect(w).toMatchObject({ files: 3, chunks: 5, loseData: 2 });
    const paths = w.affected.map((a) => a.path);
    expect(paths).toContain('/d/big');
    expect(paths.some((p) => p === '/d/sub/f' || p === '/hard')).toBe(true);
    expect(w.affected.every((a) => a.impact === 'lose-data')).toBe(true);
    const text = await dfs(['nodes', 'what-if-lost', node, '--addr', addr]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^LOSES DATA +\/d\/big +\(3 chunks with no copy left\)$/m);
    expect(text.stdout).toMatch(new RegExp(`^what-if-lost ${node}: 3 files, 5 chunks: 2 files would lose data, 0 would lose protection$`, 'm'));
    expectOneLineError(await dfs(['nodes', 'what-if-lost', 'nope', '--addr', addr]), /no chunk server named 'nope' in the cluster/);
  });

  it('dfs fsck: a chunk object deleted on disk is a lost file (exit 1); --repair reports it', async () => {
    const info = JSON.parse(await sh(`node ${CLI} info ${fs.mnt}/d/big --json`)) as { chunks: Array<{ chunkIdHex: string }> };
    const victim = info.chunks[1].chunkIdHex;
    const file = (await sh(`find ${fs.daemon!.dataDir} -type f -name ${victim}`)).trim();
    expect(file, 'object file of chunk 1').not.toBe('');
    await rm(file);

    const r = await dfs(['fsck', fs.mnt]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^LOST  ${fs.mnt}/d/big$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^  chunk 1 \\(${victim}\\): 0 of 1 copies ok; ${node}: missing$`, 'm'));
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('fsck: 3 files, 5 chunks: 4 healthy, 0 under-protected, 1 lost');
    const j = await dfsJson<FsckJson>(['fsck', fs.mnt], 1);
    expect(j).toMatchObject({ ok: false, lost: 1, healthy: 4 });
    expect(j.problems).toHaveLength(1);
    expect(j.problems[0]).toMatchObject({ path: `${fs.mnt}/d/big`, state: 'lost', chunks: [{ index: 1, chunkIdHex: victim, copies: [{ nodeId: node, health: 'missing' }] }] });
    // Other subtrees are still fine.
    expect((await dfs(['fsck', path.join(fs.mnt, 'd', 'sub')])).code).toBe(0);

    const rep = await dfs(['fsck', fs.mnt, '--repair']);
    expect(rep.code).toBe(1);
    expect(rep.stdout).toMatch(new RegExp(`^repair: reported the missing copy of chunk ${victim} on ${node} `, 'm'));
  });

  it('dfs status: not healthy once the leader has scanned the lost chunk', async () => {
    await waitFor('the leader scans the lost chunk', 60_000, async () => {
      const r = await dfs(['status', '--addr', addr, '--json']);
      const x = JSON.parse(r.stdout) as StatusJson;
      return r.code === 1 && x.health?.chunks?.lost === 1 && x.problems.includes('1 chunk lost');
    });
    const text = await dfs(['status', '--addr', addr]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^cluster: DEGRADED \(1 chunk lost\)/);
    expect(text.stdout).toMatch(/^chunks: \d+ total: \d+ healthy, 0 under-protected, 1 lost/m);
  });

  it('dfs drain: a bad node id is one line; draining shows in dfs nodes; --cancel undoes it', async () => {
    expectOneLineError(await dfs(['drain', 'nope', '--addr', addr]), /no chunk server named 'nope' in the cluster \(known: /);
    expectOneLineError(await dfs(['drain', node, '--addr', addr, '--wait', '--timeout', 'soon']), /--timeout: expected a duration/);
    const d = await dfs(['drain', node, '--addr', addr]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(new RegExp(`^${node}: draining; `));
    const n = await dfsJson<NodesJson>(['nodes', '--addr', addr], 1);
    expect(n.nodes[0].adminState).toBe('draining');
    expect(n.healthy).toBe(false);
    const text = await dfs(['nodes', '--addr', addr]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/ up, draining /);
    expect(text.stdout).toMatch(new RegExp(`not healthy: ${node} draining`));
    // A single node has nowhere to move its copies: the wait times out, one line.
    expectOneLineError(await dfs(['drain', node, '--addr', addr, '--wait', '--timeout', '2s']), new RegExp(`${node}: still draining after 2s`));
    const c = await dfs(['drain', node, '--cancel', '--addr', addr, '--json']);
    expect(c.code, c.stderr).toBe(0);
    expect(JSON.parse(c.stdout)).toMatchObject({ nodeId: node, state: 'active', previous: 'draining' });
    expect((await dfsJson<NodesJson>(['nodes', '--addr', addr])).nodes[0].adminState).toBe('active');
  });

  it('dfs events: the leader events', async () => {
    const r = await dfs(['events', '--addr', addr, '--json', '--limit', '50']);
    expect(r.code, r.stderr).toBe(0);
    const e = JSON.parse(r.stdout) as { leader: string; events: Array<{ seq: number; kind: string }> };
    expect(e.leader).toBe(node);
    expect(e.events.length).toBeLessThanOrEqual(50);
    // The fsck --repair above reported a bad copy: the leader's list says so.
    expect(e.events.map((x) => x.kind)).toContain('bad-copy');
    expectOneLineError(await dfs(['events', '--addr', addr, '--limit', '0']), /--limit must be an integer from 1 to 1000/);
  });
});
