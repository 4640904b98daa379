// The chunk service over gRPC: the server side adapts a ChunkApi (normally a ChunkStore)
// to dfs.chunk.Chunk; ChunkClient is the same ChunkApi across processes. ChunkError
// codes travel as gRPC status codes (one table each way) with the message as details.
import { once } from 'node:events';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { loadProto } from '../common/proto.js';
import { ChunkError, type ChunkApi, type ChunkCapacity, type ChunkErrorCode, type ChunkStat, type ChunkStatApi, type ChunkStreamApi, type ChunkWriter } from './api.js';
import type { ProtoGrpcType } from './gen/chunk.js';
import type { ChunkClient as ChunkStub, ChunkHandlers } from './gen/dfs/chunk/Chunk.js';
import type { ReadRequest, ReadRequest__Output } from './gen/dfs/chunk/ReadRequest.js';
import type { WriteRequest, WriteRequest__Output } from './gen/dfs/chunk/WriteRequest.js';
import { DEFAULT_MAX_CHUNK_BYTES } from './store.js';

/** Data per stream message: small enough to interleave streams, large enough to amortize framing. */
export const MAX_PIECE_BYTES = 1024 * 1024;
/** Pieces are ≤ 1 MiB; the headroom lets a later version send larger ones without a config change. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/**
 * HTTP/2 receive windows for chunk data, per stream and per connection. With HTTP/2's
 * default 64 KiB a sender stops every 64 KiB until the receiver's event loop hands back
 * credit; measured with 3 local servers and 2 chunks in flight, 8 MiB windows cut the
 * sender's CPU per byte by ~35% and the receivers' by ~20% (BENCHMARKS.md).
 */
export const STREAM_WINDOW_BYTES = 8 * 1024 * 1024;
export const CONNECTION_WINDOW_BYTES = 32 * 1024 * 1024;
export const CHUNK_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  // The client's receive windows (reads): grpc-js sets both from this.
  'grpc-node.flow_control_window': STREAM_WINDOW_BYTES,
};
/** Pass to `new grpc.Server(...)` of a daemon serving chunks. */
export const CHUNK_SERVER_OPTIONS: grpc.ServerOptions = { ...CHUNK_CHANNEL_OPTIONS };
export const DEFAULT_DEADLINE_MS = 10_000;
/**
 * Bytes announced by the write streams a server is receiving at once. A store that takes
 * streams writes pieces as they arrive (little is held), one that does not gets whole
 * buffers; either way this caps the memory and the streams per server.
 */
export const DEFAULT_MAX_INFLIGHT_WRITE_BYTES = 256 * 1024 * 1024;
/** A write stream pauses while this much of it waits for the disk. */
const MAX_QUEUED_PIECE_BYTES = 2 * MAX_PIECE_BYTES;
const WRITE_RAW_PATH = '/dfs.chunk.Chunk/WriteRaw';
const READ_RAW_PATH = '/dfs.chunk.Chunk/ReadRaw';

let http2WindowsRaised = false;

/**
 * The server's receive windows (writes). grpc-js has no server option for them, so the
 * HTTP/2 server it creates at bind time gets them here: `settings` it did not set itself,
 * and a larger connection window on every session. Process-wide and idempotent; every
 * gRPC server of the process gets them (the chunk service shares its port).
 */
function raiseHttp2ReceiveWindows(): void {
  if (http2WindowsRaised) return;
  http2WindowsRaised = true;
  const raise = <S extends http2.Http2Server | http2.Http2SecureServer>(server: S): S => {
    server.on('session', (session: http2.ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
      } catch {
        // a session closing already: nothing to raise
      }
    });
    return server;
  };
  const withWindow = <O extends http2.ServerOptions>(options: O | undefined): O =>
    ({ ...options, settings: { initialWindowSize: STREAM_WINDOW_BYTES, ...options?.settings } }) as O;
  const createServer = http2.createServer;
  const createSecureServer = http2.createSecureServer;
  http2.createServer = ((options?: http2.ServerOptions, listener?: never) => raise(createServer(withWindow(options), listener))) as typeof http2.createServer;
  http2.createSecureServer = ((options?: http2.SecureServerOptions, listener?: never) =>
    raise(createSecureServer(withWindow(options), listener))) as typeof http2.createSecureServer;
}

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

/** One message of a write stream, whatever its encoding. */
type WriteMessage = { start: { chunkId: number; totalLength: number } } | { data: Buffer } | { invalid: string };

