// The deterministic Raft simulator: entry points for tests and for replaying one seed.
import { Cluster, SimFailure, simOptions, type RunOptions, type SimBug, type SimProfile, type SimStats } from './cluster.js';

export { Cluster, SimFailure, runSeed, simOptions, simProfiles, defaultSimOptions } from './cluster.js';
export type { DriverBug, RunOptions, SimBug, SimClientObserver, SimOptions, SimProfile, SimStats } from './cluster.js';
export { Prng } from './prng.js';

export interface Replay {
  stats: SimStats | null;
  failure: SimFailure | null;
  /** Every event of the run, in order. */
  trace: string[];
  /** sha256 of the trace: equal runs have equal hashes. */
  traceHash: string;
}

/** Run one seed keeping its whole trace (a failing run is returned, not thrown). */
export async function replaySeed(seed: number, opts: RunOptions = {}): Promise<Replay> {
  const cluster = new Cluster(seed, simOptions({ ...opts, fullTrace: true }));
  try {
    const stats = await cluster.run();
    return { stats, failure: null, trace: cluster.trace.events, traceHash: stats.traceHash };
  } catch (e) {
    if (!(e instanceof SimFailure)) throw e;
    return { stats: null, failure: e, trace: cluster.trace.events, traceHash: cluster.trace.digest() };
  }
}

const PROFILES: readonly SimProfile[] = ['default', 'harsh', 'chaos', 'disk'];
const BUGS: readonly SimBug[] = ['earlyAck', 'lostHardState', 'lyingDisk', 'ackBeforeApply'];

/** Options from DFS_SIM_NODES / DFS_SIM_PROFILE / DFS_SIM_MS / DFS_SIM_BUG (the replay line). */
export function runOptionsFromEnv(env: NodeJS.ProcessEnv): RunOptions {
  const opts: RunOptions = {};
  if (env.DFS_SIM_NODES) opts.nodes = Number(env.DFS_SIM_NODES);
  if (env.DFS_SIM_MS) opts.durationMs = Number(env.DFS_SIM_MS);
  const profile = env.DFS_SIM_PROFILE;
  if (profile) {
    if (!PROFILES.includes(profile as SimProfile)) throw new Error(`DFS_SIM_PROFILE: one of ${PROFILES.join(', ')}`);
    opts.profile = profile as SimProfile;
  }
  const bug = env.DFS_SIM_BUG;
  if (bug) {
    if (!BUGS.includes(bug as SimBug)) throw new Error(`DFS_SIM_BUG: one of ${BUGS.join(', ')}`);
    opts.bug = bug as SimBug;
  }
  return opts;
}
