// The management console against three real daemons (node1 mounted): the JSON API's shapes
// and actions (layout applies to new files, transfer-leader moves the leader, drain moves the
// copies off a node, remove-member refused without a live quorum), every action refused to
// the read-only token and every call refused without a token; then the pages in a real
// Chromium (Debian's, driven by playwright-core): sign in, the overview's counts, what-if,
// browse to a file's chunks, drain from the Nodes page, and kill -9 of a daemon turning the
// overview degraded and, once it is back, healthy again. Screenshots of each page go to
// $DFS_SCREENSHOT_DIR (default <tmp>/dfs-console-screenshots), never into the repo.
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { RaftCluster } from './raft-harness.js';
import { CLI, dfs, sh, waitFor } from './harness.js';

const MiB = 1024 * 1024;
const CHROMIUM = process.env.DFS_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = process.env.DFS_SCREENSHOT_DIR ?? path.join(os.tmpdir(), 'dfs-console-screenshots');

interface Reply<T = Record<string, unknown>> {
  status: number;
  body: T;
}

async function api<T = Record<string, unknown>>(http: string, method: string, p: string, opts: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined = opts.raw;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  const r = await fetch(`http://${http}${p}`, { method, headers, body, signal: AbortSignal.timeout(30_000) });
  const text = await r.text();
  return { status: r.status, body: (text ? JSON.parse(text) : null) as T };
}

/** An SSE stream read in the background: what came so far. */
async function openStream(http: string, token: string): Promise<{ text: () => string; close: () => void }> {
  const ctl = new AbortController();
  const r = await fetch(`http://${http}/api/v1/events/stream?backlog=5`, { headers: { authorization: `Bearer ${token}` }, signal: ctl.signal });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
  let text = '';
  const reader = r.body!.getReader();
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      text += Buffer.from(value).toString();
    }
  })().catch(() => undefined);
  return { text: () => text, close: () => ctl.abort() };
}

interface Overview {
  leader: string | null;
  healthy: boolean;
  problems: string[];
  capacity: { files: number; totalBytes: number };
  nodes: Array<{ nodeId: string; state: string; role: string }>;
  health: { chunks: { total: number; healthy: number; underProtected: number; lost: number } | null; nodes: { up: number } } | null;
  recentEvents: unknown[] | null;
}
interface NodesReply {
  leader: string;
  nodes: Array<{ nodeId: string; state: string; adminState: string; chunkCount: number; totalBytes: number; toMove: number | null; version: string | null; corruptReads: number }>;
}
interface BrowseFile {
  type: string;
  layoutText: string;
  info: { chunks: Array<{ index: number; copies: Array<{ nodeId: string; health: string }> }>; unhealthyCopies: number };
}

