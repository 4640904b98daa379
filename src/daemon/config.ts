// Daemon configuration: from command-line options and/or a JSON config file, validated
// into one typed object. Every problem is a ConfigError with a one-line message.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface DaemonConfig {
  /** Where this daemon keeps its namespace (meta/) and chunks (chunks/). Absent for a client-only daemon. */
  dataDir: string | null;
  /** gRPC listen address host:port. Absent for a client-only daemon. */
  listen: string | null;
  /** HTTP address for /healthz, /readyz, /metrics; null disables it. */
  http: string | null;
  /** FUSE mount point, or null to serve without mounting. */
  mount: string | null;
  /**
   * Stable node id. A server keeps its id in <dataDir>/node.json from its first start;
   * null means "the stored one, or a new one on first start".
   */
  nodeId: string | null;
  /** For a client-only daemon: the daemon to talk to. */
  connect: string | null;
  /**
   * The Raft voters a new cluster starts with, `id=host:port,...` (this node included).
   * Absent: a single-node cluster of this node. Read only when the data dir is new.
   */
  initialCluster: Array<{ nodeId: string; address: string }> | null;
  /**
   * Members of an existing cluster to join (host:port list). The new node starts with an
   * empty log and no vote; `dfs cluster add-member` makes it a learner, then a voter.
   * Read only when the data dir is new; exclusive with initialCluster.
   */
  join: string[] | null;
  /** Raft tick length; elections take 10-20 ticks. */
  raftTickMs: number;
  /** Take a Raft snapshot (and compact the log) every this many applied entries. */
  raftSnapshotEvery: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  chunkSizeBytes: number;
  /** Seconds the kernel may cache entries and attributes. */
  attrTimeoutS: number;
  maxDirtyBytes: number;
  readCacheBytes: number;
  /** How long a deleted chunk waits before its space is reclaimed. */
  gcGraceMs: number;
  /** Failure-domain labels of this chunk server ('' when not given). */
  zone: string;
  rack: string;
  /** A chunk server not heard from for this long is dead (its copies are re-created elsewhere). */
  deadAfterMs: number;
  /** A node whose namespace storage has not written for this long is failed (its copies are re-created elsewhere). */
  storageFailedAfterMs: number;
  /**
   * Free space this daemon keeps for its Raft log, namespace and logs (issue 16, decision
   * 0014): below it the cluster refuses new data. null: the larger of 1 GiB and 2 % of the disk.
   */
  reserveBytes: number | null;
  /** MB/s the leader's healer may copy (repair, drain and rebalance together). */
  repairRateMBps: number;
  /** Unreferenced chunk objects older than this are deleted by the inventory GC. */
  orphanGraceMs: number;
  /** Pause between inventory (orphan GC) passes; 0 turns it off. */
  inventoryIntervalMs: number;
  /** MB/s the background scrub re-verifies; 0 turns it off. */
  scrubMBps: number;
  /** Pause between scrub passes. */
  scrubPauseMs: number;
  /** A client session the leader has not heard from this long has its open handles and inode ranges closed. */
  sessionIdleMs: number;
  /** A client id the leader has not seen in a command this long loses its dedup record. */
  clientIdleMs: number;
}

const KEYS: Array<keyof DaemonConfig> = [
  'dataDir',
  'listen',
  'http',
  'mount',
  'nodeId',
  'connect',
  'initialCluster',
  'join',
  'raftTickMs',
  'raftSnapshotEvery',
  'logLevel',
  'chunkSizeBytes',
  'attrTimeoutS',
  'maxDirtyBytes',
  'readCacheBytes',
  'gcGraceMs',
  'zone',
  'rack',
  'deadAfterMs',
  'storageFailedAfterMs',
  'reserveBytes',
  'repairRateMBps',
  'orphanGraceMs',
  'sessionIdleMs',
  'clientIdleMs',
  'inventoryIntervalMs',
  'scrubMBps',
  'scrubPauseMs',
];

export const NODE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const LOG_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

export const CONFIG_DEFAULTS = {
  logLevel: 'info' as const,
  chunkSizeBytes: 4 * 1024 * 1024,
  attrTimeoutS: 1,
  maxDirtyBytes: 256 * 1024 * 1024,
  readCacheBytes: 128 * 1024 * 1024,
  gcGraceMs: 5_000,
  deadAfterMs: 30_000,
};

const LABEL_RE = /^[A-Za-z0-9._-]{0,64}$/;

