// The interface to one chunk server, implemented in process by ChunkStore
// (src/chunks/store.ts) and across processes by the gRPC chunk client.

export interface ChunkCapacity {
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
  chunkCount: number;
}

/** An operating error of the chunk layer with a stable code. */
export type ChunkErrorCode = 'NOT_FOUND' | 'CORRUPT' | 'NO_SPACE' | 'IO' | 'INVALID' | 'UNAVAILABLE';

export class ChunkError extends Error {
  constructor(
    readonly code: ChunkErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ChunkError';
  }
}

export interface ChunkApi {
  /** Store an immutable object; resolves once it is fsynced (file and directory). */
  writeChunk(chunkId: number, data: Buffer): Promise<void>;
  /**
   * Read [offset, offset+length) of an object, clamped to its size; every byte returned
   * was checked against its CRC32C. Rejects with ChunkError('CORRUPT') on a mismatch.
   */
  readChunk(chunkId: number, offset: number, length: number): Promise<Buffer>;
  /** Delete an object; deleting a missing object is not an error. */
  deleteChunk(chunkId: number): Promise<void>;
  capacity(): Promise<ChunkCapacity>;
}
