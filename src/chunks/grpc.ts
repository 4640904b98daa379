// The chunk service over gRPC: the server side adapts a ChunkApi (normally a ChunkStore)
// to dfs.chunk.Chunk; ChunkClient is the same ChunkApi across processes. ChunkError
// codes travel as gRPC status codes (one table each way) with the message as details.
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { loadProto } from '../common/proto.js';
import { ChunkError, type ChunkApi, type ChunkCapacity, type ChunkErrorCode, type ChunkStat, type ChunkStatApi } from './api.js';
import type { ProtoGrpcType } from './gen/chunk.js';
import type { ChunkClient as ChunkStub, ChunkHandlers } from './gen/dfs/chunk/Chunk.js';
import type { ReadReply__Output } from './gen/dfs/chunk/ReadReply.js';
import type { WriteRequest, WriteRequest__Output } from './gen/dfs/chunk/WriteRequest.js';
import { DEFAULT_MAX_CHUNK_BYTES } from './store.js';

/** Data per stream message: small enough to interleave streams, large enough to amortize framing. */
export const MAX_PIECE_BYTES = 1024 * 1024;
/** Pieces are ≤ 1 MiB; the headroom lets a later version send larger ones without a config change. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
export const CHUNK_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
};
/** Pass to `new grpc.Server(...)` of a daemon serving chunks. */
export const CHUNK_SERVER_OPTIONS: grpc.ServerOptions = { ...CHUNK_CHANNEL_OPTIONS };
export const DEFAULT_DEADLINE_MS = 10_000;
/** Write streams buffer the whole chunk before storing; this caps that memory per server. */
export const DEFAULT_MAX_INFLIGHT_WRITE_BYTES = 256 * 1024 * 1024;

type ChunkPackage = ProtoGrpcType['dfs']['chunk'];
let chunkPackagePromise: Promise<ChunkPackage> | undefined;

function loadChunkPackage(): Promise<ChunkPackage> {
  chunkPackagePromise ??= loadProto('chunks', 'chunk.proto').then((root) => (root as unknown as ProtoGrpcType).dfs.chunk);
  return chunkPackagePromise;
}

const STATUS_OF_CODE: Record<ChunkErrorCode, grpc.status> = {
  NOT_FOUND: grpc.status.NOT_FOUND,
  CORRUPT: grpc.status.DATA_LOSS,
  NO_SPACE: grpc.status.RESOURCE_EXHAUSTED,
  INVALID: grpc.status.INVALID_ARGUMENT,
  IO: grpc.status.INTERNAL,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
};

/** gRPC status → ChunkError code on the client; anything not listed is IO. */
const CODE_OF_STATUS = new Map<grpc.status, ChunkErrorCode>([
  [grpc.status.NOT_FOUND, 'NOT_FOUND'],
  [grpc.status.DATA_LOSS, 'CORRUPT'],
  [grpc.status.RESOURCE_EXHAUSTED, 'NO_SPACE'],
  [grpc.status.INVALID_ARGUMENT, 'INVALID'],
  [grpc.status.UNAVAILABLE, 'UNAVAILABLE'],
  [grpc.status.DEADLINE_EXCEEDED, 'UNAVAILABLE'],
]);

