// The on-disk record format of the Raft log segments (log-store.ts). Pure: bytes in,
// values out, no I/O, so recovery can be tested byte by byte.
//
// A frame is [u32 LE payloadLength][u32 LE crc32c(payload)][payload]. The payload starts
// with [u8 formatVersion][u8 kind]; numbers are u64 LE (written as two u32 halves, since
// indexes and terms stay below 2^53). Kinds:
//   HEADER    magic "dfsrlog\0", u64 seq, u64 firstIndex      (first frame of every segment)
//   ENTRY     u64 term, u64 index, u8 entryType, data…
//   HARDSTATE u64 term, u64 commit, u8 hasVote, vote (utf8)…
//   CONF      ConfState as JSON (utf8)
// A zero length ends a segment (preallocated space is zeros); a length that runs past the
// end or a CRC mismatch is a torn write and also ends it.
import { crc32c } from '@node-rs/crc32';
import type { ConfState, Entry, EntryType, HardState } from './types.js';

export const LOG_FORMAT_VERSION = 1;
export const FRAME_HEADER_BYTES = 8;
const MAGIC = Buffer.from('dfsrlog\0', 'latin1');

export const enum RecordKind {
  Header = 1,
  Entry = 2,
  HardState = 3,
  Conf = 4,
}

export type LogRecord =
  | { kind: RecordKind.Header; seq: number; firstIndex: number }
  | { kind: RecordKind.Entry; entry: Entry }
  | { kind: RecordKind.HardState; hardState: HardState }
  | { kind: RecordKind.Conf; conf: ConfState };

/** ENTRY payload bytes besides data: version, kind, term, index, type. */
const ENTRY_FIXED_BYTES = 2 + 8 + 8 + 1;

/** Frame bytes of one entry record. */
export function entryFrameBytes(dataBytes: number): number {
  return FRAME_HEADER_BYTES + ENTRY_FIXED_BYTES + dataBytes;
}

function putU64(buf: Buffer, n: number, at: number): void {
  // Two halves: Buffer has no fast u64 writer for plain numbers, and BigInt costs an allocation.
  buf.writeUInt32LE(n % 0x1_0000_0000, at);
  buf.writeUInt32LE(Math.floor(n / 0x1_0000_0000), at + 4);
}

function getU64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 0x1_0000_0000;
}

/** Fill in length and CRC of the frame whose payload is buf[at+8, at+8+payloadBytes). */
function seal(buf: Buffer, at: number, payloadBytes: number): void {
  buf.writeUInt32LE(payloadBytes, at);
  buf.writeUInt32LE(crc32c(buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + payloadBytes)), at + 4);
}

/**
 * Encode entries as consecutive ENTRY frames into one buffer; `frameEnds[i]` is the end
 * offset of entry i's frame (so the writer may split the batch at a segment boundary).
 */
export function encodeEntries(entries: readonly Entry[]): { buf: Buffer; frameEnds: number[] } {
  let total = 0;
  for (const e of entries) total += entryFrameBytes(e.data.length);
  const buf = Buffer.allocUnsafe(total);
  const frameEnds: number[] = new Array<number>(entries.length);
  let at = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const p = at + FRAME_HEADER_BYTES;
    buf[p] = LOG_FORMAT_VERSION;
    buf[p + 1] = RecordKind.Entry;
    putU64(buf, e.term, p + 2);
    putU64(buf, e.index, p + 10);
    buf[p + 18] = e.type;
    e.data.copy(buf, p + ENTRY_FIXED_BYTES);
    const payloadBytes = ENTRY_FIXED_BYTES + e.data.length;
    seal(buf, at, payloadBytes);
    at += FRAME_HEADER_BYTES + payloadBytes;
    frameEnds[i] = at;
  }
  return { buf, frameEnds };
}

export function encodeHeader(seq: number, firstIndex: number): Buffer {
  const payloadBytes = 2 + MAGIC.length + 16;
  const buf = Buffer.alloc(FRAME_HEADER_BYTES + payloadBytes);
  const p = FRAME_HEADER_BYTES;
  buf[p] = LOG_FORMAT_VERSION;
  buf[p + 1] = RecordKind.Header;
  MAGIC.copy(buf, p + 2);
  putU64(buf, seq, p + 2 + MAGIC.length);
  putU64(buf, firstIndex, p + 10 + MAGIC.length);
  seal(buf, 0, payloadBytes);
  return buf;
}

