// `dfs cluster add-member|remove-member`: membership of the metadata (Raft) group.
import type { Command } from 'commander';
import { MetaClient } from '../meta/grpc.js';
import type { RaftAdminRequest } from '../meta/gen/dfs/meta/RaftAdminRequest.js';
import { OpsError, removeMember, REMOVE_MEMBER_DEADLINE_MS } from '../daemon/cluster-ops.js';
import { CliError, printJson, resolveAddr } from './common.js';

/** `dfs cluster add-member|remove-member`. */
export function registerCluster(program: Command): void {
  const cluster = program.command('cluster').description('membership of the metadata (Raft) group');
  /** add-member: prints the outcome, fails with its message. */
  const membershipCall = async (o: { addr?: string; dataDir?: string; json?: boolean }, req: RaftAdminRequest, deadlineMs: number) => {
    const addr = await resolveAddr(o);
    const client = await MetaClient.connect(addr, { attempts: 1, deadlineMs });
    try {
      const r = await client.raftAdmin(req).catch((e: Error) => {
        throw new CliError(`cannot reach a dfs daemon at ${addr}: ${e.message.split('\n')[0]}`);
      });
      if (o.json) printJson({ ok: r.errno === 0, errno: r.errno, leader: r.leader || null, message: r.message });
      if (r.errno !== 0) throw new CliError(r.message);
      if (!o.json) process.stdout.write(`${r.message}\n`);
    } finally {
      client.close();
    }
  };
  cluster
    .command('add-member')
    .description('add a node (started with `dfs daemon --join`) as a learner, then promote it to voter once it caught up')
    .argument('<node>', 'node id of the new member (its --node-id)')
    .argument('<address>', 'host:port the new member listens on (its --listen)')
    .option('--timeout <seconds>', 'how long to wait for the learner to catch up', '120')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (node: string, address: string, o: { timeout: string; addr?: string; dataDir?: string; json?: boolean }) => {
      const seconds = Number(o.timeout);
      if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400) throw new CliError('--timeout must be a number of seconds from 1 to 86400');
      await membershipCall(o, { action: 'add-member', nodeId: node, address, timeoutMs: Math.round(seconds * 1000) }, seconds * 1000 + 60_000);
    });
  cluster
    .command('remove-member')
    .description('remove a node from the metadata group (the leader hands over leadership first if it is the one removed)')
    .argument('<node>', 'node id of the member to remove')
    .option('--force', 'remove even when the remaining voters have no live quorum')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (node: string, o: { force?: boolean; addr?: string; dataDir?: string; json?: boolean }) => {
      const addr = await resolveAddr(o);
      const client = await MetaClient.connect(addr, { attempts: 1, deadlineMs: REMOVE_MEMBER_DEADLINE_MS });
      try {
        const r = await removeMember(client, addr, node, o.force === true).catch((e: unknown) => {
          if (o.json && e instanceof OpsError) printJson({ ok: false, code: e.code, message: e.message });
          throw e;
        });
        if (o.json) printJson(r);
        else process.stdout.write(`${r.message}\n`);
      } finally {
        client.close();
      }
    });
}
