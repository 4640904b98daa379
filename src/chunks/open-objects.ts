// A bounded cache of open chunk object files with their verified headers. Objects are
// immutable, so a header checked once stays true for as long as the file is open; a
// random reader then pays one pread per request instead of open + header read + close.
// Entries are reference-counted so eviction never closes a file a read is using.
import type { FileHandle } from 'node:fs/promises';
import type { VerifiedHeader } from './format.js';

interface Entry {
  fh: FileHandle;
  header: VerifiedHeader;
  refs: number;
  evicted: boolean;
}

export interface OpenObject {
  fh: FileHandle;
  header: VerifiedHeader;
  release(): void;
}

export class OpenObjects {
  /** Map order is recency order: the first key is the least recently used. */
  private readonly entries = new Map<number, Entry>();
  private readonly opening = new Map<number, Promise<Entry>>();

  constructor(private readonly maxOpen: number) {}

  get size(): number {
    return this.entries.size;
  }

  async acquire(chunkId: number, open: () => Promise<{ fh: FileHandle; header: VerifiedHeader }>): Promise<OpenObject> {
    let entry = this.entries.get(chunkId);
    if (entry) {
      this.entries.delete(chunkId);
      this.entries.set(chunkId, entry);
    } else {
      let pending = this.opening.get(chunkId);
      if (!pending) {
        pending = open().then((o) => ({ ...o, refs: 0, evicted: false }));
        this.opening.set(chunkId, pending);
        pending.then(
          (e) => {
            this.opening.delete(chunkId);
            this.entries.set(chunkId, e);
            this.trim();
          },
          () => this.opening.delete(chunkId),
        );
      }
      entry = await pending;
    }
    entry.refs++;
    const e = entry;
    return {
      fh: e.fh,
      header: e.header,
      release: () => {
        e.refs--;
        if (e.evicted && e.refs === 0) void e.fh.close().catch(() => undefined);
      },
    };
  }

  /** Forget an object (deleted, or found corrupt): its file is closed once unused. */
  evict(chunkId: number): void {
    const e = this.entries.get(chunkId);
    if (!e) return;
    this.entries.delete(chunkId);
    e.evicted = true;
    if (e.refs === 0) void e.fh.close().catch(() => undefined);
  }

  closeAll(): void {
    for (const id of [...this.entries.keys()]) this.evict(id);
  }

  private trim(): void {
    while (this.entries.size > this.maxOpen) {
      const oldest = this.entries.keys().next().value as number;
      this.evict(oldest);
    }
  }
}
