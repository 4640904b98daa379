// On-disk format of one chunk object, version 1 (all integers little-endian):
//
//   0   8  magic "DFSCHUNK"
//   8   2  format version (1)
//  10   2  fixed header length in bytes (40) — lets a later version grow the header
//  12   4  block size in bytes
//  16   8  chunk id
//  24   8  data length in bytes
//  32   4  block count = ceil(data length / block size)
//  36   4  reserved, 0
//  40  4n  CRC32C of each data block (the last block may be short)
//  40+4n 4 CRC32C of bytes [0, 40+4n): the header and the table
//  44+4n   data
//
// The table sits before the data so a range read costs one small read of the prefix plus
// one read of only the blocks it touches, whatever the object size.
import { blockCount, blockCrcs, crc32cOf, isValidBlockSize } from './crc.js';

export const CHUNK_MAGIC = Buffer.from('DFSCHUNK', 'latin1');
export const CHUNK_FORMAT_VERSION = 1;
export const FIXED_HEADER_BYTES = 40;
const HEADER_CRC_BYTES = 4;

export interface ChunkHeader {
  formatVersion: number;
  blockSizeBytes: number;
  chunkId: number;
  dataLengthBytes: number;
  blockCount: number;
}

/** A decoded header with its verified CRC table. */
export interface VerifiedHeader extends ChunkHeader {
  crcs: Uint32Array;
  /** File offset of the first data byte. */
  dataOffsetBytes: number;
}

/** The object's bytes are not a valid version-1 object; the store turns this into CORRUPT. */
export class FormatError extends Error {
  override name = 'FormatError';
}

export function prefixLengthBytes(count: number): number {
  return FIXED_HEADER_BYTES + 4 * count + HEADER_CRC_BYTES;
}

/** Header, CRC table and header CRC for `data`; the data follows it in the file. */
export function encodePrefix(chunkId: number, data: Uint8Array, blockSizeBytes: number): Buffer {
  return encodePrefixOf(chunkId, data.length, blockSizeBytes, blockCrcs(data, blockSizeBytes));
}

/** The same prefix from a CRC table computed elsewhere (e.g. incrementally, BlockCrcBuilder). */
export function encodePrefixOf(chunkId: number, dataLengthBytes: number, blockSizeBytes: number, crcs: Uint32Array): Buffer {
  if (crcs.length !== blockCount(dataLengthBytes, blockSizeBytes)) throw new Error(`CRC table of ${crcs.length} blocks for ${dataLengthBytes} bytes`);
  const prefix = Buffer.alloc(prefixLengthBytes(crcs.length));
  CHUNK_MAGIC.copy(prefix, 0);
  prefix.writeUInt16LE(CHUNK_FORMAT_VERSION, 8);
  prefix.writeUInt16LE(FIXED_HEADER_BYTES, 10);
  prefix.writeUInt32LE(blockSizeBytes, 12);
  prefix.writeBigUInt64LE(BigInt(chunkId), 16);
  prefix.writeBigUInt64LE(BigInt(dataLengthBytes), 24);
  prefix.writeUInt32LE(crcs.length, 32);
  prefix.writeUInt32LE(0, 36);
  for (let i = 0; i < crcs.length; i++) prefix.writeUInt32LE(crcs[i], FIXED_HEADER_BYTES + 4 * i);
  const tableEnd = FIXED_HEADER_BYTES + 4 * crcs.length;
  prefix.writeUInt32LE(crc32cOf(prefix.subarray(0, tableEnd)), tableEnd);
  return prefix;
}

function readSafeU64(buf: Buffer, offset: number, what: string): number {
  const value = buf.readBigUInt64LE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`${what} ${value} out of range`);
  return Number(value);
}

/**
 * Decodes the fixed part of the header. Its fields are trusted only after
 * `verifyPrefix` checks the header CRC, but they are range-checked here so a damaged
 * length cannot make the caller allocate or read without bound.
 */
export function decodeFixedHeader(buf: Buffer, maxDataLengthBytes: number): ChunkHeader {
  if (buf.length < FIXED_HEADER_BYTES) throw new FormatError(`header truncated (${buf.length} bytes)`);
  if (!buf.subarray(0, 8).equals(CHUNK_MAGIC)) throw new FormatError('bad magic');
  const formatVersion = buf.readUInt16LE(8);
  if (formatVersion !== CHUNK_FORMAT_VERSION) throw new FormatError(`unsupported format version ${formatVersion}`);
  const fixedBytes = buf.readUInt16LE(10);
  if (fixedBytes !== FIXED_HEADER_BYTES) throw new FormatError(`bad header length ${fixedBytes}`);
  const blockSizeBytes = buf.readUInt32LE(12);
  if (!isValidBlockSize(blockSizeBytes)) throw new FormatError(`bad block size ${blockSizeBytes}`);
  const chunkId = readSafeU64(buf, 16, 'chunk id');
  const dataLengthBytes = readSafeU64(buf, 24, 'data length');
  if (dataLengthBytes > maxDataLengthBytes) throw new FormatError(`data length ${dataLengthBytes} above limit`);
  const count = buf.readUInt32LE(32);
  if (count !== blockCount(dataLengthBytes, blockSizeBytes)) throw new FormatError(`bad block count ${count}`);
  return { formatVersion, blockSizeBytes, chunkId, dataLengthBytes, blockCount: count };
}

/** Checks the header CRC over `prefix` (at least prefixLengthBytes(header.blockCount) bytes). */
export function verifyPrefix(header: ChunkHeader, prefix: Buffer): VerifiedHeader {
  const tableEnd = FIXED_HEADER_BYTES + 4 * header.blockCount;
  if (prefix.length < tableEnd + HEADER_CRC_BYTES) throw new FormatError('header table truncated');
  const stored = prefix.readUInt32LE(tableEnd);
  const actual = crc32cOf(prefix.subarray(0, tableEnd));
  if (stored !== actual) throw new FormatError('header checksum mismatch');
  const crcs = new Uint32Array(header.blockCount);
  for (let i = 0; i < header.blockCount; i++) crcs[i] = prefix.readUInt32LE(FIXED_HEADER_BYTES + 4 * i);
  return { ...header, crcs, dataOffsetBytes: tableEnd + HEADER_CRC_BYTES };
}
