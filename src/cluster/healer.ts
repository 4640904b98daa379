// The meta leader's healer: keeps every chunk at its layout's protection, spreads data
// evenly and empties draining nodes. Every tick it
//   1. turns the registry's liveness into replicated node states (dead after
//      --dead-after; active again when a dead node heartbeats; drained when a draining
//      node holds nothing),
//   2. scans the next page of the namespace's chunk refs (a full pass over all of them
//      gives the health counts `dfs status` shows) and queues repairs (most at risk
//      first) and drain moves,
//   3. after a full pass with nothing to repair, plans rebalance moves; after a pass with
//      nothing to do at all, waits (passIntervalMs) before the next unless a node changes,
//   4. executes queued moves, a few at a time under a byte-rate limit: read the data
//      from a good copy (or rebuild EC shards from any k), write the new copies (each
//      fsynced by its chunk server), commit the new placement through Raft, then delete
//      copies that moved away.
// A new leader starts the same loop from the replicated state (node states, placements,
// bad-copy marks), so it continues the plan. Copies move through the leader (it reads
// and writes them with the chunk service); decision 0008.
import type { Logger } from 'pino';
import type { ChunkApi } from '../chunks/api.js';
import { reconstruct } from '../chunks/ec.js';
import type { Attr, ChunkRef, Command, Ino, NodeRecord, Result } from '../meta/types.js';
import type { ClusterViewReply__Output } from '../meta/gen/dfs/meta/ClusterViewReply.js';
import type { HealthStatusReply } from '../meta/gen/dfs/meta/HealthStatusReply.js';
import type { EventsReply } from '../meta/gen/dfs/meta/EventsReply.js';
import type { EventsRequest__Output } from '../meta/gen/dfs/meta/EventsRequest.js';
import type { CheckChunksReply } from '../meta/gen/dfs/meta/CheckChunksReply.js';
import type { CheckChunksRequest__Output } from '../meta/gen/dfs/meta/CheckChunksRequest.js';
import type { EventLog } from './events.js';
import { chunkHealth, planDrain, planRebalance, planRepair, type Move, type PlanChunk, type PlanNode } from './planner.js';

/** What the healer reads from the namespace (MetaStore on the leader). */
export interface HealerStore {
  scanChunkRefs(cursor: Buffer | null, limit: number): Promise<{ refs: Array<{ ino: Ino; ref: ChunkRef }>; next: Buffer | null }>;
  chunkOwner(chunkId: number): Promise<{ ino: Ino; ref: ChunkRef } | null>;
  garbageHolders(chunkId: number): Promise<string[] | null>;
  badCopies(limit: number): Promise<Array<{ chunkId: number; nodeId: string }>>;
  getattr(ino: Ino): Promise<Result<Attr>>;
  listNodes(): Promise<NodeRecord[]>;
}

export interface HealerDeps {
  isLeader(): boolean;
  leaderId(): string | null;
  view(): Promise<ClusterViewReply__Output>;
  store: HealerStore;
  execute(command: Command): Promise<Result<unknown>>;
  node(nodeId: string): ChunkApi | undefined;
  events: EventLog;
  log: Logger;
  /** Forward HealthStatus/Events/CheckChunks to the leader when this node is not it. */
  forward: {
    health(): Promise<HealthStatusReply>;
    events(req: EventsRequest__Output): Promise<EventsReply>;
    checkChunks(req: CheckChunksRequest__Output): Promise<CheckChunksReply>;
  };
}

export interface HealerOptions {
  intervalMs: number;
  /** Chunk refs read per tick. */
  scanPage: number;
  /** Moves executing at once. */
  concurrency: number;
  /** Bytes per second the healer may copy (repair, drain and rebalance together). */
  rateBytesPerS: number;
  rebalanceThreshold: number;
  /** Bound on queued moves (the scan finds the rest again on its next pass). */
  maxQueue: number;
  /** Chunks remembered per node as rebalance candidates. */
  samplesPerNode: number;
  /**
   * After a pass that found nothing to do, the next one starts this long after it began,
   * unless something changes first (a node's liveness or state, a node joining or
   * leaving, a bad copy reported): then at once. Passes with work run back to back.
   */
  passIntervalMs: number;
}

