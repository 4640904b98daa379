// `dfs fsck` and `dfs nodes what-if-lost`: walk the namespace (ns-walk.ts) and judge each
// file chunk's protection (ops-cli.ts). fsck asks every copy's holder (chunk Stat: exists,
// header, length; with verify every block's CRC32C), what-if-lost only looks at where the
// namespace places copies and which nodes the leader sees alive. Bounded: a few files at
// once, `statConcurrency` Stat calls in flight, a deadline on each, and a holder that
// stops answering is not asked again during the run.
import { ChunkError, type ChunkStat } from '../chunks/api.js';
import { ChunkClient } from '../chunks/grpc.js';
import { chunkIdHex } from '../chunks/store.js';
import type { MetaApi } from '../meta/api.js';
import type { ChunkRef, Ino, Layout } from '../meta/types.js';
import { chunkVerdict, lossImpact, type ChunkState, type FsckCounts, type LossImpact, type NodeStateView } from './ops-cli.js';
import { DEFAULT_WALK_OPTIONS, forEachChunkPage, walkFiles, type WalkOptions } from './ns-walk.js';

export type CopyHealth =
  /** Present, header and length fine (and every block, with verify). */
  | 'ok'
  | 'missing'
  | 'corrupt'
  /** Shorter than the chunk (or shard) it must hold. */
  | 'short'
  /** The holder did not answer (or the leader sees it dead). */
  | 'unreachable'
  /** The holder answered with an error. */
  | 'error'
  /** An EC slot with no holder recorded (a lost shard). */
  | 'no-holder'
  /** The holder is not in the cluster's node table. */
  | 'unknown-node';

export interface CopyCheck {
  /** Replica number, or EC shard slot (0..k-1 data, k.. parity). */
  slot: number;
  nodeId: string;
  health: CopyHealth;
  detail: string | null;
}

export interface ChunkCheck {
  index: number;
  chunkId: number;
  chunkIdHex: string;
  state: ChunkState;
  want: number;
  good: number;
  copies: CopyCheck[];
}

export interface FileProblem {
  path: string;
  ino: Ino;
  /** The worst of its chunks. */
  state: Exclude<ChunkState, 'healthy'>;
  /** The chunks that are not healthy. */
  chunks: ChunkCheck[];
}

export interface RepairReport {
  path: string;
  chunkId: number;
  chunkIdHex: string;
  nodeId: string;
  health: CopyHealth;
  /** Whether the namespace took the report. */
  reported: boolean;
  error: string | null;
}

export interface FsckReport extends FsckCounts {
  problems: FileProblem[];
  repairs: RepairReport[];
}

/** How one copy is asked about. */
export interface CopyStatter {
  stat(nodeId: string, chunkId: number): Promise<{ health: CopyHealth; detail: string | null; sizeBytes: number | null }>;
}

export interface FsckOptions {
  /** Send reportBadCopy for every missing, corrupt or short copy. */
  repair: boolean;
  walk: WalkOptions;
  onProgress?: (c: FsckCounts) => void;
}

/** A copy that a repair should replace: the holder answered and the copy is bad. */
export function isBadCopy(h: CopyHealth): boolean {
  return h === 'missing' || h === 'corrupt' || h === 'short';
}

/** Bytes the object of copy `slot` must hold at least. */
function expectedBytes(ref: ChunkRef): number {
  return ref.ec ? ref.ec.shardBytes : ref.sizeBytes;
}

/** The health of each copy of `ref`, asked with `statter` (all of a chunk's copies at once). */
async function checkChunk(ref: ChunkRef, layout: Layout, statter: CopyStatter): Promise<ChunkCheck> {
  const copies: CopyCheck[] = await Promise.all(
    ref.placement.map(async (nodeId, slot): Promise<CopyCheck> => {
      if (nodeId === '') return { slot, nodeId, health: 'no-holder', detail: 'no holder recorded' };
      const s = await statter.stat(nodeId, ref.chunkId);
      if (s.health === 'ok' && s.sizeBytes !== null && s.sizeBytes < expectedBytes(ref)) {
        return { slot, nodeId, health: 'short', detail: `object holds ${s.sizeBytes} bytes, the chunk needs ${expectedBytes(ref)}` };
      }
      return { slot, nodeId, health: s.health, detail: s.detail };
    }),
  );
  const okAt = new Set(copies.filter((c) => c.health === 'ok').map((c) => c.slot));
  const v = chunkVerdict(ref, layout, (_h, slot) => okAt.has(slot));
  return { index: ref.index, chunkId: ref.chunkId, chunkIdHex: chunkIdHex(ref.chunkId), state: v.state, want: v.want, good: v.good, copies };
}

