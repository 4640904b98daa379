// `dfs layout` and `dfs info` against a real daemon and mount: the CLI finds the daemon
// from the mount's fsname, layouts are inherited, bad input is one line and exit 1, and
// `dfs info` reports each copy's health from the holder (a flipped byte on disk = corrupt).
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, dfs, dfsJson, dfsOk, expectOneLineError, flipByte, MountedFs, sh, startClient, stopDaemon, type DaemonProc } from './harness.js';

const MiB = 1024 * 1024;

type Layout = { kind: 'replicas'; replicas: number } | { kind: 'ec'; k: number; m: number };
interface InfoJson {
  sizeBytes: number;
  layout: Layout;
  inline: boolean;
  healthy: boolean;
  unhealthyCopies: number;
  chunks: Array<{ index: number; chunkId: number; chunkIdHex: string; sizeBytes: number; copies: Array<{ kind: string; nodeId: string; address: string | null; health: string; detail: string | null }> }>;
}

describe('dfs layout and dfs info', () => {
  const fs = new MountedFs();
  let client: DaemonProc | null = null;
  beforeAll(async () => {
    await fs.start(['--chunk-size', String(MiB)]);
  });
  afterAll(async () => {
    if (client) await stopDaemon(client);
    await fs.stop();
  });

  it('shows names with control characters and non-UTF-8 bytes escaped, and takes the escaped form with --addr', async () => {
    // A name with a newline, an escape sequence and a byte that is not UTF-8, made with raw bytes.
    await sh(`python3 -c "import os; os.makedirs(b'${fs.mnt}/odd', exist_ok=True); open(b'${fs.mnt}/odd/a\\nb\\x1b[2J\\xff.txt', 'wb').write(b'data')"`);
    const shown = '/odd/a\\x0ab\\x1b[2J\\xff.txt';
    const out = await dfsOk(['info', shown, '--addr', fs.daemon!.grpc]);
    expect(out.split('\n')[0]).toBe(`${shown}: 4 bytes (4 B), layout replicas 1, chunk size 1.0 MiB, inode ${out.match(/inode (\d+)/)![1]}`);
    expect(out.includes('\x1b') || out.includes('\xff')).toBe(false);
    expect((await dfsJson<{ path: string; sizeBytes: number }>(['info', shown, '--addr', fs.daemon!.grpc])).path).toBe(shown);
    // Through the mount, a path with a control character (argv can carry it) is shown escaped.
    await sh(`printf x > '${fs.mnt}/odd/tab\there'`);
    expect((await dfsOk(['info', `${fs.mnt}/odd/tab\there`])).split(':')[0]).toBe(`${fs.mnt}/odd/tab\\x09here`);
    await sh(`rm -rf '${fs.mnt}/odd'`);
  });

  it('names the daemon address in the mount source', async () => {
    const source = (await sh(`findmnt -n -o SOURCE ${fs.mnt}`)).trim();
    expect(source).toMatch(/^dfs:[A-Za-z0-9._-]+@127\.0\.0\.1:\d+$/);
    expect(source.endsWith(`@${fs.daemon!.grpc}`)).toBe(true);
  });

  it('sets and gets a directory layout, inherited by new subdirectories and files', async () => {
    const d = path.join(fs.mnt, 'lay');
    await sh(`mkdir ${d}`);
    // A new one-node cluster's root starts with one replica (it cannot hold the default 3).
    expect(await dfsOk(['layout', 'get', d])).toBe(`${d}: replicas 1\n`);
    expect(await dfsOk(['layout', 'set', d, '--replicas', '2'])).toMatch(/: replicas 2 /);
    expect((await dfsJson<{ layout: Layout }>(['layout', 'get', d])).layout).toEqual({ kind: 'replicas', replicas: 2 });
    expect((await dfsJson<{ layout: Layout }>(['layout', 'set', d, '--ec', '4+2'])).layout).toEqual({ kind: 'ec', k: 4, m: 2 });
    await sh(`mkdir ${d}/sub && echo x > ${d}/sub/f && echo y > ${d}/g`);
    for (const p of [d, `${d}/sub`, `${d}/sub/f`, `${d}/g`]) {
      expect((await dfsJson<{ layout: Layout }>(['layout', 'get', p])).layout, p).toEqual({ kind: 'ec', k: 4, m: 2 });
    }
    expect((await dfsJson<{ type: string }>(['layout', 'get', `${d}/g`])).type).toBe('file');
    // A later change reaches only what is created afterwards.
    await dfsOk(['layout', 'set', d, '--replicas', '1']);
    await sh(`echo z > ${d}/h`);
    expect(await dfsOk(['layout', 'get', `${d}/h`])).toBe(`${d}/h: replicas 1\n`);
    expect(await dfsOk(['layout', 'get', `${d}/g`])).toBe(`${d}/g: ec 4+2\n`);
    expect(await dfsOk(['layout', 'get', `${d}/sub`])).toBe(`${d}/sub: ec 4+2\n`);
    // The mount root is inode 1; a relative path resolves too.
    expect(await dfsOk(['layout', 'get', fs.mnt])).toBe(`${fs.mnt}: replicas 1\n`);
    expect(await sh(`cd ${d} && node ${CLI} layout get sub`)).toBe('sub: ec 4+2\n');
    // --addr with a path in the filesystem, for a node without a mount.
    expect(await dfsOk(['layout', 'get', '/lay/sub', '--addr', fs.daemon!.grpc])).toBe('/lay/sub: ec 4+2\n');
  });

  it('refuses bad input with one line and exit 1', async () => {
    const d = path.join(fs.mnt, 'bad');
    await sh(`mkdir ${d} && echo x > ${d}/file`);
    expectOneLineError(await dfs(['layout', 'set', fs.base, '--replicas', '2']), /is not inside a dfs mount/);
    expectOneLineError(await dfs(['layout', 'get', '/proc']), /is not inside a dfs mount/);
    expectOneLineError(await dfs(['layout', 'set', d, '--replicas', '0']), /--replicas must be an integer from 1 to 16/);
    expectOneLineError(await dfs(['layout', 'set', d, '--replicas', '17']), /--replicas must be an integer from 1 to 16/);
    expectOneLineError(await dfs(['layout', 'set', d, '--ec', '6+x']), /--ec: .*not of the form k\+m/);
    expectOneLineError(await dfs(['layout', 'set', d, '--ec', '6+9']), /--ec: /);
    expectOneLineError(await dfs(['layout', 'set', d]), /exactly one of --replicas N or --ec K\+M/);
    expectOneLineError(await dfs(['layout', 'set', d, '--replicas', '2', '--ec', '4+2']), /exactly one of/);
    expectOneLineError(await dfs(['layout', 'set', `${d}/file`, '--replicas', '2']), /is not a directory/);
    expectOneLineError(await dfs(['layout', 'get', `${d}/nope`]), /no such file or directory/);
    expectOneLineError(await dfs(['layout', 'get', '/bad/nope', '--addr', fs.daemon!.grpc]), /no such file or directory/);
    expectOneLineError(await dfs(['info', d]), /is not a regular file/);
    // Nothing was changed by the refused calls.
    expect(await dfsOk(['layout', 'get', d])).toBe(`${d}: replicas 1\n`);
  });

  it('shows every chunk of a multi-chunk file ok, then a flipped byte on disk as corrupt (exit 1)', async () => {
    const d = path.join(fs.mnt, 'data');
    await sh(`mkdir ${d}`);
    await dfsOk(['layout', 'set', d, '--replicas', '1']);
    const f = path.join(d, 'big');
    await sh(`head -c ${3.5 * MiB} /dev/urandom > ${f}`);
    const info = await dfsJson<InfoJson>(['info', f]);
    expect(info).toMatchObject({ sizeBytes: 3.5 * MiB, layout: { kind: 'replicas', replicas: 1 }, inline: false, healthy: true, unhealthyCopies: 0 });
    expect(info.chunks.map((c) => [c.index, c.sizeBytes])).toEqual([
      [0, MiB],
      [1, MiB],
      [2, MiB],
      [3, MiB / 2],
    ]);
    for (const c of info.chunks) {
      expect(c.copies.length).toBe(1);
      expect(c.copies[0]).toMatchObject({ kind: 'replica', address: fs.daemon!.grpc, health: 'ok' });
    }
    const text = await dfsOk(['info', f]);
    expect(text).toMatch(/layout replicas 1/);
    expect(text).toMatch(/all 4 copies ok/);

    // Flip one byte of chunk 2's object, in its data (past the header), on disk.
    const victim = info.chunks[2];
    const file = (await sh(`find ${fs.daemon!.dataDir} -type f -name ${victim.chunkIdHex}`)).trim();
    expect(file, 'object file of chunk 2').not.toBe('');
    await flipByte(file, -1000);
    const bad = await dfs(['info', f, '--json']);
    expect(bad.code, bad.stderr).toBe(1);
    const badInfo = JSON.parse(bad.stdout) as InfoJson;
    expect(badInfo.healthy).toBe(false);
    expect(badInfo.unhealthyCopies).toBe(1);
    expect(badInfo.chunks.map((c) => c.copies[0].health)).toEqual(['ok', 'ok', 'corrupt', 'ok']);
    expect(badInfo.chunks[2].copies[0].detail).toMatch(/checksum mismatch/);
    const badText = await dfs(['info', f]);
    expect(badText.code).toBe(1);
    expect(badText.stdout).toMatch(new RegExp(`^2 +${victim.chunkIdHex} .* corrupt \\(block \\d+ checksum mismatch\\)$`, 'm'));
    expect(badText.stdout).toMatch(/1 of 4 copies NOT ok/);
    // Without verify only the header and length are checked: the copy looks present.
    expect((await dfs(['info', f, '--no-verify'])).code).toBe(0);
    // The daemon logged the damage.
    expect(fs.daemon!.output()).toMatch(/chunk object corrupt/);
  });

  it('shows a small file as inline', async () => {
    const f = path.join(fs.mnt, 'small.txt');
    await sh(`printf 'hello' > ${f}`);
    const r = await dfs(['info', f]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^.*small\.txt: 5 bytes/);
    expect(r.stdout).toMatch(/inline \(stored in the namespace\)/);
    expect(await dfsJson<InfoJson>(['info', f])).toMatchObject({ sizeBytes: 5, inline: true, chunks: [], healthy: true });
  });

  it('works through a client-only mount (its fsname names the daemon it connects to)', async () => {
    const mnt = path.join(fs.base, 'client-mnt');
    client = await startClient(fs.daemon!.grpc, mnt);
    expect((await sh(`findmnt -n -o SOURCE ${mnt}`)).trim()).toBe(`dfs:client@${fs.daemon!.grpc}`);
    expect(await dfsOk(['layout', 'get', path.join(mnt, 'lay', 'sub')])).toBe(`${path.join(mnt, 'lay', 'sub')}: ec 4+2\n`);
    await dfsOk(['layout', 'set', path.join(mnt, 'lay'), '--replicas', '2']);
    expect(await dfsOk(['layout', 'get', path.join(fs.mnt, 'lay')])).toBe(`${path.join(fs.mnt, 'lay')}: replicas 2\n`);
    expect((await dfsJson<InfoJson>(['info', path.join(mnt, 'small.txt')])).inline).toBe(true);
    await stopDaemon(client);
    client = null;
  });
});
