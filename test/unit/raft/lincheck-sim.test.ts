// Linearizability of the Raft simulator's client histories: every proposed command is an
// append to one log, every ReadIndex read returns the commands applied up to its read
// index; the recorded history (invoke at propose/read issue, complete at ack/serve, "no
// effect" when refused or overwritten, incomplete when lost with a crash) must be
// linearizable against an append-only log. DFS_LINCHECK_SEEDS=<n> sets the seeds per
// (cluster size, profile).
import { describe, expect, it } from 'vitest';
import { checkOperations } from '../../../src/cluster/raft/lincheck/checker.js';
import { appendLogModel } from '../../../src/cluster/raft/lincheck/models.js';
import { SimHistory } from '../../../src/cluster/raft/lincheck/sim-history.js';
import { replaySeed, runSeed, SimFailure, type SimProfile } from '../../../src/cluster/raft/sim/index.js';

const SEEDS = process.env.DFS_LINCHECK_SEEDS ? Number(process.env.DFS_LINCHECK_SEEDS) : 40;
const CHECK = { timeoutMs: 10_000 };

describe('raft simulator histories are linearizable', () => {
  for (const nodes of [3, 5]) {
    for (const profile of ['default', 'harsh', 'chaos', 'disk'] as SimProfile[]) {
      it(`${nodes} nodes, ${profile}: ${SEEDS} seeds`, async () => {
        const t0 = performance.now();
        let ops = 0;
        let incomplete = 0;
        let reads = 0;
        let checkMs = 0;
        let worstMs = 0;
        for (let seed = 1; seed <= SEEDS; seed++) {
          const h = new SimHistory();
          await runSeed(seed, { nodes, profile, clients: h });
          const hist = h.history();
          ops += hist.length;
          incomplete += hist.filter((o) => o.output === undefined).length;
          reads += hist.filter((o) => o.output?.op === 'read').length;
          const r = h.check(CHECK);
          checkMs += r.elapsedMs;
          worstMs = Math.max(worstMs, r.elapsedMs);
          expect(r.result, `seed ${seed}: ${r.counterexample?.message ?? r.reason ?? ''}`).toBe('ok');
        }
        console.log(
          `lincheck sim ${nodes}/${profile}: ${SEEDS} seeds, ${ops} ops (${incomplete} incomplete, ${reads} reads served); ` +
            `check ${checkMs.toFixed(0)} ms (worst ${worstMs.toFixed(1)} ms), total ${(performance.now() - t0).toFixed(0)} ms`,
        );
        // The histories must be substantial: reads served, and ops lost in crashes. (Few
        // reads are served in 5-node/harsh runs: most ReadIndex requests die with their node
        // or their leadership; that is the simulator's workload, not a recording gap.)
        expect(reads).toBeGreaterThan(SEEDS / 4);
        expect(incomplete).toBeGreaterThan(SEEDS);
      });
    }
  }

  it('recording does not change the run (same trace hash)', async () => {
    for (const seed of [1, 2, 3]) {
      const plain = await replaySeed(seed, { nodes: 3, profile: 'harsh' });
      const h = new SimHistory();
      const recorded = await replaySeed(seed, { nodes: 3, profile: 'harsh', clients: h });
      expect(recorded.traceHash).toBe(plain.traceHash);
      expect(h.history().length).toBeGreaterThan(0);
    }
  });

  it('a broken client (acks before apply) yields illegal histories', async () => {
    // The simulator's own read check fires too; the history recorded up to that point
    // (the bad read included) must be judged illegal on its own.
    let caught = 0;
    let message = '';
    for (let seed = 1; seed <= 60 && caught < 5; seed++) {
      const h = new SimHistory();
      try {
        await runSeed(seed, { nodes: 3, clients: h, bug: 'ackBeforeApply' });
      } catch (e) {
        if (!(e instanceof SimFailure)) throw e;
        if (!/linearizable read/.test(e.reason)) continue;
        const r = h.check(CHECK);
        expect(r.result, `seed ${seed}`).toBe('illegal');
        // The plain (unnarrowed) model agrees, within its budget, or gives up; never says ok.
        const plain = checkOperations(appendLogModel, h.history(), { timeoutMs: 500 });
        expect(plain.result, `seed ${seed}`).not.toBe('ok');
        caught++;
        message = r.counterexample?.message ?? '';
      }
    }
    expect(caught).toBeGreaterThan(0);
    console.log(`ackBeforeApply: ${caught} histories illegal; e.g.\n${message}`);
  });
});
