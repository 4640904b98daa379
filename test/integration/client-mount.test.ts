// Client-only mounts (`dfs mount ADDR DIR`): a server daemon without a mount serves the
// namespace and the chunks over gRPC; the client mount must behave like a local one
// under ordinary shell tools, and what one mount wrote (and closed) must be what any
// mount opened afterwards reads.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import {
  type DaemonProc,
  exited,
  isMounted,
  killDaemon,
  removeDir,
  sh,
  shTry,
  startClient,
  startDaemon,
  stopDaemon,
  tempDir,
  unmount,
  waitFor,
} from './harness.js';

const TREE = '/usr/include/linux';

describe('client-only mount of a server without a mount', () => {
  let base = '';
  let server: DaemonProc | null = null;
  let client: DaemonProc | null = null;
  let client2: DaemonProc | null = null;
  let mnt = '';

  beforeAll(async () => {
    base = await tempDir('client');
    mnt = path.join(base, 'mnt');
    server = await startDaemon({ dataDir: path.join(base, 'data') });
    expect(server.mount).toBeNull();
    client = await startClient(server.grpc, mnt);
    expect(await isMounted(mnt)).toBe(true);
  });

  afterAll(async () => {
    for (const p of [client2, client, server]) if (p) await stopDaemon(p);
    for (const d of ['mnt', 'mnt2']) await unmount(path.join(base, d));
    if (base) await removeDir(base);
  });

  it('cp -r of a tree is identical (diff -r)', async () => {
    await sh(`cp -r ${TREE} ${mnt}/tree`, { timeoutMs: 60_000 });
    expect(await shTry(`diff -r ${TREE} ${mnt}/tree`)).toEqual({ code: 0, out: '' });
    expect(Number((await sh(`find ${mnt}/tree | wc -l`)).trim())).toBe(Number((await sh(`find ${TREE} | wc -l`)).trim()));
  });

  it('tar round trip out of and into the mount', async () => {
    await sh(`mkdir -p ${base}/untar && tar -C ${mnt} -cf ${base}/out.tar tree && tar -C ${base}/untar -xf ${base}/out.tar`);
    expect(await shTry(`diff -r ${TREE} ${base}/untar/tree`)).toEqual({ code: 0, out: '' });
    await sh(`tar -C ${TREE}/.. -cf - linux | tar -C ${mnt} -xpf -`);
    expect(await shTry(`diff -r ${TREE} ${mnt}/linux`)).toEqual({ code: 0, out: '' });
    // tar -p keeps modes and mtimes
    expect(await sh(`cd ${TREE} && find . -printf '%m %T@ %p\\n' | sort`)).toBe(await sh(`cd ${mnt}/linux && find . -printf '%m %T@ %p\\n' | sort`));
  });

  it('hard links and symlinks', async () => {
    const d = `${mnt}/links`;
    await sh(`mkdir ${d} && printf 'one\\n' > ${d}/a && ln ${d}/a ${d}/b && ln -s a ${d}/s && ln -s ../links/nowhere ${d}/dangling`);
    expect((await sh(`stat -c '%h %i' ${d}/a`)).trim()).toBe((await sh(`stat -c '%h %i' ${d}/b`)).trim());
    expect((await sh(`stat -c %h ${d}/a`)).trim()).toBe('2');
    await sh(`printf 'two\\n' >> ${d}/b`);
    expect(await sh(`cat ${d}/a`)).toBe('one\ntwo\n');
    expect((await sh(`readlink ${d}/s`)).trim()).toBe('a');
    expect(await sh(`cat ${d}/s`)).toBe('one\ntwo\n');
    expect((await sh(`stat -c %F ${d}/dangling`)).trim()).toBe('symbolic link');
    expect((await shTry(`cat ${d}/dangling`)).code).not.toBe(0);
    await sh(`rm ${d}/a`);
    expect((await sh(`stat -c %h ${d}/b`)).trim()).toBe('1');
    expect(await sh(`cat ${d}/b`)).toBe('one\ntwo\n');
    expect((await shTry(`cat ${d}/s`)).code).not.toBe(0);
  });

  it('xattrs: set, get, list, remove', async () => {
    const f = `${mnt}/xattr.txt`;
    await sh(`echo x > ${f} && setfattr -n user.color -v blue ${f} && setfattr -n user.shape -v round ${f}`);
    expect((await sh(`getfattr --only-values -n user.color ${f}`)).trim()).toBe('blue');
    const list = await sh(`getfattr -d ${f}`);
    expect(list).toContain('user.color="blue"');
    expect(list).toContain('user.shape="round"');
    await sh(`setfattr -x user.color ${f}`);
    expect((await shTry(`getfattr -n user.color ${f}`)).code).not.toBe(0);
    expect(await sh(`getfattr -d ${f}`)).not.toContain('user.color');
    // cp --preserve=xattr out of the mount carries them along
    await sh(`cp --preserve=xattr ${f} ${base}/xattr.copy`);
    expect((await sh(`getfattr --only-values -n user.shape ${base}/xattr.copy`)).trim()).toBe('round');
  });

  it('a 64 MiB file keeps its sha256', async () => {
    await sh(`head -c 67108864 /dev/urandom > ${base}/big.src`);
    await sh(`cp ${base}/big.src ${mnt}/big.bin`, { timeoutMs: 60_000 });
    expect((await stat(`${mnt}/big.bin`)).size).toBe(64 * 1024 * 1024);
    expect(await sh(`sha256sum < ${mnt}/big.bin`)).toBe(await sh(`sha256sum < ${base}/big.src`));
  });

  it('rename over an existing file replaces it', async () => {
    await sh(`printf new > ${mnt}/r-new && printf old-and-longer > ${mnt}/r-old && mv -f ${mnt}/r-new ${mnt}/r-old`);
    expect(await sh(`cat ${mnt}/r-old`)).toBe('new');
    expect((await shTry(`ls ${mnt}/r-new`)).code).not.toBe(0);
    // and a directory over an empty directory
    await sh(`mkdir -p ${mnt}/d1/sub ${mnt}/d2 && echo z > ${mnt}/d1/sub/z && mv -T ${mnt}/d1 ${mnt}/d2`);
    expect(await sh(`cat ${mnt}/d2/sub/z`)).toBe('z\n');
    expect((await shTry(`ls ${mnt}/d1`)).code).not.toBe(0);
  });

  it('a second client mounted afterwards reads the same bytes (close-to-open)', async () => {
    const mnt2 = path.join(base, 'mnt2');
    client2 = await startClient(server!.grpc, mnt2);
    expect(await shTry(`diff -r ${mnt}/tree ${mnt2}/tree`)).toEqual({ code: 0, out: '' });
    expect(await shTry(`diff -r ${TREE} ${mnt2}/tree`)).toEqual({ code: 0, out: '' });
    expect(await sh(`sha256sum < ${mnt2}/big.bin`)).toBe(await sh(`sha256sum < ${base}/big.src`));
    expect(await sh(`cat ${mnt2}/links/b`)).toBe('one\ntwo\n');
    expect((await sh(`getfattr --only-values -n user.shape ${mnt2}/xattr.txt`)).trim()).toBe('round');
    // Written and closed through client 1, then opened through client 2.
    await sh(`head -c 5000000 /dev/urandom > ${base}/c2o.src && cp ${base}/c2o.src ${mnt}/c2o.bin`);
    expect(Buffer.compare(await readFile(`${mnt2}/c2o.bin`), await readFile(`${base}/c2o.src`))).toBe(0);
    // And the other way round.
    await sh(`printf 'from client 2\\n' > ${mnt2}/from2.txt`);
    expect(await sh(`cat ${mnt}/from2.txt`)).toBe('from client 2\n');
  });

  it('rm -rf removes everything, seen from both clients', async () => {
    await sh(`rm -rf ${mnt}/tree ${mnt}/linux ${mnt}/links ${mnt}/d2`, { timeoutMs: 60_000 });
    await sh(`rm -f ${mnt}/*`);
    expect(await sh(`ls -A ${mnt}`)).toBe('');
    expect(await sh(`ls -A ${path.join(base, 'mnt2')}`)).toBe('');
  });

  it('SIGTERM stops a client with exit 0 and removes its mount; the server keeps serving', async () => {
    const c = client2!;
    c.child.kill('SIGTERM');
    expect(await exited(c)).toBe(0);
    client2 = null;
    expect(await isMounted(path.join(base, 'mnt2'))).toBe(false);
    await sh(`echo still > ${mnt}/still.txt`);
    expect(await sh(`cat ${mnt}/still.txt`)).toBe('still\n');
  });
});

