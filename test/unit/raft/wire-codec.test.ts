// The framed Raft wire codec (src/cluster/raft/wire-codec.ts): every Message field round-
// trips through frames cut at arbitrary points, and malformed input of any kind is a
// WireError (never another exception, never an allocation the frame did not pay for).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EntryType, type Message, type MessageType } from '../../../src/cluster/raft/types.js';
import {
  ConnectionPurpose,
  decodeBatch,
  decodeHello,
  decodeMessage,
  decodeSnapshotHeader,
  encodeBatchFrame,
  encodedMessageBytes,
  encodeFrame,
  encodeHello,
  encodeMessageInto,
  encodeSnapshotHeader,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameType,
  WIRE_VERSION,
  WireError,
} from '../../../src/cluster/raft/wire-codec.js';

const TYPES: MessageType[] = [
  'MsgPreVote',
  'MsgPreVoteResp',
  'MsgVote',
  'MsgVoteResp',
  'MsgApp',
  'MsgAppResp',
  'MsgHeartbeat',
  'MsgHeartbeatResp',
  'MsgTimeoutNow',
  'MsgReadIndex',
  'MsgReadIndexResp',
  'MsgTransferLeader',
];

const u64 = fc.oneof(fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1), fc.maxSafeNat());
const nodeId = fc.oneof(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }));
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const entry = fc.record({ term: u64, index: u64, type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange), data: bytes(300) });

const message = (types: MessageType[]) =>
  fc.record({
    type: fc.constantFrom(...types),
    from: nodeId,
    to: nodeId,
    term: u64,
    index: u64,
    logTerm: u64,
    entries: fc.array(entry, { maxLength: 5 }),
    commit: u64,
    reject: fc.boolean(),
    rejectHint: u64,
    snapshot: fc.constant(null),
    context: fc.option(bytes(40), { nil: null }),
  }) as fc.Arbitrary<Message>;

const snapMessage = fc
  .tuple(message(['MsgSnap']), u64, u64, fc.array(nodeId, { maxLength: 7 }), fc.array(nodeId, { maxLength: 3 }), bytes(64))
  .map(([m, index, term, voters, learners, data]): Message => ({ ...m, snapshot: { meta: { index, term, conf: { voters, learners } }, data } }));

function batchFrame(ms: Message[]): Buffer {
  return encodeBatchFrame(ms, ms.reduce((s, m) => s + encodedMessageBytes(m), 0));
}

/** Feeds `stream` to a decoder in pieces cut at `cuts`, returns the frames. */
function reassemble(stream: Buffer, cuts: number[], maxFrameBytes = 16 * 1024 * 1024) {
  const d = new FrameDecoder(maxFrameBytes);
  const frames = [];
  let last = 0;
  for (const c of [...cuts.map((x) => x % (stream.length + 1)).sort((a, b) => a - b), stream.length]) {
    d.push(stream.subarray(last, c));
    last = c;
    for (let f = d.next(); f; f = d.next()) frames.push(f);
  }
  expect(d.pendingBytes).toBe(0);
  return frames;
}

/** Decoding must either succeed or throw WireError: never a RangeError, TypeError, ... */
function decodesOrWireError(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
  }
}

