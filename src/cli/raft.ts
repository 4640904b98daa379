// `dfs raft status` and `dfs raft transfer-leader`: the Raft group that replicates the
// namespace.
import type { Command } from 'commander';
import { OpsError, raftReport, transferLeader, TRANSFER_DEADLINE_MS } from '../daemon/cluster-ops.js';
import { printJson, table, withClient } from './common.js';

/** `dfs raft status|transfer-leader`. */
export function registerRaft(program: Command): void {
  const raft = program.command('raft').description('the Raft group that replicates the namespace');
  raft
    .command('status')
    .description("term, leader, commit and applied index, and each member's match index and lag")
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (o: { addr?: string; dataDir?: string; json?: boolean }) => {
      await withClient(o, async (client) => {
        const s = await raftReport(client);
        const members = s.members;
        if (o.json) {
          printJson(s);
          return;
        }
        process.stdout.write(`term ${s.term}  leader ${s.leader || '(none)'}  commit ${s.commit}  applied ${s.applied}  last ${s.lastIndex}  (answered by ${s.nodeId})\n`);
        process.stdout.write(table([['NODE', 'ADDRESS', 'ROLE', 'MATCH', 'LAG', 'STATE'], ...members.map((m) => [m.nodeId, m.address, m.role, String(m.match), String(m.lag), m.state || '-'])]));
        if (!s.leader) process.exitCode = 1;
      });
    });
  raft
    .command('transfer-leader')
    .description('hand leadership to another voter')
    .argument('<node>', 'node id of the new leader')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (node: string, o: { addr?: string; dataDir?: string; json?: boolean }) => {
      await withClient(
        o,
        async (client, addr) => {
          // The daemon at addr answered; this fails when it cannot reach the leader it forwards to.
          const r = await transferLeader(client, addr, node).catch((e: unknown) => {
            if (o.json && e instanceof OpsError) printJson({ ok: false, code: e.code, message: e.message });
            throw e;
          });
          if (o.json) printJson(r);
          else process.stdout.write(`${r.message}\n`);
        },
        TRANSFER_DEADLINE_MS,
      );
    });
}
