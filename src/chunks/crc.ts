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
