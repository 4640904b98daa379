#!/usr/bin/env node
// Leader failover benchmark (issue #4, "Speed"): a cluster of 3 real `dfs daemon`
// processes on 127.0.0.1 (no mounts). Each run finds the leader, kills it with SIGKILL,
// and measures the time from the kill until the first namespace write (a mkdir of a
// unique name, sent to the surviving nodes, which forward it to whichever node leads)
// has committed and been answered. Then the killed node is restarted with the same
// arguments and the next run waits until it has caught up with the leader's commit index.
//
// Probes: from the kill on, a new mkdir starts every --probe-every ms (default 25),
// alternating between the two survivors, each on its own client lane; the first one
// answered OK ends the measurement. A survivor holds a call while it knows no leader and
// retries it (20 ms backoff at first), so the resolution is a few tens of ms. Alongside,
// the survivors' `raft status` is polled every 50 ms to split the time into "new leader
// elected" and the rest.
//
// Runs the compiled code: `npm run bench:raft-failover` builds first.
// Usage: node scripts/bench-raft-failover.mjs [--runs 20] [--raft-tick MS] [--json]
//        [--probe-every 25] [--dir /tmp]
//   --raft-tick defaults to the daemon's default (raftTickMs in src/daemon/config.ts).
// Daemons are stopped by pid (SIGTERM, then SIGKILL); the temp dir is removed at the end.
/* global fetch, AbortSignal */
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { clearTimeout, setTimeout } from 'node:timers';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => pathToFileURL(path.join(root, 'dist', p)).href;
const CLI = path.join(root, 'dist/bin/dfs.js');
const { MetaClient } = await import(dist('src/meta/grpc.js'));
const { ROOT_INO } = await import(dist('src/meta/types.js'));
const { validateConfig } = await import(dist('src/daemon/config.js'));

function flag(name) {
  return process.argv.includes(`--${name}`);
}

function opt(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stderr.write(s + '\n');

/** Poll `check` until true, at most `ms`; throws naming `what`. */
async function waitFor(what, ms, check, everyMs = 100) {
  const end = Date.now() + ms;
  let last = null;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    await sleep(everyMs);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  // Nearest rank: with 20 samples p99 and max are the same sample.
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)];
}