function toServiceError(err: unknown, logger: Logger, method: string): grpc.ServiceError {
  let code: grpc.status;
  let details: string;
  if (err instanceof ChunkError) {
    code = STATUS_OF_CODE[err.code];
    details = `${err.code}: ${err.message}`;
  } else {
    // Not an operating error: a bug in this process. Say so on the wire and in the log.
    code = grpc.status.INTERNAL;
    details = `internal error: ${err instanceof Error ? err.message : String(err)}`;
    logger.error({ err, method }, 'chunk service internal error');
  }
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

export interface ChunkServiceOptions {
  logger?: Logger;
  /** Largest chunk a Write stream may announce; the store may enforce a lower one. */
  maxChunkBytes?: number;
  maxInflightWriteBytes?: number;
}

function writeHandler(store: ChunkApi, options: Required<ChunkServiceOptions>): ChunkHandlers['Write'] {
  let inflightBytes = 0;
  return (call, callback) => {
    let chunkId = -1;
    let buffer: Buffer | null = null;
    let reservedBytes = 0;
    let receivedBytes = 0;
    let finished = false;
    const finish = (err: unknown): void => {
      if (finished) return;
      finished = true;
      inflightBytes -= reservedBytes;
      reservedBytes = 0;
      buffer = null;
      if (err === null) callback(null, {});
      else callback(toServiceError(err, options.logger, 'Write'));
    };
    const invalid = (message: string) => finish(new ChunkError('INVALID', message));

    call.on('data', (req: WriteRequest__Output) => {
      if (finished) return;
      if (req.body === 'start' && req.start) {
        if (buffer) return invalid('second start message');
        const total = req.start.totalLength;
        if (!(Number.isSafeInteger(total) && total >= 0 && total <= options.maxChunkBytes)) {
          return invalid(`total length ${total} outside [0, ${options.maxChunkBytes}]`);
        }
        if (inflightBytes + total > options.maxInflightWriteBytes) {
          return finish(new ChunkError('UNAVAILABLE', `write buffers full (${inflightBytes} bytes in flight)`));
        }
        chunkId = req.start.chunkId;
        inflightBytes += total;
        reservedBytes = total;
        buffer = Buffer.allocUnsafe(total);
      } else if (req.body === 'data') {
        const piece = req.data ?? Buffer.alloc(0);
        if (!buffer) return invalid('data before start');
        if (piece.length > MAX_PIECE_BYTES) return invalid(`data piece of ${piece.length} bytes exceeds ${MAX_PIECE_BYTES}`);
        if (receivedBytes + piece.length > buffer.length) return invalid(`more data than the announced ${buffer.length} bytes`);
        piece.copy(buffer, receivedBytes);
        receivedBytes += piece.length;
      } else {
        invalid('empty write message');
      }
    });
    call.on('end', () => {
      if (finished) return;
      if (!buffer) return invalid('stream ended without a start message');
      if (receivedBytes !== buffer.length) return invalid(`received ${receivedBytes} of ${buffer.length} announced bytes`);
      store.writeChunk(chunkId, buffer).then(() => finish(null), finish);
    });
    call.on('error', (err: unknown) => finish(err));
    // Releases the reserved buffer when the client goes away mid-stream.
    call.on('cancelled', () => finish(new ChunkError('UNAVAILABLE', 'write cancelled by the client')));
  };
}

function readHandler(store: ChunkApi, logger: Logger): ChunkHandlers['Read'] {
  return (call) => {
    const { chunkId, offset, length } = call.request;
    const send = async (): Promise<void> => {
      const data = await store.readChunk(chunkId, offset, length);
      for (let at = 0; at < data.length && !call.cancelled; at += MAX_PIECE_BYTES) {
        if (!call.write({ data: data.subarray(at, at + MAX_PIECE_BYTES) })) {
          await Promise.race([once(call, 'drain'), once(call, 'cancelled')]);
        }
      }
      call.end();
    };
    // grpc-js turns an 'error' event on a server stream into the call's status.
    send().catch((err: unknown) => call.emit('error', toServiceError(err, logger, 'Read')));
  };
}

function isStatApi(store: ChunkApi): store is ChunkApi & ChunkStatApi {
  return typeof (store as Partial<ChunkStatApi>).statChunk === 'function';
}

function statHandler(store: ChunkApi, logger: Logger): ChunkHandlers['Stat'] {
  return (call, callback) => {
    if (!isStatApi(store)) {
      callback({ code: grpc.status.UNIMPLEMENTED, details: 'this chunk server cannot stat objects', metadata: new grpc.Metadata() });
      return;
    }
    store.statChunk(call.request.chunkId, call.request.verify).then(
      (s) =>
        callback(
          null,
          s.exists
            ? { exists: true, sizeBytes: s.sizeBytes, fileSizeBytes: s.fileSizeBytes, verified: s.verified, corrupt: s.corrupt ?? '' }
            : { exists: false },
        ),
      (err: unknown) => callback(toServiceError(err, logger, 'Stat')),
    );
  };
}

/**
 * Serves `store` as dfs.chunk.Chunk on `server` (create it with CHUNK_SERVER_OPTIONS).
 * Stat needs the store to implement ChunkStatApi too; otherwise it answers UNIMPLEMENTED.
 */
export async function registerChunkService(server: grpc.Server, store: ChunkApi, options: ChunkServiceOptions = {}): Promise<void> {
  const resolved: Required<ChunkServiceOptions> = {
    logger: (options.logger ?? pino({ level: 'silent' })).child({ module: 'chunk-service' }),
    maxChunkBytes: options.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES,
    maxInflightWriteBytes: options.maxInflightWriteBytes ?? DEFAULT_MAX_INFLIGHT_WRITE_BYTES,
  };
  const { logger } = resolved;
  const handlers: ChunkHandlers = {
    Write: writeHandler(store, resolved),
    Read: readHandler(store, logger),
    Delete: (call, callback) => {
      store.deleteChunk(call.request.chunkId).then(
        () => callback(null, {}),
        (err: unknown) => callback(toServiceError(err, logger, 'Delete')),
      );
    },
    Capacity: (_call, callback) => {
      store.capacity().then(
        (c) => callback(null, c),
        (err: unknown) => callback(toServiceError(err, logger, 'Capacity')),
      );
    },
    Stat: statHandler(store, logger),
  };
  server.addService((await loadChunkPackage()).Chunk.service, handlers);
}

export interface ChunkClientOptions {
  /** `host:port` of a chunk server. */
  address: string;
  /** Deadline of every call, from its start. */
  deadlineMs?: number;
  /** Defaults to insecure; daemons pass mTLS credentials. */
  credentials?: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  /** Replies longer than this are refused, so a bad server cannot make us buffer without bound. */
  maxChunkBytes?: number;
}

/** uint64 on the wire cannot carry a negative or fractional number faithfully, so check before sending. */
function checkUint(value: number, what: string): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) throw new ChunkError('INVALID', `bad ${what} ${value}`);
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && 'code' in err && typeof err.code === 'number';
}

