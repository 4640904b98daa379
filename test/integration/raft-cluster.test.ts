// Multi-daemon Raft clusters as real processes on 127.0.0.1: replication between
// mounts, kill -9 of the leader during a cp through a follower's mount, catch-up of a
// restarted node, leadership transfer, whole-cluster restart, quorum loss in a 5-node
// cluster, and catch-up by InstallSnapshot after the leader compacted its log.
// Every daemon is started, killed and stopped by pid; every mount is detached in teardown.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { childExit, withDeadline, CLI, execFileAsync, sh, shTry, waitFor } from './harness.js';
import { RaftCluster, type RaftStatusJson } from './raft-harness.js';

const SOURCE = '/usr/include/linux';

async function sha(file: string): Promise<string> {
  return (await sh(`sha256sum < '${file}'`, { timeoutMs: 60_000 })).split(' ')[0];
}

/** diff -r SOURCE against a copy; resolves to diff's exit code and output. */
function diffTree(copy: string): Promise<{ code: number; out: string }> {
  return shTry(`diff -r ${SOURCE} '${copy}' 2>&1 | head -50`, { timeoutMs: 90_000 });
}

describe('raft cluster of 3: replication, leader crash during cp, catch-up, transfer, full restart', () => {
  const c = new RaftCluster('raft3', 3, ['node1', 'node3']);
  let copier: ChildProcess | null = null;
  let killed: string | null = null;

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

  it('a file written and closed through node1 reads back identically through node3 (inline and 20 MiB)', async () => {
    const src = path.join(c.base, 'src');
    await sh(`mkdir -p ${src} && head -c 3000 /dev/urandom > ${src}/small && head -c ${20 * 1024 * 1024} /dev/urandom > ${src}/big`);
    await sh(`cp ${src}/small ${c.mnt('node1')}/small && cp ${src}/big ${c.mnt('node1')}/big`, { timeoutMs: 60_000 });
    for (const f of ['small', 'big']) {
      const want = await sha(path.join(src, f));
      expect(await sha(path.join(c.mnt('node3'), f)), `${f} through node3`).toBe(want);
      expect(await sha(path.join(c.mnt('node1'), f)), `${f} through node1`).toBe(want);
    }
    expect((await sh(`stat -c %s ${c.mnt('node3')}/big`)).trim()).toBe(String(20 * 1024 * 1024));
  });

  it('kill -9 of the leader during a cp -r through a follower mount: new leader, cp exits 0, trees identical', async () => {
    // Make node2 (no mount) the leader so that the cp runs through a follower (node1) and
    // both mounts survive the kill.
    let { id: leader } = await c.leader();
    if (leader !== 'node2') {
      await execFileAsync(process.execPath, [CLI, 'raft', 'transfer-leader', 'node2', '--addr', c.node(leader).grpc], { timeout: 30_000 });
      await waitFor('node2 to lead', 15_000, async () => (await c.leader()).id === 'node2');
      leader = 'node2';
    }
    const leaderPid = c.node(leader).proc!.pid;
    const termBefore = (await c.status('node1')).term;

    const dst = path.join(c.mnt('node1'), 'linux');
    let copied = 0;
    let errOut = '';
    copier = spawn('cp', ['-rv', SOURCE, dst], { stdio: ['ignore', 'pipe', 'pipe'] });
    copier.stdout!.on('data', (b: Buffer) => (copied += b.toString().split('\n').length - 1));
    copier.stderr!.on('data', (b: Buffer) => (errOut = (errOut + b.toString()).slice(-20_000)));
    const cp = copier;
    const cpExit = childExit(cp);
    await waitFor('200 entries copied through node1', 60_000, () => {
      if (cp.exitCode !== null) throw new Error(`cp finished (${cp.exitCode}) before the kill, after ${copied} entries: ${errOut}`);
      return copied >= 200;
    });
    expect(cp.exitCode, 'cp still running at the kill').toBeNull();
    expect(process.kill(leaderPid, 0)).toBe(true);
    await c.kill(leader);
    killed = leader;
    const atKill = copied;

    const tKill = Date.now();
    const next = await c.leader(15_000);
    const electedMs = Date.now() - tKill;
    expect(next.id).not.toBe(leader);
    expect(next.status.term).toBeGreaterThan(termBefore);

    const code = await withDeadline('cp to finish after the leader change', 90_000, cpExit);
    copier = null;
    console.log(`cp: ${atKill} entries before the kill, new leader ${next.id} seen after ${electedMs} ms, cp done ${Date.now() - tKill} ms after the kill`);
    expect(code, `cp exit code; stderr: ${errOut}`).toBe(0);
    expect(errOut).toBe('');
    expect(atKill).toBeLessThan(copied);
    expect(await diffTree(dst), 'diff -r through node1').toEqual({ code: 0, out: '' });
    expect(await diffTree(path.join(c.mnt('node3'), 'linux')), 'diff -r through node3').toEqual({ code: 0, out: '' });
  });

  it('the killed node restarts on its data dir and catches up to the leader', async () => {
    expect(killed).not.toBeNull();
    const id = killed!;
    await c.start([id]);
    let last: RaftStatusJson | null = null;
    await waitFor(`${id} to catch up (match == leader lastIndex)`, 30_000, async () => {
      const { status } = await c.leader();
      last = status;
      const m = status.members.find((x) => x.nodeId === id);
      return m !== undefined && m.match === status.lastIndex && m.lag === 0;
    });
    expect(last!.members.map((m) => m.nodeId).sort()).toEqual(['node1', 'node2', 'node3']);
  });

  it('dfs raft transfer-leader moves leadership to another voter', async () => {
    const { id: from } = await c.leader();
    // Prefer the node that just caught up: it must be a full voter again.
    const to = from === killed ? c.nodes.map((n) => n.id).find((x) => x !== from)! : killed!;
    const { stdout } = await execFileAsync(process.execPath, [CLI, 'raft', 'transfer-leader', to, '--addr', c.node(from).grpc, '--json'], { timeout: 30_000 });
    expect(JSON.parse(stdout)).toMatchObject({ ok: true, leader: to });
    await waitFor(`status to show ${to} as leader`, 15_000, async () => {
      const s = await c.status(from);
      return s.leader === to && s.nodeId === to && s.role === 'leader';
    });
    // Writes go through the new leader.
    await sh(`echo after-transfer > ${c.mnt('node1')}/after-transfer`);
    expect(await readFile(path.join(c.mnt('node3'), 'after-transfer'), 'utf8')).toBe('after-transfer\n');
  });

  it('whole-cluster restart (SIGTERM all, start all): every file is still there and writes work', async () => {
    const src = path.join(c.base, 'src');
    await c.stop(['node1', 'node2', 'node3']);
    await c.start();
    await c.leader();
    for (const m of ['node1', 'node3']) {
      expect(await diffTree(path.join(c.mnt(m), 'linux')), `diff -r through ${m}`).toEqual({ code: 0, out: '' });
      expect(await sha(path.join(c.mnt(m), 'big')), `big through ${m}`).toBe(await sha(path.join(src, 'big')));
      expect(await sha(path.join(c.mnt(m), 'small')), `small through ${m}`).toBe(await sha(path.join(src, 'small')));
      expect(await readFile(path.join(c.mnt(m), 'after-transfer'), 'utf8')).toBe('after-transfer\n');
    }
    await sh(`head -c 200000 /dev/urandom > ${src}/after-restart && cp ${src}/after-restart ${c.mnt('node3')}/after-restart`);
    expect(await sha(path.join(c.mnt('node1'), 'after-restart'))).toBe(await sha(path.join(src, 'after-restart')));
    await sh(`mkdir ${c.mnt('node1')}/d && echo hi > ${c.mnt('node1')}/d/f && mv ${c.mnt('node1')}/d/f ${c.mnt('node1')}/d/g`);
    expect(await readFile(path.join(c.mnt('node3'), 'd', 'g'), 'utf8')).toBe('hi\n');
  });
});

