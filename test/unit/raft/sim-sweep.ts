// The simulator sweep shared by the sim-*.test.ts files (one file per cluster size, so the
// two run on separate workers): many seeds of the production RaftDriver + LogStore under
// every fault, each checked for Raft's safety properties as it runs and, at the end, for
// convergence after healing (liveness). DFS_SIM_SEEDS=<n> sets the seeds per (size,
// profile); DFS_SIM_SEED_BASE=<b> starts elsewhere (long exploratory runs).
import { expect } from 'vitest';
import { runSeed, SimFailure, type SimProfile, type SimStats } from '../../../src/cluster/raft/sim/index.js';

const override = process.env.DFS_SIM_SEEDS ? Number(process.env.DFS_SIM_SEEDS) : null;
const base = process.env.DFS_SIM_SEED_BASE ? Number(process.env.DFS_SIM_SEED_BASE) : 1;

export const PROFILES: readonly SimProfile[] = ['default', 'harsh', 'chaos', 'disk'];

export function seedsFor(defaults: Record<SimProfile, number>, profile: SimProfile): number {
  return override ?? defaults[profile];
}

export async function sweep(nodes: number, profile: SimProfile, count: number): Promise<void> {
  const safety: SimFailure[] = [];
  const liveness: SimFailure[] = [];
  const total: Partial<Record<keyof SimStats, number>> = {};
  const t0 = performance.now();
  for (let seed = base; seed < base + count; seed++) {
    try {
      const st = await runSeed(seed, { nodes, profile });
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
  // The runs must exercise the cluster: writes acknowledged, leaders elected, crashes.
  expect(total.acked ?? 0).toBeGreaterThan(count * 20);
  expect(total.leadersElected ?? 0).toBeGreaterThan(count);
  expect(total.crashes ?? 0).toBeGreaterThan(count / 2);
  // A bad disk: nodes stop on storage faults and come back by themselves, without a restart.
  if (profile === 'disk') expect(total.storageRecoveries ?? 0).toBeGreaterThan(count / 2);
}