export class ChunkClient implements ChunkApi, ChunkStatApi {
  private constructor(
    private readonly stub: ChunkStub,
    readonly address: string,
    private readonly deadlineMs: number,
    private readonly maxChunkBytes: number,
  ) {}

  static async connect(options: ChunkClientOptions): Promise<ChunkClient> {
    const pkg = await loadChunkPackage();
    const stub = new pkg.Chunk(options.address, options.credentials ?? grpc.credentials.createInsecure(), {
      ...CHUNK_CHANNEL_OPTIONS,
      ...options.channelOptions,
    });
    return new ChunkClient(stub, options.address, options.deadlineMs ?? DEFAULT_DEADLINE_MS, options.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES);
  }

  close(): void {
    this.stub.close();
  }

  private callOptions(): grpc.CallOptions {
    return { deadline: Date.now() + this.deadlineMs };
  }

  private fromStatus(err: unknown): ChunkError {
    if (err instanceof ChunkError) return err;
    if (!isServiceError(err)) return new ChunkError('IO', `chunk server ${this.address}: ${String(err)}`);
    const code = CODE_OF_STATUS.get(err.code) ?? 'IO';
    return new ChunkError(code, `chunk server ${this.address}: ${err.details || err.message}`);
  }

  async writeChunk(chunkId: number, data: Buffer): Promise<void> {
    checkUint(chunkId, 'chunk id');
    if (data.length > this.maxChunkBytes) throw new ChunkError('INVALID', `chunk of ${data.length} bytes exceeds ${this.maxChunkBytes}`);
    let call!: grpc.ClientWritableStream<WriteRequest>;
    const reply = new Promise<void>((resolve, reject) => {
      call = this.stub.Write(this.callOptions(), (err) => (err ? reject(this.fromStatus(err)) : resolve()));
    });
    let settled = false;
    const settledSignal = reply.then(
      () => void (settled = true),
      () => void (settled = true),
    );
    const sendAll = async (): Promise<void> => {
      const messages: WriteRequest[] = [{ start: { chunkId, totalLength: data.length } }];
      for (let at = 0; at < data.length; at += MAX_PIECE_BYTES) messages.push({ data: data.subarray(at, at + MAX_PIECE_BYTES) });
      for (const message of messages) {
        if (settled) return;
        if (!call.write(message)) await Promise.race([once(call, 'drain'), settledSignal]);
      }
      call.end();
    };
    // A failure while sending also ends the call with a status, which `reply` reports.
    sendAll().catch(() => call.cancel());
    await reply;
  }

