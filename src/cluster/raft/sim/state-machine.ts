// The replicated state machine of the simulation, behind the driver's StateMachine
// interface: the ordered list of what was applied at each log index ("." for an empty
// entry, "@type:node" for a membership change, the command text otherwise). A snapshot
// is that list.
//
// Durability follows the real one (MetaStore over RocksDB): applies are written without
// fsync (a power loss may keep any prefix of them), sync() and restore() are durable.
// Each call completes after a short seeded latency, as an event of the node's incarnation.
import type { StateMachine } from '../driver.js';
import type { ConfState, Entry, NodeId } from '../types.js';
import { itemOf } from './checker.js';
import type { Prng } from './prng.js';
import type { Scheduler } from './scheduler.js';

export interface SmImage {
  items: string[];
}

export interface SmObserver {
  /** `node` applied `item` at `index` (after the conf change, `conf` for a membership entry). */
  applied(node: NodeId, index: number, item: string, entry: Entry): void;
}

export class SimStateMachine implements StateMachine {
  /** items[i - 1] is what index i applied. */
  items: string[] = [];
  /** Items that survive a power loss for sure. */
  private durableCount = 0;
  /** countAt[i] = application commands among indexes 1..i. */
  private countAt: number[] = [0];
  /** Owner (node incarnation) of the completions. */
  owner = 0;
  conf: ConfState = { voters: [], learners: [] };

  constructor(
    readonly node: NodeId,
    private readonly sched: Scheduler,
    private readonly rng: Prng,
    private readonly observer: SmObserver,
  ) {}

  get applied(): number {
    return this.items.length;
  }

  private later<T>(fn: () => T): Promise<T> {
    const owner = this.owner;
    return new Promise<T>((resolve, reject) => {
      this.sched.at(
        this.rng.int(300) / 1000,
        () => {
          if (owner !== this.owner) return;
          try {
            resolve(fn());
          } catch (e) {
            reject(e as Error);
          }
        },
        owner,
      );
    });
  }

  private push(item: string): void {
    this.items.push(item);
    this.countAt.push(this.countAt[this.countAt.length - 1] + (isCommand(item) ? 1 : 0));
  }

  apply(entries: Entry[]): Promise<unknown[]> {
    return this.later(() => {
      const out: unknown[] = [];
      for (const e of entries) {
        // The bootstrap configuration is a snapshot at index 1 of the empty image: the
        // state machine is at index 1 without having applied anything (as MetaStore is).
        if (e.index === 2 && this.items.length === 0) this.push('@bootstrap');
        if (e.index !== this.items.length + 1) throw new Error(`state machine ${this.node}: apply ${e.index} after ${this.items.length}`);
        const item = itemOf(e);
        this.push(item);
        this.observer.applied(this.node, e.index, item, e);
        out.push({ index: e.index, item });
      }
      return out;
    });
  }

  appliedIndex(): Promise<number> {
    return this.later(() => this.items.length);
  }

  sync(): Promise<void> {
    return this.later(() => {
      this.durableCount = this.items.length;
    });
  }

  snapshot(): Promise<Buffer> {
    return this.later(() => this.image());
  }

  restore(data: Buffer): Promise<void> {
    return this.later(() => {
      const img = JSON.parse(data.toString('utf8')) as SmImage;
      this.items = [];
      this.countAt = [0];
      for (const item of img.items) this.push(item);
      this.durableCount = this.items.length;
    });
  }

  image(): Buffer {
    return Buffer.from(JSON.stringify({ items: this.items } satisfies SmImage));
  }

  commandsUpTo(index: number): number {
    if (index > this.items.length) throw new Error(`state machine: read at ${index} beyond applied ${this.items.length}`);
    return this.countAt[index];
  }

  /** The commands applied up to `index`, oldest first. */
  commands(index: number): string[] {
    return this.items.slice(0, index).filter(isCommand);
  }

  /** Power loss: every synced item stays, and any prefix of the rest. */
  crash(): void {
    this.owner = -1;
    const keep = this.durableCount + this.rng.int(this.items.length - this.durableCount + 1);
    this.items.length = keep;
    this.countAt.length = keep + 1;
    this.durableCount = keep;
  }
}

export function isCommand(item: string): boolean {
  return item.length > 0 && item[0] === 'c';
}
