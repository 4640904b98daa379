import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { MountedFs, sh } from './harness.js';

describe('single-node mount: smoke', () => {
  const fs = new MountedFs();
  beforeAll(async () => {
    await fs.start();
  });
  afterAll(async () => {
    await fs.stop();
  });

  it('writes and reads a file through the mount', async () => {
    const f = path.join(fs.mnt, 'hello.txt');
    await sh(`printf 'hello dfs\\n' > ${f}`);
    expect(await sh(`cat ${f}`)).toBe('hello dfs\n');
  });

  it('keeps a file across a graceful restart', async () => {
    const f = path.join(fs.mnt, 'keep.bin');
    await sh(`head -c 5000000 /dev/urandom > ${f}.src && cp ${f}.src ${f}`);
    const before = await sh(`sha256sum < ${f}.src`);
    await fs.restart();
    expect(await sh(`sha256sum < ${f}`)).toBe(before);
  });
});
