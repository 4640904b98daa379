// Linearizability of the namespace in a real 3-daemon Raft cluster under faults.
//
// Five concurrent clients send namespace operations over gRPC (MetaClient) to random
// nodes (a follower forwards to the leader), on a few names so that they conflict often,
// while the test kill -9s the leader, kill -9s a follower, SIGSTOPs the leader until
// the others elect a new one (then SIGCONT: the deposed leader must not answer from its
// old state), and kill -9s the leader and a follower again, restarting every killed node
// (snapshots every 300 entries, so a restarted node sometimes catches up by
// InstallSnapshot). Each fault step waits for the clients to make progress. Every call is
// recorded (invoke/complete, performance.now()) and the history is checked against the
// path-based namespace model with the Porcupine-style checker. A self-check feeds the
// checker doctored copies of the recorded history (one stat's answer changed) and
// requires it to reject them, so the test asserts something that could fail.
//
// How the inode API maps onto the path model: the model's "/" is the root inode; /p and
// /q are directories created once (recorded as the history's first operations) that are
// never removed or moved (the only operations naming them, rmdir(/p) and
// rename(/p, /q), always fail with ENOTEMPTY because /p/reg and /q/reg never go away),
// so their inodes stand for their paths and every operation is one call:
// mkdir/create/unlink/rmdir/rename = one Execute, stat = one Lookup. File contents are
// only written and read on /p/reg and /q/reg (never renamed or unlinked, so the inode is
// the path): write = one commitWrite of an inline chunk (all values have one length, so a
// write replaces the whole content), read = one GetChunks. A call that fails without an
// answer (EIO, ETIMEDOUT: node killed, leader lost, deadline) may or may not have taken
// effect: it is recorded as never completed.
//
// Daemons are started, killed, stopped and resumed by pid; the temp dir is removed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MetaClient } from '../../src/meta/grpc.js';
import { ROOT_INO, S_IFDIR, S_IFMT, S_IFREG } from '../../src/meta/types.js';
import { checkOperations, HistoryRecorder, type CheckResult } from '../../src/cluster/raft/lincheck/checker.js';
import { namespaceModel, type NsInput, type NsOutput } from '../../src/cluster/raft/lincheck/models.js';
import { seededRandom } from '../prng.js';
import { describeOutcomes, doctorableStats, flipStat, nowTs, outcome, parentIno, pick, Unexpected, type History, type Layout, type Outcome } from './ns-history.js';
import { waitFor, withDeadline } from './harness.js';
import { RaftCluster } from './raft-harness.js';

/** Small enough that restarted nodes catch up by InstallSnapshot at least sometimes. */
const SNAPSHOT_EVERY = '300';
const CLIENTS = 5;
/** Per call: long enough to ride out an election (10-20 ticks), short enough to move on from a dead node. */
const OP_DEADLINE_MS = 4000;
/** Completed operations before the first fault, and after each fault step. */
const WARMUP_OPS = 120;
const PHASE_OPS = 60;
/** Think time between one client's operations: keeps the history a few hundred operations per fault (it orders nothing). */
const THINK_MIN_MS = 20;
const THINK_MAX_MS = 80;
/** Bounds the history (the checker's cost grows with it); a runaway workload fails here. */
const MAX_OPS = 5000;
const CHECK_TIMEOUT_MS = 30_000;
/** Of the calls that would go to a SIGSTOPped node, the share that does (the rest go to a running one). */
const PAUSED_NODE_SHARE = 0.3;
const NAMES = ['a', 'b', 'c'];
const DIRS = ['/p', '/q'];
const PATHS = DIRS.flatMap((d) => NAMES.map((n) => `${d}/${n}`));
const REGS = DIRS.map((d) => `${d}/reg`);
/** Every written value has this length, so a write of chunk 0 replaces the whole content. */
const VALUE_LEN = 6;

// ------------------------------------------------------------------ operations

const CALLER = { uid: 0, gid: 0 };
const OK: NsOutput = { ok: true };