export const DEFAULT_HEALER_OPTIONS: HealerOptions = {
  intervalMs: 500,
  scanPage: 2000,
  concurrency: 2,
  rateBytesPerS: 64 * 1024 * 1024,
  rebalanceThreshold: 1.2,
  maxQueue: 10_000,
  samplesPerNode: 256,
  passIntervalMs: 10_000,
};

interface PassStats {
  total: number;
  healthy: number;
  under: number;
  lost: number;
  copies: Map<string, number>;
  /** Bytes of the copies the namespace places on each node (what rebalance evens out). */
  bytes: Map<string, number>;
  toMove: Map<string, number>;
  samples: Map<string, PlanChunk[]>;
  /** Chunks by `scheme/want/readable` (the console's protection matrix). */
  matrix: Map<string, { scheme: string; want: number; valid: number; chunks: number }>;
}

function newPass(): PassStats {
  return { total: 0, healthy: 0, under: 0, lost: 0, copies: new Map(), bytes: new Map(), toMove: new Map(), samples: new Map(), matrix: new Map() };
}

/** Bytes moved in a sliding window, for rates. */
class RateMeter {
  private readonly points: Array<{ atMs: number; bytes: number }> = [];
  constructor(private readonly windowMs = 10_000) {}
  add(bytes: number): void {
    this.points.push({ atMs: performance.now(), bytes });
    this.trim();
  }
  perSecond(): number {
    this.trim();
    return (this.points.reduce((a, p) => a + p.bytes, 0) * 1000) / this.windowMs;
  }
  private trim(): void {
    const cut = performance.now() - this.windowMs;
    while (this.points.length > 0 && this.points[0].atMs < cut) this.points.shift();
  }
}

export class Healer {
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private stopped = false;
  private wasLeader = false;
  private cursor: Buffer | null = null;
  private pass = newPass();
  /** When the current pass began, and whether the last one ended with nothing to do. */
  private passStartedMs = performance.now();
  private idle = false;
  /** Liveness and state of every node at the last tick, to notice changes. */
  private nodeStates = '';
  private last: (PassStats & { endedMs: number }) | null = null;
  private passes = 0;
  private readonly queue = new Map<number, Move>();
  private readonly inflight = new Set<number>();
  private running: Array<Promise<void>> = [];
  private nodes = new Map<string, PlanNode>();
  private records = new Map<string, NodeRecord>();
  private bad = new Map<number, Set<string>>();
  private tokens = 0;
  private lastRefillMs = performance.now();
  private readonly repairRate = new RateMeter();
  private readonly rebalanceRate = new RateMeter();
  private repairsDone = 0;
  private rebalanceDone = 0;
  private readonly layoutCache = new Map<Ino, number>();
  private repairing = false;
  private badSeen = new Set<string>();
  private rebalancing = false;
  private readonly opts: HealerOptions;

  constructor(
    private readonly deps: HealerDeps,
    options: Partial<HealerOptions> = {},
  ) {
    this.opts = { ...DEFAULT_HEALER_OPTIONS, ...options };
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled(this.running);
  }

  // ---- the loop -------------------------------------------------------------------------

  private async tick(): Promise<void> {
    if (this.ticking || this.stopped) return;
    this.ticking = true;
    try {
      if (!this.deps.isLeader()) {
        if (this.wasLeader) this.resetPlan();
        this.wasLeader = false;
        return;
      }
      if (!this.wasLeader) this.resetPlan();
      this.wasLeader = true;
      const changed = await this.refreshNodes();
      if (this.cursor === null && this.idle && !changed && performance.now() - this.passStartedMs < this.opts.passIntervalMs) return;
      await this.scanStep();
      this.launch();
    } catch (e) {
      this.deps.log.warn({ err: (e as Error).message }, 'healer tick failed');
    } finally {
      this.ticking = false;
    }
  }

  /** A new term of leadership starts a fresh pass (the state it needs is replicated). */
  private resetPlan(): void {
    this.cursor = null;
    this.pass = newPass();
    this.idle = false;
    this.queue.clear();
    this.layoutCache.clear();
  }

