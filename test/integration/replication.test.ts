// File data spread across real daemons (issue #5), driven through a FUSE mount with
// shell tools: R=3 on 5 daemons survives kill -9 of a target during the write (the
// client replaces it) and of two holders after close; a replica flipped on disk is
// caught by CRC32C and another copy serves the read; ec 6+3 on 9 daemons reads back
// with any 3 shard holders down. Chunk size 1 MiB so a few MiB make many chunks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { childExit, dropCaches, flipByte, sh, waitFor, withDeadline } from './harness.js';
import { RaftCluster } from './raft-harness.js';
import { MetaClient } from '../../src/meta/grpc.js';
import { chunkObjectPath } from '../../src/chunks/store.js';
import type { ChunkRef } from '../../src/meta/types.js';

const CHUNK = 1024 * 1024;
const EXTRA = ['--chunk-size', String(CHUNK), '--dead-after', '20s'];

async function sha(file: string): Promise<string> {
  return (await sh(`sha256sum < '${file}'`, { timeoutMs: 120_000 })).split(' ')[0];
}

/** The chunk refs of a file, through a daemon's meta service. */
async function chunksOf(c: RaftCluster, via: string, file: string): Promise<ChunkRef[]> {
  const ino = (await stat(file)).ino;
  const client = await MetaClient.connect(c.node(via).grpc, { attempts: 3, deadlineMs: 10_000 });
  try {
    const r = await client.getChunks(ino, 0, 10_000);
    if (!r.ok) throw new Error(`getChunks: errno ${r.errno}`);
    return r.value;
  } finally {
    client.close();
  }
}

async function setLayout(c: RaftCluster, via: string, dir: string, layout: { kind: 'ec'; k: number; m: number } | { kind: 'replicas'; replicas: number }): Promise<void> {
  const ino = (await stat(dir)).ino;
  const client = await MetaClient.connect(c.node(via).grpc, { attempts: 3, deadlineMs: 10_000 });
  try {
    const now = { sec: Math.floor(Date.now() / 1000), nsec: 0 };
    const r = await client.execute({ op: 'setlayout', ino, layout, now });
    if (!r.ok) throw new Error(`setlayout: errno ${r.errno}`);
  } finally {
    client.close();
  }
}

async function metric(c: RaftCluster, id: string, name: string): Promise<number> {
  const r = await fetch(`http://${c.node(id).proc!.http}/metrics`, { signal: AbortSignal.timeout(5000) });
  const line = (await r.text()).split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(' ').pop()) : NaN;
}

