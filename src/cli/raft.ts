// `dfs raft status` and `dfs raft transfer-leader`: the Raft group that replicates the
// namespace.
import type { Command } from 'commander';
import { CliError, leaderView, printJson, rpcText, table, withClient } from './common.js';

/** The leader waits up to 10 s for the transfer (raft-admin.ts); a forwarded call adds its hop. */
const TRANSFER_DEADLINE_MS = 20_000;

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
        const s = await leaderView(client);
        const members = s.members.map((m) => ({
          nodeId: m.nodeId,
          address: m.address,
          role: m.nodeId === s.leader ? 'leader' : m.isLearner ? 'learner' : 'follower',
          match: m.match,
          next: m.next,
          lag: Math.max(0, s.lastIndex - m.match),
          state: m.state,
          active: m.recentActive,
        }));
        if (o.json) {
          printJson({ nodeId: s.nodeId, term: s.term, leader: s.leader || null, role: s.role, commit: s.commit, applied: s.applied, lastIndex: s.lastIndex, leadTransferee: s.leadTransferee || null, members });
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
          const r = await client.raftAdmin({ action: 'transfer-leader', nodeId: node }).catch((e: unknown) => {
            throw new CliError(`cannot transfer leadership to ${node} through ${addr}: ${rpcText(e)}`);
          });
          if (o.json) printJson({ ok: r.errno === 0, leader: r.leader || null, message: r.message });
          if (r.errno !== 0) throw new CliError(r.message);
          if (!o.json) process.stdout.write(`${r.message}\n`);
        },
        TRANSFER_DEADLINE_MS,
      );
    });
}
