// The command line: `dfs dev up|status|down`, `dfs status`, `dfs daemon` start-up
// errors and `dfs raft transfer-leader` errors (each one line `dfs: ...` on stderr and a
// non-zero exit), graceful SIGTERM, and a daemon configured entirely from a --config file.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import {
  CLI,
  type DaemonProc,
  dfs,
  exited,
  expectOneLineError,
  freePort,
  httpReady,
  isMounted,
  removeDir,
  sh,
  startDaemon,
  stopDaemon,
  tempDir,
  unmount,
  waitFor,
} from './harness.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let base = '';
const started: DaemonProc[] = [];
const devPids: number[] = [];
const mounts: string[] = [];

afterEach(async () => {
  for (const p of started.splice(0)) await stopDaemon(p);
});

afterAll(async () => {
  for (const pid of devPids) {
    if (!alive(pid)) continue;
    process.kill(pid, 'SIGTERM');
    await waitFor(`dev daemon ${pid} to exit`, 15_000, () => !alive(pid)).catch(() => {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    });
  }
  for (const m of mounts) await unmount(m);
  if (base) await removeDir(base);
});

async function tmp(name: string): Promise<string> {
  if (!base) base = await tempDir('cli');
  const d = path.join(base, name);
  await mkdir(d, { recursive: true });
  return d;
}

async function daemon(opts: Parameters<typeof startDaemon>[0]): Promise<DaemonProc> {
  if (opts.mount) mounts.push(opts.mount);
  const p = await startDaemon(opts);
  started.push(p);
  return p;
}

describe('dfs dev up / status / down', () => {
  it('brings a one-node cluster up with a working mount, reports it, and stops it gracefully', async () => {
    const dir = await tmp('dev');
    const mnt = path.join(dir, 'mnt');
    const dataDir = path.join(dir, 'data');
    mounts.push(mnt);
    const basePort = 20_000 + Math.floor(Math.random() * 20_000);
    const up = await dfs(['dev', 'up', '--nodes', '1', '--mount', mnt, '--data-dir', dataDir, '--base-port', String(basePort)], 90_000);
    const st = JSON.parse(await readFile(path.join(dataDir, 'dev.json'), 'utf8').catch(() => '{"nodes":[]}')) as { nodes: Array<{ pid: number }> };
    devPids.push(...st.nodes.map((n) => n.pid));
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).toBe('');
    expect(st.nodes).toHaveLength(1);
    const pid = st.nodes[0].pid;
    // The table names what runs where.
    expect(up.stdout).toContain(String(pid));
    expect(up.stdout).toMatch(new RegExp(`127\\.0\\.0\\.1:\\d+\\s+127\\.0\\.0\\.1:\\d+`));
    expect(up.stdout).toContain(path.join(dataDir, 'node1'));
    expect(up.stdout).toContain(mnt);

    // The mount works.
    expect(await isMounted(mnt)).toBe(true);
    await sh(`printf 'dev cluster\\n' > ${mnt}/f && mkdir ${mnt}/d && cp ${mnt}/f ${mnt}/d/g`);
    expect(await sh(`cat ${mnt}/d/g`)).toBe('dev cluster\n');

    const status = await dfs(['dev', 'status', '--json', '--data-dir', dataDir]);
    expect(status.code, status.stderr).toBe(0);
    const s = JSON.parse(status.stdout) as {
      leader: string;
      nodes: Array<{ nodeId: string; pid: number; grpc: string; http: string; dataDir: string; mount: string | null; ready: boolean }>;
    };
    expect(s.nodes).toHaveLength(1);
    const n = s.nodes[0];
    expect(n).toMatchObject({ nodeId: 'node1', pid, dataDir: path.join(dataDir, 'node1'), mount: mnt, ready: true });
    expect(n.grpc).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(n.http).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(Number(n.grpc.split(':')[1])).toBeGreaterThanOrEqual(basePort);
    expect(s.leader).toBe('node1');
    expect(await httpReady(n.http)).toBe(true);

    const cs = await dfs(['status', '--data-dir', dataDir, '--json']);
    expect(cs.code, cs.stderr).toBe(0);
    const c = JSON.parse(cs.stdout) as { leader: string; healthy: boolean; nodes: Array<{ nodeId: string; address: string }>; capacity: { files: number } };
    expect(c.healthy).toBe(true);
    expect(c.leader).toBe('node1');
    expect(c.nodes.map((x) => [x.nodeId, x.address])).toEqual([['node1', n.grpc]]);
    expect(c.capacity.files).toBeGreaterThanOrEqual(3);

    // A second `dev up` on the same data dir refuses and leaves the running one alone.
    const again = await dfs(['dev', 'up', '--nodes', '1', '--mount', mnt, '--data-dir', dataDir, '--base-port', String(basePort)], 60_000);
    expectOneLineError(again, /already running/);
    expect(alive(pid)).toBe(true);

    const down = await dfs(['dev', 'down', '--data-dir', dataDir], 60_000);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain(`pid ${pid}`);
    expect(alive(pid)).toBe(false);
    expect(await isMounted(mnt)).toBe(false);
    // Graceful: the daemon stopped itself (SIGTERM path), it was not SIGKILLed.
    expect(await readFile(path.join(dataDir, 'node1', 'daemon.log'), 'utf8')).toContain('daemon stopped');
    const after = await dfs(['dev', 'status', '--json', '--data-dir', dataDir]);
    expect(after.code).toBe(0);
    expect((JSON.parse(after.stdout) as { nodes: unknown[] }).nodes).toEqual([]);
    // The data survives: a node restarted on the same data dir has the files.
    const d = await daemon({ dataDir: path.join(dataDir, 'node1'), mount: mnt });
    expect(await sh(`cat ${mnt}/d/g`)).toBe('dev cluster\n');
    const st2 = await dfs(['status', '--addr', d.grpc, '--json']);
    expect((JSON.parse(st2.stdout) as { leader: string }).leader).toBe('node1');
  });
});