describe('raft cluster of 5: survives two failures, stops writing without a quorum, recovers', () => {
  const c = new RaftCluster('raft5', 5, ['node1', 'node2']);

  beforeAll(async () => {
    await c.create();
    await c.start();
  });

  afterAll(async () => {
    await c.teardown();
  });

  it('kill -9 two followers: writes and reads through the leader mount work; a third: writes fail boundedly; restart: all works', async () => {
    // node1 (mounted) leads; node3..node5 (not mounted) are the ones to fail.
    const { id: first } = await c.leader();
    if (first !== 'node1') {
      await execFileAsync(process.execPath, [CLI, 'raft', 'transfer-leader', 'node1', '--addr', c.node(first).grpc], { timeout: 30_000 });
      await waitFor('node1 to lead', 15_000, async () => (await c.leader()).id === 'node1');
    }
    const m1 = c.mnt('node1');
    const m2 = c.mnt('node2');
    await sh(`echo one > ${m1}/one`);

    await c.kill('node4');
    await c.kill('node5');
    await sh(`echo two > ${m1}/two && mkdir ${m1}/q1 ${m1}/q2 ${m1}/dir && head -c 300000 /dev/urandom > ${m1}/dir/blob`, { timeoutMs: 30_000 });
    expect(await readFile(path.join(m1, 'two'), 'utf8')).toBe('two\n');
    expect(await readFile(path.join(m2, 'two'), 'utf8')).toBe('two\n');
    expect(await sha(path.join(m2, 'dir', 'blob'))).toBe(await sha(path.join(m1, 'dir', 'blob')));
    expect((await c.leader()).id).toBe('node1');

    await c.kill('node3');
    // No quorum: a written file must not be made durable. q1 and q2 are this mount's, so
    // their creates may be answered from its leases (decision 0012: acknowledged before
    // they commit); the sync point, fsync here, is what must fail (shells ignore close()
    // errors of `echo > f`). A request the daemon already holds cannot be interrupted
    // (FUSE waits for its answer even after SIGKILL): the bound is the router's deadline
    // (20 s), after which the call fails with EIO. Both at once: one under timeout(1), one
    // left to fail on its own; in two directories, since a create holds its parent
    // directory's lock in the kernel.
    const t0 = Date.now();
    const [bounded, plain] = await Promise.all([
      shTry(`timeout -k 2 5 sh -c 'echo x | dd of=${m1}/q1/no-quorum conv=fsync status=none'`, { timeoutMs: 45_000 }),
      shTry(`echo y | dd of=${m1}/q2/no-quorum conv=fsync status=none`, { timeoutMs: 45_000 }),
    ]);
    const elapsed = Date.now() - t0;
    expect(bounded.code, `write under timeout without a quorum: ${bounded.out}`).not.toBe(0);
    expect(plain.code, `write without a quorum: ${plain.out}`).not.toBe(0);
    expect(plain.out).toMatch(/Input\/output error/);
    expect(elapsed, 'writes without a quorum fail within the router deadline').toBeLessThan(35_000);

    await c.start(['node3', 'node4', 'node5']);
    await c.leader();
    await sh(`echo three > ${m1}/three && echo four > ${m2}/four`, { timeoutMs: 30_000 });
    for (const m of [m1, m2]) {
      expect(await readFile(path.join(m, 'one'), 'utf8')).toBe('one\n');
      expect(await readFile(path.join(m, 'two'), 'utf8')).toBe('two\n');
      expect(await readFile(path.join(m, 'three'), 'utf8')).toBe('three\n');
      expect(await readFile(path.join(m, 'four'), 'utf8')).toBe('four\n');
    }
    // Every member is back and caught up.
    let last: RaftStatusJson | null = null;
    await waitFor('all 5 members to catch up', 30_000, async () => {
      const { status } = await c.leader();
      last = status;
      return status.members.length === 5 && status.members.every((m) => m.match === status.lastIndex);
    }).catch((e: Error) => {
      throw new Error(`${e.message}; last status: ${JSON.stringify(last)}`);
    });
  });
});

