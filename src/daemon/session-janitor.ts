// What clients leave behind in the namespace, cleaned up by the meta leader (issue 11:
// "the client dedup table expires with the session").
//
// Two kinds of state outlive the client that made them:
// - A session's open handles (h/, o/) and delegated inode ranges (s/). A mount closes its
//   session when it stops, and a daemon's own mount closes the one of its previous run
//   at start; a client-only mount killed for good (kill -9, a machine that never comes
//   back) leaves them for ever, and an unlinked file it had open is never reclaimed.
//   A session the leader has not heard from (no acknowledged renewal) for
//   `sessionIdleMs` is closed through the log (`closeSession`: handles, ranges, leases).
//   Its leases went long before (SessionHub expires them after 10 s).
// - The dedup table (q/<clientId>): one record per client id, and every process (and
//   every lane of one, src/meta/client-lanes.ts) has ids of its own, so without expiry
//   it grows with every mount and CLI run ever made. A record whose client the leader
//   has not heard from for `clientIdleMs` is dropped (`clientsExpire`, which keeps a
//   record whose seq moved on meanwhile). Safe because a client resends a command for a
//   bounded time only (the namespace queue 30 s, MetaClient its attempts × deadline,
//   well under two minutes): a resend never arrives after its record is gone.
//
// "Heard from" is the leader's memory (renewals, commands it executed), which a new
// leader does not have: it counts every session and client as heard from when it took
// over, so nothing is cleaned up before it has led for the whole idle time.
import type { Logger } from 'pino';
import { CLIENTS_EXPIRE_MAX, type Command } from '../meta/types.js';

export interface JanitorTimings {
  /** How often the leader looks. */
  passMs: number;
  /** A session not renewed for this long has its handles and inode ranges closed. */
  sessionIdleMs: number;
  /** A client id not seen in a command for this long loses its dedup record. */
  clientIdleMs: number;
}

export const DEFAULT_JANITOR_TIMINGS: JanitorTimings = { passMs: 60_000, sessionIdleMs: 5 * 60_000, clientIdleMs: 10 * 60_000 };

/** Sessions looked at in one pass, and dedup rows (in pages) read in one pass. */
const SESSIONS_PER_PASS = 10_000;
const CLIENT_PAGE = 1000;
const CLIENT_PAGES_PER_PASS = 64;

export interface JanitorDeps {
  isLeader(): boolean;
  now(): number;
  /** The hub's last acknowledged renewal of the session since this node leads (undefined: none). */
  lastRenewal(session: string): number | undefined;
  /** Sessions holding open handles or inode ranges (MetaStore.sessionsHolding). */
  sessionsHolding(limit: number): Promise<Set<string>>;
  /** A page of the dedup table (MetaStore.scanClients). */
  scanClients(cursor: Buffer | null, limit: number): Promise<{ clients: Array<{ clientId: string; seq: number }>; next: Buffer | null }>;
  /** Proposes a command of the leader's own; true when it applied. */
  propose(command: Command): Promise<boolean>;
  log: Logger;
}

export class SessionJanitor {
  /** When this leader last executed a command of each client id (ms, deps.now()). */
  private readonly seen = new Map<string, number>();
  private leaderSince: number | null = null;
  private clientCursor: Buffer | null = null;
  private running: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  readonly counters = { passes: 0, sessionsClosed: 0, clientsExpired: 0, failures: 0 };

  constructor(
    private readonly deps: JanitorDeps,
    private readonly timings: JanitorTimings = DEFAULT_JANITOR_TIMINGS,
  ) {
    this.timer = setInterval(() => void this.pass(), timings.passMs);
    this.timer.unref();
  }

  /** A client's command reached this leader (called on every executed envelope). */
  clientSeen(clientId: string): void {
    if (clientId.length > 0) this.seen.set(clientId, this.deps.now());
  }

  /** Number of client ids remembered (for /api/status). */
  get remembered(): number {
    return this.seen.size;
  }

  /** One look (the timer calls it; tests call it directly). Never runs twice at once. */
  pass(): Promise<void> {
    this.running ??= this.doPass().finally(() => (this.running = null));
    return this.running;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private async doPass(): Promise<void> {
    const now = this.deps.now();
    if (!this.deps.isLeader()) {
      this.leaderSince = null;
      this.seen.clear();
      this.clientCursor = null;
      return;
    }
    this.leaderSince ??= now;
    this.counters.passes++;
    try {
      await this.closeIdleSessions(now);
      await this.expireIdleClients(now);
    } catch (e) {
      this.counters.failures++;
      this.deps.log.warn({ err: e }, 'session janitor pass failed');
    }
  }

  private async closeIdleSessions(now: number): Promise<void> {
    const since = this.leaderSince ?? now;
    if (now - since <= this.timings.sessionIdleMs) return;
    for (const session of await this.deps.sessionsHolding(SESSIONS_PER_PASS)) {
      if (!this.deps.isLeader()) return;
      const last = Math.max(this.deps.lastRenewal(session) ?? since, since);
      if (now - last <= this.timings.sessionIdleMs) continue;
      if (await this.deps.propose({ op: 'closeSession', session })) {
        this.counters.sessionsClosed++;
        this.deps.log.info({ session, idleMs: Math.round(now - last) }, 'closed the handles and inode ranges of a session not heard from');
      } else this.counters.failures++;
    }
  }

  private async expireIdleClients(now: number): Promise<void> {
    const since = this.leaderSince ?? now;
    for (const [id, at] of this.seen) if (now - at > this.timings.clientIdleMs) this.seen.delete(id);
    if (now - since <= this.timings.clientIdleMs) return;
    for (let page = 0; page < CLIENT_PAGES_PER_PASS; page++) {
      if (!this.deps.isLeader()) return;
      const { clients, next } = await this.deps.scanClients(this.clientCursor, CLIENT_PAGE);
      const idle = clients.filter((c) => now - Math.max(this.seen.get(c.clientId) ?? since, since) > this.timings.clientIdleMs);
      for (let i = 0; i < idle.length; i += CLIENTS_EXPIRE_MAX) {
        const part = idle.slice(i, i + CLIENTS_EXPIRE_MAX);
        if (await this.deps.propose({ op: 'clientsExpire', clients: part })) this.counters.clientsExpired += part.length;
        else this.counters.failures++;
      }
      this.clientCursor = next;
      if (next === null) return;
    }
  }
}