/**
 * Checks every chunk of every file under `root`. A chunk found not healthy is looked up
 * again before it is reported: a file rewritten or removed during the run is not a problem.
 */
export async function fsck(
  meta: Pick<MetaApi, 'getattr' | 'readdir' | 'getChunks' | 'execute'>,
  root: { ino: Ino; path: string },
  statter: CopyStatter,
  opts: FsckOptions,
): Promise<FsckReport> {
  const report: FsckReport = { files: 0, chunks: 0, healthy: 0, underProtected: 0, lost: 0, problems: [], repairs: [] };
  const progress = () => opts.onProgress?.(report);
  await walkFiles(
    meta,
    root,
    async (f) => {
      const bad: ChunkCheck[] = [];
      const exists = await forEachChunkPage(meta, f.attr, async (refs) => {
        const checks = await Promise.all(refs.filter((r) => r.inline === undefined && r.chunkId > 0).map((r) => checkChunk(r, f.attr.layout, statter)));
        for (const c of checks) if (c.state !== 'healthy') bad.push(c);
        report.chunks += checks.length;
        report.healthy += checks.filter((c) => c.state === 'healthy').length;
        progress();
      });
      report.files++;
      if (!exists) {
        progress();
        return;
      }
      let confirmed = bad;
      if (bad.length > 0) {
        // Still the file's chunks? (A rewrite gives a chunk a new id; a removal, none.)
        const current = new Set<number>();
        await forEachChunkPage(meta, f.attr, async (refs) => {
          for (const r of refs) current.add(r.chunkId);
        });
        confirmed = bad.filter((c) => current.has(c.chunkId));
        report.healthy += bad.length - confirmed.length;
      }
      for (const c of confirmed) {
        if (c.state === 'lost') report.lost++;
        else report.underProtected++;
      }
      if (confirmed.length > 0) {
        report.problems.push({ path: f.path, ino: f.attr.ino, state: confirmed.some((c) => c.state === 'lost') ? 'lost' : 'under-protected', chunks: confirmed });
        if (opts.repair) {
          for (const c of confirmed) {
            for (const copy of c.copies) {
              if (!isBadCopy(copy.health)) continue;
              const r = await meta.execute({ op: 'reportBadCopy', chunkId: c.chunkId, nodeId: copy.nodeId });
              report.repairs.push({
                path: f.path,
                chunkId: c.chunkId,
                chunkIdHex: c.chunkIdHex,
                nodeId: copy.nodeId,
                health: copy.health,
                reported: r.ok,
                error: r.ok ? null : `errno ${r.errno}`,
              });
            }
          }
        }
      }
      progress();
    },
    opts.walk,
  );
  report.problems.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return report;
}

export interface WhatIfFile {
  path: string;
  ino: Ino;
  impact: LossImpact;
  /** Chunks that would lose data / protection. */
  chunksLosingData: number;
  chunksLosingProtection: number;
}

export interface WhatIfReport {
  files: number;
  chunks: number;
  affected: WhatIfFile[];
}

