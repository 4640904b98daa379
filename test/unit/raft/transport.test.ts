// GrpcTransport between real grpc-js servers on 127.0.0.1 (one per node, as in daemons):
// field fidelity, per-pair order, batching, snapshot streaming, a peer going away and
// coming back on the same port, queue shedding and auth.
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { ProtoGrpcType } from '../../../src/cluster/raft/gen/raft.js';
import { GrpcTransport, RAFT_SERVER_OPTIONS, type GrpcTransportLimits } from '../../../src/cluster/raft/transport.js';
import { loadProto } from '../../../src/common/proto.js';
import { EntryType, type Message, type NodeId } from '../../../src/cluster/raft/types.js';

const MiB = 1024 * 1024;
// Quick reconnects so "the peer is back" tests take tens of milliseconds, not seconds.
const FAST: Partial<GrpcTransportLimits> = { reconnectBackoffMinMs: 10, reconnectBackoffMaxMs: 100 };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface TestNode {
  id: NodeId;
  address: string;
  port: number;
  server: grpc.Server;
  transport: GrpcTransport;
  received: Message[];
  unreachable: NodeId[];
  snapshotsDone: Array<[NodeId, boolean]>;
}

function bind(server: grpc.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
}

function shutdown(server: grpc.Server): void {
  server.forceShutdown();
}

async function startNode(id: NodeId, opts: { port?: number; authToken?: string; limits?: Partial<GrpcTransportLimits> } = {}): Promise<TestNode> {
  const server = new grpc.Server(RAFT_SERVER_OPTIONS);
  const received: Message[] = [];
  const transport = new GrpcTransport({
    selfId: id,
    peers: new Map(),
    onMessage: (m) => received.push(m),
    authToken: opts.authToken,
    limits: { ...FAST, ...opts.limits },
  });
  await transport.register(server);
  const port = await bind(server, opts.port ?? 0);
  const node: TestNode = { id, address: `127.0.0.1:${port}`, port, server, transport, received, unreachable: [], snapshotsDone: [] };
  transport.onUnreachable((peer) => node.unreachable.push(peer));
  transport.onSnapshotDone((peer, ok) => node.snapshotsDone.push([peer, ok]));
  cleanups.push(() => {
    transport.close();
    shutdown(server);
  });
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
  return {
    type: 'MsgHeartbeat',
    from,
    to,
    term: 1,
    index: 0,
    logTerm: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: null,
    context: null,
    ...fields,
  };
}

function from(node: TestNode, sender: NodeId): Message[] {
  return node.received.filter((m) => m.from === sender);
}

