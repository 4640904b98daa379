// Crash consistency: kill -9 the daemon (namespace + chunk store + in-process mount)
// in the middle of copying a real tree into the mount, restart it on the same data dir
// and mount point, and check that every file whose close() had returned 0 before the
// kill is intact, the tree is consistent, and the filesystem still works.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, stat, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  childExit,
  withDeadline,
  type DaemonProc,
  isMounted,
  killDaemon,
  removeDir,
  sh,
  shTry,
  startDaemon,
  stopDaemon,
  tempDir,
  unmount,
  waitFor,
} from './harness.js';

const SOURCE = '/usr/include';

// Copies regular files one by one (open/write/close); only after close() returned
// does it append the relative path to a manifest outside the mount and fsync it.
// So the manifest lists exactly the files that were closed successfully.
const COPIER = String.raw`
import os, sys
src, dst, manifest = sys.argv[1], sys.argv[2], sys.argv[3]
mf = os.open(manifest, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for root, dirs, files in os.walk(src):
    dirs.sort()
    files.sort()
    rel = os.path.relpath(root, src)
    droot = dst if rel == '.' else os.path.join(dst, rel)
    os.makedirs(droot, exist_ok=True)
    for name in files:
        s = os.path.join(root, name)
        if os.path.islink(s) or not os.path.isfile(s):
            continue
        with open(s, 'rb') as f:
            data = f.read()
        fd = os.open(os.path.join(droot, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:off + 65536])
        os.close(fd)
        os.write(mf, (os.path.relpath(s, src) + '\n').encode())
        os.fsync(mf)
print('copied everything')
`;

async function countSourceFiles(): Promise<number> {
  return Number((await sh(`find ${SOURCE} -type f | wc -l`)).trim());
}

