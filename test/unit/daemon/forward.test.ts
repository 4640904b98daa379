// A follower's commands forwarded to the leader over the Raft transport's App frames
// (src/daemon/forward.ts): two real TcpTransports behind PortMux listeners on 127.0.0.1,
// the leader's side a stand-in executor (the forwarder's contract is the bytes between
// them; ReplicatedMeta itself is exercised by the integration tests).
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { PortMux } from '../../../src/cluster/raft/port-mux.js';
import { TcpTransport } from '../../../src/cluster/raft/tcp-transport.js';
import { EntryType, type Message, type NodeId } from '../../../src/cluster/raft/types.js';
import { encodeFrame, FrameDecoder, FrameType, PREAMBLE } from '../../../src/cluster/raft/wire-codec.js';
import { CommandForwarder, type EnvelopeExecutor } from '../../../src/daemon/forward.js';
import { NotLeader } from '../../../src/daemon/replicated-meta.js';
import { loadEnvelopeCodec } from '../../../src/meta/envelope-codec.js';
import { DEFAULT_LAYOUT, Errno, type Attr, type Envelope, type Result } from '../../../src/meta/types.js';

const log = pino({ level: 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Side {
  id: NodeId;
  address: string;
  transport: TcpTransport;
  received: Message[];
  apps: Buffer[];
  forwarder: CommandForwarder | null;
  stop(): Promise<void>;
}

async function side(id: NodeId): Promise<Side> {
  const s: Side = { id, address: '', transport: null as unknown as TcpTransport, received: [], apps: [], forwarder: null, stop: async () => undefined };
  s.transport = new TcpTransport({
    selfId: id,
    peers: new Map(),
    onMessage: (m) => s.received.push(m),
    onApp: (from, payload) => {
      s.apps.push(payload);
      s.forwarder?.onApp(from, payload);
    },
    limits: { reconnectBackoffMinMs: 10, reconnectBackoffMaxMs: 100 },
  });
  const server = new grpc.Server();
  const mux = await PortMux.listen({ address: '127.0.0.1:0', grpcServer: server, grpcCredentials: grpc.ServerCredentials.createInsecure(), onRaftConnection: (sock) => s.transport.acceptConnection(sock) });
  s.address = `127.0.0.1:${mux.port}`;
  let stopped = false;
  s.stop = async () => {
    if (stopped) return;
    stopped = true;
    s.forwarder?.close();
    s.transport.close();
    server.forceShutdown();
    await mux.close();
  };
  s.transport.onUnreachable((peer) => s.forwarder?.peerUnreachable(peer));
  cleanups.push(s.stop);
  return s;
}

async function pair(): Promise<[Side, Side]> {
  const a = await side('follower');
  const b = await side('leader');
  a.transport.setPeers(new Map([[b.id, b.address]]));
  b.transport.setPeers(new Map([[a.id, a.address]]));
  return [a, b];
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const ts = { sec: 1_700_000_000, nsec: 5 };
const dir: Attr = { ino: 7, mode: 0o40755, uid: 1, gid: 2, size: 4096, nlink: 2, rdev: 0, atime: ts, mtime: ts, ctime: ts, version: 9, chunkSizeBytes: 0, layout: DEFAULT_LAYOUT };
const unlink = (seq: number): Envelope => ({ clientId: 'ns-test', seq, command: { op: 'unlink', parent: 7, name: `f${seq}`, now: ts } });

describe('App frames', () => {
  it('arrive whole and in order with the Raft messages around them', async () => {
    const [a, b] = await pair();
    const msg = (i: number): Message => ({ type: 'MsgApp', from: a.id, to: b.id, term: 1, index: i, logTerm: 1, commit: 0, reject: false, rejectHint: 0, context: null, entries: [{ term: 1, index: i + 1, type: EntryType.Normal, data: Buffer.from(`e${i}`) }], snapshot: null });
    for (let i = 0; i < 20; i++) {
      a.transport.send([msg(i)]);
      expect(a.transport.sendApp(b.id, Buffer.from(`app ${i}`))).toBe(true);
    }
    await waitFor('20 messages and 20 app frames', () => b.received.length === 20 && b.apps.length === 20);
    expect(b.apps.map((p) => p.toString())).toEqual(Array.from({ length: 20 }, (_, i) => `app ${i}`));
    expect(b.received.map((m) => m.index)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(a.transport.stats().appFramesSent).toBe(20);
    expect(b.transport.stats().appFramesReceived).toBe(20);
  });

  it('go only to a peer whose Accept said it takes them (an older daemon would refuse the connection)', async () => {
    const [a, b] = await pair();
    expect(a.transport.canSendApp(b.id)).toBe(false); // not connected yet: nothing known
    a.transport.send([{ type: 'MsgHeartbeat', from: a.id, to: b.id, term: 1, index: 0, logTerm: 0, commit: 0, reject: false, rejectHint: 0, context: null, entries: [], snapshot: null }]);
    await waitFor('the heartbeat', () => b.received.length === 1);
    expect(a.transport.canSendApp(b.id)).toBe(true);
    // A receiver of the version before App frames: its Accept has no payload.
    const sockets: net.Socket[] = [];
    const seen: FrameType[] = [];
    const old = net.createServer((sock) => {
      sockets.push(sock);
      sock.on('error', () => undefined);
      sock.write(encodeFrame(FrameType.Accept));
      const decoder = new FrameDecoder(1024 * 1024);
      let preamble = PREAMBLE.length;
      sock.on('data', (chunk: Buffer) => {
        const skip = Math.min(preamble, chunk.length);
        preamble -= skip;
        decoder.push(chunk.subarray(skip));
        for (let f = decoder.next(); f; f = decoder.next()) seen.push(f.type);
      });
    });
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    cleanups.push(async () => {
      for (const sock of sockets) sock.destroy();
      await new Promise((r) => old.close(r));
    });
    a.transport.setPeers(new Map([['old', `127.0.0.1:${(old.address() as net.AddressInfo).port}`]]));
    a.transport.send([{ type: 'MsgHeartbeat', from: a.id, to: 'old', term: 1, index: 0, logTerm: 0, commit: 0, reject: false, rejectHint: 0, context: null, entries: [], snapshot: null }]);
    // A sender writes a Batch only once it has taken the Accept: then its features are known.
    await waitFor('a batch at the old receiver', () => seen.includes(FrameType.Batch));
    expect(a.transport.canSendApp('old')).toBe(false);
  });

  it('cannot go to a node without an address or to ourselves', async () => {
    const [a] = await pair();
    expect(a.transport.sendApp('nobody', Buffer.from('x'))).toBe(false);
    expect(a.transport.sendApp(a.id, Buffer.from('x'))).toBe(false);
  });
});

describe('CommandForwarder', () => {
  const setup = async (exec: EnvelopeExecutor, deadlineMs = 2_000): Promise<{ follower: CommandForwarder; leader: Side; seen: Envelope[] }> => {
    const codec = await loadEnvelopeCodec();
    const [a, b] = await pair();
    const seen: Envelope[] = [];
    a.forwarder = new CommandForwarder(a.transport, { executeEnvelopeR: () => Promise.reject(new Error('the follower executes nothing')) }, codec, log, deadlineMs);
    b.forwarder = new CommandForwarder(
      b.transport,
      {
        executeEnvelopeR: (e) => {
          seen.push(e);
          return exec.executeEnvelopeR(e);
        },
      },
      codec,
      log,
      deadlineMs,
    );
    return { follower: a.forwarder, leader: b, seen };
  };

  it("answers with the leader's result, its changed directories and errnos included", async () => {
    const { follower, leader, seen } = await setup({
      executeEnvelopeR: (e) => Promise.resolve<Result<unknown>>(e.seq % 2 === 0 ? { ok: true, value: null, dirs: [dir] } : { ok: false, errno: Errno.ENOENT }),
    });
    const [even, odd] = await Promise.all([follower.forward(leader.id, unlink(2)), follower.forward(leader.id, unlink(3))]);
    expect(even).toEqual({ ok: true, value: null, dirs: [dir] });
    expect(odd).toEqual({ ok: false, errno: Errno.ENOENT });
    // The leader saw the envelope itself: client id and seq travel (the dedup table needs them).
    expect(seen.map((e) => [e.clientId, e.seq, e.command.op])).toEqual([
      ['ns-test', 2, 'unlink'],
      ['ns-test', 3, 'unlink'],
    ]);
  });

  it("passes on 'not the leader' with the leader it names", async () => {
    const { follower, leader } = await setup({ executeEnvelopeR: () => Promise.resolve(new NotLeader('node9')) });
    const r = await follower.forward(leader.id, unlink(1));
    expect(r).toBeInstanceOf(NotLeader);
    expect((r as NotLeader).leader).toBe('node9');
  });

  it('a leader that does not answer in time is a call without answer', async () => {
    const { follower, leader } = await setup({ executeEnvelopeR: () => new Promise(() => undefined) }, 200);
    const t0 = performance.now();
    expect(await follower.forward(leader.id, unlink(1))).toEqual({ ok: false, errno: Errno.ETIMEDOUT, noAnswer: true });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
    expect(follower.counters.unanswered).toBe(1);
    expect(await follower.forward('nobody', unlink(2))).toMatchObject({ ok: false, noAnswer: true });
  });

  it('a leader that goes away answers its waiting forwards at once (the lost connection), not at their deadline', async () => {
    const { follower, leader } = await setup({ executeEnvelopeR: () => new Promise(() => undefined) }, 30_000);
    const t0 = performance.now();
    const waiting = follower.forward(leader.id, unlink(1));
    await waitFor('the leader to get the forward', () => leader.apps.length === 1);
    await leader.stop();
    expect(await waiting).toMatchObject({ ok: false, noAnswer: true });
    expect(await follower.forward(leader.id, unlink(2))).toMatchObject({ ok: false, noAnswer: true });
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it('drops malformed frames and answers what follows', async () => {
    const { follower, leader } = await setup({ executeEnvelopeR: () => Promise.resolve<Result<unknown>>({ ok: true, value: null }) });
    // Straight into the leader's forwarder: too short, unknown kind, a request that is no CommandRequest.
    leader.forwarder!.onApp('follower', Buffer.from([1, 0]));
    leader.forwarder!.onApp('follower', Buffer.from([9, 0, 0, 0, 1, 0]));
    leader.forwarder!.onApp('follower', Buffer.from([2, 0, 0, 0, 1, 7]));
    expect(await follower.forward(leader.id, unlink(1))).toEqual({ ok: true, value: null });
  });

  it('close() answers every waiting forward at once', async () => {
    const { follower, leader } = await setup({ executeEnvelopeR: () => new Promise(() => undefined) }, 5_000);
    const p = follower.forward(leader.id, unlink(1));
    follower.close();
    expect(await p).toMatchObject({ ok: false, noAnswer: true });
  });
});
