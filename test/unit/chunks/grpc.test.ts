import { open } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkError, type ChunkApi, type ChunkCapacity, type ChunkStatApi } from '../../../src/chunks/api.js';
import { prefixLengthBytes } from '../../../src/chunks/format.js';
import { CHUNK_SERVER_OPTIONS, ChunkClient, registerChunkService } from '../../../src/chunks/grpc.js';
import { chunkObjectPath, ChunkStore } from '../../../src/chunks/store.js';
import { memoryLogger, patternBytes, TempDirs } from './helpers.js';

const MiB = 1024 * 1024;
const temps = new TempDirs();
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await temps.cleanup();
});

async function serve(store: ChunkApi, serviceOptions: Parameters<typeof registerChunkService>[2] = {}): Promise<string> {
  const server = new grpc.Server(CHUNK_SERVER_OPTIONS);
  await registerChunkService(server, store, serviceOptions);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanups.push(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  return `127.0.0.1:${port}`;
}

async function connect(address: string, deadlineMs = 5000): Promise<ChunkClient> {
  const client = await ChunkClient.connect({ address, deadlineMs });
  cleanups.push(() => client.close());
  return client;
}

async function setup() {
  const dataDir = await temps.make();
  const { logger, lines } = memoryLogger();
  const store = await ChunkStore.open({ dataDir, logger });
  const client = await connect(await serve(store, { logger }));
  return { dataDir, store, client, lines };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ChunkError);
    return (err as ChunkError).code;
  }
  throw new Error('expected a ChunkError');
}

