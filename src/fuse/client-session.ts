// This client's session stream to the meta leader (decision 0012 §3): renewals every
// `renewMs`, the leader's acknowledgements, and recalls of directory leases. The client
// may answer from its leases only while `valid()`: until `sessionMs / (1 + drift) -
// marginMs` after it *sent* the last renewal the leader acknowledged, by its own clock.
// The leader expires the session no sooner than `sessionMs` after it acknowledged that
// renewal (which was after it was sent), so with clocks drifting apart by less than
// `drift`, a client never answers from a lease the cluster may already have dropped.
import type { Logger } from 'pino';
import type { MetaApi, SessionLink } from '../meta/api.js';
import type { Ino } from '../meta/types.js';

export interface SessionOptions {
  renewMs: number;
  sessionMs: number;
  /** Relative clock drift between this client and the leader that is tolerated. */
  drift: number;
  marginMs: number;
  /** Wait before opening a new stream after one ended (doubled up to 1 s). */
  reconnectMs: number;
}

/** Must agree with the leader's SessionTimings.sessionMs (src/daemon/session-hub.ts). */
export const DEFAULT_SESSION_OPTIONS: SessionOptions = { renewMs: 1_000, sessionMs: 10_000, drift: 0.05, marginMs: 500, reconnectMs: 100 };

/** Renewals without an acknowledgement after which the stream is opened again. */
const STALE_RENEWALS = 3;
/** Renewals remembered (sent time by seq) for acknowledgements still to come. */
const SENT_KEPT = 32;

export class ClientSession {
  private link: SessionLink | null = null;
  private seq = 0;
  private readonly sent = new Map<number, number>();
  private validUntil = 0;
  private gaps = 0;
  private lastAck = 0;
  private openedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private reconnectDelay: number;
  private isStopped = false;
  private readonly validWaiters = new Set<() => void>();
  readonly counters = { streams: 0, renewals: 0, acks: 0, recalls: 0 };
  /**
   * Called when renewals are acknowledged again after a gap (with how long validity had
   * run out): the leader may have expired the session, or after a long gap closed its
   * handles (src/daemon/session-janitor.ts), so the mount asserts them again.
   */
  onResume: ((gapMs: number) => void) | null = null;

  constructor(
    private readonly meta: MetaApi & Required<Pick<MetaApi, 'openSession'>>,
    readonly id: string,
    private readonly onRecall: (dirs: Ino[]) => void,
    private readonly log?: Logger,
    private readonly opts: SessionOptions = DEFAULT_SESSION_OPTIONS,
  ) {
    this.reconnectDelay = opts.reconnectMs;
  }

  start(): void {
    if (this.timer || this.isStopped) return;
    this.open();
    this.timer = setInterval(() => this.renew(), this.opts.renewMs);
    this.timer.unref();
  }

  stop(): void {
    this.isStopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.link?.close();
    this.link = null;
    this.validUntil = 0;
    for (const w of [...this.validWaiters]) w();
  }

  /**
   * Times validity ran out before it was renewed: after such a gap the leader may have
   * expired the session and dropped its leases, even if renewals are acknowledged again.
   */
  get epoch(): number {
    return this.gaps;
  }

  /** True once stop() was called (the mount is going away). */
  get stopped(): boolean {
    return this.isStopped;
  }

  /** True while answers from this session's leases are safe (see the file comment). */
  valid(): boolean {
    return !this.isStopped && performance.now() < this.validUntil;
  }

  /** Waits until valid() or `ms` pass; returns valid(). */
  async waitValid(ms: number): Promise<boolean> {
    if (this.valid() || this.isStopped) return this.valid();
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.validWaiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.validWaiters.add(done);
    });
    return this.valid();
  }

  private open(): void {
    if (this.isStopped) return;
    this.counters.streams++;
    this.openedAt = performance.now();
    const link = this.meta.openSession(this.id, {
      renewed: (seq) => this.acked(seq),
      recall: (dirs) => {
        this.counters.recalls += dirs.length;
        this.onRecall(dirs);
      },
      closed: (why) => {
        if (this.link !== link) return;
        this.link = null;
        if (this.isStopped) return;
        this.log?.debug({ why }, 'session stream ended; reopening');
        const delay = this.reconnectDelay;
        this.reconnectDelay = Math.min(1_000, delay * 2);
        setTimeout(() => {
          if (!this.link) this.open();
        }, delay).unref();
      },
    });
    this.link = link;
    this.renew();
  }

  private renew(): void {
    if (!this.link) return;
    // A stream to a leader that stopped answering (paused, partitioned: no TCP reset) is
    // given up after a few renewals, so the next one finds whoever leads now.
    const now = performance.now();
    if (now - this.lastAck > STALE_RENEWALS * this.opts.renewMs && now - this.openedAt > STALE_RENEWALS * this.opts.renewMs) {
      const stale = this.link;
      this.link = null;
      stale.close();
      this.open();
      return;
    }
    const seq = ++this.seq;
    this.sent.set(seq, performance.now());
    if (this.sent.size > SENT_KEPT) this.sent.delete(this.sent.keys().next().value as number);
    this.counters.renewals++;
    this.link.renew(seq);
  }

  private acked(seq: number): void {
    const at = this.sent.get(seq);
    if (at === undefined) return;
    this.counters.acks++;
    this.lastAck = performance.now();
    this.reconnectDelay = this.opts.reconnectMs;
    const until = at + this.opts.sessionMs / (1 + this.opts.drift) - this.opts.marginMs;
    // Sent after validity had already run out: continuity is lost.
    const gapMs = this.validUntil > 0 && at >= this.validUntil ? performance.now() - this.validUntil : -1;
    if (gapMs >= 0) this.gaps++;
    if (until > this.validUntil) this.validUntil = until;
    for (const w of [...this.validWaiters]) w();
    if (gapMs >= 0) this.onResume?.(gapMs);
  }
}
