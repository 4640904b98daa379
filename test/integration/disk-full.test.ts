// Space is admitted, not discovered (issue 16, decision 0014). Three daemons whose data
// dirs are small tmpfs mounts, each keeping a 24 MiB reserve (--reserve), R=3, 1 MiB chunks:
// - one node's disk filled from outside dfs: that node is not ready ("disk full"), `dfs nodes`
//   and `dfs status` say so, new data anywhere gets ENOSPC (inline files too) while reads,
//   deletes and truncates work, and its Raft log and namespace never fail a write; freeing
//   the space brings it back (same process) and writes resume;
// - every disk filled through the mount: the writer gets ENOSPC (a large file, then small
//   inline ones), statfs shows the space as used, reads of old files work, deleting frees the
//   space and writes resume; no daemon exits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dfs, execFileAsync, sh, shTry, waitFor } from './harness.js';
import { alive, RaftCluster } from './raft-harness.js';

const CHUNK = 1024 * 1024;
const DISK_MB = 256;
// A write that fails with ENOSPC leaves the chunks it had uploaded unreferenced: the orphan
// GC (grace 1 h by default) reclaims them; here within seconds.
const EXTRA = ['--chunk-size', String(CHUNK), '--reserve', '24m', '--orphan-grace', '5s', '--inventory-interval', '1s'];

interface ApiStatus {
  pid: number;
  readyReason: string;
  storageFault: unknown;
  capacity: { logFreeBytes: number; reserveBytes: number; spaceLow: boolean };
}

