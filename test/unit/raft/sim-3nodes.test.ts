// Simulator sweep, 3-node clusters (see sim-sweep.ts). Replay one seed with the line a
// failure prints (test/unit/raft/sim-replay.test.ts).
import { describe, it } from 'vitest';
import { PROFILES, seedsFor, sweep } from './sim-sweep.js';

const SEEDS = { default: 500, harsh: 300, chaos: 200, disk: 200 };

describe.skipIf(process.env.DFS_SIM_SEED !== undefined)('raft simulation sweep, 3 nodes (production driver and log store)', () => {
  for (const profile of PROFILES) {
    const count = seedsFor(SEEDS, profile);
    it(`${profile}: ${count} seeds keep every invariant and converge`, () => sweep(3, profile, count), 1_800_000);
  }
});
