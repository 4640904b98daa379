// Console access without a cluster: token files, roles, sign-in sessions and their expiry,
// the audit log; the HTTP layer's refusals (no token, wrong token, read-only, bad bodies,
// static paths) against a ConsoleApi whose cluster is never reached; the charts' history.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN_FILE, AUDIT_LOG_FILE, ConsoleAccess, MAX_SESSIONS, READONLY_TOKEN_FILE, SESSION_IDLE_MS } from '../../../src/daemon/console-access.js';
import { API_PATHS, ConsoleApi, MAX_BODY_BYTES } from '../../../src/daemon/http-api.js';
import { startHttp } from '../../../src/daemon/http.js';
import { MetricsHistory, type HistoryReading } from '../../../src/daemon/history.js';
import type { MetaClient } from '../../../src/meta/grpc.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'dfs-console-unit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('ConsoleAccess', () => {
  it('creates both token files 0600 at first open and keeps them', async () => {
    const d = path.join(dir, 'a');
    await rm(d, { recursive: true, force: true });
    await (await import('node:fs/promises')).mkdir(d);
    const a = await ConsoleAccess.open(d);
    const admin = (await readFile(path.join(d, ADMIN_TOKEN_FILE), 'utf8')).trim();
    const ro = (await readFile(path.join(d, READONLY_TOKEN_FILE), 'utf8')).trim();
    expect(admin).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(ro).not.toBe(admin);
    for (const f of [ADMIN_TOKEN_FILE, READONLY_TOKEN_FILE]) expect((await stat(path.join(d, f))).mode & 0o777).toBe(0o600);
    expect(a.roleOfToken(admin)).toBe('admin');
    expect(a.roleOfToken(ro)).toBe('read-only');
    expect(a.roleOfToken(admin + 'x')).toBeNull();
    expect(a.roleOfToken('')).toBeNull();
    const again = await ConsoleAccess.open(d);
    expect(again.roleOfToken(admin)).toBe('admin');
  });

  it('refuses a token file that is too short', async () => {
    const d = path.join(dir, 'short');
    await (await import('node:fs/promises')).mkdir(d, { recursive: true });
    await writeFile(path.join(d, ADMIN_TOKEN_FILE), 'abc\n');
    await expect(ConsoleAccess.open(d)).rejects.toThrow(/at least 16 characters/);
  });

  it('sessions: a role per session, ended on sign-out, expired when idle, bounded in number', () => {
    let now = 1_000_000;
    const a = ConsoleAccess.fixed('admin-token-xxxxxxxx', 'ro-token-xxxxxxxxxxx', () => now);
    const s = a.createSession('admin');
    expect(a.roleOfSession(s)).toBe('admin');
    now += SESSION_IDLE_MS - 1;
    expect(a.roleOfSession(s)).toBe('admin'); // used: the idle clock starts again
    now += SESSION_IDLE_MS + 1;
    expect(a.roleOfSession(s)).toBeNull();
    const r = a.createSession('read-only');
    a.endSession(r);
    expect(a.roleOfSession(r)).toBeNull();
    const first = a.createSession('admin');
    for (let i = 0; i < MAX_SESSIONS; i++) {
      now++;
      a.createSession('read-only');
    }
    expect(a.roleOfSession(first)).toBeNull();
  });

  it('audit: entries newest first in memory, JSON lines in the file, no token in either', async () => {
    const d = path.join(dir, 'audit');
    await (await import('node:fs/promises')).mkdir(d, { recursive: true });
    const a = await ConsoleAccess.open(d);
    a.record({ role: 'admin', via: 'token', remote: '127.0.0.1' }, 'drain', 'node2', {}, { ok: true, message: 'node2: draining' });
    a.record({ role: 'read-only', via: 'session abcdefgh', remote: '127.0.0.1' }, 'drain', 'node3', {}, { ok: false, code: 'forbidden', message: 'read-only role' });
    await a.flush();
    expect(a.auditEntries(10).map((e) => `${e.role} ${e.target} ${e.result}`)).toEqual(['read-only node3 error', 'admin node2 ok']);
    const lines = (await readFile(path.join(d, AUDIT_LOG_FILE), 'utf8')).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { action: string; code: string | null }).code)).toEqual([null, 'forbidden']);
    const tokens = [await readFile(path.join(d, ADMIN_TOKEN_FILE), 'utf8'), await readFile(path.join(d, READONLY_TOKEN_FILE), 'utf8')].map((t) => t.trim());
    for (const t of tokens) expect(lines.join('\n')).not.toContain(t);
  });
});

