// The console's JSON API, /api/v1/... (docs/api/openapi.yaml), and the console's static
// files. Every read and action calls the same cluster-ops.ts function as the CLI, over a
// MetaClient to this daemon (a follower forwards to the leader). Every request but the
// static shell and sign-in needs a token or a session (console-access.ts); actions need the
// admin role and are audited. Errors are JSON {code, message} with a stable code. Bounded:
// request bodies, page sizes, one namespace walk at a time, SSE subscribers.
import type http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { parseEcScheme } from '../chunks/ec.js';
import type { MetaClient } from '../meta/grpc.js';
import {
  cellKey,
  clusterStatus,
  eventsPage,
  fileInfoAt,
  getattrAt,
  listDirectory,
  nodesReport,
  OpsError,
  protectionCounts,
  protectionMatrix,
  raftReport,
  removeMember,
  sessionsReport,
  resolvePath,
  setDrain,
  setLayout,
  transferLeader,
  whatIfLostReport,
  entryType,
  type EventView,
  type OpsCode,
  type ProtectionMatrix,
} from './cluster-ops.js';
import { ConsoleAccess, type Identity, type Role } from './console-access.js';
import { HISTORY_INTERVAL_MS, type MetricsHistory } from './history.js';
import { InspectError, isDirAttr, layoutText, parseLayoutOptions } from './inspect.js';

/** A request body larger than this is refused (413) before it is parsed. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Live event streams held open at once by this daemon. */
export const MAX_EVENT_STREAMS = 64;
/** Unsent bytes an event stream may hold before it is closed (its client stopped reading). */
export const MAX_STREAM_BACKLOG_BYTES = 1024 * 1024;
/** How often the shared event feed asks the leader while someone is subscribed. */
export const EVENT_POLL_MS = 1000;
/** A protection matrix this fresh is served again instead of walking the namespace anew. */
export const MATRIX_TTL_MS = 10_000;
export const SESSION_COOKIE = 'dfs_session';
/** The built console (scripts/build-console.mjs writes it): dist/console beside dist/src. */
export const CONSOLE_STATIC_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'console');

/** Codes the API answers with beyond cluster-ops.ts's, and every code's HTTP status. */
export type ApiCode = OpsCode | 'unauthenticated' | 'forbidden' | 'no_route' | 'method_not_allowed' | 'payload_too_large' | 'unsupported_media_type' | 'bad_json' | 'busy';

const STATUS: Record<ApiCode, number> = {
  not_found: 404,
  invalid_argument: 400,
  unavailable: 503,
  failed_precondition: 409,
  unimplemented: 501,
  internal: 500,
  unauthenticated: 401,
  forbidden: 403,
  no_route: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  bad_json: 400,
  busy: 429,
};

class ApiError extends Error {
  constructor(
    readonly code: ApiCode,
    message: string,
  ) {
    super(message);
  }
}

export interface ApiDeps {
  /** A meta client to this daemon (kept open by the caller). */
  client: () => Promise<MetaClient>;
  /** This daemon's gRPC address (named in messages). */
  selfAddress: string;
  access: ConsoleAccess;
  /** The charts' samples (history.ts); none in tests that do not need them. */
  history?: MetricsHistory;
  /** Where the built console lives (index.html, assets/); null serves none. */
  staticDir: string | null;
  log: Logger;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendError(res: http.ServerResponse, code: ApiCode, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, STATUS[code], { code, message });
}

function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof OpsError) return new ApiError(e.code, e.message);
  if (e instanceof InspectError) return new ApiError('invalid_argument', e.message);
  return new ApiError('internal', (e as Error).message?.split('\n')[0] ?? String(e));
}

