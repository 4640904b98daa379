// The daemon's HTTP endpoint: /healthz (the process answers), /readyz (stores open and
// the mount up), /metrics (Prometheus text), /api/status (JSON for tools), all open; and on
// a server daemon the console and its JSON API /api/v1/... (http-api.ts), which need a token.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { parseAddress } from './config.js';
import type { ConsoleApi } from './http-api.js';

export interface HttpSources {
  registry: Registry;
  ready: () => { ready: boolean; reason: string };
  status: () => Promise<unknown>;
  /** The console and /api/v1 (server daemons). */
  console?: ConsoleApi;
}

/**
 * Serves `sources` on `address`, or on `bound` when the daemon bound the port first (it then
 * answered 503 `starting` meanwhile: src/daemon/daemon.ts, bindEarly).
 */
export async function startHttp(address: string, sources: HttpSources, bound?: http.Server): Promise<{ server: http.Server; port: number }> {
  const { host, port } = parseAddress(address, 'http');
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    let parsed: URL;
    try {
      parsed = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('bad request\n');
      return;
    }
    if (sources.console?.handle(req, res, parsed)) return;
    const url = parsed.pathname;
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    if (url === '/healthz') return send(200, 'text/plain', 'ok\n');
    if (url === '/readyz') {
      const r = sources.ready();
      return send(r.ready ? 200 : 503, 'text/plain', `${r.ready ? 'ready' : 'not ready'}: ${r.reason}\n`);
    }
    if (url === '/metrics') {
      sources.registry.metrics().then(
        (text) => send(200, sources.registry.contentType, text),
        (e: unknown) => send(500, 'text/plain', `metrics failed: ${String(e)}\n`),
      );
      return;
    }
    if (url === '/api/status') {
      sources.status().then(
        (s) => send(200, 'application/json', JSON.stringify(s, null, 2) + '\n'),
        (e: unknown) => send(500, 'application/json', JSON.stringify({ error: String(e) }) + '\n'),
      );
      return;
    }
    send(404, 'text/plain', 'not found\n');
  };
  if (bound) {
    bound.on('request', handler);
    return { server: bound, port: (bound.address() as AddressInfo).port };
  }
  const server = http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host.replace(/^\[|\]$/g, ''), () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, port: (server.address() as AddressInfo).port };
}
