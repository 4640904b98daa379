// `dfs dev up|status|down`: a local cluster of daemon processes on 127.0.0.1 for
// development (src/daemon/dev.ts does the work).
import path from 'node:path';
import type { Command } from 'commander';
import { ADMIN_TOKEN_FILE, READONLY_TOKEN_FILE } from '../daemon/console-access.js';
import { DEFAULT_DEV_DATA_DIR, DEFAULT_DEV_MOUNT, devDown, devStatus, devUp } from '../daemon/dev.js';
import { CliError, printJson, table } from './common.js';

/** `dfs dev up|status|down`. */
export function registerDev(program: Command): void {
  const dev = program.command('dev').description('a local cluster on 127.0.0.1 for development');
  dev
    .command('up')
    .description('start daemons, wait until ready, mount, print what runs where')
    .option('--nodes <n>', 'number of daemons', '1')
    .option('--mount <dir>', 'mount point', DEFAULT_DEV_MOUNT)
    .option('--no-mount', 'do not mount')
    .option('--mount-all <dir>', 'also mount node i at DIR/i')
    .option('--data-dir <dir>', 'where the daemons keep their data', DEFAULT_DEV_DATA_DIR)
    .option('--base-port <port>', 'first port to try', '7400')
    .option('--dead-after <duration>', 'a chunk server silent this long is dead (default 30s)')
    .option('--json', 'machine-readable output')
    .action(async (o: { nodes: string; mount: string | false; mountAll?: string; dataDir: string; basePort: string; deadAfter?: string; json?: boolean }) => {
      const nodes = Number(o.nodes);
      if (!Number.isInteger(nodes) || nodes < 1 || nodes > 64) throw new CliError('--nodes must be an integer from 1 to 64');
      const state = await devUp({
        nodes,
        mount: o.mount === false ? null : o.mount,
        mountAll: o.mountAll ?? null,
        dataDir: o.dataDir,
        basePort: Number(o.basePort),
        readyTimeoutMs: 60_000,
        extraArgs: o.deadAfter ? ['--dead-after', o.deadAfter] : [],
      });
      if (o.json) printJson(state);
      else {
        process.stdout.write(
          table([['NODE', 'PID', 'GRPC', 'HTTP', 'DATA DIR', 'MOUNT'], ...state.nodes.map((n) => [n.nodeId, String(n.pid), n.grpc, n.http, n.dataDir, n.mount ?? '-'])]),
        );
        const first = state.nodes[0];
        process.stdout.write(
          `console: http://${first.http}/ (any node's HTTP address); sign in with the token in <data dir>/${ADMIN_TOKEN_FILE} (admin) or <data dir>/${READONLY_TOKEN_FILE} (read-only), e.g. ${path.join(first.dataDir, ADMIN_TOKEN_FILE)}\n`,
        );
        process.stdout.write(`dev cluster up; logs in <data dir>/daemon.log; stop with: dfs dev down --data-dir ${o.dataDir}\n`);
      }
    });
  dev
    .command('status')
    .description('list the dev cluster daemons')
    .option('--data-dir <dir>', 'dev cluster data dir', DEFAULT_DEV_DATA_DIR)
    .option('--json', 'machine-readable output')
    .action(async (o: { dataDir: string; json?: boolean }) => {
      const st = await devStatus(o.dataDir);
      if (o.json) {
        printJson(st ?? { dataDir: o.dataDir, nodes: [], leader: null });
        return;
      }
      if (!st || st.nodes.length === 0) {
        process.stdout.write(`no dev cluster in ${o.dataDir}\n`);
        return;
      }
      process.stdout.write(
        table([
          ['NODE', 'PID', 'STATE', 'ROLE', 'GRPC', 'HTTP', 'DATA DIR', 'MOUNT'],
          ...st.nodes.map((n) => [
            n.nodeId,
            String(n.pid),
            n.ready ? 'ready' : n.alive ? 'starting' : 'dead',
            n.nodeId === st.leader ? 'leader' : n.alive ? 'follower' : '-',
            n.grpc,
            n.http,
            n.dataDir,
            n.mount ?? '-',
          ]),
        ]),
      );
      if (st.nodes.some((n) => !n.ready)) process.exitCode = 1;
    });
  dev
    .command('down')
    .description('stop the dev cluster gracefully (flush, unmount, exit)')
    .option('--data-dir <dir>', 'dev cluster data dir', DEFAULT_DEV_DATA_DIR)
    .action(async (o: { dataDir: string }) => {
      const stopped = await devDown(o.dataDir, 30_000);
      process.stdout.write(stopped.length ? `stopped ${stopped.map((n) => `${n.nodeId} (pid ${n.pid})`).join(', ')}\n` : `no dev cluster in ${o.dataDir}\n`);
    });
}
