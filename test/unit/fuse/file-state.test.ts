// FileState's write-back under budget pressure: a write that waits for budget to grow a
// chunk's buffer while a flush uploads that chunk must not lose its bytes.
import { describe, expect, it } from 'vitest';
import { BufferPool, ByteBudget } from '../../../src/fuse/budget.js';
import { FileState, type FileIo } from '../../../src/fuse/file-state.js';
import type { ChunkRef } from '../../../src/meta/types.js';

const MiB = 1024 * 1024;
const now = { sec: 1, nsec: 0 };

class FakeIo implements FileIo {
  readonly objects = new Map<number, Buffer>();
  private next = 1;
  readRef(ref: ChunkRef, offset: number, length: number): Promise<Buffer> {
    const data = ref.inline ?? this.objects.get(ref.chunkId)!;
    return Promise.resolve(Buffer.from(data.subarray(offset, offset + length)));
  }
  uploadChunk(_layout: unknown, data: Buffer, index: number): Promise<ChunkRef> {
    const chunkId = this.next++;
    this.objects.set(chunkId, Buffer.from(data));
    return Promise.resolve({ index, chunkId, sizeBytes: data.length, placement: ['n1'] });
  }
  loadRefs(): Promise<ChunkRef[]> {
    return Promise.resolve([]);
  }
}

describe('FileState', () => {
  it('keeps the bytes of a write that waited for budget while its chunk was uploaded', async () => {
    const io = new FakeIo();
    // Room for exactly one 64 KiB buffer: growing it must wait for the upload to finish.
    const budget = new ByteBudget(64 * 1024);
    const fs = new FileState(2, MiB, { kind: 'replicas', replicas: 1 }, 0, 1, io, budget, new BufferPool(0));
    await fs.write(0, Buffer.alloc(10, 'a'), now);
    const late = fs.write(100 * 1024, Buffer.alloc(10, 'b'), now);
    // The flush uploads chunk 0 (inline, 10 bytes) while the second write waits.
    expect(await fs.drain()).toBe(0);
    expect(await late).toBe(10);
    expect(await fs.drain()).toBe(0);
    const ref = fs.pending.get(0)!;
    expect(ref.inline).toBeUndefined();
    const data = io.objects.get(ref.chunkId)!;
    expect(data.length).toBe(100 * 1024 + 10);
    expect(data.subarray(0, 10).toString()).toBe('a'.repeat(10));
    expect(data.subarray(100 * 1024).toString()).toBe('b'.repeat(10));
    expect(data.subarray(10, 100 * 1024).every((b) => b === 0)).toBe(true);
    // Every byte of budget came back.
    expect(budget.used).toBe(0);
  });
});