describe('console: JSON API and pages against 3 daemons', () => {
  const c = new RaftCluster('console', 3, ['node1'], ['--chunk-size', String(MiB), '--dead-after', '3s']);
  const admin = new Map<string, string>();
  const readOnly = new Map<string, string>();
  const http = (id: string) => c.node(id).proc!.http;
  let mnt = '';

  beforeAll(async () => {
    await c.create();
    await c.start();
    for (const n of c.nodes) {
      admin.set(n.id, (await readFile(path.join(n.dataDir, 'console-admin.token'), 'utf8')).trim());
      readOnly.set(n.id, (await readFile(path.join(n.dataDir, 'console-readonly.token'), 'utf8')).trim());
    }
    mnt = c.mnt('node1');
    await waitFor('3 chunk servers registered', 30_000, async () => {
      const r = await api<NodesReply>(http('node1'), 'GET', '/api/v1/nodes', { token: admin.get('node1') });
      return r.status === 200 && r.body.nodes.filter((n) => n.totalBytes > 0).length === 3;
    });
    // Two copies on three nodes, so that a drained node's copies have somewhere to go.
    await sh(`node ${CLI} layout set ${mnt} --replicas 2`);
    await sh(`mkdir -p ${mnt}/d ${mnt}/lay && head -c ${2.5 * MiB} /dev/urandom > ${mnt}/d/a && head -c ${2.5 * MiB} /dev/urandom > ${mnt}/d/b && echo small > ${mnt}/small`);
  });
  afterAll(async () => {
    await c.teardown();
  });

  it('token files are 0600 and different per daemon and role', async () => {
    for (const n of c.nodes) {
      for (const f of ['console-admin.token', 'console-readonly.token']) {
        const mode = (await sh(`stat -c %a ${path.join(n.dataDir, f)}`)).trim();
        expect(mode, `${n.id} ${f}`).toBe('600');
      }
    }
    expect(new Set([...admin.values(), ...readOnly.values()]).size).toBe(6);
  });

  it('refuses every call without a valid token (401 JSON); /healthz /readyz /metrics stay open', async () => {
    const h = http('node2');
    const gets = ['/api/v1/clients', '/api/v1/history', '/api/v1/overview', '/api/v1/nodes', '/api/v1/raft', '/api/v1/events', '/api/v1/events/stream', '/api/v1/protection', '/api/v1/protection/files?scheme=replicas&want=3&valid=3', '/api/v1/what-if-lost?nodes=node1', '/api/v1/browse?path=/', '/api/v1/audit', '/api/v1/session'];
    const posts = ['/api/v1/nodes/node1/drain', '/api/v1/nodes/node1/cancel-drain', '/api/v1/raft/transfer-leader', '/api/v1/raft/remove-member', '/api/v1/layout'];
    for (const token of [undefined, 'not-a-token', admin.get('node1')!]) {
      // node1's token is not node2's: each daemon has its own.
      for (const p of gets) {
        const r = await api(h, 'GET', p, { token });
        expect(r.status, `GET ${p} with ${token ? 'a wrong token' : 'no token'}`).toBe(401);
        expect(r.body).toMatchObject({ code: 'unauthenticated' });
      }
      for (const p of posts) {
        const r = await api(h, 'POST', p, { token, body: { nodeId: 'node1', path: '/', replicas: 1 } });
        expect(r.status, `POST ${p}`).toBe(401);
        expect(r.body).toMatchObject({ code: 'unauthenticated' });
      }
    }
    const wrong = await api(h, 'POST', '/api/v1/session', { body: { token: 'guess' } });
    expect(wrong).toMatchObject({ status: 401, body: { code: 'unauthenticated' } });
    for (const p of ['/healthz', '/readyz', '/metrics']) expect((await fetch(`http://${h}${p}`)).status, p).toBe(200);
  });

  it('read-only: every read answers, every action is refused (403) and audited', async () => {
    const h = http('node2');
    const ro = readOnly.get('node2')!;
    expect(await api(h, 'GET', '/api/v1/session', { token: ro })).toMatchObject({ status: 200, body: { role: 'read-only' } });
    expect((await api(h, 'GET', '/api/v1/overview', { token: ro })).status).toBe(200);
    const actions: Array<[string, unknown]> = [
      ['/api/v1/nodes/node3/drain', {}],
      ['/api/v1/nodes/node3/cancel-drain', {}],
      ['/api/v1/raft/transfer-leader', { nodeId: 'node3' }],
      ['/api/v1/raft/remove-member', { nodeId: 'node3' }],
      ['/api/v1/layout', { path: '/lay', replicas: 1 }],
    ];
    for (const [p, body] of actions) {
      const r = await api(h, 'POST', p, { token: ro, body });
      expect(r.status, p).toBe(403);
      expect(r.body).toMatchObject({ code: 'forbidden' });
    }
    const audit = await api<{ entries: Array<{ role: string; action: string; result: string; code: string }> }>(h, 'GET', '/api/v1/audit', { token: ro });
    const refused = audit.body.entries.filter((e) => e.role === 'read-only' && e.code === 'forbidden').map((e) => e.action);
    expect(refused.sort()).toEqual(['cancel-drain', 'drain', 'remove-member', 'set-layout', 'transfer-leader']);
    // Nothing changed.
    const n = await api<NodesReply>(h, 'GET', '/api/v1/nodes', { token: ro });
    expect(n.body.nodes.every((x) => x.adminState === 'active')).toBe(true);
  });

  it('bad input is a JSON error with a stable code, and the daemon stays up', async () => {
    const h = http('node3');
    const t = admin.get('node3')!;
    expect(await api(h, 'POST', '/api/v1/raft/transfer-leader', { token: t, raw: '{not json', headers: { 'content-type': 'application/json' } })).toMatchObject({ status: 400, body: { code: 'bad_json' } });
    expect(await api(h, 'POST', '/api/v1/raft/transfer-leader', { token: t, raw: '[1]', headers: { 'content-type': 'application/json' } })).toMatchObject({ status: 400, body: { code: 'bad_json' } });
    expect(await api(h, 'POST', '/api/v1/layout', { token: t, raw: 'x'.repeat(100 * 1024), headers: { 'content-type': 'application/json' } })).toMatchObject({ status: 413, body: { code: 'payload_too_large' } });
    expect(await api(h, 'POST', '/api/v1/raft/transfer-leader', { token: t, body: {} })).toMatchObject({ status: 400, body: { code: 'invalid_argument' } });
    expect(await api(h, 'POST', '/api/v1/layout', { token: t, body: { path: '/lay', replicas: 99 } })).toMatchObject({ status: 400, body: { code: 'invalid_argument' } });
    expect(await api(h, 'POST', '/api/v1/layout', { token: t, body: { path: '/d/a', replicas: 1 } })).toMatchObject({ status: 409, body: { code: 'failed_precondition' } });
    expect(await api(h, 'GET', '/api/v1/events?limit=0', { token: t })).toMatchObject({ status: 400, body: { code: 'invalid_argument' } });
    expect(await api(h, 'GET', '/api/v1/browse?path=/nope', { token: t })).toMatchObject({ status: 404, body: { code: 'not_found' } });
    expect(await api(h, 'GET', '/api/v1/browse?path=relative', { token: t })).toMatchObject({ status: 400, body: { code: 'invalid_argument' } });
    expect(await api(h, 'GET', '/api/v1/what-if-lost?nodes=ghost', { token: t })).toMatchObject({ status: 404, body: { code: 'not_found' } });
    expect(await api(h, 'GET', '/api/v1/nothing', { token: t })).toMatchObject({ status: 404, body: { code: 'no_route' } });
    expect(await api(h, 'PUT', '/api/v1/layout', { token: t, body: {} })).toMatchObject({ status: 405, body: { code: 'method_not_allowed' } });
    expect(await api(h, 'POST', '/api/v1/nodes/ghost/drain', { token: t, body: {} })).toMatchObject({ status: 404, body: { code: 'not_found' } });
    expect((await fetch(`http://${h}/readyz`)).status).toBe(200);
  });

  it('reads: overview, nodes, raft, events, browse, protection, what-if; any daemon answers for the cluster', async () => {
    // Raft's "recently active" can blink under load on 2 cores: wait until every daemon says healthy.
    let views: Array<Reply<Overview>> = [];
    await waitFor('every daemon to report the 6 chunks scanned and the cluster healthy', 30_000, async () => {
      views = await Promise.all(c.nodes.map((n) => api<Overview>(http(n.id), 'GET', '/api/v1/overview', { token: admin.get(n.id) })));
      return views.every((v) => v.body.health?.chunks?.total === 6 && v.body.healthy);
    });
    for (const v of views) {
      expect(v.status).toBe(200);
      expect(v.body).toMatchObject({ healthy: true, problems: [], leader: views[0].body.leader });
      expect(v.body.nodes.map((n) => n.state)).toEqual(['up', 'up', 'up']);
      expect(v.body.health!.chunks).toMatchObject({ total: 6, healthy: 6, underProtected: 0, lost: 0 });
      expect(Array.isArray(v.body.recentEvents)).toBe(true);
    }
    const t = admin.get('node2')!;
    const nodes = await api<NodesReply>(http('node2'), 'GET', '/api/v1/nodes', { token: t });
    expect(nodes.body.nodes.map((n) => n.nodeId)).toEqual(['node1', 'node2', 'node3']);
    expect(nodes.body.nodes.map((n) => `${n.version} ${n.corruptReads}`)).toEqual(['0.1.0 0', '0.1.0 0', '0.1.0 0']);
    const raft = await api<{ term: number; leader: string; commit: number; applied: number; members: Array<{ nodeId: string; match: number; lag: number; role: string }> }>(http('node2'), 'GET', '/api/v1/raft', { token: t });
    expect(raft.body.leader).toBe(views[0].body.leader);
    expect(raft.body.members).toHaveLength(3);
    expect(raft.body.members.filter((m) => m.role === 'leader')).toHaveLength(1);
    expect(raft.body.commit).toBeGreaterThan(0);
    // node1's mount is a session the leader knows, connected; `dfs clients` says the same.
    const cl = await api<{ leader: string; sessions: Array<{ session: string; streams: number }> }>(http('node3'), 'GET', '/api/v1/clients', { token: admin.get('node3') });
    expect(cl.body.leader).toBe(views[0].body.leader);
    expect(cl.body.sessions.find((s) => s.session === 'node1')).toMatchObject({ session: 'node1', streams: 1 });
    const cliClients = await dfs(['clients', '--addr', c.node('node2').grpc, '--json']);
    expect(cliClients.code, cliClients.stderr).toBe(0);
    expect((JSON.parse(cliClients.stdout) as { sessions: Array<{ session: string }> }).sessions.map((s) => s.session)).toEqual(cl.body.sessions.map((s) => s.session));
    const ev = await api<{ leader: string; events: Array<{ seq: number; kind: string }> }>(http('node3'), 'GET', '/api/v1/events?limit=50', { token: admin.get('node3') });
    expect(ev.status).toBe(200);
    expect(ev.body.leader).toBe(views[0].body.leader);

    const dir = await api<{ type: string; entries: Array<{ name: string; type: string; sizeBytes: number }>; next: string | null }>(http('node3'), 'GET', '/api/v1/browse?path=/d&limit=1', { token: admin.get('node3') });
    expect(dir.body).toMatchObject({ type: 'directory', entries: [{ name: 'a', type: 'file', sizeBytes: 2.5 * MiB }], next: 'a' });
    const page2 = await api<{ entries: Array<{ name: string }>; next: string | null }>(http('node3'), 'GET', '/api/v1/browse?path=/d&after=a&limit=10', { token: admin.get('node3') });
    expect(page2.body).toMatchObject({ entries: [{ name: 'b' }], next: null });
    const file = await api<BrowseFile>(http('node3'), 'GET', '/api/v1/browse?path=/d/a', { token: admin.get('node3') });
    expect(file.body.type).toBe('file');
    expect(file.body.info.chunks.map((ch) => ch.index)).toEqual([0, 1, 2]);
    expect(file.body.info.unhealthyCopies).toBe(0);
    // The CLI's `dfs info` is the same function: the same chunks on the same nodes.
    const cli = JSON.parse(await sh(`node ${CLI} info ${mnt}/d/a --json --no-verify`)) as BrowseFile['info'];
    expect(file.body.info.chunks.map((ch) => ch.copies.map((x) => x.nodeId))).toEqual(cli.chunks.map((ch) => ch.copies.map((x) => x.nodeId)));

    // The counts from the leader's scan, the files from a walk: they agree.
    const m = await api<{ scanned: boolean; chunks: number; cells: Array<{ scheme: string; want: number; valid: number; state: string; chunks: number }> }>(http('node2'), 'GET', '/api/v1/protection', { token: t });
    expect(m.body).toMatchObject({ scanned: true, chunks: 6 });
    expect(m.body.cells).toEqual([{ scheme: 'replicas', want: 2, valid: 2, state: 'healthy', chunks: 6 }]);
    const cell = await api<{ total: number; chunks: number; paths: string[] }>(http('node2'), 'GET', '/api/v1/protection/files?scheme=replicas&want=2&valid=2&limit=1&offset=1', { token: t });
    expect(cell.body).toMatchObject({ total: 2, chunks: 6, paths: ['/d/b'] });

    // Two copies of each chunk on three nodes: at least one is on node1 or node2.
    const w = await api<{ loseData: number; affected: Array<{ path: string; impact: string }> }>(http('node2'), 'GET', '/api/v1/what-if-lost?nodes=node1,node2', { token: t });
    expect(w.body.affected.map((a) => a.path)).toEqual(['/d/a', '/d/b']);
    const cliRun = await dfs(['nodes', 'what-if-lost', 'node1', 'node2', '--addr', c.node('node2').grpc, '--json']);
    expect(cliRun.code, cliRun.stderr).toBe(w.body.loseData > 0 ? 1 : 0);
    const cliW = JSON.parse(cliRun.stdout) as { affected: unknown[] };
    expect(cliW.affected).toEqual(w.body.affected);
  });

  it('the event stream (SSE) opens with a hello naming the leader, then the backlog', async () => {
    const known = await api<{ events: Array<{ seq: number }> }>(http('node2'), 'GET', '/api/v1/events?limit=5', { token: admin.get('node2') });
    const es = await openStream(http('node2'), admin.get('node2')!);
    try {
      await waitFor('the hello frame and the backlog', 10_000, () => {
        const t = es.text();
        return /event: hello\ndata: \{"leader":"node\d"\}/.test(t) && known.body.events.every((e) => t.includes(`event: event\ndata: {"seq":${e.seq},`));
      });
    } finally {
      es.close();
    }
  });

  it('set-layout applies to files created afterwards; it is audited', async () => {
    const t = admin.get('node2')!;
    const r = await api(http('node2'), 'POST', '/api/v1/layout', { token: t, body: { path: '/lay', replicas: 1 } });
    expect(r).toMatchObject({ status: 200, body: { path: '/lay', layout: { kind: 'replicas', replicas: 1 } } });
    await sh(`head -c ${1.5 * MiB} /dev/urandom > ${mnt}/lay/one`);
    const f = await api<BrowseFile>(http('node1'), 'GET', '/api/v1/browse?path=/lay/one', { token: admin.get('node1') });
    expect(f.body.layoutText).toBe('replicas 1');
    expect(f.body.info.chunks.map((ch) => ch.copies.length)).toEqual([1, 1]);
    expect((await api<BrowseFile>(http('node1'), 'GET', '/api/v1/browse?path=/d/a', { token: admin.get('node1') })).body.layoutText).toBe('replicas 2');
    const audit = await api<{ entries: Array<{ role: string; action: string; target: string; result: string }> }>(http('node2'), 'GET', '/api/v1/audit?limit=1', { token: t });
    expect(audit.body.entries).toMatchObject([{ role: 'admin', action: 'set-layout', target: '/lay', result: 'ok' }]);
    const file = (await readFile(path.join(c.node('node2').dataDir, 'audit.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { action: string });
    expect(file.at(-1)).toMatchObject({ action: 'set-layout' });
    expect(await readFile(path.join(c.node('node2').dataDir, 'audit.log'), 'utf8')).not.toContain(t);
  });

  it('transfer-leader through a follower moves the leader', async () => {
    const { id: from } = await c.agreedLeader();
    const to = c.nodes.map((n) => n.id).find((id) => id !== from)!;
    const via = c.nodes.map((n) => n.id).find((id) => id !== from && id !== to)!;
    const r = await api(http(via), 'POST', '/api/v1/raft/transfer-leader', { token: admin.get(via), body: { nodeId: to } });
    expect(r).toMatchObject({ status: 200, body: { ok: true, leader: to } });
    await waitFor(`${to} to lead`, 15_000, async () => (await c.agreedLeader()).id === to);
    expect((await api<{ leader: string }>(http(from), 'GET', '/api/v1/raft', { token: admin.get(from) })).body.leader).toBe(to);
  });

  describe('in Chromium', () => {
    let browser: Browser;
    let page: Page;
    const pageErrors: string[] = [];
    const shot = async (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
    const signIn = async (token: string) => {
      await page.goto(`http://${http('node2')}/`);
      await page.fill('#token', token);
      await page.click('button[type=submit]');
      await page.waitForSelector('[data-testid=role]');
    };

    beforeAll(async () => {
      if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (scripts/setup.sh does), or set DFS_CHROMIUM`);
      await mkdir(SHOTS, { recursive: true });
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
      page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      page.on('pageerror', (e) => pageErrors.push(String(e)));
    });
    afterAll(async () => {
      await browser?.close();
      process.stdout.write(`console screenshots: ${SHOTS}\n`);
    });

    it('a wrong token is refused; read-only sees no actions', async () => {
      await page.goto(`http://${http('node2')}/`);
      await page.fill('#token', 'wrong');
      await page.click('button[type=submit]');
      await page.getByRole('alert').waitFor();
      expect(await page.getByRole('alert').textContent()).toMatch(/not a console token/);
      await shot('sign-in');
      await signIn(readOnly.get('node2')!);
      expect(await page.textContent('[data-testid=role]')).toMatch(/^read-only/);
      await page.goto(`http://${http('node2')}/#/nodes`);
      await page.waitForSelector('[data-testid=nodes-table] tbody tr[data-node=node3]');
      expect(await page.locator('button', { hasText: /^drain$/ }).count()).toBe(0);
      expect(await page.locator('th', { hasText: 'actions' }).count()).toBe(0);
      await page.click('text=sign out');
      await page.waitForSelector('#token');
    });

    it('the overview shows the counts the API gives; the other pages render', async () => {
      const t0 = Date.now();
      await signIn(admin.get('node2')!);
      await page.waitForSelector('[data-testid=health][data-state=healthy]');
      const firstRenderMs = Date.now() - t0;
      const o = (await api<Overview>(http('node2'), 'GET', '/api/v1/overview', { token: admin.get('node2') })).body;
      // 3 chunks each of /d/a and /d/b, 2 of /lay/one; /small is inline.
      await waitFor('the page to show the API counts', 30_000, async () => (await page.textContent('[data-testid=files]')) === String(o.capacity.files) && (await page.textContent('[data-testid=chunks-total]')) === '8');
      expect(await page.textContent('[data-testid=chunks-lost]')).toBe('0');
      expect(await page.textContent('[data-testid=leader]')).toBe(o.leader);
      expect(await page.textContent('[data-testid=members-up]')).toBe('3/3');
      await shot('overview');
      process.stdout.write(`console: sign-in to a rendered overview took ${firstRenderMs} ms\n`);
      for (const [name, sel] of [
        ['raft', '[data-testid=raft-leader]'],
        ['events', '[data-testid=events-list]'],
        ['protection', '[data-testid=matrix]'],
        ['audit', '[data-testid=audit-table]'],
        ['clients', '[data-testid=clients-table] tr[data-session=node1]'],
      ] as const) {
        await page.goto(`http://${http('node2')}/#/${name}`);
        await page.waitForSelector(sel);
        await shot(name);
      }
      await page.goto(`http://${http('node2')}/#/protection`);
      await page.click('[data-cell="replicas/2/2"]');
      await page.waitForSelector('[data-testid=cell-files] >> text="/d/b"');
      await shot('protection-cell');
    });

    it('what-if on two nodes lists the files; browse shows a file and its chunks', async () => {
      await page.goto(`http://${http('node2')}/#/nodes`);
      await page.check('[aria-label="pick node1"]');
      await page.check('[aria-label="pick node2"]');
      await page.click('[data-testid=what-if]');
      await page.waitForSelector('[data-testid=what-if-result]');
      // Every chunk of /d/a and /d/b has a copy on node1 or node2.
      const text = (await page.textContent('[data-testid=what-if-result]')) ?? '';
      expect(text).toContain('/d/a');
      expect(text).toContain('/d/b');
      await shot('what-if');
      await page.goto(`http://${http('node2')}/#/browse?path=%2F`);
      await page.click('[data-testid=dir-list] >> text="d"');
      await page.waitForSelector('[data-testid=dir-list] >> text="a"');
      await page.click('[data-testid=dir-list] >> text="a"');
      await page.waitForSelector('[data-testid=chunks-table]');
      expect(await page.locator('[data-testid=chunks-table] tbody tr').count()).toBe(6);
      expect(await page.textContent('[data-testid=file-info]')).toContain('all copies ok');
      await shot('browse-file');
    });

    it('drain from the Nodes page: the node ends drained, its copies moved', async () => {
      const { id: leader } = await c.agreedLeader();
      const victim = c.nodes.map((n) => n.id).find((id) => id !== leader && id !== 'node1')!;
      await page.goto(`http://${http('node2')}/#/nodes`);
      page.once('dialog', (d) => void d.accept());
      await page.click(`tr[data-node=${victim}] >> button:text-is("drain")`);
      await page.waitForSelector('[data-testid=action-result]');
      await page.waitForSelector(`tr[data-node=${victim}] [data-testid=node-state] >> text="drained"`, { timeout: 60_000 });
      await shot('nodes-drained');
      const f = await api<BrowseFile>(http('node1'), 'GET', '/api/v1/browse?path=/lay/one', { token: admin.get('node1') });
      expect(f.body.info.chunks.flatMap((ch) => ch.copies.map((x) => x.nodeId))).not.toContain(victim);
      // Undo, so the kill test below sees a cluster at full strength.
      await page.click(`tr[data-node=${victim}] >> button:text-is("cancel drain")`);
      await page.waitForSelector(`tr[data-node=${victim}] [data-testid=node-state] >> text="drained"`, { state: 'detached', timeout: 15_000 });
      const audit = await api<{ entries: Array<{ action: string; target: string; result: string; via: string }> }>(http('node2'), 'GET', '/api/v1/audit?limit=2', { token: admin.get('node2') });
      expect(audit.body.entries.map((e) => `${e.action} ${e.target} ${e.result}`)).toEqual([`cancel-drain ${victim} ok`, `drain ${victim} ok`]);
      expect(audit.body.entries[0].via).toMatch(/^session /);
    });

    it('kill -9 of a daemon turns the overview degraded; remove-member is refused without a live quorum; back, it is healthy', async () => {
      const { id: leader } = await c.agreedLeader();
      const victim = c.nodes.map((n) => n.id).find((id) => id !== leader && id !== 'node1' && id !== 'node2') ?? c.nodes.map((n) => n.id).find((id) => id !== leader && id !== 'node1')!;
      const watcher = victim === 'node2' ? 'node1' : 'node2';
      if (watcher !== 'node2') await signInAt(watcher);
      await page.goto(`http://${http(watcher)}/#/overview`);
      await page.waitForSelector('[data-testid=health][data-state=healthy]');
      const es = await openStream(http(watcher), admin.get(watcher)!);
      await c.kill(victim);
      await page.waitForSelector('[data-testid=health]:not([data-state=healthy])', { timeout: 30_000 });
      expect(await page.textContent('[data-testid=health-reason]')).toContain(victim);
      // The live stream brings the leader's verdict on the victim (--dead-after 3s).
      await waitFor(`a node-dead event for ${victim} on the stream`, 30_000, () => es.text().includes(`"kind":"node-dead","nodeId":"${victim}"`));
      es.close();
      await shot('overview-degraded');
      // Removing a live member would leave 2 voters of which only 1 answers.
      const other = c.nodes.map((n) => n.id).find((id) => id !== leader && id !== victim)!;
      const rm = await api(http(watcher), 'POST', '/api/v1/raft/remove-member', { token: admin.get(watcher), body: { nodeId: other } });
      expect(rm).toMatchObject({ status: 409, body: { code: 'failed_precondition' } });
      expect((rm.body as { message: string }).message).toMatch(/quorum/);
      await c.start([victim]);
      await page.waitForSelector('[data-testid=health][data-state=healthy]', { timeout: 60_000 });
      await shot('overview-healthy-again');
      expect(pageErrors).toEqual([]);
    });

    async function signInAt(id: string): Promise<void> {
      await page.goto(`http://${http(id)}/`);
      await page.fill('#token', admin.get(id)!);
      await page.click('button[type=submit]');
      await page.waitForSelector('[data-testid=role]');
    }
  });
});
