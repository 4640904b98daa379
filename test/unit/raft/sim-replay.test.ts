// The simulator itself: a seed replays exactly, the invariant checkers can fail (broken
// storage or clients under the unchanged production driver are caught within a bounded
// number of seeds), and the seeds that found real bugs stay as regression tests.
// DFS_SIM_SEED=<s> [DFS_SIM_NODES, DFS_SIM_PROFILE, DFS_SIM_MS, DFS_SIM_BUG] replays one
// seed, writes its whole trace to a file and prints the tail.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Prng, replaySeed, runOptionsFromEnv, runSeed, SimFailure, type RunOptions, type SimBug } from '../../../src/cluster/raft/sim/index.js';

const single = process.env.DFS_SIM_SEED;

async function firstFailure(opts: RunOptions, maxSeeds: number, kind: 'safety' | 'liveness' = 'safety'): Promise<SimFailure | null> {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    try {
      await runSeed(seed, opts);
    } catch (e) {
      if (!(e instanceof SimFailure)) throw e;
      if (e.kind === kind) return e;
    }
  }
  return null;
}

describe.skipIf(single !== undefined)('raft simulator', () => {
  it('the PRNG is a pure function of its seed', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const xs = Array.from({ length: 100 }, () => a.int(1000));
    expect(Array.from({ length: 100 }, () => b.int(1000))).toEqual(xs);
    expect(Array.from({ length: 100 }, () => new Prng(43).int(1000))).not.toEqual(xs);
  });

  it('the same seed gives the same trace', async () => {
    for (const opts of [{ nodes: 3 }, { nodes: 5, profile: 'harsh' }, { nodes: 3, profile: 'disk' }] as RunOptions[]) {
      const a = await replaySeed(7, opts);
      const b = await replaySeed(7, opts);
      expect(a.failure).toBeNull();
      expect(b.traceHash).toBe(a.traceHash);
      expect(b.trace).toEqual(a.trace);
      expect((await replaySeed(8, opts)).traceHash).not.toBe(a.traceHash);
    }
  }, 120_000);

  it('a failing seed fails the same way every time', async () => {
    const opts: RunOptions = { nodes: 3, bug: 'ackBeforeApply' };
    const f = await firstFailure(opts, 50);
    expect(f).not.toBeNull();
    const a = await replaySeed(f?.seed ?? 0, opts);
    const b = await replaySeed(f?.seed ?? 0, opts);
    expect(a.failure?.reason).toBe(f?.reason);
    expect(a.failure?.step).toBe(f?.step);
    expect(b.failure?.message).toBe(a.failure?.message);
    expect(b.traceHash).toBe(a.traceHash);
    expect(a.failure?.message).toContain(`DFS_SIM_SEED=${f?.seed}`);
  }, 120_000);

  // Each broken part must be caught by a safety checker within `maxSeeds` seeds.
  const broken: { bug: SimBug; opts: RunOptions; maxSeeds: number; expectInvariant: RegExp }[] = [
    // A follower acks entries before they are durable: a crash loses entries the leader counted.
    { bug: 'earlyAck', opts: { nodes: 3, profile: 'harsh' }, maxSeeds: 60, expectInvariant: /durability|acknowledged write|leader completeness|commit|state machine|linearizable|boot|apply/ },
    // A vote or term is answered as written but never is: a restarted node forgets it.
    { bug: 'lostHardState', opts: { nodes: 3, profile: 'harsh' }, maxSeeds: 60, expectInvariant: /durability|election safety|hard state|log matching/ },
    // The disk's fsync lies: everything "durable" can vanish at a power loss.
    { bug: 'lyingDisk', opts: { nodes: 3, profile: 'harsh' }, maxSeeds: 60, expectInvariant: /durability|acknowledged|leader completeness|commit|boot/ },
    // The client is answered before its command applied.
    { bug: 'ackBeforeApply', opts: { nodes: 3 }, maxSeeds: 30, expectInvariant: /linearizable read|acknowledged write/ },
  ];
  for (const { bug, opts, maxSeeds, expectInvariant } of broken) {
    it(`catches a broken part: ${bug}`, async () => {
      const caught = await firstFailure({ ...opts, bug }, maxSeeds);
      expect(caught, `${bug} was not caught within ${maxSeeds} seeds`).not.toBeNull();
      console.log(`${bug}: caught at seed ${caught?.seed} (${caught?.step} ms): ${caught?.reason}`);
      expect(caught?.reason).toMatch(expectInvariant);
    }, 600_000);
  }

  // Seeds on which the simulator found bugs in the production driver and log store; each
  // must now run clean (kept as regression tests, with the bug each one found).
  const regressions: { seed: number; opts: RunOptions; found: string }[] = [
    { seed: 1, opts: { nodes: 3 }, found: 'restart snapshot compacted past the core replay: a follower livelocked on an empty Ready' },
    { seed: 13, opts: { nodes: 5, profile: 'harsh' }, found: 'a restarted leader without a snapshot image could not bring a follower out of probe (liveness)' },
    { seed: 55, opts: { nodes: 3, profile: 'harsh' }, found: 'a crash during compaction left older segments: recovery refused the gap below the snapshot' },
    { seed: 16, opts: { nodes: 3 }, found: 'a snapshot at restart beyond the log (state machine restored ahead of the log)' },
    { seed: 5, opts: { nodes: 5, profile: 'harsh' }, found: 'a snapshot at restart beyond the log (state machine restored ahead of the log)' },
    { seed: 4, opts: { nodes: 5 }, found: 'a restarted node re-applied entries under a configuration from its future' },
    { seed: 3, opts: { nodes: 3, profile: 'harsh' }, found: 'a restarted node re-applied entries under a configuration from its future' },
    { seed: 62, opts: { nodes: 3, profile: 'disk' }, found: 'a node down after its last disk error never restarted (harness)' },
    { seed: 102, opts: { nodes: 3 }, found: 'a snapshot stepped while a Ready was applied: an older addVoter then re-added a removed node' },
    { seed: 72, opts: { nodes: 5, profile: 'disk' }, found: 'a crash during a snapshot install that took effect: the checker wanted the replaced log back (checker)' },
  ];
  for (const { seed, opts, found } of regressions) {
    it(`regression seed ${seed} ${JSON.stringify(opts)}: ${found}`, async () => {
      const r = await replaySeed(seed, opts);
      if (r.failure) throw r.failure;
      expect(r.stats?.acked ?? 0).toBeGreaterThan(5);
    }, 120_000);
  }
});

describe.runIf(single !== undefined)('replay one seed', () => {
  it(`seed ${single ?? ''}`, async () => {
    const opts = runOptionsFromEnv(process.env);
    const r = await replaySeed(Number(single), opts);
    const file = join(tmpdir(), `dfs-raft-sim-${single ?? ''}.trace`);
    writeFileSync(file, r.trace.join('\n') + '\n');
    console.log(`${r.trace.length} events, trace hash ${r.traceHash}, full trace in ${file}`);
    console.log(r.trace.slice(-80).join('\n'));
    if (r.stats) console.log(JSON.stringify(r.stats));
    if (r.failure) throw r.failure;
  }, 600_000);
});