/** The body as JSON, at most MAX_BODY_BYTES; an empty body is `{}`. */
async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new ApiError('payload_too_large', `request body over ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new ApiError('payload_too_large', `request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(c as Buffer);
  }
  if (size === 0) return {};
  if (type !== 'application/json') throw new ApiError('unsupported_media_type', 'send the body as application/json');
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new ApiError('bad_json', `the body is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ApiError('bad_json', 'the body must be a JSON object');
  return v as Record<string, unknown>;
}

function cookie(req: http.IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

function intParam(q: URLSearchParams, name: string, dflt: number, min: number, max: number): number {
  const text = q.get(name);
  if (text === null || text === '') return dflt;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new ApiError('invalid_argument', `${name} must be an integer from ${min} to ${max}`);
  return n;
}

function stringField(body: Record<string, unknown>, name: string): string {
  const v = body[name];
  if (typeof v !== 'string' || v === '' || v.length > 4096) throw new ApiError('invalid_argument', `'${name}' must be a non-empty string`);
  return v;
}

/** The GET resources (docs/api/openapi.yaml). */
export const READS = new Set([
  '/api/v1/overview',
  '/api/v1/nodes',
  '/api/v1/raft',
  '/api/v1/events',
  '/api/v1/events/stream',
  '/api/v1/what-if-lost',
  '/api/v1/protection',
  '/api/v1/protection/files',
  '/api/v1/browse',
  '/api/v1/history',
  '/api/v1/clients',
  '/api/v1/audit',
]);

/** Every path the API serves, as docs/api/openapi.yaml names them (its unit test compares). */
export const API_PATHS = [
  '/api/v1/session',
  ...READS,
  '/api/v1/nodes/{nodeId}/drain',
  '/api/v1/nodes/{nodeId}/cancel-drain',
  '/api/v1/raft/transfer-leader',
  '/api/v1/raft/remove-member',
  '/api/v1/layout',
];

const NODE_PATH = /^\/api\/v1\/nodes\/([A-Za-z0-9._-]{1,64})\/(drain|cancel-drain)$/;

/** One shared poll of the leader's events while any stream listens; none while nobody does. */
class EventFeed {
  private readonly streams = new Set<http.ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private after = 0;
  private leader: string | null = null;
  private primed = false;

  constructor(
    private readonly client: () => Promise<MetaClient>,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  add(res: http.ServerResponse, backlog: EventView[], leader: string | null): void {
    this.streams.add(res);
    if (!this.primed) {
      this.after = backlog.length ? Number(backlog[backlog.length - 1].seq) : 0;
      this.leader = leader;
      this.primed = true;
    }
    res.on('close', () => {
      this.streams.delete(res);
      if (this.streams.size === 0) this.stop();
    });
    this.timer ??= setInterval(() => void this.poll(), EVENT_POLL_MS);
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.primed = false;
  }

  private polling = false;

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const c = await this.client();
      let r = await eventsPage(c, this.after, 1000);
      // Each daemon numbers its own events: a new leader's list starts over.
      if (r.leader && this.leader && r.leader !== this.leader) {
        r = await eventsPage(c, 0, 1000);
        this.broadcast('reset', { leader: r.leader });
      }
      this.leader = r.leader ?? this.leader;
      for (const e of r.events) this.broadcast('event', e);
      if (r.events.length) this.after = Number(r.events[r.events.length - 1].seq);
      else this.comment();
    } catch (e) {
      this.log.debug({ err: e }, 'console event feed: poll failed');
      this.broadcast('feed-error', { code: asApiError(e).code, message: asApiError(e).message });
    } finally {
      this.polling = false;
    }
  }

  private broadcast(type: string, data: unknown): void {
    this.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private comment(): void {
    this.write(':\n\n');
  }

  /** To every stream; one that does not read (over MAX_STREAM_BACKLOG_BYTES unsent) is closed, not buffered without end. */
  private write(frame: string): void {
    for (const s of this.streams) {
      if (s.writableLength > MAX_STREAM_BACKLOG_BYTES) s.destroy();
      else s.write(frame);
    }
  }
}

export class ConsoleApi {
  private readonly feed: EventFeed;
  private matrix: { atMs: number; value: Promise<ProtectionMatrix> } | null = null;
  /** Namespace walks (what-if, protection matrix) run one at a time; one more may wait. */
  private walking: Promise<void> = Promise.resolve();
  private walksQueued = 0;

  constructor(private readonly deps: ApiDeps) {
    this.feed = new EventFeed(deps.client, deps.log);
  }

  /** Handles the request when it is the API's or the console's; false for anything else. */
  handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): boolean {
    const p = url.pathname;
    if (p.startsWith('/api/v1/') || p === '/api/v1') {
      this.api(req, res, url).catch((e: unknown) => {
        const err = asApiError(e);
        if (err.code === 'internal') this.deps.log.warn({ err: e, path: p }, 'console API call failed');
        sendError(res, err.code, err.message);
      });
      return true;
    }
    if (p === '/' || p === '/index.html' || p.startsWith('/assets/')) {
      void this.serveStatic(req, res, p);
      return true;
    }
    return false;
  }

  private identify(req: http.IncomingMessage): Identity | null {
    const remote = req.socket.remoteAddress ?? '';
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(auth);
      const role = m ? this.deps.access.roleOfToken(m[1]) : null;
      return role ? { role, via: 'token', remote } : null;
    }
    const sid = cookie(req, SESSION_COOKIE);
    const role = sid ? this.deps.access.roleOfSession(sid) : null;
    return role ? { role, via: `session ${sid!.slice(0, 8)}`, remote } : null;
  }

  private async api(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const p = url.pathname.replace(/\/+$/, '');
    const method = req.method ?? 'GET';
    if (p === '/api/v1/session') return this.session(req, res, method);
    const who = this.identify(req);
    if (!who) throw new ApiError('unauthenticated', 'sign in: send Authorization: Bearer TOKEN (the token files are in the daemon data dir) or a session cookie');
    const q = url.searchParams;
    if (method === 'GET' || method === 'HEAD') return this.read(req, res, p, q, who);
    if (method !== 'POST') throw new ApiError('method_not_allowed', `${method} is not allowed here`);
    // A browser session must say it is JSON: a cross-site form cannot, so this stops CSRF.
    if (who.via !== 'token' && (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase() !== 'application/json') {
      throw new ApiError('unsupported_media_type', 'actions take an application/json body');
    }
    const body = await readJson(req);
    const node = NODE_PATH.exec(p);
    if (node) {
      const [, id, what] = node;
      return this.act(res, who, what, id, {}, async (c) => {
        const r = await setDrain(c, id, what === 'cancel-drain');
        return { ...r, message: r.alreadyDrained ? `${id} is drained already` : `${id}: ${r.state} (was ${r.previous})` };
      });
    }
    switch (p) {
      case '/api/v1/raft/transfer-leader': {
        const id = stringField(body, 'nodeId');
        return this.act(res, who, 'transfer-leader', id, {}, (c) => transferLeader(c, this.deps.selfAddress, id));
      }
      case '/api/v1/raft/remove-member': {
        const id = stringField(body, 'nodeId');
        const force = body.force === true;
        return this.act(res, who, 'remove-member', id, { force }, (c) => removeMember(c, this.deps.selfAddress, id, force));
      }
      case '/api/v1/layout': {
        const at = stringField(body, 'path');
        const o = {
          replicas: body.replicas === undefined ? undefined : String(body.replicas),
          ec: body.ec === undefined ? undefined : String(body.ec),
        };
        return this.act(res, who, 'set-layout', at, o, async (c) => {
          const wanted = parseLayoutOptions(o, parseEcScheme);
          const r = await setLayout(c, await resolvePath(c, this.deps.selfAddress, at), wanted);
          return { ...r, layoutText: layoutText(r.layout), message: `${at}: ${layoutText(r.layout)}` };
        });
      }
      default:
        throw new ApiError('no_route', `no action at POST ${p}`);
    }
  }

  /** Runs an action for an admin, writes it to the audit log whatever happens, answers with its result. */
  private async act<T extends { message: string }>(
    res: http.ServerResponse,
    who: Identity,
    action: string,
    target: string,
    params: Record<string, unknown>,
    run: (c: MetaClient) => Promise<T>,
  ): Promise<void> {
    if (who.role !== 'admin') {
      this.deps.access.record(who, action, target, params, { ok: false, code: 'forbidden', message: 'read-only role' });
      throw new ApiError('forbidden', `${action} needs the admin role; this one is read-only`);
    }
    try {
      const r = await run(await this.client());
      this.deps.access.record(who, action, target, params, { ok: true, message: r.message });
      sendJson(res, 200, r);
    } catch (e) {
      const err = asApiError(e);
      this.deps.access.record(who, action, target, params, { ok: false, code: err.code, message: err.message });
      throw err;
    }
  }

  private async session(req: http.IncomingMessage, res: http.ServerResponse, method: string): Promise<void> {
    if (method === 'GET') {
      const who = this.identify(req);
      if (!who) throw new ApiError('unauthenticated', 'not signed in');
      return sendJson(res, 200, { role: who.role, via: who.via.split(' ')[0] });
    }
    if (method === 'DELETE') {
      const sid = cookie(req, SESSION_COOKIE);
      if (sid) this.deps.access.endSession(sid);
      return sendJson(res, 200, { signedOut: true }, { 'set-cookie': `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0` });
    }
    if (method !== 'POST') throw new ApiError('method_not_allowed', `${method} is not allowed on /api/v1/session`);
    const body = await readJson(req);
    const token = typeof body.token === 'string' ? body.token.trim() : '';
    const role: Role | null = token ? this.deps.access.roleOfToken(token) : null;
    const remote = req.socket.remoteAddress ?? '';
    if (!role) {
      this.deps.access.recordFailedSignIn(remote);
      throw new ApiError('unauthenticated', 'that is not a console token of this daemon');
    }
    const sid = this.deps.access.createSession(role);
    this.deps.access.record({ role, via: `session ${sid.slice(0, 8)}`, remote }, 'sign-in', '', {}, { ok: true, message: `signed in as ${role}` });
    sendJson(res, 200, { role }, { 'set-cookie': `${SESSION_COOKIE}=${sid}; Path=/; HttpOnly; SameSite=Strict` });
  }

  /** One namespace walk at a time; a second waits, a third is told to come back. */
  private walk<T>(run: () => Promise<T>): Promise<T> {
    if (this.walksQueued >= 2) return Promise.reject(new ApiError('busy', 'a namespace walk is running already; try again in a moment'));
    this.walksQueued++;
    const next = this.walking.then(run);
    // The chain itself never rejects (a failed walk is its caller's answer, not a crash).
    this.walking = next.then(
      () => void this.walksQueued--,
      () => void this.walksQueued--,
    );
    return next;
  }

  private protection(c: MetaClient): Promise<ProtectionMatrix> {
    const now = Date.now();
    if (this.matrix && now - this.matrix.atMs < MATRIX_TTL_MS) return this.matrix.value;
    const value = this.walk(() => protectionMatrix(c));
    this.matrix = { atMs: now, value };
    value.catch(() => {
      if (this.matrix?.value === value) this.matrix = null;
    });
    return value;
  }

  /** The client of this daemon; failing to make one is the cluster being unavailable. */
  private async client(): Promise<MetaClient> {
    try {
      return await this.deps.client();
    } catch (e) {
      throw new ApiError('unavailable', `cannot reach this daemon's meta service: ${(e as Error).message.split('\n')[0]}`);
    }
  }

  private async read(req: http.IncomingMessage, res: http.ServerResponse, p: string, q: URLSearchParams, who: Identity): Promise<void> {
    if (!READS.has(p)) throw new ApiError('no_route', `no resource at GET ${p}`);
    if (p === '/api/v1/audit') return sendJson(res, 200, { entries: this.deps.access.auditEntries(intParam(q, 'limit', 100, 1, 1000)) });
    if (p === '/api/v1/history') {
      const seconds = intParam(q, 'seconds', 3600, 10, 3 * 3600);
      return sendJson(res, 200, { intervalMs: HISTORY_INTERVAL_MS, samples: this.deps.history?.since(seconds) ?? [] });
    }
    const c = await this.client();
    switch (p) {
      case '/api/v1/overview': {
        const [status, events] = await Promise.all([clusterStatus(c, this.deps.selfAddress), eventsPage(c, 0, 20).catch(() => null)]);
        return sendJson(res, 200, { ...status, health: status.health, recentEvents: events?.events.slice().reverse() ?? null, role: who.role });
      }
      case '/api/v1/nodes':
        return sendJson(res, 200, await nodesReport(c));
      case '/api/v1/raft':
        return sendJson(res, 200, await raftReport(c));
      case '/api/v1/clients':
        return sendJson(res, 200, await sessionsReport(c));
      case '/api/v1/events': {
        const r = await eventsPage(c, intParam(q, 'after', 0, 0, Number.MAX_SAFE_INTEGER), intParam(q, 'limit', 100, 1, 1000));
        return sendJson(res, 200, r);
      }
      case '/api/v1/events/stream':
        return this.stream(req, res, c, q);
      case '/api/v1/what-if-lost': {
        const ids = (q.get('nodes') ?? '').split(',').filter((s) => s !== '');
        if (ids.length > 64) throw new ApiError('invalid_argument', 'at most 64 nodes');
        return sendJson(res, 200, await this.walk(() => whatIfLostReport(c, ids)));
      }
      case '/api/v1/protection':
        return sendJson(res, 200, await protectionCounts(c));
      case '/api/v1/protection/files': {
        const key = cellKey({ scheme: q.get('scheme') ?? '', want: intParam(q, 'want', 0, 0, 64), valid: intParam(q, 'valid', 0, 0, 64) });
        const offset = intParam(q, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
        const limit = intParam(q, 'limit', 100, 1, 1000);
        const m = await this.protection(c);
        const all = m.paths.get(key) ?? [];
        const cell = m.cells.find((x) => cellKey(x) === key);
        return sendJson(res, 200, { cell: key, chunks: cell?.chunks ?? 0, total: all.length, truncated: m.truncated.includes(key), offset, paths: all.slice(offset, offset + limit) });
      }
      case '/api/v1/browse':
        return this.browse(res, c, q);
      default:
        throw new ApiError('no_route', `no resource at GET ${p}`);
    }
  }

  private async browse(res: http.ServerResponse, c: MetaClient, q: URLSearchParams): Promise<void> {
    const at = q.get('path') || '/';
    const loc = await resolvePath(c, this.deps.selfAddress, at);
    const attr = await getattrAt(c, loc);
    const type = entryType(attr.mode);
    const base = { path: at, ino: attr.ino, type, layout: attr.layout, layoutText: layoutText(attr.layout), sizeBytes: attr.size, mode: attr.mode };
    if (isDirAttr(attr)) {
      const after = q.get('after');
      const page = await listDirectory(c, loc, after === null || after === '' ? null : after, intParam(q, 'limit', 200, 1, 1000));
      return sendJson(res, 200, { ...base, ...page });
    }
    if (type !== 'file') return sendJson(res, 200, base);
    const info = await fileInfoAt(c, loc, attr, { verify: q.get('verify') === '1', timeoutMs: 5000 });
    return sendJson(res, 200, { ...base, info });
  }

  private async stream(req: http.IncomingMessage, res: http.ServerResponse, c: MetaClient, q: URLSearchParams): Promise<void> {
    if (this.feed.size >= MAX_EVENT_STREAMS) throw new ApiError('busy', `at most ${MAX_EVENT_STREAMS} event streams at once`);
    const backlog = await eventsPage(c, 0, intParam(q, 'backlog', 100, 1, 1000));
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ leader: backlog.leader })}\n\n`);
    for (const e of backlog.events) res.write(`event: event\ndata: ${JSON.stringify(e)}\n\n`);
    req.socket.setTimeout(0);
    this.feed.add(res, backlog.events, backlog.leader);
  }

  private async serveStatic(req: http.IncomingMessage, res: http.ServerResponse, p: string): Promise<void> {
    const dir = this.deps.staticDir;
    const name = p === '/' ? 'index.html' : p.replace(/^\//, '');
    const types: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };
    const type = types[path.extname(name)];
    // Only flat names under assets/ (no traversal, no dot files).
    if (!dir || !type || !/^(index\.html|assets\/[a-z0-9][a-z0-9._-]*)$/.test(name) || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(dir ? 404 : 503, { 'content-type': 'text/plain' });
      res.end(dir ? 'not found\n' : 'the console is not built (npm run build)\n');
      return;
    }
    try {
      const body = await readFile(path.join(dir, name));
      res.writeHead(200, {
        'content-type': type,
        'content-length': body.length,
        'cache-control': name === 'index.html' ? 'no-cache' : 'public, max-age=3600',
        'x-content-type-options': 'nosniff',
        'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  }
}
