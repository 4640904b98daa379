// First render of each console page in Debian's Chromium (playwright-core): a fresh load of
// the page's URL until its main element is in the DOM, 5 runs each, median and max; and
// the median time of the API calls behind them. Against a running cluster:
//   node scripts/bench-console.mjs --http 127.0.0.1:7603 --token-file /tmp/dev/node2/console-admin.token
// (dfs dev up prints both). Pages: overview, nodes, raft, events, protection, browse (a
// directory: --dir, default /; a file: --file, if given), clients, audit.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { chromium } from 'playwright-core';

const fetch = globalThis.fetch;

const { values: o } = parseArgs({
  options: {
    http: { type: 'string' },
    'token-file': { type: 'string' },
    dir: { type: 'string', default: '/' },
    file: { type: 'string' },
    chromium: { type: 'string', default: process.env.DFS_CHROMIUM ?? '/usr/bin/chromium' },
    runs: { type: 'string', default: '5' },
  },
});
if (!o.http || !o['token-file']) {
  console.error('usage: node scripts/bench-console.mjs --http HOST:PORT --token-file FILE [--dir PATH] [--file PATH]');
  process.exit(2);
}
const base = `http://${o.http}`;
const token = readFileSync(o['token-file'], 'utf8').trim();
const runs = Number(o.runs);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const browser = await chromium.launch({ executablePath: o.chromium, args: ['--no-sandbox', '--disable-gpu'] });
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  await page.goto(`${base}/`);
  await page.fill('#token', token);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=role]');
  const pages = [
    ['overview', '[data-testid=health]'],
    ['nodes', '[data-testid=nodes-table] tbody tr'],
    ['raft', '[data-testid=raft-leader]'],
    ['events', '[data-testid=events-list]'],
    ['protection', '[data-testid=matrix]'],
    [`browse?path=${encodeURIComponent(o.dir)}`, '[data-testid=dir-list]'],
    ...(o.file ? [[`browse?path=${encodeURIComponent(o.file)}`, '[data-testid=file-info]']] : []),
    ['clients', '[data-testid=clients-table]'],
    ['audit', '[data-testid=audit-table]'],
  ];
  for (const [name, sel] of pages) {
    const ms = [];
    for (let i = 0; i < runs; i++) {
      await page.goto('about:blank');
      const t = performance.now();
      await page.goto(`${base}/#/${name}`);
      await page.waitForSelector(sel);
      ms.push(performance.now() - t);
    }
    console.log(`page ${name}: median ${median(ms).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms`);
  }
} finally {
  await browser.close();
}
for (const p of ['/api/v1/overview', '/api/v1/nodes', '/api/v1/raft', '/api/v1/protection', `/api/v1/browse?path=${encodeURIComponent(o.dir)}&limit=1000`]) {
  const ms = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await (await fetch(base + p, { headers: { authorization: `Bearer ${token}` } })).text();
    ms.push(performance.now() - t);
  }
  console.log(`api ${p}: median ${median(ms).toFixed(1)} ms`);
}
