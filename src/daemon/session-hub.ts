// The leader's side of client sessions (decision 0012 §3–4): which sessions are alive,
// recalls of exclusive directory leases that another caller's operation needs, and the
// expiry of sessions the leader stopped hearing from.
//
// A session is kept alive in memory by renewals on its stream; only its leases are in
// the replicated namespace (src/meta/lease-index.ts follows them). The leader acknowledges
// a renewal only while it holds its Raft leader lease, so every acknowledgement was sent
// before any later leader took over; a new leader counts every session as renewed at the
// moment it took over. A session whose last acknowledged renewal (or that takeover) is
// older than `sessionMs` is expired through the log (`sessionExpire`), which drops its
// leases. The client stops answering from its leases `sessionMs / (1 + drift) - margin`
// after it sent the last renewal that was acknowledged, by its own clock, so it never
// serves from a lease the cluster may already have given up.
import type { Logger } from 'pino';
import type { LeaseIndex } from '../meta/lease-index.js';
import type { ReaddirPage, SessionEvents, SessionLink } from '../meta/api.js';
import { leaseFootprint } from '../meta/footprint.js';
import type { Attr, Command, Ino, Result } from '../meta/types.js';
import { Errno, S_IFDIR, S_IFMT } from '../meta/types.js';

export interface SessionTimings {
  /** A session not renewed (acknowledged) for this long is expired. */
  sessionMs: number;
  /** A holder that has not released a recalled lease after this long gets no more renewals. */
  recallMs: number;
  /** How often the leader looks for sessions to expire. */
  tickMs: number;
}

export const DEFAULT_SESSION_TIMINGS: SessionTimings = { sessionMs: 10_000, recallMs: 5_000, tickMs: 1_000 };

/**
 * What the hub sends down a session's stream: the client's SessionEvents (`closed` when
 * this node stops leading or the hub closes; the client reconnects).
 */
export type SessionPeer = SessionEvents;

export interface SessionHubDeps {
  leases: LeaseIndex;
  /** True while this node leads and its leader lease holds (acknowledging a renewal is safe). */
  leaseHeld(): boolean;
  isLeader(): boolean;
  /** Proposes `sessionExpire` for the session; resolves when applied (or failed). */
  expire(session: string): Promise<void>;
  now(): number;
  log: Logger;
}

interface Live {
  peers: Set<SessionPeer>;
  /** Dirs recalled and not yet released, with when the first recall was sent. */
  recalled: Map<Ino, number>;
}

export class SessionHub {
  private readonly live = new Map<string, Live>();
  /** Last acknowledged renewal per session (ms, deps.now()). */
  private readonly acked = new Map<string, number>();
  /** When this node last became leader (every session counts as renewed then). */
  private leaderSince = 0;
  private wasLeader = false;
  private readonly expiring = new Set<string>();
  private readonly timer: NodeJS.Timeout;
  readonly counters = { recalls: 0, recallWaits: 0, recallTimeouts: 0, expired: 0, renewals: 0 };

  constructor(
    private readonly deps: SessionHubDeps,
    private readonly timings: SessionTimings = DEFAULT_SESSION_TIMINGS,
  ) {
    this.timer = setInterval(() => this.tick(), timings.tickMs);
    this.timer.unref();
    deps.leases.onChange(() => this.leasesChanged());
  }

  close(): void {
    clearInterval(this.timer);
    for (const l of this.live.values()) for (const p of l.peers) p.closed('closing');
    this.live.clear();
  }

  /** Sessions with a stream to this node. */
  get attached(): number {
    let n = 0;
    for (const l of this.live.values()) if (l.peers.size > 0) n++;
    return n;
  }

