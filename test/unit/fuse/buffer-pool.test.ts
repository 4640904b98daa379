import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../../src/fuse/budget.js';

describe('BufferPool', () => {
  it('reuses given-back buffers zero-filled, within its idle bound, and never views', () => {
    const pool = new BufferPool(8);
    const a = pool.take(4);
    a.fill(9);
    pool.give(a);
    expect(pool.idleSizeBytes).toBe(4);
    const b = pool.take(4);
    expect(b).toBe(a);
    expect([...b]).toEqual([0, 0, 0, 0]);
    pool.give(b);
    pool.give(Buffer.alloc(4));
    pool.give(Buffer.alloc(4)); // over the bound: dropped
    expect(pool.idleSizeBytes).toBe(8);
    pool.take(4);
    pool.give(Buffer.alloc(8).subarray(0, 4)); // a view: dropped
    expect(pool.idleSizeBytes).toBe(4);
  });
});
