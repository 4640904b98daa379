// Chunk-server chores with a real daemon (issue #6; src/cluster/chores.ts): an object
// nobody references (a writer that crashed between upload and commit) is deleted after
// the orphan grace, referenced objects stay, and a byte flipped in a referenced object
// is found by scrub, logged as "scrub-error" and reported to the leader as a bad copy.
// Short intervals: grace 2 s, inventory every 1 s, scrub pause 1 s.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { flipByte, removeDir, sh, startDaemon, stopDaemon, tempDir, waitFor, type DaemonProc } from './harness.js';
import { ChunkClient } from '../../src/chunks/grpc.js';
import { chunkObjectPath } from '../../src/chunks/store.js';
import { MetaClient } from '../../src/meta/grpc.js';
import type { ChunkRef } from '../../src/meta/types.js';

const CHUNK = 1024 * 1024;
const GRACE_MS = 2000;
const EXTRA = [
  '--chunk-size',
  String(CHUNK),
  '--orphan-grace',
  `${GRACE_MS}ms`,
  '--inventory-interval',
  '1s',
  '--scrub-rate',
  '64',
  '--scrub-pause',
  '1s',
];
/** Far above any id the namespace allocates in this test: nobody references it. */
const ORPHAN_ID = 10 ** 12;

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

async function sha(file: string): Promise<string> {
  return (await sh(`sha256sum < '${file}'`)).split(' ')[0];
}

describe('orphan GC and scrub on one daemon', () => {
  let base = '';
  let daemon: DaemonProc | null = null;
  let meta: MetaClient | null = null;
  let chunks: ChunkClient | null = null;
  let nodeId = '';
  let file = '';
  let fileSha = '';
  let refs: ChunkRef[] = [];
  const objectFile = (chunkId: number): string => chunkObjectPath(path.join(daemon!.dataDir, 'chunks'), chunkId);

  beforeAll(async () => {
    base = await tempDir('chores');
    daemon = await startDaemon({ dataDir: path.join(base, 'data'), mount: path.join(base, 'mnt'), extraArgs: EXTRA });
    meta = await MetaClient.connect(daemon.grpc, { attempts: 3, deadlineMs: 10_000 });
    chunks = await ChunkClient.connect({ address: daemon.grpc, deadlineMs: 10_000 });
    nodeId = (await meta.info()).nodeId;
    const src = path.join(base, 'src');
    await sh(`head -c ${3 * CHUNK + 5} /dev/urandom > '${src}'`);
    file = path.join(daemon.mount!, 'kept');
    await sh(`cp '${src}' '${file}'`);
    fileSha = await sha(src);
    const r = await meta.getChunks((await stat(file)).ino, 0, 10_000);
    if (!r.ok) throw new Error(`getChunks: errno ${r.errno}`);
    refs = r.value;
  });

  afterAll(async () => {
    chunks?.close();
    meta?.close();
    if (daemon) await stopDaemon(daemon);
    if (base) await removeDir(base);
  });

  it('deletes an unreferenced object after the grace and keeps referenced ones', async () => {
    expect(refs.length).toBe(4);
    for (const ref of refs) expect(ref.placement).toEqual([nodeId]);
    const writtenMs = Date.now();
    await chunks!.writeChunk(ORPHAN_ID, randomBytes(100 * 1024));
    expect(await exists(objectFile(ORPHAN_ID))).toBe(true);
    await waitFor('the orphan object to be deleted', 30_000, async () => !(await exists(objectFile(ORPHAN_ID))));
    // Never before the grace: a writer may hold an uploaded chunk that long before committing it.
    expect(Date.now() - writtenMs).toBeGreaterThanOrEqual(GRACE_MS - 100);
    // A few more inventory passes: the file's objects are still there, its bytes unchanged.
    await new Promise((r) => setTimeout(r, 3000));
    for (const ref of refs) expect(await exists(objectFile(ref.chunkId)), `object of chunk ${ref.index}`).toBe(true);
    expect(await sha(file)).toBe(fileSha);
  });

  it('scrub finds a flipped byte in a referenced object and reports the copy', async () => {
    const victim = refs[1];
    await flipByte(objectFile(victim.chunkId));
    // Logged (at error level, so visible under --log-level warn) with the chunk id.
    await waitFor('a scrub-error in the daemon log', 30_000, () =>
      daemon!
        .output()
        .split('\n')
        .some((l) => l.includes('"scrub-error"') && l.includes(`"chunkId":${victim.chunkId}`)),
    );
    // In the cluster's event list (one daemon: its list is the leader's).
    await waitFor('a scrub-error event', 10_000, async () => {
      const ev = await meta!.events({ afterSeq: 0, limit: 1000 });
      return ev.events.some((e) => e.kind === 'scrub-error' && Number(e.chunkId) === victim.chunkId);
    });
    // Reported as a bad copy: the only copy, so the leader's scan counts the chunk lost.
    await waitFor('the leader to count the bad copy', 30_000, async () => {
      const h = await meta!.healthStatus();
      return h.chunksLost + h.chunksUnderProtected >= 1;
    });
    // The corrupt object is referenced: orphan GC leaves it for repair.
    expect(await exists(objectFile(victim.chunkId))).toBe(true);
  });
});
