// Objects streamed into the store piece by piece (ChunkStore.openWriter, the chunk
// service's WriteRaw) must end up exactly as writeChunk would store them.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkError } from '../../../src/chunks/api.js';
import { BlockCrcBuilder, blockCrcs } from '../../../src/chunks/crc.js';
import { chunkObjectPath, ChunkStore } from '../../../src/chunks/store.js';
import { patternBytes, TempDirs } from './helpers.js';

const KiB = 1024;
const temps = new TempDirs();
afterEach(() => temps.cleanup());

function cut(data: Buffer, sizes: number[]): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length], data.length - at);
    pieces.push(data.subarray(at, at + n));
    at += n;
  }
  return pieces;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => new Error('expected a ChunkError'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ChunkError);
  return (err as ChunkError).code;
}

async function tempFiles(dataDir: string, chunkId: number): Promise<string[]> {
  const dir = path.dirname(chunkObjectPath(dataDir, chunkId));
  return (await readdir(dir).catch(() => [])).filter((n) => n.includes('.tmp.'));
}

describe('BlockCrcBuilder', () => {
  it('gives the table blockCrcs gives, whatever the piece sizes', () => {
    for (const size of [0, 1, 4 * KiB - 1, 4 * KiB, 64 * KiB + 7, 300 * KiB]) {
      const data = patternBytes(size, size);
      for (const sizes of [[1], [7, 4 * KiB], [4 * KiB], [100 * KiB, 3], [1024 * KiB]]) {
        const b = new BlockCrcBuilder(size, 4 * KiB);
        for (const p of cut(data, sizes)) b.update(p);
        expect(Array.from(b.finish())).toEqual(Array.from(blockCrcs(data, 4 * KiB)));
      }
    }
  });
});

describe('ChunkStore.openWriter', () => {
  it('stores a streamed object byte for byte as writeChunk does', async () => {
    const dataDir = await temps.make();
    const store = await ChunkStore.open({ dataDir });
    const data = patternBytes(300 * KiB + 5, 9);
    const w = await store.openWriter(1, data.length);
    for (const p of cut(data, [100 * KiB, 1, 33 * KiB])) await w.append(p);
    await w.commit();
    await store.writeChunk(2, data);
    const a = await readFile(chunkObjectPath(dataDir, 1));
    const b = await readFile(chunkObjectPath(dataDir, 2));
    // Same file apart from the id in the header and the header CRC.
    expect(a.length).toBe(b.length);
    expect(a.subarray(40).subarray(0, a.length - 40 - data.length - 4)).toEqual(b.subarray(40).subarray(0, b.length - 40 - data.length - 4));
    expect((await store.readChunk(1, 0, data.length)).equals(data)).toBe(true);
    expect(await store.statChunk(1, true)).toMatchObject({ exists: true, corrupt: null });
    expect((await store.capacity()).chunkCount).toBe(2);
    expect(await tempFiles(dataDir, 1)).toEqual([]);
  });

  it('keeps immutability: the same bytes again are a no-op, other bytes INVALID', async () => {
    const dataDir = await temps.make();
    const store = await ChunkStore.open({ dataDir });
    const data = patternBytes(70 * KiB, 3);
    await store.writeChunk(5, data);
    const same = await store.openWriter(5, data.length);
    await same.append(Buffer.from(data));
    await same.commit();
    expect(store.stats().idempotentRewrites).toBe(1);
    const other = Buffer.from(data);
    other[69 * KiB] ^= 1;
    const w = await store.openWriter(5, other.length);
    await w.append(other);
    expect(await codeOf(w.commit())).toBe('INVALID');
    expect((await store.readChunk(5, 0, data.length)).equals(data)).toBe(true);
    expect(await tempFiles(dataDir, 5)).toEqual([]);
    expect((await store.capacity()).chunkCount).toBe(1);
  });

  it('refuses more or fewer bytes than announced, and an abort leaves nothing', async () => {
    const dataDir = await temps.make();
    const store = await ChunkStore.open({ dataDir, maxChunkBytes: 64 * KiB });
    expect(await codeOf(store.openWriter(1, 64 * KiB + 1))).toBe('INVALID');
    const over = await store.openWriter(1, 10);
    expect(await codeOf(over.append(Buffer.alloc(11)))).toBe('INVALID');
    expect(await codeOf(over.commit())).toBe('INVALID');
    const short = await store.openWriter(2, 10);
    await short.append(Buffer.alloc(9));
    expect(await codeOf(short.commit())).toBe('INVALID');
    const dropped = await store.openWriter(3, 10);
    await dropped.append(Buffer.alloc(5));
    await dropped.abort();
    for (const id of [1, 2, 3]) {
      expect(await tempFiles(dataDir, id)).toEqual([]);
      expect(await store.statChunk(id, false)).toEqual({ exists: false });
    }
  });

  it('bounds the objects received at once', async () => {
    const store = await ChunkStore.open({ dataDir: await temps.make(), maxOpenWriters: 2 });
    const a = await store.openWriter(1, 1);
    const b = await store.openWriter(2, 1);
    expect(await codeOf(store.openWriter(3, 1))).toBe('UNAVAILABLE');
    await a.abort();
    const c = await store.openWriter(3, 1);
    await c.append(Buffer.from([1]));
    await c.commit();
    await b.abort();
    expect((await store.capacity()).chunkCount).toBe(1);
  });
});

