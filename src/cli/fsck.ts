// `dfs fsck [PATH]`: every copy of every chunk under PATH asked for on its holder; lists
// what is lost or under-protected, optionally reports it for repair.
import type { Command } from 'commander';
import { locateInMount, locateInNamespace } from '../daemon/inspect.js';
import { fsckSummary, progressLine } from '../daemon/ops-cli.js';
import { DEFAULT_STATTER_OPTIONS, fsck, GrpcCopyStatter, type FsckReport } from '../daemon/fsck.js';
import { DEFAULT_WALK_OPTIONS } from '../daemon/ns-walk.js';
import type { MetaClient } from '../meta/grpc.js';
import { ROOT_INO } from '../meta/types.js';
import { parseShownPath, showBytes } from '../daemon/names.js';
import { CliError, clusterViewOrFail, printJson, progressBar, withClient } from './common.js';

/** A namespace root for fsck: PATH in a mount, or (with --addr/--data-dir, or no PATH) a path in the namespace. */
async function withWalkRoot<T>(
  p: string | undefined,
  o: { addr?: string; dataDir?: string },
  fn: (client: MetaClient, root: { ino: number; path: string }) => Promise<T>,
): Promise<T> {
  // The walk joins namespace names (byte strings) to the root's path: the root as bytes too.
  if (p === undefined) return withClient(o, (client) => fn(client, { ino: ROOT_INO, path: '/' }));
  if (o.addr || o.dataDir) return withClient(o, async (client, addr) => fn(client, { ino: (await locateInNamespace(client, addr, p)).ino, path: parseShownPath(p) }));
  const loc = await locateInMount(p);
  return withClient({ addr: loc.address }, (client) => fn(client, { ino: loc.ino, path: Buffer.from(p, 'utf8').toString('latin1') }));
}

/** Most chunks listed per file in text output (--json has them all). */
const FSCK_CHUNKS_SHOWN = 3;

function printFsck(r: FsckReport): void {
  const out: string[] = [];
  for (const f of r.problems) {
    out.push(`${f.state === 'lost' ? 'LOST' : 'under-protected'}  ${showBytes(f.path)}`);
    for (const c of f.chunks.slice(0, FSCK_CHUNKS_SHOWN)) {
      const bad = c.copies.filter((x) => x.health !== 'ok').map((x) => `${x.nodeId || `slot ${x.slot}`}: ${x.health}${x.detail && x.health !== 'missing' ? ` (${x.detail})` : ''}`);
      out.push(`  chunk ${c.index} (${c.chunkIdHex}): ${c.good} of ${c.want} copies ok${bad.length ? `; ${bad.join(', ')}` : ''}`);
    }
    if (f.chunks.length > FSCK_CHUNKS_SHOWN) out.push(`  ... and ${f.chunks.length - FSCK_CHUNKS_SHOWN} more chunks not healthy`);
  }
  for (const x of r.repairs) {
    out.push(
      x.reported
        ? `repair: reported the ${x.health} copy of chunk ${x.chunkIdHex} on ${x.nodeId} (${showBytes(x.path)}); the leader re-creates it from a good copy if one is left`
        : `repair: could not report the copy of chunk ${x.chunkIdHex} on ${x.nodeId}: ${x.error}`,
    );
  }
  out.push(fsckSummary(r));
  process.stdout.write(out.join('\n') + '\n');
}

/** `dfs fsck [path]`. */
export function registerFsck(program: Command): void {
  program
    .command('fsck')
    .description(
      "check the namespace against the chunk servers: every copy of every chunk of every file under PATH is asked for on its holder (exists, header, length; with --verify every block's CRC32C). " +
        'Lists files with lost data (no readable copy, or fewer than k shards) or at risk (fewer healthy copies than the layout asks), then a summary line. ' +
        'Exit 0 only when every chunk has its full protection',
    )
    .argument('[path]', 'a directory or file inside a dfs mount, or with --addr/--data-dir an absolute path in the filesystem (default: the root)')
    .option('--repair', 'report every missing, corrupt or short copy to the leader, whose repair re-creates it from a good copy')
    .option('--verify', 'read every copy whole and check its block checksums (slow: reads all data once)')
    .option('--timeout <seconds>', 'deadline of each check on a holder', '10')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output')
    .action(async (p: string | undefined, o: { repair?: boolean; verify?: boolean; timeout: string; addr?: string; dataDir?: string; json?: boolean }) => {
      const seconds = Number(o.timeout);
      if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) throw new CliError('--timeout must be a number of seconds above 0, at most 3600');
      await withWalkRoot(p, o, async (client, root) => {
        const view = await clusterViewOrFail(client);
        const nodes = new Map(view.nodes.map((n) => [n.nodeId, { address: n.address, dead: n.state === 'dead' }]));
        const statter = new GrpcCopyStatter(nodes, { ...DEFAULT_STATTER_OPTIONS, verify: o.verify === true, timeoutMs: Math.round(seconds * 1000) });
        const bar = progressBar(!o.json && process.stderr.isTTY === true);
        let report: FsckReport;
        try {
          report = await fsck(client, root, statter, {
            repair: o.repair === true,
            walk: DEFAULT_WALK_OPTIONS,
            onProgress: (c) => bar.update(() => progressLine(c, process.stderr.columns || 80)),
          });
        } finally {
          bar.clear();
          statter.close();
        }
        const ok = report.underProtected === 0 && report.lost === 0;
        if (o.json) {
          // Paths as the text output shows them (names are bytes; JSON wants text).
          const shown = {
            ...report,
            problems: report.problems.map((f) => ({ ...f, path: showBytes(f.path) })),
            repairs: report.repairs.map((x) => ({ ...x, path: showBytes(x.path) })),
          };
          printJson({ path: showBytes(root.path), verify: o.verify === true, repair: o.repair === true, ...shown, ok });
        }
        else printFsck(report);
        if (!ok) process.exitCode = 1;
      });
    });
}