async function manifestLines(file: string): Promise<string[]> {
  try {
    return (await readFile(file, 'utf8')).split('\n').filter((l) => l.length > 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

describe('crash: kill -9 during cp of a real tree', () => {
  let base = '';
  let mnt = '';
  let dataDir = '';
  let daemon: DaemonProc | null = null;
  let copier: ChildProcess | null = null;
  let totalFiles = 0;

  async function startFs(): Promise<DaemonProc> {
    // The mount point is passed through extraArgs so that the harness does not touch it:
    // after a crash it is a dead FUSE mount (ENOTCONN) and the daemon itself must cope.
    daemon = await startDaemon({ dataDir, extraArgs: ['--mount', mnt, '--config', path.join(base, 'dfs.json')] });
    return daemon;
  }

  /** Copy SOURCE into the mount at `dstRel`, kill -9 the daemon once `killAfter` files were closed. */
  async function crashDuringCopy(dstRel: string, killAfter: number): Promise<string[]> {
    const manifest = path.join(base, `${dstRel}.manifest`);
    const dst = path.join(mnt, dstRel);
    let out = '';
    copier = spawn('python3', ['-c', COPIER, SOURCE, dst, manifest], { cwd: base, stdio: ['ignore', 'pipe', 'pipe'] });
    copier.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    copier.stderr!.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-20_000)));
    const c = copier;
    await waitFor(`${killAfter} files copied into the mount`, 60_000, async () => {
      if (c.exitCode !== null) throw new Error(`copier exited early (${c.exitCode}) after ${(await manifestLines(manifest)).length} files: ${out}`);
      return (await manifestLines(manifest)).length >= killAfter;
    });
    expect(c.exitCode, 'copier still running at the kill').toBeNull();
    // Leave the root's attributes in the kernel cache right before the crash: for
    // attrTimeoutS (30 s here) stat() of the dead mount keeps succeeding from the cache,
    // and the restart must still recognise the mount as dead.
    expect((await stat(mnt)).isDirectory()).toBe(true);
    await killDaemon(daemon!);
    daemon = null;
    // The copier's next request fails (the FUSE connection is gone); it must stop on its own.
    const code = await withDeadline('the copier to fail after the kill', 30_000, childExit(c));
    copier = null;
    expect(code, `copier should fail once the daemon is dead: ${out}`).not.toBe(0);
    const closed = await manifestLines(manifest);
    expect(closed.length).toBeGreaterThanOrEqual(killAfter);
    expect(closed.length, 'the kill happened before the copy finished').toBeLessThan(totalFiles);
    // A real crash leaves a dead mount behind (statfs always reaches the FUSE server).
    const err = await statfs(mnt).then(
      () => null,
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(err).toBe('ENOTCONN');
    expect(await isMounted(mnt)).toBe(true);
    return closed;
  }

  /** Every closed file is byte-identical; the tree can be walked, listed and read without errors. */
  async function verify(dstRel: string, closed: string[]): Promise<void> {
    const dst = path.join(mnt, dstRel);
    const bad: string[] = [];
    for (const rel of closed) {
      const want = await readFile(path.join(SOURCE, rel));
      let got: Buffer;
      try {
        got = await readFile(path.join(dst, rel));
      } catch (e) {
        bad.push(`${rel}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
        continue;
      }
      if (!got.equals(want)) bad.push(`${rel}: ${got.length} bytes, want ${want.length} (content differs)`);
    }
    expect(bad, 'closed-before-kill files that are missing or differ').toEqual([]);

    const find = await shTry(`find ${dst} -printf '%y %s %p\\n' 2>&1 >/dev/null`);
    expect(find, 'find over the tree').toEqual({ code: 0, out: '' });
    const ls = await shTry(`ls -lR ${dst} 2>&1 >/dev/null`);
    expect(ls, 'ls -lR over the tree').toEqual({ code: 0, out: '' });
    // Every file, including one cut short by the crash, reads without an I/O error.
    const cat = await shTry(`find ${dst} -type f -exec cat {} + 2>&1 >/dev/null`);
    expect(cat, 'reading every file of the tree').toEqual({ code: 0, out: '' });
    const listed = new Set((await sh(`cd ${dst} && find . -type f -printf '%P\\n'`)).split('\n').filter(Boolean));
    expect(closed.filter((r) => !listed.has(r))).toEqual([]);
  }

  /** The restarted mount works: a new file reads back, and the copied tree can be removed. */
  async function verifyUsable(dstRel: string): Promise<void> {
    const f = path.join(mnt, `after-crash-${dstRel}.bin`);
    await sh(`head -c 3000000 /dev/urandom > ${base}/new.src && cp ${base}/new.src ${f}`);
    expect(await sh(`sha256sum < ${f}`)).toBe(await sh(`sha256sum < ${base}/new.src`));
    await sh(`rm -rf ${path.join(mnt, dstRel)}`, { timeoutMs: 60_000 });
    expect((await sh(`ls -A ${mnt}`)).split('\n')).not.toContain(dstRel);
  }

  async function restartAfterCrash(): Promise<void> {
    await startFs();
    // The daemon replaced the dead mount with a live one by itself.
    expect(await isMounted(mnt)).toBe(true);
    expect((await stat(mnt)).isDirectory()).toBe(true);
  }

  afterEach(async () => {
    if (copier && copier.exitCode === null && copier.signalCode === null) {
      copier.kill('SIGKILL');
      await withDeadline('copier exit', 10_000, childExit(copier)).catch(() => undefined);
    }
    copier = null;
    if (daemon) await stopDaemon(daemon);
    daemon = null;
    if (mnt) await unmount(mnt);
    if (base) await removeDir(base);
  });

  async function setup(): Promise<void> {
    totalFiles ||= await countSourceFiles();
    expect(totalFiles).toBeGreaterThan(2000);
    base = await tempDir('crash');
    mnt = path.join(base, 'mnt');
    dataDir = path.join(base, 'data');
    await sh(`mkdir -p ${mnt} ${dataDir}`);
    await writeFile(path.join(base, 'dfs.json'), JSON.stringify({ attrTimeoutS: 30 }));
    await startFs();
  }

  it('kill -9 after ~300 files: closed files intact, stale mount replaced, fs usable', async () => {
    await setup();
    const closed = await crashDuringCopy('inc', 300);
    await restartAfterCrash();
    await verify('inc', closed);
    await verifyUsable('inc');
  });

  it('two crashes in a row (after ~1500 files, then ~200 more in another tree) lose no closed file', async () => {
    await setup();
    const first = await crashDuringCopy('inc1', 1500);
    await restartAfterCrash();
    const second = await crashDuringCopy('inc2', 200);
    await restartAfterCrash();
    await verify('inc1', first);
    await verify('inc2', second);
    // A graceful restart afterwards still sees the same state.
    await stopDaemon(daemon!);
    daemon = null;
    expect(await isMounted(mnt)).toBe(false);
    await startFs();
    await verify('inc1', first);
    await verifyUsable('inc1');
    await verifyUsable('inc2');
  });
});
