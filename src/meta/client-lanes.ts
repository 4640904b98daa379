// Client ids for a process that has many namespace commands in flight at once.
//
// The dedup table keeps one (seq, result) per client id, and refuses a command whose seq
// is below the last one applied for its client (EINVAL). So a client id may have only one
// command outstanding: with several, a retry of seq N (after a leader change, a lost
// reply) that lands after seq N+1 was applied fails with EINVAL although it was never
// applied. A mount has many FUSE requests in flight (and background releases), so it
// spreads its commands over lanes: each lane is a client id of its own with at most one
// command outstanding, reused once that command has finished. The number of lanes (and
// of dedup entries) is bounded by the peak number of concurrent commands.
export class ClientLanes {
  private readonly idle: Array<{ clientId: string; seq: number }> = [];
  private created = 0;

  constructor(private readonly baseId: string) {}

  /** Lanes created so far (for tests and metrics). */
  get size(): number {
    return this.created;
  }

  /** Runs `fn` with a client id and a new sequence number no other running call holds. */
  async run<T>(fn: (clientId: string, seq: number) => Promise<T>): Promise<T> {
    let lane = this.idle.pop();
    if (!lane) {
      lane = { clientId: this.created === 0 ? this.baseId : `${this.baseId}.${this.created}`, seq: 0 };
      this.created++;
    }
    try {
      return await fn(lane.clientId, ++lane.seq);
    } finally {
      this.idle.push(lane);
    }
  }
}
