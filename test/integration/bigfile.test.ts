// A 256 MiB random file copied onto the mount survives an unmount + remount byte for byte.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { MountedFs, dropCaches, removeDir, sh, tempDir } from './harness.js';

const MIB = 1024 * 1024;

describe('big file through a real mount', () => {
  const fs = new MountedFs();
  let local = '';
  beforeAll(async () => {
    await fs.start();
    local = await tempDir('big-local');
  });
  afterAll(async () => {
    await fs.stop();
    if (local) await removeDir(local);
  });

  it('256 MiB + 12345 bytes: sha256 equal after copy, after drop_caches, and after restart', async () => {
    const size = 256 * MIB + 12345;
    const src = path.join(local, 'big.src');
    await sh(`head -c ${size} /dev/urandom > ${src}`, { timeoutMs: 60_000 });
    const want = (await sh(`sha256sum < ${src}`)).split(' ')[0];
    const dst = path.join(fs.mnt, 'dir', 'big.bin');
    await sh(`mkdir ${path.dirname(dst)} && cp ${src} ${dst}`, { timeoutMs: 90_000 });
    expect(await sh(`stat -c %s ${dst}`)).toBe(`${size}\n`);
    expect((await sh(`sha256sum < ${dst}`, { timeoutMs: 60_000 })).split(' ')[0]).toBe(want);

    await fs.restart();
    await dropCaches();
    expect(await sh(`stat -c %s ${dst}`)).toBe(`${size}\n`);
    expect((await sh(`sha256sum < ${dst}`, { timeoutMs: 60_000 })).split(' ')[0]).toBe(want);
    // Random-offset reads across chunk boundaries match the source.
    const cmp = await sh(
      `python3 -c "
import os, random, sys
r = random.Random(7)
a, b = open(sys.argv[1], 'rb'), open(sys.argv[2], 'rb')
bad = 0
for _ in range(200):
    off = r.randrange(0, ${size}); n = r.randrange(1, 3 << 20)
    a.seek(off); b.seek(off)
    if a.read(n) != b.read(n): bad += 1
print(bad)
" ${src} ${dst}`,
      { timeoutMs: 60_000 },
    );
    expect(cmp).toBe('0\n');
  }, 240_000);
});
