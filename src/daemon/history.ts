// A bounded in-daemon history for the console's charts, so they work without Prometheus:
// every 10 s one sample of the cluster as the leader reports it (capacity, chunk health,
// repair/rebalance rates: one HealthStatus call, forwarded by a follower) and of this daemon
// (Raft commits, bytes read from its chunk files, bytes its mount uploaded). 1080 samples
// (3 h) at most; rates are differences of counters between samples.

export const HISTORY_INTERVAL_MS = 10_000;
export const HISTORY_SAMPLES = 1080;

/** The cluster as the leader reports it (null when it could not be had, or not scanned yet). */
export interface ClusterGauges {
  usedBytes: number | null;
  totalBytes: number | null;
  chunksUnderProtected: number | null;
  chunksLost: number | null;
  repairBytesPerS: number | null;
  rebalanceBytesPerS: number | null;
  repairQueue: number | null;
}

/** What one sample reads: the cluster's gauges, and this daemon's cumulative counters. */
export interface HistoryReading extends ClusterGauges {
  /** Its Raft commit index, bytes read from its chunk files, bytes its mount uploaded. */
  raftCommit: number;
  chunkDiskBytesRead: number;
  mountUploadBytes: number;
}

export interface HistorySample extends ClusterGauges {
  timeMs: number;
  /** Per second since the sample before (null for the first, and after a counter reset). */
  raftCommitsPerS: number | null;
  chunkReadBytesPerS: number | null;
  mountWriteBytesPerS: number | null;
}

export class MetricsHistory {
  private readonly samples: HistorySample[] = [];
  private last: { timeMs: number; r: HistoryReading } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sampling = false;

  constructor(
    private readonly read: () => Promise<HistoryReading>,
    private readonly nowMs: () => number = Date.now,
    readonly capacity = HISTORY_SAMPLES,
  ) {}

  start(intervalMs = HISTORY_INTERVAL_MS): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Takes one sample (a slow or failed read is skipped, never stacked). */
  async sample(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      const r = await this.read();
      this.add(this.nowMs(), r);
    } catch {
      // A sample the cluster cannot answer now is a gap in the charts, nothing more.
    } finally {
      this.sampling = false;
    }
  }

  add(timeMs: number, r: HistoryReading): void {
    const prev = this.last;
    const dt = prev ? (timeMs - prev.timeMs) / 1000 : 0;
    const rate = (now: number, before: number | undefined): number | null => (prev && dt > 0 && before !== undefined && now >= before ? (now - before) / dt : null);
    const { raftCommit, chunkDiskBytesRead, mountUploadBytes, ...gauges } = r;
    this.samples.push({
      timeMs,
      ...gauges,
      raftCommitsPerS: rate(raftCommit, prev?.r.raftCommit),
      chunkReadBytesPerS: rate(chunkDiskBytesRead, prev?.r.chunkDiskBytesRead),
      mountWriteBytesPerS: rate(mountUploadBytes, prev?.r.mountUploadBytes),
    });
    if (this.samples.length > this.capacity) this.samples.shift();
    this.last = { timeMs, r };
  }

  /** Samples of the last `seconds`, oldest first. */
  since(seconds: number): HistorySample[] {
    const from = this.nowMs() - seconds * 1000;
    return this.samples.filter((s) => s.timeMs >= from);
  }
}
