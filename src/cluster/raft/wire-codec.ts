// The binary codec of the framed Raft transport (tcp-transport.ts): frames on a byte stream
// and a hand-written encoding of types.ts Message. Pure: no sockets, no timers, so every
// malformed input can be tested byte by byte.
//
// A connection starts with the 4-byte PREAMBLE ("dfsr", which the port mux tells apart
// from HTTP/2's "PRI " and TLS's 0x16), then carries frames:
//
//   u32 BE length of what follows | u8 WIRE_VERSION | u8 FrameType | payload (length - 2)
//
// Integers are big-endian; u64 fields are two u32 halves and must be safe integers (≤ 2^53-1)
// on both sides. Strings are UTF-8 with a u8 length (node ids are ≤ 64 bytes). A Message:
//
//   u8 type | str from | str to | u64 term, index, logTerm, commit, rejectHint
//   | u8 flags (1 reject, 2 context present, 4 snapshot meta present)
//   | [u32 len + context bytes] | u32 entry count | entries: u64 term, u64 index, u8 type,
//   u32 len + data | [snapshot meta: u64 index, u64 term, u16 n + n str voters, u16 + learners]
//
// The snapshot's data never travels inside a Message: it follows in SnapshotData frames.
// Every length is checked against what is left of the frame before anything is allocated,
// so a hostile length costs an error, not memory.
import { EntryType, type Entry, type Message, type MessageType, type NodeId, type SnapshotMeta } from './types.js';

export const PREAMBLE = Buffer.from('dfsr', 'latin1');
/** Bumped on any incompatible change of frames or Message layout. */
export const WIRE_VERSION = 1;
/** u32 length + version byte + type byte. */
export const FRAME_HEADER_BYTES = 6;
/** Node ids and other strings on the wire (config allows 64). */
export const MAX_WIRE_STRING_BYTES = 255;

export const enum FrameType {
  /** Sender -> receiver, first frame: who we are, what for, and the credentials. */
  Hello = 1,
  /**
   * Receiver -> sender: hello accepted; frames may flow. Payload: u8 feature bits
   * (ACCEPT_FEATURE_*), empty from a receiver that has none; senders ignore bits they do
   * not know.
   */
  Accept = 2,
  /** Sender -> receiver: u32 count + that many Messages (no MsgSnap). */
  Batch = 3,
  /** Snapshot connection: u64 total data bytes + the MsgSnap with its snapshot meta. */
  SnapshotHeader = 4,
  /** Snapshot connection: raw data bytes (≤ MAX_SNAPSHOT_PIECE_BYTES). */
  SnapshotData = 5,
  /** Receiver -> sender: the whole snapshot arrived and was handed to the node. */
  SnapshotDone = 6,
  /** Either way, then the connection closes: u8 ErrorCode + UTF-8 reason. */
  Error = 7,
  /** Sender -> receiver keepalive, answered by Pong (empty payloads). */
  Ping = 8,
  Pong = 9,
  /**
   * Sender -> receiver on a messages connection: an opaque payload for the node's own
   * services beside Raft (a follower's command forwarded to the leader and its answer,
   * src/daemon/forward.ts), in order with the Batch frames around it.
   */
  App = 10,
}

/** Accept feature bit: this receiver takes App frames (an older one would refuse the connection). */
export const ACCEPT_FEATURE_APP = 1;

export const enum ConnectionPurpose {
  Messages = 1,
  Snapshot = 2,
}

export const enum ErrorCode {
  Unauthenticated = 1,
  Invalid = 2,
  ResourceExhausted = 3,
  Unavailable = 4,
}

export const ERROR_CODE_NAMES: Record<number, string> = {
  1: 'UNAUTHENTICATED',
  2: 'INVALID',
  3: 'RESOURCE_EXHAUSTED',
  4: 'UNAVAILABLE',
};

/** Malformed input from a peer: the connection is refused with INVALID and closed. */
export class WireError extends Error {
  override name = 'WireError';
}

export interface Frame {
  type: FrameType;
  /** A view into received bytes: valid as long as the caller keeps it. */
  payload: Buffer;
}

export interface Hello {
  /** WIRE_VERSION of the sender. */
  protocolVersion: number;
  nodeId: NodeId;
  purpose: ConnectionPurpose;
  /** Cluster auth token (empty: none). */
  token: Buffer;
}