describe('R=3 on 5 daemons', () => {
  const c = new RaftCluster('repl5', 5, ['node1'], EXTRA);

  beforeAll(async () => {
    await c.create();
    await c.start();
    await c.leader();
  });

  afterAll(async () => {
    await c.teardown();
  });

  it('a write completes when a target is killed mid-write, with every chunk on 3 live nodes', async () => {
    const src = path.join(c.base, 'src');
    await sh(`head -c ${40 * CHUNK + 12345} /dev/urandom > '${src}'`);
    const dst = path.join(c.mnt('node1'), 'big');
    // A writer that reports half-way and then waits for the test's go (on stdin).
    const writer = spawn(
      'python3',
      [
        '-c',
        `import sys,os
src=open(sys.argv[1],'rb'); dst=open(sys.argv[2],'wb')
n=0
while True:
    b=src.read(1<<20)
    if not b: break
    dst.write(b); n+=1
    if n==16:
        dst.flush(); print('half', flush=True); sys.stdin.readline()
dst.close(); print('closed', flush=True)`,
        src,
        dst,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let err = '';
    writer.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const lines = createInterface({ input: writer.stdout! });
    const seen: string[] = [];
    lines.on('line', (l) => seen.push(l));
    const exit = childExit(writer);
    const { waitFor } = await import('./harness.js');
    await waitFor('writer half-way', 60_000, () => seen.includes('half'));
    // Some chunks are uploaded by now; kill a node other than the mount's.
    const before = await chunksOf(c, 'node1', dst).catch(() => []);
    const victim = before.flatMap((r) => r.placement).find((n) => n !== 'node1') ?? 'node5';
    await c.kill(victim);
    writer.stdin!.write('go\n');
    expect(await withDeadline('writer', 120_000, exit), err).toBe(0);
    expect(seen).toContain('closed');

    expect(await sha(dst)).toBe(await sha(src));
    const refs = await chunksOf(c, 'node1', dst);
    expect(refs.length).toBe(41);
    for (const r of refs) {
      expect(new Set(r.placement).size, `chunk ${r.index}: ${r.placement.join(',')}`).toBe(3);
    }
    // Chunks written after the kill avoided the dead node.
    for (const r of refs.slice(24)) expect(r.placement, `chunk ${r.index}`).not.toContain(victim);
    await c.start([victim]);
  });

  it('reads survive two of a file\'s holders killed after close', async () => {
    const src = path.join(c.base, 'src2');
    await sh(`head -c ${12 * CHUNK + 777} /dev/urandom > '${src}'`);
    const dst = path.join(c.mnt('node1'), 'two-down');
    await sh(`cp '${src}' '${dst}'`);
    const want = await sha(src);
    const refs = await chunksOf(c, 'node1', dst);
    // Two holders of the first chunk that are not the mount's node (the mount must stay).
    const victims = refs[0].placement.filter((n) => n !== 'node1').slice(0, 2);
    if (victims.length < 2) victims.push(...['node2', 'node3', 'node4', 'node5'].filter((n) => !victims.includes(n)).slice(0, 2 - victims.length));
    for (const v of victims) await c.kill(v);
    await dropCaches();
    expect(await sha(dst)).toBe(want);
    await c.start(victims);
  });

  it('a replica flipped on disk is caught by CRC32C and another copy serves the read', async () => {
    const src = path.join(c.base, 'src3');
    await sh(`head -c ${6 * CHUNK} /dev/urandom > '${src}'`);
    const dst = path.join(c.mnt('node1'), 'flipped');
    await sh(`cp '${src}' '${dst}'`);
    const refs = await chunksOf(c, 'node1', dst);
    // A chunk with a copy on node1: the mount reads its local copy first.
    const ref = refs.find((r) => r.placement.includes('node1'));
    expect(ref, 'some chunk has a copy on node1').toBeDefined();
    const file = chunkObjectPath(path.join(c.node('node1').dataDir, 'chunks'), ref!.chunkId);
    await flipByte(file);
    const corruptBefore = await metric(c, 'node1', 'dfs_chunk_corrupt_detected');
    await dropCaches();
    expect(await sha(dst)).toBe(await sha(src));
    expect(await metric(c, 'node1', 'dfs_chunk_corrupt_detected')).toBeGreaterThan(corruptBefore);
  });
});

describe('ec 6+3 on 9 daemons', () => {
  const c = new RaftCluster('ec9', 9, ['node1'], EXTRA);

  beforeAll(async () => {
    await c.create();
    await c.start();
    await c.leader(30_000);
  });

  afterAll(async () => {
    await c.teardown();
  });

  it('reads back with any 3 shard holders down', async () => {
    const dir = path.join(c.mnt('node1'), 'ec');
    await sh(`mkdir '${dir}'`);
    await setLayout(c, 'node1', dir, { kind: 'ec', k: 6, m: 3 });
    const src = path.join(c.base, 'src');
    await sh(`head -c ${5 * CHUNK + 4321} /dev/urandom > '${src}'`);
    const dst = path.join(dir, 'f');
    await sh(`cp '${src}' '${dst}'`);
    const want = await sha(src);
    const refs = await chunksOf(c, 'node1', dst);
    expect(refs.length).toBe(6);
    for (const r of refs) {
      expect(r.ec, `chunk ${r.index} is erasure-coded`).toEqual({ k: 6, m: 3, shardBytes: expect.any(Number) as number });
      expect(new Set(r.placement.filter((p) => p !== '')).size, `chunk ${r.index}: ${r.placement.join(',')}`).toBe(9);
    }
    // Three holders of the first chunk's data shards, not the mount's node: the reads decode.
    const victims = refs[0].placement.slice(0, 6).filter((n) => n !== 'node1').slice(0, 3);
    for (const v of victims) await c.kill(v);
    await dropCaches();
    expect(await sha(dst)).toBe(want);
    // With 3 of 9 down a 6+3 write could keep no parity: it fails (EIO) rather than
    // acknowledge data that one more loss would destroy.
    const refused = await sh(`printf 'x' | dd of='${dst}' bs=1 seek=10 conv=notrunc status=none`).then(
      () => 'written',
      (e: Error) => e.message,
    );
    expect(refused).toMatch(/Input\/output error/);
    // Two holders back (one still down): a partial overwrite is a read-modify-write of the
    // stripe, written as 8 shards (degraded but with parity); it reads back right.
    await c.start(victims.slice(0, 2));
    // Placement uses only nodes the leader sees up (after their first heartbeat) and the
    // mount's view of them is cached for a second: until both hold, the write is refused
    // (EIO, nothing committed). Wait for the leader's view, then for the write to go through.
    const back = victims.slice(0, 2);
    const client = await MetaClient.connect(c.node('node1').grpc, { attempts: 3, deadlineMs: 10_000 });
    try {
      await waitFor('the restarted holders to be up in the leader view', 30_000, async () => {
        const v = await client.clusterView();
        return back.every((id) => v.nodes.some((n) => n.nodeId === id && n.state === 'up'));
      });
    } finally {
      client.close();
    }
    await waitFor('the degraded overwrite to be accepted', 15_000, () =>
      sh(`printf 'patched' | dd of='${dst}' bs=1 seek=${CHUNK + 100} conv=notrunc status=none`).then(
        () => true,
        () => false,
      ),
    );
    await sh(`printf 'patched' | dd of='${src}' bs=1 seek=${CHUNK + 100} conv=notrunc status=none`);
    await dropCaches();
    expect(await sha(dst)).toBe(await sha(src));
  });
});