describe('wire codec', () => {
  it('round-trips every field of every message type through frames cut anywhere', () => {
    fc.assert(
      fc.property(fc.array(fc.array(message(TYPES), { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 8 }), (batches, cuts) => {
        const stream = Buffer.concat(batches.map(batchFrame));
        const frames = reassemble(stream, cuts);
        expect(frames.map((f) => f.type)).toEqual(batches.map(() => FrameType.Batch));
        expect(frames.map((f) => decodeBatch(f.payload))).toEqual(batches);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps null and empty context apart, and entry data as Buffers', () => {
    const base = { from: 'a', to: 'b', term: 1, index: 0, logTerm: 0, commit: 0, reject: false, rejectHint: 0, snapshot: null } as const;
    const ms: Message[] = [
      { ...base, type: 'MsgHeartbeat', entries: [], context: null },
      { ...base, type: 'MsgHeartbeatResp', entries: [], context: Buffer.alloc(0) },
      { ...base, type: 'MsgApp', entries: [{ term: 1, index: 1, type: EntryType.ConfChange, data: Buffer.alloc(0) }], context: null },
    ];
    const [f] = reassemble(batchFrame(ms), []);
    const got = decodeBatch(f.payload);
    expect(got[0].context).toBeNull();
    expect(got[1].context).toEqual(Buffer.alloc(0));
    expect(Buffer.isBuffer(got[2].entries[0].data)).toBe(true);
    expect(got[2].entries[0].type).toBe(EntryType.ConfChange);
  });

  it('round-trips a snapshot header with its meta (the data travels apart)', () => {
    fc.assert(
      fc.property(snapMessage, (m) => {
        const [f] = reassemble(encodeSnapshotHeader(m), []);
        expect(f.type).toBe(FrameType.SnapshotHeader);
        const { message: got, totalBytes } = decodeSnapshotHeader(f.payload);
        expect(totalBytes).toBe(m.snapshot?.data.length);
        expect(got).toEqual({ ...m, snapshot: { meta: m.snapshot?.meta, data: Buffer.alloc(0) } });
      }),
      { numRuns: 200 },
    );
  });

  it('round-trips a hello', () => {
    fc.assert(
      fc.property(nodeId, fc.constantFrom(ConnectionPurpose.Messages, ConnectionPurpose.Snapshot), bytes(100), (id, purpose, token) => {
        const [f] = reassemble(encodeHello({ protocolVersion: WIRE_VERSION, nodeId: id, purpose, token }), []);
        expect(decodeHello(f.payload)).toEqual({ protocolVersion: WIRE_VERSION, nodeId: id, purpose, token });
      }),
    );
  });

  it('refuses every truncation of a batch with a WireError', () => {
    fc.assert(
      fc.property(fc.array(message(TYPES), { minLength: 1, maxLength: 3 }), (ms) => {
        const payload = batchFrame(ms).subarray(FRAME_HEADER_BYTES);
        for (let n = 0; n < payload.length; n++) expect(() => decodeBatch(payload.subarray(0, n))).toThrow(WireError);
        // And trailing garbage.
        expect(() => decodeBatch(Buffer.concat([payload, Buffer.from([0])]))).toThrow(WireError);
      }),
      { numRuns: 50 },
    );
  });

  it('survives random corruption: decodes or throws WireError, nothing else', () => {
    fc.assert(
      fc.property(fc.array(message(TYPES), { minLength: 1, maxLength: 3 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), (ms, flips) => {
        const payload = Buffer.from(batchFrame(ms).subarray(FRAME_HEADER_BYTES));
        for (const [at, v] of flips) payload[at % payload.length] = v;
        decodesOrWireError(() => decodeBatch(payload));
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(snapMessage, fc.nat(), fc.integer({ min: 0, max: 255 }), (m, at, v) => {
        const payload = Buffer.from(encodeSnapshotHeader(m).subarray(FRAME_HEADER_BYTES));
        payload[at % payload.length] = v;
        decodesOrWireError(() => decodeSnapshotHeader(payload));
      }),
      { numRuns: 300 },
    );
    fc.assert(fc.property(bytes(200), (junk) => decodesOrWireError(() => decodeHello(junk))));
    fc.assert(fc.property(bytes(200), (junk) => decodesOrWireError(() => decodeBatch(junk))));
  });

  it('refuses hostile counts and lengths without allocating for them', () => {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(0xffffffff);
    expect(() => decodeBatch(count)).toThrow(/cannot fit/);
    // One message claiming 2^32-1 entries.
    const m: Message = { type: 'MsgApp', from: 'a', to: 'b', term: 1, index: 0, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot: null, context: null };
    const buf = Buffer.alloc(encodedMessageBytes(m));
    encodeMessageInto(buf, 0, m);
    buf.writeUInt32BE(0xffffffff, buf.length - 4);
    expect(() => decodeMessage(buf)).toThrow(/entries cannot fit/);
    // A u64 beyond 2^53 - 1 (high half 2^21).
    const big = Buffer.from(buf);
    big.writeUInt32BE(0xffffffff, buf.length - 4);
    big.writeUInt32BE(2 ** 21, 1 + 2 + 2);
    expect(() => decodeMessage(big)).toThrow(/beyond 2\^53/);
    // Unknown message type, unknown flags, invalid UTF-8 id.
    const t = Buffer.from(buf);
    t.writeUInt32BE(0, buf.length - 4);
    t[0] = 200;
    expect(() => decodeMessage(t)).toThrow(/unknown type/);
    const bad = Buffer.from(t);
    bad[0] = 4;
    bad[2] = 0xff;
    expect(() => decodeMessage(bad)).toThrow(/UTF-8/);
    // MsgSnap in a batch.
    const snap = Buffer.from(t);
    snap[0] = 8;
    expect(() => decodeMessage(snap)).toThrow(/MsgSnap in a batch/);
  });

  it('refuses an oversized frame, a runt frame and another version as soon as the header is in', () => {
    const d = new FrameDecoder(1024);
    const header = Buffer.alloc(FRAME_HEADER_BYTES);
    header.writeUInt32BE(1024 + 2 + 1);
    header[4] = WIRE_VERSION;
    header[5] = FrameType.Batch;
    d.push(header);
    expect(() => d.next()).toThrow(/exceeds the limit of 1024/);

    const runt = new FrameDecoder(1024);
    runt.push(Buffer.from([0, 0, 0, 1, WIRE_VERSION, 0]));
    expect(() => runt.next()).toThrow(/shorter than its header/);

    const other = new FrameDecoder(1024);
    const f = encodeFrame(FrameType.Ping);
    f[4] = WIRE_VERSION + 1;
    other.push(f);
    expect(() => other.next()).toThrow(/unsupported wire version/);

    // A frame exactly at the limit is fine, and waits for all its bytes.
    const ok = new FrameDecoder(1024);
    const full = encodeFrame(FrameType.SnapshotData, Buffer.alloc(1024, 7));
    ok.push(full.subarray(0, 100));
    expect(ok.next()).toBeNull();
    ok.push(full.subarray(100));
    expect(ok.next()?.payload.length).toBe(1024);
  });

  it('asserts on messages the core can never produce (programmer errors)', () => {
    const m: Message = { type: 'MsgApp', from: 'a', to: 'b', term: -1, index: 0, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot: null, context: null };
    expect(() => batchFrame([m])).toThrow(/assertion failed/);
    expect(() => batchFrame([{ ...m, term: 2 ** 53 }])).toThrow(/assertion failed/);
    expect(() => batchFrame([{ ...m, term: 1, from: 'x'.repeat(256) }])).toThrow(/assertion failed/);
  });
});
