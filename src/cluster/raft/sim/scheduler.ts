// Virtual time for the simulator: one event queue ordered by (time, sequence number). The
// code under test (the production RaftDriver and LogStore) is asynchronous; it waits only
// on promises that this queue settles (simulated disk and network), on its per-node clock's
// timers, and on microtasks. The run loop takes one event, runs it, then lets every
// microtask it caused run to completion before the next event: the same seed therefore
// produces the same interleaving every time.
import type { Clock, TimerHandle } from '../clock.js';

interface SimEvent {
  at: number;
  seq: number;
  fn: () => void;
  /** Owner (a node incarnation) whose death cancels it; 0 = the cluster. */
  owner: number;
  cancelled: boolean;
}

/** A binary heap of events by (at, seq). */
class EventHeap {
  private readonly items: SimEvent[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): SimEvent | undefined {
    return this.items[0];
  }

  push(e: SimEvent): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  pop(): SimEvent | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop() as SimEvent;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l], a[m])) m = l;
        if (r < a.length && before(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

function before(x: SimEvent, y: SimEvent): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq);
}

/** Lets every pending microtask run (a real macrotask turn; nothing else is scheduled in it). */
function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class Scheduler {
  /** Virtual milliseconds since the start of the run. */
  now = 0;
  private seq = 0;
  private readonly heap = new EventHeap();
  private readonly dead = new Set<number>();
  eventsRun = 0;

  /** Run `fn` `delayMs` from now, unless `owner` dies first. */
  at(delayMs: number, fn: () => void, owner = 0): SimEvent {
    const e: SimEvent = { at: this.now + Math.max(0, delayMs), seq: this.seq++, fn, owner, cancelled: false };
    this.heap.push(e);
    return e;
  }

  cancel(e: SimEvent): void {
    e.cancelled = true;
  }

  /** Every event of `owner` still queued is dropped, and any it schedules from now on. */
  kill(owner: number): void {
    if (owner !== 0) this.dead.add(owner);
  }

  isDead(owner: number): boolean {
    return this.dead.has(owner);
  }

  /** Time of the next live event, or null if none. */
  private nextLive(): SimEvent | null {
    for (;;) {
      const e = this.heap.peek();
      if (!e) return null;
      if (e.cancelled || this.dead.has(e.owner)) {
        this.heap.pop();
        continue;
      }
      return e;
    }
  }

  /**
   * Run events until virtual time `untilMs` (or the queue empties, or `stop()` says so, or
   * `maxEvents` ran), draining microtasks after each. Returns the number of events run.
   */
  async runUntil(untilMs: number, stop: () => boolean, maxEvents: number): Promise<number> {
    let n = 0;
    for (; n < maxEvents; n++) {
      const e = this.nextLive();
      if (!e || e.at > untilMs) break;
      this.heap.pop();
      this.now = e.at;
      this.eventsRun++;
      e.fn();
      await drainMicrotasks();
      if (stop()) {
        n++;
        break;
      }
    }
    if (n < maxEvents && this.now < untilMs && !stop()) {
      const e = this.nextLive();
      if (!e || e.at > untilMs) this.now = untilMs;
    }
    return n;
  }

  pending(): number {
    return this.heap.size;
  }

  /**
   * The clock of one node incarnation: its time runs at `rate` × virtual time from `offsetMs`
   * (clock drift), and its timers die with it.
   */
  clockFor(owner: number, rate: number, offsetMs: number): SimClock {
    return new SimClock(this, owner, rate, offsetMs);
  }
}

interface SimTimer extends TimerHandle {
  event: SimEvent | null;
  cleared: boolean;
}

export class SimClock implements Clock {
  private readonly startVirtualMs: number;

  constructor(
    private readonly sched: Scheduler,
    readonly owner: number,
    /** Local milliseconds per virtual millisecond. */
    public rate: number,
    private readonly offsetMs: number,
  ) {
    this.startVirtualMs = sched.now;
  }

  nowMs(): number {
    return this.offsetMs + (this.sched.now - this.startVirtualMs) * this.rate;
  }

  private virtualDelay(ms: number): number {
    return Math.max(0, ms) / this.rate;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t: SimTimer = { event: null, cleared: false };
    t.event = this.sched.at(this.virtualDelay(ms), () => {
      if (!t.cleared) fn();
    }, this.owner);
    return t;
  }

  clearTimeout(handle: TimerHandle): void {
    const t = handle as SimTimer;
    t.cleared = true;
    if (t.event) this.sched.cancel(t.event);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    const t: SimTimer = { event: null, cleared: false };
    const arm = (): void => {
      t.event = this.sched.at(this.virtualDelay(ms), () => {
        if (t.cleared) return;
        arm();
        fn();
      }, this.owner);
    };
    arm();
    return t;
  }

  clearInterval(handle: TimerHandle): void {
    this.clearTimeout(handle);
  }

  defer(fn: () => void): void {
    this.sched.at(0, fn, this.owner);
  }
}
