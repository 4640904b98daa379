// `dfs layout set|get`: a directory's layout (R replicas or k+m erasure coding), inherited
// by what is created under it.
import type { Command } from 'commander';
import { parseEcScheme } from '../chunks/ec.js';
import { setLayout } from '../daemon/cluster-ops.js';
import { getattrOrFail, isDirAttr, layoutText, parseLayoutOptions } from '../daemon/inspect.js';
import { S_IFMT, S_IFREG } from '../meta/types.js';
import { printJson, withPath } from './common.js';

/** `dfs layout set|get`. */
export function registerLayout(program: Command): void {
  const layout = program
    .command('layout')
    .description('how file data is protected: R replicas or k+m erasure coding, set per directory and inherited by what is created under it');
  layout
    .command('set')
    .description('set the layout of a directory; files and directories created under it afterwards inherit it (existing files keep theirs)')
    .argument('<path>', 'a directory inside a dfs mount (or, with --addr, an absolute path in the filesystem)')
    .option('--replicas <n>', 'keep N full copies on distinct nodes (1-16)')
    .option('--ec <k+m>', 'erasure code: k data + m parity shards on distinct nodes (k 1-24, m 1-6), e.g. 6+3')
    .option('--addr <host:port>', 'a daemon of the cluster, when PATH is not in a mount')
    .option('--json', 'machine-readable output')
    .action(async (p: string, o: { replicas?: string; ec?: string; addr?: string; json?: boolean }) => {
      const wanted = parseLayoutOptions(o, parseEcScheme);
      await withPath(p, o, async (client, loc) => {
        const r = await setLayout(client, loc, wanted);
        if (o.json) printJson(r);
        else process.stdout.write(`${r.path}: ${layoutText(r.layout)} (inherited by files and directories created under it from now on)\n`);
      });
    });
  layout
    .command('get')
    .description('the layout of a directory (what new entries under it inherit) or of a file (what its data was written with)')
    .argument('<path>', 'a file or directory inside a dfs mount (or, with --addr, an absolute path in the filesystem)')
    .option('--addr <host:port>', 'a daemon of the cluster, when PATH is not in a mount')
    .option('--json', 'machine-readable output')
    .action(async (p: string, o: { addr?: string; json?: boolean }) => {
      await withPath(p, o, async (client, loc) => {
        const attr = await getattrOrFail(client, loc);
        const type = isDirAttr(attr) ? 'directory' : (attr.mode & S_IFMT) === S_IFREG ? 'file' : 'other';
        if (o.json) printJson({ path: loc.shown, ino: loc.ino, type, layout: attr.layout });
        else process.stdout.write(`${loc.shown}: ${layoutText(attr.layout)}\n`);
      });
    });
}
