// What `dfs layout` and `dfs info` need: find the daemon and inode behind a path in a dfs
// mount, and collect a file's chunks with the health of every copy (Stat on its holder).
// Operating errors are InspectError with a one-line message for the CLI.
import { parseShownPath, showBytes, showPath } from './names.js';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { ChunkError, type ChunkStat } from '../chunks/api.js';
import { ChunkClient } from '../chunks/grpc.js';
import { chunkIdHex } from '../chunks/store.js';
import { listMounts, type MountEntry } from '../fuse/mountpoint.js';
import type { MetaClient } from '../meta/grpc.js';
import { Errno, ROOT_INO, S_IFDIR, S_IFMT, S_IFREG, type Attr, type ChunkRef, type Ino, type Layout, type Timespec } from '../meta/types.js';

export class InspectError extends Error {
  override name = 'InspectError';
}

/** Type of the mounts the daemon makes (fuse + subtype=dfs). */
export const DFS_FSTYPE = 'fuse.dfs';
/** Chunk refs asked for per GetChunks call (the server caps a page at GET_CHUNKS_MAX = 4096). */
const CHUNK_PAGE = 1024;
/** Stat calls in flight at once across all holders: a big file must not flood the servers. */
const STAT_CONCURRENCY = 8;

export function errnoName(errno: number): string {
  return Object.entries(Errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`;
}

/** `dfs:<node>@<address>` (the daemon's fsname) → its parts; null for anything else. */
export function parseFsname(source: string): { nodeId: string; address: string } | null {
  const m = /^dfs:([^@]+)@(\S+)$/.exec(source);
  return m ? { nodeId: m[1], address: m[2] } : null;
}

/** The innermost dfs mount holding `absPath` (mounts in /proc/self/mountinfo order: later ones are on top). */
export function innermostDfsMount(mounts: MountEntry[], absPath: string): MountEntry | null {
  let best: MountEntry | null = null;
  for (const m of mounts) {
    const inside = absPath === m.mountpoint || absPath.startsWith(m.mountpoint === '/' ? '/' : `${m.mountpoint}/`);
    if (!inside) continue;
    // Any mount at or under the best one hides it, dfs or not.
    if (best === null || m.mountpoint.length >= best.mountpoint.length) best = m;
  }
  return best && best.fstype === DFS_FSTYPE ? best : null;
}

/** The wall clock for a command's ctime (the namespace takes times from the client). */
export function wallClock(): Timespec {
  const ms = Date.now();
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1_000_000 };
}

export function layoutText(l: Layout): string {
  return l.kind === 'replicas' ? `replicas ${l.replicas}` : `ec ${l.k}+${l.m}`;
}

export function isDirAttr(a: Attr): boolean {
  return (a.mode & S_IFMT) === S_IFDIR;
}

/** A path resolved to the daemon to ask and the inode it names. */
export interface Located {
  /** gRPC address of a daemon of the cluster. */
  address: string;
  ino: Ino;
  /** The path as the user gave it, for messages. */
  shown: string;
}

function fsErrorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'ENOTCONN') return 'the dfs mount is not connected (is its daemon running?)';
  if (code === 'EACCES') return 'permission denied';
  return code ?? String(e);
}

/**
 * A path inside a mounted dfs: the daemon comes from the mount's fsname, the inode from
 * stat() (the FUSE layer reports namespace inode numbers as st_ino).
 */
export async function locateInMount(p: string): Promise<Located> {
  let real: string;
  try {
    real = await realpath(p);
  } catch (e) {
    throw new InspectError(`${p}: ${fsErrorText(e)}`);
  }
  const mount = innermostDfsMount(await listMounts(), real);
  if (!mount) throw new InspectError(`${p} is not inside a dfs mount`);
  const fs = parseFsname(mount.source);
  if (!fs) throw new InspectError(`the dfs mount at ${mount.mountpoint} (${mount.source}) does not name its daemon; remount it or use --addr`);
  let ino: number;
  try {
    ino = real === mount.mountpoint ? ROOT_INO : (await stat(real)).ino;
  } catch (e) {
    throw new InspectError(`${p}: ${fsErrorText(e)}`);
  }
  return { address: fs.address, ino, shown: showPath(p) };
}

/**
 * An absolute path in the namespace, walked from the root with lookups (symlinks are not
 * followed). It is taken in the form the CLI shows names (`\xHH` for any byte, `\\` for a
 * backslash: src/daemon/names.ts), so every name can be addressed, valid UTF-8 or not.
 */
export async function locateInNamespace(client: MetaClient, address: string, nsPath: string): Promise<Located> {
  const bytes = parseShownPath(nsPath);
  const shown = showBytes(bytes);
  if (!bytes.startsWith('/')) throw new InspectError(`with --addr, PATH is a path in the filesystem starting with '/', not '${shown}'`);
  let ino = ROOT_INO;
  for (const name of path.posix.normalize(bytes).split('/').filter((n) => n !== '' && n !== '.')) {
    if (name === '..') throw new InspectError(`${shown}: '..' is not supported with --addr`);
    const r = await client.lookup(ino, name);
    if (!r.ok) throw new InspectError(`${shown}: ${r.errno === Errno.ENOENT ? 'no such file or directory' : errnoName(r.errno)}`);
    ino = r.value.ino;
  }
  return { address, ino, shown };
}

export async function getattrOrFail(client: MetaClient, loc: Located): Promise<Attr> {
  const r = await client.getattr(loc.ino);
  if (!r.ok) throw new InspectError(`${loc.shown}: getattr failed: ${errnoName(r.errno)}`);
  return r.value;
}

/** Parses `--replicas N` / `--ec K+M` into a layout, with the limits of the data path. */
export function parseLayoutOptions(o: { replicas?: string; ec?: string }, parseEc: (text: string) => { k: number; m: number }): Layout {
  if ((o.replicas === undefined) === (o.ec === undefined)) throw new InspectError('give exactly one of --replicas N or --ec K+M');
  if (o.replicas !== undefined) {
    const n = Number(o.replicas);
    if (!/^\d+$/.test(o.replicas.trim()) || n < 1 || n > 16) throw new InspectError(`--replicas must be an integer from 1 to 16, not '${o.replicas}'`);
    return { kind: 'replicas', replicas: n };
  }
  try {
    const { k, m } = parseEc(o.ec!);
    return { kind: 'ec', k, m };
  } catch (e) {
    throw new InspectError(`--ec: ${(e as Error).message.replace(/^ec: /, '')}`);
  }
}

export type CopyHealth = 'ok' | 'missing' | 'corrupt' | 'unreachable' | 'error';

export interface CopyInfo {
  /** 'replica' for replicated files, 'shard' for EC (shards 0..k-1 data, k.. parity). */
  kind: 'replica' | 'shard';
  number: number;
  nodeId: string;
  /** null when the node is not in the cluster's member list. */
  address: string | null;
  health: CopyHealth;
  /** Data length of the object the holder has, when it has one. */
  objectSizeBytes: number | null;
  /** Why a copy is not ok. */
  detail: string | null;
}

export interface ChunkInfoView {
  index: number;
  chunkId: number;
  chunkIdHex: string;
  sizeBytes: number;
  /** The chunk's EC scheme when it is erasure coded; null for replicas. */
  ec: { k: number; m: number } | null;
  copies: CopyInfo[];
}

/** The EC scheme a ref carries, if the namespace records one per chunk. */
function refEc(ref: ChunkRef): { k: number; m: number } | null {
  const ec = (ref as { ec?: { k: number; m: number } }).ec;
  return ec ? { k: ec.k, m: ec.m } : null;
}

export interface FileInfo {
  ino: Ino;
  sizeBytes: number;
  chunkSizeBytes: number;
  layout: Layout;
  /** The data lives in the namespace (small file). */
  inline: boolean;
  chunks: ChunkInfoView[];
  /** Chunk positions inside the size with no ref: holes, read as zeros. */
  holes: number;
  /** Copies that are not ok, over all chunks. */
  unhealthyCopies: number;
}

async function allChunks(client: MetaClient, attr: Attr): Promise<ChunkRef[]> {
  const count = attr.chunkSizeBytes > 0 ? Math.ceil(attr.size / attr.chunkSizeBytes) : 0;
  const refs: ChunkRef[] = [];
  // Pages by index range, not by "last index + 1": a page may come back short because of holes.
  for (let from = 0; from < Math.max(count, 1); from += CHUNK_PAGE) {
    const r = await client.getChunks(attr.ino, from, CHUNK_PAGE);
    if (!r.ok) throw new InspectError(`listing chunks failed: ${errnoName(r.errno)}`);
    refs.push(...r.value.filter((c) => c.index < from + CHUNK_PAGE));
  }
  return refs;
}

/** Runs `tasks` with at most `limit` in flight. */
async function pool(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) await tasks[next++]();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}

function healthOf(s: ChunkStat): Pick<CopyInfo, 'health' | 'objectSizeBytes' | 'detail'> {
  if (!s.exists) return { health: 'missing', objectSizeBytes: null, detail: 'the holder has no object with this id' };
  if (s.corrupt !== null) return { health: 'corrupt', objectSizeBytes: s.sizeBytes, detail: s.corrupt };
  return { health: 'ok', objectSizeBytes: s.sizeBytes, detail: null };
}

/**
 * A regular file's layout and chunks, with the health of each copy from Stat on its
 * holder (`verify`: every block's CRC32C). `nodes` maps node ids to chunk server addresses.
 */
export async function fileInfo(
  client: MetaClient,
  attr: Attr,
  nodes: Map<string, string>,
  opts: { verify: boolean; timeoutMs: number },
): Promise<FileInfo> {
  if ((attr.mode & S_IFMT) !== S_IFREG) throw new InspectError('not a regular file');
  const refs = await allChunks(client, attr);
  const inline = refs.length > 0 && refs.every((r) => r.inline !== undefined);
  const chunkCount = attr.chunkSizeBytes > 0 ? Math.ceil(attr.size / attr.chunkSizeBytes) : 0;
  const info: FileInfo = {
    ino: attr.ino,
    sizeBytes: attr.size,
    chunkSizeBytes: attr.chunkSizeBytes,
    layout: attr.layout,
    inline,
    chunks: [],
    holes: inline ? 0 : Math.max(0, chunkCount - refs.length),
    unhealthyCopies: 0,
  };
  if (inline) return info;
  const clients = new Map<string, ChunkClient>();
  const tasks: Array<() => Promise<void>> = [];
  try {
    for (const ref of refs) {
      const ec = refEc(ref);
      const view: ChunkInfoView = { index: ref.index, chunkId: ref.chunkId, chunkIdHex: chunkIdHex(ref.chunkId), sizeBytes: ref.sizeBytes, ec, copies: [] };
      info.chunks.push(view);
      ref.placement.forEach((nodeId, number) => {
        const address = nodes.get(nodeId) ?? null;
        const copy: CopyInfo = {
          kind: ec ? 'shard' : 'replica',
          number,
          nodeId,
          address,
          health: 'unreachable',
          objectSizeBytes: null,
          detail: address === null ? 'node not in the cluster member list' : null,
        };
        view.copies.push(copy);
        // An EC ref records a lost shard as an empty holder.
        if (nodeId === '') Object.assign(copy, { health: 'missing', detail: 'no holder recorded' });
        if (nodeId === '' || address === null) return;
        tasks.push(async () => {
          let c = clients.get(address);
          if (!c) {
            c = await ChunkClient.connect({ address, deadlineMs: opts.timeoutMs });
            clients.set(address, c);
          }
          try {
            Object.assign(copy, healthOf(await c.statChunk(ref.chunkId, opts.verify)));
          } catch (e) {
            const unavailable = e instanceof ChunkError && e.code === 'UNAVAILABLE';
            copy.health = unavailable ? 'unreachable' : 'error';
            copy.detail = (e as Error).message.split('\n')[0];
          }
        });
      });
    }
    await pool(tasks, STAT_CONCURRENCY);
  } finally {
    for (const c of clients.values()) c.close();
  }
  info.unhealthyCopies = info.chunks.reduce((n, ch) => n + ch.copies.filter((c) => c.health !== 'ok').length, 0);
  return info;
}
