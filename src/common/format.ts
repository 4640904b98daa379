// Human-readable sizes and ages, for the CLI's tables and the console's pages alike (pure,
// no imports: the console bundles it for the browser).

/** 1536 → "1.5 KiB". */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

export function humanRate(bytesPerS: number): string {
  return `${humanBytes(Math.round(bytesPerS))}/s`;
}

/** "0.4s ago", "12s ago", "3m ago", "2h ago", "4d ago". */
export function agoText(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s ago`;
  if (ms < 120_000) return `${Math.round(ms / 1000)}s ago`;
  if (ms < 2 * 3_600_000) return `${Math.round(ms / 60_000)}m ago`;
  if (ms < 2 * 86_400_000) return `${Math.round(ms / 3_600_000)}h ago`;
  return `${Math.round(ms / 86_400_000)}d ago`;
}