describe('a full disk: space is admitted, not discovered', () => {
  const c = new RaftCluster('diskfull', 3, ['node1'], EXTRA);
  const disks: string[] = [];
  let mnt = '';

  const api = (id: string): Promise<ApiStatus> => c.apiStatus<ApiStatus>(id);
  const readyz = (id: string): Promise<{ status: number; body: string }> => c.readyz(id);
  const filler = (id: string): string => path.join(c.node(id).dataDir, 'filler');
  /** Fill a node's disk from outside dfs, down to `leaveMb`. */
  const fill = async (id: string, leaveMb: number): Promise<void> => {
    const avail = Number((await sh(`df --output=avail -B1M '${c.node(id).dataDir}' | tail -1`)).trim());
    await sh(`fallocate -l ${Math.max(1, avail - leaveMb)}M '${filler(id)}'`);
  };
  const tryWrite = (file: string, text: string): Promise<{ code: number; out: string }> => shTry(`printf '%s' '${text}' > '${file}'`);
  const everyoneAlive = (): void => {
    for (const n of c.nodes) expect(alive(n.proc), `${n.id} exited: ${n.proc?.output() ?? ''}`).toBe(true);
  };

  beforeAll(async () => {
    await c.create();
    for (const n of c.nodes) {
      await mkdir(n.dataDir, { recursive: true });
      await sh(`mount -t tmpfs -o size=${DISK_MB}m dfs-test-full '${n.dataDir}'`);
      disks.push(n.dataDir);
    }
    await c.start();
    await c.leader();
    mnt = c.mnt('node1');
    await writeFile(path.join(mnt, 'old-small'), 'written before the disks filled\n');
    await sh(`head -c ${3 * CHUNK + 7} /dev/urandom > '${mnt}/old-big'`);
  });

  afterAll(async () => {
    for (const n of c.nodes) await rm(filler(n.id), { force: true }).catch(() => undefined);
    await c.stop(c.liveIds()).catch(() => undefined);
    for (const n of c.nodes) if (n.mount) await execFileAsync('fusermount3', ['-uz', n.mount]).catch(() => undefined);
    for (const d of disks) await execFileAsync('umount', ['-l', d]).catch(() => undefined);
    await c.teardown();
  });

  it('one node full: not ready and reported, new data gets ENOSPC, deletes work, and it comes back when space is freed', async () => {
    const victim = 'node3';
    const pid = (await api(victim)).pid;
    await writeFile(path.join(mnt, 'to-delete'), 'x'.repeat(1000));
    await fill(victim, 4);
    await waitFor(`${victim} not ready: disk full`, 10_000, async () => (await readyz(victim)).status === 503);
    expect((await readyz(victim)).body).toMatch(/disk full: .*below the reserve/);
    await waitFor('the leader to refuse new data', 10_000, async () => (await tryWrite(path.join(mnt, 'refused'), 'x')).code !== 0);
    const r = await tryWrite(path.join(mnt, 'refused-inline'), 'small');
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/No space left on device/);
    const nodes = await dfs(['nodes', '--addr', c.node('node1').grpc]);
    expect(nodes.code).toBe(1);
    expect(nodes.stdout).toMatch(new RegExp(`${victim} .*disk full`));
    const status = await dfs(['status', '--addr', c.node('node1').grpc]);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/DEGRADED/);
    // Reads, deletes, truncates and attribute changes go on: a user can make room.
    expect(await readFile(path.join(mnt, 'old-small'), 'utf8')).toBe('written before the disks filled\n');
    await sh(`truncate -s 10 '${mnt}/old-big' && truncate -s ${3 * CHUNK + 7} '${mnt}/old-big' && touch '${mnt}/old-small'`);
    await rm(path.join(mnt, 'to-delete'));
    // Its log and namespace kept writing all along (the reserve and preallocation hold them).
    expect((await api(victim)).storageFault).toBeNull();

    await rm(filler(victim));
    await waitFor(`${victim} ready again`, 10_000, async () => (await readyz(victim)).status === 200);
    await waitFor('writes accepted again', 10_000, async () => (await tryWrite(path.join(mnt, 'after-free'), 'ok')).code === 0);
    expect(await readFile(path.join(mnt, 'after-free'), 'utf8')).toBe('ok');
    expect((await api(victim)).pid).toBe(pid);
    everyoneAlive();
  });

  it('every disk full: ENOSPC for large and inline files, statfs shows it used, reads work, deletes free space and writes resume', async () => {
    // A large file through the mount until the disks are full: the writer sees ENOSPC.
    const big = await shTry(`dd if=/dev/urandom of='${mnt}/huge' bs=1M count=${DISK_MB} conv=fsync status=none`, { timeoutMs: 180_000 });
    expect(big.code).not.toBe(0);
    expect(big.out).toMatch(/No space left on device/);
    // The write stopped on the first node that reached its reserve (plus a chunk): with R=3 on three nodes, one is enough.
    await waitFor('a node below its reserve (heartbeats)', 10_000, async () => {
      const all = await Promise.all(c.nodes.map((n) => api(n.id)));
      return all.some((s) => s.capacity.spaceLow);
    });
    // Inline small files and new names are refused too, once the leader has heard (its
    // admission reads heartbeats, ≤ 1 s behind the node's own view: decision 0014).
    let tries = 0;
    await waitFor('the leader to refuse small files', 10_000, async () => (await tryWrite(path.join(mnt, `small-probe-${tries++}`), 't')).code !== 0);
    const small = await tryWrite(path.join(mnt, 'small-when-full'), 'tiny');
    expect(small.code).not.toBe(0);
    expect(small.out).toMatch(/No space left on device/);
    expect((await shTry(`mkdir '${mnt}/dir-when-full'`)).out).toMatch(/No space left on device/);
    // statfs counts the reserve as used: (nearly) nothing available.
    const availMb = Number((await sh(`df --output=avail -B1M '${mnt}' | tail -1`)).trim());
    // (The write stops once a node is within one 1 MiB chunk of its reserve, give or take
    // what was in flight: a few MiB of a 256 MiB disk.)
    expect(availMb).toBeLessThanOrEqual(4);
    // Reads of committed data work.
    expect(await readFile(path.join(mnt, 'old-small'), 'utf8')).toBe('written before the disks filled\n');
    expect((await sh(`cat '${mnt}/old-big' | wc -c`)).trim()).toBe(String(3 * CHUNK + 7));
    // The reserve held: no log or namespace write failed anywhere.
    for (const n of c.nodes) {
      const s = await api(n.id);
      expect(s.storageFault, `${n.id} storage`).toBeNull();
      expect(s.capacity.logFreeBytes, `${n.id} free`).toBeGreaterThanOrEqual(s.capacity.reserveBytes);
    }
    everyoneAlive();

    // Deleting frees the space (GC of the deleted chunks on every node, orphan GC of the
    // failed write's uploads) and writes resume.
    await rm(path.join(mnt, 'huge'));
    await waitFor('small and large writes accepted after deleting', 60_000, async () => {
      if ((await tryWrite(path.join(mnt, 'small-after'), 'back')).code !== 0) return false;
      return (await shTry(`head -c ${4 * CHUNK} /dev/urandom > '${mnt}/big-after'`)).code === 0;
    });
    expect(await readFile(path.join(mnt, 'small-after'), 'utf8')).toBe('back');
    expect((await sh(`cat '${mnt}/big-after' | wc -c`)).trim()).toBe(String(4 * CHUNK));
    everyoneAlive();
  });
});
