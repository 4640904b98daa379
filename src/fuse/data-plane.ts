// How the client reaches chunk servers: which nodes get a new chunk, and a ChunkApi
// per node. The single-node daemon and `dfs mount` use StaticDataPlane; the placement
// issue replaces it with placement decided by the meta leader.
import type { ChunkApi } from '../chunks/api.js';
import type { Layout } from '../meta/types.js';

export interface DataPlane {
  /** Node ids that should hold a new chunk of a file with this layout. */
  place(layout: Layout): string[];
  /** The chunk server of a node, or undefined when the node is unknown. */
  node(nodeId: string): ChunkApi | undefined;
}

/** Every chunk goes to the one known node. */
export class StaticDataPlane implements DataPlane {
  constructor(
    private readonly nodeId: string,
    private readonly chunks: ChunkApi,
  ) {}

  place(_layout: Layout): string[] {
    return [this.nodeId];
  }

  node(nodeId: string): ChunkApi | undefined {
    return nodeId === this.nodeId ? this.chunks : undefined;
  }
}
