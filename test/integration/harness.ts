// Real daemons for integration tests: each runs as its own process from the built CLI
// (dist/bin/dfs.js) on 127.0.0.1, with its own temp data dir and mount point. Tests
// kill only the processes they started, by pid, and always unmount in teardown.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, open, rm, readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const execFileAsync = promisify(execFile);
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(ROOT, 'dist', 'bin', 'dfs.js');

/** Poll `check` until it returns true, or fail after `timeoutMs`. */
export async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean> | boolean): Promise<void> {
  const end = Date.now() + timeoutMs;
  let delay = 20;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 200);
  }
}

/** A free TCP port on 127.0.0.1 (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function isMounted(dir: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').some((l) => l.split(' ')[4] === dir);
}

export async function unmount(dir: string): Promise<void> {
  if (await isMounted(dir)) await execFileAsync('fusermount3', ['-uz', dir]).catch(() => undefined);
}

export interface DaemonProc {
  child: ChildProcess;
  pid: number;
  grpc: string;
  http: string;
  dataDir: string;
  mount: string | null;
  logFile: string;
  output: () => string;
}

export interface StartOptions {
  dataDir: string;
  mount?: string | null;
  grpcPort?: number;
  extraArgs?: string[];
  /** Wait for /readyz (default true). */
  waitReady?: boolean;
}

/** Whether a daemon's HTTP endpoint answers /readyz with 200 (false when it does not answer within 1 s). */
export async function httpReady(http: string): Promise<boolean> {
  try {
    const r = await fetch(`http://${http}/readyz`, { signal: AbortSignal.timeout(1000) });
    return r.status === 200;
  } catch {
    return false;
  }
}

function spawnCli(args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer) => {
    out += b.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, output: () => out };
}

/** How a CLI run ended: its exit code (null when it was killed, e.g. at its deadline) and its output. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the CLI (`node dist/bin/dfs.js ...args`) to completion, SIGKILLed after `timeoutMs`; never rejects. */
export function dfs(args: string[], timeoutMs = 60_000): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** `dfs ...args` that must exit 0: its stdout. */
export async function dfsOk(args: string[], timeoutMs?: number): Promise<string> {
  const r = await dfs(args, timeoutMs);
  expect(r.code, `dfs ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/** `dfs ...args --json` that must exit with `code` (default 0): its stdout parsed. */
export async function dfsJson<T>(args: string[], code = 0, timeoutMs?: number): Promise<T> {
  const r = await dfs([...args, '--json'], timeoutMs);
  expect(r.code, `dfs ${args.join(' ')}: ${r.stderr}`).toBe(code);
  return JSON.parse(r.stdout) as T;
}

/** An operating error at the CLI: exit 1 and exactly one stderr line `dfs: ...` matching `why`. */
export function expectOneLineError(r: CliRun, why: RegExp): void {
  expect(r.code, `exit code (stdout: ${r.stdout}, stderr: ${r.stderr})`).toBe(1);
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect(lines, 'stderr is one line').toHaveLength(1);
  expect(lines[0]).toMatch(/^dfs: /);
  expect(lines[0]).toMatch(why);
}

/** Start `dfs daemon` (server role, optionally mounting) and wait until it is ready. */
export async function startDaemon(opts: StartOptions): Promise<DaemonProc> {
  const grpcPort = opts.grpcPort ?? (await freePort());
  const httpPort = await freePort();
  const grpc = `127.0.0.1:${grpcPort}`;
  const http = `127.0.0.1:${httpPort}`;
  await mkdir(opts.dataDir, { recursive: true });
  const args = ['daemon', '--data-dir', opts.dataDir, '--listen', grpc, '--http', http, '--log-level', 'warn', ...(opts.extraArgs ?? [])];
  if (opts.mount) {
    await mkdir(opts.mount, { recursive: true });
    args.push('--mount', opts.mount);
  }
  const { child, output } = spawnCli(args);
  const proc: DaemonProc = { child, pid: child.pid!, grpc, http, dataDir: opts.dataDir, mount: opts.mount ?? null, logFile: '', output };
  if (opts.waitReady !== false) {
    await waitFor(`daemon on ${grpc} to be ready`, 30_000, async () => {
      if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}: ${output()}`);
      return httpReady(http);
    });
  }
  return proc;
}