/** Which files would lose data or protection if the nodes in `lost` died now (no chunk server is asked). */
export async function whatIfLost(
  meta: Pick<MetaApi, 'getattr' | 'readdir' | 'getChunks'>,
  root: { ino: Ino; path: string },
  nodes: ReadonlyMap<string, NodeStateView>,
  lost: ReadonlySet<string>,
  walk: WalkOptions = DEFAULT_WALK_OPTIONS,
  onProgress?: (r: WhatIfReport) => void,
): Promise<WhatIfReport> {
  const report: WhatIfReport = { files: 0, chunks: 0, affected: [] };
  await walkFiles(
    meta,
    root,
    async (f) => {
      let data = 0;
      let prot = 0;
      await forEachChunkPage(meta, f.attr, async (refs) => {
        for (const r of refs) {
          if (r.inline !== undefined) continue;
          report.chunks++;
          const i = lossImpact(r, f.attr.layout, nodes, lost);
          if (i === 'lose-data') data++;
          else if (i === 'lose-protection') prot++;
        }
      });
      report.files++;
      if (data + prot > 0) {
        report.affected.push({ path: f.path, ino: f.attr.ino, impact: data > 0 ? 'lose-data' : 'lose-protection', chunksLosingData: data, chunksLosingProtection: prot });
      }
      onProgress?.(report);
    },
    walk,
  );
  report.affected.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return report;
}

/** Limits of the Stat adapter. */
export interface StatterOptions {
  verify: boolean;
  /** Deadline of each Stat call. */
  timeoutMs: number;
  /** Stat calls in flight at once, over all holders. */
  concurrency: number;
}

export const DEFAULT_STATTER_OPTIONS: StatterOptions = { verify: false, timeoutMs: 10_000, concurrency: 8 };

function healthOf(s: ChunkStat): { health: CopyHealth; detail: string | null; sizeBytes: number | null } {
  if (!s.exists) return { health: 'missing', detail: 'the holder has no object with this id', sizeBytes: null };
  if (s.corrupt !== null) return { health: 'corrupt', detail: s.corrupt, sizeBytes: s.sizeBytes };
  return { health: 'ok', detail: null, sizeBytes: s.sizeBytes };
}

/**
 * Stat over gRPC on each holder. `nodes` gives each node's address and whether the leader
 * sees it dead (then it is not asked). A holder that fails with UNAVAILABLE or a deadline
 * is not asked again: the run would otherwise wait out one deadline per copy it holds.
 */
export class GrpcCopyStatter implements CopyStatter {
  private readonly clients = new Map<string, Promise<ChunkClient>>();
  private readonly downHolders = new Map<string, string>();
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly nodes: ReadonlyMap<string, { address: string; dead: boolean }>,
    private readonly opts: StatterOptions = DEFAULT_STATTER_OPTIONS,
  ) {}

  async stat(nodeId: string, chunkId: number): Promise<{ health: CopyHealth; detail: string | null; sizeBytes: number | null }> {
    const node = this.nodes.get(nodeId);
    if (!node) return { health: 'unknown-node', detail: 'node not in the cluster node table', sizeBytes: null };
    if (node.dead) return { health: 'unreachable', detail: 'the leader sees the node dead', sizeBytes: null };
    const down = this.downHolders.get(nodeId);
    if (down) return { health: 'unreachable', detail: down, sizeBytes: null };
    await this.acquire();
    try {
      const again = this.downHolders.get(nodeId);
      if (again) return { health: 'unreachable', detail: again, sizeBytes: null };
      const client = await this.client(node.address);
      return healthOf(await client.statChunk(chunkId, this.opts.verify));
    } catch (e) {
      const detail = (e as Error).message.split('\n')[0];
      if (e instanceof ChunkError && e.code === 'UNAVAILABLE') {
        this.downHolders.set(nodeId, detail);
        return { health: 'unreachable', detail, sizeBytes: null };
      }
      return { health: 'error', detail, sizeBytes: null };
    } finally {
      this.release();
    }
  }

  close(): void {
    for (const c of this.clients.values()) void c.then((x) => x.close(), () => undefined);
    this.clients.clear();
  }

  private client(address: string): Promise<ChunkClient> {
    let c = this.clients.get(address);
    if (!c) {
      c = ChunkClient.connect({ address, deadlineMs: this.opts.timeoutMs });
      this.clients.set(address, c);
    }
    return c;
  }

  private async acquire(): Promise<void> {
    if (this.running < this.opts.concurrency) {
      this.running++;
      return;
    }
    // The slot is handed over by release(): `running` already counts us on wake-up.
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}
