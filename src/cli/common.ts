// What the dfs subcommands share: the one-line operating error (CliError), output
// helpers, and how a command finds and talks to a daemon (--addr, --data-dir, DFS_ADDR,
// or the daemon behind a path in a mount).
import { readDevState, DEFAULT_DEV_DATA_DIR } from '../daemon/dev.js';
import { locateInMount, locateInNamespace, type Located } from '../daemon/inspect.js';
import { MetaClient } from '../meta/grpc.js';
export { clusterViewOrFail, healthOf, isUnimplemented, leaderView, rpcText } from '../daemon/cluster-ops.js';

/** An operating error: bin/dfs.ts prints `dfs: <message>` and exits 1. */
export class CliError extends Error {}

/** Options every command that talks to a cluster takes. */
export interface AddrOptions {
  addr?: string;
  dataDir?: string;
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n') + '\n';
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The daemon address a command talks to: --addr, then --data-dir's dev cluster, then DFS_ADDR. */
export async function resolveAddr(opts: AddrOptions): Promise<string> {
  if (opts.addr) return opts.addr;
  if (opts.dataDir) {
    const st = await readDevState(opts.dataDir);
    if (!st || st.nodes.length === 0) throw new CliError(`no dev cluster state in ${opts.dataDir}`);
    return st.nodes[0].grpc;
  }
  if (process.env.DFS_ADDR) return process.env.DFS_ADDR;
  const st = await readDevState(DEFAULT_DEV_DATA_DIR);
  if (st && st.nodes.length > 0) return st.nodes[0].grpc;
  throw new CliError('no cluster given: use --addr HOST:PORT, --data-dir DIR or DFS_ADDR');
}

/** Connect to the daemon `o` names, check it answers, run `fn` (calls with `deadlineMs` each), close. */
export async function withClient<T>(o: AddrOptions, fn: (client: MetaClient, addr: string) => Promise<T>, deadlineMs = 5000): Promise<T> {
  const addr = await resolveAddr(o);
  const client = await MetaClient.connect(addr, { attempts: 1, deadlineMs });
  try {
    await client.waitReady(5000).catch(() => {
      throw new CliError(`cannot reach a dfs daemon at ${addr}`);
    });
    return await fn(client, addr);
  } finally {
    client.close();
  }
}

/**
 * PATH in a dfs mount (the daemon from the mount's fsname), or with --addr an absolute
 * path in the filesystem; then connect and run `fn` with the inode it names.
 */
export async function withPath<T>(p: string, o: { addr?: string }, fn: (client: MetaClient, loc: Located) => Promise<T>): Promise<T> {
  if (o.addr) return withClient({ addr: o.addr }, async (client, addr) => fn(client, await locateInNamespace(client, addr, p)));
  const loc = await locateInMount(p);
  return withClient({ addr: loc.address }, (client) => fn(client, loc));
}

/** A one-line progress indicator on a terminal's stderr, redrawn at most 10 times a second. */
export function progressBar(enabled: boolean): { update(draw: () => string): void; clear(): void } {
  let lastMs = 0;
  let shown = false;
  return {
    update(draw) {
      if (!enabled) return;
      const now = Date.now();
      if (now - lastMs < 100) return;
      lastMs = now;
      shown = true;
      process.stderr.write(`\r\x1b[K${draw()}`);
    },
    clear() {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}