  /** The sessions this leader knows: with a stream, renewed since it leads, or holding leases. */
  list(): Array<{ session: string; streams: number; leases: number; lastRenewalAgoMs: number }> {
    const now = this.deps.now();
    const ids = new Set<string>([...this.live.keys(), ...this.acked.keys(), ...this.deps.leases.sessions()]);
    return [...ids].sort().map((session) => {
      const acked = this.acked.get(session);
      return { session, streams: this.live.get(session)?.peers.size ?? 0, leases: this.deps.leases.count(session), lastRenewalAgoMs: acked === undefined ? -1 : Math.round(now - acked) };
    });
  }

  /** The last renewal of `session` this leader acknowledged (deps.now() ms), undefined when none since it leads. */
  lastRenewal(session: string): number | undefined {
    return this.acked.get(session);
  }

  /** A session's stream opened on this node: its renewals, and its end (`close`). */
  attach(session: string, peer: SessionPeer): SessionLink {
    if (!this.deps.isLeader()) {
      queueMicrotask(() => peer.closed('not leader'));
      return { renew: () => undefined, close: () => undefined };
    }
    let l = this.live.get(session);
    if (!l) this.live.set(session, (l = { peers: new Set(), recalled: new Map() }));
    l.peers.add(peer);
    // Recalls sent before this stream opened are sent again on it.
    if (l.recalled.size > 0) peer.recall([...l.recalled.keys()]);
    const live = l;
    return {
      renew: (seq) => this.renew(session, live, peer, seq),
      close: () => {
        live.peers.delete(peer);
        if (live.peers.size === 0 && live.recalled.size === 0 && this.live.get(session) === live) this.live.delete(session);
      },
    };
  }

  private renew(session: string, l: Live, peer: SessionPeer, seq: number): void {
    if (!this.deps.leaseHeld()) return;
    const now = this.deps.now();
    // A holder sitting on a recall gets no more time: it expires as if cut off.
    for (const since of l.recalled.values()) if (now - since > this.timings.recallMs) return;
    this.acked.set(session, now);
    this.counters.renewals++;
    peer.renewed(seq);
  }

  /**
   * Waits until no directory of `dirs` is held exclusively by a session other than
   * `self`, recalling each holder; false if that did not happen by `deadlineMs`.
   */
  async clear(dirs: readonly Ino[], self: string | null, deadlineMs: number): Promise<boolean> {
    const end = this.deps.now() + deadlineMs;
    for (;;) {
      const held = this.heldByOthers(dirs, self);
      if (held.length === 0) return true;
      if (this.deps.now() >= end || !this.deps.isLeader()) {
        this.counters.recallTimeouts++;
        return false;
      }
      this.counters.recallWaits++;
      for (const [holder, ds] of held) this.recall(holder, ds);
      await this.changed(Math.min(this.timings.tickMs, end - this.deps.now()));
    }
  }

  /** Holders other than `self` of any of `dirs`, with the dirs each holds. */
  heldByOthers(dirs: readonly Ino[], self: string | null): Array<[string, Ino[]]> {
    let out: Map<string, Ino[]> | null = null;
    for (const d of dirs) {
      const h = this.deps.leases.exclusiveHolder(d);
      if (h === undefined || h === self) continue;
      out ??= new Map();
      const list = out.get(h);
      if (list) list.push(d);
      else out.set(h, [d]);
    }
    return out ? [...out] : [];
  }

  private recall(holder: string, dirs: Ino[]): void {
    let l = this.live.get(holder);
    if (!l) this.live.set(holder, (l = { peers: new Set(), recalled: new Map() }));
    const fresh = dirs.filter((d) => !l.recalled.has(d));
    if (fresh.length === 0) return;
    const now = this.deps.now();
    for (const d of fresh) l.recalled.set(d, now);
    this.counters.recalls += fresh.length;
    for (const p of l.peers) p.recall(fresh);
  }

  private waiters = new Set<() => void>();

