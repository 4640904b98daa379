// Where a daemon's client puts and finds chunk data in a multi-node cluster: the copies
// of a new chunk go where placement.ts says, from the meta leader's view of the chunk
// servers (ClusterView, cached for a second); a chunk on another node is read from that
// node's chunk service over gRPC, one on this node straight from the local store.
import type { ChunkApi } from '../chunks/api.js';
import { ChunkClient } from '../chunks/grpc.js';
import type { ChunkStore } from '../chunks/store.js';
import type { DataPlane } from '../fuse/data-plane.js';
import type { Layout } from '../meta/types.js';
import type { ClusterViewReply__Output } from '../meta/gen/dfs/meta/ClusterViewReply.js';
import { hasRoom, minCopies, placeCopies, type PlacementNode } from '../cluster/placement.js';
import { ByteBudget } from '../fuse/budget.js';

/** Bytes of chunk writes in flight to one peer at most (the rest wait their turn). */
const PEER_INFLIGHT_BYTES = 32 * 1024 * 1024;

/** How long a fetched cluster view is used for placement. */
const VIEW_TTL_MS = 1000;

export class ClusterDataPlane implements DataPlane {
  private readonly remotes = new Map<string, { address: string; api: LazyChunkClient }>();
  private view: { nodes: PlacementNode[]; addresses: Map<string, string>; atMs: number } | null = null;
  private fetching: Promise<void> | null = null;

  constructor(
    /** This node's id ('' for a client-only mount). */
    readonly localId: string,
    /** This node's chunk store; null for a client-only mount. */
    private readonly local: ChunkStore | null,
    /** Known addresses (Raft members), for nodes the view has not named yet. */
    private readonly addresses: () => Map<string, string>,
    /** The meta leader's view of the chunk servers. */
    private readonly fetchView: () => Promise<ClusterViewReply__Output>,
  ) {}

  private async freshView(): Promise<PlacementNode[]> {
    if (this.view && performance.now() - this.view.atMs < VIEW_TTL_MS) return this.view.nodes;
    this.fetching ??= this.fetchView()
      .then((v) => {
        if (v.errno) return;
        this.view = {
          nodes: v.nodes.map((n) => ({
            nodeId: n.nodeId,
            zone: n.zone,
            rack: n.rack,
            totalBytes: Number(n.totalBytes),
            freeBytes: Number(n.freeBytes),
            reserveBytes: Number(n.chunkReserveBytes ?? 0),
            state: n.state,
            adminState: n.adminState || 'active',
          })),
          addresses: new Map(v.nodes.map((n) => [n.nodeId, n.address])),
          atMs: performance.now(),
        };
      })
      .catch(() => undefined) // the last good view (or none) stands in
      .finally(() => (this.fetching = null));
    await this.fetching;
    return this.view?.nodes ?? [];
  }

  async place(layout: Layout, bytes: number, count: number, exclude: ReadonlySet<string>, apartFrom?: ReadonlySet<string>): Promise<string[]> {
    const nodes = await this.freshView();
    const placed = nodes.filter((n) => apartFrom?.has(n.nodeId));
    const usedZones = new Set(placed.map((n) => n.zone).filter((z) => z !== ''));
    const usedRacks = new Set(placed.map((n) => n.rack).filter((r) => r !== ''));
    return placeCopies(nodes, { count, bytes, exclude, usedZones, usedRacks });
  }

  spaceLimited(bytes: number): boolean {
    return (this.view?.nodes ?? []).some((n) => n.state === 'up' && !hasRoom(n, bytes));
  }

  minCopies(layout: Layout): number {
    return minCopies(layout, this.clusterNodes());
  }

  clusterNodes(): number {
    return Math.max(1, this.view?.nodes.length ?? 1);
  }

  /** Forget the cached view (a write found it stale). */
  invalidate(): void {
    this.view = null;
  }

  node(nodeId: string): ChunkApi | undefined {
    if (nodeId === this.localId && this.local) return this.local;
    const address = this.view?.addresses.get(nodeId) ?? this.addresses().get(nodeId);
    let c = this.remotes.get(nodeId);
    if (c && address && c.address !== address) {
      c.api.close();
      c = undefined;
    }
    if (!c) {
      if (!address) return undefined;
      c = { address, api: new LazyChunkClient(address) };
      this.remotes.set(nodeId, c);
    }
    return c.api;
  }

  close(): void {
    for (const c of this.remotes.values()) c.api.close();
    this.remotes.clear();
  }
}

/** A ChunkClient connected on first use (connect loads the proto asynchronously). */
class LazyChunkClient implements ChunkApi {
  private client: Promise<ChunkClient> | null = null;

  constructor(private readonly address: string) {}

  private get(): Promise<ChunkClient> {
    this.client ??= ChunkClient.connect({ address: this.address });
    return this.client;
  }

  /** Back-pressure per peer: writes beyond PEER_INFLIGHT_BYTES wait for earlier ones. */
  private readonly inflight = new ByteBudget(PEER_INFLIGHT_BYTES);

  async writeChunk(chunkId: number, data: Buffer): Promise<void> {
    await this.inflight.acquire(data.length);
    try {
      return await (await this.get()).writeChunk(chunkId, data);
    } finally {
      this.inflight.release(data.length);
    }
  }
  async readChunk(chunkId: number, offset: number, length: number): Promise<Buffer> {
    return (await this.get()).readChunk(chunkId, offset, length);
  }
  async deleteChunk(chunkId: number): Promise<void> {
    return (await this.get()).deleteChunk(chunkId);
  }
  async capacity() {
    return (await this.get()).capacity();
  }
  close(): void {
    void this.client?.then((c) => c.close(), () => undefined);
  }
}