describe('chunk service wire', () => {
  it('still serves the protobuf Write and Read beside the raw ones', async () => {
    const grpc = await import('@grpc/grpc-js');
    const { loadProto } = await import('../../../src/common/proto.js');
    const { CHUNK_SERVER_OPTIONS, registerChunkService } = await import('../../../src/chunks/grpc.js');
    const store = await ChunkStore.open({ dataDir: await temps.make() });
    const server = new grpc.Server(CHUNK_SERVER_OPTIONS);
    await registerChunkService(server, store);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const pkg = (await loadProto('chunks', 'chunk.proto')) as any;
    const stub = new pkg.dfs.chunk.Chunk(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const data = patternBytes(1024 * KiB + 3, 5);
      await new Promise<void>((resolve, reject) => {
        const call = stub.Write((err: unknown) => (err ? reject(err) : resolve()));
        call.write({ start: { chunkId: 4, totalLength: data.length } });
        for (const p of cut(data, [1024 * KiB])) call.write({ data: p });
        call.end();
      });
      const back = await new Promise<Buffer>((resolve, reject) => {
        const pieces: Buffer[] = [];
        const call = stub.Read({ chunkId: 4, offset: 0, length: data.length });
        call.on('data', (r: { data: Buffer }) => pieces.push(r.data));
        call.on('error', reject);
        call.on('end', () => resolve(Buffer.concat(pieces)));
      });
      expect(back.equals(data)).toBe(true);
    } finally {
      stub.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    }
  });
});

describe('WriteRaw cancelled mid-stream', () => {
  it('drops the temp file and frees the writer slot', async () => {
    const grpc = await import('@grpc/grpc-js');
    const { loadProto } = await import('../../../src/common/proto.js');
    const { CHUNK_SERVER_OPTIONS, registerChunkService, ChunkClient } = await import('../../../src/chunks/grpc.js');
    const dataDir = await temps.make();
    const store = await ChunkStore.open({ dataDir, maxOpenWriters: 1 });
    const server = new grpc.Server(CHUNK_SERVER_OPTIONS);
    await registerChunkService(server, store);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const pkg = (await loadProto('chunks', 'chunk.proto')) as any;
    const raw = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const client = await ChunkClient.connect({ address: `127.0.0.1:${port}` });
    try {
      const failed = new Promise<unknown>((resolve) => {
        const call = raw.makeClientStreamRequest<Buffer, unknown>(
          '/dfs.chunk.Chunk/WriteRaw',
          (b) => b,
          () => ({}),
          (err) => resolve(err),
        );
        call.write(pkg.dfs.chunk.Chunk.service.WriteRaw.requestSerialize({ start: { chunkId: 7, totalLength: 3 * 1024 * KiB } }));
        call.write(patternBytes(1024 * KiB, 1));
        setTimeout(() => call.cancel(), 200);
      });
      expect(await failed).toBeTruthy();
      // The only writer slot is free again: a whole write goes through.
      for (let i = 0; ; i++) {
        try {
          await client.writeChunk(8, patternBytes(10, 2));
          break;
        } catch (err) {
          if (i > 50) throw err;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      expect(await tempFiles(dataDir, 7)).toEqual([]);
      expect(await store.statChunk(7, false)).toEqual({ exists: false });
    } finally {
      raw.close();
      client.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    }
  });
});