const MESSAGE_TYPES: readonly MessageType[] = [
  'MsgPreVote',
  'MsgPreVoteResp',
  'MsgVote',
  'MsgVoteResp',
  'MsgApp',
  'MsgAppResp',
  'MsgHeartbeat',
  'MsgHeartbeatResp',
  'MsgSnap',
  'MsgTimeoutNow',
  'MsgReadIndex',
  'MsgReadIndexResp',
  'MsgTransferLeader',
];
const CODE_OF_TYPE = new Map<MessageType, number>(MESSAGE_TYPES.map((t, i) => [t, i]));

const FLAG_REJECT = 1;
const FLAG_CONTEXT = 2;
const FLAG_SNAPSHOT_META = 4;
const KNOWN_FLAGS = FLAG_REJECT | FLAG_CONTEXT | FLAG_SNAPSHOT_META;

/** type + two empty strings + 5 u64 + flags + entry count. */
const MIN_MESSAGE_BYTES = 1 + 1 + 1 + 40 + 1 + 4;
/** u64 term + u64 index + u8 type + u32 length. */
const ENTRY_FIXED_BYTES = 21;
const TWO_32 = 2 ** 32;
/** High half of the largest safe integer (2^53 - 1). */
const MAX_SAFE_HIGH = 2 ** 21 - 1;

// Hot path: the message is built only on failure (a template literal in every call costs
// more than the encoding itself).
function fail(what: string): never {
  throw new Error(`raft wire codec: assertion failed: ${what}`);
}

function isAsciiString(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function stringBytes(s: string): number {
  const n = s.length <= MAX_WIRE_STRING_BYTES && isAsciiString(s) ? s.length : Buffer.byteLength(s, 'utf8');
  if (n > MAX_WIRE_STRING_BYTES) fail(`string of ${n} bytes exceeds ${MAX_WIRE_STRING_BYTES}`);
  return 1 + n;
}

function confBytes(ids: readonly string[]): number {
  if (ids.length > 0xffff) fail(`${ids.length} ids in a conf list`);
  let n = 2;
  for (const id of ids) n += stringBytes(id);
  return n;
}

/**
 * Exact encoded size of `m`. The snapshot meta is included when `withSnapshotMeta` (the
 * snapshot header); snapshot data never is.
 */
export function encodedMessageBytes(m: Message, withSnapshotMeta = false): number {
  let n = MIN_MESSAGE_BYTES - 2 + stringBytes(m.from) + stringBytes(m.to);
  if (m.context !== null) n += 4 + m.context.length;
  for (const e of m.entries) n += ENTRY_FIXED_BYTES + e.data.length;
  if (withSnapshotMeta && m.snapshot) n += 16 + confBytes(m.snapshot.meta.conf.voters) + confBytes(m.snapshot.meta.conf.learners);
  return n;
}

// ---- encoding (programmer errors throw: the core never makes a message this codec cannot carry) ----

function putU64(buf: Buffer, at: number, v: number): number {
  if (!(Number.isSafeInteger(v) && v >= 0)) fail(`${v} is not a safe unsigned integer`);
  // Byte stores, not writeUInt32BE: this runs 7 times per message. `>>> 0` is exact
  // modulo 2^32 for any safe integer.
  const high = (v / TWO_32) >>> 0;
  const low = v >>> 0;
  buf[at] = high >>> 24;
  buf[at + 1] = high >>> 16;
  buf[at + 2] = high >>> 8;
  buf[at + 3] = high;
  buf[at + 4] = low >>> 24;
  buf[at + 5] = low >>> 16;
  buf[at + 6] = low >>> 8;
  buf[at + 7] = low;
  return at + 8;
}

function putString(buf: Buffer, at: number, s: string): number {
  // Node ids are short ASCII: a JS loop beats a call into Buffer.write.
  if (s.length <= MAX_WIRE_STRING_BYTES && isAsciiString(s)) {
    buf[at] = s.length;
    for (let i = 0; i < s.length; i++) buf[at + 1 + i] = s.charCodeAt(i);
    return at + 1 + s.length;
  }
  const n = buf.write(s, at + 1, 'utf8');
  buf[at] = n;
  return at + 1 + n;
}

function putConf(buf: Buffer, at: number, ids: readonly string[]): number {
  buf.writeUInt16BE(ids.length, at);
  at += 2;
  for (const id of ids) at = putString(buf, at, id);
  return at;
}

/** Writes `m` at `at` (exactly encodedMessageBytes(m, withSnapshotMeta) bytes); returns the end. */
export function encodeMessageInto(buf: Buffer, at: number, m: Message, withSnapshotMeta = false): number {
  const code = CODE_OF_TYPE.get(m.type);
  if (code === undefined) fail(`unknown message type ${String(m.type)}`);
  buf[at++] = code;
  at = putString(buf, at, m.from);
  at = putString(buf, at, m.to);
  at = putU64(buf, at, m.term);
  at = putU64(buf, at, m.index);
  at = putU64(buf, at, m.logTerm);
  at = putU64(buf, at, m.commit);
  at = putU64(buf, at, m.rejectHint);
  const meta = withSnapshotMeta && m.snapshot ? m.snapshot.meta : null;
  buf[at++] = (m.reject ? FLAG_REJECT : 0) | (m.context !== null ? FLAG_CONTEXT : 0) | (meta ? FLAG_SNAPSHOT_META : 0);
  if (m.context !== null) {
    buf.writeUInt32BE(m.context.length, at);
    at += 4;
    buf.set(m.context, at);
    at += m.context.length;
  }
  buf.writeUInt32BE(m.entries.length, at);
  at += 4;
  for (const e of m.entries) {
    at = putU64(buf, at, e.term);
    at = putU64(buf, at, e.index);
    if (e.type !== EntryType.Normal && e.type !== EntryType.ConfChange) fail(`unknown entry type ${String(e.type)}`);
    buf[at++] = e.type;
    buf.writeUInt32BE(e.data.length, at);
    at += 4;
    // TypedArray.set is inlined by V8; Buffer.copy is a call into C++ (slower for small data).
    buf.set(e.data, at);
    at += e.data.length;
  }
  if (meta) {
    at = putU64(buf, at, meta.index);
    at = putU64(buf, at, meta.term);
    at = putConf(buf, at, meta.conf.voters);
    at = putConf(buf, at, meta.conf.learners);
  }
  return at;
}

/** Writes a frame header for `payloadBytes` of payload at `at`; returns where the payload goes. */
export function putFrameHeader(buf: Buffer, at: number, type: FrameType, payloadBytes: number): number {
  buf.writeUInt32BE(payloadBytes + 2, at);
  buf[at + 4] = WIRE_VERSION;
  buf[at + 5] = type;
  return at + FRAME_HEADER_BYTES;
}

export function encodeFrame(type: FrameType, payload: Buffer = Buffer.alloc(0)): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  payload.copy(buf, putFrameHeader(buf, 0, type, payload.length));
  return buf;
}