  /** Returns whether any node's liveness or state changed, or a new bad copy showed up. */
  private async refreshNodes(): Promise<boolean> {
    const v = await this.deps.view();
    this.records = new Map((await this.deps.store.listNodes()).map((r) => [r.nodeId, r]));
    const nodes = new Map<string, PlanNode>();
    for (const n of v.nodes) {
      // A node whose storage failed for long is repaired around as a dead one (issue 16).
      const failed = n.state === 'failed';
      const live = n.state === 'dead' || failed ? 'dead' : n.state === 'suspect' ? 'suspect' : 'up';
      const admin = (this.records.get(n.nodeId)?.state ?? 'active') as PlanNode['admin'];
      nodes.set(n.nodeId, { nodeId: n.nodeId, zone: n.zone, rack: n.rack, totalBytes: Number(n.totalBytes), freeBytes: Number(n.freeBytes), usedBytes: Number(n.usedBytes), reserveBytes: Number(n.chunkReserveBytes ?? 0), live, admin });
      // Liveness becomes replicated state: dead after the timeout, active again on a heartbeat.
      if (live === 'dead' && admin === 'active') {
        const why = failed ? `its storage fails (${n.storageFault})` : 'no heartbeat';
        await this.setState(n.nodeId, 'dead', `node ${n.nodeId} is dead (${why}); its copies will be re-created elsewhere`, 'node-dead');
      }
      if (live === 'up' && admin === 'dead') await this.setState(n.nodeId, 'active', `node ${n.nodeId} is back`, 'node-back');
    }
    this.nodes = nodes;
    const states = [...nodes.values()].map((n) => `${n.nodeId}:${n.live}:${n.admin}`).join(',');
    let changed = states !== this.nodeStates;
    this.nodeStates = states;
    this.bad = new Map();
    const seen = new Set<string>();
    for (const b of await this.deps.store.badCopies(10_000)) {
      if (!this.bad.has(b.chunkId)) this.bad.set(b.chunkId, new Set());
      this.bad.get(b.chunkId)!.add(b.nodeId);
      const key = `${b.chunkId}/${b.nodeId}`;
      seen.add(key);
      // Reported by a chunk server's scrub, `dfs fsck --repair` or a read: said once here.
      if (!this.badSeen.has(key)) {
        this.deps.events.emit('bad-copy', `the copy of chunk ${b.chunkId} on ${b.nodeId} is bad (corrupt or missing); replacing it`, { nodeId: b.nodeId, chunkId: b.chunkId });
        changed = true;
      }
    }
    this.badSeen = seen;
    return changed;
  }

  private async setState(nodeId: string, state: NodeRecord['state'], message: string, kind: string): Promise<void> {
    const r = await this.deps.execute({ op: 'setNodeState', nodeId, state });
    if (r.ok) {
      const rec = this.records.get(nodeId);
      if (rec) this.records.set(nodeId, { ...rec, state });
      const n = this.nodes.get(nodeId);
      if (n) n.admin = state;
      this.deps.events.emit(kind, message, { nodeId });
    }
  }

  private async replicasOf(ino: Ino): Promise<number> {
    const cached = this.layoutCache.get(ino);
    if (cached !== undefined) return cached;
    const a = await this.deps.store.getattr(ino);
    const r = a.ok && a.value.layout.kind === 'replicas' ? a.value.layout.replicas : 1;
    if (this.layoutCache.size > 100_000) this.layoutCache.clear();
    this.layoutCache.set(ino, r);
    return r;
  }

  private async planChunk(ino: Ino, ref: ChunkRef): Promise<PlanChunk> {
    const c: PlanChunk = { chunkId: ref.chunkId, sizeBytes: ref.sizeBytes, placement: ref.placement, replicas: ref.ec ? 0 : await this.replicasOf(ino), bad: this.bad.get(ref.chunkId) ?? new Set() };
    if (ref.ec) c.ec = ref.ec;
    return c;
  }

