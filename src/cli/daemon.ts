// `dfs daemon`: one daemon in the foreground (meta + chunk server, optionally mounting),
// configured from flags and/or a JSON file. SIGTERM/SIGINT stop it gracefully; a second
// signal exits at once.
import type { Command } from 'commander';
import { readConfigFile, validateConfig, type RawConfig } from '../daemon/config.js';
import { Daemon } from '../daemon/daemon.js';

/** Start a daemon from flags (and a config file), and stop it gracefully on SIGTERM/SIGINT. */
export async function runDaemon(raw: RawConfig, mode: 'server' | 'client', configFile?: string): Promise<void> {
  const fromFile = configFile ? await readConfigFile(configFile) : {};
  const merged: RawConfig = { ...fromFile };
  for (const [k, v] of Object.entries(raw)) if (v !== undefined) merged[k as keyof RawConfig] = v;
  const config = validateConfig(merged, mode);
  const daemon = await Daemon.start(config);
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      daemon.log.warn({ sig }, 'second signal: exiting without a clean stop');
      process.exit(1);
    }
    daemon.log.info({ sig }, 'stopping');
    daemon.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        daemon.log.error({ err: String(e) }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** `dfs daemon [options]`. */
export function registerDaemon(program: Command): void {
  program
    .command('daemon')
    .description('run one daemon in the foreground (meta + chunk server, optionally mounting)')
    .option('--config <file>', 'JSON config file (keys as in systemd/dfs.json.example)')
    .option('--data-dir <dir>', 'where the namespace and chunks live')
    .option('--listen <host:port>', 'gRPC address')
    .option('--http <host:port>', 'HTTP address for /healthz, /readyz, /metrics')
    .option('--mount <dir>', 'mount the filesystem here')
    .option('--node-id <id>', 'stable node id')
    .option('--log-level <level>', 'trace|debug|info|warn|error')
    .option('--chunk-size <bytes>', 'chunk size of new files')
    .option('--initial-cluster <members>', 'Raft voters of a new cluster: id=host:port,... (this node included)')
    .option('--zone <label>', 'failure-domain zone of this chunk server (placement spreads copies over zones)')
    .option('--rack <label>', 'failure-domain rack of this chunk server')
    .option('--dead-after <duration>', 'a chunk server silent this long is dead (default 30s; e.g. 45s, 2m)')
    .option('--reserve <size>', 'free space kept for the Raft log, namespace and logs; below it on any voter new data gets ENOSPC (default the larger of 1g and 2% of the disk; e.g. 512m)')
    .option('--storage-failed-after <duration>', 'a node whose namespace storage cannot write this long is failed: its copies are re-created elsewhere (default 2m)')
    .option('--repair-rate <MBps>', 'MB/s the leader may copy to repair, drain and rebalance (default 64)')
    .option('--orphan-grace <duration>', 'unreferenced chunk objects older than this are deleted (default 1h)')
    .option('--inventory-interval <duration>', 'pause between orphan-GC passes over this node\'s chunks (default 10m; 0 = off)')
    .option('--scrub-rate <MBps>', 'MB/s of background checksum verification (default 8; 0 = off)')
    .option('--scrub-pause <duration>', 'pause between scrub passes (default 10m)')
    .option('--session-idle <duration>', 'a mount not heard from this long has its open handles closed (an unlinked file it held is reclaimed; default 5m)')
    .option('--client-idle <duration>', 'a client not heard from this long loses its retry (dedup) record (default 10m)')
    .option('--join <addrs>', 'join an existing cluster through any of its members (host:port,...); then run `dfs cluster add-member`')
    .option('--raft-tick <ms>', 'Raft tick length (elections take 10-20 ticks)')
    .option('--raft-snapshot-every <n>', 'take a Raft snapshot and compact the log every N applied entries (default 20000)')
    .action(
      async (o: {
        config?: string;
        dataDir?: string;
        listen?: string;
        http?: string;
        mount?: string;
        nodeId?: string;
        logLevel?: string;
        chunkSize?: string;
        initialCluster?: string;
        join?: string;
        zone?: string;
        rack?: string;
        deadAfter?: string;
        storageFailedAfter?: string;
        reserve?: string;
        repairRate?: string;
        orphanGrace?: string;
        inventoryInterval?: string;
        scrubRate?: string;
        scrubPause?: string;
        sessionIdle?: string;
        clientIdle?: string;
        raftTick?: string;
        raftSnapshotEvery?: string;
      }) => {
      await runDaemon(
        {
          dataDir: o.dataDir,
          listen: o.listen,
          http: o.http,
          mount: o.mount,
          nodeId: o.nodeId,
          logLevel: o.logLevel,
          chunkSizeBytes: o.chunkSize,
          initialCluster: o.initialCluster,
          join: o.join,
          zone: o.zone,
          rack: o.rack,
          deadAfterMs: o.deadAfter,
          storageFailedAfterMs: o.storageFailedAfter,
          reserveBytes: o.reserve,
          repairRateMBps: o.repairRate,
          orphanGraceMs: o.orphanGrace,
          inventoryIntervalMs: o.inventoryInterval,
          scrubMBps: o.scrubRate,
          scrubPauseMs: o.scrubPause,
          sessionIdleMs: o.sessionIdle,
          clientIdleMs: o.clientIdle,
          raftTickMs: o.raftTick,
          raftSnapshotEvery: o.raftSnapshotEvery,
        },
        'server',
        o.config,
      );
      },
    );
}
