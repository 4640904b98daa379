// Small shared pieces of the console: state badges, utilization bars, error boxes and a
// virtualized list (only the rows in view are in the DOM, so 100 000 entries stay fast).
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import type { ApiError } from './api.js';

export function Badge({ state, text }: { state: string; text?: string }) {
  return <span class={`badge s-${state}`}>{text ?? state}</span>;
}

export function Bar({ pct }: { pct: number | null }) {
  if (pct === null) return <span class="muted">-</span>;
  return (
    <span title={`${pct.toFixed(1)}%`}>
      <span class={`bar${pct > 85 ? ' hot' : ''}`}>
        <span style={{ width: `${Math.min(100, Math.max(0, pct))}%` }} />
      </span>{' '}
      {pct.toFixed(1)}%
    </span>
  );
}

export function ErrorBox({ error }: { error: ApiError | Error | null }) {
  if (!error) return null;
  const code = (error as ApiError).code;
  return (
    <div class="error" role="alert">
      {code ? <b>{code}: </b> : null}
      {error.message}
    </div>
  );
}

export function Card({ label, value, sub, testid }: { label: string; value: ComponentChildren; sub?: ComponentChildren; testid?: string }) {
  return (
    <div class="card" data-testid={testid}>
      <div class="label">{label}</div>
      <div class="value">{value}</div>
      {sub ? <div class="sub">{sub}</div> : null}
    </div>
  );
}

const ROW_PX = 28;

/** Rows of fixed height in a scrolling box; `onEnd` when the last rows come into view (load the next page). */
export function VirtualList<T>({ items, heightPx, row, onEnd, testid }: { items: T[]; heightPx: number; row: (item: T, i: number) => ComponentChildren; onEnd?: () => void; testid?: string }) {
  const [top, setTop] = useState(0);
  const first = Math.max(0, Math.floor(top / ROW_PX) - 5);
  const last = Math.min(items.length, Math.ceil((top + heightPx) / ROW_PX) + 5);
  const rows = [];
  for (let i = first; i < last; i++) {
    rows.push(
      <div class="row" key={i} style={{ top: `${i * ROW_PX}px`, height: `${ROW_PX}px` }}>
        {row(items[i], i)}
      </div>,
    );
  }
  return (
    <div
      class="vlist"
      data-testid={testid}
      style={{ height: `${heightPx}px` }}
      onScroll={(e) => {
        const el = e.currentTarget as HTMLDivElement;
        setTop(el.scrollTop);
        if (onEnd && el.scrollTop + heightPx >= items.length * ROW_PX - ROW_PX * 10) onEnd();
      }}
    >
      <div style={{ height: `${items.length * ROW_PX}px`, position: 'relative' }}>{rows}</div>
    </div>
  );
}