/** One Batch frame holding `messages`, whose encoded sizes the caller already knows (sum = payloadBytes - 4). */
export function encodeBatchFrame(messages: readonly Message[], messageBytes: number): Buffer {
  const payloadBytes = 4 + messageBytes;
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadBytes);
  let at = putFrameHeader(buf, 0, FrameType.Batch, payloadBytes);
  buf.writeUInt32BE(messages.length, at);
  at += 4;
  for (const m of messages) at = encodeMessageInto(buf, at, m);
  if (at !== buf.length) fail(`batch encoded to ${at} bytes, expected ${buf.length}`);
  return buf;
}

export function encodeHello(hello: Hello): Buffer {
  if (hello.token.length > 0xffff) fail('auth token longer than 65535 bytes');
  const payload = Buffer.allocUnsafe(2 + 1 + stringBytes(hello.nodeId) + 2 + hello.token.length);
  payload.writeUInt16BE(hello.protocolVersion, 0);
  payload[2] = hello.purpose;
  let at = putString(payload, 3, hello.nodeId);
  payload.writeUInt16BE(hello.token.length, at);
  at += 2;
  hello.token.copy(payload, at);
  return encodeFrame(FrameType.Hello, payload);
}

export function encodeSnapshotHeader(m: Message): Buffer {
  if (m.type !== 'MsgSnap' || m.snapshot === null) fail('snapshot header without a MsgSnap and its snapshot');
  const payload = Buffer.allocUnsafe(8 + encodedMessageBytes(m, true));
  putU64(payload, 0, m.snapshot.data.length);
  encodeMessageInto(payload, 8, m, true);
  return encodeFrame(FrameType.SnapshotHeader, payload);
}

