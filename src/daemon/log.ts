// The daemon's log: pino over an asynchronous SonicBoom destination (stdout by default).
// A full or failing log disk, or a reader of stdout that went away, must never stop the
// daemon. Left alone, pino re-emits such a write error (ENOSPC, EIO) as an 'error' event
// nobody listens to, which kills the process, and its exit hook then retries the same
// failing write forever. Here a write error is counted, noted on stderr at most once per
// `warnEveryMs`, and the daemon goes on: the destination keeps the unwritten lines (up to
// `maxBufferedBytes`, later lines are dropped and counted) and retries them with the next
// line, so logging resumes by itself once the disk has room again.
import { write as fsWrite } from 'node:fs';
import { pino, type Logger } from 'pino';

/** Lines held while the destination fails (or is slower than the daemon logs). */
export const DEFAULT_LOG_BUFFER_BYTES = 16 * 1024 * 1024;
/** At most one note about failing log writes on stderr per this long. */
export const DEFAULT_LOG_WARN_EVERY_MS = 10_000;

export interface LogStats {
  /** Writes to the destination that failed (each one retried with the next line). */
  writeErrors: number;
  /** Lines dropped because the buffer was full. */
  droppedLines: number;
  /** errno code (or message) of the latest failed write. */
  lastError: string | null;
}

export interface DaemonLogOptions {
  level: string;
  base: Record<string, unknown>;
  /**
   * A file descriptor (default 1: stdout). No path: a SonicBoom whose file failed to open
   * throws from every write; a log file is the supervisor's to open (systemd, `dfs dev`).
   */
  dest?: number;
  maxBufferedBytes?: number;
  warnEveryMs?: number;
  /** Where the note about failing writes goes (default fd 2, its own errors ignored). */
  warn?: (line: string) => void;
  nowMs?: () => number;
}

export interface DaemonLog {
  logger: Logger;
  stats(): LogStats;
  /** The SonicBoom under the logger (flushSync is what pino calls on exit). */
  destination: ReturnType<typeof pino.destination>;
}

function writeToStderr(line: string): void {
  // Not process.stderr: a broken stderr would emit an 'error' event of its own.
  fsWrite(2, line, () => undefined);
}

export function createDaemonLog(opts: DaemonLogOptions): DaemonLog {
  const warnEveryMs = opts.warnEveryMs ?? DEFAULT_LOG_WARN_EVERY_MS;
  const warn = opts.warn ?? writeToStderr;
  const nowMs = opts.nowMs ?? (() => performance.now());
  const stats: LogStats = { writeErrors: 0, droppedLines: 0, lastError: null };
  let failing = false;
  let lastWarnMs = -Infinity;

  const dest = pino.destination({ dest: opts.dest ?? 1, sync: false, minLength: 0, maxLength: opts.maxBufferedBytes ?? DEFAULT_LOG_BUFFER_BYTES });
  // pino's own listener swallows EPIPE uncounted and re-emits everything else: ours replaces it.
  dest.removeAllListeners('error');
  dest.on('error', (err: NodeJS.ErrnoException) => {
    failing = true;
    stats.writeErrors++;
    stats.lastError = err.code ?? err.message;
    const now = nowMs();
    if (now - lastWarnMs >= warnEveryMs) {
      lastWarnMs = now;
      warn(`dfs: cannot write the log (${stats.lastError}); ${stats.writeErrors} failed writes, ${stats.droppedLines} lines dropped so far; the daemon goes on\n`);
    }
  });
  dest.on('write', () => (failing = false));
  dest.on('drop', () => stats.droppedLines++);
  // pino flushes with flushSync when the process exits, and flushSync retries a failing
  // write every 100 ms without end: while writes fail, exiting drops the buffered lines.
  const flushSync = dest.flushSync.bind(dest);
  dest.flushSync = () => {
    if (!failing) flushSync();
  };

  const logger = pino({ level: opts.level, base: opts.base }, dest);
  return { logger, stats: () => ({ ...stats }), destination: dest };
}
