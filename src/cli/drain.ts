// `dfs drain NODE`: set a chunk server draining (or active again with --cancel), and with
// --wait follow it until it is drained.
import type { Command } from 'commander';
import { setDrain } from '../daemon/cluster-ops.js';
import { agoText, parseTimeoutMs } from '../daemon/ops-cli.js';
import { CliError, clusterViewOrFail, healthOf, printJson, sleep, withClient } from './common.js';

/** `dfs drain <node>`. */
export function registerDrain(program: Command): void {
  program
    .command('drain')
    .description(
      "move every copy off a chunk server so it can be removed: sets the node draining (the leader's healer moves its copies, never lowering protection, " +
        'and marks it drained when it holds nothing the cluster needs); --cancel makes it active again',
    )
    .argument('<node>', 'node id of the chunk server')
    .option('--cancel', 'stop draining: the node is active again (copies already moved stay moved)')
    .option('--wait', 'print progress until the node is drained')
    .option('--timeout <duration>', 'with --wait: give up (exit 1) after this long, e.g. 90s, 30m, 2h', '1h')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (node: string, o: { cancel?: boolean; wait?: boolean; timeout: string; addr?: string; dataDir?: string; json?: boolean }) => {
      const timeoutMs = parseTimeoutMs(o.timeout);
      if (timeoutMs === null || timeoutMs > 7 * 86_400_000) throw new CliError(`--timeout: expected a duration like 90s, 30m or 2h (at most 7 days), got '${o.timeout}'`);
      await withClient(o, async (client) => {
        const r = await setDrain(client, node, o.cancel === true);
        if (r.alreadyDrained) {
          if (o.json) printJson({ nodeId: node, state: 'drained', toMove: 0 });
          else process.stdout.write(`${node}: already drained; it can be removed from the cluster\n`);
          return;
        }
        if (o.cancel || !o.wait) {
          if (o.json) printJson({ nodeId: node, state: r.state, previous: r.previous });
          else if (o.cancel) process.stdout.write(`${node}: active (was ${r.previous}); copies already moved stay where they are\n`);
          else process.stdout.write(`${node}: draining; its copies move to other nodes (progress: dfs nodes, dfs status, or dfs drain ${node} --wait)\n`);
          return;
        }
        const started = Date.now();
        let shown = '';
        for (;;) {
          const v = await clusterViewOrFail(client);
          const n = v.nodes.find((x) => x.nodeId === node);
          if (!n) throw new CliError(`${node} left the cluster's node table while draining`);
          if (n.adminState === 'drained') {
            if (o.json) printJson({ nodeId: node, state: 'drained', toMove: 0, waitedMs: Date.now() - started });
            else process.stdout.write(`${node}: drained after ${Math.round((Date.now() - started) / 1000)}s; it can be removed from the cluster\n`);
            return;
          }
          if (n.adminState !== 'draining') throw new CliError(`${node} is ${n.adminState} now, no longer draining (cancelled?)`);
          const { health, error } = await healthOf(client);
          const per = health?.nodes.find((x) => x.nodeId === node);
          // Printed when the numbers change (the scan age alone is no news).
          const key = per ? `${per.toMove}/${per.copies}` : `objects ${n.chunkCount}`;
          const line = per
            ? `${node}: draining, ${per.toMove} copies to move (${per.copies} placed on it${health && health.scanPasses > 0 ? `, scanned ${agoText(health.lastScanAgeMs)}` : ''})`
            : `${node}: draining, holds ${n.chunkCount} chunk objects (${error ?? 'no per-node progress yet'})`;
          if (key !== shown && !o.json) process.stdout.write(line + '\n');
          shown = key;
          if (Date.now() - started >= timeoutMs) throw new CliError(`${node}: still draining after ${o.timeout}; the drain goes on (dfs nodes shows it)`);
          await sleep(1000);
        }
      });
    });
}
