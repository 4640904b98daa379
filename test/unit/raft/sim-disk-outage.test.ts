// Issue 16 in the simulator: a node's disk refuses every write (ENOSPC or EIO) for up to
// 1.5 s of virtual time, then clears. Nothing else goes wrong (no power loss, no restart),
// so every node that faulted must have come back by itself: the driver stepped aside,
// reopened its log (rewriting what the failed writes left unproven) and caught up. Safety,
// durability and liveness are checked by the simulator as in every sweep.
import { describe, expect, it } from 'vitest';
import { runSeed, type RunOptions, type SimStats } from '../../../src/cluster/raft/sim/index.js';

const SEEDS = Number(process.env.DFS_SIM_SEEDS ?? 60);

const onlyOutages = (nodes: number): RunOptions => ({
  nodes,
  profile: 'disk',
  faults: { crashWeight: 0, restartWeight: 0, partitionWeight: 0, healWeight: 0, confChangeWeight: 0, transferWeight: 0, outageWeight: 25 },
  disk: { eioProbability: 0, enospcProbability: 0 },
  membership: false,
});

describe.skipIf(process.env.DFS_SIM_SEED !== undefined)('raft simulation: disks that fail for a while, then clear', () => {
  for (const nodes of [3, 5]) {
    it(`${nodes} nodes: ${SEEDS} seeds, every faulted node recovers without a restart`, async () => {
      const total = { outages: 0, diskErrors: 0, storageRecoveries: 0, restarts: 0, crashes: 0, acked: 0 };
      for (let seed = 1; seed <= SEEDS; seed++) {
        const st: SimStats = await runSeed(seed, onlyOutages(nodes));
        for (const k of Object.keys(total) as Array<keyof typeof total>) total[k] += st[k];
        // Each fault that began ended in a recovery (the faulty phase ends with every disk healthy).
        expect(st.storageRecoveries, `seed ${seed}: ${JSON.stringify(st)}`).toBe(st.diskErrors);
      }
      console.log(`disk outages, ${nodes} nodes: ${JSON.stringify(total)}`);
      expect(total.crashes).toBe(0);
      expect(total.restarts).toBe(0);
      expect(total.outages).toBeGreaterThan(SEEDS);
      expect(total.storageRecoveries).toBeGreaterThan(SEEDS / 2);
      expect(total.acked).toBeGreaterThan(SEEDS * 20);
    }, 300_000);
  }
});
