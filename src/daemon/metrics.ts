// Prometheus metrics of one daemon (prom-client). Counters the layers keep as plain
// numbers are read at scrape time through collect callbacks, so hot paths stay free
// of metric objects.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { OP_NAMES } from '../fuse/adapter.js';

export interface MetricSources {
  metaStats?: () => { cacheHits: number; cacheMisses: number; commandsApplied: number; groupsWritten: number; syncedGroups: number; queueLength: number };
  chunkStats?: () => { objectsWritten: number; objectsDeleted: number; corruptDetected: number; diskBytesRead: number };
  vfs?: () => {
    dirtyBytes: number;
    openHandles: number;
    cacheHits: number;
    cacheMisses: number;
    cacheBytes: number;
    uploads: number;
    uploadBytes: number;
    commits: number;
    /** Decision 0012: directories held, changes queued, and what the queue did. */
    leasedDirs: number;
    nsQueued: number;
    nsAsyncOps: number;
    nsSyncOps: number;
    nsBatches: number;
    nsPoisoned: number;
    nsRecalls: number;
    nsTaken: number;
    nsTakeFailed: number;
    nsResent: number;
  };
  gc?: () => { chunksDeleted: number; pending: number };
  log?: () => { writeErrors: number; droppedLines: number };
}

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly fuseOps: Counter<'op' | 'result'>;
  private readonly fuseLatency: Histogram<'op'>;
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });

  constructor(sources: MetricSources) {
    collectDefaultMetrics({ register: this.registry, prefix: 'dfs_process_' });
    this.loopDelay.enable();
    this.fuseOps = new Counter({
      name: 'dfs_fuse_ops_total',
      help: 'FUSE requests answered, by operation and result (ok or errno name/number)',
      labelNames: ['op', 'result'],
      registers: [this.registry],
    });
    this.fuseLatency = new Histogram({
      name: 'dfs_fuse_op_seconds',
      help: 'FUSE request latency from arrival in JavaScript to reply',
      labelNames: ['op'],
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers: [this.registry],
    });
    const delay = this.loopDelay;
    new Gauge({
      name: 'dfs_event_loop_delay_p99_seconds',
      help: 'Event loop delay, 99th percentile since the last scrape',
      registers: [this.registry],
      collect() {
        this.set(delay.percentile(99) / 1e9);
        delay.reset();
      },
    });
    const gauge = (name: string, help: string, read: () => number | undefined) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const v = read();
          if (v !== undefined) this.set(v);
        },
      });
    const m = sources.metaStats;
    if (m) {
      gauge('dfs_meta_cache_hits', 'Meta server inode/dentry cache hits', () => m().cacheHits);
      gauge('dfs_meta_cache_misses', 'Meta server inode/dentry cache misses', () => m().cacheMisses);
      gauge('dfs_meta_commands_applied', 'Namespace commands applied', () => m().commandsApplied);
      gauge('dfs_meta_groups_written', 'Group commits written to the store', () => m().groupsWritten);
      gauge('dfs_meta_synced_groups', 'Group commits written with fsync', () => m().syncedGroups);
      gauge('dfs_meta_queue_length', 'Commands waiting to be applied', () => m().queueLength);
    }
    const c = sources.chunkStats;
    if (c) {
      gauge('dfs_chunk_objects_written', 'Chunk objects written by this chunk server', () => c().objectsWritten);
      gauge('dfs_chunk_objects_deleted', 'Chunk objects deleted by this chunk server', () => c().objectsDeleted);
      gauge('dfs_chunk_corrupt_detected', 'Chunk reads that failed a CRC32C check', () => c().corruptDetected);
      gauge('dfs_chunk_disk_bytes_read', 'Bytes read from chunk files', () => c().diskBytesRead);
    }
    const v = sources.vfs;
    if (v) {
      gauge('dfs_client_dirty_bytes', 'Write-back buffer bytes held by the client', () => v().dirtyBytes);
      gauge('dfs_client_open_handles', 'Open file and directory handles', () => v().openHandles);
      gauge('dfs_client_read_cache_hits', 'Client block cache hits', () => v().cacheHits);
      gauge('dfs_client_read_cache_misses', 'Client block cache misses', () => v().cacheMisses);
      gauge('dfs_client_read_cache_bytes', 'Client block cache size', () => v().cacheBytes);
      gauge('dfs_client_chunk_uploads', 'Chunks uploaded by the client', () => v().uploads);
      gauge('dfs_client_chunk_upload_bytes', 'Bytes uploaded by the client', () => v().uploadBytes);
      gauge('dfs_client_commits', 'Write commits sent by the client', () => v().commits);
      gauge('dfs_client_leased_dirs', 'Directories this mount holds exclusively (answered from memory)', () => v().leasedDirs);
      gauge('dfs_client_ns_queued', 'Namespace changes queued, not yet sent to the leader', () => v().nsQueued);
      gauge('dfs_client_ns_async_ops', 'Namespace changes answered from a lease', () => v().nsAsyncOps);
      gauge('dfs_client_ns_sync_ops', 'Namespace changes that waited for the leader', () => v().nsSyncOps);
      gauge('dfs_client_ns_batches', 'Batches of namespace changes sent', () => v().nsBatches);
      gauge('dfs_client_ns_poisoned', 'Batches answered from leases that did not apply whole (a bug or a lost lease)', () => v().nsPoisoned);
      gauge('dfs_client_lease_recalls', 'Directory leases the leader recalled from this mount', () => v().nsRecalls);
      gauge('dfs_client_leases_taken', 'Leases this mount took on directories that already existed (listing loaded)', () => v().nsTaken);
      gauge('dfs_client_lease_take_failed', 'Takes of existing directories refused (another holder) or given up (listing too large, recalled while loading)', () => v().nsTakeFailed);
      gauge('dfs_client_ns_resent', 'Namespace batches sent again after no answer came (leader change, timeout)', () => v().nsResent);
    }
    const g = sources.gc;
    if (g) {
      gauge('dfs_gc_chunks_deleted', 'Unreferenced chunk objects deleted by GC', () => g().chunksDeleted);
      gauge('dfs_gc_pending', 'Garbage chunks seen in the last GC round', () => g().pending);
    }
    const l = sources.log;
    if (l) {
      gauge('dfs_log_write_errors', 'Writes of the daemon log that failed (ENOSPC, EPIPE, ...); the daemon goes on', () => l().writeErrors);
      gauge('dfs_log_dropped_lines', 'Log lines dropped while the log destination failed', () => l().droppedLines);
    }
  }

  /** Record one answered FUSE request. */
  observeFuseOp(op: number, errno: number, startNs: bigint): void {
    const name = OP_NAMES[op] ?? String(op);
    this.fuseOps.inc({ op: name, result: errno === 0 ? 'ok' : String(errno) });
    this.fuseLatency.observe({ op: name }, Number(process.hrtime.bigint() - startNs) / 1e9);
  }

  close(): void {
    this.loopDelay.disable();
  }
}
