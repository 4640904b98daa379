#!/usr/bin/env node
// Benchmark of a whole Raft group (issue #4, "Speed"): commits/s and per-proposal latency
// with 1, 16 and 256 concurrent proposers against 3 voters, each a separate process on
// 127.0.0.1 with its own disk log (LogStore, fdatasync on), a Raft transport (--transport
// tcp: TcpTransport behind a PortMux, the default and what the daemon uses; grpc:
// GrpcTransport, kept for comparison, decision 0009) and the
// real driver (RaftDriver), over a trivial state machine (a counter). The proposers run
// inside the leader's process in closed loops; a proposal's latency is from propose() to
// the resolution of its promise (committed by a quorum and applied on the leader).
//
// Runs the compiled code: `npm run bench:raft` builds first (or `npm run build` once, then
// `node scripts/bench-raft.mjs`).
// Usage: node scripts/bench-raft.mjs [--concurrency 1,16,256] [--seconds 5] [--warmup 1]
//        [--entry-bytes 100] [--tick-ms 100] [--snapshot-every N] [--json] [--cpu-prof]
//        [--dir /tmp] [--transport tcp|grpc]
//        node scripts/bench-raft.mjs --trace [--count 2000] [--warmup-proposals 500] [--json]
//   --trace     one proposer, `count` sequential proposals after `warmup-proposals`: where each
//               µs of a commit goes (issue #10). Wraps, without changing src/, the objects
//               each voter hands RaftDriver (LogStore.append and its promise, transport.send
//               and the onMessage callback, the state machine's apply) and the proposer's
//               propose() call and resolution, timestamping by entry index with
//               process.hrtime (CLOCK_MONOTONIC: one clock for the three processes); prints
//               p50/p90/p99 of each step of the critical path, and, measured first in the
//               same run, the floors: a bare O_DSYNC / fdatasync write of --entry-bytes on
//               this disk (one writer, and three at once) and a bare node:net ping-pong.
//   --tick-ms, --snapshot-every  driver options; default: DEFAULT_DRIVER_OPTIONS (tick
//               100 ms, a snapshot + compaction every 20 000 applied entries, as the daemon).
//   --cpu-prof  run the voters under `node --cpu-prof` and print the leader's top
//               functions by self time (the profiles stay in the printed directory).
// Each voter's log lives in a temp dir under --dir (default /tmp), removed at the end; the
// voters are stopped through their stdin and, failing that, killed by pid.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { clearTimeout, setImmediate, setTimeout } from 'node:timers';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => pathToFileURL(path.join(root, 'dist/src', p)).href;

const VOTERS = ['n1', 'n2', 'n3'];
const CHILD_TICKS_PER_S = 100; // /proc/<pid>/stat unit (USER_HZ)

function flag(name) {
  return process.argv.includes(`--${name}`);
}

