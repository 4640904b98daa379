// Cluster events (node dead, repair started/finished, rebalance, drain, scrub error...):
// logged with pino and kept in a bounded list that `dfs events` and the console read.
// Each daemon keeps its own list; the leader's is the cluster's (its healer emits most).
import type { Logger } from 'pino';

export interface ClusterEventRecord {
  seq: number;
  timeMs: number;
  kind: string;
  nodeId: string;
  chunkId: number;
  message: string;
}

export class EventLog {
  private readonly ring: ClusterEventRecord[] = [];
  private seq = 0;

  constructor(
    private readonly log: Logger,
    private readonly capacity = 1000,
  ) {}

  emit(kind: string, message: string, fields: { nodeId?: string; chunkId?: number } = {}): void {
    const e: ClusterEventRecord = { seq: ++this.seq, timeMs: Date.now(), kind, nodeId: fields.nodeId ?? '', chunkId: fields.chunkId ?? 0, message };
    this.ring.push(e);
    if (this.ring.length > this.capacity) this.ring.shift();
    this.log.info({ event: kind, nodeId: e.nodeId || undefined, chunkId: e.chunkId || undefined }, message);
  }

  /** Events after `afterSeq` (oldest first), at most `limit`. */
  since(afterSeq: number, limit: number): ClusterEventRecord[] {
    const out = this.ring.filter((e) => e.seq > afterSeq);
    return out.slice(Math.max(0, out.length - Math.max(1, limit)));
  }
}
