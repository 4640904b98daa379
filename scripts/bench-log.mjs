#!/usr/bin/env node
// Micro-benchmark of the disk-backed Raft log (src/cluster/raft/log-store.ts), not a test.
// Prints: sequential append+fdatasync latency (1 appender), and commits/s with 16 and 256
// concurrent appenders of 200-byte entries, plus a raw fdatasync floor for comparison.
//   node scripts/bench-log.mjs [dir] [--seconds 3]
// The TS sources are transpiled on the fly (typescript is a devDependency), so no build is needed.
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const secIdx = args.indexOf('--seconds');
const seconds = secIdx >= 0 ? Number(args[secIdx + 1]) : 3;
const baseDir = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--seconds') ?? mkdtempSync(join(tmpdir(), 'dfs-bench-log-'));

async function loadStore() {
  const out = mkdtempSync(join(tmpdir(), 'dfs-bench-log-js-'));
  const files = ['log-store', 'log-record', 'log-fs', 'types', 'util'];
  for (const f of files) {
    const src = readFileSync(join(root, 'src/cluster/raft', `${f}.ts`), 'utf8');
    const js = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, preserveConstEnums: true },
    }).outputText;
    writeFileSync(join(out, `${f}.js`), js);
  }
  // Resolve @node-rs/crc32 from the project, not from the temp dir.
  mkdirSync(join(out, 'node_modules/@node-rs'), { recursive: true });
  const { symlinkSync } = await import('node:fs');
  symlinkSync(join(root, 'node_modules/@node-rs/crc32'), join(out, 'node_modules/@node-rs/crc32'));
  return { mod: await import(pathToFileURL(join(out, 'log-store.js')).href), out };
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

function fmtUs(ns) {
  return `${(Number(ns) / 1000).toFixed(0)} µs`;
}

const DATA = Buffer.alloc(200, 0x61);

async function sequential(LogStore, dir, opts, n) {
  const store = await LogStore.open(dir, opts);
  let index = store.lastIndex();
  // Warm up (and let the background spare segment finish preallocating).
  for (let i = 0; i < 200; i++) await store.append([{ term: 1, index: ++index, type: 0, data: DATA }]);
  await sleep(1500);
  const lat = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await store.append([{ term: 1, index: ++index, type: 0, data: DATA }]);
    lat.push(process.hrtime.bigint() - t0);
  }
  await store.close();
  lat.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { p50: pct(lat, 50), p99: pct(lat, 99), n };
}

async function concurrent(LogStore, dir, appenders, seconds) {
  const store = await LogStore.open(dir, {});
  let index = store.lastIndex();
  for (let i = 0; i < 200; i++) await store.append([{ term: 1, index: ++index, type: 0, data: DATA }]);
  await sleep(1500);
  const before = store.stats();
  const lat = [];
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const deadline = performance.now() + seconds * 1000;
  let commits = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (performance.now() < deadline) {
      const s = process.hrtime.bigint();
      // Index taken at call time: admission is in call order, so the log stays contiguous.
      await store.append([{ term: 1, index: ++index, type: 0, data: DATA }]);
      lat.push(process.hrtime.bigint() - s);
      commits++;
    }
  };
  await Promise.all(Array.from({ length: appenders }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  h.disable();
  const after = store.stats();
  await store.close();
  lat.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const fsyncs = after.fsyncs - before.fsyncs;
  return {
    commitsPerSec: commits / elapsed,
    fsyncsPerSec: fsyncs / elapsed,
    perFsync: commits / fsyncs,
    p50: pct(lat, 50),
    p99: pct(lat, 99),
    loopDelayP99Ms: h.percentile(99) / 1e6,
    loopDelayMaxMs: h.max / 1e6,
  };
}

/** The floor: 200 bytes written + fdatasync on a file, preallocated (overwrite) or growing (append). */
async function rawFdatasync(dir, mode, n) {
  const path = join(dir, `raw-${mode}.bin`);
  const fh = await open(path, 'w+');
  if (mode === 'preallocated') {
    const zeros = Buffer.alloc(1 << 20);
    for (let at = 0; at < 16 << 20; at += zeros.length) await fh.write(zeros, 0, zeros.length, at);
    await fh.datasync();
  }
  const lat = [];
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fh.write(DATA, 0, DATA.length, pos);
    await fh.datasync();
    lat.push(process.hrtime.bigint() - t0);
    pos += DATA.length;
  }
  await fh.close();
  lat.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { p50: pct(lat, 50), p99: pct(lat, 99) };
}

const { mod, out } = await loadStore();
const { LogStore } = mod;
mkdirSync(baseDir, { recursive: true });
console.log(`dir ${baseDir}, node ${process.version}, ${seconds} s per concurrent run, 200-byte entries`);
try {
  for (const mode of ['preallocated', 'growing']) {
    const r = await rawFdatasync(baseDir, mode, 2000);
    console.log(`raw write+fdatasync, ${mode.padEnd(12)} file: p50 ${fmtUs(r.p50)}  p99 ${fmtUs(r.p99)}`);
  }
  for (const preallocate of ['zeros', 'sparse']) {
    const r = await sequential(LogStore, join(baseDir, `seq-${preallocate}`), { preallocate }, 3000);
    console.log(`log-store 1 appender, sequential (${preallocate} prealloc): p50 ${fmtUs(r.p50)}  p99 ${fmtUs(r.p99)}  (${r.n} appends)`);
  }
  for (const n of [1, 16, 256]) {
    const r = await concurrent(LogStore, join(baseDir, `conc-${n}`), n, seconds);
    console.log(
      `log-store ${String(n).padStart(3)} appenders: ${r.commitsPerSec.toFixed(0).padStart(7)} commits/s, ` +
        `${r.fsyncsPerSec.toFixed(0)} fsyncs/s (${r.perFsync.toFixed(1)} commits/fsync), ` +
        `latency p50 ${fmtUs(r.p50)} p99 ${fmtUs(r.p99)}, event-loop delay p99 ${r.loopDelayP99Ms.toFixed(2)} ms max ${r.loopDelayMaxMs.toFixed(2)} ms`,
    );
  }
} finally {
  rmSync(out, { recursive: true, force: true });
  if (!args.some((a) => !a.startsWith('--'))) rmSync(baseDir, { recursive: true, force: true });
}
