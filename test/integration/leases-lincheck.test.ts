// Linearizability with answers from leases (issue 11, decision 0012), on a real 3-daemon
// cluster.
//
// Three clients, each a Vfs with its own session (what `dfs mount` runs, minus the kernel)
// over MetaClient to a different node, change and stat the same few names in two shared
// directories while the test kill -9s the leader twice and "kill -9s" a client (its
// session stream and connection cut at once, its queue never sent again: what a killed
// mount leaves) and starts a fresh one in its place. The clients take the directories'
// leases from each other (an existing directory is taken after two synchronous changes;
// every other client's call about it recalls it), so a good part of the answers come from
// a view, acknowledged before they commit. Every call is recorded (invoke when the Vfs is
// called, complete when it answers) and the history is checked against the namespace
// model. A client's calls answered after its last sync point (fsyncdir) are recorded as
// never completed once it is killed: the contract lets a crash lose them (a suffix), so
// they may or may not have happened. A self-check requires the checker to reject the
// history with one stat's answer changed.
//
// Daemons are started and killed by pid; the temp dir is removed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { MetaClient } from '../../src/meta/grpc.js';
import { S_IFDIR, S_IFMT, S_IFREG } from '../../src/meta/types.js';
import type { DataPlane } from '../../src/fuse/data-plane.js';
import { Vfs } from '../../src/fuse/vfs.js';
import { checkOperations, HistoryRecorder, type CheckResult } from '../../src/cluster/raft/lincheck/checker.js';
import { namespaceModel, type NsInput, type NsOutput } from '../../src/cluster/raft/lincheck/models.js';
import { seededRandom } from '../prng.js';
import { waitFor, withDeadline } from './harness.js';
import { RaftCluster } from './raft-harness.js';
import { describeOutcomes, doctorableStats, flipStat, outcome, parentIno, pick, type History, type Layout, type Outcome } from './ns-history.js';

const CLIENTS = 3;
const WARMUP_OPS = 150;
const PHASE_OPS = 80;
const THINK_MS = 5;
const MAX_OPS = 4000;
const CHECK_TIMEOUT_MS = 30_000;
const NAMES = ['a', 'b', 'c'];
const DIRS = ['/p', '/q'];
const PATHS = DIRS.flatMap((d) => NAMES.map((n) => `${d}/${n}`));
/** Never removed: /p and /q are never empty, so their inodes stand for their paths. */
const REGS = DIRS.map((d) => `${d}/reg`);
const CALLER = { uid: 0, gid: 0 };
const OK: NsOutput = { ok: true };
const log = process.env.DFS_TEST_LOG ? pino({ level: process.env.DFS_TEST_LOG }, pino.destination({ dest: '/tmp/leaselin.log', sync: true })) : pino({ level: 'silent' });

/** Leases need no chunk data here: no file is written. */
const noData = {
  place: () => Promise.reject(new Error('no data in this test')),
  client: () => {
    throw new Error('no data in this test');
  },
} as unknown as DataPlane;

/** One client: a Vfs with its session, over one MetaClient. */
interface Client {
  label: string;
  vfs: Vfs;
  meta: MetaClient;
  /** When its last sync point (fsyncdir) returned 0: what it answered before is committed. */
  syncedAt: number;
  dead: boolean;
}

async function perform(vfs: Vfs, layout: Layout, input: NsInput): Promise<Outcome> {
  switch (input.op) {
    case 'mkdir': {
      const { parent, name } = parentIno(layout, input.path);
      return outcome(await vfs.mkdir(parent, name, 0o755, CALLER), () => OK);
    }
    case 'create': {
      const { parent, name } = parentIno(layout, input.path);
      const r = await vfs.create(parent, name, 0o644, 0, CALLER);
      if (r.ok) await vfs.release(r.value.fh);
      return outcome(r, () => OK);
    }
    case 'unlink':
    case 'rmdir': {
      const { parent, name } = parentIno(layout, input.path);
      return outcome(input.op === 'unlink' ? await vfs.unlink(parent, name) : await vfs.rmdir(parent, name), () => OK);
    }
    case 'rename': {
      const from = parentIno(layout, input.from);
      const to = parentIno(layout, input.to);
      return outcome(await vfs.rename(from.parent, from.name, to.parent, to.name, 0), () => OK);
    }
    case 'stat': {
      const { parent, name } = parentIno(layout, input.path);
      return outcome(await vfs.lookup(parent, name), (attr): NsOutput => ({ ok: true, type: (attr.mode & S_IFMT) === S_IFDIR ? 'dir' : 'file' }));
    }
    default:
      throw new Error(`not in this workload: ${input.op}`);
  }
}

function randomOp(r: () => number): NsInput {
  const x = r();
  if (x < 0.25) return { op: 'stat', path: pick(r, PATHS) };
  if (x < 0.38) return { op: 'mkdir', path: pick(r, PATHS) };
  if (x < 0.56) return { op: 'create', path: pick(r, PATHS) };
  if (x < 0.7) return { op: 'unlink', path: pick(r, PATHS) };
  if (x < 0.8) return { op: 'rmdir', path: pick(r, PATHS) };
  return { op: 'rename', from: pick(r, PATHS), to: pick(r, PATHS) };
}

