// The one seeded PRNG of the tests: the simulator's xoshiro128** (src/cluster/raft/sim/prng.ts),
// in the shapes the code under test takes. A seed reproduces a run; a test that picks its
// seed at random prints it.
import { Prng } from '../src/cluster/raft/sim/prng.js';

export { Prng };

/** Numbers in [0, 1) from `seed`: the `random` of placement.ts, planner.ts, Math.random's stand-in. */
export function seededRandom(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.next() / 0x1_0000_0000;
}

/** Integers in [0, n) from `seed`: RaftConfig.random, or a bounded draw. */
export function seededInt(seed: number): (n: number) => number {
  const p = new Prng(seed);
  return (n) => p.int(n);
}