export function encodeError(code: ErrorCode, reason: string): Buffer {
  const text = Buffer.from(reason.slice(0, 1024), 'utf8');
  const payload = Buffer.allocUnsafe(1 + text.length);
  payload[0] = code;
  text.copy(payload, 1);
  return encodeFrame(FrameType.Error, payload);
}

// ---- decoding (every check throws WireError) ----

/** Sequential reads over one frame's payload, each bounds-checked. */
class Reader {
  private at = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.buf.length - this.at;
  }

  private need(n: number, field: string): void {
    if (n > this.remaining) throw new WireError(`${this.what}: truncated at ${field} (needs ${n} bytes, ${this.remaining} left)`);
  }

  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.at++];
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }

  u64(field: string): number {
    this.need(8, field);
    const b = this.buf;
    const at = this.at;
    const high = ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
    const low = ((b[at + 4] << 24) | (b[at + 5] << 16) | (b[at + 6] << 8) | b[at + 7]) >>> 0;
    this.at += 8;
    if (high > MAX_SAFE_HIGH) throw new WireError(`${this.what}: ${field} is beyond 2^53 - 1`);
    return high * TWO_32 + low;
  }

  /** A view, not a copy. */
  bytes(n: number, field: string): Buffer {
    this.need(n, field);
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }

  string(field: string): string {
    const n = this.u8(field);
    this.need(n, field);
    const start = this.at;
    this.at += n;
    // Node ids are short ASCII: built in JS, without a subarray and a call into C++.
    let s = '';
    for (let i = start; i < start + n; i++) {
      const c = this.buf[i];
      if (c > 0x7f) return this.utf8(start, n, field);
      s += String.fromCharCode(c);
    }
    return s;
  }

  private utf8(start: number, n: number, field: string): string {
    const bytes = this.buf.subarray(start, start + n);
    const s = bytes.toString('utf8');
    // Refuse rather than silently replace invalid UTF-8: ids are compared byte for byte.
    if (!Buffer.from(s, 'utf8').equals(bytes)) throw new WireError(`${this.what}: ${field} is not valid UTF-8`);
    return s;
  }

  end(): void {
    if (this.remaining !== 0) throw new WireError(`${this.what}: ${this.remaining} unexpected trailing bytes`);
  }
}

function readConf(r: Reader, field: string): NodeId[] {
  const n = r.u16(`${field} count`);
  if (n > r.remaining) throw new WireError(`snapshot meta: ${n} ${field} cannot fit in ${r.remaining} bytes`);
  const ids: NodeId[] = [];
  for (let i = 0; i < n; i++) ids.push(r.string(field));
  return ids;
}

function readMessage(r: Reader, withSnapshotMeta: boolean): Message {
  const code = r.u8('type');
  const type = MESSAGE_TYPES[code];
  if (type === undefined) throw new WireError(`message: unknown type ${code}`);
  const from = r.string('from');
  const to = r.string('to');
  const term = r.u64('term');
  const index = r.u64('index');
  const logTerm = r.u64('logTerm');
  const commit = r.u64('commit');
  const rejectHint = r.u64('rejectHint');
  const flags = r.u8('flags');
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new WireError(`message: unknown flags 0x${flags.toString(16)}`);
  // Entry data and context are views into the received frame (≤ the frame limit), not
  // copies: a frame stays in memory while any of its entries does.
  const context = flags & FLAG_CONTEXT ? r.bytes(r.u32('context length'), 'context') : null;
  const count = r.u32('entry count');
  if (count * ENTRY_FIXED_BYTES > r.remaining) throw new WireError(`message: ${count} entries cannot fit in ${r.remaining} bytes`);
  const entries: Entry[] = new Array<Entry>(count);
  for (let i = 0; i < count; i++) {
    const eTerm = r.u64('entry term');
    const eIndex = r.u64('entry index');
    const eType = r.u8('entry type');
    if (eType !== EntryType.Normal && eType !== EntryType.ConfChange) throw new WireError(`message: unknown entry type ${eType}`);
    const data = r.bytes(r.u32('entry length'), 'entry data');
    entries[i] = { term: eTerm, index: eIndex, type: eType, data };
  }
  let meta: SnapshotMeta | null = null;
  if (flags & FLAG_SNAPSHOT_META) {
    if (!withSnapshotMeta) throw new WireError('message: snapshot meta outside a snapshot header');
    const snapIndex = r.u64('snapshot index');
    const snapTerm = r.u64('snapshot term');
    const voters = readConf(r, 'voters');
    const learners = readConf(r, 'learners');
    meta = { index: snapIndex, term: snapTerm, conf: { voters, learners } };
  } else if (withSnapshotMeta) {
    throw new WireError('snapshot header: MsgSnap without its snapshot meta');
  }
  if (type === 'MsgSnap' && !withSnapshotMeta) throw new WireError('MsgSnap in a batch (it travels on a snapshot connection)');
  if (withSnapshotMeta && type !== 'MsgSnap') throw new WireError(`snapshot header carries ${type}, not MsgSnap`);
  return {
    type,
    from,
    to,
    term,
    index,
    logTerm,
    entries,
    commit,
    reject: (flags & FLAG_REJECT) !== 0,
    rejectHint,
    snapshot: meta ? { meta, data: Buffer.alloc(0) } : null,
    context,
  };
}