/** A duration: plain milliseconds, or a number with ms/s/m/h ("30s", "2m"). */
export function parseDurationMs(value: unknown, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(value).trim());
  if (!m) throw new ConfigError(`${what}: expected a duration like 30s, 2m or 1500ms, got '${String(value)}'`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

/** `id=host:port,id=host:port` → members; null when absent. */
export function parseInitialCluster(value: string | null): Array<{ nodeId: string; address: string }> | null {
  if (!value) return null;
  const out: Array<{ nodeId: string; address: string }> = [];
  for (const part of value.split(',')) {
    const m = /^([^=]+)=(.+)$/.exec(part.trim());
    if (!m || !NODE_ID_RE.test(m[1])) throw new ConfigError(`initialCluster: expected id=HOST:PORT, got '${part}'`);
    parseAddress(m[2], `initialCluster member ${m[1]}`);
    if (out.some((x) => x.nodeId === m[1])) throw new ConfigError(`initialCluster: node '${m[1]}' named twice`);
    out.push({ nodeId: m[1], address: m[2] });
  }
  return out;
}

/** host:port with a numeric port 0..65535. */
export function parseAddress(value: string, what: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value);
  if (!m) throw new ConfigError(`${what}: expected HOST:PORT, got '${value}'`);
  const port = Number(m[2]);
  if (port > 65535) throw new ConfigError(`${what}: port ${port} is out of range`);
  return { host: m[1], port };
}

export type RawConfig = Partial<Record<keyof DaemonConfig, unknown>>;

export async function readConfigFile(file: string): Promise<RawConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`config file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${file}: must hold a JSON object`);
  }
  for (const key of Object.keys(parsed)) {
    if (!KEYS.includes(key as keyof DaemonConfig)) throw new ConfigError(`config file ${file}: unknown key '${key}' (known: ${KEYS.join(', ')})`);
  }
  return parsed as RawConfig;
}

function str(raw: RawConfig, key: keyof DaemonConfig): string | null {
  const v = raw[key];
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string') throw new ConfigError(`${key}: expected a string`);
  return v;
}

function num(raw: RawConfig, key: keyof DaemonConfig, fallback: number, min: number, max: number): number {
  const v = raw[key];
  if (v === undefined || v === null || v === '') return fallback;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max) {
    throw new ConfigError(`${key}: expected a number from ${min} to ${max}, got '${String(v)}'`);
  }
  return n;
}

function label(raw: RawConfig, key: 'zone' | 'rack'): string {
  const v = str(raw, key) ?? '';
  if (!LABEL_RE.test(v)) throw new ConfigError(`${key}: '${v}' must be up to 64 of [A-Za-z0-9._-]`);
  return v;
}

function duration(raw: RawConfig, key: keyof DaemonConfig, what: string, fallback: number, min: number): number {
  if (raw[key] === undefined || raw[key] === null) return fallback;
  const ms = parseDurationMs(raw[key], what);
  if (ms < min || ms > 30 * 24 * 3_600_000) throw new ConfigError(`${what}: must be from ${min} ms to 30 days`);
  return ms;
}