describe('client mount next to a mount on the server daemon itself', () => {
  let base = '';
  let server: DaemonProc | null = null;
  let client: DaemonProc | null = null;

  beforeAll(async () => {
    base = await tempDir('client-srv');
    server = await startDaemon({ dataDir: path.join(base, 'data'), mount: path.join(base, 'smnt') });
    client = await startClient(server.grpc, path.join(base, 'cmnt'));
  });

  afterAll(async () => {
    for (const p of [client, server]) if (p) await stopDaemon(p);
    for (const d of ['smnt', 'cmnt']) await unmount(path.join(base, d));
    if (base) await removeDir(base);
  });

  it('what the client writes, the server mount reads, and the other way round', async () => {
    const smnt = path.join(base, 'smnt');
    const cmnt = path.join(base, 'cmnt');
    await sh(`cp -r ${TREE} ${cmnt}/tree`, { timeoutMs: 60_000 });
    expect(await shTry(`diff -r ${TREE} ${smnt}/tree`)).toEqual({ code: 0, out: '' });
    await sh(`head -c 20000000 /dev/urandom > ${base}/s.src && cp ${base}/s.src ${smnt}/s.bin`);
    expect(await sh(`sha256sum < ${cmnt}/s.bin`)).toBe(await sh(`sha256sum < ${base}/s.src`));
    await sh(`head -c 9000000 /dev/urandom > ${base}/c.src && cp ${base}/c.src ${cmnt}/c.bin`);
    expect(await sh(`sha256sum < ${smnt}/c.bin`)).toBe(await sh(`sha256sum < ${base}/c.src`));
    await sh(`rm -rf ${smnt}/tree`);
    expect((await sh(`ls -A ${cmnt}`)).split('\n').filter(Boolean).sort()).toEqual(['c.bin', 's.bin']);
  });
});

