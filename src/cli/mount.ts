// `dfs mount ADDR DIR`: the client role alone (a node that stores nothing).
import type { Command } from 'commander';
import { runDaemon } from './daemon.js';

/** `dfs mount <addr> <dir>`. */
export function registerMount(program: Command): void {
  program
    .command('mount')
    .description('mount a dfs cluster at DIR as a client only (stores nothing)')
    .argument('<addr>', 'address (host:port) of a dfs daemon')
    .argument('<dir>', 'mount point')
    .option('--http <host:port>', 'HTTP address for /healthz, /readyz, /metrics')
    .option('--log-level <level>', 'trace|debug|info|warn|error')
    .option('--node-id <id>', 'name of this client in logs and sessions')
    .action(async (addr: string, dir: string, o: { http?: string; logLevel?: string; nodeId?: string }) => {
      await runDaemon({ connect: addr, mount: dir, http: o.http, logLevel: o.logLevel, nodeId: o.nodeId ?? 'client' }, 'client');
    });
}