/** One model operation as one meta call. */
async function perform(c: MetaClient, layout: Layout, input: NsInput): Promise<Outcome> {
  const now = nowTs();
  switch (input.op) {
    case 'mkdir': {
      const { parent, name } = parentIno(layout, input.path);
      return outcome(await c.execute({ op: 'mkdir', parent, name, mode: 0o755, caller: CALLER, now }), () => OK);
    }
    case 'create': {
      const { parent, name } = parentIno(layout, input.path);
      return outcome(await c.execute({ op: 'mknod', parent, name, mode: S_IFREG | 0o644, rdev: 0, caller: CALLER, now }), () => OK);
    }
    case 'unlink':
    case 'rmdir': {
      const { parent, name } = parentIno(layout, input.path);
      return outcome(await c.execute({ op: input.op, parent, name, now }), () => OK);
    }
    case 'rename': {
      const from = parentIno(layout, input.from);
      const to = parentIno(layout, input.to);
      return outcome(await c.execute({ op: 'rename', parent: from.parent, name: from.name, newParent: to.parent, newName: to.name, flags: 0, now }), () => OK);
    }
    case 'stat': {
      const { parent, name } = parentIno(layout, input.path);
      return outcome(await c.lookup(parent, name), (attr): NsOutput => {
        const type = attr.mode & S_IFMT;
        if (type === S_IFDIR) return { ok: true, type: 'dir' };
        if (type === S_IFREG) return { ok: true, type: 'file' };
        throw new Unexpected(`stat(${input.path}) found mode ${attr.mode.toString(8)}`);
      });
    }
    case 'write': {
      const ino = layout.regs.get(input.path)!;
      const inline = Buffer.from(input.value, 'latin1');
      const chunks = [{ index: 0, chunkId: 0, sizeBytes: inline.length, placement: [], inline }];
      return outcome(await c.execute({ op: 'commitWrite', ino, chunks, sizeBytes: inline.length, mtime: now, now }), () => OK);
    }
    case 'read': {
      const ino = layout.regs.get(input.path)!;
      return outcome(await c.getChunks(ino, 0, 1), (chunks): NsOutput => {
        if (chunks.length === 0) return { ok: true, value: '' };
        if (chunks.length !== 1 || chunks[0].inline === undefined) throw new Unexpected(`read(${input.path}) got ${JSON.stringify(chunks)}`);
        return { ok: true, value: chunks[0].inline.toString('latin1') };
      });
    }
  }
}

/** A random operation, weighted towards conflicts on few names. */
function randomOp(r: () => number, client: number, seq: () => number): NsInput {
  const x = r();
  if (x < 0.2) return { op: 'stat', path: pick(r, PATHS) };
  if (x < 0.3) return { op: 'mkdir', path: pick(r, PATHS) };
  if (x < 0.42) return { op: 'create', path: pick(r, PATHS) };
  if (x < 0.52) return { op: 'unlink', path: pick(r, PATHS) };
  if (x < 0.6) return { op: 'rmdir', path: pick(r, PATHS) };
  if (x < 0.76) return { op: 'rename', from: pick(r, PATHS), to: pick(r, PATHS) };
  // Onto a non-empty directory: ENOENT, EISDIR or ENOTEMPTY depending on the source.
  if (x < 0.79) return { op: 'rename', from: pick(r, PATHS), to: pick(r, DIRS) };
  if (x < 0.8) return { op: 'rmdir', path: pick(r, DIRS) };
  if (x < 0.81) return { op: 'rename', from: DIRS[0], to: DIRS[1] };
  if (x < 0.9) return { op: 'write', path: pick(r, REGS), value: `${client}${String(seq()).padStart(VALUE_LEN - 1, '0')}` };
  return { op: 'read', path: pick(r, REGS) };
}

// ------------------------------------------------------------------ the test