function opt(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

// ---------------------------------------------------------------------------- trace

/**
 * Wraps the objects a voter hands to RaftDriver (no change to src/): LogStore.append (call,
 * and the resolution of its promise = durable), transport.send (per message: MsgApp with
 * entries by peer and entry index, MsgAppResp by its index), the transport's onMessage
 * callback (receipt, same keys) and the state machine's apply. First occurrence wins (a
 * retransmission or a later duplicate ack does not move a timestamp).
 */
function makeTracer() {
  const now = () => Number(process.hrtime.bigint());
  const maps = {};
  const rec = (name, key, t) => {
    const m = (maps[name] ??= new Map());
    if (!m.has(key)) m.set(key, t);
  };
  return {
    now,
    received(m) {
      const t = now();
      if (m.type === 'MsgApp') for (const e of m.entries) rec('recvApp', e.index, t);
      else if (m.type === 'MsgAppResp' && !m.reject) rec('recvResp', `${m.from}:${m.index}`, t);
    },
    wrap(store, transport, sm) {
      const append = store.append.bind(store);
      store.append = (entries) => {
        const t = now();
        for (const e of entries) rec('appendCall', e.index, t);
        const p = append(entries);
        // A side branch, registered before the driver's await: the driver's promise and its
        // timing stay the same object.
        p.then(
          () => {
            const t2 = now();
            for (const e of entries) rec('appendDone', e.index, t2);
          },
          () => undefined,
        );
        return p;
      };
      const send = transport.send.bind(transport);
      transport.send = (msgs) => {
        const t = now();
        for (const m of msgs) {
          if (m.type === 'MsgApp') for (const e of m.entries) rec('sendApp', `${m.to}:${e.index}`, t);
          else if (m.type === 'MsgAppResp' && !m.reject) rec('sendResp', m.index, t);
        }
        return send(msgs);
      };
      const apply = sm.apply;
      sm.apply = (entries) => {
        const t = now();
        for (const e of entries) rec('applyCall', e.index, t);
        return apply(entries);
      };
    },
    dump() {
      return Object.fromEntries(Object.entries(maps).map(([k, m]) => [k, [...m]]));
    },
  };
}

// ---------------------------------------------------------------------------- voter

/** One voter. Protocol: JSON lines, commands on stdin, events on stdout; logs on stderr. */
async function voter() {
  const grpc = await import('@grpc/grpc-js');
  const { pino } = await import('pino');
  const { LogStore } = await import(dist('cluster/raft/log-store.js'));
  const { GrpcTransport, RAFT_SERVER_OPTIONS } = await import(dist('cluster/raft/transport.js'));
  const { DEFAULT_DRIVER_OPTIONS, RaftDriver } = await import(dist('cluster/raft/driver.js'));
  const transportKind = opt('transport', 'tcp');

  const id = opt('id', '');
  const dir = opt('dir', '');
  const tickMs = Number(opt('tick-ms', '100'));
  const snapshotEvery = Number(opt('snapshot-every', String(DEFAULT_DRIVER_OPTIONS.snapshotEveryEntries)));
  const emit = (event) => process.stdout.write(JSON.stringify(event) + '\n');
  const logger = pino({ level: 'warn', base: { node: id } }, pino.destination(2));
  // --trace: hrtime (CLOCK_MONOTONIC, ns, shared by the processes of one machine) of each
  // step an entry takes, keyed by entry index (per peer where there are two).
  const tracer = flag('trace') ? makeTracer() : null;
  const onMessage = (m) => {
    if (tracer) tracer.received(m);
    driver?.receive(m);
  };

  // The state machine: counts applied entries; its snapshot is the counter.
  let count = 0;
  const sm = {
    apply: async (entries) => {
      count += entries.length;
      return entries.map(() => count);
    },
    appliedIndex: async () => 0,
    sync: async () => undefined,
    snapshot: async () => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(BigInt(count));
      return b;
    },
    restore: async (data) => {
      count = data.length === 8 ? Number(data.readBigUInt64BE()) : 0;
    },
  };

  let driver = null;
  const server = new grpc.Server(RAFT_SERVER_OPTIONS);
  let transport;
  let port;
  let mux = null;
  if (transportKind === 'tcp') {
    // As a daemon would serve it: the framed transport behind a PortMux, on the gRPC port.
    const { TcpTransport } = await import(dist('cluster/raft/tcp-transport.js'));
    const { PortMux } = await import(dist('cluster/raft/port-mux.js'));
    transport = new TcpTransport({ selfId: id, peers: new Map(), onMessage, logger });
    mux = await PortMux.listen({
      address: '127.0.0.1:0',
      grpcServer: server,
      grpcCredentials: grpc.ServerCredentials.createInsecure(),
      onRaftConnection: (s) => transport.acceptConnection(s),
      logger,
    });
    port = mux.port;
  } else {
    transport = new GrpcTransport({ selfId: id, peers: new Map(), onMessage, logger });
    await transport.register(server);
    port = await new Promise((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
  }
  // Same segment size as the daemon (src/daemon/daemon.ts).
  const store = await LogStore.open(dir, { segmentBytes: 16 * 1024 * 1024 });
  if (tracer) tracer.wrap(store, transport, sm);
  emit({ event: 'listening', id, port, pid: process.pid });

  let stopping = false;
  const stop = async (code) => {
    if (stopping) return;
    stopping = true;
    const deadline = setTimeout(() => process.exit(code || 3), 5000);
    try {
      if (driver) await driver.stop();
      transport.close();
      await store.close();
      server.forceShutdown();
      if (mux) await mux.close();
    } finally {
      clearTimeout(deadline);
      // process.exit (not a natural end) so that --cpu-prof writes its profile now.
      process.exit(code);
    }
  };
  // The parent went away: don't outlive it.
  process.stdin.on('end', () => void stop(0));

  const start = async (peers) => {
    transport.setPeers(new Map(Object.entries(peers).filter(([p]) => p !== id)));
    driver = await RaftDriver.start(
      store,
      transport,
      sm,
      { ...DEFAULT_DRIVER_OPTIONS, id, tickMs, snapshotEveryEntries: snapshotEvery, logger },
      { voters: Object.keys(peers), learners: [] },
    );
    transport.onUnreachable((p) => driver.reportUnreachable(p));
    transport.onSnapshotDone((p, ok) => driver.reportSnapshot(p, ok));
    driver.onLeaderChange((leader) => emit({ event: 'leader', id, leader, term: driver.status().term }));
    emit({ event: 'started', id });
  };

  /** Closed-loop proposers for warmupMs + durationMs; counts what completes in the window. */
  const run = async ({ concurrency, warmupMs, durationMs, entryBytes }) => {
    if (driver.leaderId !== id) return { error: `${id} is not the leader (leader: ${driver.leaderId})` };
    const t0 = performance.now();
    const from = t0 + warmupMs;
    const until = from + durationMs;
    const latenciesMs = [];
    const refusals = {};
    let seq = 0;
    let before = null;
    const eld = monitorEventLoopDelay({ resolution: 1 });
    // `monoUs`: CLOCK_MONOTONIC in µs, the clock of V8's cpu profile timestamps.
    const snap = () => ({ store: store.stats(), driver: { ...driver.stats }, transport: transport.stats(), cpu: process.cpuUsage(), monoUs: Number(process.hrtime.bigint() / 1000n) });
    const windowStart = setTimeout(() => {
      before = snap();
      eld.enable();
      emit({ event: 'window', phase: 'start', lateMs: +(performance.now() - from).toFixed(1) });
    }, warmupMs);
    const proposer = async () => {
      for (;;) {
        const startedAt = performance.now();
        if (startedAt >= until) return;
        const data = Buffer.allocUnsafe(entryBytes).fill(0x61);
        data.writeUInt32BE(++seq, 0);
        const r = await driver.propose(data);
        const doneAt = performance.now();
        // A refusal resolves at once: yield, or a refusing driver would starve the timers.
        if (!r.ok) await new Promise((resolve) => setImmediate(resolve));
        if (doneAt < from || doneAt > until) continue;
        if (r.ok) latenciesMs.push(doneAt - startedAt);
        else refusals[r.reason] = (refusals[r.reason] ?? 0) + 1;
      }
    };
    let ended = false;
    const windowEnd = () => {
      if (ended) return;
      ended = true;
      eld.disable();
      emit({ event: 'window', phase: 'end', lateMs: +(performance.now() - until).toFixed(1) });
    };
    // Whichever comes first: the timer, or the proposers all done (they stop at `until`).
    const endTimer = setTimeout(windowEnd, warmupMs + durationMs);
    await Promise.all(Array.from({ length: concurrency }, proposer));
    clearTimeout(windowStart);
    clearTimeout(endTimer);
    if (before) windowEnd();
    const after = snap();
    if (!before) return { error: 'the run ended before its measuring window began' };
    latenciesMs.sort((a, b) => a - b);
    const windowS = durationMs / 1000;
    const fsyncs = after.store.fsyncs - before.store.fsyncs;
    const entries = after.store.entries - before.store.entries;
    const cpuUs = after.cpu.user - before.cpu.user + (after.cpu.system - before.cpu.system);
    const r2 = (x) => +x.toFixed(2);
    return {
      leader: id,
      concurrency,
      entryBytes,
      commits: latenciesMs.length,
      commitsPerSec: Math.round(latenciesMs.length / windowS),
      latencyMs: {
        p50: r2(percentile(latenciesMs, 0.5)),
        p90: r2(percentile(latenciesMs, 0.9)),
        p99: r2(percentile(latenciesMs, 0.99)),
        max: r2(latenciesMs[latenciesMs.length - 1] ?? NaN),
      },
      refusals,
      leaderFsyncsPerSec: Math.round(fsyncs / windowS),
      entriesPerFsync: fsyncs ? r2(entries / fsyncs) : 0,
      readiesPerSec: Math.round((after.driver.readies - before.driver.readies) / windowS),
      batchesSentPerSec: Math.round((after.transport.batchesSent - before.transport.batchesSent) / windowS),
      messagesSentPerSec: Math.round((after.transport.messagesSent - before.transport.messagesSent) / windowS),
      snapshotsTaken: after.driver.snapshotsTaken - before.driver.snapshotsTaken,
      leaderCpuPct: Math.round((cpuUs / 1e6 / windowS) * 100),
      windowMonoUs: [before.monoUs, after.monoUs],
      eventLoopDelayMs: { p50: r2(eld.percentile(50) / 1e6), p99: r2(eld.percentile(99) / 1e6), max: r2(eld.max / 1e6) },
    };
  };

  /** --trace: `count` sequential proposals after `warmup` unmeasured ones, one proposer. */
  const traceRun = async ({ warmup, count, entryBytes }) => {
    if (driver.leaderId !== id) return { error: `${id} is not the leader (leader: ${driver.leaderId})` };
    const samples = []; // [index, propose() called, its promise resolved (continuation runs)]
    const refusals = {};
    for (let k = 0, seq = 0; k < warmup + count; ) {
      const data = Buffer.allocUnsafe(entryBytes).fill(0x61);
      data.writeUInt32BE(++seq, 0);
      const t0 = tracer.now();
      const r = await driver.propose(data);
      const t1 = tracer.now();
      if (!r.ok) {
        refusals[r.reason] = (refusals[r.reason] ?? 0) + 1;
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      if (k >= warmup) samples.push([r.index, t0, t1]);
      k++;
    }
    return { leader: id, samples, refusals };
  };

  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const cmd = JSON.parse(line);
    const fail = (err) => emit({ event: 'error', id, message: err instanceof Error ? err.stack : String(err) });
    if (cmd.cmd === 'start') start(cmd.peers).catch(fail);
    else if (cmd.cmd === 'run') run(cmd).then((result) => emit({ event: 'result', id, result }), fail);
    else if (cmd.cmd === 'trace') traceRun(cmd).then((result) => emit({ event: 'result', id, result }), fail);
    else if (cmd.cmd === 'trace-dump') emit({ event: 'trace', id, trace: tracer ? tracer.dump() : null });
    else if (cmd.cmd === 'exit') void stop(0);
  });
}

// ---------------------------------------------------------------------------- parent

/** user+system CPU seconds of a process so far, from /proc (Linux). */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CHILD_TICKS_PER_S;
  } catch {
    return NaN;
  }
}

