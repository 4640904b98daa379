// Reed-Solomon erasure coding of one chunk (a stripe) into k data + m parity shards,
// with @ronomon/reed-solomon (a Cauchy bitmatrix code in native C that runs in libuv's
// threadpool, so a 4 MiB stripe never holds the event loop). Decision and numbers:
// docs/decisions/0006-erasure-coding.md.
//
// Geometry (EC_CODEC_VERSION 1): a chunk of L bytes is one stripe. Every shard is
// S = shardSizeBytes(L, k) bytes (ceil(L / k) rounded up to a multiple of 8, the
// library's unit). Data shard i holds chunk bytes [i*S, (i+1)*S), zero-padded past L;
// parity shard j (index k + j) is computed from all k data shards. The caller records L
// (the chunk ref's size): the shards alone do not say where the padding starts.
//
// This module is pure computation: no I/O, no CRC (the chunk store checks a CRC32C per
// block of each shard object; a shard that fails it is passed here as missing).
import { createRequire } from 'node:module';

/** The parts of @ronomon/reed-solomon (a CommonJS addon without types) that we use. */
interface RonomonReedSolomon {
  readonly MAX_K: number;
  readonly MAX_M: number;
  /** An encoding context for (k, m); reusable concurrently. */
  create(k: number, m: number): Buffer;
  /**
   * Computes the `targets` shards from the `sources` shards (bit i = shard i; data shards
   * 0..k-1 live at buffer[bufferOffset + i*S], parity shards at parity[parityOffset + j*S]
   * with S = bufferSize / k = paritySize / m). Throws synchronously on bad arguments;
   * `end` is called on the event loop once the threadpool has finished.
   */
  encode(
    context: Buffer,
    sources: number,
    targets: number,
    buffer: Buffer,
    bufferOffset: number,
    bufferSize: number,
    parity: Buffer,
    parityOffset: number,
    paritySize: number,
    end: (error?: Error | null) => void,
  ): void;
}

const require = createRequire(import.meta.url);
const reedSolomon = require('@ronomon/reed-solomon') as RonomonReedSolomon;

/**
 * Identifies the parity bytes this module writes: the code of @ronomon/reed-solomon 6.0.0
 * (pinned exactly in package.json) with the geometry above. The library's packet size,
 * and so its parity bytes, depends on (k, m, S); a change of library or geometry that
 * alters parity needs a new version here, recorded with the layout of the shards it wrote.
 * The golden test in test/unit/chunks/ec.test.ts fails if the bytes change.
 */
export const EC_CODEC_VERSION = 1;
/** Limits of the library (k ≤ 24, m ≤ 6); k + m ≤ 30 then fits its bit masks. */
export const EC_MAX_DATA_SHARDS = reedSolomon.MAX_K;
export const EC_MAX_PARITY_SHARDS = reedSolomon.MAX_M;
/** Shard sizes are multiples of this (the library works on 8-byte words). */
export const EC_SHARD_ALIGN_BYTES = 8;
/** The largest stripe (chunk) accepted: the chunk store's hard cap, well below the library's 4 GiB. */
export const EC_MAX_STRIPE_BYTES = 1024 * 1024 * 1024;

/**
 * INVALID: a bad argument (k/m out of range, wrong shard count, shards of unequal or
 * unaligned length, a length that does not fit the shards): a caller bug or damaged
 * metadata. TOO_FEW_SHARDS: fewer than k shards are present, so the stripe cannot be
 * decoded; the read path turns this into EIO.
 */
export type EcErrorCode = 'INVALID' | 'TOO_FEW_SHARDS';

export class EcError extends Error {
  constructor(
    readonly code: EcErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'EcError';
  }
}

/** One contiguous piece of a data range inside one data shard. */
export interface ShardRange {
  shardIndex: number;
  shardOffsetBytes: number;
  lengthBytes: number;
}

function invalid(message: string): never {
  throw new EcError('INVALID', message);
}

/** Throws EcError('INVALID') unless 1 ≤ k ≤ 24 and 1 ≤ m ≤ 6 (integers). */
export function checkEcScheme(k: number, m: number): void {
  if (!Number.isSafeInteger(k) || k < 1 || k > EC_MAX_DATA_SHARDS) {
    invalid(`ec: data shard count k=${k} must be an integer in 1..${EC_MAX_DATA_SHARDS}`);
  }
  if (!Number.isSafeInteger(m) || m < 1 || m > EC_MAX_PARITY_SHARDS) {
    invalid(`ec: parity shard count m=${m} must be an integer in 1..${EC_MAX_PARITY_SHARDS}`);
  }
}