describe('raft cluster of 3: a follower catches up by InstallSnapshot after the leader compacted', () => {
  const c = new RaftCluster('raftsnap', 3, ['node1', 'node3'], ['--raft-snapshot-every', '500']);

  beforeAll(async () => {
    await c.create();
    await c.start();
  });

  afterAll(async () => {
    await c.teardown();
  });

  it('node3 is down while 2000 files are written; restarted, it installs a snapshot and sees every file', async () => {
    // node3 must not lead while it is down: hand leadership away first.
    const { id: leader0 } = await c.leader();
    if (leader0 === 'node3') {
      await execFileAsync(process.execPath, [CLI, 'raft', 'transfer-leader', 'node1', '--addr', c.node('node3').grpc], { timeout: 30_000 });
      await waitFor('node1 to lead', 15_000, async () => (await c.leader()).id === 'node1');
    }
    await c.stop(['node3']);
    const { status: before } = await c.leader();
    const node3Match = before.members.find((m) => m.nodeId === 'node3')!.match;
    const takenBefore = (await c.apiStatus(before.nodeId)).raft.driver.snapshotsTaken;

    const m1 = c.mnt('node1');
    const t0 = Date.now();
    await sh(`mkdir ${m1}/many && cd ${m1}/many && for i in $(seq 1 2000); do echo "file $i" > f$i; done`, { timeoutMs: 120_000 });
    const writeMs = Date.now() - t0;

    const { id: leader, status: after } = await c.leader();
    expect(leader).toBe(before.nodeId);
    // More than two snapshot intervals since node3's last entry: the leader snapshotted
    // (and compacted its log) past everything node3 has.
    expect(after.lastIndex - node3Match, 'entries written while node3 was down').toBeGreaterThan(1000);
    expect((await c.apiStatus(leader)).raft.driver.snapshotsTaken, 'snapshots taken while node3 was down').toBeGreaterThan(takenBefore);

    await c.start(['node3']);
    await waitFor('node3 to catch up', 30_000, async () => {
      const { status } = await c.leader();
      const m = status.members.find((x) => x.nodeId === 'node3');
      return m !== undefined && m.match === status.lastIndex;
    });
    const installed = (await c.apiStatus('node3')).raft.driver.snapshotsInstalled;
    expect(installed, `snapshots installed by node3 (writes took ${writeMs} ms)`).toBeGreaterThanOrEqual(1);

    const m3 = c.mnt('node3');
    expect(Number((await sh(`ls ${m3}/many | wc -l`)).trim())).toBe(2000);
    const contents = (await sh(`cd ${m3}/many && for i in 1 2 500 999 1000 1501 2000; do cat f$i; done`)).split('\n').filter(Boolean);
    expect(contents).toEqual(['file 1', 'file 2', 'file 500', 'file 999', 'file 1000', 'file 1501', 'file 2000']);
    await sh(`echo late > ${m3}/late`);
    expect(await readFile(path.join(m1, 'late'), 'utf8')).toBe('late\n');
  });
});