/** Busy CPU seconds of the whole machine so far (all cores), from /proc/stat. */
function machineBusySeconds() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CHILD_TICKS_PER_S;
  } catch {
    return NaN;
  }
}

class Voter {
  constructor(id, dir, nodeArgs, voterArgs) {
    this.id = id;
    this.waiters = [];
    this.events = [];
    this.stderr = '';
    this.exited = false;
    this.child = spawn(process.execPath, [...nodeArgs, fileURLToPath(import.meta.url), '--child', '--id', id, '--dir', dir, ...voterArgs], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid;
    // A voter that died is reported by its exit; writing to it must not crash the parent.
    this.child.stdin.on('error', () => undefined);
    this.exit = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exited = true;
        resolve({ code, signal });
        this.deliver({ event: 'exit', code, signal });
      }),
    );
    this.child.stderr.on('data', (b) => {
      this.stderr = (this.stderr + b.toString()).slice(-8192);
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      let ev;
      try {
        ev = JSON.parse(line);
      } catch {
        return;
      }
      this.deliver(ev);
    });
  }

  deliver(ev) {
    this.events.push(ev);
    for (const w of [...this.waiters]) {
      if (w.match(ev)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(ev);
      }
    }
  }

  send(cmd) {
    if (!this.exited) this.child.stdin.write(JSON.stringify(cmd) + '\n');
  }

  /** The next event matching `match` (or one already seen, if `past`), within `ms`. */
  next(what, ms, match, past = false) {
    if (past) {
      const seen = this.events.find(match);
      if (seen) return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const w = {
        match: (ev) => match(ev) || ev.event === 'exit' || ev.event === 'error',
        resolve: (ev) => {
          clearTimeout(timer);
          if (ev.event === 'exit' && !match(ev)) reject(new Error(`voter ${this.id} exited (${ev.code ?? ev.signal}) waiting for ${what}: ${this.stderr}`));
          else if (ev.event === 'error' && !match(ev)) reject(new Error(`voter ${this.id}: ${ev.message}`));
          else resolve(ev);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out after ${ms} ms waiting for ${what} from ${this.id}; stderr: ${this.stderr}`));
      }, ms);
      this.waiters.push(w);
    });
  }

  /** Graceful stop through stdin, then SIGKILL by pid. */
  async stop() {
    if (this.exited) return;
    this.send({ cmd: 'exit' });
    const timer = new Promise((resolve) => setTimeout(() => resolve('timeout'), 8000));
    if ((await Promise.race([this.exit, timer])) === 'timeout' && !this.exited) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await Promise.race([this.exit, new Promise((resolve) => setTimeout(resolve, 2000))]);
    }
  }
}

/**
 * Top functions by self time in a .cpuprofile (V8 format: nodes, samples, timeDeltas in
 * µs from startTime), counting only samples inside `window` ([fromUs, toUs], monotonic
 * clock) when given.
 */
export function summarizeProfile(file, window = null, top = 25) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  let at = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    at += prof.timeDeltas[i] ?? 0;
    if (window && (at < window[0] || at > window[1])) continue;
    const id = prof.samples[i];
    // A sample's delta is the time since the previous one: charge it to this sample.
    selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  const total = [...selfUs.values()].reduce((s, x) => s + x, 0);
  const byFn = new Map();
  const byFile = new Map();
  for (const [id, us] of selfUs) {
    const cf = byId.get(id).callFrame;
    const file = cf.url ? cf.url.replace(/^file:\/\//, '').replace(root + '/', '') : '(native/vm)';
    const key = `${cf.functionName || '(anonymous)'}  ${file}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    byFn.set(key, (byFn.get(key) ?? 0) + us);
    const group = file.startsWith('node_modules/') ? file.split('/').slice(0, file.split('/')[1].startsWith('@') ? 3 : 2).join('/') : file;
    byFile.set(group, (byFile.get(group) ?? 0) + us);
  }
  const rows = (m) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => ({ pct: +((us / total) * 100).toFixed(1), ms: Math.round(us / 1000), what: k }));
  return { totalMs: Math.round(total / 1000), functions: rows(byFn), files: rows(byFile) };
}

const loadavg = () => os.loadavg().map((x) => +x.toFixed(2));

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const r1 = (x) => +x.toFixed(1);
  return { n: s.length, p50: r1(percentile(s, 0.5)), p90: r1(percentile(s, 0.9)), p99: r1(percentile(s, 0.99)), mean: r1(s.reduce((a, b) => a + b, 0) / (s.length || 1)) };
}

