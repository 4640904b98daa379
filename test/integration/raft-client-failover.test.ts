// A client-only mount (`dfs mount ADDR DIR`) of a 3-daemon cluster keeps working when
// the daemon it connected to is killed with kill -9: it fails over to another member
// (namespace calls keep their client id and sequence number, so nothing is applied
// twice), new data goes to the member it now talks to, and once the killed daemon is
// back the chunks it holds read back intact.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { type DaemonProc, sh, shTry, startClient, stopDaemon, unmount } from './harness.js';
import { RaftCluster } from './raft-harness.js';

async function sha(file: string): Promise<string> {
  return (await sh(`sha256sum < '${file}'`, { timeoutMs: 60_000 })).split(' ')[0];
}

describe('client-only mount fails over between members', () => {
  const c = new RaftCluster('raftclient', 3, []);
  let client: DaemonProc | null = null;
  let mnt = '';

  beforeAll(async () => {
    await c.create();
    await c.start();
    await c.leader();
    mnt = path.join(c.base, 'client-mnt');
    client = await startClient(c.node('node1').grpc, mnt);
  });

  afterAll(async () => {
    if (client) await stopDaemon(client, 10_000).catch(() => undefined);
    if (mnt) await unmount(mnt);
    await c.teardown();
  });

  it('survives kill -9 of the daemon it is connected to', async () => {
    const src = path.join(c.base, 'src');
    await sh(`mkdir -p '${src}' && head -c 3000000 /dev/urandom > '${src}/big' && head -c 5000 /dev/urandom > '${src}/small'`);
    await sh(`cp '${src}/big' '${src}/small' '${mnt}/' && mkdir '${mnt}/dir' && echo one > '${mnt}/dir/one'`);
    const bigSha = await sha(`${src}/big`);

    await c.kill('node1');
    // The namespace (and small files, stored inline in it) stays available.
    expect((await sh(`ls '${mnt}/dir'`, { timeoutMs: 60_000 })).trim()).toBe('one');
    expect(await sha(`${mnt}/small`)).toBe(await sha(`${src}/small`));
    // New files, large and many, are written through another member.
    await sh(`cp '${src}/big' '${mnt}/big2' && cp -r /usr/include/linux '${mnt}/tree'`, { timeoutMs: 180_000 });
    expect(await sha(`${mnt}/big2`)).toBe(bigSha);
    const diff = await shTry(`diff -r /usr/include/linux '${mnt}/tree' 2>&1 | head -20`, { timeoutMs: 120_000 });
    expect(diff.out).toBe('');

    // node1 comes back: the chunks it kept read back intact through the same mount.
    await c.start(['node1']);
    expect(await sha(`${mnt}/big`)).toBe(bigSha);
    expect(client!.child.exitCode).toBeNull();
  });
});