  private async scanStep(): Promise<void> {
    if (this.cursor === null) this.passStartedMs = performance.now();
    const page = await this.deps.store.scanChunkRefs(this.cursor, this.opts.scanPage);
    for (const { ino, ref } of page.refs) {
      const chunk = await this.planChunk(ino, ref);
      const h = chunkHealth(chunk, this.nodes);
      const p = this.pass;
      p.total++;
      if (h.state === 'healthy') p.healthy++;
      else if (h.state === 'under') p.under++;
      else p.lost++;
      const scheme = chunk.ec ? `ec ${chunk.ec.k}+${chunk.ec.m}` : 'replicas';
      const key = `${scheme}/${h.want}/${h.readable}`;
      const cell = p.matrix.get(key);
      if (cell) cell.chunks++;
      else p.matrix.set(key, { scheme, want: h.want, valid: h.readable, chunks: 1 });
      for (const holder of chunk.placement) {
        if (!holder) continue;
        p.copies.set(holder, (p.copies.get(holder) ?? 0) + 1);
        p.bytes.set(holder, (p.bytes.get(holder) ?? 0) + (chunk.ec ? chunk.ec.shardBytes : chunk.sizeBytes));
        const samples = p.samples.get(holder) ?? [];
        if (samples.length < this.opts.samplesPerNode) samples.push(chunk);
        p.samples.set(holder, samples);
        if (this.nodes.get(holder)?.admin === 'draining') p.toMove.set(holder, (p.toMove.get(holder) ?? 0) + 1);
      }
      if (this.queue.size >= this.opts.maxQueue || this.queue.has(chunk.chunkId) || this.inflight.has(chunk.chunkId)) continue;
      const move = planRepair(chunk, this.nodes) ?? planDrain(chunk, this.nodes);
      if (move) this.enqueue(move);
    }
    this.cursor = page.next;
    if (page.next === null) await this.endPass();
  }

  private enqueue(move: Move): void {
    this.queue.set(move.chunkId, move);
    if (move.kind === 'repair' && !this.repairing) {
      this.repairing = true;
      this.deps.events.emit('repair-started', `repairing under-protected chunks (${this.pass.under} found so far in this pass)`);
    }
  }

  private async endPass(): Promise<void> {
    const p = this.pass;
    this.last = { ...p, endedMs: performance.now() };
    this.passes++;
    this.pass = newPass();
    if (this.repairing && p.under === 0 && p.lost === 0 && ![...this.queue.values()].some((m) => m.kind === 'repair')) {
      this.repairing = false;
      this.deps.events.emit('repair-finished', `every chunk has its full protection (${p.total} chunks)`);
    }
    // Draining nodes that hold nothing any more are drained.
    for (const [id, rec] of this.records) {
      if (rec.state === 'draining' && (p.copies.get(id) ?? 0) === 0) {
        await this.setState(id, 'drained', `node ${id} is drained: it holds no chunk the cluster needs and can be removed`, 'drain-finished');
      }
    }
    // Rebalance only when nothing needs repair or draining.
    if (p.under === 0 && this.queue.size === 0 && this.inflight.size === 0) {
      // Utilization by what the namespace places on each node (orphans and garbage on a
      // disk are not the rebalancer's to move).
      const byPlacement = new Map([...this.nodes].map(([id, n]) => [id, { ...n, usedBytes: p.bytes.get(id) ?? 0 }]));
      const moves = planRebalance(byPlacement, p.samples, { threshold: this.opts.rebalanceThreshold, maxMoves: 64 });
      if (moves.length > 0) {
        if (!this.rebalancing) this.deps.events.emit('rebalance', `moving chunk copies from nodes above ${this.opts.rebalanceThreshold} × the mean utilization`);
        this.rebalancing = true;
        for (const m of moves) this.queue.set(m.chunkId, m);
      } else if (this.rebalancing) {
        this.rebalancing = false;
        this.deps.events.emit('rebalance-finished', `no node is above ${this.opts.rebalanceThreshold} × the mean utilization`);
      }
    }
    const draining = [...this.records.values()].some((r) => r.state === 'draining');
    this.idle = p.under === 0 && p.lost === 0 && !draining && this.queue.size === 0 && this.inflight.size === 0;
  }

  // ---- executing moves ------------------------------------------------------------------

  private refillTokens(): void {
    const now = performance.now();
    this.tokens = Math.min(this.opts.rateBytesPerS, this.tokens + ((now - this.lastRefillMs) / 1000) * this.opts.rateBytesPerS);
    this.lastRefillMs = now;
  }

