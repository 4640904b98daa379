// Who may use the console and the JSON API, until issue 13 brings certificates with roles:
// two bearer tokens per daemon (admin, read-only) created at first start in its data dir
// (mode 0600), sign-in sessions (an HttpOnly cookie standing for a token's role), and the
// audit log of every action (who, what, when, result): JSON lines in the data dir and the
// latest entries in memory for the API. Tokens are compared in constant time and never logged.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { appendFile, chmod, open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

export type Role = 'admin' | 'read-only';

export const ADMIN_TOKEN_FILE = 'console-admin.token';
export const READONLY_TOKEN_FILE = 'console-readonly.token';
export const AUDIT_LOG_FILE = 'audit.log';

/** A signed-in browser keeps its session this long without using it. */
export const SESSION_IDLE_MS = 8 * 3_600_000;
/** Sessions held at once; the least recently used goes first beyond this. */
export const MAX_SESSIONS = 1024;
/** Audit entries kept in memory for the API (the file keeps them all). */
export const AUDIT_MEMORY = 1000;
/** At start, the audit file's last this many bytes are read back into memory. */
export const AUDIT_RELOAD_BYTES = 256 * 1024;
/**
 * Failed sign-ins written to the audit log per minute at most: anyone who reaches the port
 * can try, and must not fill the disk. The rest are counted in the next one written.
 */
export const FAILED_SIGN_INS_PER_MINUTE = 10;

export interface Identity {
  role: Role;
  /** How the caller proved it: a bearer token or a sign-in session (its id's first 8 hex digits). */
  via: string;
  remote: string;
}

export interface AuditEntry {
  timeMs: number;
  role: Role;
  via: string;
  remote: string;
  /** e.g. "drain", "cancel-drain", "transfer-leader", "remove-member", "set-layout", "sign-in". */
  action: string;
  /** What it was done to: a node id or a path. */
  target: string;
  params: Record<string, unknown>;
  result: 'ok' | 'error';
  /** The error code when it failed. */
  code: string | null;
  message: string;
}

