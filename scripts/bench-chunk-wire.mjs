#!/usr/bin/env node
// Micro-benchmark of the chunk write path over gRPC (src/chunks/grpc.ts), not a test.
// Runs on the build: `npm run build && node scripts/bench-chunk-wire.mjs [options]`.
// Three chunk servers as child processes on 127.0.0.1 (a real ChunkStore each in a temp
// dir, or with --null-store one that drops the bytes, to see the wire alone); this
// process writes N chunks of 4 MiB to all three, `--inflight` chunks at a time, as a
// client writes R=3 replicas. Prints MiB/s of chunk data and the CPU seconds of the
// client and of the servers (from /proc, all threads).
//   --chunks N (128)  --inflight K (2)  --null-store
//   --default-windows   servers keep HTTP/2's 64 KiB receive windows (before/after)
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => pathToFileURL(join(root, 'dist/src', p)).href;
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const value = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};

if (flag('--serve')) {
  // Child: one chunk server on the given port.
  const port = value('--serve', 0);
  if (flag('--default-windows')) {
    // Keep HTTP/2's defaults: pre-set the stream window the hook in grpc.ts would raise,
    // and drop the first 'session' listener (the hook's, which raises the connection's).
    const http2 = (await import('node:http2')).default;
    const create = http2.createServer;
    http2.createServer = (o, l) => {
      const server = create({ ...o, settings: { initialWindowSize: 65535, ...o?.settings } }, l);
      const on = server.on.bind(server);
      let skipped = false;
      server.on = (event, fn) => {
        if (event === 'session' && !skipped) {
          skipped = true;
          return server;
        }
        return on(event, fn);
      };
      return server;
    };
  }
  const grpc = await import(pathToFileURL(join(root, 'node_modules/@grpc/grpc-js/build/src/index.js')).href);
  const { ChunkStore } = await import(dist('chunks/store.js'));
  const { registerChunkService, CHUNK_SERVER_OPTIONS } = await import(dist('chunks/grpc.js'));
  const store = flag('--null-store')
    ? {
        writeChunk: async () => {},
        readChunk: async () => Buffer.alloc(0),
        deleteChunk: async () => {},
        capacity: async () => ({ totalBytes: 0, freeBytes: 0, usedBytes: 0, chunkCount: 0 }),
        openWriter: async () => ({ queuedBytes: 0, append: async () => {}, commit: async () => {}, abort: async () => {} }),
      }
    : await ChunkStore.open({ dataDir: args[args.indexOf('--dir') + 1] });
  const server = new grpc.Server(CHUNK_SERVER_OPTIONS);
  await registerChunkService(server, store);
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    process.send?.('ready');
  });
} else {
  const chunks = value('--chunks', 128);
  const inflight = value('--inflight', 2);
  const chunkBytes = 4 * 1024 * 1024;
  const tmp = await mkdtemp(join(os.tmpdir(), 'bench-chunk-wire-'));
  const basePort = 20000 + Math.floor(Math.random() * 20000);
  const passOn = args.filter((a) => a === '--null-store' || a === '--default-windows');
  const children = [0, 1, 2].map((i) =>
    spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', String(basePort + i), '--dir', join(tmp, `d${i}`), ...passOn], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  await Promise.all(children.map((c) => new Promise((resolve) => c.once('message', resolve))));
  const cpuOf = async (pid) => {
    const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  };
  const serversCpu = async () => (await Promise.all(children.map((c) => cpuOf(c.pid)))).reduce((a, b) => a + b, 0);
  const { ChunkClient } = await import(dist('chunks/grpc.js'));
  const clients = await Promise.all([0, 1, 2].map((i) => ChunkClient.connect({ address: `127.0.0.1:${basePort + i}`, deadlineMs: 60_000 })));
  const data = Buffer.alloc(chunkBytes, 7);
  await Promise.all(clients.map((c) => c.writeChunk(1, data))); // warm-up: connections up
  let next = 2;
  const end = next + chunks;
  const s0 = await serversCpu();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const worker = async () => {
    while (next < end) {
      const id = next++;
      await Promise.all(clients.map((c) => c.writeChunk(id, data)));
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const servers = (await serversCpu()) - s0;
  const gib = (chunks * chunkBytes) / 2 ** 30;
  console.log(
    `${((chunks * chunkBytes) / 2 ** 20 / seconds).toFixed(1)} MiB/s of chunk data to 3 servers` +
      ` (${inflight} in flight${flag('--null-store') ? ', null store' : ''}${flag('--default-windows') ? ', 64 KiB windows' : ''});` +
      ` client CPU ${((c.user + c.system) / 1e6 / gib).toFixed(2)} s/GiB, servers ${(servers / gib / 3).toFixed(2)} s/GiB each`,
  );
  for (const cl of clients) cl.close();
  for (const ch of children) ch.kill();
  await rm(tmp, { recursive: true, force: true });
}
