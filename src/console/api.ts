// The console's client of /api/v1 (docs/api/openapi.yaml): typed fetches with the session
// cookie, errors as ApiError {code, message}, and polling that stops while the tab is hidden.
import { useEffect, useRef, useState } from 'preact/hooks';

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

export interface Overview {
  leader: string | null;
  term: number;
  healthy: boolean;
  problems: string[];
  chunksKnown: boolean;
  nodes: Array<{ nodeId: string; address: string; state: string; role: string }>;
  capacity: { totalBytes: number; freeBytes: number; availBytes: number; files: number };
  health: {
    nodes: { up: number; suspect: number; dead: number; draining: number; drained: number };
    capacity: { totalBytes: number; usedBytes: number; freeBytes: number };
    chunks: { total: number; healthy: number; underProtected: number; lost: number; lastScanAgeMs: number } | null;
    repair: { queue: number; done: number; bytesPerS: number };
    rebalance: { queue: number; done: number; bytesPerS: number };
    drainRemaining: number;
  } | null;
  healthError: string | null;
  recentEvents: ClusterEvent[] | null;
}

export interface NodeRow {
  nodeId: string;
  address: string;
  state: string;
  adminState: string;
  zone: string;
  rack: string;
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
  utilizationPct: number | null;
  chunkCount: number;
  lastHeartbeatAgoMs: number | null;
  toMove: number | null;
}

export interface NodesReport {
  leader: string | null;
  nodes: NodeRow[];
  healthy: boolean;
}

export interface RaftReport {
  nodeId: string;
  term: number;
  leader: string | null;
  role: string;
  commit: number;
  applied: number;
  lastIndex: number;
  members: Array<{ nodeId: string; address: string; role: string; match: number; lag: number; state: string; active: boolean }>;
}

export interface ClusterEvent {
  seq: number;
  timeMs: number;
  kind: string;
  nodeId: string;
  chunkId: number;
  message: string;
}

export interface WhatIf {
  nodes: string[];
  files: number;
  chunks: number;
  loseData: number;
  loseProtection: number;
  affected: Array<{ path: string; impact: 'lose-data' | 'lose-protection'; chunksLosingData: number; chunksLosingProtection: number }>;
}

export interface ProtectionCell {
  scheme: string;
  want: number;
  valid: number;
  state: 'healthy' | 'under-protected' | 'lost';
  chunks: number;
}

export interface DirEntry {
  name: string;
  ino: number;
  type: 'file' | 'directory' | 'symlink' | 'other';
  sizeBytes: number;
  mtimeMs: number;
  layout: string;
}

export interface CopyInfo {
  kind: 'replica' | 'shard';
  number: number;
  nodeId: string;
  address: string | null;
  health: string;
  detail: string | null;
}

export interface Browse {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  layoutText: string;
  sizeBytes: number;
  entries?: DirEntry[];
  next?: string | null;
  info?: { sizeBytes: number; chunkSizeBytes: number; inline: boolean; holes: number; unhealthyCopies: number; chunks: Array<{ index: number; chunkIdHex: string; sizeBytes: number; ec: { k: number; m: number } | null; copies: CopyInfo[] }> };
}

export interface AuditEntry {
  timeMs: number;
  role: Role;
  via: string;
  remote: string;
  action: string;
  target: string;
  params: Record<string, unknown>;
  result: 'ok' | 'error';
  code: string | null;
  message: string;
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

export function ago(ms: number | null): string {
  if (ms === null) return 'never';
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s ago`;
  if (ms < 120_000) return `${Math.round(ms / 1000)}s ago`;
  return `${Math.round(ms / 60_000)}m ago`;
}

export function timeText(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}