/** Decodes one encoded Message (no snapshot meta); for tests and tools. */
export function decodeMessage(buf: Buffer): Message {
  const r = new Reader(buf, 'message');
  const m = readMessage(r, false);
  r.end();
  return m;
}

export function decodeBatch(payload: Buffer): Message[] {
  const r = new Reader(payload, 'batch');
  const count = r.u32('message count');
  if (count * MIN_MESSAGE_BYTES > r.remaining) throw new WireError(`batch: ${count} messages cannot fit in ${r.remaining} bytes`);
  const out: Message[] = new Array<Message>(count);
  for (let i = 0; i < count; i++) out[i] = readMessage(r, false);
  r.end();
  return out;
}

export function decodeHello(payload: Buffer): Hello {
  const r = new Reader(payload, 'hello');
  const protocolVersion = r.u16('protocol version');
  const purpose = r.u8('purpose');
  if (purpose !== ConnectionPurpose.Messages && purpose !== ConnectionPurpose.Snapshot) throw new WireError(`hello: unknown purpose ${purpose}`);
  const nodeId = r.string('node id');
  if (nodeId === '') throw new WireError('hello: empty node id');
  const token = r.bytes(r.u16('token length'), 'token');
  r.end();
  return { protocolVersion, nodeId, purpose, token };
}

/** The MsgSnap (data still empty) and the number of data bytes that will follow. */
export function decodeSnapshotHeader(payload: Buffer): { message: Message; totalBytes: number } {
  const r = new Reader(payload, 'snapshot header');
  const totalBytes = r.u64('total bytes');
  const message = readMessage(r, true);
  r.end();
  return { message, totalBytes };
}

export function decodeError(payload: Buffer): { code: ErrorCode; reason: string } {
  const r = new Reader(payload, 'error');
  const code = r.u8('code') as ErrorCode;
  return { code, reason: r.bytes(r.remaining, 'reason').toString('utf8') };
}

/**
 * Cuts a byte stream into frames. The caller pushes socket chunks and pulls whole frames;
 * a length beyond `maxFrameBytes`, a runt frame or an unknown version throws WireError as
 * soon as its header is in, before any payload is buffered.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private maxFrameBytes: number) {}

  /** Bytes received and not yet returned as frames. */
  get pendingBytes(): number {
    return this.buffered;
  }

  setMaxFrameBytes(n: number): void {
    this.maxFrameBytes = n;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next whole frame, or null until more bytes arrive. */
  next(): Frame | null {
    if (this.buffered < FRAME_HEADER_BYTES) return null;
    const head = this.peek(FRAME_HEADER_BYTES);
    const length = head.readUInt32BE(0);
    if (length < 2) throw new WireError(`frame length ${length} is shorter than its header`);
    if (length - 2 > this.maxFrameBytes) throw new WireError(`frame of ${length - 2} bytes exceeds the limit of ${this.maxFrameBytes}`);
    if (head[4] !== WIRE_VERSION) throw new WireError(`unsupported wire version ${head[4]} (this node speaks ${WIRE_VERSION})`);
    const total = 4 + length;
    if (this.buffered < total) return null;
    const frame = this.take(total);
    return { type: frame[5] as FrameType, payload: frame.subarray(FRAME_HEADER_BYTES) };
  }

  /** The first n buffered bytes (n ≤ buffered), copied only if they span chunks. */
  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length >= n) return first;
    return Buffer.concat(this.chunks, n);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    this.buffered -= n;
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