/** Parses "k+m" (e.g. "6+3") as written in a layout; throws EcError('INVALID'). */
export function parseEcScheme(text: string): { k: number; m: number } {
  const match = /^\s*(\d{1,3})\s*\+\s*(\d{1,3})\s*$/.exec(text);
  if (!match) invalid(`ec: "${text}" is not of the form k+m (e.g. 6+3)`);
  const k = Number(match[1]);
  const m = Number(match[2]);
  checkEcScheme(k, m);
  return { k, m };
}

function checkLength(lengthBytes: number, what: string): void {
  if (!Number.isSafeInteger(lengthBytes) || lengthBytes < 0 || lengthBytes > EC_MAX_STRIPE_BYTES) {
    invalid(`ec: ${what} ${lengthBytes} must be an integer in 0..${EC_MAX_STRIPE_BYTES}`);
  }
}

/** Size of every shard of a stripe of `dataLengthBytes`: ceil(L / k) rounded up to 8. */
export function shardSizeBytes(dataLengthBytes: number, k: number): number {
  checkLength(dataLengthBytes, 'data length');
  if (!Number.isSafeInteger(k) || k < 1 || k > EC_MAX_DATA_SHARDS) {
    invalid(`ec: data shard count k=${k} must be an integer in 1..${EC_MAX_DATA_SHARDS}`);
  }
  const perShard = Math.ceil(dataLengthBytes / k);
  return Math.ceil(perShard / EC_SHARD_ALIGN_BYTES) * EC_SHARD_ALIGN_BYTES;
}

/**
 * Where the data range [offsetBytes, offsetBytes + lengthBytes) of a stripe of
 * `dataLengthBytes` lives in the data shards (a healthy read: no decoding). The range is
 * clamped to the data length; an empty result means nothing to read.
 */
export function dataShardRanges(offsetBytes: number, lengthBytes: number, dataLengthBytes: number, k: number): ShardRange[] {
  checkLength(dataLengthBytes, 'data length');
  if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0) invalid(`ec: offset ${offsetBytes} must be a non-negative integer`);
  if (!Number.isSafeInteger(lengthBytes) || lengthBytes < 0) invalid(`ec: length ${lengthBytes} must be a non-negative integer`);
  const size = shardSizeBytes(dataLengthBytes, k);
  const end = Math.min(dataLengthBytes, offsetBytes + lengthBytes);
  const ranges: ShardRange[] = [];
  for (let at = offsetBytes; at < end; ) {
    const shardIndex = Math.floor(at / size);
    const shardOffsetBytes = at - shardIndex * size;
    const piece = Math.min(size - shardOffsetBytes, end - at);
    ranges.push({ shardIndex, shardOffsetBytes, lengthBytes: piece });
    at += piece;
  }
  return ranges;
}

const contexts = new Map<string, Buffer>();

function contextFor(k: number, m: number): Buffer {
  const key = `${k}+${m}`;
  let context = contexts.get(key);
  if (!context) {
    context = reedSolomon.create(k, m);
    contexts.set(key, context);
  }
  return context;
}

/** Runs the library: computes `targets` from `sources` in place. */
function runCoder(k: number, m: number, sources: number, targets: number, data: Buffer, parity: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    reedSolomon.encode(contextFor(k, m), sources, targets, data, 0, data.length, parity, 0, parity.length, (error) =>
      error ? reject(error) : resolve(),
    );
  });
}

/** Bits 0..count-1 set; count ≤ 30 (checkEcScheme), so this stays a positive int32. */
function allShardsMask(count: number): number {
  return (1 << count) - 1;
}

/**
 * Encodes `data` as one stripe: resolves to k + m shards of shardSizeBytes(data.length, k)
 * bytes each (k data shards, then m parity shards). The shards are views of two new
 * buffers (data, parity), never of `data`, so the caller may reuse its buffer at once.
 * Empty data gives k + m empty shards.
 */
export async function encodeStripe(data: Uint8Array, k: number, m: number): Promise<Buffer[]> {
  checkEcScheme(k, m);
  checkLength(data.length, 'data length');
  const size = shardSizeBytes(data.length, k);
  const dataBuf = Buffer.allocUnsafe(size * k);
  dataBuf.set(data, 0);
  dataBuf.fill(0, data.length);
  const parityBuf = Buffer.allocUnsafe(size * m);
  if (size > 0) {
    const dataMask = allShardsMask(k);
    await runCoder(k, m, dataMask, allShardsMask(k + m) & ~dataMask, dataBuf, parityBuf);
  }
  return splitShards(dataBuf, parityBuf, size, k, m);
}

