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
