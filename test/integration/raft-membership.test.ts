// Membership changes of a real 3-daemon cluster under load: a fourth daemon started with
// --join is added by `dfs cluster add-member` (learner, caught up, then promoted) while a
// cp -r runs through another node's mount, and mounts its own view once it is a member;
// the leader then removes itself (`dfs cluster remove-member`, it hands leadership over
// first) while the copy still runs; the copy completes and the tree is intact through
// both mounts; the whole new cluster restarts with the new membership and every file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { childExit, dfs, execFileAsync, httpReady, shTry, waitFor, withDeadline } from './harness.js';
import { RaftCluster } from './raft-harness.js';

const SOURCE = '/usr/include/linux';

interface AdminJson {
  ok: boolean;
  errno: number;
  leader: string | null;
  message: string;
}

/** Membership calls wait for a learner to catch up: a longer deadline than the harness's default. */
const CLI_DEADLINE_MS = 90_000;

function diffTree(copy: string): Promise<{ code: number; out: string }> {
  return shTry(`diff -r ${SOURCE} '${copy}' 2>&1 | head -50`, { timeoutMs: 120_000 });
}

describe('raft membership: add a member and remove the leader under load, restart with the new membership', () => {
  const c = new RaftCluster('raftmember', 3, ['node2']);
  let copier: ChildProcess | null = null;

  beforeAll(async () => {
    await c.create();
    await c.start();
  });

  afterAll(async () => {
    if (copier && copier.exitCode === null && copier.signalCode === null) {
      copier.kill('SIGKILL');
      await withDeadline('copier exit', 10_000, childExit(copier)).catch(() => undefined);
    }
    await c.teardown();
  });

  it('rejects bad membership requests with a one-line error', async () => {
    await c.leader();
    const voter = await dfs(['cluster', 'add-member', 'node3', c.node('node3').grpc, '--addr', c.node('node1').grpc], CLI_DEADLINE_MS);
    expect(voter.code).toBe(1);
    expect(voter.stderr.trim()).toMatch(/already a voter/);
    const bad = await dfs(['cluster', 'add-member', 'node9', 'nowhere', '--addr', c.node('node1').grpc, '--json'], CLI_DEADLINE_MS);
    expect(bad.code).toBe(1);
    expect((JSON.parse(bad.stdout) as AdminJson).message).toMatch(/HOST:PORT/);
    const unknown = await dfs(['cluster', 'remove-member', 'node9', '--addr', c.node('node2').grpc], CLI_DEADLINE_MS);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim()).toMatch(/not a member/);
  });

  it('adds a joining node as learner then voter, and removes the leader, while cp -r runs', async () => {
    // node1 leads, so that removing the leader is what the test exercises.
    const first = await c.leader();
    if (first.id !== 'node1') {
      const t = await dfs(['raft', 'transfer-leader', 'node1', '--addr', c.node('node2').grpc], CLI_DEADLINE_MS);
      expect(t.code, t.stderr).toBe(0);
    }
    await waitFor('node1 to lead', 20_000, async () => (await c.leader()).id === 'node1');

    copier = spawn('cp', ['-r', SOURCE, `${c.mnt('node2')}/copy`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let copyErr = '';
    copier.stderr!.on('data', (d: Buffer) => (copyErr += d.toString()));
    const copied = childExit(copier);

    // A fourth node joins: not a member until add-member, and it mounts once it is one.
    const n4 = await c.addNode('node4', { mount: true });
    await c.start(['node4']);
    const before = await c.status('node1');
    expect(before.members.map((m) => m.nodeId).sort()).toEqual(['node1', 'node2', 'node3']);

    const add = await dfs(['cluster', 'add-member', 'node4', n4.grpc, '--addr', c.node('node3').grpc, '--json'], CLI_DEADLINE_MS);
    expect(add.code, add.stdout + add.stderr).toBe(0);
    expect((JSON.parse(add.stdout) as AdminJson).ok).toBe(true);
    const added = await c.status('node1');
    const m4 = added.members.find((m) => m.nodeId === 'node4');
    expect(m4?.role, JSON.stringify(added)).toBe('follower');
    expect(m4?.address).toBe(n4.grpc);
    // Every member knows the new one's address (it travelled with the membership change).
    for (const id of ['node2', 'node3', 'node4']) {
      const s = await c.status(id);
      expect(s.members.find((m) => m.nodeId === 'node4')?.address, `${id}'s view`).toBe(n4.grpc);
    }

    // The leader removes itself: it hands leadership to another voter first.
    const rm = await dfs(['cluster', 'remove-member', 'node1', '--addr', c.node('node1').grpc, '--json'], CLI_DEADLINE_MS);
    expect(rm.code, rm.stdout + rm.stderr).toBe(0);
    const after = await c.status('node2');
    expect(after.members.map((m) => m.nodeId).sort()).toEqual(['node2', 'node3', 'node4']);
    expect(after.leader).not.toBe('node1');

    expect(await withDeadline('cp -r', 240_000, copied), copyErr).toBe(0);
    const viaNode2 = await diffTree(`${c.mnt('node2')}/copy`);
    expect(viaNode2.code, viaNode2.out).toBe(0);
    expect(viaNode2.out).toBe('');
    // node4 mounted its view once it became a member.
    await waitFor('node4 to mount after joining', 30_000, async () => (await shTry(`mountpoint -q '${c.mnt('node4')}'`)).code === 0);
    const viaNode4 = await diffTree(`${c.mnt('node4')}/copy`);
    expect(viaNode4.out).toBe('');

    // A write with node1 gone from the group still commits (2 of 3 remaining voters suffice).
    await c.stop(['node1']);
    await execFileAsync('sh', ['-c', `echo after-removal > '${c.mnt('node4')}/after'`], { timeout: 30_000 });
    expect((await execFileAsync('cat', [`${c.mnt('node2')}/after`], { timeout: 30_000 })).stdout).toBe('after-removal\n');
  });

  it('restarts the new membership with every file (node1 stays out)', async () => {
    await c.stop(['node2', 'node3', 'node4']);
    await c.start(['node2', 'node3', 'node4']);
    const { status } = await c.leader(30_000);
    expect(status.members.map((m) => m.nodeId).sort()).toEqual(['node2', 'node3', 'node4']);
    expect(status.members.find((m) => m.nodeId === 'node4')?.address).toBe(c.node('node4').grpc);
    await waitFor('node4 to mount after restart', 30_000, async () => (await shTry(`mountpoint -q '${c.mnt('node4')}'`)).code === 0 && (await httpReady(c.node('node4').proc!.http)));
    const tree = await diffTree(`${c.mnt('node4')}/copy`);
    expect(tree.out).toBe('');
    expect((await execFileAsync('cat', [`${c.mnt('node2')}/after`], { timeout: 30_000 })).stdout).toBe('after-removal\n');
  });
});
