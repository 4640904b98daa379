// A small SVG line chart for the console's history (at most ~1000 points per series, so a
// polyline is enough; no chart library: decision 0013). Gaps (null) break the line.
import { humanBytes } from '../common/format.js';

export interface Series {
  name: string;
  color: string;
  values: Array<number | null>;
}

const W = 420;
const H = 120;
const PAD_LEFT = 64;
const PAD_BOTTOM = 18;

export type Unit = 'bytes' | 'bytes/s' | 'count' | 'per-s';

function fmt(v: number, unit: Unit): string {
  if (unit === 'bytes') return humanBytes(v);
  if (unit === 'bytes/s') return `${humanBytes(v)}/s`;
  if (unit === 'per-s') return `${v < 10 ? v.toFixed(1) : Math.round(v)}/s`;
  return String(Math.round(v));
}

export function LineChart({ title, times, series, unit, testid }: { title: string; times: number[]; series: Series[]; unit: Unit; testid?: string }) {
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const max = Math.max(1e-9, ...all);
  const t0 = times[0] ?? 0;
  const t1 = times[times.length - 1] ?? 1;
  const x = (t: number) => PAD_LEFT + ((t - t0) / Math.max(1, t1 - t0)) * (W - PAD_LEFT - 4);
  const y = (v: number) => 4 + (1 - v / max) * (H - PAD_BOTTOM - 8);
  const paths = series.map((s) => {
    let d = '';
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    return { ...s, d };
  });
  const last = (s: Series) => [...s.values].reverse().find((v) => v !== null);
  return (
    <div class="card" data-testid={testid}>
      <div class="label">{title}</div>
      <svg viewBox={`0 0 ${W} ${H}`} width="100%" role="img" aria-label={title}>
        <line x1={PAD_LEFT} y1={y(max)} x2={W} y2={y(max)} stroke="#eceef2" />
        <line x1={PAD_LEFT} y1={y(0)} x2={W} y2={y(0)} stroke="#b9c0cc" />
        <text x={PAD_LEFT - 4} y={y(max) + 4} text-anchor="end" font-size="10" fill="#5b6475">{all.length && max > 1e-6 ? fmt(max, unit) : ''}</text>
        <text x={PAD_LEFT - 4} y={y(0)} text-anchor="end" font-size="10" fill="#5b6475">0</text>
        <text x={PAD_LEFT} y={H - 4} font-size="10" fill="#5b6475">{times.length ? new Date(t0).toISOString().slice(11, 16) : ''}</text>
        <text x={W - 4} y={H - 4} text-anchor="end" font-size="10" fill="#5b6475">{times.length ? new Date(t1).toISOString().slice(11, 16) + 'Z' : ''}</text>
        {paths.map((p) => <path key={p.name} d={p.d} fill="none" stroke={p.color} stroke-width="1.5" />)}
      </svg>
      <div class="sub">
        {series.map((s) => {
          const v = last(s);
          return (
            <span key={s.name} style={{ marginRight: '12px' }}>
              <span style={{ color: s.color }}>■</span> {s.name} {v === undefined || v === null ? '-' : fmt(v, unit)}
            </span>
          );
        })}
        {times.length < 2 ? <span>collecting (one sample every 10 s)</span> : null}
      </div>
    </div>
  );
}