/** Start `dfs mount ADDR DIR` (client only) and wait until it is ready. */
export async function startClient(addr: string, mount: string): Promise<DaemonProc> {
  const httpPort = await freePort();
  const http = `127.0.0.1:${httpPort}`;
  await mkdir(mount, { recursive: true });
  const { child, output } = spawnCli(['mount', addr, mount, '--http', http, '--log-level', 'warn']);
  const proc: DaemonProc = { child, pid: child.pid!, grpc: addr, http, dataDir: '', mount, logFile: '', output };
  await waitFor(`client mount at ${mount}`, 30_000, async () => {
    if (child.exitCode !== null) throw new Error(`client exited with ${child.exitCode}: ${output()}`);
    return httpReady(http);
  });
  return proc;
}

/** Resolves with the exit code of a child process (null when killed by a signal). */
export function childExit(c: ChildProcess): Promise<number | null> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(c.exitCode);
  return new Promise((resolve) => c.once('exit', (code) => resolve(code)));
}

export function exited(p: DaemonProc): Promise<number | null> {
  return childExit(p.child);
}

/** `p`, or a rejection naming `what` after `ms`. */
export async function withDeadline<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Graceful stop (SIGTERM) with a deadline, then SIGKILL; always unmounts. */
export async function stopDaemon(p: DaemonProc, timeoutMs = 20_000): Promise<number | null> {
  let code: number | null = null;
  if (p.child.exitCode === null && p.child.signalCode === null) {
    p.child.kill('SIGTERM');
    const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
    code = await exited(p);
    clearTimeout(timer);
  } else code = p.child.exitCode;
  if (p.mount) await unmount(p.mount);
  return code;
}

/** kill -9, as a crash. The mount is left dead (ENOTCONN) as a real crash would leave it. */
export async function killDaemon(p: DaemonProc): Promise<void> {
  p.child.kill('SIGKILL');
  await exited(p);
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `dfs-${prefix}-`));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Run a shell command; rejects with its stderr when it exits non-zero. */
export async function sh(cmd: string, opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const { stdout } = await execFileAsync('bash', ['-o', 'pipefail', '-c', cmd], {
    cwd: opts.cwd,
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
    env: opts.env ?? process.env,
  });
  return stdout;
}

/** Run a shell command and return its exit code and output, never rejecting. */
export async function shTry(cmd: string, opts: { cwd?: string; timeoutMs?: number } = {}): Promise<{ code: number; out: string }> {
  try {
    return { code: 0, out: await sh(cmd, opts) };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

/** One mounted single-node daemon in a temp dir, for a test file. */
export class MountedFs {
  base = '';
  mnt = '';
  daemon: DaemonProc | null = null;

  async start(extraArgs: string[] = []): Promise<this> {
    this.base = await tempDir('it');
    this.mnt = path.join(this.base, 'mnt');
    this.daemon = await startDaemon({ dataDir: path.join(this.base, 'data'), mount: this.mnt, extraArgs });
    return this;
  }

  async restart(): Promise<void> {
    if (this.daemon) await stopDaemon(this.daemon);
    this.daemon = await startDaemon({ dataDir: path.join(this.base, 'data'), mount: this.mnt });
  }

  async stop(): Promise<void> {
    if (this.daemon) await stopDaemon(this.daemon);
    this.daemon = null;
    if (this.mnt) await unmount(this.mnt);
    if (this.base) await removeDir(this.base);
  }
}

/** Run a python3 script (passed on stdin-free `-c`) with argv; rejects on non-zero exit. */
export async function py(code: string, args: string[] = [], opts: { timeoutMs?: number } = {}): Promise<string> {
  const { stdout } = await execFileAsync('python3', ['-c', code, ...args], {
    timeout: opts.timeoutMs ?? 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/** Drop the kernel page cache, dentries and inodes so reads go back to the filesystem. */
export async function dropCaches(): Promise<void> {
  await sh('sync; echo 3 > /proc/sys/vm/drop_caches');
}

/**
 * Flips one byte of a file on disk (default: the middle; a negative offset counts from
 * the end) and fsyncs it: silent corruption of a chunk object, for CRC32C tests.
 */
export async function flipByte(file: string, offset?: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const size = (await fh.stat()).size;
    const at = offset === undefined ? Math.floor(size / 2) : offset < 0 ? size + offset : offset;
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] ^= 0x5a;
    await fh.write(b, 0, 1, at);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