/** A size: plain bytes, or a number with k/m/g/t (powers of 1024, "512m", "1g"). */
export function parseSizeBytes(value: unknown, what: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmgt])?i?b?$/i.exec(String(value).trim());
  if (!m) throw new ConfigError(`${what}: expected a size like 512m, 1g or 1048576, got '${String(value)}'`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[(m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.round(Number(m[1]) * unit);
}

function reserve(raw: RawConfig): number | null {
  if (raw.reserveBytes === undefined || raw.reserveBytes === null || raw.reserveBytes === '') return null;
  const bytes = parseSizeBytes(raw.reserveBytes, 'reserve (--reserve)');
  if (bytes > 1024 ** 5) throw new ConfigError('reserve (--reserve): must be at most 1 PiB');
  return bytes;
}

/** The reserve a daemon keeps when none is configured: the larger of 1 GiB and 2 % of its disk. */
export function defaultReserveBytes(diskBytes: number): number {
  return Math.max(1024 ** 3, Math.round(diskBytes * 0.02));
}

function deadAfter(raw: RawConfig): number {
  if (raw.deadAfterMs === undefined || raw.deadAfterMs === null) return CONFIG_DEFAULTS.deadAfterMs;
  const ms = parseDurationMs(raw.deadAfterMs, 'deadAfter (--dead-after)');
  if (ms < 1000 || ms > 7 * 24 * 3_600_000) throw new ConfigError('deadAfter (--dead-after): must be from 1s to 7 days');
  return ms;
}

/** Validate a merged raw config (file values overridden by command-line values). */
export function validateConfig(raw: RawConfig, mode: 'server' | 'client'): DaemonConfig {
  const dataDir = str(raw, 'dataDir');
  const listen = str(raw, 'listen');
  const connect = str(raw, 'connect');
  if (mode === 'server') {
    if (!dataDir) throw new ConfigError('dataDir (--data-dir) is required');
    if (!listen) throw new ConfigError('listen (--listen HOST:PORT) is required');
    parseAddress(listen, 'listen');
  } else {
    if (!connect) throw new ConfigError('the daemon address to connect to is required');
    parseAddress(connect, 'address');
  }
  const http = str(raw, 'http');
  if (http) parseAddress(http, 'http');
  const mount = str(raw, 'mount');
  if (mode === 'client' && !mount) throw new ConfigError('a mount point is required');
  const logLevel = str(raw, 'logLevel') ?? CONFIG_DEFAULTS.logLevel;
  if (!LOG_LEVELS.has(logLevel)) throw new ConfigError(`logLevel: expected one of ${[...LOG_LEVELS].join(', ')}`);
  const nodeId = str(raw, 'nodeId') ?? (mode === 'client' ? 'client' : null);
  if (nodeId !== null && !NODE_ID_RE.test(nodeId)) throw new ConfigError(`nodeId: '${nodeId}' must be 1-64 of [A-Za-z0-9._-]`);
  const chunkSizeBytes = num(raw, 'chunkSizeBytes', CONFIG_DEFAULTS.chunkSizeBytes, 64 * 1024, 64 * 1024 * 1024);
  if (chunkSizeBytes % 4096 !== 0) throw new ConfigError('chunkSizeBytes: must be a multiple of 4096');
  const initialCluster = parseInitialCluster(str(raw, 'initialCluster'));
  if (initialCluster && mode === 'server') {
    if (!nodeId) throw new ConfigError('nodeId (--node-id) is required with initialCluster');
    if (!initialCluster.some((m) => m.nodeId === nodeId)) throw new ConfigError(`initialCluster does not name this node '${nodeId}'`);
  }
  const joinRaw = str(raw, 'join');
  const join = joinRaw ? joinRaw.split(',').map((a) => a.trim()).filter((a) => a.length > 0) : null;
  for (const a of join ?? []) parseAddress(a, 'join');
  if (join && join.length === 0) throw new ConfigError('join: expected HOST:PORT[,HOST:PORT...]');
  if (join && initialCluster) throw new ConfigError('join and initialCluster exclude each other: a node either starts a new cluster or joins one');
  if (join && mode === 'server' && !nodeId) throw new ConfigError('nodeId (--node-id) is required with join');
  return {
    initialCluster,
    join,
    raftTickMs: num(raw, 'raftTickMs', 50, 10, 10_000),
    raftSnapshotEvery: Math.floor(num(raw, 'raftSnapshotEvery', 20_000, 10, 100_000_000)),
    dataDir: dataDir ? path.resolve(dataDir) : null,
    listen,
    http,
    mount: mount ? path.resolve(mount) : null,
    nodeId,
    connect,
    logLevel: logLevel as DaemonConfig['logLevel'],
    chunkSizeBytes,
    attrTimeoutS: num(raw, 'attrTimeoutS', CONFIG_DEFAULTS.attrTimeoutS, 0, 3600),
    maxDirtyBytes: num(raw, 'maxDirtyBytes', CONFIG_DEFAULTS.maxDirtyBytes, 16 * 1024 * 1024, 64 * 1024 ** 3),
    readCacheBytes: num(raw, 'readCacheBytes', CONFIG_DEFAULTS.readCacheBytes, 1024 * 1024, 64 * 1024 ** 3),
    gcGraceMs: num(raw, 'gcGraceMs', CONFIG_DEFAULTS.gcGraceMs, 0, 7 * 24 * 3600 * 1000),
    zone: label(raw, 'zone'),
    rack: label(raw, 'rack'),
    deadAfterMs: deadAfter(raw),
    reserveBytes: reserve(raw),
    storageFailedAfterMs: duration(raw, 'storageFailedAfterMs', 'storageFailedAfter (--storage-failed-after)', 120_000, 1_000),
    repairRateMBps: num(raw, 'repairRateMBps', 64, 1, 100_000),
    orphanGraceMs: duration(raw, 'orphanGraceMs', 'orphanGrace (--orphan-grace)', 3_600_000, 1_000),
    inventoryIntervalMs: duration(raw, 'inventoryIntervalMs', 'inventoryInterval (--inventory-interval)', 600_000, 0),
    scrubMBps: num(raw, 'scrubMBps', 8, 0, 100_000),
    scrubPauseMs: duration(raw, 'scrubPauseMs', 'scrubPause (--scrub-pause)', 600_000, 0),
    // Both well above how long any client resends one command (≤ 2 min).
    sessionIdleMs: duration(raw, 'sessionIdleMs', 'sessionIdle (--session-idle)', 300_000, 5_000),
    clientIdleMs: duration(raw, 'clientIdleMs', 'clientIdle (--client-idle)', 600_000, 5_000),
  };
}
