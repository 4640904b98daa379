// CRC32C over fixed-size blocks of a chunk object. @node-rs/crc32 uses the SSE4.2/ARMv8
// CRC instructions, so a 4 MiB chunk costs well under a millisecond on the event loop.
import { crc32c } from '@node-rs/crc32';

/**
 * Default checksum block. 64 KiB keeps the table small (64 entries = 256 bytes for a
 * 4 MiB chunk) while bounding read amplification: a 128 KiB FUSE read (big_writes /
 * max_read) touches at most 3 blocks, so it never reads more than 192 KiB from disk.
 */
export const DEFAULT_BLOCK_SIZE_BYTES = 64 * 1024;
/** Block sizes must be powers of two in this range, so block math stays shifts and the table stays bounded. */
export const MIN_BLOCK_SIZE_BYTES = 4 * 1024;
export const MAX_BLOCK_SIZE_BYTES = 4 * 1024 * 1024;

export function crc32cOf(data: Uint8Array): number {
  return crc32c(data) >>> 0;
}

export function isValidBlockSize(blockSizeBytes: number): boolean {
  return (
    Number.isInteger(blockSizeBytes) &&
    blockSizeBytes >= MIN_BLOCK_SIZE_BYTES &&
    blockSizeBytes <= MAX_BLOCK_SIZE_BYTES &&
    (blockSizeBytes & (blockSizeBytes - 1)) === 0
  );
}

export function blockCount(dataLengthBytes: number, blockSizeBytes: number): number {
  return Math.ceil(dataLengthBytes / blockSizeBytes);
}

/** One CRC32C per block; the last block may be short. */
export function blockCrcs(data: Uint8Array, blockSizeBytes: number): Uint32Array {
  const count = blockCount(data.length, blockSizeBytes);
  const crcs = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    crcs[i] = crc32cOf(data.subarray(i * blockSizeBytes, Math.min((i + 1) * blockSizeBytes, data.length)));
  }
  return crcs;
}

/**
 * The same per-block CRC32C table as blockCrcs, built from pieces as they arrive (any
 * sizes, in order), so a streamed object is never held whole to be checksummed.
 */
export class BlockCrcBuilder {
  private readonly crcs: Uint32Array;
  private block = 0;
  /** Bytes of the current block seen so far, and their running CRC. */
  private blockFillBytes = 0;
  private blockCrc = 0;
  private seenBytes = 0;

  constructor(
    readonly dataLengthBytes: number,
    readonly blockSizeBytes: number,
  ) {
    this.crcs = new Uint32Array(blockCount(dataLengthBytes, blockSizeBytes));
  }

  get receivedBytes(): number {
    return this.seenBytes;
  }

  update(piece: Uint8Array): void {
    if (this.seenBytes + piece.length > this.dataLengthBytes) throw new Error(`BlockCrcBuilder: more than ${this.dataLengthBytes} bytes`);
    this.seenBytes += piece.length;
    let at = 0;
    while (at < piece.length) {
      const take = Math.min(this.blockSizeBytes - this.blockFillBytes, piece.length - at);
      const part = piece.subarray(at, at + take);
      this.blockCrc = (this.blockFillBytes === 0 ? crc32c(part) : crc32c(part, this.blockCrc)) >>> 0;
      this.blockFillBytes += take;
      at += take;
      if (this.blockFillBytes === this.blockSizeBytes) this.closeBlock();
    }
  }

  /** The table, once every announced byte was seen. */
  finish(): Uint32Array {
    if (this.seenBytes !== this.dataLengthBytes) throw new Error(`BlockCrcBuilder: ${this.seenBytes} of ${this.dataLengthBytes} bytes`);
    if (this.blockFillBytes > 0) this.closeBlock();
    return this.crcs;
  }

  private closeBlock(): void {
    this.crcs[this.block++] = this.blockCrc;
    this.blockFillBytes = 0;
    this.blockCrc = 0;
  }
}
