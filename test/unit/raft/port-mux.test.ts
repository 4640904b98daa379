// PortMux: gRPC and the framed Raft transport on one host:port, as a daemon serves them.
// A real grpc-js server (unary echo and a client stream) and real Raft frames share the
// port at the same time; shutdown paths free it.
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { PortMux } from '../../../src/cluster/raft/port-mux.js';
import { TcpTransport } from '../../../src/cluster/raft/tcp-transport.js';
import type { Message } from '../../../src/cluster/raft/types.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const identity = (b: Buffer): Buffer => b;
const ECHO: grpc.ServiceDefinition = {
  Echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
  Sum: { path: '/test.Echo/Sum', requestStream: true, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

function msg(from: string, to: string, index: number): Message {
  return { type: 'MsgApp', from, to, term: 1, index, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot: null, context: null };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function serve(port = 0, bound?: net.Server) {
  const server = new grpc.Server();
  server.addService(ECHO, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request),
    Sum: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      let n = 0;
      call.on('data', (b: Buffer) => (n += b.length));
      call.on('end', () => cb(null, Buffer.from(String(n))));
    },
  });
  const received: Message[] = [];
  const transport = new TcpTransport({ selfId: 'b', peers: new Map(), onMessage: (m) => received.push(m) });
  const mux = await PortMux.listen({
    address: `127.0.0.1:${port}`,
    server: bound,
    grpcServer: server,
    grpcCredentials: grpc.ServerCredentials.createInsecure(),
    onRaftConnection: (s) => transport.acceptConnection(s),
  });
  return { server, transport, mux, received };
}

function echo(client: grpc.Client, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest('/test.Echo/Echo', identity, identity, payload, { deadline: Date.now() + 5000 }, (err, v) => (err || !v ? reject(err) : resolve(v))),
  );
}

describe('PortMux', () => {
  it('serves gRPC calls and Raft frames on one port at the same time', async () => {
    const { server, transport, mux, received } = await serve();
    cleanups.push(async () => {
      transport.close();
      server.forceShutdown();
      await mux.close();
    });
    const address = `127.0.0.1:${mux.port}`;
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const sender = new TcpTransport({ selfId: 'a', peers: new Map([['b', address]]), onMessage: () => undefined });
    cleanups.push(() => sender.close());

    const rounds = 50;
    const replies: Buffer[] = [];
    for (let i = 0; i < rounds; i++) {
      sender.send([msg('a', 'b', i)]);
      replies.push(await echo(client, Buffer.from(`call-${i}`)));
    }
    // A client stream of 4 MiB interleaved with Raft traffic.
    const sum = new Promise<string>((resolve, reject) => {
      const call = client.makeClientStreamRequest('/test.Echo/Sum', identity, identity, (err, v) => (err || !v ? reject(err) : resolve(v.toString())));
      for (let i = 0; i < 64; i++) {
        call.write(Buffer.alloc(64 * 1024));
        sender.send([msg('a', 'b', rounds + i)]);
      }
      call.end();
    });
    expect(await sum).toBe(String(64 * 64 * 1024));
    expect(replies.map(String)).toEqual(Array.from({ length: rounds }, (_, i) => `call-${i}`));
    await waitFor('raft messages', () => received.length === rounds + 64);
    expect(received.map((m) => m.index)).toEqual(Array.from({ length: rounds + 64 }, (_, i) => i));
    // One HTTP/2 connection, one Raft connection.
    expect(mux.stats()).toEqual({ grpcConnections: 1, raftConnections: 1, dropped: 0 });
  });

  it('takes over a server bound before (no window between checking the port and binding it)', async () => {
    const bound = net.createServer({ noDelay: true });
    await new Promise<void>((resolve) => bound.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const port = (bound.address() as net.AddressInfo).port;
    const { server, transport, mux, received } = await serve(port, bound);
    cleanups.push(async () => {
      transport.close();
      server.forceShutdown();
      await mux.close();
    });
    expect(mux.port).toBe(port);
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    expect(String(await echo(client, Buffer.from('pre-bound')))).toBe('pre-bound');
    const sender = new TcpTransport({ selfId: 'a', peers: new Map([['b', `127.0.0.1:${port}`]]), onMessage: () => undefined });
    cleanups.push(() => sender.close());
    sender.send([msg('a', 'b', 7)]);
    await waitFor('a raft message', () => received.length === 1);
    await expect(PortMux.listen({ address: '127.0.0.1:1', server: net.createServer(), grpcServer: server, grpcCredentials: grpc.ServerCredentials.createInsecure(), onRaftConnection: () => undefined })).rejects.toThrow(/not listening/);
  });

  it('routes a connection whose first bytes come one at a time', async () => {
    const { server, transport, mux, received } = await serve();
    cleanups.push(async () => {
      transport.close();
      server.forceShutdown();
      await mux.close();
    });
    const { encodeHello, encodeBatchFrame, encodedMessageBytes, PREAMBLE, WIRE_VERSION, ConnectionPurpose } = await import('../../../src/cluster/raft/wire-codec.js');
    const m = msg('x', 'b', 5);
    const bytes = Buffer.concat([PREAMBLE, encodeHello({ protocolVersion: WIRE_VERSION, nodeId: 'x', purpose: ConnectionPurpose.Messages, token: Buffer.alloc(0) }), encodeBatchFrame([m], encodedMessageBytes(m))]);
    const socket = net.connect({ host: '127.0.0.1', port: mux.port });
    socket.setNoDelay(true);
    cleanups.push(() => void socket.destroy());
    await new Promise((r) => socket.once('connect', r));
    for (let i = 0; i < 6; i++) {
      socket.write(bytes.subarray(i, i + 1));
      await new Promise((r) => setTimeout(r, 5));
    }
    socket.write(bytes.subarray(6));
    await waitFor('delivered', () => received.length === 1);
    expect(received[0]).toEqual(m);
  });

  it('drops a silent connection, and its close frees the port for a restart', async () => {
    const first = await serve();
    const port = first.mux.port;
    const silent = net.connect({ host: '127.0.0.1', port });
    silent.on('error', () => undefined);
    let silentClosed = false;
    silent.on('close', () => void (silentClosed = true));
    await new Promise((r) => silent.once('connect', r));
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    expect(String(await echo(client, Buffer.from('x')))).toBe('x');
    // The daemon's stop order: transport, gRPC (tryShutdown ends injected sessions), listener.
    first.transport.close();
    await new Promise<void>((resolve, reject) => first.server.tryShutdown((err) => (err ? reject(err) : resolve())));
    await first.mux.close();
    await waitFor('silent connection dropped', () => silentClosed);

    const second = await serve(port);
    cleanups.push(async () => {
      second.transport.close();
      second.server.forceShutdown();
      await second.mux.close();
    });
    expect(second.mux.port).toBe(port);
    expect(String(await echo(client, Buffer.from('again')))).toBe('again');
  });

  it('reports a busy address as the listen error', async () => {
    const first = await serve();
    cleanups.push(async () => {
      first.transport.close();
      first.server.forceShutdown();
      await first.mux.close();
    });
    await expect(serve(first.mux.port)).rejects.toThrow(/EADDRINUSE/);
  });
});