  private changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.waiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, Math.max(1, ms));
      this.waiters.add(done);
    });
  }

  private leasesChanged(): void {
    // Recalls answered (the holder released, or its session expired) are forgotten.
    for (const [session, l] of this.live) {
      for (const d of l.recalled.keys()) if (this.deps.leases.exclusiveHolder(d) !== session) l.recalled.delete(d);
      if (l.peers.size === 0 && l.recalled.size === 0) this.live.delete(session);
    }
    for (const w of [...this.waiters]) w();
  }

  /** Leadership bookkeeping and expiry of sessions not heard from. */
  tick(): void {
    const leader = this.deps.isLeader();
    const now = this.deps.now();
    if (leader && !this.wasLeader) {
      this.leaderSince = now;
      this.acked.clear();
    }
    if (!leader && this.wasLeader) {
      for (const l of this.live.values()) for (const p of l.peers) p.closed('not leader');
      this.live.clear();
      this.acked.clear();
    }
    this.wasLeader = leader;
    if (!leader) return;
    for (const session of this.deps.leases.sessions()) {
      const last = Math.max(this.acked.get(session) ?? 0, this.leaderSince);
      if (now - last <= this.timings.sessionMs || this.expiring.has(session)) continue;
      this.expiring.add(session);
      this.counters.expired++;
      this.deps.log.warn({ session, silentMs: now - last }, 'client session expired: its directory leases are dropped');
      void this.deps
        .expire(session)
        .catch((e: unknown) => this.deps.log.warn({ err: e, session }, 'could not expire a session'))
        .finally(() => this.expiring.delete(session));
    }
    for (const s of this.acked.keys()) if (this.deps.leases.count(s) === 0 && !this.live.has(s)) this.acked.delete(s);
  }
}

/**
 * How long a call waits for another session's exclusive lease to be released: a recall
 * answered, or the holder expired (its recall timeout plus its session timeout, decision
 * 0012), with room to spare.
 */
export const LEASE_WAIT_MS = 20_000;

/** A call the gate turned away (after waiting in vain for a lease). */
export type Refused = Extract<Result<never>, { ok: false }>;

/** The namespace reads the gate needs. */
export interface GateStore {
  readonly leases: LeaseIndex;
  lookup(parent: Ino, name: string): Promise<Result<Attr>>;
}

/**
 * Directories another session holds exclusively must be given back before a call reads
 * or changes them. `check` answers null (go on), 'leader' (this node does not lead: the
 * call must go to the leader, which recalls), or the error after waiting in vain.
 */
export class LeaseGate {
  constructor(
    private readonly store: GateStore,
    private readonly hub: SessionHub,
    private readonly isLeader: () => boolean,
    private readonly log: Logger,
    private readonly waitMs = LEASE_WAIT_MS,
  ) {}

  /** Grants of existing directories being proposed here, by directory. */
  private readonly granting = new DirCounts();
  /** Commands admitted and not yet applied (or failed), by the directories they name. */
  private readonly inflight = new DirCounts();

  async check(dirs: readonly Ino[], self: string | null): Promise<'leader' | Result<never> | null> {
    if (dirs.length === 0) return null;
    await this.granting.quiet(dirs, this.waitMs);
    if (this.store.leases.size === 0) return null;
    if (this.hub.heldByOthers(dirs, self).length === 0) return null;
    if (!this.isLeader()) return 'leader';
    if (await this.hub.clear(dirs, self, this.waitMs)) return null;
    if (!this.isLeader()) return 'leader';
    this.log.warn({ dirs }, 'a directory lease was not released in time');
    return { ok: false, errno: Errno.EAGAIN };
  }

  /**
   * A read that must not see a directory another session holds: `dirs` it reads are
   * cleared first; `shown` names directories its answer shows (subdirectories' attributes),
   * which are cleared in turn and the read redone (bounded: a holder taking new leases
   * meanwhile is rare).
   */
  async read<T>(dirs: readonly Ino[], self: string | null, fn: () => Promise<Result<T>>, shown?: (r: Result<T>) => Ino[]): Promise<'leader' | Result<T>> {
    const first = await this.check(dirs, self);
    if (first) return first;
    for (let round = 0; ; round++) {
      const r = await fn();
      const more = shown && this.store.leases.size > 0 ? shown(r) : [];
      if (more.length === 0 || round === 2) return r;
      const g = await this.check(more, self);
      if (g) return g;
    }
  }

