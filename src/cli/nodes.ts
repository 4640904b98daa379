// `dfs nodes` (the chunk servers as the leader sees them) and `dfs nodes what-if-lost`
// (which files would lose data or protection if those nodes died now).
import { showBytes } from '../daemon/names.js';
import type { Command } from 'commander';
import { nodeProblem, nodeRow, nodesTable, type NodeRow } from '../daemon/ops-cli.js';
import { whatIfLost } from '../daemon/fsck.js';
import { DEFAULT_WALK_OPTIONS } from '../daemon/ns-walk.js';
import { ROOT_INO } from '../meta/types.js';
import { CliError, clusterViewOrFail, healthOf, printJson, progressBar, table, withClient } from './common.js';

/** `dfs nodes` and `dfs nodes what-if-lost <node...>`. */
export function registerNodes(program: Command): void {
  const nodesCmd = program
    .command('nodes')
    .description('the chunk servers: state (liveness, and draining/drained/dead), zone/rack, capacity, utilization, chunks, last heartbeat; exit 1 when any is not up, or dead or draining')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (o: { addr?: string; dataDir?: string; json?: boolean }) => {
      await withClient(o, async (client) => {
        const view = await clusterViewOrFail(client);
        const rows: Array<NodeRow & { toMove: number | null }> = view.nodes.map(nodeRow).map((r) => ({ ...r, toMove: null }));
        rows.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
        // Drain progress comes from the leader's last scan; without it the table still shows.
        if (rows.some((r) => r.adminState === 'draining')) {
          const { health } = await healthOf(client);
          for (const r of rows) r.toMove = health?.nodes.find((n) => n.nodeId === r.nodeId)?.toMove ?? null;
        }
        const problems = rows.map((r) => [r.nodeId, nodeProblem(r)] as const).filter(([, p]) => p !== null);
        if (o.json) printJson({ leader: view.leader || null, nodes: rows, healthy: problems.length === 0 });
        else if (rows.length === 0) process.stdout.write('no chunk servers have registered yet\n');
        else {
          const t = nodesTable(rows);
          if (rows.some((r) => r.adminState === 'draining')) {
            t[0].push('TO MOVE');
            rows.forEach((r, i) => t[i + 1].push(r.adminState === 'draining' ? (r.toMove === null ? '?' : String(r.toMove)) : '-'));
          }
          process.stdout.write(table(t));
          const up = rows.filter((r) => r.state === 'up').length;
          process.stdout.write(`${rows.length} node${rows.length === 1 ? '' : 's'}: ${up} up${problems.length ? `; not healthy: ${problems.map(([id, p]) => `${id} ${p}`).join(', ')}` : ''}\n`);
        }
        if (problems.length > 0) process.exitCode = 1;
      });
    });
  nodesCmd
    .command('what-if-lost')
    .description(
      'dry run: which files would lose data (no copy left: every replica, or more than m shards, on those nodes) or protection (fewer copies than the layout) ' +
        'if the given nodes died now, from where the namespace places copies and which nodes are alive. Exit 1 when any file would lose data',
    )
    .argument('<node...>', 'node ids')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (ids: string[], own: { addr?: string; dataDir?: string; json?: boolean }, cmd: Command) => {
      // `dfs nodes --addr X what-if-lost N` and `dfs nodes what-if-lost N --addr X` alike (the parent takes its options from anywhere).
      const o = cmd.optsWithGlobals<{ addr?: string; dataDir?: string; json?: boolean }>();
      void own;
      await withClient(o, async (client) => {
        const view = await clusterViewOrFail(client);
        const known = new Map(view.nodes.map((n) => [n.nodeId, { state: n.state, adminState: n.adminState || 'active' }]));
        const unknown = ids.filter((id) => !known.has(id));
        if (unknown.length > 0) {
          throw new CliError(`no chunk server named ${unknown.map((u) => `'${u}'`).join(', ')} in the cluster (known: ${[...known.keys()].sort().join(', ') || 'none'})`);
        }
        const bar = progressBar(!o.json && process.stderr.isTTY === true);
        const r = await whatIfLost(client, { ino: ROOT_INO, path: '/' }, known, new Set(ids), DEFAULT_WALK_OPTIONS, (p) =>
          bar.update(() => `what-if-lost: ${p.files} files, ${p.chunks} chunks looked at`),
        );
        bar.clear();
        const losingData = r.affected.filter((f) => f.impact === 'lose-data');
        const losingProtection = r.affected.filter((f) => f.impact === 'lose-protection');
        const affected = r.affected.map((f) => ({ ...f, path: showBytes(f.path) }));
        if (o.json) printJson({ nodes: ids, files: r.files, chunks: r.chunks, loseData: losingData.length, loseProtection: losingProtection.length, affected });
        else {
          for (const f of affected) {
            const what = f.impact === 'lose-data' ? 'LOSES DATA' : 'loses protection';
            const chunks = (n: number) => `${n} chunk${n === 1 ? '' : 's'}`;
            const detail = [f.chunksLosingData ? `${chunks(f.chunksLosingData)} with no copy left` : '', f.chunksLosingProtection ? `${chunks(f.chunksLosingProtection)} below their copies` : '']
              .filter(Boolean)
              .join(', ');
            process.stdout.write(`${what.padEnd(17)} ${f.path}  (${detail})\n`);
          }
          process.stdout.write(
            `what-if-lost ${ids.join(' ')}: ${r.files} files, ${r.chunks} chunks: ${losingData.length} files would lose data, ${losingProtection.length} would lose protection\n`,
          );
        }
        if (losingData.length > 0) process.exitCode = 1;
      });
    });
}