describe('GrpcTransport', () => {
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
    // null and empty context stay distinct; buffers compare by content above.
    expect(b.received[0].context).toBeNull();
    expect(b.received[3].context).toEqual(Buffer.alloc(0));
    expect(Buffer.isBuffer(b.received[0].entries[0].data)).toBe(true);
    expect(b.received[0].entries[1].type).toBe(EntryType.ConfChange);

    b.transport.send([msg('b', 'a', { type: 'MsgAppResp', index: 44 })]);
    await waitFor('reply at a', () => a.received.length === 1);
    expect(a.received[0]).toEqual(msg('b', 'a', { type: 'MsgAppResp', index: 44 }));
    expect(a.unreachable).toEqual([]);
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

  it('coalesces 1000 messages sent in one turn into a few stream writes', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    mesh([a, b]);
    for (let i = 0; i < 1000; i++) a.transport.send([msg('a', 'b', { type: 'MsgApp', index: i, entries: [{ term: 1, index: i + 1, type: EntryType.Normal, data: Buffer.alloc(64, i) }] })]);
    await waitFor('1000 messages', () => b.received.length === 1000);
    expect(b.received.map((m) => m.index)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    const sent = a.transport.stats();
    expect(sent.messagesSent).toBe(1000);
    expect(sent.batchesSent).toBeLessThanOrEqual(4);
    expect(b.transport.stats().batchesReceived).toBe(sent.batchesSent);
  });

  it('streams a 20 MiB snapshot intact and reports it done', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    mesh([a, b]);
    const data = randomBytes(20 * MiB);
    const snap = msg('a', 'b', {
      type: 'MsgSnap',
      term: 5,
      snapshot: { meta: { index: 1234, term: 5, conf: { voters: ['a', 'b', 'c'], learners: ['d'] } }, data },
    });
    a.transport.send([snap, msg('a', 'b', { type: 'MsgHeartbeat', term: 5 })]);
    await waitFor('snapshot at b', () => b.received.some((m) => m.type === 'MsgSnap'));
    await waitFor('snapshot reported', () => a.snapshotsDone.length === 1);
    expect(a.snapshotsDone).toEqual([['b', true]]);
    const got = b.received.find((m) => m.type === 'MsgSnap');
    expect(got?.snapshot?.meta).toEqual({ index: 1234, term: 5, conf: { voters: ['a', 'b', 'c'], learners: ['d'] } });
    expect(got?.snapshot?.data.length).toBe(data.length);
    expect(got?.snapshot?.data.equals(data)).toBe(true);
    expect({ ...got, snapshot: null }).toEqual({ ...snap, snapshot: null });
    // The heartbeat behind it was not held up by the 20 MiB (it travels on its own stream).
    expect(b.received.some((m) => m.type === 'MsgHeartbeat')).toBe(true);
    expect(a.transport.stats().snapshotsSent).toBe(1);
    expect(b.transport.stats().snapshotsReceived).toBe(1);
  });

  it('survives a peer that is down and resumes when it is back on the same port', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    mesh([a, b]);
    a.transport.send([msg('a', 'b', { index: 1 })]);
    await waitFor('first message', () => b.received.length === 1);

    b.transport.close();
    shutdown(b.server);
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
      // Raft keeps sending heartbeats; so does this loop until one gets through.
      a.transport.send([msg('a', 'b', { index: marker++ })]);
      return b2.received.some((m) => m.index >= 100);
    });
    const indexes = b2.received.map((m) => m.index);
    expect(indexes).toEqual([...indexes].sort((x, y) => x - y));
    // And the other direction works over the new server.
    b2.transport.send([msg('b', 'a', { type: 'MsgHeartbeatResp' })]);
    await waitFor('reply from b2', () => a.received.some((m) => m.type === 'MsgHeartbeatResp'));
  });

  it('sheds the oldest heartbeats and appends, not votes, when a queue overflows', async () => {
    const a = await startNode('a', { limits: { maxQueuedMessages: 100 } });
    // A port with nothing listening yet: take one, then free it.
    const placeholder = new grpc.Server();
    const port = await bind(placeholder, 0);
    shutdown(placeholder);
    a.transport.setPeers(new Map([['b', `127.0.0.1:${port}`]]));

    a.transport.send([msg('a', 'b', { type: 'MsgVote', term: 9 })]);
    const batch: Message[] = [];
    for (let i = 0; i < 1000; i++) batch.push(msg('a', 'b', { type: 'MsgApp', index: i }));
    expect(() => a.transport.send(batch)).not.toThrow();
    expect(a.transport.stats().messagesDropped).toBeGreaterThanOrEqual(900);
    await waitFor('unreachable reported', () => a.unreachable.includes('b'));

    const b = await startNode('b', { port });
    await waitFor('queue delivered', () => b.received.some((m) => m.index === 999));
    expect(b.received.length).toBeLessThanOrEqual(100);
    expect(b.received[0]).toMatchObject({ type: 'MsgVote', term: 9 });
    const appIndexes = b.received.slice(1).map((m) => m.index);
    // What survived is the newest, still in order.
    expect(appIndexes).toEqual(Array.from({ length: appIndexes.length }, (_, k) => 1000 - appIndexes.length + k));
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

  it('cancels and retries a stream the peer never accepts or stops reading', async () => {
    // A server that speaks the service but misbehaves: `silent` never answers the stream
    // (a hung daemon), `stuck` accepts it and then stops reading (flow control fills up).
    const pkg = ((await loadProto('cluster/raft', 'raft.proto')) as unknown as ProtoGrpcType).dfs.raft;
    for (const mode of ['silent', 'stuck'] as const) {
      const server = new grpc.Server(RAFT_SERVER_OPTIONS);
      server.addService(pkg.Raft.service, {
        Send: (call: grpc.ServerReadableStream<unknown, unknown>) => {
          if (mode === 'stuck') {
            call.sendMetadata(new grpc.Metadata());
            call.pause();
          }
        },
        InstallSnapshot: () => undefined,
      });
      const port = await bind(server, 0);
      cleanups.push(() => shutdown(server));
      const a = await startNode(`a-${mode}`, { limits: { stallTimeoutMs: 300 } });
      a.transport.setPeers(new Map([['b', `127.0.0.1:${port}`]]));
      const big = Buffer.alloc(256 * 1024);
      const started = Date.now();
      a.transport.send(Array.from({ length: 64 }, (_, i) => msg(a.id, 'b', { type: 'MsgApp', index: i, entries: [{ term: 1, index: i + 1, type: EntryType.Normal, data: big }] })));
      await waitFor(`${mode} peer reported unreachable`, () => a.unreachable.includes('b'));
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(a.transport.stats().streamFailures).toBeGreaterThanOrEqual(1);
    }
  });
});