describe('dfs daemon start-up errors: one line on stderr, exit 1', () => {
  it('a mount point that does not exist', async () => {
    const dir = await tmp('e-nomount');
    const r = await dfs(['daemon', '--data-dir', path.join(dir, 'data'), '--listen', `127.0.0.1:${await freePort()}`, '--mount', path.join(dir, 'missing')]);
    expectOneLineError(r, /mount point .*missing.* does not exist/);
    // Checked before the data dir is touched: nothing was created there.
    expect(await readdir(dir)).toEqual([]);
  });

  it('a mount point that is a live mount already', async () => {
    const dir = await tmp('e-busy');
    const mnt = path.join(dir, 'mnt');
    const first = await daemon({ dataDir: path.join(dir, 'd1'), mount: mnt });
    await sh(`echo first > ${mnt}/f`);
    const r = await dfs(['daemon', '--data-dir', path.join(dir, 'd2'), '--listen', `127.0.0.1:${await freePort()}`, '--mount', mnt]);
    expectOneLineError(r, /mount point .* is busy: already mounted/);
    // and the live mount was left alone
    expect(await sh(`cat ${mnt}/f`)).toBe('first\n');
    expect(first.child.exitCode).toBeNull();
    // same for a client-only mount
    const c = await dfs(['mount', first.grpc, mnt]);
    expectOneLineError(c, /is busy: already mounted/);
    expect(await sh(`cat ${mnt}/f`)).toBe('first\n');
  });

  it('a gRPC or HTTP port in use, before anything is written to a fresh data dir', async () => {
    const dir = await tmp('e-port');
    const fresh = path.join(dir, 'fresh');
    await mkdir(fresh);
    const missing = path.join(dir, 'missing');
    const holder = net.createServer();
    await new Promise<void>((resolve, reject) => {
      holder.once('error', reject);
      holder.listen(0, '127.0.0.1', () => resolve());
    });
    try {
      const port = (holder.address() as net.AddressInfo).port;
      const r = await dfs(['daemon', '--data-dir', fresh, '--listen', `127.0.0.1:${port}`]);
      expectOneLineError(r, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: address already in use$`));
      // no node id, Raft log, namespace or chunk dir: the next start bootstraps as if new
      expect(await readdir(fresh)).toEqual([]);
      const h = await dfs(['daemon', '--data-dir', missing, '--listen', `127.0.0.1:${await freePort()}`, '--http', `127.0.0.1:${port}`]);
      expectOneLineError(h, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} \\(http\\): address already in use$`));
      expect(existsSync(missing), 'the data dir was not even created').toBe(false);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('an unusable data dir (a path under a regular file)', async () => {
    const dir = await tmp('e-datadir');
    await writeFile(path.join(dir, 'file'), 'not a directory');
    const bad = path.join(dir, 'file', 'x');
    const r = await dfs(['daemon', '--data-dir', bad, '--listen', `127.0.0.1:${await freePort()}`]);
    expectOneLineError(r, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*ENOTDIR`));
  });

  it('a data dir already used by a running daemon', async () => {
    const dir = await tmp('e-locked');
    await daemon({ dataDir: path.join(dir, 'data') });
    const r = await dfs(['daemon', '--data-dir', path.join(dir, 'data'), '--listen', `127.0.0.1:${await freePort()}`]);
    expectOneLineError(r, /is in use by another dfs daemon/);
  });

  it('bad config files: missing, invalid JSON, unknown key, wrong type', async () => {
    const dir = await tmp('e-config');
    const missing = await dfs(['daemon', '--config', path.join(dir, 'none.json')]);
    expectOneLineError(missing, /config file .*none\.json: ENOENT/);
    await writeFile(path.join(dir, 'bad.json'), '{"dataDir": "x",');
    expectOneLineError(await dfs(['daemon', '--config', path.join(dir, 'bad.json')]), /bad\.json: not valid JSON/);
    await writeFile(path.join(dir, 'unknown.json'), JSON.stringify({ dataDir: path.join(dir, 'd'), listen: '127.0.0.1:1', mountpoint: '/mnt' }));
    expectOneLineError(await dfs(['daemon', '--config', path.join(dir, 'unknown.json')]), /unknown key 'mountpoint'/);
    await writeFile(path.join(dir, 'type.json'), JSON.stringify({ dataDir: path.join(dir, 'd'), listen: 7000 }));
    expectOneLineError(await dfs(['daemon', '--config', path.join(dir, 'type.json')]), /listen: expected a string/);
  });

  it('--node-id that does not match the id stored in the data dir', async () => {
    const dir = await tmp('e-nodeid');
    const dataDir = path.join(dir, 'data');
    const first = await daemon({ dataDir, extraArgs: ['--node-id', 'alpha'] });
    expect(await stopDaemon(first)).toBe(0);
    started.splice(started.indexOf(first), 1);
    const r = await dfs(['daemon', '--data-dir', dataDir, '--listen', `127.0.0.1:${await freePort()}`, '--node-id', 'beta']);
    expectOneLineError(r, /belongs to node 'alpha', not 'beta'/);
    // The stored id is untouched: without --node-id the daemon is alpha again.
    const again = await daemon({ dataDir });
    const st = await dfs(['status', '--addr', again.grpc, '--json']);
    expect(st.code, st.stderr).toBe(0);
    expect((JSON.parse(st.stdout) as { leader: string }).leader).toBe('alpha');
  });
});

describe('dfs raft transfer-leader: one line on stderr, exit 1', () => {
  it('an address where no daemon answers', async () => {
    const addr = `127.0.0.1:${await freePort()}`;
    const r = await dfs(['raft', 'transfer-leader', 'node2', '--addr', addr]);
    expectOneLineError(r, new RegExp(`cannot reach a dfs daemon at ${addr.replace(/\./g, '\\.')}$`));
  });

  it('a node that is not a voter; the leader itself is a no-op', async () => {
    const dir = await tmp('transfer');
    const d = await daemon({ dataDir: path.join(dir, 'data'), extraArgs: ['--node-id', 'solo'] });
    expectOneLineError(await dfs(['raft', 'transfer-leader', 'ghost', '--addr', d.grpc]), /'ghost' is not a voter of this cluster/);
    const ok = await dfs(['raft', 'transfer-leader', 'solo', '--addr', d.grpc]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe('solo already leads\n');
  });
});

describe('dfs daemon lifecycle', () => {
  it('SIGTERM of a mounted daemon: exit 0, mount gone, data kept', async () => {
    const dir = await tmp('sigterm');
    const mnt = path.join(dir, 'mnt');
    const p = await daemon({ dataDir: path.join(dir, 'data'), mount: mnt });
    await sh(`head -c 3000000 /dev/urandom > ${dir}/f.src && cp ${dir}/f.src ${mnt}/f`);
    p.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      exited(p),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve('no exit within 20 s'), 20_000);
      }),
    ]);
    clearTimeout(timer);
    expect(code, p.output()).toBe(0);
    expect(await isMounted(mnt)).toBe(false);
    const again = await daemon({ dataDir: path.join(dir, 'data'), mount: mnt });
    expect(again.pid).not.toBe(p.pid);
    expect(await sh(`sha256sum < ${mnt}/f`)).toBe(await sh(`sha256sum < ${dir}/f.src`));
  });

  it('SIGTERM while a file is still open for writing: exit 0, mount gone, the written bytes kept', async () => {
    const dir = await tmp('sigterm-open');
    const mnt = path.join(dir, 'mnt');
    const p = await daemon({ dataDir: path.join(dir, 'data'), mount: mnt });
    // A writer that keeps its file open (no close, no fsync) until its stdin closes.
    const holderScript = `import os,sys\nfd=os.open(sys.argv[1],os.O_WRONLY|os.O_CREAT,0o644)\nos.write(fd,bytes(range(256))*8192)\nprint('written',flush=True)\nsys.stdin.read()\n`;
    const holder = spawn('python3', ['-c', holderScript, path.join(mnt, 'held.bin')], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    let hout = '';
    holder.stdout.on('data', (b: Buffer) => (hout += b.toString()));
    try {
      await waitFor('the writer to have written', 15_000, () => {
        if (holder.exitCode !== null) throw new Error(`writer exited: ${hout}`);
        return hout.includes('written');
      });
      p.child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        exited(p),
        new Promise<string>((resolve) => {
          timer = setTimeout(() => resolve('no exit within 20 s'), 20_000);
        }),
      ]);
      clearTimeout(timer);
      expect(code, p.output()).toBe(0);
      expect(await isMounted(mnt)).toBe(false);
    } finally {
      holder.stdin.end();
      if (holder.exitCode === null) holder.kill('SIGKILL');
    }
    await daemon({ dataDir: path.join(dir, 'data'), mount: mnt });
    const got = await readFile(path.join(mnt, 'held.bin'));
    expect(got.length).toBe(256 * 8192);
    expect(got.equals(Buffer.from(Array.from({ length: 256 * 8192 }, (_, i) => i % 256)))).toBe(true);
  });

  it('dfs daemon --config FILE takes listen, http, dataDir, mount and nodeId from the file', async () => {
    const dir = await tmp('config');
    const mnt = path.join(dir, 'mnt');
    await mkdir(mnt);
    mounts.push(mnt);
    const listen = `127.0.0.1:${await freePort()}`;
    const http = `127.0.0.1:${await freePort()}`;
    const file = path.join(dir, 'dfs.json');
    await writeFile(file, JSON.stringify({ dataDir: path.join(dir, 'data'), listen, http, mount: mnt, nodeId: 'fromfile', logLevel: 'warn' }, null, 2));
    const child = spawn(process.execPath, [CLI, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const p: DaemonProc = { child, pid: child.pid!, grpc: listen, http, dataDir: path.join(dir, 'data'), mount: mnt, logFile: '', output: () => out };
    started.push(p);
    await waitFor('the daemon configured from a file to be ready', 30_000, async () => {
      if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}: ${out}`);
      return httpReady(http);
    });
    expect(await isMounted(mnt)).toBe(true);
    await sh(`echo configured > ${mnt}/c.txt`);
    expect(await sh(`cat ${mnt}/c.txt`)).toBe('configured\n');
    const st = await dfs(['status', '--addr', listen, '--json']);
    expect(st.code, st.stderr).toBe(0);
    expect((JSON.parse(st.stdout) as { leader: string }).leader).toBe('fromfile');
    expect(JSON.parse(await readFile(path.join(dir, 'data', 'node.json'), 'utf8'))).toEqual({ nodeId: 'fromfile' });
    // logLevel from the file: warn, so no info lines
    expect(out).not.toContain('"msg":"daemon ready"');
    // Command-line options override the file.
    child.kill('SIGTERM');
    expect(await exited(p)).toBe(0);
    expect(await isMounted(mnt)).toBe(false);
    const r = await dfs(['daemon', '--config', file, '--node-id', 'other']);
    expectOneLineError(r, /belongs to node 'fromfile', not 'other'/);
  });
});
