// `dfs status`: the cluster at a glance (leader, members, capacity, chunk health); exit 1
// on a known problem.
import type { Command } from 'commander';
import { healthJson, healthLines, humanBytes, nodeProblem, nodeRow, statusVerdict } from '../daemon/ops-cli.js';
import { CliError, healthOf, leaderView, printJson, withClient } from './common.js';

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
        const raft = await leaderView(client);
        const fs = await client.statfs();
        if (!fs.ok) throw new CliError(`statfs failed: errno ${fs.errno}`);
        // A member whose storage cannot write or whose disk is below its reserve (issue 16)
        // is reported by its heartbeats.
        const problems = new Map((await client.clusterView().catch(() => null))?.nodes.map((n) => [n.nodeId, nodeProblem(nodeRow(n))] as const) ?? []);
        const nodes = raft.members.map((m) => {
          const problem = problems.get(m.nodeId);
          const disk = problem?.startsWith('storage fault') ? 'storage fault' : problem?.startsWith('disk full') ? 'disk full' : null;
          return {
            nodeId: m.nodeId,
            address: m.address,
            state: disk ?? (m.nodeId === raft.leader || m.recentActive ? 'up' : 'unreachable'),
            role: m.nodeId === raft.leader ? 'leader' : m.isLearner ? 'learner' : 'follower',
            ...(disk ? { problem } : {}),
          };
        });
        const up = nodes.filter((n) => n.state === 'up').length;
        const { health, error: healthError } = await healthOf(client);
        const verdict = statusVerdict({ leader: raft.leader || null, members: nodes, health });
        const healthy = verdict.healthy;
        if (o.json) {
          printJson({
            addr,
            leader: raft.leader || null,
            term: raft.term,
            nodes,
            capacity: fs.value,
            healthy,
            problems: verdict.problems,
            chunksKnown: verdict.chunksKnown,
            health: health ? healthJson(health) : null,
            healthError,
          });
        } else {
          const lines = [
            `cluster: ${healthy ? 'healthy' : 'DEGRADED'}${verdict.problems.length ? ` (${verdict.problems.join('; ')})` : ''}  leader: ${raft.leader || '(none)'}  nodes: ${up}/${nodes.length} up`,
            `capacity: ${humanBytes(fs.value.totalBytes - fs.value.freeBytes)} used of ${humanBytes(fs.value.totalBytes)} (${humanBytes(fs.value.availBytes)} free)`,
            `files: ${fs.value.files}`,
            ...(health ? healthLines(health) : [`health: ${healthError}`]),
          ];
          process.stdout.write(lines.join('\n') + '\n');
        }
        if (!healthy) process.exitCode = 1;
      });
    });
}