describe('ConsoleAccess audit across restarts and failed sign-ins', () => {
  it('a restarted daemon shows the audit entries of its file; a torn line is skipped', async () => {
    const d = path.join(dir, 'reload');
    await (await import('node:fs/promises')).mkdir(d, { recursive: true });
    const a = await ConsoleAccess.open(d);
    a.record({ role: 'admin', via: 'token', remote: 'r' }, 'drain', 'n1', {}, { ok: true, message: 'm1' });
    a.record({ role: 'admin', via: 'token', remote: 'r' }, 'cancel-drain', 'n1', {}, { ok: true, message: 'm2' });
    await a.flush();
    await (await import('node:fs/promises')).appendFile(path.join(d, AUDIT_LOG_FILE), '{"torn":');
    const b = await ConsoleAccess.open(d);
    expect(b.auditEntries(10).map((e) => e.action)).toEqual(['cancel-drain', 'drain']);
  });

  it('failed sign-ins are audited at most 10 a minute; the next one written counts the rest', () => {
    let now = 0;
    const a = ConsoleAccess.fixed('admin-token-xxxxxxxx', 'ro-token-xxxxxxxxxxx', () => now);
    for (let i = 0; i < 25; i++) a.recordFailedSignIn('10.0.0.1');
    expect(a.auditEntries(100)).toHaveLength(10);
    now += 60_000;
    a.recordFailedSignIn('10.0.0.1');
    expect(a.auditEntries(1)[0].message).toBe('wrong token (and 15 more failed sign-ins not written)');
  });
});

describe('the console API before it reaches the cluster', () => {
  const ADMIN = 'unit-admin-token-0123456789';
  const RO = 'unit-readonly-token-0123456789';
  let base = '';
  let close: () => Promise<void> = async () => undefined;
  let clientAsked = 0;
  beforeAll(async () => {
    const api = new ConsoleApi({
      client: () => {
        clientAsked++;
        return Promise.reject(new Error('no cluster in this test'));
      },
      selfAddress: '127.0.0.1:1',
      access: ConsoleAccess.fixed(ADMIN, RO),
      staticDir: null,
      log: pino({ level: 'silent' }),
    });
    const { server, port } = await startHttp('127.0.0.1:0', { registry: new Registry(), ready: () => ({ ready: true, reason: 'unit' }), status: async () => ({}), console: api });
    base = `http://127.0.0.1:${port}`;
    close = () => new Promise((r) => server.close(() => r()));
  });
  afterAll(async () => {
    await close();
  });

  const call = async (method: string, p: string, opts: { token?: string; cookie?: string; body?: string; type?: string } = {}) => {
    const headers: Record<string, string> = {};
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.cookie) headers.cookie = opts.cookie;
    if (opts.body !== undefined) headers['content-type'] = opts.type ?? 'application/json';
    const r = await fetch(base + p, { method, headers, body: opts.body });
    const text = await r.text();
    return { status: r.status, headers: r.headers, json: text.startsWith('{') ? (JSON.parse(text) as { code?: string; role?: string; message?: string }) : null, text };
  };

  it('no token, a wrong token, a malformed header: 401 before the cluster is asked', async () => {
    for (const h of [undefined, 'nope', `${ADMIN} extra`]) {
      const r = await call('GET', '/api/v1/overview', { token: h });
      expect(r.status).toBe(401);
      expect(r.json).toMatchObject({ code: 'unauthenticated' });
    }
    expect((await call('POST', '/api/v1/nodes/n1/drain', { body: '{}' })).status).toBe(401);
    expect(clientAsked).toBe(0);
    expect((await call('GET', '/healthz')).status).toBe(200);
  });

  it('read-only is refused an action before the cluster is asked', async () => {
    const r = await call('POST', '/api/v1/raft/transfer-leader', { token: RO, body: '{"nodeId":"n2"}' });
    expect(r).toMatchObject({ status: 403, json: { code: 'forbidden' } });
    expect(clientAsked).toBe(0);
  });

  it('bodies: too big is 413, not JSON is 400, wrong type is 415; a session action must be JSON', async () => {
    expect((await call('POST', '/api/v1/layout', { token: ADMIN, body: 'x'.repeat(MAX_BODY_BYTES + 1) })).json).toMatchObject({ code: 'payload_too_large' });
    expect((await call('POST', '/api/v1/layout', { token: ADMIN, body: '{' })).json).toMatchObject({ code: 'bad_json' });
    expect((await call('POST', '/api/v1/layout', { token: ADMIN, body: 'a=b', type: 'application/x-www-form-urlencoded' })).json).toMatchObject({ code: 'unsupported_media_type' });
    const signIn = await call('POST', '/api/v1/session', { body: JSON.stringify({ token: ADMIN }) });
    const cookie = signIn.headers.get('set-cookie')!.split(';')[0];
    const form = await call('POST', '/api/v1/nodes/n1/drain', { cookie, body: 'a=b', type: 'text/plain' });
    expect(form).toMatchObject({ status: 415, json: { code: 'unsupported_media_type' } });
  });

  it('sign-in: a token gives an HttpOnly SameSite cookie for its role; sign-out ends it', async () => {
    expect((await call('POST', '/api/v1/session', { body: '{"token":"wrong"}' })).status).toBe(401);
    const r = await call('POST', '/api/v1/session', { body: JSON.stringify({ token: RO }) });
    expect(r).toMatchObject({ status: 200, json: { role: 'read-only' } });
    const set = r.headers.get('set-cookie')!;
    expect(set).toMatch(/^dfs_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict$/);
    const cookie = set.split(';')[0];
    expect((await call('GET', '/api/v1/session', { cookie })).json).toMatchObject({ role: 'read-only' });
    expect((await call('DELETE', '/api/v1/session', { cookie })).status).toBe(200);
    expect((await call('GET', '/api/v1/session', { cookie })).status).toBe(401);
  });

  it('unknown routes and methods have codes; the console files are not served when not built; no path escapes', async () => {
    expect((await call('GET', '/api/v1/nope', { token: ADMIN })).json).toMatchObject({ code: 'no_route' });
    expect((await call('PATCH', '/api/v1/overview', { token: ADMIN })).json).toMatchObject({ code: 'method_not_allowed' });
    expect((await call('GET', '/')).status).toBe(503);
    expect((await call('GET', '/assets/..%2f..%2fpackage.json')).status).toBe(503);
  });
});