describe('leases: histories with answers from leases, under leader and client kill -9, are linearizable', () => {
  const c = new RaftCluster('leaselin', 3, []);
  const seed = Number(process.env.DFS_LINCHECK_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const clients: Client[] = [];
  let recorded: History | null = null;

  beforeAll(async () => {
    await c.create();
    await c.start();
  });

  afterAll(async () => {
    for (const cl of clients) {
      cl.vfs.stopWriteback();
      cl.vfs.ns?.session.stop();
      cl.meta.close();
    }
    await c.teardown();
  });

  const connect = async (label: string, nodeIdx: number): Promise<Client> => {
    const meta = await MetaClient.connect(c.nodes[nodeIdx].grpc, { deadlineMs: 15_000, attempts: 6, backoffMs: 100 });
    meta.setEndpoints(c.nodes.map((n) => n.grpc));
    const vfs = new Vfs(meta, noData, { sessionId: `${label}-${process.pid}-${Date.now()}`, logger: log });
    await waitFor(`${label}'s session`, 15_000, () => vfs.ns?.session.valid() ?? false);
    const cl: Client = { label, vfs, meta, syncedAt: performance.now(), dead: false };
    clients.push(cl);
    return cl;
  };

  it('three clients on shared directories, the leader killed twice and a client killed: the history checks ok', async () => {
    const rec = new HistoryRecorder<NsInput, NsOutput>(MAX_OPS, () => performance.now());
    const layout: Layout = { dirs: new Map(), regs: new Map() };
    const unexpected: string[] = [];
    let completed = 0;
    const unansweredWhy = new Map<string, number>();

    // Setup through a client of its own, recorded; it holds /p and /q until the others' calls recall them.
    const setup = await connect('setup', 0);
    for (const d of DIRS) {
      const id = rec.invoke('setup', { op: 'mkdir', path: d });
      const r = await setup.vfs.mkdir(parentIno(layout, d).parent, d.slice(1), 0o755, CALLER);
      if (!r.ok) throw new Error(`setup mkdir ${d}: errno ${r.errno}`);
      rec.complete(id, OK);
      layout.dirs.set(d, r.value.ino);
    }
    for (const f of REGS) {
      const id = rec.invoke('setup', { op: 'create', path: f });
      const { parent, name } = parentIno(layout, f);
      const r = await setup.vfs.create(parent, name, S_IFREG | 0o644, 0, CALLER);
      if (!r.ok) throw new Error(`setup create ${f}: errno ${r.errno}`);
      await setup.vfs.release(r.value.fh);
      rec.complete(id, OK);
      layout.regs.set(f, r.value.attr.ino);
    }
    expect((await setup.vfs.fsyncdir()).ok).toBe(true);

    console.log(`leases lincheck seed ${seed} (DFS_LINCHECK_SEED to replay the choice of operations)`);
    const master = seededRandom(seed);
    const slots: Client[] = [];
    for (let i = 0; i < CLIENTS; i++) slots.push(await connect(`c${i}`, i % c.nodes.length));
    /** Calls by each client label, for marking a killed client's unsynced answers. */
    const callsOf = new Map<string, Array<{ id: number; call: number }>>();
    let stop = false;
    const runSlot = async (i: number, r: () => number): Promise<void> => {
      while (!stop) {
        const cl = slots[i];
        if (cl.dead) {
          // Killed; its successor is being started.
          await new Promise((res) => setTimeout(res, THINK_MS));
          continue;
        }
        const input = randomOp(r);
        const call = performance.now();
        const id = rec.invoke(cl.label, input);
        let out: Outcome;
        try {
          out = await perform(cl.vfs, layout, input);
        } catch (e) {
          unexpected.push(`${namespaceModel.describeOperation!(input, undefined)} by ${cl.label}: ${(e as Error).message}`);
          out = { answered: false, why: 'unexpected answer' };
        }
        if (cl.dead) continue; // killed meanwhile: whatever it answered is not an answer (left incomplete)
        if (out.answered) {
          rec.complete(id, out.output);
          completed++;
          if (!callsOf.has(cl.label)) callsOf.set(cl.label, []);
          callsOf.get(cl.label)!.push({ id, call });
        } else {
          unansweredWhy.set(out.why, (unansweredWhy.get(out.why) ?? 0) + 1);
        }
        // Now and then a sync point: what it answered so far is committed.
        if (r() < 0.25) {
          const t = performance.now();
          if ((await cl.vfs.fsyncdir()).ok && !cl.dead) cl.syncedAt = t;
        }
        // Pacing, not synchronization.
        await new Promise((res) => setTimeout(res, THINK_MS));
      }
    };
    const seeds = Array.from({ length: CLIENTS }, () => Math.floor(master() * 2 ** 31));
    let clientError: unknown = null;
    const allDone = Promise.all(seeds.map((s, i) => runSlot(i, seededRandom(s)))).catch((e: unknown) => {
      console.log(`a client failed after ${completed} answers; without an answer: ${[...unansweredWhy].map(([k, n]) => `${k} x${n}`).join(', ')}`);
      clientError = e;
      stop = true;
    });
    const progress = async (n: number, what: string): Promise<void> => {
      const target = completed + n;
      await waitFor(`${n} operations answered ${what}`, 60_000, () => {
        if (clientError !== null) throw clientError as Error;
        return completed >= target;
      });
    };
    const faults: string[] = [];
    const killLeader = async (): Promise<void> => {
      const leader = await c.agreedLeader();
      await c.kill(leader.id);
      const next = await c.agreedLeader([leader.id]);
      await progress(PHASE_OPS, `with ${leader.id} dead`);
      await c.start([leader.id]);
      faults.push(`kill -9 leader ${leader.id} (term ${leader.term}) -> ${next.id} (term ${next.term})`);
      await progress(PHASE_OPS, `after ${leader.id} restarted`);
    };
    /** What a killed mount leaves: nothing more is sent, its leases expire on the leader. */
    const killClient = async (i: number): Promise<void> => {
      const old = slots[i];
      old.dead = true;
      const killedAt = performance.now();
      old.vfs.stopWriteback();
      old.vfs.ns?.session.stop();
      old.meta.close();
      // Its answers after its last sync point may be lost: not answers any more.
      let unsynced = 0;
      for (const { id, call } of callsOf.get(old.label) ?? []) {
        if (call >= old.syncedAt && rec.forget(id)) unsynced++;
      }
      slots[i] = await connect(`c${i}'`, (i + 1) % c.nodes.length);
      faults.push(`client ${old.label} killed (${unsynced} answers after its last sync point made unknown), ${slots[i].label} started after ${Math.round(performance.now() - killedAt)} ms`);
      // Its leases go with its session (10 s): the others wait for that, then go on.
      await progress(PHASE_OPS, `after ${old.label} was killed`);
    };

    try {
      await progress(WARMUP_OPS, 'before any fault');
      await killLeader();
      await killClient(0);
      await killLeader();
    } finally {
      stop = true;
      await withDeadline('the clients to finish', 60_000, allDone);
    }
    if (clientError !== null) throw clientError as Error;
    for (const cl of slots) expect((await cl.vfs.fsyncdir()).ok, `${cl.label}'s last sync point`).toBe(true);

    // The final state, through a fresh client (nothing cached): checked too.
    const audit = await connect('audit', 1);
    for (const p of PATHS) {
      const input: NsInput = { op: 'stat', path: p };
      const id = rec.invoke('audit', input);
      const out = await perform(audit.vfs, layout, input);
      if (!out.answered) throw new Error(`audit stat ${p}: no answer (${out.why})`);
      rec.complete(id, out.output);
    }

    const history = rec.history();
    recorded = history;
    const result = checkOperations(namespaceModel, history, { timeoutMs: CHECK_TIMEOUT_MS });
    const counters = slots.map((cl) => cl.vfs.ns!.counters);
    console.log(
      [
        `leases lincheck: ${history.length} operations (${completed} answered) by ${CLIENTS} clients; check: ${result.result} in ${Math.round(result.elapsedMs)} ms`,
        ...faults.map((f) => `  fault: ${f}`),
        `  without an answer: ${[...unansweredWhy].map(([k, n]) => `${k} x${n}`).join(', ') || 'none'}`,
        `  from leases: ${counters.map((k) => k.asyncOps).join(', ')} async, ${counters.map((k) => k.syncOps).join(', ')} sync, ${counters.map((k) => k.recalls).join(', ')} recalls, ${counters.map((k) => k.existingTaken).join(', ')} taken`,
        `  outcomes: ${describeOutcomes(history)}`,
      ].join('\n'),
    );
    expect(unexpected, 'answers the namespace model has no mapping for').toEqual([]);
    for (const k of counters) expect(k.poisoned, 'a batch answered from leases that did not apply').toBe(0);
    // The history is about leases: a good share of the answers came from views.
    expect(counters.reduce((n, k) => n + k.asyncOps, 0)).toBeGreaterThan(50);
    expect(counters.reduce((n, k) => n + k.recalls, 0)).toBeGreaterThan(5);
    expect(result.result, result.counterexample?.message ?? `checker: ${result.reason}`).toBe('ok');
  });

  it('self-check: the checker rejects the recorded history with one stat answer changed', () => {
    expect(recorded, 'the first test recorded a history').not.toBeNull();
    const history = recorded!;
    const candidates = doctorableStats(history);
    expect(candidates.length, 'stats to doctor').toBeGreaterThan(0);
    const verdicts: CheckResult[] = [];
    for (const { op, i } of candidates) {
      const doctored = history.map((o, j) => (j === i ? { ...o, output: flipStat(op.output!) } : o));
      const result = checkOperations(namespaceModel, doctored, { timeoutMs: CHECK_TIMEOUT_MS });
      verdicts.push(result);
      if (result.result === 'illegal') break;
    }
    expect(verdicts.map((v) => v.result)).toContain('illegal');
    expect(verdicts.every((v) => v.result !== 'unknown')).toBe(true);
  });
});
