import { copyFile, mkdir, open, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkError } from '../../../src/chunks/api.js';
import { DEFAULT_BLOCK_SIZE_BYTES } from '../../../src/chunks/crc.js';
import { FIXED_HEADER_BYTES, prefixLengthBytes } from '../../../src/chunks/format.js';
import { chunkObjectPath, ChunkStore } from '../../../src/chunks/store.js';
import { memoryLogger, patternBytes, TempDirs } from './helpers.js';
import { seededInt } from '../../prng.js';

const MiB = 1024 * 1024;
const BS = DEFAULT_BLOCK_SIZE_BYTES;
const temps = new TempDirs();
afterEach(() => temps.cleanup());

async function openStore(extra: Partial<Parameters<typeof ChunkStore.open>[0]> = {}) {
  const dataDir = extra.dataDir ?? (await temps.make());
  const { logger, lines } = memoryLogger();
  const store = await ChunkStore.open({ dataDir, logger, ...extra });
  return { store, dataDir, lines };
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<ChunkError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ChunkError ${code}, got success`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ChunkError);
  expect((err as ChunkError).code).toBe(code);
  return err as ChunkError;
}

async function flipByte(file: string, position: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, position);
    b[0] ^= 0x5a;
    await fh.write(b, 0, 1, position);
  } finally {
    await fh.close();
  }
}

describe('ChunkStore round trip', () => {
  const sizes = [0, 1, 7, BS - 1, BS, BS + 1, 2 * BS, 3 * BS + 17, MiB, 4 * MiB];
  it.each(sizes)('writes and reads back %i bytes', async (size) => {
    const { store } = await openStore();
    const data = patternBytes(size, size + 1);
    await store.writeChunk(42, data);
    const back = await store.readChunk(42, 0, size + 100);
    expect(back.length).toBe(size);
    expect(back.equals(data)).toBe(true);
    await store.verifyChunk(42);
  });

  it('round-trips random sizes and ids', async () => {
    const { store } = await openStore();
    const rand = seededInt(12345);
    const written = new Map<number, Buffer>();
    for (let i = 0; i < 30; i++) {
      const id = rand(2 ** 31) * 2 ** 21 + rand(2 ** 21);
      const data = patternBytes(rand(300_000), i + 7);
      await store.writeChunk(id, data);
      written.set(id, data);
    }
    for (const [id, data] of written) expect((await store.readChunk(id, 0, data.length)).equals(data)).toBe(true);
  });

  it('serves exact clamped ranges', async () => {
    const { store } = await openStore();
    const size = 5 * BS + 123;
    const data = patternBytes(size, 9);
    await store.writeChunk(1, data);
    const ranges: Array<[number, number]> = [
      [0, 0], [0, 1], [BS - 1, 2], [BS, BS], [BS - 3, 2 * BS + 6], [size - 1, 10], [size, 10],
      [size + 5, 10], [17, size], [3 * BS + 100, 0], [0, Number.MAX_SAFE_INTEGER],
    ];
    for (const [offset, length] of ranges) {
      const expected = data.subarray(Math.min(offset, size), Math.min(size, offset + length));
      const got = await store.readChunk(1, offset, length);
      expect(got.length, `range ${offset}+${length}`).toBe(expected.length);
      expect(got.equals(expected), `range ${offset}+${length}`).toBe(true);
    }
    await expectCode(store.readChunk(1, -1, 5), 'INVALID');
    await expectCode(store.readChunk(1, 0.5, 5), 'INVALID');
    await expectCode(store.readChunk(-3, 0, 5), 'INVALID');
  });

  it('reads only the touched blocks of a large object (128 KiB of 4 MiB)', async () => {
    const { store } = await openStore();
    const data = patternBytes(4 * MiB, 3);
    await store.writeChunk(7, data);
    const before = store.stats().diskBytesRead;
    // Unaligned: touches 3 blocks, the worst case for a 128 KiB read.
    const got = await store.readChunk(7, MiB + 1000, 128 * 1024);
    const readBytes = store.stats().diskBytesRead - before;
    expect(got.equals(data.subarray(MiB + 1000, MiB + 1000 + 128 * 1024))).toBe(true);
    expect(readBytes).toBeLessThanOrEqual(3 * BS + 4096);
    expect(readBytes).toBeLessThan(4 * MiB / 16);
  });

  it('reports NOT_FOUND for a missing object and deletes idempotently', async () => {
    const { store } = await openStore();
    await expectCode(store.readChunk(99, 0, 10), 'NOT_FOUND');
    await store.writeChunk(99, patternBytes(10, 1));
    await store.deleteChunk(99);
    await store.deleteChunk(99);
    await expectCode(store.readChunk(99, 0, 10), 'NOT_FOUND');
  });

  it('rejects oversize chunks', async () => {
    const { store } = await openStore({ maxChunkBytes: MiB });
    await expectCode(store.writeChunk(1, Buffer.alloc(MiB + 1)), 'INVALID');
  });
});

describe('ChunkStore immutability', () => {
  it('accepts an identical rewrite and refuses different content', async () => {
    const { store } = await openStore();
    const data = patternBytes(BS * 2 + 5, 1);
    await store.writeChunk(5, data);
    await store.writeChunk(5, Buffer.from(data));
    expect(store.stats().idempotentRewrites).toBe(1);
    const other = Buffer.from(data);
    other[BS + 3] ^= 1;
    await expectCode(store.writeChunk(5, other), 'INVALID');
    await expectCode(store.writeChunk(5, data.subarray(0, 10)), 'INVALID');
    expect((await store.readChunk(5, 0, data.length)).equals(data)).toBe(true);
    expect((await store.capacity()).chunkCount).toBe(1);
  });

  it('serializes concurrent writes of one id so only one content wins', async () => {
    const { store } = await openStore();
    const a = patternBytes(1000, 1);
    const b = patternBytes(1000, 2);
    const results = await Promise.allSettled([store.writeChunk(8, a), store.writeChunk(8, b)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const stored = await store.readChunk(8, 0, 1000);
    expect(stored.equals(a) || stored.equals(b)).toBe(true);
  });
});

describe('ChunkStore corruption', () => {
  const size = 4 * BS + 10;
  const data = patternBytes(size, 77);
  const dataOffset = prefixLengthBytes(5);

  it('flipped data byte: CORRUPT for touching reads, log line, counter, other blocks still served', async () => {
    const { store, dataDir, lines } = await openStore();
    await store.writeChunk(3, data);
    await flipByte(chunkObjectPath(dataDir, 3), dataOffset + 2 * BS + 100);
    await expectCode(store.readChunk(3, 0, size), 'CORRUPT');
    await expectCode(store.readChunk(3, 2 * BS + 100, 1), 'CORRUPT');
    await expectCode(store.verifyChunk(3), 'CORRUPT');
    // Blocks that are intact are still readable and correct.
    expect((await store.readChunk(3, 0, 2 * BS)).equals(data.subarray(0, 2 * BS))).toBe(true);
    expect((await store.readChunk(3, 3 * BS, BS)).equals(data.subarray(3 * BS, 4 * BS))).toBe(true);
    expect(store.stats().corruptDetected).toBe(3);
    const errors = lines.filter((l) => l.msg === 'chunk object corrupt');
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatchObject({ chunkId: 3, level: 50 });
  });

  it('flipped CRC table byte: every read is CORRUPT', async () => {
    const { store, dataDir } = await openStore();
    await store.writeChunk(4, data);
    await flipByte(chunkObjectPath(dataDir, 4), FIXED_HEADER_BYTES + 4 * 3 + 1);
    await expectCode(store.readChunk(4, 0, 10), 'CORRUPT');
    await expectCode(store.readChunk(4, 3 * BS, 10), 'CORRUPT');
    expect(store.stats().corruptDetected).toBe(2);
  });

  it('flipped header byte and truncated file are CORRUPT', async () => {
    const { store, dataDir } = await openStore();
    await store.writeChunk(6, data);
    await store.writeChunk(9, data);
    await flipByte(chunkObjectPath(dataDir, 6), 26); // data length field
    await expectCode(store.readChunk(6, 0, 10), 'CORRUPT');
    const fh = await open(chunkObjectPath(dataDir, 9), 'r+');
    await fh.truncate(dataOffset + 3 * BS);
    await fh.close();
    expect((await store.readChunk(9, 0, BS)).equals(data.subarray(0, BS))).toBe(true);
    await expectCode(store.readChunk(9, 3 * BS, 10), 'CORRUPT');
    await expectCode(store.verifyChunk(9), 'CORRUPT');
  });

  it('an object under the wrong name is CORRUPT', async () => {
    const { store, dataDir } = await openStore();
    await store.writeChunk(1, data);
    await mkdir(path.dirname(chunkObjectPath(dataDir, 2)), { recursive: true });
    await copyFile(chunkObjectPath(dataDir, 1), chunkObjectPath(dataDir, 2));
    await expectCode(store.readChunk(2, 0, 10), 'CORRUPT');
  });

  it('rewriting the true bytes over a corrupt object repairs it', async () => {
    const { store, dataDir } = await openStore();
    await store.writeChunk(10, data);
    const before = await store.capacity();
    await flipByte(chunkObjectPath(dataDir, 10), dataOffset + 5);
    await store.writeChunk(10, data);
    expect((await store.readChunk(10, 0, size)).equals(data)).toBe(true);
    const after = await store.capacity();
    expect(after.chunkCount).toBe(before.chunkCount);
    expect(after.usedBytes).toBe(before.usedBytes);
  });
});

describe('ChunkStore reserve (decision 0014)', () => {
  it('refuses a write that would leave less than the reserve free, before touching the disk; deletes still work', async () => {
    const { store } = await openStore();
    await store.writeChunk(1, patternBytes(100, 1));
    // A reserve larger than the disk (others write to the same disk: no boundary to race on).
    store.reserveBytes = (await store.capacity()).totalBytes + MiB;
    const e = await expectCode(store.writeChunk(2, patternBytes(1000, 2)), 'NO_SPACE');
    expect(e.message).toMatch(/reserve/);
    await expectCode(store.openWriter(3, 1000), 'NO_SPACE');
    expect((await store.statChunk(2, false)).exists).toBe(false);
    await store.deleteChunk(1);
    expect((await store.statChunk(1, false)).exists).toBe(false);
    store.reserveBytes = 0;
    await store.writeChunk(2, patternBytes(1000, 2));
  });
});

describe('ChunkStore open, listing and capacity', () => {
  it('removes temp files left by a crash and keeps objects', async () => {
    const { store, dataDir } = await openStore();
    await store.writeChunk(0x1234, patternBytes(100, 1));
    const file = chunkObjectPath(dataDir, 0x1234);
    const leftover = `${file}.tmp.999.deadbeef`;
    await writeFile(leftover, 'half an object');
    const reopened = await openStore({ dataDir });
    expect(reopened.store.stats().tempFilesRemoved).toBe(1);
    expect(await readdir(path.dirname(file))).toEqual([path.basename(file)]);
    expect((await reopened.store.readChunk(0x1234, 0, 100)).equals(patternBytes(100, 1))).toBe(true);
    expect(reopened.lines.some((l) => l.msg === 'removed temp file left by an interrupted write')).toBe(true);
  });

  it('counts objects at open and tracks capacity through writes and deletes', async () => {
    const { store, dataDir } = await openStore();
    const empty = await store.capacity();
    expect(empty.chunkCount).toBe(0);
    expect(empty.usedBytes).toBe(0);
    expect(empty.totalBytes).toBeGreaterThan(0);
    expect(empty.freeBytes).toBeGreaterThan(0);
    expect(empty.freeBytes).toBeLessThanOrEqual(empty.totalBytes);
    const sizes = [0, 10, BS, 3 * BS + 1];
    for (const [i, s] of sizes.entries()) await store.writeChunk(i + 1, patternBytes(s, i + 1));
    const expectedUsed = sizes.reduce((sum, s) => sum + s + prefixLengthBytes(Math.ceil(s / BS)), 0);
    expect(await store.capacity()).toMatchObject({ chunkCount: 4, usedBytes: expectedUsed });
    const reopened = (await openStore({ dataDir })).store;
    expect(await reopened.capacity()).toMatchObject({ chunkCount: 4, usedBytes: expectedUsed });
    await reopened.deleteChunk(4);
    expect(await reopened.capacity()).toMatchObject({
      chunkCount: 3,
      usedBytes: expectedUsed - (3 * BS + 1) - prefixLengthBytes(4),
    });
  });

  it('lists every object for inventory', async () => {
    const { store } = await openStore();
    const ids = [0, 1, 255, 256, 65_536, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER];
    for (const id of ids) await store.writeChunk(id, patternBytes(id % 1000, 1));
    const listed = [];
    for await (const info of store.listChunks()) listed.push(info);
    expect(listed.map((i) => i.chunkId).sort((a, b) => a - b)).toEqual(ids);
    for (const info of listed) expect(info.fileSizeBytes).toBe(prefixLengthBytes(Math.ceil((info.chunkId % 1000) / BS)) + (info.chunkId % 1000));
  });

  it('refuses work past the queue bound with UNAVAILABLE', async () => {
    const { store } = await openStore({ maxConcurrentWrites: 1, maxQueuedRequests: 1 });
    const writes = [1, 2, 3, 4].map((id) => store.writeChunk(id, patternBytes(BS, id)));
    const results = await Promise.allSettled(writes);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected.length).toBe(2);
    for (const r of rejected) expect((r.reason as ChunkError).code).toBe('UNAVAILABLE');
  });
});

describe('ChunkStore statChunk', () => {
  it('says a missing object does not exist and refuses bad ids', async () => {
    const { store } = await openStore();
    expect(await store.statChunk(5, true)).toEqual({ exists: false });
    expect(await store.statChunk(5, false)).toEqual({ exists: false });
    await expectCode(store.statChunk(-1, false), 'INVALID');
    await expectCode(store.statChunk(1.5, true), 'INVALID');
  });

  it.each([0, 1, BS, 3 * BS + 5, 3 * MiB + 17])('reports size and a clean verify for %i bytes', async (size) => {
    const { store } = await openStore();
    await store.writeChunk(11, patternBytes(size, size + 2));
    const fileSizeBytes = prefixLengthBytes(Math.ceil(size / BS)) + size;
    expect(await store.statChunk(11, false)).toEqual({ exists: true, sizeBytes: size, fileSizeBytes, verified: false, corrupt: null });
    const before = store.stats().diskBytesRead;
    expect(await store.statChunk(11, true)).toEqual({ exists: true, sizeBytes: size, fileSizeBytes, verified: true, corrupt: null });
    // verify reads every data byte once, plus the prefix.
    expect(store.stats().diskBytesRead - before).toBeGreaterThanOrEqual(size);
    expect(store.stats().corruptDetected).toBe(0);
  });

  it('verifies objects whose block is larger than one verify piece', async () => {
    const { store, dataDir } = await openStore({ blockSizeBytes: 4 * MiB });
    const data = patternBytes(6 * MiB + 3, 5);
    await store.writeChunk(12, data);
    expect(await store.statChunk(12, true)).toMatchObject({ exists: true, sizeBytes: data.length, corrupt: null });
    await flipByte(chunkObjectPath(dataDir, 12), prefixLengthBytes(2) + 6 * MiB + 1);
    expect(await store.statChunk(12, true)).toMatchObject({ exists: true, corrupt: 'block 1 checksum mismatch' });
  });

  it('finds a flipped data byte only when verifying, and counts and logs it like a read', async () => {
    const { store, dataDir, lines } = await openStore();
    // Past the first 1 MiB piece, so the check crosses piece boundaries.
    const data = patternBytes(3 * MiB + 100, 6);
    await store.writeChunk(13, data);
    await flipByte(chunkObjectPath(dataDir, 13), prefixLengthBytes(Math.ceil(data.length / BS)) + 2 * MiB + 7);
    expect(await store.statChunk(13, false)).toMatchObject({ exists: true, verified: false, corrupt: null });
    const s = await store.statChunk(13, true);
    expect(s).toMatchObject({ exists: true, sizeBytes: data.length, verified: true, corrupt: `block ${(2 * MiB) / BS} checksum mismatch` });
    expect(store.stats().corruptDetected).toBe(1);
    expect(lines.filter((l) => l.msg === 'chunk object corrupt')).toEqual([expect.objectContaining({ chunkId: 13, level: 50 })]);
    await expectCode(store.verifyChunk(13), 'CORRUPT');
    // Intact blocks are still served.
    expect((await store.readChunk(13, 0, MiB)).equals(data.subarray(0, MiB))).toBe(true);
  });

  it('finds a damaged header, a truncated file and a misnamed object without verifying', async () => {
    const { store, dataDir } = await openStore();
    const data = patternBytes(4 * BS + 10, 7);
    for (const id of [21, 22, 23]) await store.writeChunk(id, data);
    await flipByte(chunkObjectPath(dataDir, 21), FIXED_HEADER_BYTES + 1); // CRC table
    const fh = await open(chunkObjectPath(dataDir, 22), 'r+');
    await fh.truncate(prefixLengthBytes(5) + 2 * BS);
    await fh.close();
    await mkdir(path.dirname(chunkObjectPath(dataDir, 24)), { recursive: true });
    await copyFile(chunkObjectPath(dataDir, 23), chunkObjectPath(dataDir, 24));
    expect(await store.statChunk(21, false)).toMatchObject({ exists: true, corrupt: 'header checksum mismatch' });
    expect(await store.statChunk(22, false)).toMatchObject({ exists: true, sizeBytes: data.length, fileSizeBytes: prefixLengthBytes(5) + 2 * BS, corrupt: expect.stringMatching(/^file is/) });
    expect(await store.statChunk(24, true)).toMatchObject({ exists: true, corrupt: expect.stringContaining('header holds chunk') });
    expect(await store.statChunk(23, true)).toMatchObject({ exists: true, corrupt: null });
    expect(store.stats().corruptDetected).toBe(3);
  });
});