/**
 * Bare disk latency of an `bytes`-byte write at increasing offsets in a preallocated,
 * fsynced file (as a LogStore segment), µs: O_DSYNC pwrite through fs/promises (the
 * thread pool, as LogStore), the same with writeSync (no pool hop), and write + fdatasync.
 */
async function diskProbe(dir, bytes, n) {
  const { open } = await import('node:fs/promises');
  const { constants, openSync, writeSync, closeSync } = await import('node:fs');
  const warm = 200;
  const size = (n + warm) * bytes + 4096;
  const prep = async (name) => {
    const f = path.join(dir, name);
    const fh = await open(f, 'w');
    await fh.write(Buffer.alloc(size), 0, size, 0);
    await fh.sync();
    await fh.close();
    return f;
  };
  const buf = Buffer.alloc(bytes, 0x62);
  const out = {};
  const now = () => Number(process.hrtime.bigint());
  {
    const fh = await open(await prep('probe-dsync'), constants.O_RDWR | constants.O_DSYNC);
    const xs = [];
    for (let i = 0; i < n + warm; i++) {
      const t0 = now();
      await fh.write(buf, 0, bytes, i * bytes);
      if (i >= warm) xs.push((now() - t0) / 1000);
    }
    await fh.close();
    out.odsyncPwriteAsync = stats(xs);
  }
  {
    const fd = openSync(await prep('probe-dsync-sync'), constants.O_RDWR | constants.O_DSYNC);
    const xs = [];
    for (let i = 0; i < n + warm; i++) {
      const t0 = now();
      writeSync(fd, buf, 0, bytes, i * bytes);
      if (i >= warm) xs.push((now() - t0) / 1000);
    }
    closeSync(fd);
    out.odsyncPwriteSync = stats(xs);
  }
  {
    const fh = await open(await prep('probe-fdatasync'), constants.O_RDWR);
    const xs = [];
    for (let i = 0; i < n + warm; i++) {
      const t0 = now();
      await fh.write(buf, 0, bytes, i * bytes);
      await fh.datasync();
      if (i >= warm) xs.push((now() - t0) / 1000);
    }
    await fh.close();
    out.writeFdatasyncAsync = stats(xs);
  }
  {
    // Three writers at once, as the three voters' logs on one disk.
    const fhs = await Promise.all([0, 1, 2].map(async (k) => open(await prep(`probe-dsync-${k}`), constants.O_RDWR | constants.O_DSYNC)));
    const xs = [];
    await Promise.all(
      fhs.map(async (fh) => {
        for (let i = 0; i < n + warm; i++) {
          const t0 = now();
          await fh.write(buf, 0, bytes, i * bytes);
          if (i >= warm) xs.push((now() - t0) / 1000);
        }
      }),
    );
    await Promise.all(fhs.map((fh) => fh.close()));
    out.odsyncPwrite3Writers = stats(xs);
  }
  return out;
}

