// Mount point checks before mounting, and unmounting from outside the process.
import { execFile } from 'node:child_process';
import { readFile, stat, statfs } from 'node:fs/promises';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export class MountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MountError';
  }
}

/** Decode the octal escapes of /proc/self/mountinfo paths (\040 for space...). */
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
}

export async function listMounts(): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const fields = left.split(' ');
    const rightFields = (right ?? '').split(' ');
    out.push({ mountpoint: unescapeMountPath(fields[4]), fstype: rightFields[0] ?? '', source: rightFields[1] ?? '' });
  }
  return out;
}

/** Lazily detach a FUSE mount (as `fusermount3 -uz`). */
export async function lazyUnmount(dir: string): Promise<void> {
  for (const cmd of ['fusermount3', 'fusermount']) {
    try {
      await execFileAsync(cmd, ['-uz', dir], { timeout: 10_000 });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new MountError(`cannot unmount ${dir}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  await execFileAsync('umount', ['-l', dir], { timeout: 10_000 });
}

/**
 * Whether the mount at `dir` has lost its FUSE server (ENOTCONN). stat() alone is not
 * enough: the kernel answers it from the attribute cache for up to the attribute timeout
 * after the server died, so a dead mount looks alive. statfs() always asks the server.
 */
async function isDeadMount(dir: string): Promise<boolean> {
  for (const probe of [() => stat(dir), () => statfs(dir)]) {
    try {
      await probe();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOTCONN') return true;
    }
  }
  return false;
}

/**
 * Make sure `dir` can be mounted on: it exists, is a directory, and nothing lives there.
 * A dead dfs mount left by a killed daemon (ENOTCONN) is detached and reused.
 * Returns true when a stale mount was cleaned.
 */
export async function prepareMountpoint(dir: string): Promise<boolean> {
  const mounted = (await listMounts()).filter((m) => m.mountpoint === dir);
  if (mounted.length > 0) {
    const top = mounted[mounted.length - 1];
    const stale = await isDeadMount(dir);
    if (!stale || !top.fstype.startsWith('fuse')) {
      throw new MountError(`mount point ${dir} is busy: already mounted (${top.fstype} from ${top.source})`);
    }
    await lazyUnmount(dir);
  }
  let st;
  try {
    st = await stat(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new MountError(`mount point ${dir} does not exist`);
    throw new MountError(`mount point ${dir}: ${code ?? String(e)}`);
  }
  if (!st.isDirectory()) throw new MountError(`mount point ${dir} is not a directory`);
  return mounted.length > 0;
}
