// Error numbers through a real mount, and permission checks for a non-root user
// (default_permissions: the kernel checks mode/uid/gid against what dfs reports).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { MountedFs, py, sh, shTry } from './harness.js';

/** Runs each `name: expression` in python and prints `name OK` or `name ERRNAME`. */
const PRELUDE = `
import errno, os, sys
m = sys.argv[1]
def t(name, f):
    try:
        f(); print(name, 'OK')
    except OSError as e:
        print(name, errno.errorcode[e.errno])
`;

describe('errno cases on a real mount', () => {
  const fs = new MountedFs();
  const m = (p: string) => path.join(fs.mnt, p);
  beforeAll(async () => {
    await fs.start();
    // mkdtemp makes the base 0700; let other users reach the mount point.
    await sh(`chmod 0711 ${fs.base}`);
    await sh(`mkdir ${m('d')} ${m('d/full')} && printf x > ${m('d/full/f')} && printf y > ${m('d/file')}`);
  });
  afterAll(async () => {
    await fs.stop();
  });

  it('ENOENT, EEXIST, ENOTEMPTY, ENOTDIR, EISDIR, ENAMETOOLONG, EINVAL', async () => {
    const out = await py(
      PRELUDE +
        `
d = m + '/d'
t('stat-missing', lambda: os.stat(d + '/nope'))
t('open-missing', lambda: os.open(d + '/nope', os.O_RDONLY))
t('open-in-missing-dir', lambda: os.open(d + '/nope/x', os.O_CREAT | os.O_WRONLY, 0o644))
t('unlink-missing', lambda: os.unlink(d + '/nope'))
t('rmdir-missing', lambda: os.rmdir(d + '/nope'))
t('rename-missing', lambda: os.rename(d + '/nope', d + '/nope2'))
t('mkdir-new', lambda: os.mkdir(d + '/new'))
t('mkdir-again', lambda: os.mkdir(d + '/new'))
t('mkdir-over-file', lambda: os.mkdir(d + '/file'))
t('excl-create-existing', lambda: os.open(d + '/file', os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
t('excl-create-new', lambda: os.close(os.open(d + '/excl', os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)))
t('excl-create-again', lambda: os.open(d + '/excl', os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
t('link-existing', lambda: os.link(d + '/file', d + '/excl'))
t('symlink-existing', lambda: os.symlink('t', d + '/file'))
t('rmdir-nonempty', lambda: os.rmdir(d + '/full'))
t('rename-dir-over-nonempty', lambda: os.rename(d + '/new', d + '/full'))
t('rmdir-file', lambda: os.rmdir(d + '/file'))
t('file-as-dir-stat', lambda: os.stat(d + '/file/x'))
t('file-as-dir-create', lambda: os.open(d + '/file/x', os.O_CREAT | os.O_WRONLY, 0o644))
t('listdir-file', lambda: os.listdir(d + '/file'))
t('rename-dir-over-file', lambda: os.rename(d + '/new', d + '/file'))
t('open-dir-wronly', lambda: os.open(d + '/full', os.O_WRONLY))
t('open-dir-rdwr', lambda: os.open(d + '/full', os.O_RDWR))
t('unlink-dir', lambda: os.unlink(d + '/full'))
t('rename-file-over-dir', lambda: os.rename(d + '/file', d + '/full'))
t('name-255', lambda: os.close(os.open(d + '/' + 'a' * 255, os.O_CREAT | os.O_WRONLY, 0o644)))
t('name-256-create', lambda: os.open(d + '/' + 'b' * 256, os.O_CREAT | os.O_WRONLY, 0o644))
t('name-256-mkdir', lambda: os.mkdir(d + '/' + 'c' * 256))
t('name-256-stat', lambda: os.stat(d + '/' + 'c' * 256))
t('name-256-rename', lambda: os.rename(d + '/file', d + '/' + 'e' * 256))
t('rename-into-self', lambda: os.rename(d + '/full', d + '/full/sub'))
t('rmdir-dot', lambda: os.rmdir(d + '/full/.'))
`,
      [fs.mnt],
    );
    expect(out).toBe(
      [
        'stat-missing ENOENT',
        'open-missing ENOENT',
        'open-in-missing-dir ENOENT',
        'unlink-missing ENOENT',
        'rmdir-missing ENOENT',
        'rename-missing ENOENT',
        'mkdir-new OK',
        'mkdir-again EEXIST',
        'mkdir-over-file EEXIST',
        'excl-create-existing EEXIST',
        'excl-create-new OK',
        'excl-create-again EEXIST',
        'link-existing EEXIST',
        'symlink-existing EEXIST',
        'rmdir-nonempty ENOTEMPTY',
        'rename-dir-over-nonempty ENOTEMPTY',
        'rmdir-file ENOTDIR',
        'file-as-dir-stat ENOTDIR',
        'file-as-dir-create ENOTDIR',
        'listdir-file ENOTDIR',
        'rename-dir-over-file ENOTDIR',
        'open-dir-wronly EISDIR',
        'open-dir-rdwr EISDIR',
        'unlink-dir EISDIR',
        'rename-file-over-dir EISDIR',
        'name-255 OK',
        'name-256-create ENAMETOOLONG',
        'name-256-mkdir ENAMETOOLONG',
        'name-256-stat ENAMETOOLONG',
        'name-256-rename ENAMETOOLONG',
        'rename-into-self EINVAL',
        'rmdir-dot EINVAL',
        '',
      ].join('\n'),
    );
    // Nothing half-created by the failures.
    expect(await sh(`ls ${m('d')} | LC_ALL=C sort`)).toBe(`${'a'.repeat(255)}\nexcl\nfile\nfull\nnew\n`);
    expect(await sh(`cat ${m('d/file')} ${m('d/full/f')}`)).toBe('yx');
  });

  it('shell tools report the same errors', async () => {
    expect((await shTry(`mkdir ${m('d/full')}`)).out).toContain('File exists');
    expect((await shTry(`rmdir ${m('d/full')}`)).out).toContain('Directory not empty');
    expect((await shTry(`cat ${m('d/none')}`)).out).toContain('No such file or directory');
    expect((await shTry(`printf z > ${m('d/full')}`)).out).toContain('Is a directory');
    expect((await shTry(`ls ${m('d/file/x')}`)).out).toContain('Not a directory');
    expect((await shTry(`touch ${m('d/' + 'n'.repeat(256))}`)).out).toContain('File name too long');
  });

  it('EACCES for a non-root user (nobody): 0700 dir, 0644 root file, search permission', async () => {
    const nobody = 'setpriv --reuid=65534 --regid=65534 --clear-groups';
    await sh(
      `mkdir ${m('priv')} && chmod 0700 ${m('priv')} && printf secret > ${m('priv/s')} ` +
        `&& printf ro > ${m('ro')} && chmod 0644 ${m('ro')} && mkdir ${m('pub')} && chmod 0755 ${m('pub')} ` +
        `&& mkdir ${m('noexec')} && chmod 0744 ${m('noexec')} && printf v > ${m('noexec/v')} && chmod 0644 ${m('noexec/v')} ` +
        `&& printf mine > ${m('pub/nobodys')} && chown 65534:65534 ${m('pub/nobodys')} && chmod 0600 ${m('pub/nobodys')}`,
    );
    const ls = await shTry(`${nobody} ls ${m('priv')}`);
    expect(ls.code).not.toBe(0);
    expect(ls.out).toContain('Permission denied');
    const cat = await shTry(`${nobody} cat ${m('priv/s')}`);
    expect(cat.code).not.toBe(0);
    expect(cat.out).toContain('Permission denied');
    // Readable but not writable.
    expect(await sh(`${nobody} cat ${m('ro')}`)).toBe('ro');
    const w = await shTry(`${nobody} bash -c 'printf x >> ${m('ro')}'`);
    expect(w.code).not.toBe(0);
    expect(w.out).toContain('Permission denied');
    const tr = await shTry(`${nobody} truncate -s 0 ${m('ro')}`);
    expect(tr.code).not.toBe(0);
    expect(tr.out).toContain('Permission denied');
    expect(await sh(`cat ${m('ro')}`)).toBe('ro');
    // Cannot create in, or delete from, a root 0755 directory.
    const cr = await shTry(`${nobody} touch ${m('pub/new')}`);
    expect(cr.out).toContain('Permission denied');
    const rmr = await shTry(`${nobody} rm -f ${m('pub/nobodys')}`);
    expect(rmr.out).toContain('Permission denied');
    // Read permission on a dir without search (x) permission: names listable, entries not.
    expect(await sh(`${nobody} ls ${m('noexec')} 2>/dev/null || true`)).toBe('v\n');
    const nx = await shTry(`${nobody} cat ${m('noexec/v')}`);
    expect(nx.out).toContain('Permission denied');
    // chmod/chown of someone else's file: EPERM.
    const chm = await shTry(`${nobody} chmod 0777 ${m('ro')}`);
    expect(chm.out).toContain('Operation not permitted');
    const cho = await shTry(`${nobody} chown 65534 ${m('ro')}`);
    expect(cho.out).toContain('Operation not permitted');
    // The owner can use their own 0600 file; root's utime by nobody is refused.
    expect(await sh(`${nobody} cat ${m('pub/nobodys')}`)).toBe('mine');
    await sh(`${nobody} bash -c 'printf +more >> ${m('pub/nobodys')}'`);
    expect(await sh(`cat ${m('pub/nobodys')}`)).toBe('mine+more');
    const ut = await shTry(`${nobody} touch -d 2001-01-01 ${m('ro')}`);
    expect(ut.out).toMatch(/Operation not permitted|Permission denied/);
    // Files nobody creates in a world-writable dir are owned by nobody.
    await sh(`mkdir ${m('tmpdir')} && chmod 1777 ${m('tmpdir')} && ${nobody} bash -c 'umask 022; printf n > ${m('tmpdir/n')}; mkdir ${m('tmpdir/nd')}'`);
    expect(await sh(`stat -c '%u %g %a' ${m('tmpdir/n')} ${m('tmpdir/nd')}`)).toBe('65534 65534 644\n65534 65534 755\n');
    // Sticky dir: root's file there cannot be removed by nobody.
    await sh(`printf r > ${m('tmpdir/rootfile')}`);
    const st = await shTry(`${nobody} rm -f ${m('tmpdir/rootfile')}`);
    expect(st.out).toMatch(/Operation not permitted|Permission denied/);
    expect(await sh(`cat ${m('tmpdir/rootfile')}`)).toBe('r');
  });
});