/**
 * Bare node:net ping-pong between this process and a child (setNoDelay, `bytes`-byte
 * messages, one in flight), µs: the round trip, and the one-way trip (sender's hrtime in
 * the message, compared at the receiver: the clock is shared).
 */
async function netProbe(bytes, n) {
  const net = await import('node:net');
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--pingpong-server', '--bytes', String(bytes)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const next = () => new Promise((resolve) => lines.once('line', (l) => resolve(JSON.parse(l))));
  const { port } = await next();
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  const warm = 200;
  const rtt = [];
  await new Promise((resolve) => {
    let got = 0;
    let i = 0;
    let t0 = 0n;
    const ping = () => {
      const b = Buffer.alloc(bytes);
      t0 = process.hrtime.bigint();
      b.writeBigUInt64BE(t0, 0);
      b.writeUInt32BE(i, 8);
      sock.write(b);
    };
    sock.on('data', (d) => {
      got += d.length;
      while (got >= bytes) {
        got -= bytes;
        const us = Number(process.hrtime.bigint() - t0) / 1000;
        if (i >= warm) rtt.push(us);
        if (++i === n + warm) return resolve();
        ping();
      }
    });
    ping();
  });
  sock.end();
  const oneWay = await next();
  child.stdin.end();
  return { rttUs: stats(rtt), oneWayUs: oneWay.oneWayUs };
}

async function pingpongServer() {
  const net = await import('node:net');
  const bytes = Number(opt('bytes', '100'));
  const oneWay = [];
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    let pending = Buffer.alloc(0);
    s.on('data', (d) => {
      const at = process.hrtime.bigint();
      pending = pending.length ? Buffer.concat([pending, d]) : d;
      while (pending.length >= bytes) {
        const msg = pending.subarray(0, bytes);
        pending = pending.subarray(bytes);
        if (msg.readUInt32BE(8) >= 200) oneWay.push(Number(at - msg.readBigUInt64BE(0)) / 1000);
        s.write(msg);
      }
    });
    s.on('end', () => {
      process.stdout.write(JSON.stringify({ oneWayUs: stats(oneWay) }) + '\n');
      s.end();
      server.close();
    });
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

/**
 * Per proposal (index i), from the leader's and followers' timestamps (ns, one clock):
 * the steps of the critical path. "The acking follower" is the one whose MsgAppResp for i
 * reached the leader first (with the leader, the quorum of 3); its steps are the ones on
 * the path. The quorum instant is the later of the leader's append durable and that ack
 * received (the driver takes the Ready that commits only after its own write).
 */
function analyzeTrace(result, traces) {
  const leader = result.leader;
  const L = Object.fromEntries(Object.entries(traces[leader]).map(([k, v]) => [k, new Map(v)]));
  const followers = Object.keys(traces).filter((id) => id !== leader);
  const F = Object.fromEntries(followers.map((f) => [f, Object.fromEntries(Object.entries(traces[f]).map(([k, v]) => [k, new Map(v)]))]));
  const steps = {};
  const push = (name, ns) => (steps[name] ??= []).push(ns / 1000);
  let missing = 0;
  let leaderBound = 0;
  const perFollower = Object.fromEntries(followers.map((f) => [f, { wire: [], fsyncHop: [], fsync: [], respHop: [], ackWire: [] }]));
  for (const [i, tP, tR] of result.samples) {
    const la0 = L.appendCall?.get(i);
    const la1 = L.appendDone?.get(i);
    const ap = L.applyCall?.get(i);
    const fs = followers.map((f) => {
      const sent = L.sendApp?.get(`${f}:${i}`);
      const recv = F[f].recvApp?.get(i);
      const fa0 = F[f].appendCall?.get(i);
      const fa1 = F[f].appendDone?.get(i);
      const rs = F[f].sendResp?.get(i);
      const rr = L.recvResp?.get(`${f}:${i}`);
      return { f, sent, recv, fa0, fa1, rs, rr };
    });
    const complete = fs.filter((x) => [x.sent, x.recv, x.fa0, x.fa1, x.rs, x.rr].every((t) => t !== undefined));
    if (la0 === undefined || la1 === undefined || ap === undefined || complete.length === 0) {
      missing++;
      continue;
    }
    for (const x of complete) {
      const p = perFollower[x.f];
      p.wire.push((x.recv - x.sent) / 1000);
      p.fsyncHop.push((x.fa0 - x.recv) / 1000);
      p.fsync.push((x.fa1 - x.fa0) / 1000);
      p.respHop.push((x.rs - x.fa1) / 1000);
      p.ackWire.push((x.rr - x.rs) / 1000);
    }
    const a = complete.reduce((m, x) => (x.rr < m.rr ? x : m));
    const quorum = Math.max(la1, a.rr);
    if (la1 >= a.rr) leaderBound++;
    push('hop', la0 - tP);
    push('leaderWrite', la1 - la0);
    push('appendToSend', a.sent - la0);
    push('wire', a.recv - a.sent);
    push('followerReadyHop', a.fa0 - a.recv);
    push('followerFsync', a.fa1 - a.fa0);
    push('followerRecvToDurable', a.fa1 - a.recv);
    push('respHop', a.rs - a.fa1);
    push('ackWire', a.rr - a.rs);
    push('followerPath', a.rr - la0);
    push('commitApply', ap - quorum);
    push('reply', tR - ap);
    push('total', tR - tP);
  }
  const n = result.samples.length - missing;
  return {
    leader,
    samples: n,
    missing,
    leaderBoundPct: n ? Math.round((leaderBound / n) * 100) : NaN,
    steps: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, stats(v)])),
    perFollower: Object.fromEntries(Object.entries(perFollower).map(([f, p]) => [f, Object.fromEntries(Object.entries(p).map(([k, v]) => [k, stats(v)]))])),
  };
}

