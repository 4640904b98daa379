// Garbage collection of chunk objects the namespace no longer references (replaced by
// a rewrite, truncated away, or belonging to deleted files). The namespace lists them;
// this loop deletes each object from its holders after a grace period and then tells
// the namespace they are gone. Bounded per round; a failed delete is retried next round.
import type { Logger } from 'pino';
import type { ChunkApi } from '../chunks/api.js';
import type { Command, CommandValues, GarbageChunk, Result } from '../meta/types.js';

export interface GcSource {
  listGarbage(limit: number): Promise<GarbageChunk[]>;
  execute<C extends Command>(command: C): Promise<Result<CommandValues[C['op']]>>;
}

export interface GcOptions {
  intervalMs: number;
  /** A garbage chunk is deleted only once it has been seen this long (readers in flight finish). */
  graceMs: number;
  /** Chunks handled per round. */
  batch: number;
  now?: () => number;
}

export class GarbageCollector {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly firstSeen = new Map<number, number>();
  private deleted = 0;
  private pending = 0;
  private readonly now: () => number;

  constructor(
    private readonly source: GcSource,
    private readonly nodes: (nodeId: string) => ChunkApi | undefined,
    private readonly opts: GcOptions,
    private readonly log: Logger,
  ) {
    this.now = opts.now ?? Date.now;
  }

  stats(): { chunksDeleted: number; pending: number } {
    return { chunksDeleted: this.deleted, pending: this.pending };
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.round().then(() => undefined, (e: unknown) => this.log.warn({ err: String(e) }, "gc round failed")).finally(() => (this.running = null));
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.running) await this.running;
  }

  /** One pass: returns how many objects were forgotten by the namespace. */
  async round(): Promise<number> {
    const garbage = await this.source.listGarbage(this.opts.batch);
    this.pending = garbage.length;
    const now = this.now();
    const seen = new Set<number>();
    const done: number[] = [];
    for (const g of garbage) {
      seen.add(g.chunkId);
      const first = this.firstSeen.get(g.chunkId) ?? now;
      this.firstSeen.set(g.chunkId, first);
      if (now - first < this.opts.graceMs) continue;
      let ok = true;
      for (const nodeId of g.placement) {
        if (nodeId === '') continue; // an EC shard that was never written
        const node = this.nodes(nodeId);
        if (!node) {
          ok = false;
          continue;
        }
        try {
          await node.deleteChunk(g.chunkId);
        } catch (e) {
          ok = false;
          this.log.warn({ chunkId: g.chunkId, nodeId, err: String(e) }, 'gc: delete failed, will retry');
        }
      }
      if (ok) done.push(g.chunkId);
    }
    for (const id of this.firstSeen.keys()) if (!seen.has(id)) this.firstSeen.delete(id);
    if (done.length > 0) {
      const r = await this.source.execute({ op: 'gcDone', chunkIds: done });
      if (!r.ok) {
        this.log.warn({ errno: r.errno }, 'gc: gcDone failed');
        return 0;
      }
      for (const id of done) this.firstSeen.delete(id);
      this.deleted += done.length;
    }
    return done.length;
  }
}
