// The chunk servers of the cluster as the meta leader sees them. Every daemon heartbeats
// the leader once a second with its capacity and load (a follower forwards the beat);
// the leader keeps liveness in memory and records each node once in the replicated node
// table (`registerNode`), so a new leader knows every node the cluster ever had and how
// many copies a write must reach. Clients read the leader's view (ClusterView) to place
// new chunks (placement.ts).
import type { Logger } from 'pino';
import type { ClusterBackend } from '../meta/grpc.js';
import type { ClusterViewReply__Output } from '../meta/gen/dfs/meta/ClusterViewReply.js';
import type { HeartbeatReply__Output } from '../meta/gen/dfs/meta/HeartbeatReply.js';
import type { HeartbeatRequest, HeartbeatRequest__Output } from '../meta/gen/dfs/meta/HeartbeatRequest.js';
import type { NodeView__Output } from '../meta/gen/dfs/meta/NodeView.js';
import type { NodeRecord, Result } from '../meta/types.js';

/** `failed`: it beats, but its storage has not written for storageFailedAfterMs (its copies are repaired as a dead node's). */
export type NodeState = 'up' | 'suspect' | 'dead' | 'failed';

export interface RegistryOptions {
  /** No heartbeat for this long: suspect (not chosen for new data). */
  suspectAfterMs: number;
  /** No heartbeat for this long: dead. */
  deadAfterMs: number;
  /** A storage fault reported for this long: failed. */
  storageFailedAfterMs: number;
  /**
   * A node is low on space when its free bytes are below its reserve plus this (one chunk:
   * the most one write adds before the next heartbeat says so; decision 0014).
   */
  spaceHeadroomBytes: number;
}

export const DEFAULT_REGISTRY_OPTIONS: RegistryOptions = { suspectAfterMs: 3_000, deadAfterMs: 30_000, storageFailedAfterMs: 120_000, spaceHeadroomBytes: 4 * 1024 * 1024 };

/** What the registry needs from the daemon. */
export interface RegistryDeps {
  isLeader(): boolean;
  leaderId(): string | null;
  /** Forward a heartbeat or a view request to the current leader. */
  forward: {
    heartbeat(req: HeartbeatRequest): Promise<HeartbeatReply__Output>;
    view(): Promise<ClusterViewReply__Output>;
  };
  listNodes(): Promise<NodeRecord[]>;
  register(rec: Omit<NodeRecord, 'state'>): Promise<Result<unknown>>;
  nowMs(): number;
  log: Logger;
  /** A cluster event (the leader's event log). */
  event?(kind: string, message: string, nodeId: string): void;
}

interface Beat {
  atMs: number;
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
  chunkCount: number;
  version: string;
  corruptReads: number;
  storageFault: string;
  storageFaultMs: number;
  reserveBytes: number;
  logFreeBytes: number;
  chunkReserveBytes: number;
}

export class NodeRegistry implements Pick<ClusterBackend, 'heartbeat' | 'view'> {
  private beats = new Map<string, Beat>();
  private leaderSinceMs: number;
  private wasLeader = false;
  /** Node records as last read from (or written to) the node table, by id. */
  private known = new Map<string, Omit<NodeRecord, 'state'>>();
  private readonly registering = new Set<string>();

  constructor(
    private readonly deps: RegistryDeps,
    private readonly opts: RegistryOptions = DEFAULT_REGISTRY_OPTIONS,
  ) {
    this.leaderSinceMs = deps.nowMs();
  }

  /** A new term of leadership starts with no heartbeats: every node gets a fresh grace period. */
  private checkLeadership(): boolean {
    const leader = this.deps.isLeader();
    if (leader && !this.wasLeader) {
      this.beats = new Map();
      this.known = new Map();
      this.leaderSinceMs = this.deps.nowMs();
    }
    this.wasLeader = leader;
    return leader;
  }

  async heartbeat(req: HeartbeatRequest__Output): Promise<HeartbeatReply__Output> {
    if (!this.checkLeadership()) return this.deps.forward.heartbeat(req);
    if (!req.nodeId || !req.address) return { errno: 22, message: 'heartbeat without node id or address', leader: this.deps.leaderId() ?? '' };
    const before = this.beats.get(req.nodeId);
    const beat: Beat = {
      atMs: this.deps.nowMs(),
      totalBytes: Number(req.totalBytes),
      freeBytes: Number(req.freeBytes),
      usedBytes: Number(req.usedBytes),
      chunkCount: Number(req.chunkCount),
      storageFault: req.storageFault ?? '',
      storageFaultMs: Number(req.storageFaultMs ?? 0),
      reserveBytes: Number(req.reserveBytes ?? 0),
      logFreeBytes: Number(req.logFreeBytes ?? 0),
      chunkReserveBytes: Number(req.chunkReserveBytes ?? 0),
      version: req.version ?? '',
      corruptReads: Number(req.corruptReads ?? 0),
    };
    this.beats.set(req.nodeId, beat);
    this.noteStorage(req.nodeId, before, beat);
    const rec = { nodeId: req.nodeId, address: req.address, zone: req.zone, rack: req.rack };
    await this.ensureRegistered(rec);
    return { errno: 0, message: '', leader: this.deps.leaderId() ?? '' };
  }