  /**
   * A command through the gate: admitted (the directories it names cleared), then
   * proposed. A grant of an existing directory waits for the commands about it admitted
   * before, and holds back those after it until it has applied, so no command is checked
   * before the lease exists and applied after it (refused, or changing the directory
   * under a view just taken).
   */
  async execute<T>(command: Command, propose: () => Promise<T>): Promise<'leader' | Refused | T> {
    if (command.op === 'leaseGrant') {
      const granted = this.granting.add([command.ino]);
      try {
        await this.inflight.quiet([command.ino], this.waitMs);
        return await propose();
      } finally {
        granted();
      }
    }
    let fp = await this.footprint(command);
    for (let round = 0; ; round++) {
      const g = await this.check(fp.dirs, fp.session);
      if (g === 'leader') return g;
      if (g) return { ok: false, errno: g.ok ? Errno.EIO : g.errno };
      // A recall makes its holder send what it queued: a named entry may be a (leased)
      // directory now. Resolved again, and checked again if it is a new one, as when a
      // grant began meanwhile (bounded; apply refuses what slips through).
      const now = fp.entries > 0 ? await this.footprint(command) : fp;
      const fresh = now.dirs.some((d) => !fp.dirs.includes(d));
      fp = now;
      if ((!fresh && !this.granting.any(fp.dirs)) || round === 3) break;
    }
    const admitted = this.inflight.add(fp.dirs);
    try {
      return await propose();
    } finally {
      admitted();
    }
  }

  /** What a command names: its directories, and named entries that are directories. */
  private async footprint(command: Command): Promise<{ dirs: Ino[]; session: string | null; entries: number }> {
    const fp = leaseFootprint(command);
    for (const e of fp.entries) {
      const r = await this.store.lookup(e.parent, e.name);
      if (r.ok && isDirAttr(r.value)) fp.dirs.push(r.value.ino);
    }
    return { dirs: fp.dirs, session: fp.session, entries: fp.entries.length };
  }
}

/** How many calls name each directory, with bounded waits for none. */
class DirCounts {
  private readonly counts = new Map<Ino, number>();
  private readonly waiters = new Set<() => void>();

  any(dirs: readonly Ino[]): boolean {
    return this.counts.size > 0 && dirs.some((d) => this.counts.has(d));
  }

  /** Counts `dirs` until the returned function is called (once). */
  add(dirs: readonly Ino[]): () => void {
    for (const d of dirs) this.counts.set(d, (this.counts.get(d) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const d of dirs) {
        const n = (this.counts.get(d) ?? 1) - 1;
        if (n > 0) this.counts.set(d, n);
        else this.counts.delete(d);
      }
      for (const w of [...this.waiters]) w();
    };
  }

  /** Resolves once no call names any of `dirs`, or after `ms` (a proposal that never ends must not hold others forever). */
  async quiet(dirs: readonly Ino[], ms: number): Promise<void> {
    if (!this.any(dirs)) return;
    const end = performance.now() + ms;
    while (this.any(dirs) && performance.now() < end) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          this.waiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, Math.max(1, end - performance.now()));
        this.waiters.add(done);
      });
    }
  }
}

const isDirAttr = (a: Attr): boolean => (a.mode & S_IFMT) === S_IFDIR;

/** Directories a lookup's answer shows: the child itself when it is one. */
export const shownByLookup = (r: Result<Attr>): Ino[] => (r.ok && isDirAttr(r.value) ? [r.value.ino] : []);
/** Directories a readdir page shows: its subdirectories. */
export const shownByReaddir = (r: Result<ReaddirPage>): Ino[] => (r.ok ? r.value.entries.filter((e) => isDirAttr(e.attr)).map((e) => e.ino) : []);