describe('chunk gRPC service', () => {
  it('round-trips chunks of many sizes including 4 MiB', async () => {
    const { client } = await setup();
    for (const size of [0, 1, 65_536, MiB - 1, MiB, MiB + 1, 4 * MiB]) {
      const data = patternBytes(size, size + 3);
      await client.writeChunk(size, data);
      const back = await client.readChunk(size, 0, size);
      expect(back.length).toBe(size);
      expect(back.equals(data)).toBe(true);
    }
  });

  it('serves ranges across piece boundaries', async () => {
    const { client } = await setup();
    const data = patternBytes(4 * MiB, 5);
    await client.writeChunk(1, data);
    for (const [offset, length] of [[MiB - 10, 20], [123, 3 * MiB], [4 * MiB - 1, 100], [5 * MiB, 1], [0, 0]]) {
      const got = await client.readChunk(1, offset, length);
      expect(got.equals(data.subarray(Math.min(offset, data.length), Math.min(data.length, offset + length)))).toBe(true);
    }
  });

  it('translates CORRUPT to DATA_LOSS and back, never returning wrong bytes', async () => {
    const { client, dataDir, lines } = await setup();
    const data = patternBytes(2 * MiB, 8);
    await client.writeChunk(77, data);
    const fh = await open(chunkObjectPath(dataDir, 77), 'r+');
    await fh.write(Buffer.from([data[MiB + 5] ^ 0xff]), 0, 1, prefixLengthBytes(32) + MiB + 5);
    await fh.close();
    const err = await client.readChunk(77, 0, 2 * MiB).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChunkError);
    expect((err as ChunkError).code).toBe('CORRUPT');
    expect((err as ChunkError).message).toContain('checksum mismatch');
    expect(lines.some((l) => l.msg === 'chunk object corrupt')).toBe(true);
    // The untouched first MiB is still served.
    expect((await client.readChunk(77, 0, MiB)).equals(data.subarray(0, MiB))).toBe(true);
  });

  it('translates NOT_FOUND, INVALID, and deletes', async () => {
    const { client } = await setup();
    expect(await codeOf(client.readChunk(5, 0, 1))).toBe('NOT_FOUND');
    await client.writeChunk(5, patternBytes(100, 1));
    await client.writeChunk(5, patternBytes(100, 1)); // idempotent retry
    expect(await codeOf(client.writeChunk(5, patternBytes(100, 2)))).toBe('INVALID');
    expect(await codeOf(client.readChunk(-1, 0, 1))).toBe('INVALID');
    await client.deleteChunk(5);
    await client.deleteChunk(5);
    expect(await codeOf(client.readChunk(5, 0, 1))).toBe('NOT_FOUND');
  });

  it('reports capacity', async () => {
    const { client, store } = await setup();
    await client.writeChunk(1, patternBytes(1000, 1));
    const remote = await client.capacity();
    expect(remote).toEqual(await store.capacity());
    expect(remote.chunkCount).toBe(1);
    expect(remote.usedBytes).toBe(1000 + prefixLengthBytes(1));
  });

  it('maps every store error code onto the wire and back', async () => {
    const codes = ['NOT_FOUND', 'CORRUPT', 'NO_SPACE', 'IO', 'INVALID', 'UNAVAILABLE'] as const;
    let next = 0;
    const failing: ChunkApi = {
      writeChunk: () => Promise.reject(new ChunkError(codes[next], 'boom')),
      readChunk: () => Promise.reject(new ChunkError(codes[next], 'boom')),
      deleteChunk: () => Promise.reject(new ChunkError(codes[next], 'boom')),
      capacity: (): Promise<ChunkCapacity> => Promise.reject(new ChunkError(codes[next], 'boom')),
    };
    const client = await connect(await serve(failing));
    for (next = 0; next < codes.length; next++) {
      expect(await codeOf(client.writeChunk(1, Buffer.alloc(10)))).toBe(codes[next]);
      expect(await codeOf(client.readChunk(1, 0, 10))).toBe(codes[next]);
      expect(await codeOf(client.deleteChunk(1))).toBe(codes[next]);
      expect(await codeOf(client.capacity())).toBe(codes[next]);
    }
  });

  it('turns a deadline or an unreachable server into UNAVAILABLE', async () => {
    const stalled: ChunkApi = {
      writeChunk: () => new Promise(() => undefined),
      readChunk: () => new Promise(() => undefined),
      deleteChunk: () => new Promise(() => undefined),
      capacity: () => new Promise(() => undefined),
    };
    const slowClient = await connect(await serve(stalled), 300);
    expect(await codeOf(slowClient.readChunk(1, 0, 10))).toBe('UNAVAILABLE');
    expect(await codeOf(slowClient.capacity())).toBe('UNAVAILABLE');
    // Nothing listens on port 1.
    const deadClient = await connect('127.0.0.1:1', 1000);
    expect(await codeOf(deadClient.deleteChunk(1))).toBe('UNAVAILABLE');
  });

  it('answers Stat: missing, present, and corrupt only when verified (logged by the server)', async () => {
    const { client, dataDir, lines } = await setup();
    expect(await client.statChunk(9, true)).toEqual({ exists: false });
    const data = patternBytes(2 * MiB + 3, 4);
    await client.writeChunk(9, data);
    const fileSizeBytes = prefixLengthBytes(33) + data.length;
    expect(await client.statChunk(9, false)).toEqual({ exists: true, sizeBytes: data.length, fileSizeBytes, verified: false, corrupt: null });
    expect(await client.statChunk(9, true)).toEqual({ exists: true, sizeBytes: data.length, fileSizeBytes, verified: true, corrupt: null });
    const fh = await open(chunkObjectPath(dataDir, 9), 'r+');
    await fh.write(Buffer.from([data[2 * MiB] ^ 0xff]), 0, 1, prefixLengthBytes(33) + 2 * MiB);
    await fh.close();
    expect(await client.statChunk(9, false)).toMatchObject({ exists: true, corrupt: null });
    expect(await client.statChunk(9, true)).toEqual({ exists: true, sizeBytes: data.length, fileSizeBytes, verified: true, corrupt: 'block 32 checksum mismatch' });
    expect(lines.filter((l) => l.msg === 'chunk object corrupt')).toHaveLength(1);
    expect(await codeOf(client.statChunk(-1, false))).toBe('INVALID');
  });

  it('Stat maps errors and deadlines, and a store without statChunk answers UNIMPLEMENTED (IO)', async () => {
    const failing: ChunkApi & ChunkStatApi = {
      writeChunk: () => Promise.reject(new ChunkError('IO', 'boom')),
      readChunk: () => Promise.reject(new ChunkError('IO', 'boom')),
      deleteChunk: () => Promise.reject(new ChunkError('IO', 'boom')),
      capacity: (): Promise<ChunkCapacity> => Promise.reject(new ChunkError('IO', 'boom')),
      statChunk: () => Promise.reject(new ChunkError('NO_SPACE', 'boom')),
    };
    expect(await codeOf((await connect(await serve(failing))).statChunk(1, true))).toBe('NO_SPACE');
    const stalled: ChunkApi & ChunkStatApi = { ...failing, statChunk: () => new Promise(() => undefined) };
    expect(await codeOf((await connect(await serve(stalled), 300)).statChunk(1, true))).toBe('UNAVAILABLE');
    const { statChunk: _unused, ...plain } = failing;
    const err = await (await connect(await serve(plain))).statChunk(1, true).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChunkError);
    expect((err as ChunkError).code).toBe('IO');
    expect((err as ChunkError).message).toContain('cannot stat');
  });

  it('refuses a write announcing more than the server accepts', async () => {
    const dataDir = await temps.make();
    const store = await ChunkStore.open({ dataDir });
    const client = await connect(await serve(store, { maxChunkBytes: MiB }));
    const oversize = await ChunkClient.connect({ address: client.address, maxChunkBytes: 2 * MiB });
    cleanups.push(() => oversize.close());
    expect(await codeOf(oversize.writeChunk(1, Buffer.alloc(MiB + 1)))).toBe('INVALID');
    await client.writeChunk(2, Buffer.alloc(MiB));
  });
});
