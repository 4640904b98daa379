// Placement avoids a chunk server whose disk is full: 4 daemons, R=3, node4's data dir
// chunk store on a small tmpfs. A file much larger than node4 can hold is written through node1's
// mount: every chunk still gets 3 copies (node4 is skipped once full, and a write that
// hits its full disk is replaced), the bytes read back intact, node4 never overflows.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { sh, shTry } from './harness.js';
import { RaftCluster } from './raft-harness.js';
import { MetaClient } from '../../src/meta/grpc.js';

const CHUNK = 1024 * 1024;
const SMALL_DISK_MB = 48;

describe('a full chunk server is avoided', () => {
  const c = new RaftCluster('placefull', 4, ['node1'], ['--chunk-size', String(CHUNK)]);
  let tmpfs = '';

  beforeAll(async () => {
    await c.create();
    // Only node4's chunk store lives on the small disk (its log and namespace do not).
    tmpfs = path.join(c.node('node4').dataDir, 'chunks');
    await mkdir(tmpfs, { recursive: true });
    await sh(`mount -t tmpfs -o size=${SMALL_DISK_MB}m dfs-test-small '${tmpfs}'`);
    await c.start();
    await c.leader();
  });

  afterAll(async () => {
    await c.stop(c.liveIds()).catch(() => undefined);
    if (tmpfs) await shTry(`umount -l '${tmpfs}'`);
    await c.teardown();
  });

  it('writes every chunk with 3 copies while node4 fills up', async () => {
    const src = path.join(c.base, 'src');
    const size = 160 * CHUNK + 999;
    await sh(`head -c ${size} /dev/urandom > '${src}'`);
    const dst = path.join(c.mnt('node1'), 'big');
    await sh(`cp '${src}' '${dst}'`, { timeoutMs: 180_000 });
    expect(await sh(`sha256sum < '${dst}' | cut -d' ' -f1`)).toBe(await sh(`sha256sum < '${src}' | cut -d' ' -f1`));

    const client = await MetaClient.connect(c.node('node1').grpc, { attempts: 3, deadlineMs: 10_000 });
    try {
      const r = await client.getChunks((await stat(dst)).ino, 0, 10_000);
      if (!r.ok) throw new Error(`getChunks errno ${r.errno}`);
      expect(r.value.length).toBe(161);
      const perNode = new Map<string, number>();
      for (const ref of r.value) {
        expect(new Set(ref.placement).size, `chunk ${ref.index}: ${ref.placement.join(',')}`).toBe(3);
        for (const n of ref.placement) perNode.set(n, (perNode.get(n) ?? 0) + 1);
      }
      // node4 could hold at most what its small disk has room for; the others took the rest.
      expect(perNode.get('node4') ?? 0).toBeLessThanOrEqual(SMALL_DISK_MB);
      for (const n of ['node1', 'node2', 'node3']) expect(perNode.get(n) ?? 0, n).toBeGreaterThan(100);
    } finally {
      client.close();
    }
    const df = await sh(`df -B1 --output=avail '${tmpfs}' | tail -1`);
    expect(Number(df.trim())).toBeGreaterThanOrEqual(0);
  });
});