function splitShards(dataBuf: Buffer, parityBuf: Buffer, size: number, k: number, m: number): Buffer[] {
  const shards: Buffer[] = [];
  for (let i = 0; i < k; i++) shards.push(dataBuf.subarray(i * size, (i + 1) * size));
  for (let j = 0; j < m; j++) shards.push(parityBuf.subarray(j * size, (j + 1) * size));
  return shards;
}

interface Gathered {
  size: number;
  presentMask: number;
  dataBuf: Buffer;
  parityBuf: Buffer;
}

/** Checks the shard list and copies the present shards into one data and one parity buffer. */
function gather(shards: ReadonlyArray<Uint8Array | null | undefined>, k: number, m: number): Gathered {
  checkEcScheme(k, m);
  if (!Array.isArray(shards) || shards.length !== k + m) {
    invalid(`ec: expected ${k + m} shard slots for ${k}+${m}, got ${Array.isArray(shards) ? shards.length : typeof shards}`);
  }
  let size = -1;
  let presentMask = 0;
  let present = 0;
  for (let i = 0; i < shards.length; i++) {
    const shard = shards[i];
    if (shard === null || shard === undefined) continue;
    if (!(shard instanceof Uint8Array)) invalid(`ec: shard ${i} is not a Buffer`);
    if (size === -1) size = shard.length;
    else if (shard.length !== size) invalid(`ec: shard ${i} is ${shard.length} bytes, others are ${size}`);
    presentMask |= 1 << i;
    present++;
  }
  if (present < k) {
    throw new EcError('TOO_FEW_SHARDS', `ec: ${present} of ${k + m} shards present, ${k} needed to decode ${k}+${m}`);
  }
  if (size % EC_SHARD_ALIGN_BYTES !== 0) invalid(`ec: shard length ${size} is not a multiple of ${EC_SHARD_ALIGN_BYTES}`);
  if (size > shardSizeBytes(EC_MAX_STRIPE_BYTES, k)) invalid(`ec: shards of ${size} bytes exceed the ${EC_MAX_STRIPE_BYTES}-byte stripe limit`);
  const dataBuf = Buffer.allocUnsafe(size * k);
  const parityBuf = Buffer.allocUnsafe(size * m);
  for (let i = 0; i < shards.length; i++) {
    const shard = shards[i];
    if (!shard) continue;
    if (i < k) dataBuf.set(shard, i * size);
    else parityBuf.set(shard, (i - k) * size);
  }
  return { size, presentMask, dataBuf, parityBuf };
}

/**
 * Rebuilds every missing shard (null or undefined) from any k present ones: resolves to
 * all k + m shards, as views of new buffers (the inputs are not modified). For repair.
 * Rejects with EcError('TOO_FEW_SHARDS') when fewer than k are present. The shards are
 * not checked against each other: a shard with wrong bytes must be passed as missing
 * (the chunk store's CRC32C says which).
 */
export async function reconstruct(shards: ReadonlyArray<Uint8Array | null | undefined>, k: number, m: number): Promise<Buffer[]> {
  const { size, presentMask, dataBuf, parityBuf } = gather(shards, k, m);
  const missingMask = allShardsMask(k + m) & ~presentMask;
  if (missingMask !== 0 && size > 0) await runCoder(k, m, presentMask, missingMask, dataBuf, parityBuf);
  return splitShards(dataBuf, parityBuf, size, k, m);
}

/**
 * The first `dataLengthBytes` bytes of a stripe (the chunk's data) from its shards, any
 * of which may be missing (null or undefined) as long as k are present. Only missing
 * data shards are decoded; with all k data shards present this is a copy. Rejects with
 * EcError('TOO_FEW_SHARDS') when fewer than k are present, EcError('INVALID') when the
 * length does not fit the shard size.
 */
export async function decodeData(
  shards: ReadonlyArray<Uint8Array | null | undefined>,
  k: number,
  m: number,
  dataLengthBytes: number,
): Promise<Buffer> {
  checkEcScheme(k, m);
  checkLength(dataLengthBytes, 'data length');
  const { size, presentMask, dataBuf, parityBuf } = gather(shards, k, m);
  if (size !== shardSizeBytes(dataLengthBytes, k)) {
    invalid(`ec: shards of ${size} bytes do not match a ${k}+${m} stripe of ${dataLengthBytes} bytes`);
  }
  const missingData = allShardsMask(k) & ~presentMask;
  if (missingData !== 0 && size > 0) await runCoder(k, m, presentMask, missingData, dataBuf, parityBuf);
  return dataBuf.subarray(0, dataLengthBytes);
}
