#!/usr/bin/env node
// Micro-benchmark of erasure coding (docs/decisions/0006-erasure-coding.md), not a test.
// Runs on the build: `npm run build && npm run bench:ec [-- --seconds 0.5]`.
// Prints, one operation in flight, best of 3 rounds, MB/s of data bytes (k × shard):
//   1. the libraries at 4+2 and 6+3 with 64 KiB, 256 KiB and 1 MiB shards: encode, and
//      decode with m data shards missing (the worst case: every one rebuilt from parity);
//      @ronomon/reed-solomon always, the WASM alternative when it is installed
//      (`npm i --no-save @digitaldefiance/reed-solomon-erasure.wasm`);
//   2. the geometry: a 4 MiB chunk coded as one stripe vs as rows of 64 KiB..1 MiB cells;
//   3. src/chunks/ec.ts itself on a 4 MiB chunk (allocation and copies included), and how
//      long each call holds the event loop.
import { createRequire } from 'node:module';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { randomFillSync } from 'node:crypto';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ecPath = join(root, 'dist/src/chunks/ec.js');
if (!existsSync(ecPath)) {
  console.error(`bench-ec: ${ecPath} is missing; run \`npm run build\` first`);
  process.exit(1);
}
const ec = await import(pathToFileURL(ecPath).href);
const require = createRequire(join(root, 'package.json'));
const RS = require('@ronomon/reed-solomon');

const args = process.argv.slice(2);
const secIdx = args.indexOf('--seconds');
const minMs = (secIdx >= 0 ? Number(args[secIdx + 1]) : 0.5) * 1000;

const KiB = 1024;
const MiB = 1024 * KiB;
const SCHEMES = [
  [4, 2],
  [6, 3],
];
const SHARD_SIZES = [64 * KiB, 256 * KiB, MiB];
const CHUNK_BYTES = 4 * MiB;

async function loadWasm() {
  try {
    const { ReedSolomonErasure } = await import('@digitaldefiance/reed-solomon-erasure.wasm');
    // Its ESM build cannot find the .wasm by itself (__dirname); load the bytes.
    return ReedSolomonErasure.fromBytes(readFileSync(require.resolve('@digitaldefiance/reed-solomon-erasure.wasm/wasm')));
  } catch {
    return null;
  }
}

/**
 * Ms per call of `fn`: the fastest of 3 rounds of minMs/3 each (after a warm-up), so a
 * burst of other load on the machine (2 cores, shared with test runs) counts less.
 */
async function msPerOp(fn) {
  for (let i = 0; i < 3; i++) await fn();
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    let n = 0;
    const t0 = performance.now();
    let elapsed = 0;
    while (elapsed < minMs / 3) {
      await fn();
      n++;
      elapsed = performance.now() - t0;
    }
    best = Math.min(best, elapsed / n);
  }
  return best;
}

function ronomon(context, sources, targets, data, dataOffset, dataSize, parity, parityOffset, paritySize) {
  return new Promise((resolve, reject) =>
    RS.encode(context, sources, targets, data, dataOffset, dataSize, parity, parityOffset, paritySize, (e) => (e ? reject(e) : resolve())),
  );
}

const mask = (from, to) => {
  let bits = 0;
  for (let i = from; i < to; i++) bits |= 1 << i;
  return bits;
};
const mbps = (bytes, ms) => (bytes / ms / 1000).toFixed(0).padStart(7);
const row = (...cells) => console.log(cells.map((c) => String(c).padEnd(20)).join(''));

console.log(`bench-ec: node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${minMs / 1000} s per measurement`);