function printTrace(r, json) {
  if (json) {
    console.log(JSON.stringify(r, null, 2));
    return;
  }
  const { analysis: a, floors, env } = r;
  const s = a.steps;
  const row = (what, k, note = '') => `| ${what} | ${s[k].p50} | ${s[k].p90} | ${s[k].p99} | ${note} |`;
  console.log(
    `\nRaft trace: 3 voters (separate processes, 127.0.0.1, ${r.transportKind} transport), O_DSYNC log, ${r.entryBytes}-byte entries, one proposer in the leader (${a.leader}), ${a.samples} sequential proposals after ${r.warmupProposals} (missing ${a.missing}); ${env.machine.cores} cores, load before floors ${floors.loadavgBefore.join(' ')}, at trace start ${env.machine.loadavg.join(' ')}, after ${env.loadavgAfter.join(' ')}; CPU % n1/n2/n3 ${['n1', 'n2', 'n3'].map((id) => env.cpuPctByVoter[id]).join('/')}, other ${env.otherCpuPct}%, ${env.wallS} s\n`,
  );
  console.log('| step | p50 µs | p90 µs | p99 µs | |');
  console.log('|---|---:|---:|---:|---|');
  console.log(row('propose() → leader append submitted (driver hop)', 'hop'));
  console.log(row('leader append submitted → durable (leader log write)', 'leaderWrite', 'in parallel with the follower path'));
  console.log(row('leader append submitted → MsgApp send()', 'appendToSend'));
  console.log(row('leader MsgApp send() → follower onMessage (wire)', 'wire', 'acking follower'));
  console.log(row('follower receive → append submitted (follower Ready hop)', 'followerReadyHop'));
  console.log(row('follower append submitted → durable (follower fsync)', 'followerFsync'));
  console.log(row('follower receive → append durable (both)', 'followerRecvToDurable'));
  console.log(row('follower durable → MsgAppResp send()', 'respHop'));
  console.log(row('MsgAppResp send() → leader onMessage (ack wire)', 'ackWire'));
  console.log(row('leader append submitted → first ack received (follower path)', 'followerPath', 'vs leader log write'));
  console.log(row('quorum (max of leader durable, first ack) → applied on leader (commit + apply)', 'commitApply'));
  console.log(row('applied → propose() resolves (reply)', 'reply'));
  console.log(row('total propose() → resolved', 'total'));
  console.log(`\nleader's own write was the later of the two (leader-bound) in ${a.leaderBoundPct}% of proposals`);
  for (const [f, p] of Object.entries(a.perFollower))
    console.log(`follower ${f} (all its samples): wire p50 ${p.wire.p50}, Ready hop ${p.fsyncHop.p50}, fsync ${p.fsync.p50}, resp hop ${p.respHop.p50}, ack wire ${p.ackWire.p50} µs`);
  const d = floors.disk;
  console.log(`\nfloors (measured first, same run): ${r.entryBytes}-byte write, p50/p90/p99 µs — O_DSYNC pwrite via fs/promises ${d.odsyncPwriteAsync.p50}/${d.odsyncPwriteAsync.p90}/${d.odsyncPwriteAsync.p99}; O_DSYNC writeSync ${d.odsyncPwriteSync.p50}/${d.odsyncPwriteSync.p90}/${d.odsyncPwriteSync.p99}; write + fdatasync via fs/promises ${d.writeFdatasyncAsync.p50}/${d.writeFdatasyncAsync.p90}/${d.writeFdatasyncAsync.p99}; O_DSYNC pwrite, 3 files written at once (as 3 voters) ${d.odsyncPwrite3Writers.p50}/${d.odsyncPwrite3Writers.p90}/${d.odsyncPwrite3Writers.p99}`);
  console.log(`node:net ping-pong (${r.entryBytes} bytes, two processes): round trip ${floors.net.rttUs.p50}/${floors.net.rttUs.p90}/${floors.net.rttUs.p99} µs, one way ${floors.net.oneWayUs.p50}/${floors.net.oneWayUs.p90}/${floors.net.oneWayUs.p99} µs`);
}