describe('raft cluster of 3: namespace histories under kill -9, SIGSTOP and restarts are linearizable', () => {
  const c = new RaftCluster('lincheck', 3, [], ['--raft-snapshot-every', SNAPSHOT_EVERY]);
  const seed = Number(process.env.DFS_LINCHECK_SEED ?? Math.floor(Math.random() * 2 ** 31));
  /** Per workload client, one MetaClient per node (in c.nodes order). */
  const workload: MetaClient[][] = [];
  let setup: MetaClient | null = null;
  let recorded: History | null = null;

  beforeAll(async () => {
    await c.create();
    await c.start();
  });

  afterAll(async () => {
    setup?.close();
    for (const list of workload) for (const m of list) m.close();
    await c.teardown();
  });

  it('concurrent clients on all nodes, leader and follower crashes, a paused leader: the history checks ok', async () => {
    const t0 = performance.now();
    const rec = new HistoryRecorder<NsInput, NsOutput>(MAX_OPS, () => performance.now());
    const layout: Layout = { dirs: new Map(), regs: new Map() };
    const unexpected: string[] = [];
    let completed = 0;
    let unanswered = 0;
    const unansweredWhy = new Map<string, number>();

    // Setup, recorded: the model starts from an empty namespace.
    const { id: firstLeader } = await c.agreedLeader();
    setup = await MetaClient.connect(c.node(firstLeader).grpc, { deadlineMs: OP_DEADLINE_MS, attempts: 3, backoffMs: 50 });
    const now = nowTs();
    for (const d of DIRS) {
      const id = rec.invoke('setup', { op: 'mkdir', path: d });
      const r = await setup.execute({ op: 'mkdir', parent: ROOT_INO, name: d.slice(1), mode: 0o755, caller: CALLER, now });
      if (!r.ok) throw new Error(`setup mkdir ${d}: errno ${r.errno}`);
      rec.complete(id, OK);
      layout.dirs.set(d, r.value.ino);
    }
    for (const f of REGS) {
      const id = rec.invoke('setup', { op: 'create', path: f });
      const { parent, name } = parentIno(layout, f);
      const r = await setup.execute({ op: 'mknod', parent, name, mode: S_IFREG | 0o644, rdev: 0, caller: CALLER, now });
      if (!r.ok) throw new Error(`setup create ${f}: errno ${r.errno}`);
      rec.complete(id, OK);
      layout.regs.set(f, r.value.ino);
    }

    // Nodes the clients may send to: all but the killed ones (a paused node stays: what
    // it answers after SIGCONT is part of the test).
    const down = new Set<string>();
    let stop = false;
    const master = seededRandom(seed);
    console.log(`lincheck seed ${seed} (DFS_LINCHECK_SEED to replay the choice of operations)`);
    for (let i = 0; i < CLIENTS; i++) {
      workload.push(await Promise.all(c.nodes.map((n) => MetaClient.connect(n.grpc, { deadlineMs: OP_DEADLINE_MS, attempts: 2, backoffMs: 50 }))));
    }
    const runClient = async (i: number, r: () => number): Promise<void> => {
      let writes = 0;
      const clients = workload[i];
      while (!stop) {
        const input = randomOp(r, i, () => ++writes);
        const up = c.nodes.map((_, k) => k).filter((k) => !down.has(c.nodes[k].id));
        let nodeIdx = pick(r, up);
        // A call to a stopped node waits for SIGCONT or its deadline: send only some there,
        // so that the clients keep the others busy meanwhile.
        if (c.paused.has(c.nodes[nodeIdx].id) && r() < 1 - PAUSED_NODE_SHARE) nodeIdx = pick(r, up.filter((k) => !c.paused.has(c.nodes[k].id)));
        const id = rec.invoke(`c${i}@${c.nodes[nodeIdx].id}`, input);
        let out: Outcome;
        try {
          out = await perform(clients[nodeIdx], layout, input);
        } catch (e) {
          if (!(e instanceof Unexpected)) throw e;
          unexpected.push(`${namespaceModel.describeOperation!(input, undefined)} via ${c.nodes[nodeIdx].id}: ${e.message}`);
          out = { answered: false, why: 'unexpected answer' };
        }
        if (out.answered) {
          rec.complete(id, out.output);
          completed++;
        } else {
          unanswered++;
          unansweredWhy.set(out.why, (unansweredWhy.get(out.why) ?? 0) + 1);
        }
        // Pacing, not synchronization: see THINK_MIN_MS.
        await new Promise((res) => setTimeout(res, THINK_MIN_MS + r() * (THINK_MAX_MS - THINK_MIN_MS)));
      }
    };
    const clientSeeds = Array.from({ length: CLIENTS }, () => Math.floor(master() * 2 ** 31));
    const running = clientSeeds.map((s, i) => runClient(i, seededRandom(s)));
    // A client that throws (a bug in this test) must stop the run, not hang it.
    let clientError: unknown = null;
    const allDone = Promise.all(running).catch((e: unknown) => {
      clientError = e;
      stop = true;
    });

    /** Wait for `n` more answered operations: the cluster makes progress in this configuration. */
    const progress = async (n: number, what: string): Promise<void> => {
      const target = completed + n;
      await waitFor(`${n} operations answered ${what}`, 30_000, () => {
        if (clientError !== null) throw clientError as Error;
        return completed >= target;
      });
    };
    const faults: string[] = [];
    const fr = seededRandom(clientSeeds[0] ^ 0x5bd1e995);
    const killAndRestart = async (role: 'leader' | 'follower'): Promise<void> => {
      const leader = await c.agreedLeader();
      const victim = role === 'leader' ? leader.id : pick(fr, c.nodes.filter((n) => n.id !== leader.id)).id;
      down.add(victim);
      const tKill = performance.now();
      await c.kill(victim);
      const next = await c.agreedLeader([victim]);
      if (role === 'leader') expect(next.term, 'a new term after the leader died').toBeGreaterThan(leader.term);
      await progress(PHASE_OPS, `with ${victim} (${role}) dead`);
      await c.start([victim]);
      down.delete(victim);
      faults.push(`kill -9 ${role} ${victim} (term ${leader.term}) -> leader ${next.id} (term ${next.term}), restarted after ${Math.round(performance.now() - tKill)} ms`);
      await progress(PHASE_OPS, `after ${victim} restarted`);
    };
    const pauses: Array<{ id: string; fromMs: number; toMs: number }> = [];
    const pauseLeader = async (): Promise<void> => {
      const leader = await c.agreedLeader();
      const tStop = performance.now();
      c.pause(leader.id);
      const next = await c.agreedLeader([leader.id]);
      expect(next.term).toBeGreaterThan(leader.term);
      await progress(PHASE_OPS / 2, `with ${leader.id} stopped`);
      c.resume(leader.id);
      pauses.push({ id: leader.id, fromMs: tStop, toMs: performance.now() });
      faults.push(`SIGSTOP leader ${leader.id} (term ${leader.term}) -> leader ${next.id} (term ${next.term}), SIGCONT after ${Math.round(performance.now() - tStop)} ms`);
      await progress(PHASE_OPS, `after ${leader.id} resumed`);
    };

    try {
      await progress(WARMUP_OPS, 'before any fault');
      await killAndRestart('leader');
      await killAndRestart('follower');
      await pauseLeader();
      await killAndRestart('leader');
      await killAndRestart('follower');
    } finally {
      stop = true;
      await withDeadline('the clients to finish', OP_DEADLINE_MS * 3 + 5000, allDone);
    }
    if (clientError !== null) throw clientError as Error;

    // A last look at every name, one at a time, through the leader: the final state is checked too.
    const { id: lastLeader } = await c.agreedLeader();
    const audit = workload[0][c.nodes.findIndex((n) => n.id === lastLeader)];
    for (const input of [...PATHS.map((p): NsInput => ({ op: 'stat', path: p })), ...REGS.map((p): NsInput => ({ op: 'read', path: p }))]) {
      const id = rec.invoke('audit', input);
      const out = await perform(audit, layout, input);
      if (!out.answered) throw new Error(`audit ${namespaceModel.describeOperation!(input, undefined)}: no answer (${out.why})`);
      rec.complete(id, out.output);
    }
    const runMs = performance.now() - t0;

    const history = rec.history();
    recorded = history;
    const result = checkOperations(namespaceModel, history, { timeoutMs: CHECK_TIMEOUT_MS });
    // Calls sent to a stopped node and answered after its SIGCONT: where a deposed leader would answer from stale state.
    const lateAnswers = pauses.map(
      (p) => history.filter((op) => op.clientId.endsWith(`@${p.id}`) && op.call >= p.fromMs && op.call <= p.toMs && op.output !== undefined && op.ret > p.toMs).length,
    );
    const snapshots = await Promise.all(
      c.nodes.map(async (n) => {
        const s = (await fetch(`http://${n.proc!.http}/api/status`, { signal: AbortSignal.timeout(5000) })
          .then((r) => r.json())
          .catch(() => null)) as { raft?: { driver?: { snapshotsTaken?: number; snapshotsInstalled?: number } } } | null;
        return `${n.id} took ${s?.raft?.driver?.snapshotsTaken ?? '?'}, installed ${s?.raft?.driver?.snapshotsInstalled ?? '?'}`;
      }),
    );
    console.log(
      [
        `lincheck: ${history.length} operations (${completed} answered, ${unanswered} without an answer) by ${CLIENTS} clients in ${Math.round(runMs)} ms; ` +
          `check: ${result.result} in ${Math.round(result.elapsedMs)} ms, ${result.steps} model steps`,
        ...faults.map((f) => `  fault: ${f}`),
        `  without an answer: ${[...unansweredWhy].map(([k, n]) => `${k} x${n}`).join(', ') || 'none'}`,
        `  calls to the stopped leader answered after SIGCONT: ${lateAnswers.join(', ')}`,
        `  snapshots: ${snapshots.join('; ')}`,
        `  outcomes: ${describeOutcomes(history)}`,
      ].join('\n'),
    );
    expect(unexpected, 'answers the namespace model has no mapping for').toEqual([]);
    expect(faults).toHaveLength(5);
    if (result.result !== 'ok') {
      const file = path.join(os.tmpdir(), `dfs-lincheck-history-${process.pid}-${Date.now()}.json`);
      await writeFile(file, JSON.stringify({ seed, history }, (_k, v: unknown) => (v === Infinity ? 'Infinity' : v)));
      console.log(`history kept in ${file}\n${result.counterexample?.message ?? `checker gave up: ${result.reason}`}`);
    }
    expect(result.result, result.counterexample?.message ?? `checker: ${result.reason}`).toBe('ok');

    // The history exercised what it claims to: conflicts answered with each errno, data read back.
    const seen = new Set(history.map((op) => (op.output === undefined ? '?' : op.output.ok ? `${op.input.op}:ok` : op.output.errno)));
    for (const k of ['EEXIST', 'ENOENT', 'ENOTEMPTY', 'EISDIR', 'ENOTDIR', 'rename:ok', 'rmdir:ok', 'unlink:ok', 'write:ok', 'read:ok']) {
      expect(seen.has(k), `some operation answered ${k}`).toBe(true);
    }
    expect(history.some((op) => op.input.op === 'read' && op.output?.ok === true && 'value' in op.output && op.output.value !== '')).toBe(true);
  });

  it('self-check: the checker rejects the recorded history with one stat answer changed', () => {
    expect(recorded, 'the first test recorded a history').not.toBeNull();
    const history = recorded!;
    // A stat whose answer nothing else can explain (ns-history.ts): the search then only
    // has the part of the history before it to exhaust, which is fast.
    const candidates = doctorableStats(history);
    expect(candidates.length, 'stats to doctor').toBeGreaterThan(0);
    const verdicts: Array<{ i: number; result: CheckResult }> = [];
    for (const { op, i } of candidates) {
      const doctored = history.map((o, j) => (j === i ? { ...o, output: flipStat(op.output!) } : o));
      const result = checkOperations(namespaceModel, doctored, { timeoutMs: CHECK_TIMEOUT_MS });
      verdicts.push({ i, result });
      console.log(
        `self-check: #${i} ${namespaceModel.describeOperation!(op.input, op.output)} answered ${namespaceModel.describeOperation!(op.input, flipStat(op.output!))}: ` +
          `${result.result} in ${Math.round(result.elapsedMs)} ms`,
      );
      if (result.result === 'illegal') {
        console.log(result.counterexample!.message.split('\n').slice(-6).join('\n'));
        break;
      }
    }
    // Each doctored answer is one that no order of the operations before it produces
    // (barring two earlier concurrent operations that leave the name in different states
    // either way: hence up to five candidates). A checker that accepts them all is broken.
    expect(verdicts.map((v) => v.result.result)).toContain('illegal');
    expect(verdicts.every((v) => v.result.result !== 'unknown')).toBe(true);
  });
});
