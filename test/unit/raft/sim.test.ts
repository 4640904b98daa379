// The deterministic simulator sweep: many seeds of 3- and 5-node clusters with every fault
// on, each checked step by step for Raft's safety properties and, at the end, for
// convergence after healing. DFS_SIM_SEEDS=<n> sets the seeds per (cluster size, profile);
// DFS_SIM_SEED=<s> (with DFS_SIM_NODES / DFS_SIM_PROFILE) runs just that seed with a trace.
import { describe, expect, it } from 'vitest';
import { replaySeed, runOptionsFromEnv, runSeed, SimFailure, type SimProfile, type SimStats } from '../../../src/cluster/raft/sim/index.js';

/** Seeds per group by default: 3200 runs, about 90 s on two cores. */
const DEFAULT_SEEDS: Record<SimProfile, number> = { default: 1000, harsh: 300, chaos: 300 };
const single = process.env.DFS_SIM_SEED;
const override = process.env.DFS_SIM_SEEDS ? Number(process.env.DFS_SIM_SEEDS) : null;
const base = process.env.DFS_SIM_SEED_BASE ? Number(process.env.DFS_SIM_SEED_BASE) : 1;

function sweep(nodes: number, profile: SimProfile, count: number): void {
  const safety: SimFailure[] = [];
  const liveness: SimFailure[] = [];
  const total: Partial<Record<keyof SimStats, number>> = {};
  const t0 = performance.now();
  for (let seed = base; seed < base + count; seed++) {
    try {
      const st = runSeed(seed, { nodes, profile });
      for (const [k, v] of Object.entries(st) as [keyof SimStats, number | string][]) {
        if (typeof v === 'number' && k !== 'seed' && k !== 'nodes') total[k] = (total[k] ?? 0) + v;
      }
    } catch (e) {
      if (!(e instanceof SimFailure)) throw e;
      (e.kind === 'safety' ? safety : liveness).push(e);
    }
  }
  const ms = Math.round(performance.now() - t0);
  console.log(
    `raft sim ${nodes} nodes/${profile}: ${count} seeds in ${ms} ms; safety failures ${safety.length}, liveness failures ${liveness.length}; ` +
      `totals ${JSON.stringify(total)}`,
  );
  const show = (fs: SimFailure[]): string => fs.slice(0, 3).map((f) => f.message).join('\n\n');
  expect(safety.length, `safety violations (first 3):\n${show(safety)}`).toBe(0);
  expect(liveness.length, `liveness failures (first 3):\n${show(liveness)}`).toBe(0);
  // The runs must actually exercise the cluster.
  expect(total.acked ?? 0).toBeGreaterThan(count * 2);
  expect(total.leadersElected ?? 0).toBeGreaterThan(count);
}

describe.skipIf(single !== undefined)('raft simulation sweep', () => {
  for (const nodes of [3, 5]) {
    for (const profile of ['default', 'harsh', 'chaos'] as const) {
      const count = override ?? DEFAULT_SEEDS[profile];
      it(`${nodes} nodes, ${profile}: ${count} seeds keep every invariant and converge`, () => sweep(nodes, profile, count));
    }
  }
});

describe.runIf(single !== undefined)('raft simulation, one seed', () => {
  it(`seed ${single ?? ''}`, () => {
    const r = replaySeed(Number(single), runOptionsFromEnv(process.env));
    console.log(r.trace.join('\n'));
    console.log(r.stats ? JSON.stringify(r.stats) : '');
    if (r.failure) throw r.failure;
  });
});
