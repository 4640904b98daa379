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

/** What a chunk server holds under one id (ChunkStatApi.statChunk). */
export type ChunkStat =
  | { exists: false }
  | {
      exists: true;
      /** Data length from the object's header (0 when the header itself is damaged). */
      sizeBytes: number;
      /** Size of the object file on disk (header + table + data). */
      fileSizeBytes: number;
      /** Whether every data block was read and checked (asked with `verify`). */
      verified: boolean;
      /** Why the object is corrupt (header, length, or a block checksum), or null if no damage was found. */
      corrupt: string | null;
    };

/**
 * Inspection of one object, kept apart from ChunkApi so data-path wrappers need not
 * implement it. Damage is a value here, not a CORRUPT error: the caller asked about it.
 */
export interface ChunkStatApi {
  /**
   * Whether the object exists and its size. The header (and its CRC) and the file length
   * are always checked; with `verify` every block's CRC32C is checked too (a full read).
   */
  statChunk(chunkId: number, verify: boolean): Promise<ChunkStat>;
}

/**
 * An object being stored piece by piece as it arrives (the chunk service's write stream),
 * so neither the wire nor the store holds the object whole. Same durability and
 * immutability rules as ChunkApi.writeChunk once committed; nothing is visible before.
 */
export interface ChunkWriter {
  /**
   * Appends the next piece (pieces go in order). Resolves once it is in the temp file;
   * rejects with the first failure (e.g. NO_SPACE), which commit() reports too. The
   * caller must not change `piece` until then.
   */
  append(piece: Buffer): Promise<void>;
  /** Bytes appended but not yet written, for the caller's back-pressure. */
  readonly queuedBytes: number;
  /** Makes the object durable under its id (or finds it already stored); at most once. */
  commit(): Promise<void>;
  /** Drops what was written; safe at any time, also after a failed commit. */
  abort(): Promise<void>;
}

/** A store that can take an object as a stream of pieces (ChunkStore does). */
export interface ChunkStreamApi {
  /** Starts an object of exactly `totalBytes`; fails at once when over a limit. */
  openWriter(chunkId: number, totalBytes: number): Promise<ChunkWriter>;
}
