// The members of the Raft group and where they listen. Which nodes are members is the
// Raft configuration (voters + learners); their addresses travel with the membership
// changes (ConfChange.address) and are kept in the replicated namespace (m/<id>), so a
// snapshot carries them to a node that joins late. Addresses named on the command line
// (--initial-cluster, --join) are the fallback for clusters created before that.
import type { ConfChange, ConfState, NodeId } from './raft/types.js';

export class Membership {
  /** node id → host:port of every current member (this node included when it is one). */
  readonly addresses = new Map<NodeId, string>();
  private readonly listeners: Array<() => void> = [];

  constructor(
    readonly selfId: NodeId,
    private readonly selfAddress: string,
    /** Addresses known from configuration: used when the replicated state has none. */
    private readonly hints: ReadonlyMap<NodeId, string>,
  ) {
    for (const [id, a] of hints) this.addresses.set(id, a);
  }

  /** Every member but this node: the peers Raft talks to. */
  peers(): Map<NodeId, string> {
    return new Map([...this.addresses].filter(([id]) => id !== this.selfId));
  }

  /** Calls `cb` after every change of the member list. */
  onChange(cb: () => void): void {
    this.listeners.push(cb);
  }

  /** A committed membership change, applied as it happens. */
  apply(cc: ConfChange): void {
    if (cc.type === 'removeNode') this.addresses.delete(cc.node);
    else if (cc.address !== undefined) this.addresses.set(cc.node, cc.address);
    else if (!this.addresses.has(cc.node)) {
      const a = this.hints.get(cc.node) ?? (cc.node === this.selfId ? this.selfAddress : undefined);
      if (a !== undefined) this.addresses.set(cc.node, a);
    }
    this.changed();
  }

  /**
   * Rebuilds the list from a whole configuration (at start, after a snapshot): the
   * replicated addresses first, then what was known before, then the hints.
   */
  reset(conf: ConfState, replicated: ReadonlyMap<NodeId, string>): void {
    const ids = [...conf.voters, ...conf.learners];
    // Not a member of anything yet (a node waiting to be added): keep the hints.
    if (ids.length === 0) return;
    const next = new Map<NodeId, string>();
    for (const id of ids) {
      const a = replicated.get(id) ?? this.addresses.get(id) ?? this.hints.get(id) ?? (id === this.selfId ? this.selfAddress : undefined);
      if (a !== undefined) next.set(id, a);
    }
    this.addresses.clear();
    for (const [id, a] of next) this.addresses.set(id, a);
    this.changed();
  }

  private changed(): void {
    for (const cb of this.listeners) cb();
  }
}
