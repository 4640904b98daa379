// How the client reaches chunk servers: where the copies of a new chunk go and a
// ChunkApi per node (the ChunkPlacer of src/chunks/chunk-io.ts). Daemons use the
// cluster's data plane (src/daemon/cluster-data-plane.ts: placement from the meta
// leader's view of the chunk servers); StaticDataPlane serves one known node (tests).
import type { ChunkApi } from '../chunks/api.js';
import type { ChunkPlacer } from '../chunks/chunk-io.js';
import type { Layout } from '../meta/types.js';

export type DataPlane = ChunkPlacer;

/** Every chunk goes to the one known node (one copy, whatever the layout asks). */
export class StaticDataPlane implements DataPlane {
  constructor(
    private readonly nodeId: string,
    private readonly chunks: ChunkApi,
  ) {}

  get localId(): string {
    return this.nodeId;
  }

  place(_layout: Layout, _bytes: number, count: number, exclude: ReadonlySet<string>): Promise<string[]> {
    return Promise.resolve(count > 0 && !exclude.has(this.nodeId) ? [this.nodeId] : []);
  }

  minCopies(_layout: Layout): number {
    return 1;
  }

  clusterNodes(): number {
    return 1;
  }

  node(nodeId: string): ChunkApi | undefined {
    return nodeId === this.nodeId ? this.chunks : undefined;
  }
}
