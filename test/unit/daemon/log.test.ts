// The daemon log over destinations that fail: /dev/full (every write ENOSPC) and a FIFO
// whose reader went away (EPIPE). Without the error handling in
// src/daemon/log.ts the first failed write is an unhandled 'error' event on SonicBoom, which
// fails this file, and flushSync (pino's exit hook) retries forever.
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDaemonLog, type DaemonLog } from '../../../src/daemon/log.js';

const logs: DaemonLog[] = [];
const dirs: string[] = [];
afterEach(async () => {
  // destroy() closes the destination's fd (asynchronously: wait, so no later test's fd is closed)
  for (const l of logs.splice(0)) await new Promise((resolve) => l.destination.once('close', resolve).destroy());
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Every write to /dev/full fails with ENOSPC. */
const devFull = (): number => openSync('/dev/full', 'w');

function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'dfs-log-'));
  dirs.push(d);
  return d;
}

function open(dest: number, extra: { maxBufferedBytes?: number; nowMs?: () => number } = {}): { log: DaemonLog; warnings: string[] } {
  const warnings: string[] = [];
  const log = createDaemonLog({ level: 'info', base: { node: 't' }, dest, warn: (l) => warnings.push(l), warnEveryMs: 10_000, ...extra });
  logs.push(log);
  return { log, warnings };
}

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('daemon log', () => {
  it('writes lines to its destination', async () => {
    const file = path.join(tmp(), 'daemon.log');
    const { log } = open(openSync(file, 'a'));
    log.logger.info({ x: 1 }, 'hello');
    await until('the line on disk', () => readFileSync(file, 'utf8').includes('"msg":"hello"'));
    expect(log.stats()).toEqual({ writeErrors: 0, droppedLines: 0, lastError: null });
  });

  it('ENOSPC: counted, one note on stderr per interval, and the logger goes on', async () => {
    let nowMs = 0;
    const { log, warnings } = open(devFull(), { nowMs: () => nowMs });
    log.logger.info('first');
    await until('a failed write', () => log.stats().writeErrors >= 1);
    // Every new line retries the buffered ones, and each failure is counted. (How many lines
    // one write attempt carries depends on when the previous one failed: log until it shows.)
    let i = 0;
    await until('more failed writes', () => {
      log.logger.info({ i: i++ }, 'more');
      return log.stats().writeErrors >= 5;
    });
    expect(log.stats().lastError).toBe('ENOSPC');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^dfs: cannot write the log \(ENOSPC\); \d+ failed writes, 0 lines dropped so far; the daemon goes on\n$/);
    nowMs = 10_000;
    log.logger.info('after the interval');
    await until('a second note', () => warnings.length === 2);
    // pino's exit hook: returns at once instead of retrying the failing write forever
    const started = performance.now();
    log.destination.flushSync();
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('drops and counts lines beyond the buffer while the destination fails', async () => {
    const { log } = open(devFull(), { maxBufferedBytes: 4096 });
    for (let i = 0; i < 200; i++) log.logger.info({ i, pad: 'x'.repeat(100) }, 'line');
    await until('a failed write', () => log.stats().writeErrors >= 1);
    expect(log.stats().droppedLines).toBeGreaterThan(100);
  });

  it('EPIPE (the reader of a pipe went away): counted, not fatal', async () => {
    const fifo = path.join(tmp(), 'fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    closeSync(reader);
    const { log } = open(writer);
    log.logger.info('nobody reads this');
    await until('a failed write', () => log.stats().writeErrors >= 1);
    expect(log.stats().lastError).toBe('EPIPE');
    log.destination.flushSync();
  });
});
