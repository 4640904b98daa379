// Bounded concurrency with a bounded wait queue: past both bounds a caller is refused
// at once (ChunkError UNAVAILABLE) instead of piling up memory and latency, so a
// client falls over to another replica.
import { ChunkError } from './api.js';

export class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    readonly name: string,
    readonly maxConcurrent: number,
    readonly maxQueued: number,
  ) {
    if (!(Number.isInteger(maxConcurrent) && maxConcurrent >= 1)) throw new Error(`${name}: maxConcurrent must be >= 1`);
    if (!(Number.isInteger(maxQueued) && maxQueued >= 0)) throw new Error(`${name}: maxQueued must be >= 0`);
  }

  get activeCount(): number {
    return this.running;
  }

  get queuedCount(): number {
    return this.waiting.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrent) {
      if (this.waiting.length >= this.maxQueued) {
        throw new ChunkError('UNAVAILABLE', `${this.name}: overloaded (${this.running} running, ${this.waiting.length} queued)`);
      }
      // The slot is handed over by release(), so `running` already counts us on wake-up.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}

/** Runs tasks for the same key one after another (e.g. a write and a delete of one chunk id). */
export class KeyedMutex<K> {
  private readonly tails = new Map<K, Promise<void>>();

  async run<T>(key: K, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let done!: () => void;
    const tail = new Promise<void>((resolve) => (done = resolve));
    this.tails.set(key, tail);
    await previous;
    try {
      return await task();
    } finally {
      done();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
