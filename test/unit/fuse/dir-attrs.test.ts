// A directory's attributes after this client's own create/unlink/mkdir/rename come from
// the command's reply (Result.dirs), not from another GETATTR round trip, and only briefly.
import { describe, expect, it } from 'vitest';
import { StaticDataPlane } from '../../../src/fuse/data-plane.js';
import { DirAttrs, DIR_ATTR_REUSE_MS } from '../../../src/fuse/dir-attrs.js';
import { Vfs } from '../../../src/fuse/vfs.js';
import type { MetaApi } from '../../../src/meta/api.js';
import { MemKV } from '../../../src/meta/kv.js';
import { MetaStore } from '../../../src/meta/store.js';
import type { Attr, Ino } from '../../../src/meta/types.js';
import { ROOT_INO } from '../../../src/meta/types.js';
import { ChunkStore } from '../../../src/chunks/store.js';

const caller = { uid: 0, gid: 0 };

/** The store, counting the getattr calls that reach it. */
function counting(meta: MetaStore): { api: MetaApi; getattrs: () => number } {
  let n = 0;
  const api: MetaApi = Object.assign(Object.create(meta) as MetaApi, {
    getattr: (ino: Ino) => {
      n++;
      return meta.getattr(ino);
    },
  });
  return { api, getattrs: () => n };
}

async function setup(attrTtlMs = 1000) {
  const meta = await MetaStore.open(new MemKV(), { chunkSizeBytes: 1024 * 1024 });
  const chunks = { open: () => Promise.reject(new Error('no data in this test')) } as unknown as ChunkStore;
  const a = counting(meta);
  const vfs = new Vfs(a.api, new StaticDataPlane('n1', chunks), { sessionId: 's1', attrTtlMs });
  const other = new Vfs(meta, new StaticDataPlane('n1', chunks), { sessionId: 's2', attrTtlMs });
  return { meta, vfs, other, getattrs: a.getattrs, stop: () => (vfs.stopWriteback(), other.stopWriteback()) };
}

async function truth(meta: MetaStore, ino: Ino): Promise<Attr> {
  const r = await meta.getattr(ino);
  if (!r.ok) throw new Error(`getattr ${ino}: errno ${r.errno}`);
  return r.value;
}

describe('directory attributes from command replies', () => {
  it('answers the GETATTR after our create, mkdir, unlink and rename from the reply, exactly as the store has it', async () => {
    const s = await setup();
    try {
      const d = await s.vfs.mkdir(ROOT_INO, 'd', 0o755, caller);
      if (!d.ok) throw new Error('mkdir');
      expect(await s.vfs.getattr(ROOT_INO)).toEqual({ ok: true, value: await truth(s.meta, ROOT_INO) });
      const steps: Array<() => Promise<unknown>> = [
        () => s.vfs.mknod(d.value.ino, 'f', 0o100644, 0, caller),
        () => s.vfs.rename(d.value.ino, 'f', d.value.ino, 'g', 0),
        () => s.vfs.unlink(d.value.ino, 'g'),
      ];
      for (const step of steps) {
        const before = (await truth(s.meta, d.value.ino)).version;
        expect(await step()).toMatchObject({ ok: true });
        const now = await truth(s.meta, d.value.ino);
        expect(now.version).toBeGreaterThan(before);
        expect(await s.vfs.getattr(d.value.ino)).toEqual({ ok: true, value: now });
      }
      expect(s.getattrs()).toBe(0);
    } finally {
      s.stop();
    }
  });

  it("asks again once the reuse window passed, and then sees another client's change", async () => {
    const s = await setup();
    try {
      expect((await s.vfs.mknod(ROOT_INO, 'a', 0o100644, 0, caller)).ok).toBe(true);
      expect((await s.other.mknod(ROOT_INO, 'b', 0o100644, 0, caller)).ok).toBe(true);
      const deadline = performance.now() + 5_000;
      while (s.getattrs() === 0) {
        if (performance.now() > deadline) throw new Error('never asked the store again');
        await new Promise((r) => setTimeout(r, DIR_ATTR_REUSE_MS / 4));
        await s.vfs.getattr(ROOT_INO);
      }
      expect(await s.vfs.getattr(ROOT_INO)).toEqual({ ok: true, value: await truth(s.meta, ROOT_INO) });
    } finally {
      s.stop();
    }
  });

  it('shows a removed directory with no links, and with attribute caching off always asks', async () => {
    const s = await setup();
    try {
      const d = await s.vfs.mkdir(ROOT_INO, 'gone', 0o755, caller);
      if (!d.ok) throw new Error('mkdir');
      expect((await s.vfs.rmdir(ROOT_INO, 'gone')).ok).toBe(true);
      expect(await s.vfs.getattr(d.value.ino)).toMatchObject({ ok: true, value: { ino: d.value.ino, nlink: 0 } });
    } finally {
      s.stop();
    }
    const off = await setup(0);
    try {
      expect((await off.vfs.mknod(ROOT_INO, 'a', 0o100644, 0, caller)).ok).toBe(true);
      await off.vfs.getattr(ROOT_INO);
      expect(off.getattrs()).toBe(1);
    } finally {
      off.stop();
    }
  });

  it('keeps the newest version when replies arrive out of order', () => {
    const cache = new DirAttrs(10_000);
    const attr = (version: number) => ({ ino: 5, version }) as Attr;
    cache.note({ ok: true, value: null, dirs: [attr(7)] });
    cache.note({ ok: true, value: null, dirs: [attr(6)] });
    expect(cache.get(5)?.version).toBe(7);
    cache.note({ ok: false, errno: 2 });
    cache.note({ ok: true, value: null, dirs: [attr(8)] });
    expect(cache.get(5)?.version).toBe(8);
    expect(cache.get(6)).toBeUndefined();
  });
});
