// Write errors reach the writer: a daemon whose data dir is a tiny tmpfs runs out of
// space during a large write; the write/close fails, nothing made-up is committed, and
// the filesystem keeps working for what fits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { execFileAsync, removeDir, sh, shTry, startDaemon, stopDaemon, tempDir, type DaemonProc } from './harness.js';

describe('a full disk is an error, never a silent success', () => {
  let base = '';
  let data = '';
  let mnt = '';
  let daemon: DaemonProc | null = null;

  beforeAll(async () => {
    base = await tempDir('enospc');
    data = path.join(base, 'data');
    mnt = path.join(base, 'mnt');
    await sh(`mkdir -p ${data} && mount -t tmpfs -o size=200m tmpfs ${data}`);
    // A reserve that fits the small disk (the default, 1 GiB, would refuse every write here).
    daemon = await startDaemon({ dataDir: path.join(data, 'd'), mount: mnt, extraArgs: ['--reserve', '8m'] });
  });

  afterAll(async () => {
    if (daemon) await stopDaemon(daemon);
    await execFileAsync('umount', ['-l', data]).catch(() => undefined);
    await removeDir(base);
  });

  it('fails the write or close with ENOSPC and commits no zeros in place of lost data', async () => {
    const f = path.join(mnt, 'too-big');
    const r = await shTry(`dd if=/dev/urandom of=${f} bs=1M count=260 conv=fsync status=none`);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/No space left on device/);
    // Whatever size the namespace shows, every byte it claims must be real data: the
    // file was never reported written, so it must not read back as zero-filled holes.
    const size = Number((await sh(`stat -c %s ${f}`)).trim());
    if (size > 0) {
      const zeroChunks = await sh(`python3 -c "
import sys
z=bytes(1<<20); n=0
with open('${f}','rb') as fh:
    while True:
        b=fh.read(1<<20)
        if not b: break
        n += b == z[:len(b)]
print(n)"`);
      expect(zeroChunks.trim()).toBe('0');
    }
  });

  it('still takes small files after the failure', async () => {
    await sh(`rm -f ${path.join(mnt, 'too-big')}`);
    const f = path.join(mnt, 'small');
    await sh(`printf 'still works' > ${f}`);
    expect(await sh(`cat ${f}`)).toBe('still works');
  });
});
