// The leader's view of one follower's log: how far it matches, what to send next, and
// how many MsgApp are in flight (the pipelining window).
import type { Progress as ProgressView } from './api.js';
import { assert } from './util.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** Probe: a MsgApp is out; wait for its answer or a heartbeat response. */
  probeSent = false;
  /** Snapshot: index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Snapshot: leader ticks spent waiting for the snapshot to be acknowledged or reported. */
  snapshotTicks = 0;
  recentActive = false;
  /** Last index of each unacknowledged MsgApp, oldest first. */
  private inflights: number[] = [];

  constructor(
    next: number,
    public isLearner: boolean,
    private readonly maxInflight: number,
  ) {
    assert(maxInflight >= 1, 'maxInflightMsgs must be >= 1');
    this.next = next;
  }

  inflightCount(): number {
    return this.inflights.length;
  }

  inflightFull(): boolean {
    return this.inflights.length >= this.maxInflight;
  }

  private resetState(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotTicks = 0;
    this.inflights = [];
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      const pending = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(index: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = index;
  }

  /** The follower acknowledged up to `index`. Returns whether match moved. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * The follower rejected a MsgApp at `rejected`; `matchHint` is where the logs may agree.
   * Returns false for a stale rejection (one we already acted on).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** A MsgApp carrying entries up to `last` was sent. */
  sentEntries(count: number, last: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = last + 1;
        this.inflights.push(last);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  freeInflightsTo(index: number): void {
    let n = 0;
    while (n < this.inflights.length && this.inflights[n] <= index) n++;
    if (n > 0) this.inflights = this.inflights.slice(n);
  }

  freeFirstInflight(): void {
    this.inflights = this.inflights.slice(1);
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflightFull();
      case 'snapshot':
        return true;
    }
  }

  view(): ProgressView {
    return {
      match: this.match,
      next: this.next,
      state: this.state,
      inflight: this.inflights.length,
      recentActive: this.recentActive,
      isLearner: this.isLearner,
    };
  }
}
