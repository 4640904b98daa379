// When a queue will be empty at the pace it shrank lately (pure: the Overview page's repair
// ETA, unit-tested in test/unit/console/eta.test.ts).

/** The fields of a history sample the estimate reads (src/daemon/history.ts). */
export interface QueueSample {
  timeMs: number;
  repairQueue: number | null;
}

/** How far back the pace is measured. */
export const ETA_WINDOW_MS = 120_000;

/**
 * Ms until the repair queue (`queueNow` chunks) is empty at the pace it shrank over the
 * samples of the last ETA_WINDOW_MS; null when it did not shrink there, or there are fewer
 * than two samples (an estimate from nothing would be made up).
 */
export function repairEtaMs(samples: readonly QueueSample[], queueNow: number): number | null {
  if (queueNow === 0 || samples.length === 0) return null;
  const end = samples[samples.length - 1].timeMs;
  const recent = samples.filter((s) => s.repairQueue !== null && s.timeMs >= end - ETA_WINDOW_MS);
  if (recent.length < 2) return null;
  const first = recent[0];
  const last = recent[recent.length - 1];
  const shrunk = first.repairQueue! - last.repairQueue!;
  if (shrunk <= 0 || last.timeMs <= first.timeMs) return null;
  return (queueNow / shrunk) * (last.timeMs - first.timeMs);
}

/** "45 s", "12 min", "3.5 h". */
export function durationText(ms: number): string {
  if (ms < 120_000) return `${Math.max(1, Math.round(ms / 1000))} s`;
  if (ms < 2 * 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}
