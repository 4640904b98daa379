// Where a daemon's client puts and finds chunk data in a multi-node cluster: new chunks
// go to one node (this node's own chunk store for a server; for a client-only mount, the
// daemon it currently talks to) — replication across nodes is the next issue — and a
// chunk placed on another member is read from that member's chunk service over gRPC.
import type { ChunkApi } from '../chunks/api.js';
import { ChunkClient } from '../chunks/grpc.js';
import type { ChunkStore } from '../chunks/store.js';
import type { DataPlane } from '../fuse/data-plane.js';
import type { Layout } from '../meta/types.js';

export class ClusterDataPlane implements DataPlane {
  private readonly remotes = new Map<string, ChunkApi>();

  constructor(
    private readonly selfId: string,
    /** This node's chunk store; null for a client-only mount. */
    private readonly local: ChunkStore | null,
    private readonly addresses: () => Map<string, string>,
    /** Node that new chunks go to (default: this node). */
    private readonly target: () => string = () => selfId,
  ) {}

  place(_layout: Layout): string[] {
    return [this.target()];
  }

  node(nodeId: string): ChunkApi | undefined {
    if (nodeId === this.selfId && this.local) return this.local;
    let c = this.remotes.get(nodeId);
    if (!c) {
      const address = this.addresses().get(nodeId);
      if (!address) return undefined;
      c = new LazyChunkClient(address);
      this.remotes.set(nodeId, c);
    }
    return c;
  }

  close(): void {
    for (const c of this.remotes.values()) if (c instanceof LazyChunkClient) c.close();
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

  async writeChunk(chunkId: number, data: Buffer): Promise<void> {
    return (await this.get()).writeChunk(chunkId, data);
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
