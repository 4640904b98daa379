#!/usr/bin/env node
// Micro-benchmark of the Raft transport (src/cluster/raft/transport.ts) between two
// processes on this machine: the round trip of a ping-pong over the Send streams, the
// rate of pipelined MsgApp -> MsgAppResp round trips, and, as the baseline the design
// works around, a sequential unary grpc-js call between the same two processes.
//
// Runs the compiled code: `npm run build` first (or `npx tsc -p tsconfig.json`).
// Usage: node scripts/bench-raft-transport.mjs [--pings 5000] [--messages 200000]
//        [--entry-bytes 128] [--window 4096]
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setImmediate } from 'node:timers';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { GrpcTransport, RAFT_SERVER_OPTIONS } = await import(pathToFileURL(path.join(root, 'dist/src/cluster/raft/transport.js')).href);

function arg(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

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

async function serve(server) {
  return new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
}

/** The echoing peer: answers heartbeats and appends like a follower would, without a log. */
async function child(parentAddress) {
  const server = new grpc.Server(RAFT_SERVER_OPTIONS);
  let transport;
  transport = new GrpcTransport({
    selfId: 'b',
    peers: new Map([['a', parentAddress]]),
    onMessage: (m) => {
      if (m.type === 'MsgHeartbeat') transport.send([msg('b', 'a', { type: 'MsgHeartbeatResp', index: m.index, context: m.context })]);
      else if (m.type === 'MsgApp') transport.send([msg('b', 'a', { type: 'MsgAppResp', index: m.index + m.entries.length })]);
    },
  });
  await transport.register(server);
  server.addService(ECHO, { Echo: (call, callback) => callback(null, call.request) });
  const port = await serve(server);
  console.log(JSON.stringify({ port }));
  process.stdin.resume();
  process.stdin.on('end', () => {
    transport.close();
    server.forceShutdown();
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

async function parent() {
  const pings = arg('pings', 5000);
  const messages = arg('messages', 200_000);
  const entryBytes = arg('entry-bytes', 128);
  const window = arg('window', 4096);

  const server = new grpc.Server(RAFT_SERVER_OPTIONS);
  let onMessage = () => {};
  const transport = new GrpcTransport({ selfId: 'a', peers: new Map(), onMessage: (m) => onMessage(m) });
  await transport.register(server);
  const port = await serve(server);
  const peer = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', `127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = await once(createInterface({ input: peer.stdout }), 'line');
  const peerAddress = `127.0.0.1:${JSON.parse(line).port}`;
  transport.setPeers(new Map([['b', peerAddress]]));

  // Ping-pong: one heartbeat out, wait for its response, repeat.
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
  const ping = summary(await pingPong(pings));

  // Pipelined appends: up to `window` unacknowledged MsgApp of one entry each, like a
  // leader replicating small commands; every one is answered by a MsgAppResp.
  const entry = Buffer.alloc(entryBytes, 7);
  const before = transport.stats();
  let acked = 0;
  let sent = 0;
  const startedAt = process.hrtime.bigint();
  await new Promise((resolve) => {
    const pump = () => {
      const batch = [];
      while (sent < messages && sent - acked < window && batch.length < 1024) {
        sent++;
        batch.push(msg('a', 'b', { type: 'MsgApp', index: sent - 1, entries: [{ term: 1, index: sent, type: 0, data: entry }] }));
      }
      if (batch.length > 0) transport.send(batch);
    };
    onMessage = (m) => {
      if (m.type !== 'MsgAppResp') return;
      acked++;
      if (acked === messages) resolve();
      else if (sent < messages && sent - acked < window / 2) setImmediate(pump);
    };
    pump();
  });
  const elapsedS = Number(process.hrtime.bigint() - startedAt) / 1e9;
  const after = transport.stats();
  const appendBatches = after.batchesSent - before.batchesSent;

  // Baseline: sequential unary calls between the same two processes.
  const client = new grpc.Client(peerAddress, grpc.credentials.createInsecure());
  const unaryCall = () =>
    new Promise((resolve, reject) => client.makeUnaryRequest(ECHO.Echo.path, identity, identity, Buffer.from('ping'), (err) => (err ? reject(err) : resolve())));
  for (let i = 0; i < 1000; i++) await unaryCall();
  const unarySamples = [];
  for (let i = 0; i < pings; i++) {
    const start = process.hrtime.bigint();
    await unaryCall();
    unarySamples.push(process.hrtime.bigint() - start);
  }
  client.close();

  console.log(
    JSON.stringify(
      {
        pingPongRoundTrip: ping,
        unaryEchoCall: summary(unarySamples),
        pipelinedAppends: {
          messages,
          entryBytes,
          window,
          roundTripsPerSec: Math.round(messages / elapsedS),
          appendMiBPerSec: +((messages * entryBytes) / elapsedS / 1024 / 1024).toFixed(1),
          streamWrites: appendBatches,
          messagesPerWrite: +(messages / appendBatches).toFixed(1),
        },
      },
      null,
      2,
    ),
  );
  peer.stdin.end();
  transport.close();
  server.forceShutdown();
  await once(peer, 'exit');
}

if (process.argv[2] === '--child') await child(process.argv[3]);
else await parent();
