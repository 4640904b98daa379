// FUSE INTERRUPT honoured (issue 11): a process blocked on a namespace call that cannot
// complete (two of three voters frozen, no quorum) dies at once when killed, instead of
// sitting in uninterruptible sleep until the call's deadline. A process that merely
// handles a signal is not answered EINTR (most programs do not expect it from mkdir),
// but still dies at once if it is killed afterwards. The mount keeps working, and the
// handle an interrupted create may still have opened is closed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { RaftCluster } from './raft-harness.js';
import { childExit, sh, waitFor, withDeadline } from './harness.js';

/** Sum of a metric over the series whose labels contain `labels` (all series when empty). */
async function metricSum(http: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://${http}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labels && !line.includes(labels)) continue;
    sum += Number(line.split(' ').pop());
  }
  return sum;
}

/** Whether `pid` sits inside a system call (not running user code) right now. */
async function inSyscall(pid: number): Promise<boolean> {
  try {
    const first = (await readFile(`/proc/${pid}/syscall`, 'utf8')).split(' ')[0];
    return /^\d+$/.test(first.trim());
  } catch {
    return false;
  }
}

function gone(c: ChildProcess): boolean {
  return c.exitCode !== null || c.signalCode !== null;
}

/** Blocked means: alive, in a system call, for a while (a mkdir takes milliseconds). */
async function waitBlocked(c: ChildProcess, what: string): Promise<void> {
  const since = Date.now();
  await waitFor(`${what} to block`, 10_000, async () => {
    if (gone(c)) throw new Error(`${what} exited (${c.exitCode ?? c.signalCode}) instead of blocking`);
    return Date.now() - since >= 1000 && (await inSyscall(c.pid!));
  });
}

/** Kills `c` with SIGKILL and returns how long it took to be gone (polled, not slept). */
async function killAndTime(c: ChildProcess): Promise<number> {
  const start = Date.now();
  c.kill('SIGKILL');
  await withDeadline('the killed process to be gone', 20_000, childExit(c));
  return Date.now() - start;
}

describe('FUSE INTERRUPT: a process blocked on a namespace call without quorum can be killed', () => {
  const cluster = new RaftCluster('intr', 3, ['node1']);
  const frozen: number[] = [];
  const children: ChildProcess[] = [];
  let mnt = '';
  let http = '';

  const freeze = (pid: number) => {
    process.kill(pid, 'SIGSTOP');
    frozen.push(pid);
  };
  const thaw = () => {
    for (const pid of frozen.splice(0)) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
  };

  beforeAll(async () => {
    await cluster.create();
    await cluster.start();
    await cluster.leader();
    mnt = cluster.mnt('node1');
    http = cluster.node('node1').proc!.http;
  });

  afterAll(async () => {
    thaw();
    for (const c of children) if (!gone(c)) c.kill('SIGKILL');
    await Promise.all(children.map((c) => childExit(c)));
    await cluster.teardown();
  });

  it('kills blocked mkdir and create at once; a handled signal is not EINTR; the mount works after', async () => {
    // `before` is made by this mount, so it comes with this mount's lease and creates in it
    // would be answered from memory (decision 0012); a chmod gives the lease back, so the
    // create below needs the leader like any change in a directory nobody leases.
    await sh(`mkdir ${mnt}/before && echo x > ${mnt}/before/f && chmod 755 ${mnt}/before`);
    const eintrBefore = await metricSum(http, 'dfs_fuse_ops_total', 'result="4"');

    // Two of three voters frozen: no namespace call can commit (or be read linearizably).
    for (const id of ['node2', 'node3']) freeze(cluster.node(id).proc!.pid);

    const spawnChild = (cmd: string, args: string[]) => {
      const c = spawn(cmd, args, { stdio: 'ignore' });
      children.push(c);
      return c;
    };
    const mkdir = spawnChild('mkdir', [path.join(mnt, 'blocked-dir')]);
    const create = spawnChild('python3', ['-c', `open(${JSON.stringify(path.join(mnt, 'before', 'blocked-file'))}, 'w')`]);
    // Handles SIGUSR1; calls mkdir(2) through ctypes so that an EINTR would not be retried
    // (Python retries EINTR itself) but end the process with status 3.
    const handler = spawnChild('python3', [
      '-c',
      [
        'import ctypes, ctypes.util, errno, os, signal, sys',
        'signal.signal(signal.SIGUSR1, lambda *a: None)',
        "libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)",
        `r = libc.mkdir(${JSON.stringify(path.join(mnt, 'handler-dir'))}.encode(), 0o755)`,
        'sys.exit(3 if r != 0 and ctypes.get_errno() == errno.EINTR else 0)',
      ].join('\n'),
    ]);
    await Promise.all([waitBlocked(mkdir, 'mkdir'), waitBlocked(create, 'the create'), waitBlocked(handler, 'the signal-handling mkdir')]);

    // A caught signal interrupts the request in the kernel, but the answer waits for the call.
    handler.kill('SIGUSR1');
    const killedMs = await Promise.all([killAndTime(mkdir), killAndTime(create)]);
    expect(Math.max(...killedMs), `kill took ${killedMs.join(', ')} ms`).toBeLessThan(2000);
    expect(mkdir.signalCode).toBe('SIGKILL');
    expect(create.signalCode).toBe('SIGKILL');
    await waitFor('the EINTR answers to be counted', 5_000, async () => (await metricSum(http, 'dfs_fuse_ops_total', 'result="4"')) - eintrBefore >= 2);
    expect(gone(handler), 'the signal-handling process was answered though not dying').toBe(false);
    expect((await metricSum(http, 'dfs_fuse_ops_total', 'result="4"')) - eintrBefore).toBe(2);

    // The kernel sends one INTERRUPT per request: a kill that follows a handled signal is
    // noticed by looking at the caller again.
    const handlerKilledMs = await killAndTime(handler);
    expect(handlerKilledMs, 'kill after a handled signal').toBeLessThan(2000);
    expect(handler.signalCode).toBe('SIGKILL');

    thaw();
    await cluster.leader(30_000);
    // The calls that were cut short may still commit: their names exist or not, whole.
    await waitFor('the mount to work again', 30_000, async () => (await sh(`mkdir -p ${mnt}/after && echo ok > ${mnt}/after/f && cat ${mnt}/after/f`).catch(() => '')) === 'ok\n');
    const listing = (await sh(`ls -A ${mnt}`)).split('\n').filter(Boolean).sort();
    expect(listing.filter((n) => !['blocked-dir', 'handler-dir'].includes(n))).toEqual(['after', 'before']);
    for (const name of listing) await sh(`stat ${mnt}/${name} > /dev/null && ls -la ${mnt}/${name} > /dev/null`);
    expect(await sh(`cat ${mnt}/before/f`)).toBe('x\n');
    const files = (await sh(`ls -A ${mnt}/before`)).split('\n').filter(Boolean).sort();
    expect(files.filter((n) => n !== 'blocked-file')).toEqual(['f']);
    // An interrupted create that committed anyway left no handle open behind it (nothing
    // else holds a file open on this mount now).
    await waitFor('no open handles', 30_000, async () => (await metricSum(http, 'dfs_client_open_handles')) === 0);
    // And the names it made can be used as usual.
    await sh(`rm -rf ${mnt}/blocked-dir ${mnt}/handler-dir ${mnt}/before/blocked-file`);
    await sh(`mkdir ${mnt}/blocked-dir && rmdir ${mnt}/blocked-dir`);
  });
});