  async readChunk(chunkId: number, offset: number, length: number): Promise<Buffer> {
    checkUint(chunkId, 'chunk id');
    checkUint(offset, 'offset');
    checkUint(length, 'length');
    const limitBytes = Math.min(length, this.maxChunkBytes);
    const call = this.stub.Read({ chunkId, offset, length }, this.callOptions());
    const pieces: Buffer[] = [];
    let receivedBytes = 0;
    return new Promise<Buffer>((resolve, reject) => {
      call.on('data', (reply: ReadReply__Output) => {
        const piece = reply.data ?? Buffer.alloc(0);
        receivedBytes += piece.length;
        if (receivedBytes > limitBytes) {
          call.cancel();
          reject(new ChunkError('IO', `chunk server ${this.address}: sent more than the ${limitBytes} bytes asked for`));
          return;
        }
        pieces.push(piece);
      });
      call.on('error', (err: unknown) => reject(this.fromStatus(err)));
      call.on('end', () => resolve(pieces.length === 1 ? pieces[0] : Buffer.concat(pieces, receivedBytes)));
    });
  }

  async deleteChunk(chunkId: number): Promise<void> {
    checkUint(chunkId, 'chunk id');
    await new Promise<void>((resolve, reject) => {
      this.stub.Delete({ chunkId }, this.callOptions(), (err) => (err ? reject(this.fromStatus(err)) : resolve()));
    });
  }

  /** A missing or corrupt object is an answer; an unreachable or slow server is UNAVAILABLE. */
  async statChunk(chunkId: number, verify: boolean): Promise<ChunkStat> {
    checkUint(chunkId, 'chunk id');
    return new Promise<ChunkStat>((resolve, reject) => {
      this.stub.Stat({ chunkId, verify }, this.callOptions(), (err, reply) => {
        if (err || !reply) reject(this.fromStatus(err ?? new Error('empty reply')));
        else if (!reply.exists) resolve({ exists: false });
        else {
          resolve({
            exists: true,
            sizeBytes: reply.sizeBytes,
            fileSizeBytes: reply.fileSizeBytes,
            verified: reply.verified,
            corrupt: reply.corrupt === '' ? null : reply.corrupt,
          });
        }
      });
    });
  }

  async capacity(): Promise<ChunkCapacity> {
    return new Promise<ChunkCapacity>((resolve, reject) => {
      this.stub.Capacity({}, this.callOptions(), (err, reply) => {
        if (err || !reply) reject(this.fromStatus(err ?? new Error('empty reply')));
        else resolve({ totalBytes: reply.totalBytes, freeBytes: reply.freeBytes, usedBytes: reply.usedBytes, chunkCount: reply.chunkCount });
      });
    });
  }
}
