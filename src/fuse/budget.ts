// A byte budget with waiting: writers acquire buffer space before they copy data in and
// release it once the data is durable on the chunk servers. This is the bound on the
// client's dirty memory (back-pressure instead of an unbounded queue).

export class ByteBudget {
  private usedBytes = 0;
  private readonly waiters: Array<{ bytes: number; resolve: () => void }> = [];

  constructor(readonly limitBytes: number) {}

  get used(): number {
    return this.usedBytes;
  }

  /** Resolves once `bytes` fit. A request larger than the whole limit waits for an empty budget. */
  acquire(bytes: number): Promise<void> | undefined {
    if (this.waiters.length === 0 && this.fits(bytes)) {
      this.usedBytes += bytes;
      return undefined;
    }
    return new Promise((resolve) => this.waiters.push({ bytes, resolve }));
  }

  release(bytes: number): void {
    this.usedBytes -= bytes;
    if (this.usedBytes < 0) throw new Error(`ByteBudget released more than acquired (${this.usedBytes})`);
    while (this.waiters.length > 0 && this.fits(this.waiters[0].bytes)) {
      const w = this.waiters.shift()!;
      this.usedBytes += w.bytes;
      w.resolve();
    }
  }

  private fits(bytes: number): boolean {
    return this.usedBytes + bytes <= this.limitBytes || this.usedBytes === 0;
  }
}

/**
 * Idle write-back buffers kept for reuse. A sequential writer fills a whole-chunk buffer
 * (4 MiB by default) per chunk; allocating each anew costs a zeroed mapping, page faults,
 * and garbage-collector work driven by external memory, for every chunk. Only buffers
 * nobody references any more may be given back (after their upload resolved).
 */
export class BufferPool {
  private readonly idle = new Map<number, Buffer[]>();
  private idleBytes = 0;

  /** `maxIdleBytes` bounds what the pool keeps when writers go quiet. */
  constructor(readonly maxIdleBytes: number) {}

  /** A zero-filled buffer of `sizeBytes`, reused when one is idle. */
  take(sizeBytes: number): Buffer {
    const buf = this.idle.get(sizeBytes)?.pop();
    if (!buf) return Buffer.alloc(sizeBytes);
    this.idleBytes -= sizeBytes;
    return buf.fill(0);
  }

  /** Hands back a buffer from take() that nothing references any more. */
  give(buf: Buffer): void {
    // Only whole allocations: a view would keep its parent's other bytes in use.
    if (buf.byteOffset !== 0 || buf.buffer.byteLength !== buf.length) return;
    if (this.idleBytes + buf.length > this.maxIdleBytes) return;
    let list = this.idle.get(buf.length);
    if (!list) this.idle.set(buf.length, (list = []));
    list.push(buf);
    this.idleBytes += buf.length;
  }

  get idleSizeBytes(): number {
    return this.idleBytes;
  }
}