/** The audit file's latest entries (at most AUDIT_MEMORY, from its last AUDIT_RELOAD_BYTES); none when there is no file. */
async function tailOfAudit(file: string): Promise<AuditEntry[]> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    return [];
  }
  const fh = await open(file, 'r');
  try {
    const length = Math.min(size, AUDIT_RELOAD_BYTES);
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, size - length);
    const lines = buf.toString('utf8').split('\n');
    if (length < size) lines.shift(); // cut mid-line
    const out: AuditEntry[] = [];
    for (const l of lines) {
      if (!l.trim()) continue;
      try {
        out.push(JSON.parse(l) as AuditEntry);
      } catch {
        // A torn last line (a crash mid-write) or a hand edit: skipped, the file keeps it.
      }
    }
    return out.slice(-AUDIT_MEMORY);
  } finally {
    await fh.close();
  }
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Reads the token file, creating it (0600, 256 random bits) when it does not exist yet. */
async function ensureToken(file: string): Promise<string> {
  try {
    const fh = await open(file, 'wx', 0o600);
    try {
      const token = randomBytes(32).toString('base64url');
      await fh.writeFile(token + '\n');
      await fh.sync();
      return token;
    } finally {
      await fh.close();
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  await chmod(file, 0o600);
  const token = (await readFile(file, 'utf8')).trim();
  if (token.length < 16) throw new Error(`${file}: a console token must be at least 16 characters (delete the file to get a new one)`);
  return token;
}

export class ConsoleAccess {
  private readonly sessions = new Map<string, { role: Role; lastUsedMs: number }>();
  private readonly audit: AuditEntry[] = [];
  private auditWrites: Promise<void> = Promise.resolve();
  private failedSignIns = { windowStartMs: 0, written: 0, suppressed: 0 };

  private constructor(
    private readonly adminDigest: Buffer,
    private readonly readOnlyDigest: Buffer,
    private readonly auditFile: string | null,
    private readonly nowMs: () => number,
    private readonly onAuditError: (e: unknown) => void,
  ) {}

  /** The tokens of the daemon whose data dir is `dataDir` (created at first start). */
  static async open(dataDir: string, opts: { nowMs?: () => number; onAuditError?: (e: unknown) => void } = {}): Promise<ConsoleAccess> {
    const admin = await ensureToken(path.join(dataDir, ADMIN_TOKEN_FILE));
    const readOnly = await ensureToken(path.join(dataDir, READONLY_TOKEN_FILE));
    const file = path.join(dataDir, AUDIT_LOG_FILE);
    const a = new ConsoleAccess(digest(admin), digest(readOnly), file, opts.nowMs ?? Date.now, opts.onAuditError ?? (() => undefined));
    a.audit.push(...(await tailOfAudit(file)));
    return a;
  }

  /**
   * A failed sign-in, audited at most FAILED_SIGN_INS_PER_MINUTE times a minute (the one
   * written after a quiet spell says how many were left out).
   */
  recordFailedSignIn(remote: string): void {
    const now = this.nowMs();
    const f = this.failedSignIns;
    if (now - f.windowStartMs >= 60_000) {
      f.windowStartMs = now;
      f.written = 0;
    }
    if (f.written >= FAILED_SIGN_INS_PER_MINUTE) {
      f.suppressed++;
      return;
    }
    f.written++;
    const more = f.suppressed > 0 ? ` (and ${f.suppressed} more failed sign-ins not written)` : '';
    f.suppressed = 0;
    this.record({ role: 'read-only', via: 'sign-in', remote }, 'sign-in', '', {}, { ok: false, code: 'unauthenticated', message: `wrong token${more}` });
  }

  /** For tests: fixed tokens, audit in memory only. */
  static fixed(admin: string, readOnly: string, nowMs: () => number = Date.now): ConsoleAccess {
    return new ConsoleAccess(digest(admin), digest(readOnly), null, nowMs, () => undefined);
  }

  /** The role a token gives, or null. Both digests are compared whatever the outcome (constant time). */
  roleOfToken(token: string): Role | null {
    const d = digest(token);
    const admin = timingSafeEqual(d, this.adminDigest);
    const readOnly = timingSafeEqual(d, this.readOnlyDigest);
    return admin ? 'admin' : readOnly ? 'read-only' : null;
  }

  /** A new sign-in session for `role`: its id, for the cookie. */
  createSession(role: Role): string {
    if (this.sessions.size >= MAX_SESSIONS) {
      const oldest = [...this.sessions.entries()].reduce((a, b) => (a[1].lastUsedMs <= b[1].lastUsedMs ? a : b));
      this.sessions.delete(oldest[0]);
    }
    const id = randomBytes(32).toString('base64url');
    this.sessions.set(id, { role, lastUsedMs: this.nowMs() });
    return id;
  }

  /** The role of a live session (and it is used now), or null. */
  roleOfSession(id: string): Role | null {
    const s = this.sessions.get(id);
    if (!s) return null;
    const now = this.nowMs();
    if (now - s.lastUsedMs > SESSION_IDLE_MS) {
      this.sessions.delete(id);
      return null;
    }
    s.lastUsedMs = now;
    return s.role;
  }

  endSession(id: string): void {
    this.sessions.delete(id);
  }

  /** Records an action; the file write is queued (in order) and its failure reported, never thrown. */
  record(who: Identity, action: string, target: string, params: Record<string, unknown>, outcome: { ok: true; message: string } | { ok: false; code: string; message: string }): AuditEntry {
    const entry: AuditEntry = {
      timeMs: this.nowMs(),
      role: who.role,
      via: who.via,
      remote: who.remote,
      action,
      target,
      params,
      result: outcome.ok ? 'ok' : 'error',
      code: outcome.ok ? null : outcome.code,
      message: outcome.message,
    };
    this.audit.push(entry);
    if (this.audit.length > AUDIT_MEMORY) this.audit.shift();
    const file = this.auditFile;
    if (file) {
      this.auditWrites = this.auditWrites.then(() => appendFile(file, JSON.stringify(entry) + '\n', { mode: 0o600 })).catch(this.onAuditError);
    }
    return entry;
  }

  /** The latest `limit` audit entries, newest first. */
  auditEntries(limit: number): AuditEntry[] {
    return this.audit.slice(-limit).reverse();
  }

  /** Resolves once the audit lines recorded so far are written (tests, shutdown). */
  flush(): Promise<void> {
    return this.auditWrites;
  }
}
