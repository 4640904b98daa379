// Proofs, through a real mount, of what our libfuse3 binding fixes compared with
// fuse-native 2.2.6 (docs/decisions/0001-fuse-binding.md).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { MountedFs, sh, shTry } from './harness.js';

async function metric(http: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://${http}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('FUSE binding: fixes over fuse-native, proven through the mount', () => {
  const fs = new MountedFs();
  beforeAll(async () => {
    await fs.start();
  });
  afterAll(async () => {
    await fs.stop();
  });

  it('takes writes in large requests (no 4 KiB big_writes trap)', async () => {
    const http = fs.daemon!.http;
    const before = await metric(http, 'dfs_fuse_ops_total', 'op="write",result="ok"');
    await sh(`dd if=/dev/zero of=${path.join(fs.mnt, 'big-writes')} bs=1M count=64 status=none`);
    const writes = (await metric(http, 'dfs_fuse_ops_total', 'op="write",result="ok"')) - before;
    // 64 MiB in 4 KiB requests would be 16384 writes; 128 KiB or larger requests give <= 512.
    expect(writes).toBeGreaterThan(0);
    expect(writes).toBeLessThanOrEqual(512);
  });

  it('keeps atime and mtime apart, to the nanosecond, including UTIME_OMIT', async () => {
    const f = path.join(fs.mnt, 'times');
    await sh(`touch ${f}`);
    await sh(`touch -m -d '2001-02-03 04:05:06.123456789 UTC' ${f}`);
    await sh(`touch -a -d '1999-12-31 23:59:58.987654321 UTC' ${f}`);
    const out = await sh(`TZ=UTC stat -c '%x|%y' ${f}`);
    expect(out.trim()).toBe('1999-12-31 23:59:58.987654321 +0000|2001-02-03 04:05:06.123456789 +0000');
  });

  it('sets times before 1970 and after 2038', async () => {
    const f = path.join(fs.mnt, 'far-times');
    await sh(`touch -d '1960-06-01 00:00:00 UTC' ${f}`);
    expect((await sh(`stat -c %Y ${f}`)).trim()).toBe(String(Date.UTC(1960, 5, 1) / 1000));
    await sh(`touch -d '2200-01-01 00:00:01 UTC' ${f}`);
    expect((await sh(`stat -c %Y ${f}`)).trim()).toBe(String(Date.UTC(2200, 0, 1, 0, 0, 1) / 1000));
  });

  it('touch with no date sets the current time (UTIME_NOW)', async () => {
    const f = path.join(fs.mnt, 'now');
    await sh(`touch -d '2001-01-01 UTC' ${f}`);
    const before = Math.floor(Date.now() / 1000);
    await sh(`touch ${f}`);
    const mtime = Number((await sh(`stat -c %Y ${f}`)).trim());
    expect(mtime).toBeGreaterThanOrEqual(before - 1);
    expect(mtime).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 1);
  });

  it('supports flock and fcntl locks (kernel-local until cluster locks exist)', async () => {
    const f = path.join(fs.mnt, 'lockfile');
    await sh(`touch ${f}`);
    // A second non-blocking flock on a held lock must fail.
    const r = await shTry(`flock -x ${f} -c 'flock -xn ${f} -c true'`);
    expect(r.code).not.toBe(0);
    await sh(`python3 -c "import fcntl,os; fd=os.open('${f}', os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX); fcntl.lockf(fd, fcntl.LOCK_UN)"`);
  });

  it('fallocate extends a file (mode 0) and refuses unsupported modes cleanly', async () => {
    const f = path.join(fs.mnt, 'falloc');
    await sh(`fallocate -l 3000000 ${f}`);
    expect((await sh(`stat -c %s ${f}`)).trim()).toBe('3000000');
    expect(await sh(`cmp -n 3000000 ${f} /dev/zero && echo same`)).toBe('same\n');
    const punch = await shTry(`fallocate -p -o 0 -l 4096 ${f}`);
    expect(punch.code).not.toBe(0);
    expect(punch.out).toMatch(/unsupported|not supported/i);
  });

  it('has no per-operation watchdog: a long fsync-heavy write finishes', async () => {
    const f = path.join(fs.mnt, 'fsync-loop');
    await sh(`python3 -c "
import os
fd=os.open('${f}', os.O_CREAT|os.O_WRONLY, 0o644)
for i in range(50):
    os.write(fd, b'x'*65536); os.fsync(fd)
os.close(fd)"`);
    expect((await sh(`stat -c %s ${f}`)).trim()).toBe(String(50 * 65536));
  });
});