async function withTimeout(what, ms, p) {
  let timer;
  try {
    return await Promise.race([p, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

class Node {
  constructor(id, base, grpcPort, httpPort) {
    this.id = id;
    this.dataDir = path.join(base, `data-${id}`);
    this.logFile = path.join(base, `${id}.log`);
    this.grpc = `127.0.0.1:${grpcPort}`;
    this.httpPort = httpPort;
    this.child = null;
    this.exitP = null;
  }

  get pid() {
    return this.child?.pid ?? null;
  }

  alive() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  spawn(initialCluster, tickMs) {
    mkdirSync(this.dataDir, { recursive: true });
    const fd = openSync(this.logFile, 'a');
    const args = [CLI, 'daemon', '--data-dir', this.dataDir, '--listen', this.grpc, '--http', `127.0.0.1:${this.httpPort}`, '--node-id', this.id];
    args.push('--initial-cluster', initialCluster, '--raft-tick', String(tickMs), '--log-level', 'warn');
    this.child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const child = this.child;
    this.exitP = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  logTail() {
    try {
      return readFileSync(this.logFile, 'utf8').slice(-2000);
    } catch {
      return '';
    }
  }

  async ready() {
    if (!this.alive()) throw new Error(`${this.id} exited (${this.child?.exitCode ?? this.child?.signalCode}): ${this.logTail()}`);
    try {
      const r = await fetch(`http://127.0.0.1:${this.httpPort}/readyz`, { signal: AbortSignal.timeout(1000) });
      return r.status === 200;
    } catch {
      return false;
    }
  }

  killNow() {
    if (this.alive()) process.kill(this.child.pid, 'SIGKILL');
  }

  /** SIGTERM, then SIGKILL after `ms`; by pid. */
  async stop(ms = 10_000) {
    if (!this.alive()) return;
    process.kill(this.child.pid, 'SIGTERM');
    const t = sleep(ms).then(() => 'timeout');
    if ((await Promise.race([this.exitP, t])) === 'timeout' && this.alive()) {
      process.kill(this.child.pid, 'SIGKILL');
      await Promise.race([this.exitP, sleep(3000)]);
    }
  }
}

async function main() {
  const runs = Number(opt('runs', '20'));
  const defaultTickMs = validateConfig({ dataDir: '/nonexistent', listen: '127.0.0.1:1' }, 'server').raftTickMs;
  const tickMs = Number(opt('raft-tick', String(defaultTickMs)));
  const probeEveryMs = Number(opt('probe-every', '25'));
  const json = flag('json');
  const base = mkdtempSync(path.join(opt('dir', '/tmp'), 'dfs-bench-failover-'));

  const ports = new Set();
  while (ports.size < 6) ports.add(await freePort());
  const [p1, p2, p3, h1, h2, h3] = [...ports];
  const nodes = [new Node('n1', base, p1, h1), new Node('n2', base, p2, h2), new Node('n3', base, p3, h3)];
  const initialCluster = nodes.map((n) => `${n.id}=${n.grpc}`).join(',');
  const byId = (id) => nodes.find((n) => n.id === id);

  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    for (const n of nodes) n.killNow();
    rmSync(base, { recursive: true, force: true });
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  /** Start (or restart) `list`, respawning on a lost HTTP port race, until /readyz. */
  const start = async (list) => {
    for (const n of list) n.spawn(initialCluster, tickMs);
    let portRetries = 0;
    await waitFor(`${list.map((n) => n.id).join(', ')} ready`, 60_000, async () => {
      for (const n of list) {
        if (n.alive()) continue;
        if (/EADDRINUSE|address already in use/.test(n.logTail()) && portRetries++ < 5) {
          n.httpPort = await freePort();
          n.spawn(initialCluster, tickMs);
          continue;
        }
        throw new Error(`${n.id} exited: ${n.logTail()}`);
      }
      return (await Promise.all(list.map((n) => n.ready()))).every(Boolean);
    });
  };

  const clients = new Map();
  const client = async (n) => {
    let c = clients.get(n.id);
    if (!c) {
      c = await MetaClient.connect(n.grpc, { deadlineMs: 10_000, attempts: 1 });
      clients.set(n.id, c);
    }
    return c;
  };
  const dropClients = () => {
    for (const c of clients.values()) c.close();
    clients.clear();
  };
  const status = async (n) => withTimeout(`raft status of ${n.id}`, 3000, (await client(n)).raftStatus());

  /** The leader as a live node that says it leads, with every live node agreeing. */
  const findLeader = async () => {
    let found = null;
    await waitFor('an agreed leader', 30_000, async () => {
      const live = nodes.filter((n) => n.alive());
      const st = await Promise.all(live.map((n) => status(n).catch(() => null)));
      const leaders = st.filter((s) => s && s.role === 'leader');
      if (leaders.length !== 1 || !st.every((s) => s && s.leader === leaders[0].nodeId)) return false;
      found = { node: byId(leaders[0].nodeId), status: leaders[0] };
      return true;
    });
    return found;
  };

  let probeSeq = 0;
  const mkdir = async (n, name) => (await client(n)).execute({ op: 'mkdir', parent: ROOT_INO, name, mode: 0o755, caller: { uid: 0, gid: 0 }, now: { sec: Math.floor(Date.now() / 1000), nsec: 0 } });

  const samples = [];
  try {
    log(`starting 3 daemons (raft tick ${tickMs} ms; daemon default ${defaultTickMs} ms) in ${base}`);
    await start(nodes);
    for (let run = 1; run <= runs; run++) {
      // Fresh clients each run: a channel to a node that was killed may sit in grpc-js's
      // reconnect backoff.
      dropClients();
      const { node: leader, status: before } = await findLeader();
      const survivors = nodes.filter((n) => n !== leader);
      // Everyone caught up, and the survivors' paths to the leader warm.
      for (const n of survivors) {
        const r = await mkdir(n, `warm-${run}-${n.id}`);
        if (!r.ok) throw new Error(`warm-up mkdir through ${n.id} failed: errno ${r.errno}`);
      }
      await Promise.all(nodes.map((n) => status(n)));

      // ---- the measurement
      const killedAt = performance.now();
      leader.killNow();
      let committedAt = null;
      let electedAt = null;
      let newLeader = null;
      const failures = {};
      const inflight = [];
      const stopAt = killedAt + 30_000;
      const probe = (n) => {
        const name = `failover-${run}-${++probeSeq}`;
        const p = mkdir(n, name).then(
          (r) => {
            if (r.ok) committedAt ??= performance.now();
            else failures[`errno ${r.errno}`] = (failures[`errno ${r.errno}`] ?? 0) + 1;
          },
          (e) => void (failures[e.message] = (failures[e.message] ?? 0) + 1),
        );
        inflight.push(p);
      };
      const poll = async () => {
        while (electedAt === null && performance.now() < stopAt) {
          const st = await Promise.all(survivors.map((n) => status(n).catch(() => null)));
          const l = st.find((s) => s && s.role === 'leader' && s.term > before.term);
          if (l) {
            electedAt = performance.now();
            newLeader = l.nodeId;
            return;
          }
          await sleep(50);
        }
      };
      const polling = poll();
      for (let k = 0; committedAt === null && performance.now() < stopAt; k++) {
        probe(survivors[k % 2]);
        await sleep(probeEveryMs);
      }
      await withTimeout('outstanding probes', 30_000, Promise.all(inflight)).catch(() => undefined);
      await polling;
      if (committedAt === null) throw new Error(`run ${run}: no write committed within 30 s of killing ${leader.id} (${JSON.stringify(failures)})`);
      const ms = committedAt - killedAt;
      const electedMs = electedAt === null ? null : electedAt - killedAt;
      samples.push({ run, killed: leader.id, newLeader, termBefore: before.term, msToFirstCommit: +ms.toFixed(1), msToLeaderSeen: electedMs === null ? null : +electedMs.toFixed(1), probes: inflight.length, probeFailures: failures });
      log(`run ${run}: killed ${leader.id} (term ${before.term}) -> ${newLeader ?? '?'} leads; first commit after ${ms.toFixed(0)} ms (leader seen at ${electedMs === null ? '?' : electedMs.toFixed(0)} ms)`);

      // ---- restart the killed node and wait until it has caught up
      await leader.exitP;
      await start([leader]);
      dropClients();
      let seen = '';
      await waitFor(`${leader.id} to catch up`, 60_000, async () => {
        const { status: ls } = await findLeader();
        const back = await status(leader);
        const member = (ls.members ?? []).find((m) => m.nodeId === leader.id);
        seen = `leader ${ls.nodeId} commit ${ls.commit}; ${leader.id} applied ${back.applied}, as member: ${JSON.stringify(member)}`;
        return back.applied >= ls.commit && member !== undefined && member.recentActive && member.state === 'replicate' && member.match >= ls.commit;
      }, 200).catch((e) => {
        throw new Error(`${e.message}; last seen: ${seen}`);
      });
    }
  } finally {
    dropClients();
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(base, { recursive: true, force: true });
  }

  const sorted = samples.map((s) => s.msToFirstCommit).sort((a, b) => a - b);
  const elected = samples.map((s) => s.msToLeaderSeen).filter((x) => x !== null).sort((a, b) => a - b);
  const summary = {
    runs: samples.length,
    raftTickMs: tickMs,
    daemonDefaultRaftTickMs: defaultTickMs,
    electionTimeoutMs: `${10 * tickMs}-${20 * tickMs}`,
    probeEveryMs,
    msToFirstCommit: { p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1], min: sorted[0] },
    msToLeaderSeen: { p50: percentile(elected, 0.5), p90: percentile(elected, 0.9), p99: percentile(elected, 0.99), max: elected[elected.length - 1] },
    targetP99Ms: 3000,
    met: percentile(sorted, 0.99) < 3000,
    machine: { cores: os.cpus().length, node: process.version, loadavg: os.loadavg().map((x) => +x.toFixed(2)) },
  };
  if (json) {
    console.log(JSON.stringify({ summary, samples }, null, 2));
  } else {
    console.log(`\nLeader kill -9 -> first committed write, ${samples.length} runs, 3 dfs daemons, raft tick ${tickMs} ms (daemon default ${defaultTickMs} ms)`);
    console.log('| | p50 ms | p90 ms | p99 ms | max ms |');
    console.log('|---|---:|---:|---:|---:|');
    const f = summary.msToFirstCommit;
    const e = summary.msToLeaderSeen;
    console.log(`| kill -> first write committed | ${f.p50} | ${f.p90} | ${f.p99} | ${f.max} |`);
    console.log(`| kill -> new leader seen (status poll, 50 ms) | ${e.p50} | ${e.p90} | ${e.p99} | ${e.max} |`);
    console.log(`\ntarget p99 < 3000 ms: ${summary.met ? 'met' : 'MISSED'} (${f.p99} ms)`);
  }
}

await main();
