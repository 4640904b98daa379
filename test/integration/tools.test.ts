// Real shell tools over a real mount: cp -r + diff -r, tar round trips (content and
// mtimes), git, rsync, and a 5000-entry directory.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { MountedFs, dropCaches, removeDir, sh, tempDir } from './harness.js';

/**
 * `find -printf` of a tree, sorted: relative path, type, mode, size (not for directories:
 * their st_size is filesystem-specific), mtime (ns precision), link target.
 */
function listing(dir: string): Promise<string> {
  return sh(
    `cd ${dir} && find . -mindepth 1 \\( -type d -printf '%P d %m - %T@\\n' \\) -o -printf '%P %y %m %s %T@ %l\\n' | LC_ALL=C sort`,
  );
}

describe('real tools on a real mount', () => {
  const fs = new MountedFs();
  let local = '';
  beforeAll(async () => {
    await fs.start();
    local = await tempDir('tools-local');
  });
  afterAll(async () => {
    await fs.stop();
    if (local) await removeDir(local);
  });

  it('cp -r of /usr/include subsets, then diff -r after dropping caches', async () => {
    const src = ['/usr/include/linux', '/usr/include/x86_64-linux-gnu', '/usr/include/c++', '/usr/include/python3.11'];
    const count = Number((await sh(`find ${src.join(' ')} -type f | wc -l`)).trim());
    expect(count).toBeGreaterThanOrEqual(2000);
    const dst = path.join(fs.mnt, 'inc');
    await sh(`mkdir ${dst} && cp -r ${src.join(' ')} ${dst}/`, { timeoutMs: 120_000 });
    await dropCaches();
    for (const s of src) {
      // diff -r exits non-zero on any difference or on an entry present on one side only.
      await sh(`diff -r ${s} ${dst}/${path.basename(s)}`, { timeoutMs: 120_000 });
    }
    const copied = Number((await sh(`find ${dst} -type f | wc -l`)).trim());
    expect(copied).toBe(count);
    // Same names, types and sizes (cp -r copies symlinks as symlinks).
    for (const s of src) {
      const a = await sh(`cd ${s} && find . \\( -type d -printf '%P d\\n' \\) -o -printf '%P %y %s\\n' | LC_ALL=C sort`);
      const b = await sh(`cd ${dst}/${path.basename(s)} && find . \\( -type d -printf '%P d\\n' \\) -o -printf '%P %y %s\\n' | LC_ALL=C sort`);
      expect(b).toBe(a);
    }
  }, 120_000);

  it('tar c of a tree on the mount, extracted elsewhere on the mount, is identical', async () => {
    const tree = path.join(fs.mnt, 'tartree');
    await sh(
      `mkdir -p ${tree}/a/b/c ${tree}/empty && cp -r /usr/include/linux/netfilter ${tree}/a/b/ ` +
        `&& head -c 3000000 /dev/urandom > ${tree}/a/big.bin && printf '' > ${tree}/zero ` +
        `&& ln -s a/big.bin ${tree}/link && ln ${tree}/a/big.bin ${tree}/a/b/c/hard && chmod 0750 ${tree}/a/b`,
    );
    const out = path.join(fs.mnt, 'tarout');
    await sh(`mkdir ${out} && tar --format=posix -C ${fs.mnt} -cf - tartree | tar -C ${out} -xpf -`);
    await dropCaches();
    await sh(`diff -r --no-dereference ${tree} ${out}/tartree`);
    expect(await listing(`${out}/tartree`)).toBe(await listing(tree));
    expect(await sh(`stat -c %h ${out}/tartree/a/big.bin`)).toBe('2\n');
    expect(await sh(`stat -c %i ${out}/tartree/a/big.bin`)).toBe(await sh(`stat -c %i ${out}/tartree/a/b/c/hard`));
  });

  it('tar -x of a local tarball onto the mount keeps mtimes exactly (ns), modes and content', async () => {
    const src = path.join(local, 'tsrc');
    await sh(
      `mkdir -p ${src}/d/e && printf 'one\\n' > ${src}/f1 && head -c 200000 /dev/urandom > ${src}/d/f2 ` +
        `&& printf 'x' > ${src}/d/e/f3 && chmod 0604 ${src}/d/e/f3 ` +
        `&& touch -d '2003-04-05 06:07:08.123456789' ${src}/f1 && touch -d '1999-12-31 23:59:59.000000001' ${src}/d/f2 ` +
        `&& touch -d '2010-10-10 10:10:10.5' ${src}/d/e/f3 && touch -d '2011-01-01 00:00:00.987654321' ${src}/d/e ` +
        `&& touch -d '2012-02-02 02:02:02.2' ${src}/d`,
    );
    const tarball = path.join(local, 't.tar');
    // POSIX format stores sub-second mtimes.
    await sh(`tar --format=posix -C ${local} -cf ${tarball} tsrc`);
    const dst = path.join(fs.mnt, 'tx');
    await sh(`mkdir ${dst} && tar -C ${dst} -xpf ${tarball}`);
    await dropCaches();
    await sh(`diff -r ${src} ${dst}/tsrc`);
    const want = await listing(src);
    expect(want).toContain('f1 f 644 4 1049522828.1234567890');
    expect(await listing(`${dst}/tsrc`)).toBe(want);
    expect(await sh(`stat -c '%y' ${dst}/tsrc/f1`)).toMatch(/^2003-04-05 06:07:08\.123456789 /);
  });

  it('git init, add, commit, branch, checkout, log, status on the mount', async () => {
    const repo = path.join(fs.mnt, 'repo');
    const env = {
      ...process.env,
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@e',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@e',
      GIT_CONFIG_NOSYSTEM: '1',
      HOME: local,
    };
    const g = (cmd: string) => sh(`git -c init.defaultBranch=main -c safe.directory='*' ${cmd}`, { cwd: repo, env });
    await sh(`mkdir ${repo}`);
    await g('init -q');
    await sh(`printf 'alpha\\n' > a.txt && mkdir sub && head -c 100000 /dev/urandom | base64 > sub/b.txt`, { cwd: repo });
    await g('add -A');
    await g('commit -q -m first');
    const mainA = await sh('sha256sum a.txt sub/b.txt', { cwd: repo });
    expect(await g('status --porcelain')).toBe('');

    await g('checkout -q -b feature');
    await sh(`printf 'beta\\n' >> a.txt && printf 'new\\n' > c.txt && rm sub/b.txt`, { cwd: repo });
    expect((await g('status --porcelain')).split('\n').filter(Boolean).sort()).toEqual([' D sub/b.txt', ' M a.txt', '?? c.txt']);
    await g('add -A');
    await g('commit -q -m second');
    expect(await g('status --porcelain')).toBe('');
    expect(await g('log --format=%s')).toBe('second\nfirst\n');
    expect(await g(`branch --format='%(refname:short)'`)).toBe('feature\nmain\n');

    await g('checkout -q main');
    expect(await sh('sha256sum a.txt sub/b.txt', { cwd: repo })).toBe(mainA);
    expect(await sh('ls', { cwd: repo })).toBe('a.txt\nsub\n');
    expect(await g('log --format=%s')).toBe('first\n');
    expect(await g('status --porcelain')).toBe('');

    await g('checkout -q feature');
    expect(await sh('cat a.txt; cat c.txt; ls', { cwd: repo })).toBe('alpha\nbeta\nnew\na.txt\nc.txt\n'); // git removed the emptied sub/
    await dropCaches();
    await g('fsck --full --strict');
    expect(await g('status --porcelain')).toBe('');
  });

  it('rsync -a onto the mount keeps mtimes and modes exactly; a second run transfers nothing', async () => {
    const src = path.join(local, 'rsrc');
    await sh(
      `mkdir -p ${src}/x/y && head -c 700000 /dev/urandom > ${src}/x/big && printf 'hi' > ${src}/x/y/small ` +
        `&& chmod 0640 ${src}/x/y/small && ln -s y/small ${src}/x/ln ` +
        `&& touch -d '2005-05-05 05:05:05.555555555' ${src}/x/big && touch -h -d '2006-06-06 06:06:06.666' ${src}/x/ln ` +
        // rsync itself compares directory mtimes at 1 s granularity, so give them old ones.
        `&& touch -d '2007-07-07 07:07:07.777777777' ${src}/x/y && touch -d '2008-08-08 08:08:08.8' ${src}/x`,
    );
    const dst = path.join(fs.mnt, 'rdst');
    await sh(`rsync -a ${src}/ ${dst}/`);
    await dropCaches();
    await sh(`diff -r --no-dereference ${src} ${dst}`);
    expect(await listing(dst)).toBe(await listing(src));
    const again = await sh(`rsync -ai ${src}/ ${dst}/`);
    expect(again).toBe('');
  });

  it('a 5000-entry directory lists exactly with ls and ls -l', async () => {
    const dir = path.join(fs.mnt, 'many');
    await sh(`mkdir ${dir} && cd ${dir} && seq -f 'file-%05g' 1 5000 | xargs touch`, { timeoutMs: 60_000 });
    await sh(`chmod 0600 ${dir}/file-01234 && printf 'abc' > ${dir}/file-04999`);
    await dropCaches();
    expect(await sh(`ls ${dir} | wc -l`)).toBe('5000\n');
    expect(await sh(`ls ${dir}`)).toBe(await sh(`seq -f 'file-%05g' 1 5000`));
    const long = (await sh(`ls -l --time-style=+ ${dir}`)).split('\n').filter(Boolean);
    expect(long[0]).toMatch(/^total \d+$/);
    const want = Array.from({ length: 5000 }, (_, i) => {
      const name = `file-${String(i + 1).padStart(5, '0')}`;
      if (i + 1 === 1234) return `-rw------- 1 root root 0  ${name}`;
      if (i + 1 === 4999) return `-rw-r--r-- 1 root root 3  ${name}`;
      return `-rw-r--r-- 1 root root 0  ${name}`;
    });
    expect(long.slice(1)).toEqual(want);
    // readdir must not repeat or drop names.
    expect(await sh(`find ${dir} -mindepth 1 | sort | uniq -d | wc -l`)).toBe('0\n');
    expect(await sh(`rm -r ${dir} && ls ${fs.mnt} | grep -c '^many$' || true`)).toBe('0\n');
  });
});