  private launch(): void {
    this.refillTokens();
    while (this.inflight.size < this.opts.concurrency && this.queue.size > 0 && this.tokens > 0) {
      // Most at risk first; repairs before drains before rebalancing.
      const rank = (m: Move): number => (m.kind === 'repair' ? 0 : m.kind === 'drain' ? 1_000 : 2_000) + m.margin;
      const next = [...this.queue.values()].sort((a, b) => rank(a) - rank(b))[0];
      this.queue.delete(next.chunkId);
      this.inflight.add(next.chunkId);
      this.tokens -= next.bytes;
      const run = this.execute(next)
        .catch((e: unknown) => this.deps.log.warn({ chunkId: next.chunkId, kind: next.kind, err: (e as Error).message }, 'chunk move failed; the next scan plans it again'))
        .finally(() => {
          this.inflight.delete(next.chunkId);
          this.running = this.running.filter((r) => r !== run);
        });
      this.running.push(run);
    }
  }

  private async execute(planned: Move): Promise<void> {
    // Re-plan from the current ref: the file may have changed since the scan.
    const owner = await this.deps.store.chunkOwner(planned.chunkId);
    if (!owner) return;
    const chunk = await this.planChunk(owner.ino, owner.ref);
    const move = planned.kind === 'repair' ? planRepair(chunk, this.nodes) : planned.kind === 'drain' ? planDrain(chunk, this.nodes) : planned;
    if (!move) return;
    if (move.kind === 'rebalance' && move.placement.length !== chunk.placement.length) return;
    if (chunk.ec) await this.copyShards(owner.ref, move);
    else await this.copyReplica(owner.ref, move);
    const r = await this.deps.execute({ op: 'setPlacement', chunkId: move.chunkId, placement: move.placement });
    if (!r.ok) throw new Error(`setPlacement failed: errno ${r.errno}`);
    for (const old of move.remove) {
      await this.deps
        .node(old)
        ?.deleteChunk(move.chunkId)
        .catch(() => undefined); // unreachable: the inventory GC removes it later
    }
    if (move.kind === 'rebalance') {
      this.rebalanceDone++;
      this.rebalanceRate.add(move.bytes);
    } else {
      this.repairsDone++;
      this.repairRate.add(move.bytes);
    }
  }

  private async copyReplica(ref: ChunkRef, move: Move): Promise<void> {
    let data: Buffer | null = null;
    let lastErr: unknown = new Error('no source');
    for (const s of move.sources) {
      try {
        data = await this.api(s).readChunk(ref.chunkId, 0, ref.sizeBytes);
        if (data.length === ref.sizeBytes) break;
        data = null;
      } catch (e) {
        lastErr = e;
      }
    }
    if (!data) throw lastErr;
    await Promise.all(move.create.map((c) => this.putCopy(c.target, ref.chunkId, data)));
  }

  /**
   * Writes a new copy on a node outside the chunk's placement. A stale object under the
   * same id there (a copy or another shard it held before it was declared dead) is not
   * referenced by anyone: it is replaced.
   */
  private async putCopy(target: string, chunkId: number, data: Buffer): Promise<void> {
    const api = this.api(target);
    await api.deleteChunk(chunkId).catch(() => undefined);
    await api.writeChunk(chunkId, data);
  }

  private async copyShards(ref: ChunkRef, move: Move): Promise<void> {
    const ec = ref.ec!;
    const n = ec.k + ec.m;
    const shards: Array<Buffer | null> = new Array<Buffer | null>(n).fill(null);
    let have = 0;
    // A plain move reads the moving shard itself; otherwise any k good shards.
    const direct = move.kind !== 'repair' && move.create.length === 1 && move.sources[move.create[0].slot];
    if (direct) {
      const slot = move.create[0].slot;
      const b = await this.api(move.sources[slot]).readChunk(ref.chunkId, 0, ec.shardBytes);
      if (b.length !== ec.shardBytes) throw new Error(`shard ${slot} of chunk ${ref.chunkId} is short`);
      await this.putCopy(move.create[0].target, ref.chunkId, b);
      return;
    }
    for (let i = 0; i < n && have < ec.k; i++) {
      const holder = move.sources[i] || (move.kind !== 'repair' ? ref.placement[i] : '');
      if (!holder) continue;
      try {
        const b = await this.api(holder).readChunk(ref.chunkId, 0, ec.shardBytes);
        if (b.length === ec.shardBytes) {
          shards[i] = b;
          have++;
        }
      } catch {
        // another shard stands in
      }
    }
    if (have < ec.k) throw new Error(`chunk ${ref.chunkId}: only ${have} of ${ec.k} shards readable`);
    const all = await reconstruct(shards, ec.k, ec.m);
    await Promise.all(move.create.map((c) => this.putCopy(c.target, ref.chunkId, all[c.slot])));
  }

