// Simulator sweep, 5-node clusters (see sim-sweep.ts). Replay one seed with the line a
// failure prints (test/unit/raft/sim-replay.test.ts).
import { describe, it } from 'vitest';
import { PROFILES, seedsFor, sweep } from './sim-sweep.js';

const SEEDS = { default: 300, harsh: 200, chaos: 150, disk: 150 };

describe.skipIf(process.env.DFS_SIM_SEED !== undefined)('raft simulation sweep, 5 nodes (production driver and log store)', () => {
  for (const profile of PROFILES) {
    const count = seedsFor(SEEDS, profile);
    it(`${profile}: ${count} seeds keep every invariant and converge`, () => sweep(5, profile, count), 1_800_000);
  }
});