describe('docs/api/openapi.yaml', () => {
  it('documents exactly the paths the API serves', async () => {
    const text = await readFile(path.join(import.meta.dirname, '..', '..', '..', 'docs', 'api', 'openapi.yaml'), 'utf8');
    const documented = [...text.matchAll(/^ {2}(\/api\/v1\/\S+):$/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual([...API_PATHS].sort());
  });
});

describe('MetricsHistory', () => {
  const reading = (commit: number, read: number, over: Partial<HistoryReading> = {}): HistoryReading => ({
    usedBytes: 10,
    totalBytes: 100,
    chunksUnderProtected: 0,
    chunksLost: 0,
    repairBytesPerS: 0,
    rebalanceBytesPerS: 0,
    repairQueue: 0,
    raftCommit: commit,
    chunkDiskBytesRead: read,
    mountUploadBytes: 0,
    ...over,
  });

  it('rates from counter differences, bounded, by age', () => {
    let now = 0;
    const h = new MetricsHistory(async () => reading(0, 0), () => now, 3);
    h.add(0, reading(100, 0));
    h.add(10_000, reading(150, 5000));
    h.add(20_000, reading(150, 5000, { usedBytes: null }));
    // A restart resets counters: no negative rate.
    h.add(30_000, reading(10, 0));
    now = 30_000;
    const s = h.since(3600);
    expect(s).toHaveLength(3);
    expect(s.map((x) => x.raftCommitsPerS)).toEqual([5, 0, null]);
    expect(s.map((x) => x.chunkReadBytesPerS)).toEqual([500, 0, null]);
    expect(s[1].usedBytes).toBeNull();
    expect(h.since(15).map((x) => x.timeMs)).toEqual([20_000, 30_000]);
  });

  it('a failed read is a gap, not a crash', async () => {
    const h = new MetricsHistory(() => Promise.reject(new Error('no leader')));
    await h.sample();
    expect(h.since(3600)).toEqual([]);
  });
});

// The type the API's deps name is the real client; this file never connects one.
export type _Unused = MetaClient;
