// The binding ceiling probe (scripts/memfs-probe.mjs: MemoryVfs behind dfs's own FUSE
// binding and adapter), proven with real shell tools on a real mount: what fsbench runs
// on it must behave as on any filesystem, or its figures mean nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { childExit, isMounted, removeDir, ROOT, sh, shTry, tempDir, unmount, waitFor, withDeadline } from './harness.js';

const PROBE = path.join(ROOT, 'scripts', 'memfs-probe.mjs');

describe('memfs probe: an in-memory VFS behind our FUSE binding', () => {
  let base = '';
  let mnt = '';
  let src = '';
  let probe: ChildProcess | null = null;
  let output = '';

  beforeAll(async () => {
    base = await tempDir('memfs');
    mnt = path.join(base, 'mnt');
    src = path.join(base, 'src');
    await mkdir(mnt);
    // A source tree on local disk with what tools trip on: nesting, hard links,
    // symlinks (dangling too), empty files, names with spaces, a file larger than a block,
    // odd modes and old times.
    await sh(
      [
        `mkdir -p ${src}/a/b/c ${src}/'with space' ${src}/empty-dir`,
        `cp -r /usr/include/linux ${src}/include-linux`,
        `head -c 3000000 /dev/urandom > ${src}/a/big.bin`,
        `printf 'hello\\n' > ${src}/a/b/c/hello.txt`,
        `: > ${src}/a/empty`,
        `ln ${src}/a/b/c/hello.txt ${src}/a/hard-hello`,
        `ln -s b/c/hello.txt ${src}/a/sym-hello`,
        `ln -s nowhere ${src}/a/dangling`,
        `printf x > ${src}/'with space'/'a file'`,
        `chmod 0640 ${src}/a/empty && chmod 0750 ${src}/a/b`,
        `touch -h -d '2001-02-03 04:05:06.123456789 UTC' ${src}/a/big.bin ${src}/a/sym-hello`,
        `tar -cf ${base}/tree.tar -C ${src} .`,
      ].join(' && '),
    );
    probe = spawn(process.execPath, [PROBE, mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
    probe.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    probe.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    await waitFor('the memfs probe to mount', 20_000, () => {
      if (probe!.exitCode !== null) throw new Error(`probe exited with ${probe!.exitCode}: ${output}`);
      return output.includes(`mounted ${mnt}`);
    });
  });

  afterAll(async () => {
    if (probe && probe.exitCode === null && probe.signalCode === null) {
      probe.kill('SIGTERM');
      const timer = setTimeout(() => probe?.kill('SIGKILL'), 10_000);
      await childExit(probe);
      clearTimeout(timer);
    }
    if (mnt) await unmount(mnt);
    if (base) await removeDir(base);
  });

  it('is mounted with the options dfs mounts with', async () => {
    const line = (await sh(`grep ' ${mnt} ' /proc/self/mounts`)).trim();
    expect(line).toMatch(/^memvfs \S+ fuse\.dfs /);
    expect(line).toMatch(/allow_other/);
    expect(line).toMatch(/default_permissions/);
  });

  it('cp -a of a tree: diff -r finds nothing, links, modes and times kept', async () => {
    await sh(`cp -a ${src} ${mnt}/copy`);
    await sh('sync; echo 3 > /proc/sys/vm/drop_caches');
    await sh(`diff -r --no-dereference ${src} ${mnt}/copy`);
    const st = (p: string) => sh(`stat -c '%h %a %s %y' ${p}`).then((s) => s.trim());
    expect(await st(`${mnt}/copy/a/hard-hello`)).toBe(await st(`${src}/a/hard-hello`));
    expect((await st(`${mnt}/copy/a/hard-hello`)).split(' ')[0]).toBe('2');
    expect(await sh(`stat -c '%i' ${mnt}/copy/a/hard-hello ${mnt}/copy/a/b/c/hello.txt | uniq | wc -l`)).toBe('1\n');
    expect(await st(`${mnt}/copy/a/empty`)).toBe(await st(`${src}/a/empty`));
    expect(await st(`${mnt}/copy/a/b`)).toMatch(/^\d+ 750 /);
    expect(await sh(`TZ=UTC stat -c %y ${mnt}/copy/a/big.bin`)).toBe('2001-02-03 04:05:06.123456789 +0000\n');
    expect(await sh(`readlink ${mnt}/copy/a/sym-hello`)).toBe('b/c/hello.txt\n');
    expect(await sh(`cat ${mnt}/copy/a/sym-hello`)).toBe('hello\n');
    expect(await sh(`sha256sum < ${mnt}/copy/a/big.bin`)).toBe(await sh(`sha256sum < ${src}/a/big.bin`));
  });

  it('cp -r (what fsbench runs) and tar -x give the same tree', async () => {
    await sh(`cp -r ${src} ${mnt}/cp-r`);
    await sh(`diff -r --no-dereference ${src} ${mnt}/cp-r`);
    await sh(`mkdir ${mnt}/untar && tar -xf ${base}/tree.tar -C ${mnt}/untar`);
    await sh('sync; echo 3 > /proc/sys/vm/drop_caches');
    await sh(`diff -r --no-dereference ${src} ${mnt}/untar`);
    expect(await sh(`find ${mnt}/untar | wc -l`)).toBe(await sh(`find ${src} | wc -l`));
  });

  it('mv within and across directories, over a file, and of a directory', async () => {
    const d = `${mnt}/mv`;
    await sh(`mkdir -p ${d}/x ${d}/y && echo one > ${d}/x/f && echo two > ${d}/y/g`);
    await sh(`mv ${d}/x/f ${d}/x/f2 && mv ${d}/x/f2 ${d}/y/g`);
    expect(await sh(`cat ${d}/y/g`)).toBe('one\n');
    expect(await sh(`ls -A ${d}/x`)).toBe('');
    await sh(`mv ${d}/y ${d}/x/`);
    expect(await sh(`cat ${d}/x/y/g`)).toBe('one\n');
    expect(await sh(`stat -c %h ${d} ${d}/x`)).toBe('3\n3\n');
    const into = await shTry(`mv ${d}/x ${d}/x/y/`);
    expect(into.code).not.toBe(0);
  });

  it('ln: hard links across directories keep nlink; rm of one keeps the data', async () => {
    const d = `${mnt}/ln`;
    await sh(`mkdir -p ${d}/p ${d}/q && echo data > ${d}/p/f && ln ${d}/p/f ${d}/q/f && ln -s ../p/f ${d}/q/s`);
    expect(await sh(`stat -c %h ${d}/p/f`)).toBe('2\n');
    await sh(`rm ${d}/p/f`);
    expect(await sh(`stat -c %h ${d}/q/f && cat ${d}/q/f`)).toBe('1\ndata\n');
    const dangling = await shTry(`cat ${d}/q/s`);
    expect(dangling.code).not.toBe(0);
    expect(await sh(`stat -c %F ${d}/q/s`)).toBe('symbolic link\n');
  });

  it('an unlinked file stays readable through an open descriptor', async () => {
    const f = `${mnt}/open-unlinked`;
    const out = await sh(`echo kept > ${f} && exec 3< ${f} && rm ${f} && cat <&3 && test ! -e ${f} && echo gone`);
    expect(out).toBe('kept\ngone\n');
  });

  it('truncate, append, fsync and utimens through the tools', async () => {
    const f = `${mnt}/t`;
    await sh(`head -c 1000000 /dev/urandom > ${f} && truncate -s 10 ${f} && truncate -s 20 ${f}`);
    expect(await sh(`stat -c %s ${f} && tail -c 10 ${f} | od -An -tx1 | tr -d ' \\n'`)).toBe('20\n' + '00'.repeat(10));
    await sh(`echo more >> ${f} && python3 -c "import os; fd=os.open('${f}', os.O_RDWR); os.fsync(fd); os.close(fd)"`);
    expect(await sh(`stat -c %s ${f}`)).toBe('25\n');
    await sh(`touch -d '1960-06-01 00:00:00 UTC' ${f}`);
    expect(await sh(`stat -c %Y ${f}`)).toBe(`${Date.UTC(1960, 5, 1) / 1000}\n`);
    await sh(`setfattr -n user.k -v val ${f}`);
    expect(await sh(`getfattr --only-values -n user.k ${f}`)).toBe('val');
  });

  it('rm -rf empties it', async () => {
    await sh(`rm -rf ${mnt}/copy ${mnt}/cp-r ${mnt}/untar ${mnt}/mv ${mnt}/ln ${mnt}/t`);
    expect(await sh(`ls -A ${mnt}`)).toBe('');
    expect(await sh(`stat -c %h ${mnt}`)).toBe('2\n');
  });

  it('SIGTERM unmounts and exits 0', async () => {
    probe!.kill('SIGTERM');
    expect(await withDeadline('the probe to exit', 10_000, childExit(probe!))).toBe(0);
    await waitFor('the mount to be gone', 5_000, async () => !(await isMounted(mnt)));
  });
});
