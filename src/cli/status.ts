// `dfs status`: the cluster at a glance (leader, members, capacity, chunk health); exit 1
// on a known problem.
import type { Command } from 'commander';
import { clusterStatusWithHealth } from '../daemon/cluster-ops.js';
import { healthLines, humanBytes } from '../daemon/ops-cli.js';
import { printJson, withClient } from './common.js';

/** `dfs status`. */
export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      'state of the cluster: leader, members up, capacity, chunk servers up/suspect/dead/draining, chunks healthy/under-protected/lost, ' +
        'repair, rebalance and drain progress. Exit 1 on a known problem (no leader, a member or chunk server down, a chunk under-protected or lost); ' +
        "chunk health the leader has not scanned yet is shown as unknown and does not fail",
    )
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (o: { addr?: string; dataDir?: string; json?: boolean }) => {
      await withClient(o, async (client, addr) => {
        const { report: r, health } = await clusterStatusWithHealth(client, addr);
        const healthy = r.healthy;
        if (o.json) printJson(r);
        else {
          const up = r.nodes.filter((n) => n.state === 'up').length;
          const fs = r.capacity;
          const lines = [
            `cluster: ${healthy ? 'healthy' : 'DEGRADED'}${r.problems.length ? ` (${r.problems.join('; ')})` : ''}  leader: ${r.leader || '(none)'}  nodes: ${up}/${r.nodes.length} up`,
            `capacity: ${humanBytes(fs.totalBytes - fs.freeBytes)} used of ${humanBytes(fs.totalBytes)} (${humanBytes(fs.availBytes)} free)`,
            `files: ${fs.files}`,
            ...(health ? healthLines(health) : [`health: ${r.healthError}`]),
          ];
          process.stdout.write(lines.join('\n') + '\n');
        }
        if (!healthy) process.exitCode = 1;
      });
    });
}
