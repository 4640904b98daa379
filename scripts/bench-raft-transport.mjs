#!/usr/bin/env node
// Micro-benchmark of the Raft transports between two processes on this machine:
// GrpcTransport (src/cluster/raft/transport.ts, long-lived gRPC client streams) and
// TcpTransport (src/cluster/raft/tcp-transport.ts, framed TCP behind a PortMux on the same
// port as a grpc-js server, as a daemon would serve it). For each:
//   - ping-pong: one heartbeat out, wait for its response, repeat (round trip p50/p99);
//   - pipelined appends: up to `window` unacknowledged MsgApp of one entry each, every one
//     answered by a MsgAppResp, like a leader replicating small commands;
//   - one-way appends: MsgApp of one `entry-bytes` entry, `burst` per send() call, the
//     receiver acknowledging every `ack-every` (MsgAppResp), at most `window` unacknowledged;
// and, as baselines, a sequential unary grpc-js call and a bare node:net ping-pong (the
// floor any transport in Node sits on).
//
// Runs the compiled code: `npm run build` first (or `npx tsc -p tsconfig.json`).
// Usage: node scripts/bench-raft-transport.mjs [--transport grpc,tcp] [--runs 3]
//        [--pings 5000] [--messages 200000] [--entry-bytes 100] [--window 4096]
//        [--one-way 500000] [--burst 256] [--ack-every 1024] [--json]
// Runs alternate grpc/tcp so slow drift on a shared machine hits both alike; with several
// runs a summary gives each figure's range (min–max).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setImmediate } from 'node:timers';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => pathToFileURL(path.join(root, 'dist/src', p)).href;
const { GrpcTransport, RAFT_SERVER_OPTIONS } = await import(dist('cluster/raft/transport.js'));
const { TcpTransport } = await import(dist('cluster/raft/tcp-transport.js'));
const { PortMux } = await import(dist('cluster/raft/port-mux.js'));

function arg(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : fallback;
}
const num = (name, fallback) => Number(arg(name, String(fallback)));

