// `dfs info FILE`: a file's size, layout and chunks, with the health of every copy as
// its holder sees it.
import type { Command } from 'commander';
import { fileInfoAt } from '../daemon/cluster-ops.js';
import { getattrOrFail, layoutText, type FileInfo } from '../daemon/inspect.js';
import { humanBytes } from '../daemon/ops-cli.js';
import { CliError, printJson, table, withPath } from './common.js';

function printFileInfo(shown: string, info: FileInfo): void {
  const lines = [
    `${shown}: ${info.sizeBytes} bytes (${humanBytes(info.sizeBytes)}), layout ${layoutText(info.layout)}, chunk size ${humanBytes(info.chunkSizeBytes)}, inode ${info.ino}`,
  ];
  if (info.inline) lines.push('data: inline (stored in the namespace)');
  else if (info.chunks.length === 0) lines.push(info.sizeBytes === 0 ? 'data: none (empty file)' : 'data: no chunks (all holes, read as zeros)');
  else {
    lines.push(`chunks: ${info.chunks.length}${info.holes > 0 ? ` (+${info.holes} holes, read as zeros)` : ''}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  if (info.inline || info.chunks.length === 0) return;
  const rows = [['CHUNK', 'ID', 'SIZE', 'COPY', 'NODE', 'ADDRESS', 'HEALTH']];
  for (const ch of info.chunks) {
    for (const c of ch.copies) {
      const copy = c.kind === 'shard' && ch.ec ? `${c.number < ch.ec.k ? 'data' : 'parity'} shard ${c.number}` : `${c.kind} ${c.number}`;
      rows.push([String(ch.index), ch.chunkIdHex, humanBytes(ch.sizeBytes), copy, c.nodeId || '-', c.address ?? '?', c.health + (c.detail && c.health !== 'ok' ? ` (${c.detail})` : '')]);
    }
  }
  process.stdout.write(table(rows));
  const copies = info.chunks.reduce((n, ch) => n + ch.copies.length, 0);
  process.stdout.write(info.unhealthyCopies === 0 ? `all ${copies} copies ok\n` : `${info.unhealthyCopies} of ${copies} copies NOT ok\n`);
}

/** `dfs info <file>`. */
export function registerInfo(program: Command): void {
  program
    .command('info')
    .description(
      "a file's size, layout and chunks: for each chunk its id, size and every replica/shard with its node and health " +
        '(ok, missing, corrupt, unreachable, error), checked by the holder reading the whole copy and verifying its CRC32C. ' +
        'Exit 1 when any copy is not ok.',
    )
    .argument('<file>', 'a regular file inside a dfs mount (or, with --addr, an absolute path in the filesystem)')
    .option('--no-verify', 'only ask whether each copy exists (header and length checked), without reading it all')
    .option('--timeout <seconds>', 'deadline of each check on a holder', '5')
    .option('--addr <host:port>', 'a daemon of the cluster, when FILE is not in a mount')
    .option('--json', 'machine-readable output')
    .action(async (p: string, o: { verify: boolean; timeout: string; addr?: string; json?: boolean }) => {
      const seconds = Number(o.timeout);
      if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) throw new CliError('--timeout must be a number of seconds above 0, at most 3600');
      await withPath(p, o, async (client, loc) => {
        const attr = await getattrOrFail(client, loc);
        const info = await fileInfoAt(client, loc, attr, { verify: o.verify, timeoutMs: Math.round(seconds * 1000) });
        if (o.json) printJson({ path: loc.shown, ...info, healthy: info.unhealthyCopies === 0 });
        else printFileInfo(loc.shown, info);
        if (info.unhealthyCopies > 0) process.exitCode = 1;
      });
    });
}