function isStreamApi(store: ChunkApi): store is ChunkApi & ChunkStreamApi {
  return typeof (store as Partial<ChunkStreamApi>).openWriter === 'function';
}

/** For a store that cannot take streams: the whole object in one buffer, stored at the end. */
class BufferedWriter implements ChunkWriter {
  private readonly buffer: Buffer;
  private receivedBytes = 0;
  readonly queuedBytes = 0;

  constructor(
    private readonly store: ChunkApi,
    private readonly chunkId: number,
    totalBytes: number,
  ) {
    this.buffer = Buffer.allocUnsafe(totalBytes);
  }

  append(piece: Buffer): Promise<void> {
    if (this.receivedBytes + piece.length > this.buffer.length) {
      return Promise.reject(new ChunkError('INVALID', `more data than the announced ${this.buffer.length} bytes`));
    }
    piece.copy(this.buffer, this.receivedBytes);
    this.receivedBytes += piece.length;
    return Promise.resolve();
  }

  commit(): Promise<void> {
    if (this.receivedBytes !== this.buffer.length) {
      return Promise.reject(new ChunkError('INVALID', `received ${this.receivedBytes} of ${this.buffer.length} announced bytes`));
    }
    return this.store.writeChunk(this.chunkId, this.buffer);
  }

  abort(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Write and WriteRaw: a start message, then data pieces handed to the store's writer as
 * they arrive (paused while the disk is behind), committed when the client half-closes.
 */
function writeHandler<M>(
  store: ChunkApi,
  options: Required<ChunkServiceOptions>,
  inflight: { bytes: number },
  parse: (message: M, first: boolean) => WriteMessage,
): grpc.handleClientStreamingCall<M, Record<string, never>> {
  return (call, callback) => {
    let writer: ChunkWriter | null = null;
    let started = false;
    let reservedBytes = 0;
    let committing = false;
    let finished = false;
    const finish = (err: unknown): void => {
      if (finished) return;
      finished = true;
      inflight.bytes -= reservedBytes;
      reservedBytes = 0;
      if (err !== null && !committing) void writer?.abort();
      if (err === null) callback(null, {});
      else callback(toServiceError(err, options.logger, 'Write'));
    };
    const invalid = (message: string) => finish(new ChunkError('INVALID', message));
    const resumeAfter = (done: Promise<void>): void => {
      call.pause();
      done.then(
        () => {
          if (!finished) call.resume();
        },
        () => undefined, // finish() reports it
      );
    };

    call.on('data', (m: M) => {
      if (finished) return;
      const message = parse(m, !started);
      if ('start' in message) {
        if (started) return invalid('second start message');
        started = true;
        const { chunkId, totalLength: total } = message.start;
        if (!(Number.isSafeInteger(total) && total >= 0 && total <= options.maxChunkBytes)) {
          return invalid(`total length ${total} outside [0, ${options.maxChunkBytes}]`);
        }
        if (inflight.bytes + total > options.maxInflightWriteBytes) {
          return finish(new ChunkError('UNAVAILABLE', `write buffers full (${inflight.bytes} bytes in flight)`));
        }
        inflight.bytes += total;
        reservedBytes = total;
        if (!isStreamApi(store)) {
          writer = new BufferedWriter(store, chunkId, total);
          return;
        }
        // Pieces wait (paused) until the temp file is open.
        const opening = store.openWriter(chunkId, total).then((w) => {
          if (finished) void w.abort();
          else writer = w;
        });
        opening.catch(finish);
        resumeAfter(opening);
      } else if ('data' in message) {
        const piece = message.data;
        if (!writer) return invalid('data before start');
        if (piece.length > MAX_PIECE_BYTES) return invalid(`data piece of ${piece.length} bytes exceeds ${MAX_PIECE_BYTES}`);
        const done = writer.append(piece);
        done.catch(finish);
        if (writer.queuedBytes >= MAX_QUEUED_PIECE_BYTES) resumeAfter(done);
      } else {
        invalid(message.invalid);
      }
    });
    call.on('end', () => {
      if (finished) return;
      if (!writer) return invalid('stream ended without a start message');
      committing = true;
      writer.commit().then(() => finish(null), finish);
    });
    call.on('error', (err: unknown) => finish(err));
    // Releases the reservation (and the temp file) when the client goes away mid-stream.
    call.on('cancelled', () => finish(new ChunkError('UNAVAILABLE', 'write cancelled by the client')));
  };
}

function parseWriteRequest(req: WriteRequest__Output): WriteMessage {
  if (req.body === 'start' && req.start) return { start: req.start };
  if (req.body === 'data') return { data: req.data ?? Buffer.alloc(0) };
  return { invalid: 'empty write message' };
}

/** The raw variant's messages arrive undecoded: the first is a WriteRequest, the rest are data. */
function rawWriteParser(decode: (b: Buffer) => WriteRequest__Output): (message: Buffer, first: boolean) => WriteMessage {
  return (message, first) => {
    if (!first) return { data: message };
    let req: WriteRequest__Output;
    try {
      req = decode(message);
    } catch {
      return { invalid: 'undecodable start message' };
    }
    return req.body === 'start' ? parseWriteRequest(req) : { invalid: 'first message is not a start' };
  };
}

/** Read and ReadRaw: `wrap` turns a piece into the method's reply message. */
function readHandler<R>(store: ChunkApi, logger: Logger, wrap: (piece: Buffer) => R): grpc.handleServerStreamingCall<ReadRequest__Output, R> {
  return (call) => {
    const { chunkId, offset, length } = call.request;
    const send = async (): Promise<void> => {
      const data = await store.readChunk(chunkId, offset, length);
      for (let at = 0; at < data.length && !call.cancelled; at += MAX_PIECE_BYTES) {
        if (!call.write(wrap(data.subarray(at, at + MAX_PIECE_BYTES)))) {
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
  raiseHttp2ReceiveWindows();
  const pkg = await loadChunkPackage();
  const service = pkg.Chunk.service;
  const inflight = { bytes: 0 };
  const identity = (b: Buffer): Buffer => b;
  const decodeWriteRequest = service.WriteRaw.requestDeserialize as (b: Buffer) => WriteRequest__Output;
  const handlers: ChunkHandlers = {
    Write: writeHandler(store, resolved, inflight, parseWriteRequest),
    WriteRaw: writeHandler(store, resolved, inflight, rawWriteParser(decodeWriteRequest)) as unknown as ChunkHandlers['WriteRaw'],
    Read: readHandler(store, logger, (data) => ({ data })),
    ReadRaw: readHandler(store, logger, identity) as unknown as ChunkHandlers['ReadRaw'],
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
  // The raw methods skip protobuf for their data: bodies pass through untouched.
  const definition: grpc.ServiceDefinition = {
    ...service,
    WriteRaw: { ...service.WriteRaw, requestDeserialize: identity },
    ReadRaw: { ...service.ReadRaw, responseSerialize: identity },
  };
  server.addService(definition, handlers as unknown as grpc.UntypedServiceImplementation);
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
    private readonly codec: { encodeWrite: (m: WriteRequest) => Buffer; encodeRead: (m: ReadRequest) => Buffer },
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
    const codec = {
      encodeWrite: pkg.Chunk.service.WriteRaw.requestSerialize as (m: WriteRequest) => Buffer,
      encodeRead: pkg.Chunk.service.ReadRaw.requestSerialize as (m: ReadRequest) => Buffer,
    };
    return new ChunkClient(stub, codec, options.address, options.deadlineMs ?? DEFAULT_DEADLINE_MS, options.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES);
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
    let call!: grpc.ClientWritableStream<Buffer>;
    const reply = new Promise<void>((resolve, reject) => {
      call = this.stub.makeClientStreamRequest<Buffer, unknown>(
        WRITE_RAW_PATH,
        (b) => b,
        () => ({}),
        this.callOptions(),
        (err) => (err ? reject(this.fromStatus(err)) : resolve()),
      );
    });
    let settled = false;
    const settledSignal = reply.then(
      () => void (settled = true),
      () => void (settled = true),
    );
    const sendAll = async (): Promise<void> => {
      // Views of `data`, no copy here: grpc-js copies each into its frame, and the server
      // answers only after the last byte, so `data` is the caller's again once this resolves.
      const messages: Buffer[] = [this.codec.encodeWrite({ start: { chunkId, totalLength: data.length } })];
      for (let at = 0; at < data.length; at += MAX_PIECE_BYTES) messages.push(data.subarray(at, at + MAX_PIECE_BYTES));
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
    const call = this.stub.makeServerStreamRequest<ReadRequest, Buffer>(READ_RAW_PATH, this.codec.encodeRead, (b) => b, { chunkId, offset, length }, this.callOptions());
    const pieces: Buffer[] = [];
    let receivedBytes = 0;
    return new Promise<Buffer>((resolve, reject) => {
      call.on('data', (piece: Buffer) => {
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
