// Walks the namespace under a directory for `dfs fsck` and `dfs nodes what-if-lost`:
// every regular file once (hard links by their first path), with bounded directories in
// flight and readdir/getChunks in pages. Works against any MetaApi (the gRPC client, or
// a MetaStore in tests). Operating errors are WalkError with a one-line message.
import path from 'node:path';
import type { MetaApi } from '../meta/api.js';
import { Errno, S_IFDIR, S_IFMT, S_IFREG, type Attr, type ChunkRef, type Ino } from '../meta/types.js';

export class WalkError extends Error {
  override name = 'WalkError';
}

export interface WalkedFile {
  /** Shown path: the root's path joined with the names under it. */
  path: string;
  attr: Attr;
}

export interface WalkOptions {
  /** Directories read at once; also bounds the files visited at once. */
  concurrency: number;
  /** Entries asked per readdir call (the server caps it at READDIR_PAGE_MAX). */
  pageSize: number;
}

export const DEFAULT_WALK_OPTIONS: WalkOptions = { concurrency: 4, pageSize: 512 };

export interface WalkStats {
  dirs: number;
  files: number;
}

function errnoText(errno: number): string {
  return Object.entries(Errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`;
}

/**
 * Calls `visit` for every regular file under `root` (or for `root` itself when it is a
 * file), at most `concurrency` at a time. Entries that vanish while walking are skipped;
 * any other namespace error ends the walk with a WalkError.
 */
export async function walkFiles(
  api: Pick<MetaApi, 'getattr' | 'readdir'>,
  root: { ino: Ino; path: string },
  visit: (f: WalkedFile) => Promise<void>,
  opts: WalkOptions = DEFAULT_WALK_OPTIONS,
): Promise<WalkStats> {
  if (!(opts.concurrency >= 1 && opts.pageSize >= 1)) throw new Error('walkFiles: concurrency and pageSize must be >= 1');
  const stats: WalkStats = { dirs: 0, files: 0 };
  const top = await api.getattr(root.ino);
  if (!top.ok) throw new WalkError(`${root.path}: getattr failed: ${errnoText(top.errno)}`);
  const type = top.value.mode & S_IFMT;
  if (type === S_IFREG) {
    stats.files++;
    await visit({ path: root.path, attr: top.value });
    return stats;
  }
  if (type !== S_IFDIR) return stats;

  // Inodes of files with several links already visited (only those: one id per such file).
  const linked = new Set<Ino>();
  const pending: Array<{ ino: Ino; path: string }> = [{ ino: root.ino, path: root.path }];

  const readDir = async (dir: { ino: Ino; path: string }): Promise<void> => {
    stats.dirs++;
    let after: string | null = null;
    for (;;) {
      const r = await api.readdir(dir.ino, after, opts.pageSize);
      if (!r.ok) {
        if (r.errno === Errno.ENOENT) return; // removed while we walked
        throw new WalkError(`${dir.path}: readdir failed: ${errnoText(r.errno)}`);
      }
      for (const e of r.value.entries) {
        const p = path.posix.join(dir.path, e.name);
        if (e.type === S_IFDIR) pending.push({ ino: e.ino, path: p });
        else if (e.type === S_IFREG) {
          if (e.attr.nlink > 1) {
            if (linked.has(e.ino)) continue;
            linked.add(e.ino);
          }
          stats.files++;
          await visit({ path: p, attr: e.attr });
        }
      }
      if (r.value.done || r.value.entries.length === 0) return;
      after = r.value.entries[r.value.entries.length - 1].name;
    }
  };

  await new Promise<void>((resolve, reject) => {
    let active = 0;
    let failed = false;
    const pump = (): void => {
      if (failed) return;
      while (active < opts.concurrency && pending.length > 0) {
        const dir = pending.pop()!;
        active++;
        readDir(dir).then(
          () => {
            active--;
            pump();
          },
          (e: unknown) => {
            failed = true;
            reject(e instanceof Error ? e : new Error(String(e)));
          },
        );
      }
      if (active === 0 && pending.length === 0) resolve();
    };
    pump();
  });
  return stats;
}

/** Chunk refs asked per GetChunks call (the server caps a page at 4096). */
export const CHUNK_PAGE = 1024;

/**
 * A file's chunk refs, one page (by index range) at a time; `onPage` may stop early by
 * returning false. Returns false when the file vanished meanwhile.
 */
export async function forEachChunkPage(
  api: Pick<MetaApi, 'getChunks'>,
  attr: Attr,
  onPage: (refs: ChunkRef[]) => Promise<boolean | void>,
  pageSize = CHUNK_PAGE,
): Promise<boolean> {
  const count = attr.chunkSizeBytes > 0 ? Math.ceil(attr.size / attr.chunkSizeBytes) : 0;
  // Pages by index range, not by "last index + 1": a page may come back short because of holes.
  for (let from = 0; from < Math.max(count, 1); from += pageSize) {
    const r = await api.getChunks(attr.ino, from, pageSize);
    if (!r.ok) {
      if (r.errno === Errno.ENOENT) return false;
      throw new WalkError(`listing chunks of inode ${attr.ino} failed: ${errnoText(r.errno)}`);
    }
    const refs = r.value.filter((c) => c.index < from + pageSize);
    if (refs.length > 0 && (await onPage(refs)) === false) return true;
  }
  return true;
}
