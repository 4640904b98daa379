// The console's client of /api/v1 (docs/api/openapi.yaml): typed fetches with the session
// cookie, errors as ApiError {code, message}, and polling that stops while the tab is hidden.
import { useEffect, useRef, useState } from 'preact/hooks';
import { agoText } from '../common/format.js';

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** Called when any call answers 401: the app goes back to the sign-in page. */
let onUnauthenticated: () => void = () => undefined;
export function setUnauthenticatedHandler(f: () => void): void {
  onUnauthenticated = f;
}

async function call<T>(method: string, url: string, body?: unknown): Promise<T> {
  const r = await fetch(url, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let v: unknown = null;
  try {
    v = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError('bad_reply', `${url}: not JSON (${r.status})`, r.status);
  }
  if (!r.ok) {
    const e = (v ?? {}) as { code?: string; message?: string };
    if (r.status === 401 && url !== '/api/v1/session') onUnauthenticated();
    throw new ApiError(e.code ?? 'http_' + r.status, e.message ?? `${url}: HTTP ${r.status}`, r.status);
  }
  return v as T;
}

export const get = <T>(url: string): Promise<T> => call<T>('GET', url);
export const post = <T>(url: string, body: unknown = {}): Promise<T> => call<T>('POST', url, body);
export const del = <T>(url: string): Promise<T> => call<T>('DELETE', url);

export type Role = 'admin' | 'read-only';

// The API's shapes are the daemon's own types (type-only imports: esbuild erases them, and a
// value import of daemon code would fail the browser build), so the pages cannot drift from
// what the daemon sends.
export type { AuditEntry } from '../daemon/console-access.js';
export type { HistorySample } from '../daemon/history.js';
export type { NodesReport, ProtectionCounts, RaftReport, SessionRow, StatusReport } from '../daemon/cluster-ops.js';
import type { DirEntryView, EventView, ProtectionCell as OpsProtectionCell, StatusReport } from '../daemon/cluster-ops.js';
import type { WhatIfReport } from '../daemon/fsck.js';
import type { FileInfo } from '../daemon/inspect.js';
import type { Layout } from '../meta/types.js';

export type ClusterEvent = EventView;
export type DirEntry = DirEntryView;
export type ProtectionCell = Omit<OpsProtectionCell, 'files'>;
/** GET /api/v1/overview: `dfs status --json` and the latest events. */
export type Overview = StatusReport & { recentEvents: ClusterEvent[] | null; role: Role };
/** GET /api/v1/what-if-lost. */
export type WhatIf = WhatIfReport & { nodes: string[]; loseData: number; loseProtection: number };

/** GET /api/v1/browse. */
export interface Browse {
  path: string;
  ino: number;
  type: DirEntry['type'];
  layout: Layout;
  layoutText: string;
  sizeBytes: number;
  entries?: DirEntry[];
  next?: string | null;
  info?: FileInfo;
}

/**
 * `fetcher` now and every `everyMs` while the tab is visible (nothing runs while it is
 * hidden, so an idle console costs the daemons nothing); `reload` asks again at once.
 */
export function usePoll<T>(fetcher: () => Promise<T>, everyMs: number, deps: unknown[] = []): { data: T | null; error: ApiError | null; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [tick, setTick] = useState(0);
  const seq = useRef(0);
  useEffect(() => {
    let timer: number | undefined;
    let stopped = false;
    const run = async () => {
      const mine = ++seq.current;
      try {
        const v = await fetcher();
        if (!stopped && mine === seq.current) {
          setData(v);
          setError(null);
        }
      } catch (e) {
        if (!stopped && mine === seq.current) setError(e instanceof ApiError ? e : new ApiError('network', String(e), 0));
      }
      if (!stopped && everyMs > 0) timer = window.setTimeout(loop, everyMs);
    };
    const loop = () => {
      if (document.visibilityState === 'visible') void run();
      else timer = window.setTimeout(loop, everyMs);
    };
    void run();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [...deps, tick]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

export { humanBytes } from '../common/format.js';

export function ago(ms: number | null): string {
  return ms === null ? 'never' : agoText(ms);
}

export function timeText(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}