// A raw unary echo (no proto): the cheapest unary call grpc-js can make.
const identity = (b) => b;
const ECHO = {
  Echo: {
    path: '/bench.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

function msg(from, to, fields) {
  return { type: 'MsgHeartbeat', from, to, term: 1, index: 0, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot: null, context: null, ...fields };
}

/**
 * One node as a daemon would set it up: a grpc.Server (with the echo service) and the
 * transport of `kind` on one address. Returns the transport and the port.
 */
async function startNode(kind, selfId, peers, onMessage) {
  const server = new grpc.Server(RAFT_SERVER_OPTIONS);
  server.addService(ECHO, { Echo: (call, callback) => callback(null, call.request) });
  if (kind === 'grpc') {
    const transport = new GrpcTransport({ selfId, peers, onMessage });
    await transport.register(server);
    const port = await new Promise((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    return { transport, port, close: async () => (transport.close(), server.forceShutdown()) };
  }
  const transport = new TcpTransport({ selfId, peers, onMessage });
  const mux = await PortMux.listen({
    address: '127.0.0.1:0',
    grpcServer: server,
    grpcCredentials: grpc.ServerCredentials.createInsecure(),
    onRaftConnection: (s) => transport.acceptConnection(s),
  });
  return {
    transport,
    port: mux.port,
    close: async () => {
      transport.close();
      server.forceShutdown();
      await mux.close();
    },
  };
}

/**
 * The floor: a bare node:net echo (4-byte length + 64 bytes each way, no codec, no
 * batching hop), as close to "a TCP ping-pong in Node" as it gets.
 */
async function rawEchoServer() {
  const server = net.createServer({ noDelay: true }, (s) => s.on('data', (b) => s.write(b)));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

async function rawPingPong(port, count) {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  const ping = Buffer.alloc(68, 1);
  ping.writeUInt32BE(64, 0);
  let resolveOne = null;
  let got = 0;
  socket.on('data', (b) => {
    got += b.length;
    if (got >= ping.length && resolveOne) {
      got -= ping.length;
      const r = resolveOne;
      resolveOne = null;
      r();
    }
  });
  const samples = [];
  for (let i = 0; i < count + 1000; i++) {
    const start = process.hrtime.bigint();
    const back = new Promise((r) => (resolveOne = r));
    socket.write(ping);
    await back;
    if (i >= 1000) samples.push(process.hrtime.bigint() - start);
  }
  socket.destroy();
  return samples;
}

/** The echoing peer: answers heartbeats and appends like a follower would, without a log. */
async function child(kind, parentAddress, ackEvery) {
  let transport;
  let oneWayCount = 0;
  const node = await startNode(kind, 'b', new Map([['a', parentAddress]]), (m) => {
    if (m.type === 'MsgHeartbeat') transport.send([msg('b', 'a', { type: 'MsgHeartbeatResp', index: m.index, context: m.context })]);
    else if (m.type === 'MsgApp' && m.commit === 1) {
      // One-way: an ack only every ackEvery messages (and at the end, flagged by logTerm).
      oneWayCount++;
      if (oneWayCount % ackEvery === 0 || m.logTerm === 1) transport.send([msg('b', 'a', { type: 'MsgAppResp', index: oneWayCount, commit: 1 })]);
    } else if (m.type === 'MsgApp') transport.send([msg('b', 'a', { type: 'MsgAppResp', index: m.index + m.entries.length })]);
  });
  transport = node.transport;
  const raw = await rawEchoServer();
  console.log(JSON.stringify({ port: node.port, rawPort: raw.address().port }));
  process.stdin.resume();
  process.stdin.on('end', () => {
    raw.close();
    void node.close();
  });
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function summary(samplesNs) {
  const us = samplesNs.map((ns) => Number(ns) / 1000).sort((x, y) => x - y);
  const mean = us.reduce((s, x) => s + x, 0) / us.length;
  return { meanUs: +mean.toFixed(1), p50Us: +percentile(us, 0.5).toFixed(1), p99Us: +percentile(us, 0.99).toFixed(1) };
}

async function measure(kind, o) {
  let onMessage = () => {};
  const node = await startNode(kind, 'a', new Map(), (m) => onMessage(m));
  const { transport } = node;
  const peer = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', kind, `127.0.0.1:${node.port}`, String(o.ackEvery)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = await once(createInterface({ input: peer.stdout }), 'line');
  const ports = JSON.parse(line);
  const peerAddress = `127.0.0.1:${ports.port}`;
  transport.setPeers(new Map([['b', peerAddress]]));

  const pingPong = async (count) => {
    const samples = [];
    for (let i = 0; i < count; i++) {
      const start = process.hrtime.bigint();
      const back = new Promise((resolve) => (onMessage = (m) => m.type === 'MsgHeartbeatResp' && m.index === i && resolve()));
      transport.send([msg('a', 'b', { index: i, context: Buffer.from('ping') })]);
      await back;
      samples.push(process.hrtime.bigint() - start);
    }
    return samples;
  };
  await pingPong(1000); // warm-up: connection, JIT
  const ping = summary(await pingPong(o.pings));

  const entry = Buffer.alloc(o.entryBytes, 7);
  // Pipelined appends, each acknowledged.
  let before = transport.stats();
  let acked = 0;
  let sent = 0;
  let startedAt = process.hrtime.bigint();
  await new Promise((resolve) => {
    const pump = () => {
      const batch = [];
      while (sent < o.messages && sent - acked < o.window && batch.length < 1024) {
        sent++;
        batch.push(msg('a', 'b', { type: 'MsgApp', index: sent - 1, entries: [{ term: 1, index: sent, type: 0, data: entry }] }));
      }
      if (batch.length > 0) transport.send(batch);
    };
    onMessage = (m) => {
      if (m.type !== 'MsgAppResp') return;
      acked++;
      if (acked === o.messages) resolve();
      else if (sent < o.messages && sent - acked < o.window / 2) setImmediate(pump);
    };
    pump();
  });
  let elapsedS = Number(process.hrtime.bigint() - startedAt) / 1e9;
  let after = transport.stats();
  const pipelined = {
    roundTripsPerSec: Math.round(o.messages / elapsedS),
    appendMiBPerSec: +((o.messages * o.entryBytes) / elapsedS / 1024 / 1024).toFixed(1),
    messagesPerWrite: +(o.messages / (after.batchesSent - before.batchesSent)).toFixed(1),
  };

  // One-way appends in bursts, sparse acks.
  before = transport.stats();
  sent = 0;
  let received = 0;
  startedAt = process.hrtime.bigint();
  await new Promise((resolve) => {
    let scheduled = false;
    const pump = () => {
      scheduled = false;
      while (sent < o.oneWay && sent - received < o.window) {
        const n = Math.min(o.burst, o.oneWay - sent);
        const burst = [];
        for (let k = 0; k < n; k++) {
          sent++;
          burst.push(msg('a', 'b', { type: 'MsgApp', commit: 1, logTerm: sent === o.oneWay ? 1 : 0, index: sent - 1, entries: [{ term: 1, index: sent, type: 0, data: entry }] }));
        }
        transport.send(burst);
      }
    };
    onMessage = (m) => {
      if (m.type !== 'MsgAppResp' || m.commit !== 1) return;
      received = m.index;
      if (received === o.oneWay) resolve();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(pump);
      }
    };
    pump();
  });
  elapsedS = Number(process.hrtime.bigint() - startedAt) / 1e9;
  after = transport.stats();
  const oneWay = {
    messagesPerSec: Math.round(o.oneWay / elapsedS),
    entryMiBPerSec: +((o.oneWay * o.entryBytes) / elapsedS / 1024 / 1024).toFixed(1),
    messagesPerWrite: +(o.oneWay / (after.batchesSent - before.batchesSent)).toFixed(1),
    dropped: after.messagesDropped - before.messagesDropped,
  };

  // Baseline: sequential unary calls between the same two processes.
  const client = new grpc.Client(peerAddress, grpc.credentials.createInsecure());
  const unaryCall = () =>
    new Promise((resolve, reject) => client.makeUnaryRequest(ECHO.Echo.path, identity, identity, Buffer.from('ping'), (err) => (err ? reject(err) : resolve())));
  for (let i = 0; i < 1000; i++) await unaryCall();
  const unarySamples = [];
  for (let i = 0; i < Math.min(o.pings, 2000); i++) {
    const start = process.hrtime.bigint();
    await unaryCall();
    unarySamples.push(process.hrtime.bigint() - start);
  }
  client.close();
  const raw = summary(await rawPingPong(ports.rawPort, o.pings));

  peer.stdin.end();
  await node.close();
  await once(peer, 'exit');
  return { transport: kind, pingPongRoundTrip: ping, pipelinedAppends: pipelined, oneWayAppends: oneWay, unaryEchoCall: summary(unarySamples), rawTcpPingPong: raw };
}

const FIGURES = [
  ['ping-pong p50 µs', (r) => r.pingPongRoundTrip.p50Us],
  ['ping-pong p99 µs', (r) => r.pingPongRoundTrip.p99Us],
  ['pipelined round trips/s', (r) => r.pipelinedAppends.roundTripsPerSec],
  ['one-way appends/s', (r) => r.oneWayAppends.messagesPerSec],
  ['one-way MiB/s of entries', (r) => r.oneWayAppends.entryMiBPerSec],
  ['one-way messages/write', (r) => r.oneWayAppends.messagesPerWrite],
  ['unary echo p50 µs (same server)', (r) => r.unaryEchoCall.p50Us],
  ['bare node:net ping-pong p50 µs (floor)', (r) => r.rawTcpPingPong.p50Us],
];

async function parent() {
  const kinds = arg('transport', 'grpc,tcp').split(',');
  const o = {
    pings: num('pings', 5000),
    messages: num('messages', 200_000),
    entryBytes: num('entry-bytes', 100),
    window: num('window', 4096),
    oneWay: num('one-way', 500_000),
    burst: num('burst', 256),
    ackEvery: num('ack-every', 1024),
  };
  const runs = num('runs', 1);
  const results = [];
  for (let run = 0; run < runs; run++) {
    const order = run % 2 === 0 ? kinds : [...kinds].reverse();
    for (const kind of order) {
      const r = await measure(kind, o);
      results.push({ run, ...r });
      process.stderr.write(`run ${run + 1}/${runs} ${kind}: ping p50 ${r.pingPongRoundTrip.p50Us} µs p99 ${r.pingPongRoundTrip.p99Us} µs; pipelined ${r.pipelinedAppends.roundTripsPerSec}/s; one-way ${r.oneWayAppends.messagesPerSec}/s\n`);
    }
  }
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ options: o, runs, results }, null, 2));
    return;
  }
  const range = (xs) => (Math.min(...xs) === Math.max(...xs) ? String(xs[0]) : `${Math.min(...xs)}–${Math.max(...xs)}`);
  console.log(`\nRaft transports, 2 processes on 127.0.0.1, ${o.entryBytes}-byte entries, window ${o.window}, one-way bursts of ${o.burst}, ${runs} run(s) (range min–max)\n`);
  console.log(`| figure | ${kinds.join(' | ')} |`);
  console.log(`|---|${kinds.map(() => '---:').join('|')}|`);
  for (const [name, get] of FIGURES) {
    console.log(`| ${name} | ${kinds.map((k) => range(results.filter((r) => r.transport === k).map(get))).join(' | ')} |`);
  }
}

if (process.argv[2] === '--child') await child(process.argv[3], process.argv[4], Number(process.argv[5]));
else await parent();
