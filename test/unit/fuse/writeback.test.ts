// Background write-back: writes an application never flushes are uploaded and committed
// after about writebackMs, so no uploaded chunk stays unreferenced for long (the chunk
// servers' orphan GC deletes unreferenced objects after its grace).
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ChunkStore } from '../../../src/chunks/store.js';
import { StaticDataPlane } from '../../../src/fuse/data-plane.js';
import { Vfs } from '../../../src/fuse/vfs.js';
import { MemKV } from '../../../src/meta/kv.js';
import { MetaStore } from '../../../src/meta/store.js';
import { ROOT_INO } from '../../../src/meta/types.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function waitFor(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Vfs write-back', () => {
  it('commits unflushed writes of an open file after about writebackMs', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'dfs-wb-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const chunks = await ChunkStore.open({ dataDir: dir });
    cleanups.push(() => chunks.close());
    const meta = await MetaStore.open(new MemKV(), { chunkSizeBytes: 1024 * 1024 });
    const vfs = new Vfs(meta, new StaticDataPlane('n1', chunks), { sessionId: 's1', writebackMs: 100 });
    cleanups.push(() => vfs.stopWriteback());
    const c = await vfs.create(ROOT_INO, 'f', 0o644, 0, { uid: 0, gid: 0 });
    if (!c.ok) throw new Error(`create errno ${c.errno}`);
    const data = Buffer.alloc(1_500_000, 7);
    expect((await vfs.write(c.value.fh, 0, data)).ok).toBe(true);
    // Nothing is committed yet: the first chunk is uploaded (full), the rest is buffered.
    expect((await meta.getattr(c.value.attr.ino)).ok && (await meta.getattr(c.value.attr.ino))).toMatchObject({ value: { size: 0 } });
    await waitFor('the write-back commit', 5_000, async () => {
      const a = await meta.getattr(c.value.attr.ino);
      return a.ok && a.value.size === data.length;
    });
    const refs = await meta.getChunks(c.value.attr.ino, 0, 10);
    expect(refs.ok && refs.value.map((r) => r.sizeBytes)).toEqual([1024 * 1024, data.length - 1024 * 1024]);
  });
});
