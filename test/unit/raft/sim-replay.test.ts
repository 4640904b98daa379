// The simulator itself: a seed replays exactly, and the invariant checkers can fail (a
// deliberately broken driver is caught within a bounded number of seeds).
// DFS_SIM_SEED=<s> [DFS_SIM_NODES, DFS_SIM_PROFILE, DFS_SIM_STEPS, DFS_SIM_BUG] replays one
// seed, writes its whole trace to a file and prints the tail.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Prng, replaySeed, runOptionsFromEnv, runSeed, SimFailure, type DriverBug, type RunOptions } from '../../../src/cluster/raft/sim/index.js';

const single = process.env.DFS_SIM_SEED;

describe.skipIf(single !== undefined)('raft simulator', () => {
  it('the PRNG is a pure function of its seed', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const xs = Array.from({ length: 100 }, () => a.int(1000));
    expect(Array.from({ length: 100 }, () => b.int(1000))).toEqual(xs);
    expect(Array.from({ length: 100 }, () => new Prng(43).int(1000))).not.toEqual(xs);
  });

  it('the same seed gives the same trace', () => {
    for (const opts of [{ nodes: 3 }, { nodes: 5, profile: 'harsh' }, { nodes: 5, profile: 'chaos' }] as RunOptions[]) {
      const a = replaySeed(7, opts);
      const b = replaySeed(7, opts);
      expect(a.failure).toBeNull();
      expect(b.traceHash).toBe(a.traceHash);
      expect(b.trace).toEqual(a.trace);
      expect(replaySeed(8, opts).traceHash).not.toBe(a.traceHash);
    }
  });

  it('a failing seed fails the same way every time', () => {
    const a = replaySeed(3, { nodes: 3, driverBug: 'ackBeforeApply' });
    const b = replaySeed(3, { nodes: 3, driverBug: 'ackBeforeApply' });
    expect(a.failure).not.toBeNull();
    expect(b.failure?.message).toBe(a.failure?.message);
    expect(b.traceHash).toBe(a.traceHash);
    expect(a.failure?.message).toContain('DFS_SIM_SEED=3');
  });

  // Each broken driver must be caught by a safety checker within `maxSeeds` seeds.
  const broken: { bug: DriverBug; opts: RunOptions; expectInvariant: RegExp }[] = [
    { bug: 'ackBeforeApply', opts: { nodes: 3 }, expectInvariant: /linearizable read|acknowledged write/ },
    { bug: 'forgetVote', opts: { nodes: 3, profile: 'harsh' }, expectInvariant: /election safety|hard state/ },
    { bug: 'sendBeforePersist', opts: { nodes: 3, profile: 'harsh' }, expectInvariant: /leader completeness|commit|election safety|acknowledged|state machine/ },
  ];
  for (const { bug, opts, expectInvariant } of broken) {
    it(`catches a broken driver: ${bug}`, () => {
      const maxSeeds = 400;
      let caught: SimFailure | null = null;
      for (let seed = 1; seed <= maxSeeds && caught === null; seed++) {
        try {
          runSeed(seed, { ...opts, driverBug: bug });
        } catch (e) {
          if (!(e instanceof SimFailure)) throw e;
          if (e.kind === 'safety') caught = e;
        }
      }
      expect(caught, `${bug} was not caught within ${maxSeeds} seeds`).not.toBeNull();
      console.log(`${bug}: caught at seed ${caught?.seed} step ${caught?.step}: ${caught?.reason}`);
      expect(caught?.reason).toMatch(expectInvariant);
    });
  }
});

describe.runIf(single !== undefined)('replay one seed', () => {
  it(`seed ${single ?? ''}`, () => {
    const opts = runOptionsFromEnv(process.env);
    const r = replaySeed(Number(single), opts);
    const file = join(tmpdir(), `dfs-raft-sim-${single ?? ''}.trace`);
    writeFileSync(file, r.trace.join('\n') + '\n');
    console.log(`${r.trace.length} events, trace hash ${r.traceHash}, full trace in ${file}`);
    console.log(r.trace.slice(-80).join('\n'));
    if (r.stats) console.log(JSON.stringify(r.stats));
    if (r.failure) throw r.failure;
  });
});
