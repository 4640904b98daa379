// TcpTransport between nodes that each listen the way a daemon does (a PortMux in front of
// a grpc-js server, on 127.0.0.1): what transport.test.ts proves for GrpcTransport (field
// fidelity, per-pair order, batching, snapshots, a peer going away and coming back on the
// same port, queue shedding, auth, stalled peers) plus what a hand-written wire must also
// survive: malformed and oversized frames from a raw socket.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { PortMux } from '../../../src/cluster/raft/port-mux.js';
import { TcpTransport, tokenSecurity, type RaftConnectionSecurity, type TcpTransportLimits } from '../../../src/cluster/raft/tcp-transport.js';
import { EntryType, type Message, type NodeId } from '../../../src/cluster/raft/types.js';
import {
  ConnectionPurpose,
  decodeError,
  encodeBatchFrame,
  encodedMessageBytes,
  encodeFrame,
  encodeHello,
  ErrorCode,
  FrameDecoder,
  FrameType,
  PREAMBLE,
  WIRE_VERSION,
  type Frame,
} from '../../../src/cluster/raft/wire-codec.js';

const MiB = 1024 * 1024;
// Quick reconnects so "the peer is back" tests take tens of milliseconds, not seconds.
const FAST: Partial<TcpTransportLimits> = { reconnectBackoffMinMs: 10, reconnectBackoffMaxMs: 100 };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface TestNode {
  id: NodeId;
  address: string;
  port: number;
  transport: TcpTransport;
  received: Message[];
  unreachable: NodeId[];
  snapshotsDone: Array<[NodeId, boolean]>;
  /** Stops listening and closes the transport (a daemon going away). */
  stop(): Promise<void>;
}