  private api(nodeId: string): ChunkApi {
    const a = this.deps.node(nodeId);
    if (!a) throw new Error(`unknown chunk server ${nodeId}`);
    return a;
  }

  // ---- RPCs (answered on the leader) ----------------------------------------------------

  async health(): Promise<HealthStatusReply> {
    if (!this.deps.isLeader()) return this.deps.forward.health();
    const v = await this.deps.view();
    const states = new Map((await this.deps.store.listNodes()).map((r) => [r.nodeId, r.state]));
    let up = 0;
    let suspect = 0;
    let dead = 0;
    let draining = 0;
    let drained = 0;
    let total = 0;
    let free = 0;
    let used = 0;
    for (const n of v.nodes) {
      const admin = states.get(n.nodeId) ?? 'active';
      if (admin === 'drained') drained++;
      else if (n.state === 'dead' || admin === 'dead') dead++;
      else if (n.state === 'suspect') suspect++;
      else up++;
      if (admin === 'draining') draining++;
      if (n.state !== 'dead') {
        total += Number(n.totalBytes);
        free += Number(n.freeBytes);
        used += Number(n.usedBytes);
      }
    }
    const last = this.last;
    const queued = [...this.queue.values()];
    const ids = new Set([...v.nodes.map((n) => n.nodeId), ...(last?.copies.keys() ?? [])]);
    return {
      errno: 0,
      leader: this.deps.leaderId() ?? '',
      nodesUp: up,
      nodesSuspect: suspect,
      nodesDead: dead,
      nodesDraining: draining,
      nodesDrained: drained,
      totalBytes: total,
      freeBytes: free,
      usedBytes: used,
      chunksTotal: last?.total ?? 0,
      chunksHealthy: last?.healthy ?? 0,
      chunksUnderProtected: last?.under ?? 0,
      chunksLost: last?.lost ?? 0,
      scanPasses: this.passes,
      lastScanAgeMs: last ? Math.round(performance.now() - last.endedMs) : 0,
      repairQueue: queued.filter((m) => m.kind !== 'rebalance').length,
      repairsDone: this.repairsDone,
      repairBytesPerS: this.repairRate.perSecond(),
      rebalanceQueue: queued.filter((m) => m.kind === 'rebalance').length,
      rebalanceMovesDone: this.rebalanceDone,
      rebalanceBytesPerS: this.rebalanceRate.perSecond(),
      drainRemaining: [...(last?.toMove.values() ?? [])].reduce((a, b) => a + b, 0),
      nodes: [...ids].sort().map((id) => ({ nodeId: id, copies: last?.copies.get(id) ?? 0, toMove: last?.toMove.get(id) ?? 0 })),
      protection: [...(last?.matrix.values() ?? [])],
    };
  }

  async events(req: EventsRequest__Output): Promise<EventsReply> {
    if (!this.deps.isLeader()) return this.deps.forward.events(req);
    const events = this.deps.events.since(Number(req.afterSeq), req.limit || 100);
    return { errno: 0, leader: this.deps.leaderId() ?? '', events };
  }

  /** Of the ids a chunk server holds, those no file references there and no GC will delete. */
  async checkChunks(req: CheckChunksRequest__Output): Promise<CheckChunksReply> {
    if (!this.deps.isLeader()) return this.deps.forward.checkChunks(req);
    if (req.chunkIds.length > 10_000) return { errno: 22, orphans: [] };
    const orphans: number[] = [];
    for (const raw of req.chunkIds) {
      const id = Number(raw);
      const owner = await this.deps.store.chunkOwner(id);
      if (owner && owner.ref.placement.includes(req.nodeId)) continue;
      const garbage = await this.deps.store.garbageHolders(id);
      if (garbage && garbage.includes(req.nodeId)) continue;
      // A move in flight writes its new copy before committing it.
      if (this.inflight.has(id)) continue;
      orphans.push(id);
    }
    return { errno: 0, orphans };
  }
}