describe('what a killed client mount leaves behind is cleaned up by the leader', () => {
  let base = '';
  let server: DaemonProc | null = null;
  let client: DaemonProc | null = null;
  let holder: ChildProcess | null = null;

  beforeAll(async () => {
    base = await tempDir('client-gone');
    server = await startDaemon({ dataDir: path.join(base, 'data'), mount: path.join(base, 'smnt'), extraArgs: ['--session-idle', '5s', '--client-idle', '5s'] });
    client = await startClient(server.grpc, path.join(base, 'cmnt'));
  });

  afterAll(async () => {
    if (holder && holder.exitCode === null) holder.kill('SIGKILL');
    for (const p of [client, server]) if (p && p.child.exitCode === null) await stopDaemon(p);
    for (const d of ['smnt', 'cmnt']) await unmount(path.join(base, d));
    if (base) await removeDir(base);
  });

  /** Inodes in use, as statfs through the server's own mount reports them. */
  async function inodesUsed(): Promise<number> {
    const [total, free] = (await sh(`stat -f -c '%c %d' ${base}/smnt`)).trim().split(' ').map(Number);
    return total - free;
  }

  interface JanitorStatus {
    janitor: { sessionsClosed: number; clientsExpired: number; passes: number } | null;
  }

  it('kill -9 of a mount holding an unlinked file open: the file is reclaimed and its dedup records expire (--session-idle, --client-idle)', async () => {
    const cmnt = path.join(base, 'cmnt');
    await sh(`head -c 300000 /dev/urandom > ${cmnt}/held && mkdir ${cmnt}/d && touch ${cmnt}/d/a ${cmnt}/d/b`);
    // A process of this test keeps the file open through the client mount.
    const h = spawn('python3', ['-c', 'import sys,time; f=open(sys.argv[1],"rb"); print("open", flush=True); time.sleep(600)', `${cmnt}/held`], { stdio: ['ignore', 'pipe', 'inherit'] });
    holder = h;
    let said = '';
    h.stdout.on('data', (b: Buffer) => (said += b.toString()));
    await waitFor('the holder opened the file', 10_000, () => said.includes('open'));
    await sh(`rm ${cmnt}/held`);
    await waitFor('the name is gone on the server mount', 10_000, async () => (await shTry(`test -e ${base}/smnt/held`)).code !== 0);
    // Still open, so still counted (were it gone already, used - 1 below would never come).
    const used = await inodesUsed();

    h.kill('SIGKILL');
    await killDaemon(client!);
    await unmount(cmnt);

    await waitFor('the unlinked file of the killed mount is reclaimed', 40_000, async () => (await inodesUsed()) === used - 1);
    await waitFor('the janitor closed the session and expired client records', 40_000, async () => {
      const s = (await (await fetch(`http://${server!.http}/api/status`)).json()) as JanitorStatus;
      return (s.janitor?.sessionsClosed ?? 0) >= 1 && (s.janitor?.clientsExpired ?? 0) >= 1;
    });
    // The server's own mount is untouched: its files are all there and it still writes.
    expect((await sh(`ls ${base}/smnt/d`)).split('\n').filter(Boolean).sort()).toEqual(['a', 'b']);
    await sh(`echo ok > ${base}/smnt/after && cat ${base}/smnt/after`);
  });
});