  /** Events when a node's storage fault begins, turns into a failure, or ends. */
  private noteStorage(nodeId: string, before: Beat | undefined, now: Beat): void {
    const was = before ? this.storageState(before) : 'ok';
    const is = this.storageState(now);
    if (was === is) return;
    if (is === 'faulted') this.deps.event?.('storage-fault', `node ${nodeId} cannot write its namespace storage: ${now.storageFault}`, nodeId);
    else if (is === 'failed') this.deps.event?.('storage-failed', `node ${nodeId} storage failing for ${Math.round(now.storageFaultMs / 1000)} s: ${now.storageFault}; its copies will be re-created elsewhere`, nodeId);
    else this.deps.event?.('storage-recovered', `node ${nodeId} storage writes again`, nodeId);
  }

  private storageState(b: Beat): 'ok' | 'faulted' | 'failed' {
    if (!b.storageFault) return 'ok';
    return b.storageFaultMs >= this.opts.storageFailedAfterMs ? 'failed' : 'faulted';
  }

  private async ensureRegistered(rec: Omit<NodeRecord, 'state'>): Promise<void> {
    if (this.known.size === 0) for (const n of await this.deps.listNodes()) this.known.set(n.nodeId, n);
    const have = this.known.get(rec.nodeId);
    if (have && have.address === rec.address && have.zone === rec.zone && have.rack === rec.rack) return;
    if (this.registering.has(rec.nodeId)) return;
    this.registering.add(rec.nodeId);
    try {
      const r = await this.deps.register(rec);
      if (r.ok) {
        this.known.set(rec.nodeId, rec);
        this.deps.log.info({ node: rec }, have ? 'chunk server record updated' : 'chunk server registered');
      } else {
        this.deps.log.warn({ node: rec, errno: r.errno }, 'cannot register chunk server');
      }
    } finally {
      this.registering.delete(rec.nodeId);
    }
  }

  async view(): Promise<ClusterViewReply__Output> {
    if (!this.checkLeadership()) return this.deps.forward.view();
    const now = this.deps.nowMs();
    const nodes: NodeView__Output[] = [];
    for (const rec of await this.deps.listNodes()) {
      const beat = this.beats.get(rec.nodeId);
      // Not heard from in this term yet: as old as the term (a new leader gives every node a grace period).
      const ageMs = now - (beat?.atMs ?? this.leaderSinceMs);
      nodes.push({
        nodeId: rec.nodeId,
        address: rec.address,
        zone: rec.zone,
        rack: rec.rack,
        totalBytes: beat?.totalBytes ?? 0,
        freeBytes: beat?.freeBytes ?? 0,
        usedBytes: beat?.usedBytes ?? 0,
        chunkCount: beat?.chunkCount ?? 0,
        lastHeartbeatMs: beat ? Math.max(0, Math.round(ageMs)) : 0,
        // A node the cluster declared dead stays dead until it beats again.
        state: rec.state === 'dead' && !beat ? 'dead' : this.stateOf(ageMs, beat),
        adminState: rec.state ?? 'active',
        version: beat?.version ?? '',
        corruptReads: beat?.corruptReads ?? 0,
        storageFault: beat?.storageFault ?? '',
        reserveBytes: beat?.reserveBytes ?? 0,
        logFreeBytes: beat?.logFreeBytes ?? 0,
        chunkReserveBytes: beat?.chunkReserveBytes ?? 0,
        spaceLow: beat !== undefined && this.spaceLow(beat),
      });
    }
    return { errno: 0, leader: this.deps.leaderId() ?? '', nodes };
  }

  /**
   * Nodes among `ids` whose last heartbeat (this term, not older than suspectAfterMs)
   * shows less free space than they keep in reserve, plus the headroom (decision 0014). Leader only.
   */
  belowReserve(ids: readonly string[]): string[] {
    const now = this.deps.nowMs();
    const out: string[] = [];
    for (const id of ids) {
      const b = this.beats.get(id);
      if (b && now - b.atMs < this.opts.suspectAfterMs && this.spaceLow(b)) out.push(id);
    }
    return out;
  }

  /** Nodes among `ids` whose last heartbeat (not older than suspectAfterMs) reports a storage fault. Leader only. */
  storageFaulted(ids: readonly string[]): string[] {
    const now = this.deps.nowMs();
    return ids.filter((id) => {
      const b = this.beats.get(id);
      return b !== undefined && now - b.atMs < this.opts.suspectAfterMs && b.storageFault !== '';
    });
  }

  private spaceLow(b: Beat): boolean {
    return b.reserveBytes > 0 && b.logFreeBytes < b.reserveBytes + this.opts.spaceHeadroomBytes;
  }

  private stateOf(ageMs: number, beat: Beat | undefined): NodeState {
    if (ageMs >= this.opts.deadAfterMs) return 'dead';
    if (ageMs >= this.opts.suspectAfterMs) return 'suspect';
    if (beat && this.storageState(beat) === 'failed') return 'failed';
    // Not chosen for new data while its storage cannot write.
    if (beat && this.storageState(beat) === 'faulted') return 'suspect';
    return 'up';
  }
}