async function parent() {
  const levels = opt('concurrency', '1,16,256').split(',').map(Number);
  const seconds = Number(opt('seconds', '5'));
  const warmup = Number(opt('warmup', '1'));
  const entryBytes = Number(opt('entry-bytes', '100'));
  const tickMs = Number(opt('tick-ms', '100'));
  const json = flag('json');
  const cpuProf = flag('cpu-prof');
  const base = mkdtempSync(path.join(opt('dir', '/tmp'), 'dfs-bench-raft-'));
  const profDir = cpuProf ? mkdtempSync(path.join(opt('dir', '/tmp'), 'dfs-bench-raft-prof-')) : null;
  const nodeArgs = cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  const log = (s) => process.stderr.write(s + '\n');

  const snapshotEvery = opt('snapshot-every', null);
  const transportKind = opt('transport', 'tcp');
  if (transportKind !== 'grpc' && transportKind !== 'tcp') throw new Error(`--transport tcp|grpc, not ${transportKind}`);
  const trace = flag('trace');
  const voterArgs = ['--tick-ms', String(tickMs), '--transport', transportKind, ...(snapshotEvery ? ['--snapshot-every', snapshotEvery] : []), ...(trace ? ['--trace'] : [])];
  // The floors, measured before the voters start (so that they do not compete with them).
  const floors = trace ? { loadavgBefore: loadavg(), disk: await diskProbe(base, entryBytes, 2000), net: await netProbe(entryBytes, 2000) } : null;
  const voters = VOTERS.map((id) => new Voter(id, path.join(base, id), nodeArgs, voterArgs));
  const cleanup = async () => {
    await Promise.all(voters.map((v) => v.stop()));
    rmSync(base, { recursive: true, force: true });
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    for (const v of voters) if (!v.exited) process.kill(v.pid, 'SIGKILL');
    rmSync(base, { recursive: true, force: true });
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const results = [];
  let leader = null;
  try {
    const listening = await Promise.all(voters.map((v) => v.next('listening', 30_000, (e) => e.event === 'listening', true)));
    const peers = Object.fromEntries(listening.map((e) => [e.id, `127.0.0.1:${e.port}`]));
    for (const v of voters) v.send({ cmd: 'start', peers });
    await Promise.all(voters.map((v) => v.next('started', 30_000, (e) => e.event === 'started', true)));
    // A leader that every voter agrees on.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const views = voters.map((v) => [...v.events].reverse().find((e) => e.event === 'leader')?.leader ?? null);
      if (views[0] && views.every((x) => x === views[0])) {
        leader = voters.find((v) => v.id === views[0]);
        break;
      }
      if (Date.now() > deadline) throw new Error(`no agreed leader within 30 s (views: ${views.join(', ')})`);
      await new Promise((r) => setTimeout(r, 50));
    }
    log(`leader: ${leader.id} (pid ${leader.pid}); proposers run in its process`);
    const machine = { cores: (await import('node:os')).cpus().length, node: process.version, loadavg: (await import('node:os')).loadavg().map((x) => +x.toFixed(2)) };
    if (trace) {
      const count = Number(opt('count', '2000'));
      const warmupProposals = Number(opt('warmup-proposals', '500'));
      const got = leader.next('result', 300_000, (e) => e.event === 'result');
      const cpu0 = { at: performance.now(), s: voters.map((v) => cpuSeconds(v.pid)), machine: machineBusySeconds() };
      leader.send({ cmd: 'trace', warmup: warmupProposals, count, entryBytes });
      const { result } = await got;
      const cpu1 = { at: performance.now(), s: voters.map((v) => cpuSeconds(v.pid)), machine: machineBusySeconds() };
      if (result.error) throw new Error(result.error);
      const dumps = await Promise.all(
        voters.map((v) => {
          const p = v.next('trace', 60_000, (e) => e.event === 'trace');
          v.send({ cmd: 'trace-dump' });
          return p;
        }),
      );
      const wallS = (cpu1.at - cpu0.at) / 1000;
      const votersS = voters.reduce((sum, v, i) => sum + (cpu1.s[i] - cpu0.s[i]), 0);
      const env = {
        machine,
        loadavgAfter: loadavg(),
        cpuPctByVoter: Object.fromEntries(voters.map((v, i) => [v.id, Math.round(((cpu1.s[i] - cpu0.s[i]) / wallS) * 100)])),
        otherCpuPct: Math.max(0, Math.round(((cpu1.machine - cpu0.machine - votersS) / wallS) * 100)),
        wallS: +wallS.toFixed(2),
      };
      const analysis = analyzeTrace(result, Object.fromEntries(dumps.map((d) => [d.id, d.trace])));
      await cleanup();
      printTrace({ analysis, floors, env, transportKind, entryBytes, count, warmupProposals, refusals: result.refusals }, json);
      return;
    }

    for (const concurrency of levels) {
      const cpu = {};
      const seen = leader.events.length;
      const onWindow = leader.next('window start', (warmup + seconds) * 1000 + 30_000, (e) => e.event === 'window' && e.phase === 'start').then(() => {
        cpu.start = { at: performance.now(), s: voters.map((v) => cpuSeconds(v.pid)), machine: machineBusySeconds() };
        // Both events may arrive in one read: look at what came since the run began, too.
        const ended = (e) => e.event === 'window' && e.phase === 'end' && leader.events.indexOf(e) >= seen;
        return leader.next('window end', seconds * 1000 + 30_000, ended, true);
      });
      const got = leader.next('result', (warmup + seconds) * 1000 + 60_000, (e) => e.event === 'result');
      leader.send({ cmd: 'run', concurrency, warmupMs: warmup * 1000, durationMs: seconds * 1000, entryBytes });
      await onWindow;
      cpu.end = { at: performance.now(), s: voters.map((v) => cpuSeconds(v.pid)), machine: machineBusySeconds() };
      const { result } = await got;
      if (result.error) throw new Error(result.error);
      const wallS = (cpu.end.at - cpu.start.at) / 1000;
      result.windowTimerLateMs = leader.events.slice(seen).filter((e) => e.event === 'window').map((e) => e.lateMs);
      result.cpuPctByVoter = Object.fromEntries(voters.map((v, i) => [v.id, Math.round(((cpu.end.s[i] - cpu.start.s[i]) / wallS) * 100)]));
      // CPU used by everything else on the machine meanwhile (other work shares the cores).
      const votersS = voters.reduce((sum, v, i) => sum + (cpu.end.s[i] - cpu.start.s[i]), 0);
      result.otherCpuPct = Math.max(0, Math.round(((cpu.end.machine - cpu.start.machine - votersS) / wallS) * 100));
      results.push(result);
      if (!json) log(`  ${concurrency} proposers: ${result.commitsPerSec} commits/s, p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms`);
      await new Promise((r) => setTimeout(r, 500));
    }

    const lead = leader.id;
    await cleanup();
    let profile = null;
    if (profDir) {
      const file = readdirSync(profDir).find((f) => f.includes(`.${leader.pid}.`));
      if (!file) profile = { error: `no profile of pid ${leader.pid} in ${profDir}` };
      else {
        const full = path.join(profDir, file);
        profile = { file: full, byLevel: results.map((r) => ({ concurrency: r.concurrency, ...summarizeProfile(full, r.windowMonoUs) })) };
      }
    }

    if (json) {
      console.log(JSON.stringify({ voters: 3, fsync: true, transport: transportKind, leader: lead, seconds, warmupSeconds: warmup, entryBytes, tickMs, snapshotEvery: snapshotEvery ?? 'default', machine, results, profile }, null, 2));
    } else {
      console.log(`\nRaft: 3 voters (separate processes, 127.0.0.1, ${transportKind} transport), fdatasync on, ${entryBytes}-byte entries, ${seconds} s per level after ${warmup} s warm-up; proposers in the leader (${lead}); ${machine.cores} cores, load ${machine.loadavg.join(' ')}\n`);
      console.log('| proposers | commits/s | p50 ms | p90 ms | p99 ms | max ms | leader fsyncs/s | entries/fsync | CPU % n1/n2/n3 | other CPU % | leader ELD p99 ms |');
      console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|');
      for (const r of results) {
        const cpuPct = VOTERS.map((id) => r.cpuPctByVoter[id]).join('/');
        const refused = Object.keys(r.refusals).length ? ` (refused: ${JSON.stringify(r.refusals)})` : '';
        console.log(
          `| ${r.concurrency} | ${r.commitsPerSec}${refused} | ${r.latencyMs.p50} | ${r.latencyMs.p90} | ${r.latencyMs.p99} | ${r.latencyMs.max} | ${r.leaderFsyncsPerSec} | ${r.entriesPerFsync} | ${cpuPct} | ${r.otherCpuPct} | ${r.eventLoopDelayMs.p99} |`,
        );
      }
      const at256 = results.find((r) => r.concurrency === 256);
      const at16 = results.find((r) => r.concurrency === 16);
      if (at256) console.log(`\ntarget ≥ 20000 commits/s at 256: ${at256.commitsPerSec >= 20_000 ? 'met' : 'MISSED'} (${at256.commitsPerSec})`);
      if (at16) console.log(`target p99 < 10 ms at 16: ${at16.latencyMs.p99 < 10 ? 'met' : 'MISSED'} (${at16.latencyMs.p99} ms)`);
      if (profile && !profile.error) {
        console.log(`\nleader cpu profile: ${profile.file} (kept; remove it when done)`);
        for (const p of profile.byLevel) {
          console.log(`\n${p.concurrency} proposers, measuring window only (${p.totalMs} ms sampled), by self time:`);
          for (const f of p.functions) console.log(`  ${String(f.pct).padStart(5)}%  ${String(f.ms).padStart(6)} ms  ${f.what}`);
          console.log('by file / package:');
          for (const f of p.files.slice(0, 12)) console.log(`  ${String(f.pct).padStart(5)}%  ${String(f.ms).padStart(6)} ms  ${f.what}`);
        }
      } else if (profile) console.log(profile.error);
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
}

if (flag('child')) await voter();
else if (flag('pingpong-server')) await pingpongServer();
else if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await parent();