export function encodeHardState(hs: HardState): Buffer {
  const vote = hs.vote === null ? Buffer.alloc(0) : Buffer.from(hs.vote, 'utf8');
  const payloadBytes = 2 + 16 + 1 + vote.length;
  const buf = Buffer.alloc(FRAME_HEADER_BYTES + payloadBytes);
  const p = FRAME_HEADER_BYTES;
  buf[p] = LOG_FORMAT_VERSION;
  buf[p + 1] = RecordKind.HardState;
  putU64(buf, hs.term, p + 2);
  putU64(buf, hs.commit, p + 10);
  buf[p + 18] = hs.vote === null ? 0 : 1;
  vote.copy(buf, p + 19);
  seal(buf, 0, payloadBytes);
  return buf;
}

export function encodeConf(conf: ConfState): Buffer {
  const json = Buffer.from(JSON.stringify({ voters: conf.voters, learners: conf.learners }), 'utf8');
  const payloadBytes = 2 + json.length;
  const buf = Buffer.alloc(FRAME_HEADER_BYTES + payloadBytes);
  buf[FRAME_HEADER_BYTES] = LOG_FORMAT_VERSION;
  buf[FRAME_HEADER_BYTES + 1] = RecordKind.Conf;
  json.copy(buf, FRAME_HEADER_BYTES + 2);
  seal(buf, 0, payloadBytes);
  return buf;
}

/** A record with a valid CRC that we cannot read: not a torn write but a bug or a newer format. */
export class RecordFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordFormatError';
  }
}

export interface ScanResult {
  records: LogRecord[];
  /** Offset just past the last valid frame. */
  validEndBytes: number;
  /** Why scanning stopped: clean end (zeros / end of file) or a torn or garbled frame. */
  stop: 'end' | 'torn';
}

/**
 * Decode frames from the start of a segment until the first zero length (end) or invalid
 * frame (torn tail). Entry data is copied so the records don't pin the segment's buffer.
 */
export function scanSegment(buf: Buffer): ScanResult {
  const records: LogRecord[] = [];
  let at = 0;
  while (at + FRAME_HEADER_BYTES <= buf.length) {
    const payloadBytes = buf.readUInt32LE(at);
    if (payloadBytes === 0) return { records, validEndBytes: at, stop: 'end' };
    const end = at + FRAME_HEADER_BYTES + payloadBytes;
    if (payloadBytes < 2 || end > buf.length) return { records, validEndBytes: at, stop: 'torn' };
    const payload = buf.subarray(at + FRAME_HEADER_BYTES, end);
    if (crc32c(payload) !== buf.readUInt32LE(at + 4)) return { records, validEndBytes: at, stop: 'torn' };
    records.push(decodePayload(payload, at));
    at = end;
  }
  return { records, validEndBytes: at, stop: 'end' };
}

function decodePayload(p: Buffer, at: number): LogRecord {
  if (p[0] !== LOG_FORMAT_VERSION) throw new RecordFormatError(`record at ${at}: unknown format version ${p[0]}`);
  const kind = p[1];
  switch (kind) {
    case RecordKind.Entry: {
      need(p, ENTRY_FIXED_BYTES, at);
      const entry: Entry = {
        term: getU64(p, 2),
        index: getU64(p, 10),
        type: p[18] as EntryType,
        data: Buffer.from(p.subarray(ENTRY_FIXED_BYTES)),
      };
      return { kind: RecordKind.Entry, entry };
    }
    case RecordKind.HardState: {
      need(p, 19, at);
      const vote = p[18] === 1 ? p.subarray(19).toString('utf8') : null;
      return { kind: RecordKind.HardState, hardState: { term: getU64(p, 2), commit: getU64(p, 10), vote } };
    }
    case RecordKind.Conf: {
      let parsed: { voters?: unknown; learners?: unknown };
      try {
        parsed = JSON.parse(p.subarray(2).toString('utf8')) as { voters?: unknown; learners?: unknown };
      } catch {
        throw new RecordFormatError(`record at ${at}: ConfState is not JSON`);
      }
      if (!isStringArray(parsed.voters) || !isStringArray(parsed.learners)) {
        throw new RecordFormatError(`record at ${at}: malformed ConfState`);
      }
      return { kind: RecordKind.Conf, conf: { voters: parsed.voters, learners: parsed.learners } };
    }
    case RecordKind.Header: {
      need(p, 2 + MAGIC.length + 16, at);
      if (!p.subarray(2, 2 + MAGIC.length).equals(MAGIC)) throw new RecordFormatError(`record at ${at}: bad segment magic`);
      return { kind: RecordKind.Header, seq: getU64(p, 2 + MAGIC.length), firstIndex: getU64(p, 10 + MAGIC.length) };
    }
    default:
      throw new RecordFormatError(`record at ${at}: unknown kind ${kind}`);
  }
}

function need(p: Buffer, bytes: number, at: number): void {
  if (p.length < bytes) throw new RecordFormatError(`record at ${at}: ${p.length} bytes, need ${bytes}`);
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}
