// `dfs clients`: the client sessions (mounts) the meta leader knows.
import type { Command } from 'commander';
import { sessionsReport } from '../daemon/cluster-ops.js';
import { agoText } from '../daemon/ops-cli.js';
import { printJson, table, withClient } from './common.js';

/** `dfs clients`. */
export function registerClients(program: Command): void {
  program
    .command('clients')
    .description('the client sessions (mounts) the meta leader knows: streams open to it, directory leases held, last renewal')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (o: { addr?: string; dataDir?: string; json?: boolean }) => {
      await withClient(o, async (client) => {
        const r = await sessionsReport(client);
        if (o.json) printJson(r);
        else if (r.sessions.length === 0) process.stdout.write('no client sessions\n');
        else {
          process.stdout.write(
            table([
              ['SESSION', 'CONNECTED', 'LEASES', 'RENEWED'],
              ...r.sessions.map((s) => [s.session, s.streams > 0 ? 'yes' : 'no', String(s.leases), s.lastRenewalAgoMs === null ? 'never' : agoText(s.lastRenewalAgoMs)]),
            ]),
          );
        }
      });
    });
}