// 1. Libraries.
const wasm = await loadWasm();
console.log('\n1. libraries: MB/s of data bytes, one operation at a time (decode = m data shards missing)');
row('library', 'k+m', 'shard', 'encode MB/s', 'decode MB/s');
for (const [k, m] of SCHEMES) {
  const context = RS.create(k, m);
  for (const shardBytes of SHARD_SIZES) {
    const data = randomFillSync(Buffer.alloc(shardBytes * k));
    const parity = Buffer.alloc(shardBytes * m);
    const dataMask = mask(0, k);
    const all = mask(0, k + m);
    const encMs = await msPerOp(() => ronomon(context, dataMask, all & ~dataMask, data, 0, data.length, parity, 0, parity.length));
    const lost = mask(0, m);
    const decMs = await msPerOp(() => ronomon(context, all & ~lost, lost, data, 0, data.length, parity, 0, parity.length));
    row('ronomon', `${k}+${m}`, `${shardBytes / KiB} KiB`, mbps(data.length, encMs), mbps(data.length, decMs));
    if (wasm) {
      const shards = new Uint8Array(shardBytes * (k + m));
      shards.set(data);
      const wEncMs = await msPerOp(async () => {
        if (wasm.encode(shards, k, m) !== 0) throw new Error('wasm encode failed');
      });
      const available = Array.from({ length: k + m }, (_, i) => i >= m);
      const wDecMs = await msPerOp(async () => {
        if (wasm.reconstruct(shards, k, m, available) !== 0) throw new Error('wasm reconstruct failed');
      });
      row('wasm', `${k}+${m}`, `${shardBytes / KiB} KiB`, mbps(data.length, wEncMs), mbps(data.length, wDecMs));
    }
  }
}
if (!wasm) console.log('(wasm alternative not installed: npm i --no-save @digitaldefiance/reed-solomon-erasure.wasm)');

// 2. Geometry of a 4 MiB chunk.
console.log(`\n2. geometry: ms to encode one ${CHUNK_BYTES / MiB} MiB chunk (ronomon)`);
row('k+m', 'layout', 'ms/chunk', 'MB/s', 'padding');
for (const [k, m] of SCHEMES) {
  const context = RS.create(k, m);
  const shardBytes = ec.shardSizeBytes(CHUNK_BYTES, k);
  const data = randomFillSync(Buffer.alloc(shardBytes * k));
  const parity = Buffer.alloc(shardBytes * m);
  const dataMask = mask(0, k);
  const targets = mask(0, k + m) & ~dataMask;
  const oneMs = await msPerOp(() => ronomon(context, dataMask, targets, data, 0, data.length, parity, 0, parity.length));
  row(`${k}+${m}`, 'one stripe', oneMs.toFixed(3), mbps(CHUNK_BYTES, oneMs), `${shardBytes * k - CHUNK_BYTES} B`);
  for (const cellBytes of [64 * KiB, 256 * KiB, MiB]) {
    // HDFS-style striping: row r is k consecutive cells of the chunk, coded on its own.
    const rows = Math.ceil(CHUNK_BYTES / (cellBytes * k));
    const cellData = randomFillSync(Buffer.alloc(rows * cellBytes * k));
    const cellParity = Buffer.alloc(rows * cellBytes * m);
    const ms = await msPerOp(async () => {
      for (let r = 0; r < rows; r++) {
        await ronomon(context, dataMask, targets, cellData, r * cellBytes * k, cellBytes * k, cellParity, r * cellBytes * m, cellBytes * m);
      }
    });
    row(`${k}+${m}`, `${cellBytes / KiB} KiB cells`, ms.toFixed(3), mbps(CHUNK_BYTES, ms), `${rows * cellBytes * k - CHUNK_BYTES} B`);
  }
}

// 3. The module as the write/read paths call it.
console.log(`\n3. src/chunks/ec.ts on a ${CHUNK_BYTES / MiB} MiB chunk (allocations and copies included)`);
row('k+m', 'call', 'ms/chunk', 'MB/s', 'loop held ms (p50)');
for (const [k, m] of SCHEMES) {
  const chunk = randomFillSync(Buffer.alloc(CHUNK_BYTES));
  const shards = await ec.encodeStripe(chunk, k, m);
  const degraded = shards.map((s, i) => (i < m ? null : s));
  const healthy = shards.map((s, i) => (i < k ? s : null));
  const cases = [
    ['encodeStripe', () => ec.encodeStripe(chunk, k, m)],
    [`decodeData -${m} data`, () => ec.decodeData(degraded, k, m, CHUNK_BYTES)],
    ['decodeData healthy', () => ec.decodeData(healthy, k, m, CHUNK_BYTES)],
    [`reconstruct -${m}`, () => ec.reconstruct(degraded, k, m)],
  ];
  for (const [name, fn] of cases) {
    const ms = await msPerOp(fn);
    // Time on the calling thread (median of 21): from the call until it returns its promise.
    const held = [];
    for (let i = 0; i < 21; i++) {
      const t0 = performance.now();
      const p = fn();
      held.push(performance.now() - t0);
      await p;
    }
    held.sort((a, b) => a - b);
    row(`${k}+${m}`, name, ms.toFixed(3), mbps(CHUNK_BYTES, ms), held[10].toFixed(3));
  }
}