async function startNode(id: NodeId, opts: { port?: number; authToken?: string; limits?: Partial<TcpTransportLimits> } = {}): Promise<TestNode> {
  const received: Message[] = [];
  const transport = new TcpTransport({ selfId: id, peers: new Map(), onMessage: (m) => received.push(m), authToken: opts.authToken, limits: { ...FAST, ...opts.limits } });
  const server = new grpc.Server();
  const mux = await PortMux.listen({
    address: `127.0.0.1:${opts.port ?? 0}`,
    grpcServer: server,
    grpcCredentials: grpc.ServerCredentials.createInsecure(),
    onRaftConnection: (s) => transport.acceptConnection(s),
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    transport.close();
    server.forceShutdown();
    await mux.close();
  };
  const node: TestNode = { id, address: `127.0.0.1:${mux.port}`, port: mux.port, transport, received, unreachable: [], snapshotsDone: [], stop };
  transport.onUnreachable((peer) => node.unreachable.push(peer));
  transport.onSnapshotDone((peer, ok) => node.snapshotsDone.push([peer, ok]));
  cleanups.push(stop);
  return node;
}

/** Every node learns every other node's address. */
function mesh(nodes: TestNode[]): void {
  for (const n of nodes) n.transport.setPeers(new Map(nodes.filter((o) => o !== n).map((o) => [o.id, o.address])));
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function msg(from: NodeId, to: NodeId, fields: Partial<Message> = {}): Message {
  return { type: 'MsgHeartbeat', from, to, term: 1, index: 0, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot: null, context: null, ...fields };
}

function from(node: TestNode, sender: NodeId): Message[] {
  return node.received.filter((m) => m.from === sender);
}

/** A free port: take one, then release it. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** A hand-driven connection to a node: writes raw bytes, collects the frames it gets back. */
async function rawClient(port: number): Promise<{ socket: net.Socket; frames: Frame[]; closed: () => boolean; write: (b: Buffer) => void }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const frames: Frame[] = [];
  const decoder = new FrameDecoder(MiB);
  let isClosed = false;
  socket.on('data', (c: Buffer) => {
    decoder.push(c);
    for (let f = decoder.next(); f; f = decoder.next()) frames.push(f);
  });
  socket.on('error', () => undefined);
  socket.on('close', () => void (isClosed = true));
  cleanups.push(() => void socket.destroy());
  return { socket, frames, closed: () => isClosed, write: (b) => void socket.write(b) };
}

function hello(nodeId: NodeId, purpose = ConnectionPurpose.Messages, token = ''): Buffer {
  return Buffer.concat([PREAMBLE, encodeHello({ protocolVersion: WIRE_VERSION, nodeId, purpose, token: Buffer.from(token) })]);
}

function batch(ms: Message[]): Buffer {
  return encodeBatchFrame(ms, ms.reduce((s, m) => s + encodedMessageBytes(m), 0));
}

function errorOf(frames: Frame[]): { code: ErrorCode; reason: string } | undefined {
  const f = frames.find((x) => x.type === FrameType.Error);
  return f ? decodeError(f.payload) : undefined;
}

describe('TcpTransport', () => {
  it('delivers every field intact and in order between two nodes', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    mesh([a, b]);
    const binary = randomBytes(4096);
    const sent: Message[] = [
      msg('a', 'b', {
        type: 'MsgApp',
        term: 7,
        index: 41,
        logTerm: 6,
        commit: 40,
        entries: [
          { term: 7, index: 42, type: EntryType.Normal, data: binary },
          { term: 7, index: 43, type: EntryType.ConfChange, data: Buffer.from('{"type":"addVoter","node":"d"}') },
          { term: 7, index: 44, type: EntryType.Normal, data: Buffer.alloc(0) },
        ],
      }),
      msg('a', 'b', { type: 'MsgAppResp', term: 2 ** 40, index: 2 ** 53 - 1, reject: true, rejectHint: 17 }),
      msg('a', 'b', { type: 'MsgHeartbeat', commit: 3, context: Buffer.from([0, 255, 1, 254]) }),
      msg('a', 'b', { type: 'MsgHeartbeatResp', context: Buffer.alloc(0) }),
      msg('a', 'b', { type: 'MsgReadIndex', term: 0, context: randomBytes(16) }),
      msg('a', 'b', { type: 'MsgReadIndexResp', index: 99, context: Buffer.from('ctx') }),
      msg('a', 'b', { type: 'MsgPreVote', term: 3, index: 10, logTerm: 2 }),
      msg('a', 'b', { type: 'MsgPreVoteResp', term: 3, reject: true }),
      msg('a', 'b', { type: 'MsgVote', term: 4, index: 10, logTerm: 2, context: Buffer.from('transfer') }),
      msg('a', 'b', { type: 'MsgVoteResp', term: 4 }),
      msg('a', 'b', { type: 'MsgTimeoutNow', term: 4 }),
      msg('a', 'b', { type: 'MsgTransferLeader', term: 0 }),
    ];
    // Over several turns of the event loop too, so order holds across batches.
    for (const m of sent) {
      a.transport.send([m]);
      await new Promise((r) => setImmediate(r));
    }
    await waitFor('all messages at b', () => b.received.length === sent.length);
    expect(b.received).toEqual(sent);
    expect(b.received[0].context).toBeNull();
    expect(b.received[3].context).toEqual(Buffer.alloc(0));
    expect(Buffer.isBuffer(b.received[0].entries[0].data)).toBe(true);
    expect(b.received[0].entries[1].type).toBe(EntryType.ConfChange);

    b.transport.send([msg('b', 'a', { type: 'MsgAppResp', index: 44 })]);
    await waitFor('reply at a', () => a.received.length === 1);
    expect(a.received[0]).toEqual(msg('b', 'a', { type: 'MsgAppResp', index: 44 }));
    expect(a.unreachable).toEqual([]);
    expect(a.transport.stats().streamFailures).toBe(0);
  });

  it('keeps per-pair order among three nodes sending to each other at once', async () => {
    const nodes = await Promise.all(['n1', 'n2', 'n3'].map((id) => startNode(id)));
    mesh(nodes);
    const perPair = 2000;
    for (let i = 1; i <= perPair; i++) {
      for (const s of nodes) {
        s.transport.send(
          nodes.filter((t) => t !== s).map((t) => msg(s.id, t.id, { type: 'MsgApp', index: i, entries: [{ term: 1, index: i, type: EntryType.Normal, data: Buffer.from(`${s.id}-${i}`) }] })),
        );
      }
      // Spread over many turns so batches of different sizes interleave.
      if (i % 97 === 0) await new Promise((r) => setImmediate(r));
    }
    await waitFor('all messages', () => nodes.every((n) => n.received.length === 2 * perPair));
    for (const receiver of nodes) {
      for (const sender of nodes.filter((n) => n !== receiver)) {
        const got = from(receiver, sender.id);
        expect(got.map((m) => m.index)).toEqual(Array.from({ length: perPair }, (_, k) => k + 1));
        expect(got.every((m) => m.entries[0].data.toString() === `${sender.id}-${m.index}`)).toBe(true);
      }
    }
  });

  it('sends everything queued in one turn as one batch in one socket write', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    mesh([a, b]);
    // Connected first, so the batch below is not also waiting for the hello.
    a.transport.send([msg('a', 'b')]);
    await waitFor('connected', () => b.received.length === 1);
    const before = a.transport.stats();
    for (let i = 0; i < 1000; i++) a.transport.send([msg('a', 'b', { type: 'MsgApp', index: i, entries: [{ term: 1, index: i + 1, type: EntryType.Normal, data: Buffer.alloc(64, i) }] })]);
    await waitFor('1000 messages', () => b.received.length === 1001);
    expect(b.received.slice(1).map((m) => m.index)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    const sent = a.transport.stats();
    expect(sent.messagesSent - before.messagesSent).toBe(1000);
    expect(sent.batchesSent - before.batchesSent).toBe(1);
    expect(b.transport.stats().batchesReceived).toBe(sent.batchesSent);

    // Beyond maxBatchBytes a turn makes several frames (still one corked write).
    const c = await startNode('c', { limits: { maxBatchBytes: 16 * 1024 } });
    c.transport.setPeers(new Map([['b', b.address]]));
    c.transport.send(Array.from({ length: 100 }, (_, i) => msg('c', 'b', { type: 'MsgApp', index: i, entries: [{ term: 1, index: i + 1, type: EntryType.Normal, data: Buffer.alloc(1000) }] })));
    await waitFor('100 from c', () => from(b, 'c').length === 100);
    expect(c.transport.stats().batchesSent).toBeGreaterThanOrEqual(7);
    expect(from(b, 'c').map((m) => m.index)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('sends a 20 MiB snapshot intact on its own connection and reports it done', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    mesh([a, b]);
    const data = randomBytes(20 * MiB);
    const snap = msg('a', 'b', { type: 'MsgSnap', term: 5, snapshot: { meta: { index: 1234, term: 5, conf: { voters: ['a', 'b', 'c'], learners: ['d'] } }, data } });
    a.transport.send([snap, msg('a', 'b', { type: 'MsgHeartbeat', term: 5 })]);
    await waitFor('snapshot at b', () => b.received.some((m) => m.type === 'MsgSnap'));
    await waitFor('snapshot reported', () => a.snapshotsDone.length === 1);
    expect(a.snapshotsDone).toEqual([['b', true]]);
    const got = b.received.find((m) => m.type === 'MsgSnap');
    expect(got?.snapshot?.meta).toEqual({ index: 1234, term: 5, conf: { voters: ['a', 'b', 'c'], learners: ['d'] } });
    expect(got?.snapshot?.data.equals(data)).toBe(true);
    expect({ ...got, snapshot: null }).toEqual({ ...snap, snapshot: null });
    // The heartbeat behind it was not held up by the 20 MiB: it arrived first.
    expect(b.received[0].type).toBe('MsgHeartbeat');
    expect(a.transport.stats().snapshotsSent).toBe(1);
    expect(b.transport.stats().snapshotsReceived).toBe(1);
    // An empty snapshot works too.
    a.transport.send([msg('a', 'b', { type: 'MsgSnap', snapshot: { meta: { index: 1, term: 1, conf: { voters: ['a'], learners: [] } }, data: Buffer.alloc(0) } })]);
    await waitFor('empty snapshot reported', () => a.snapshotsDone.length === 2);
    expect(a.snapshotsDone[1]).toEqual(['b', true]);
  });

  it('refuses a snapshot beyond the receiver limits and reports the failure', async () => {
    const a = await startNode('a');
    const b = await startNode('b', { limits: { maxSnapshotBytes: MiB } });
    const c = await startNode('c', { limits: { maxInflightSnapshotBytes: MiB } });
    mesh([a, b, c]);
    const snap = (to: NodeId) => msg('a', to, { type: 'MsgSnap', snapshot: { meta: { index: 9, term: 1, conf: { voters: ['a', to], learners: [] } }, data: Buffer.alloc(2 * MiB) } });
    a.transport.send([snap('b'), snap('c')]);
    await waitFor('both reported', () => a.snapshotsDone.length === 2);
    expect(a.snapshotsDone.sort()).toEqual([
      ['b', false],
      ['c', false],
    ]);
    expect(b.received).toEqual([]);
    expect(c.received).toEqual([]);
    expect(b.transport.stats().invalidRejected).toBe(1);
    // Messages still flow to both.
    a.transport.send([msg('a', 'b'), msg('a', 'c')]);
    await waitFor('messages after refused snapshots', () => b.received.length === 1 && c.received.length === 1);
  });

  it('survives a peer that is down and resumes when it is back on the same port', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    mesh([a, b]);
    a.transport.send([msg('a', 'b', { index: 1 })]);
    await waitFor('first message', () => b.received.length === 1);

    await b.stop();
    expect(() => a.transport.send([msg('a', 'b', { index: 2 })])).not.toThrow();
    await waitFor('unreachable reported', () => a.unreachable.includes('b'));
    expect(a.transport.stats().streamFailures).toBeGreaterThan(0);
    // A snapshot to a dead peer fails and says so.
    a.transport.send([msg('a', 'b', { type: 'MsgSnap', snapshot: { meta: { index: 9, term: 1, conf: { voters: ['a', 'b'], learners: [] } }, data: Buffer.alloc(10) } })]);
    await waitFor('snapshot failure reported', () => a.snapshotsDone.length === 1);
    expect(a.snapshotsDone).toEqual([['b', false]]);

    const b2 = await startNode('b', { port: b.port });
    b2.transport.setPeers(new Map([['a', a.address]]));
    let marker = 100;
    await waitFor('delivery resumed', () => {
      a.transport.send([msg('a', 'b', { index: marker++ })]);
      return b2.received.some((m) => m.index >= 100);
    });
    const indexes = b2.received.map((m) => m.index);
    expect(indexes).toEqual([...indexes].sort((x, y) => x - y));
    b2.transport.send([msg('b', 'a', { type: 'MsgHeartbeatResp' })]);
    await waitFor('reply from b2', () => a.received.some((m) => m.type === 'MsgHeartbeatResp'));
  });

  it('sheds the oldest heartbeats and appends, not votes, when a queue overflows', async () => {
    const a = await startNode('a', { limits: { maxQueuedMessages: 100 } });
    const port = await freePort();
    a.transport.setPeers(new Map([['b', `127.0.0.1:${port}`]]));

    a.transport.send([msg('a', 'b', { type: 'MsgVote', term: 9 })]);
    const burst: Message[] = [];
    for (let i = 0; i < 1000; i++) burst.push(msg('a', 'b', { type: 'MsgApp', index: i }));
    expect(() => a.transport.send(burst)).not.toThrow();
    expect(a.transport.stats().messagesDropped).toBeGreaterThanOrEqual(900);
    await waitFor('unreachable reported', () => a.unreachable.includes('b'));

    const b = await startNode('b', { port });
    await waitFor('queue delivered', () => b.received.some((m) => m.index === 999));
    expect(b.received.length).toBeLessThanOrEqual(100);
    expect(b.received[0]).toMatchObject({ type: 'MsgVote', term: 9 });
    const appIndexes = b.received.slice(1).map((m) => m.index);
    expect(appIndexes).toEqual(Array.from({ length: appIndexes.length }, (_, k) => 1000 - appIndexes.length + k));
  });

  it('drops a message too large for a frame and says so', async () => {
    const a = await startNode('a', { limits: { maxFrameBytes: 64 * 1024, maxBatchBytes: 32 * 1024 } });
    const b = await startNode('b');
    mesh([a, b]);
    a.transport.send([msg('a', 'b', { type: 'MsgApp', entries: [{ term: 1, index: 1, type: EntryType.Normal, data: Buffer.alloc(100 * 1024) }] }), msg('a', 'b', { index: 7 })]);
    await waitFor('small one delivered', () => b.received.length === 1);
    expect(b.received[0].index).toBe(7);
    expect(a.transport.stats().messagesDropped).toBe(1);
    expect(a.unreachable).toContain('b');
  });

  it('refuses callers without the cluster secret', async () => {
    const a = await startNode('a', { authToken: 'alpha' });
    const b = await startNode('b', { authToken: 'beta' });
    const c = await startNode('c', { authToken: 'beta' });
    const anon = await startNode('anon');
    mesh([a, b, c, anon]);
    a.transport.send([msg('a', 'b'), msg('a', 'b', { type: 'MsgSnap', snapshot: { meta: { index: 1, term: 1, conf: { voters: [], learners: [] } }, data: Buffer.alloc(5) } })]);
    anon.transport.send([msg('anon', 'b')]);
    c.transport.send([msg('c', 'b', { index: 5 })]);
    await waitFor('c delivered', () => b.received.length >= 1);
    await waitFor('a told b is unreachable', () => a.unreachable.includes('b'));
    await waitFor('anon told b is unreachable', () => anon.unreachable.includes('b'));
    await waitFor('snapshot failed', () => a.snapshotsDone.length === 1);
    expect(a.snapshotsDone).toEqual([['b', false]]);
    expect(b.received.map((m) => m.from)).toEqual(['c']);
    expect(b.transport.stats().authRejected).toBeGreaterThanOrEqual(3);
    // The refusal says why, and the connection is closed.
    const raw = await rawClient(b.port);
    raw.write(hello('mallory', ConnectionPurpose.Messages, 'guess'));
    await waitFor('refused and closed', () => raw.closed());
    expect(errorOf(raw.frames)).toEqual({ code: ErrorCode.Unauthenticated, reason: 'missing or wrong cluster auth token' });
  });

  it('follows an address change from setPeers', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    mesh([a, b]);
    a.transport.send([msg('a', 'b', { index: 1 })]);
    await waitFor('first at b', () => b.received.length === 1);
    const moved = await startNode('b');
    a.transport.setPeers(new Map([['b', moved.address]]));
    a.transport.send([msg('a', 'b', { index: 2 })]);
    await waitFor('second at the new address', () => moved.received.length === 1);
    expect(moved.received[0].index).toBe(2);
    expect(b.received).toHaveLength(1);
  });

  it('closes a connection on malformed or oversized frames, delivers nothing from it, and keeps serving', async () => {
    const b = await startNode('b', { limits: { maxFrameBytes: 64 * 1024, maxBatchBytes: 32 * 1024, helloTimeoutMs: 300 } });
    const good = batch([msg('x', 'b', { index: 1 })]);
    // A frame whose length is right but whose last entry's data is 3 bytes short.
    const truncated = batch([msg('x', 'b', { type: 'MsgApp', entries: [{ term: 1, index: 1, type: EntryType.Normal, data: Buffer.alloc(100) }] })]).subarray(0, -3);
    truncated.writeUInt32BE(truncated.length - 4);
    // Through the mux a wrong preamble is gRPC's business; handed to the transport
    // directly (a listener of its own), it is refused.
    const direct = net.createServer((s) => b.transport.acceptConnection(s));
    await new Promise<void>((r) => direct.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => direct.close(() => r())));
    const directPort = (direct.address() as net.AddressInfo).port;
    const cases: Array<{ name: string; bytes: Buffer; reason: RegExp; port?: number }> = [
      { name: 'bad preamble', bytes: Buffer.from('dfsX....'), reason: /bad preamble/, port: directPort },
      { name: 'frame before hello', bytes: Buffer.concat([PREAMBLE, good]), reason: /before the hello/ },
      { name: 'oversized hello', bytes: Buffer.concat([PREAMBLE, Buffer.from([0x00, 0x10, 0x00, 0x00, WIRE_VERSION, FrameType.Hello])]), reason: /exceeds the limit/ },
      { name: 'other protocol version', bytes: Buffer.concat([PREAMBLE, encodeHello({ protocolVersion: 99, nodeId: 'x', purpose: ConnectionPurpose.Messages, token: Buffer.alloc(0) })]), reason: /protocol version 99/ },
      { name: 'oversized batch', bytes: Buffer.concat([hello('x'), Buffer.from([0x00, 0x02, 0x00, 0x00, WIRE_VERSION, FrameType.Batch])]), reason: /exceeds the limit of 65536/ },
      { name: 'truncated batch', bytes: Buffer.concat([hello('x'), truncated]), reason: /truncated at entry data/ },
      { name: 'garbage batch', bytes: Buffer.concat([hello('x'), encodeFrame(FrameType.Batch, Buffer.concat([Buffer.from([0, 0, 0, 1, 250]), Buffer.alloc(60, 1)]))]), reason: /unknown type 250/ },
      { name: 'spoofed sender', bytes: Buffer.concat([hello('x'), batch([msg('y', 'b')])]), reason: /from "y" on "x"'s connection/ },
      { name: 'wrong recipient', bytes: Buffer.concat([hello('x'), batch([msg('x', 'c')])]), reason: /for "c" delivered to "b"/ },
      { name: 'snapshot frame on a messages connection', bytes: Buffer.concat([hello('x'), encodeFrame(FrameType.SnapshotData, Buffer.alloc(10))]), reason: /snapshot data on a messages connection/ },
      { name: 'batch on a snapshot connection', bytes: Buffer.concat([hello('x', ConnectionPurpose.Snapshot), good]), reason: /batch on a snapshot connection/ },
      { name: 'unknown frame type', bytes: Buffer.concat([hello('x'), encodeFrame(77 as FrameType)]), reason: /unexpected frame type 77/ },
      { name: 'no hello at all', bytes: PREAMBLE, reason: /no hello within 300 ms/ },
    ];
    for (const c of cases) {
      const raw = await rawClient(c.port ?? b.port);
      raw.write(c.bytes);
      await waitFor(`${c.name}: closed`, () => raw.closed());
      const err = errorOf(raw.frames);
      expect(err?.code, c.name).toBe(ErrorCode.Invalid);
      expect(err?.reason, c.name).toMatch(c.reason);
    }
    expect(b.received).toEqual([]);
    expect(b.transport.stats().invalidRejected).toBe(cases.length);
    // A well-behaved raw sender is still served, pings are answered.
    const raw = await rawClient(b.port);
    raw.write(Buffer.concat([hello('x'), good, encodeFrame(FrameType.Ping)]));
    await waitFor('delivered', () => b.received.length === 1);
    await waitFor('accept and pong', () => raw.frames.length === 2);
    expect(raw.frames.map((f) => f.type)).toEqual([FrameType.Accept, FrameType.Pong]);
    expect(raw.closed()).toBe(false);
  });

  it('gives up on a peer that never accepts, stops reading, or stops answering pings', async () => {
    // `silent` takes the TCP connection and never says anything; `stuck` accepts the hello
    // and then stops reading (the socket buffers fill up); `mute` reads but never pongs.
    for (const mode of ['silent', 'stuck', 'mute'] as const) {
      const sockets: net.Socket[] = [];
      const server = net.createServer((s) => {
        sockets.push(s);
        s.on('error', () => undefined);
        if (mode === 'silent') return;
        s.write(encodeFrame(FrameType.Accept));
        if (mode === 'stuck') s.pause();
        else s.resume();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      cleanups.push(async () => {
        for (const s of sockets) s.destroy();
        await new Promise((r) => server.close(r));
      });
      const a = await startNode(`a-${mode}`, { limits: { stallTimeoutMs: 300, keepaliveTimeMs: 200, keepaliveTimeoutMs: 200 } });
      a.transport.setPeers(new Map([['b', `127.0.0.1:${(server.address() as net.AddressInfo).port}`]]));
      const big = Buffer.alloc(256 * 1024);
      const started = Date.now();
      const count = mode === 'stuck' ? 64 : 1;
      a.transport.send(Array.from({ length: count }, (_, i) => msg(a.id, 'b', { type: 'MsgApp', index: i, entries: [{ term: 1, index: i + 1, type: EntryType.Normal, data: big }] })));
      await waitFor(`${mode} peer reported unreachable`, () => a.unreachable.includes('b'));
      expect(Date.now() - started, mode).toBeGreaterThanOrEqual(mode === 'mute' ? 350 : 250);
      expect(a.transport.stats().streamFailures).toBeGreaterThanOrEqual(1);
    }
  });

  it('never crashes on random bytes after a hello, and delivers nothing from them', async () => {
    const b = await startNode('b');
    const rejectedBefore = b.transport.stats().invalidRejected;
    const samples = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 2048 }), { numRuns: 40, seed: 42 });
    for (const junk of samples) {
      const raw = await rawClient(b.port);
      // A plausible frame header first, so the junk reaches the message decoder too.
      const header = Buffer.from([0, 0, (junk.length + 2) >> 8, (junk.length + 2) & 0xff, WIRE_VERSION, FrameType.Batch]);
      raw.write(Buffer.concat([hello('x'), header, Buffer.from(junk)]));
      await waitFor('refused', () => raw.closed());
    }
    expect(b.received).toEqual([]);
    expect(b.transport.stats().invalidRejected - rejectedBefore).toBe(samples.length);
  });

  it('takes a custom security (the seam for mutual TLS): its authenticate decides', async () => {
    const seen: string[] = [];
    const security: RaftConnectionSecurity = {
      ...tokenSecurity(),
      // Stands in for "the node id in the peer's certificate must match the hello".
      authenticate: (h) => (seen.push(h.nodeId), h.nodeId === 'evil' ? 'node evil has no server certificate' : null),
    };
    const received: Message[] = [];
    const b = new TcpTransport({ selfId: 'b', peers: new Map(), onMessage: (m) => received.push(m), security, limits: FAST });
    cleanups.push(() => b.close());
    const listener = net.createServer((s) => b.acceptConnection(s));
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => listener.close(() => r())));
    const address = `127.0.0.1:${(listener.address() as net.AddressInfo).port}`;
    const good = await startNode('good');
    const evil = await startNode('evil');
    good.transport.setPeers(new Map([['b', address]]));
    evil.transport.setPeers(new Map([['b', address]]));
    good.transport.send([msg('good', 'b')]);
    evil.transport.send([msg('evil', 'b')]);
    await waitFor('good delivered, evil refused', () => received.length === 1 && evil.unreachable.includes('b'));
    expect(received[0].from).toBe('good');
    expect(seen.sort()).toEqual(['evil', 'good']);
    expect(b.stats().authRejected).toBe(1);
  });

  it('bounds inbound connections', async () => {
    const b = await startNode('b', { limits: { maxInboundConnections: 2 } });
    const first = await rawClient(b.port);
    const second = await rawClient(b.port);
    first.write(hello('x'));
    second.write(hello('y'));
    await waitFor('two accepted', () => first.frames.length === 1 && second.frames.length === 1);
    const third = await rawClient(b.port);
    third.write(hello('z'));
    await waitFor('third refused', () => third.closed());
    expect(errorOf(third.frames)?.code).toBe(ErrorCode.ResourceExhausted);
    // A slot frees when a connection ends (the server notices the close a moment later).
    first.socket.destroy();
    let accepted = false;
    for (let attempt = 0; attempt < 50 && !accepted; attempt++) {
      const next = await rawClient(b.port);
      next.write(hello('w'));
      await waitFor('an answer', () => next.frames.length > 0 || next.closed());
      accepted = next.frames[0]?.type === FrameType.Accept;
      if (!accepted) await new Promise((r) => setTimeout(r, 10));
    }
    expect(accepted).toBe(true);
  });

  it('closes everything on close(): later sends are dropped, inbound connections end', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    mesh([a, b]);
    a.transport.send([msg('a', 'b')]);
    await waitFor('delivered', () => b.received.length === 1);
    const raw = await rawClient(b.port);
    raw.write(hello('x'));
    await waitFor('accepted', () => raw.frames.length === 1);
    b.transport.close();
    await waitFor('inbound closed', () => raw.closed());
    await waitFor('sender noticed', () => a.unreachable.includes('b'));
    b.transport.send([msg('b', 'a')]);
    expect(b.transport.stats().messagesDropped).toBe(1);
    expect(() => b.transport.send([msg('b', 'b')])).toThrow(/addressed to self/);
  });
});
