// The Raft transport over gRPC (dfs.raft.Raft in raft.proto): the adapter that carries the
// pure core's messages between daemons. A unary call costs ~350 µs here (BENCHMARKS.md),
// more than a whole Raft round should, so every (self -> peer) direction keeps one
// long-lived client stream and writes, per event-loop turn, one batch of everything queued
// for that peer. Snapshots (whose data can be large) travel on their own stream per
// transfer, in pieces, so they never hold up heartbeats and appends behind them.
//
// Raft tolerates lost messages, so this transport may lose some (a broken stream, a full
// queue) but never reorders or duplicates them within a direction, and it tells the
// driver when it may have lost some (onUnreachable) so the leader falls back to probing
// instead of waiting for acks that will not come.
import { timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { loadProto } from '../../common/proto.js';
import type { ProtoGrpcType } from './gen/raft.js';
import type { EntryType__Output as WireEntryType } from './gen/dfs/raft/EntryType.js';
import type { Message as WireMessage, Message__Output as WireMessageOutput } from './gen/dfs/raft/Message.js';
import type { MessageBatch, MessageBatch__Output } from './gen/dfs/raft/MessageBatch.js';
import type { MessageType__Output as WireMessageType } from './gen/dfs/raft/MessageType.js';
import type { RaftHandlers, RaftClient as RaftStub } from './gen/dfs/raft/Raft.js';
import type { SendAck } from './gen/dfs/raft/SendAck.js';
import type { SnapshotAck } from './gen/dfs/raft/SnapshotAck.js';
import type { SnapshotChunk, SnapshotChunk__Output } from './gen/dfs/raft/SnapshotChunk.js';
import type { SnapshotMeta__Output as WireSnapshotMetaOutput } from './gen/dfs/raft/SnapshotMeta.js';
import { EntryType, type Entry, type Message, type MessageType, type NodeId, type SnapshotMeta } from './types.js';

const MiB = 1024 * 1024;
/** Snapshot data per stream message: large enough to amortize framing, small enough to interleave. */
export const MAX_SNAPSHOT_PIECE_BYTES = MiB;
/** Largest gRPC message either side accepts; batches and pieces stay well below it. */
export const MAX_WIRE_MESSAGE_BYTES = 16 * MiB;

export interface GrpcTransportLimits {
  /** Per peer: messages waiting to be written. Beyond it the oldest non-essential are dropped. */
  maxQueuedMessages: number;
  /** Per peer: estimated bytes waiting to be written (same policy). */
  maxQueuedBytes: number;
  /** Estimated bytes per MessageBatch; a single larger message still goes alone. */
  maxBatchBytes: number;
  /**
   * Batches handed to gRPC and not yet written to the socket, per peer. While the window
   * is full, new messages wait in our queue and leave as one larger batch: that is where
   * batching under load comes from, and it keeps gRPC's own buffer bounded.
   */
  maxOutstandingWrites: number;
  /**
   * A stream the peer has not accepted, or a write not flushed to the socket, within this
   * means a stuck peer: the stream is cancelled and reconnected.
   */
  stallTimeoutMs: number;
  /** Reconnect delay after a failed stream: doubles from min up to max. */
  reconnectBackoffMinMs: number;
  reconnectBackoffMaxMs: number;
  /** HTTP/2 pings on idle-looking connections: a peer silent for time + timeout is dead. */
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  /**
   * Largest snapshot either side accepts. The whole image is held in memory by the sender
   * (it comes from the Ready) and by the receiver (assembled before the node sees it), so
   * this bounds the memory one transfer can take on each side.
   */
  maxSnapshotBytes: number;
  /** Receiver: bytes of all snapshots being assembled at once. */
  maxInflightSnapshotBytes: number;
  /** Snapshot deadline: this much, plus the time to move the data at minSnapshotBytesPerSec. */
  snapshotBaseTimeoutMs: number;
  minSnapshotBytesPerSec: number;
}

export const DEFAULT_TRANSPORT_LIMITS: GrpcTransportLimits = {
  maxQueuedMessages: 8192,
  maxQueuedBytes: 64 * MiB,
  maxBatchBytes: 2 * MiB,
  maxOutstandingWrites: 4,
  stallTimeoutMs: 10_000,
  reconnectBackoffMinMs: 50,
  reconnectBackoffMaxMs: 2_000,
  keepaliveTimeMs: 5_000,
  keepaliveTimeoutMs: 5_000,
  maxSnapshotBytes: 1024 * MiB,
  maxInflightSnapshotBytes: 1024 * MiB,
  snapshotBaseTimeoutMs: 30_000,
  minSnapshotBytesPerSec: 10 * MiB,
};

/**
 * Options a daemon's grpc.Server should include when it serves Raft: batches and snapshot
 * pieces exceed grpc-js's default 4 MiB receive limit, and server-side keepalive notices a
 * sender that vanished without closing its stream.
 */
export const RAFT_SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_receive_message_length': MAX_WIRE_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_WIRE_MESSAGE_BYTES,
  'grpc.keepalive_time_ms': DEFAULT_TRANSPORT_LIMITS.keepaliveTimeMs,
  'grpc.keepalive_timeout_ms': DEFAULT_TRANSPORT_LIMITS.keepaliveTimeoutMs,
};

export interface GrpcTransportOptions {
  selfId: NodeId;
  /** Every other member: id -> `host:port` of its daemon's gRPC server. */
  peers: Map<NodeId, string>;
  /** Called with each message for this node, in arrival order per sender. */
  onMessage: (m: Message) => void;
  logger?: Logger;
  /**
   * Cluster secret. When set, outgoing calls carry `authorization: Bearer <token>` and
   * incoming calls without exactly that are refused with UNAUTHENTICATED.
   */
  authToken?: string;
  /** Defaults to insecure (no TLS yet). */
  credentials?: grpc.ChannelCredentials;
  limits?: Partial<GrpcTransportLimits>;
}

/** Counters since construction; exported as metrics by the daemon. */
export interface TransportStats {
  /** MessageBatch writes on Send streams (one per batch, however many messages it holds). */
  batchesSent: number;
  messagesSent: number;
  batchesReceived: number;
  messagesReceived: number;
  /** Dropped before being written: full queue, unknown peer, oversized, transport closed. */
  messagesDropped: number;
  /** Send streams that ended with an error (connect failures included). */
  streamFailures: number;
  snapshotsSent: number;
  snapshotsFailed: number;
  snapshotsReceived: number;
  /** Incoming calls refused for a missing or wrong auth token. */
  authRejected: number;
  /** Incoming streams failed for a malformed message. */
  invalidRejected: number;
  /** App frames (services beside Raft, TcpTransport only) written and received. */
  appFramesSent: number;
  appFramesReceived: number;
}

type RaftPackage = ProtoGrpcType['dfs']['raft'];
let raftPackagePromise: Promise<RaftPackage> | undefined;

function loadRaftPackage(): Promise<RaftPackage> {
  raftPackagePromise ??= loadProto('cluster/raft', 'raft.proto').then((root) => (root as unknown as ProtoGrpcType).dfs.raft);
  return raftPackagePromise;
}

// ---- conversion between types.ts and the wire ----

const WIRE_TYPE: Record<MessageType, WireMessageType> = {
  MsgPreVote: 'MSG_PRE_VOTE',
  MsgPreVoteResp: 'MSG_PRE_VOTE_RESP',
  MsgVote: 'MSG_VOTE',
  MsgVoteResp: 'MSG_VOTE_RESP',
  MsgApp: 'MSG_APP',
  MsgAppResp: 'MSG_APP_RESP',
  MsgHeartbeat: 'MSG_HEARTBEAT',
  MsgHeartbeatResp: 'MSG_HEARTBEAT_RESP',
  MsgSnap: 'MSG_SNAP',
  MsgTimeoutNow: 'MSG_TIMEOUT_NOW',
  MsgReadIndex: 'MSG_READ_INDEX',
  MsgReadIndexResp: 'MSG_READ_INDEX_RESP',
  MsgTransferLeader: 'MSG_TRANSFER_LEADER',
};
const TYPE_OF_WIRE = new Map<WireMessageType, MessageType>(
  (Object.entries(WIRE_TYPE) as Array<[MessageType, WireMessageType]>).map(([t, w]) => [w, t]),
);

/**
 * Messages whose loss Raft repairs on its own at the next heartbeat or append (the leader
 * re-sends from its progress state); dropped first when a queue overflows. Votes, leadership
 * transfer and read requests are rare, and losing them costs an election timeout or a
 * client retry, so they are kept while anything else can go.
 */
export const SHEDDABLE = new Set<MessageType>(['MsgApp', 'MsgAppResp', 'MsgHeartbeat', 'MsgHeartbeatResp']);

/** Rough wire size: fixed fields + ids + payloads. Used for queue and batch bounds only. */
function estimateBytes(m: Message): number {
  let bytes = 64 + m.from.length + m.to.length + (m.context?.length ?? 0);
  for (const e of m.entries) bytes += 24 + e.data.length;
  return bytes;
}

function toWire(m: Message, withSnapshotMeta: boolean): WireMessage {
  const wire: WireMessage = {
    type: WIRE_TYPE[m.type],
    from: m.from,
    to: m.to,
    term: m.term,
    index: m.index,
    logTerm: m.logTerm,
    entries: m.entries.map((e) => ({
      term: e.term,
      index: e.index,
      type: e.type === EntryType.ConfChange ? 'ENTRY_CONF_CHANGE' : 'ENTRY_NORMAL',
      data: e.data,
    })),
    commit: m.commit,
    reject: m.reject,
    rejectHint: m.rejectHint,
  };
  if (withSnapshotMeta && m.snapshot) {
    const { index, term, conf } = m.snapshot.meta;
    wire.snapshot = { index, term, conf: { voters: conf.voters, learners: conf.learners } };
  }
  // Absent (not empty) on the wire is how `null` survives: context is `optional bytes`.
  if (m.context !== null) wire.context = m.context;
  return wire;
}

/** A peer sent something this version cannot take: the stream fails with INVALID_ARGUMENT. */
class WireError extends Error {}

function wireUint(value: number, what: string): number {
  // uint64 beyond 2^53 arrives rounded (longs: Number): refuse rather than act on a wrong index.
  if (!Number.isSafeInteger(value) || value < 0) throw new WireError(`${what} ${value} is not a safe unsigned integer`);
  return value;
}

function entryTypeOf(wire: WireEntryType): EntryType {
  if (wire === 'ENTRY_NORMAL') return EntryType.Normal;
  if (wire === 'ENTRY_CONF_CHANGE') return EntryType.ConfChange;
  throw new WireError(`unknown entry type ${String(wire)}`);
}

function snapshotMetaOf(wire: WireSnapshotMetaOutput): SnapshotMeta {
  return {
    index: wireUint(wire.index, 'snapshot index'),
    term: wireUint(wire.term, 'snapshot term'),
    conf: { voters: [...(wire.conf?.voters ?? [])], learners: [...(wire.conf?.learners ?? [])] },
  };
}

/** Validates and converts; the snapshot (if any) is left null for the caller to fill. */
function fromWire(w: WireMessageOutput, selfId: NodeId): Message {
  const type = TYPE_OF_WIRE.get(w.type);
  if (type === undefined) throw new WireError(`unknown message type ${String(w.type)}`);
  if (w.to !== selfId) throw new WireError(`message for ${JSON.stringify(w.to)} delivered to ${JSON.stringify(selfId)}`);
  if (w.from === '' || w.from === selfId) throw new WireError(`bad sender ${JSON.stringify(w.from)}`);
  // Entry data are views into the received frame (≤ maxBatchBytes), not copies: a frame
  // stays in memory while any of its entries does, which the batch bound keeps small.
  const entries: Entry[] = w.entries.map((e) => ({
    term: wireUint(e.term, 'entry term'),
    index: wireUint(e.index, 'entry index'),
    type: entryTypeOf(e.type),
    data: e.data,
  }));
  return {
    type,
    from: w.from,
    to: w.to,
    term: wireUint(w.term, 'term'),
    index: wireUint(w.index, 'index'),
    logTerm: wireUint(w.logTerm, 'logTerm'),
    entries,
    commit: wireUint(w.commit, 'commit'),
    reject: w.reject,
    rejectHint: wireUint(w.rejectHint, 'rejectHint'),
    snapshot: null,
    context: w.context ?? null,
  };
}

function serviceError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

function statusOf(err: grpc.ServiceError | null): string {
  return err ? `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}` : 'OK';
}

// ---- the sending side: one link per peer ----

interface Queued {
  message: Message;
  bytes: number;
}

/** What a PeerLink needs from its transport. */
interface LinkContext {
  readonly selfId: NodeId;
  readonly limits: GrpcTransportLimits;
  readonly logger: Logger;
  readonly stats: TransportStats;
  readonly credentials: grpc.ChannelCredentials;
  readonly channelOptions: grpc.ChannelOptions;
  pkg(): RaftPackage | null;
  whenLoaded(): Promise<unknown>;
  metadata(): grpc.Metadata;
  reportUnreachable(peer: NodeId): void;
  reportSnapshot(peer: NodeId, ok: boolean): void;
}

class PeerLink {
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private stub: RaftStub | null = null;
  private stream: grpc.ClientWritableStream<MessageBatch> | null = null;
  /** The server accepted the current stream (sent its headers). */
  private connected = false;
  private outstandingWrites = 0;
  private flushHandle: NodeJS.Immediate | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  private backoffMs: number;
  /** Consecutive failed streams: the first is logged loudly, the rest quietly. */
  private failures = 0;
  private waitingForPackage = false;
  private snapshotCall: grpc.ClientWritableStream<SnapshotChunk> | null = null;
  /** A newer MsgSnap waiting for the one in flight; a still newer one replaces it. */
  private pendingSnapshot: Message | null = null;
  private closed = false;

  constructor(
    readonly peer: NodeId,
    readonly address: string,
    private readonly ctx: LinkContext,
  ) {
    this.backoffMs = ctx.limits.reconnectBackoffMinMs;
  }

  enqueue(message: Message): void {
    const bytes = estimateBytes(message);
    if (bytes > MAX_WIRE_MESSAGE_BYTES / 2) {
      // Raft's maxMsgBytes bounds MsgApp far below this; one this large is a config error.
      this.ctx.logger.error({ peer: this.peer, type: message.type, bytes }, 'raft message too large for the transport; dropped');
      this.ctx.stats.messagesDropped++;
      this.ctx.reportUnreachable(this.peer);
      return;
    }
    this.queue.push({ message, bytes });
    this.queuedBytes += bytes;
    const { maxQueuedMessages, maxQueuedBytes } = this.ctx.limits;
    if (this.queue.length > maxQueuedMessages || this.queuedBytes > maxQueuedBytes) this.shed();
    this.scheduleFlush();
  }

  /**
   * The queue overflowed (peer slow or down). Drop down to 3/4 of the bounds, so this runs
   * once per quarter-queue rather than once per message: first the oldest sheddable
   * messages, then, only if the queue is all votes and the like, the oldest of those.
   */
  private shed(): void {
    const { maxQueuedMessages, maxQueuedBytes } = this.ctx.limits;
    const targetMessages = Math.floor((maxQueuedMessages * 3) / 4);
    const targetBytes = Math.floor((maxQueuedBytes * 3) / 4);
    let excessMessages = this.queue.length - targetMessages;
    let excessBytes = this.queuedBytes - targetBytes;
    let dropped = 0;
    const kept: Queued[] = [];
    for (const q of this.queue) {
      if ((excessMessages > 0 || excessBytes > 0) && SHEDDABLE.has(q.message.type)) {
        excessMessages--;
        excessBytes -= q.bytes;
        this.queuedBytes -= q.bytes;
        dropped++;
      } else {
        kept.push(q);
      }
    }
    this.queue = kept;
    while (this.queue.length > maxQueuedMessages || this.queuedBytes > maxQueuedBytes) {
      const q = this.queue.shift();
      if (!q) break;
      this.queuedBytes -= q.bytes;
      dropped++;
    }
    this.ctx.stats.messagesDropped += dropped;
    this.ctx.logger.warn({ peer: this.peer, dropped, queued: this.queue.length, connected: this.connected }, 'raft send queue full; dropped oldest messages');
    this.ctx.reportUnreachable(this.peer);
  }

  private scheduleFlush(): void {
    // setImmediate, not a microtask: everything sent during this turn of the event loop,
    // from any number of callbacks, leaves in one batch.
    if (this.flushHandle === null && !this.closed) this.flushHandle = setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushHandle = null;
    if (this.closed || this.queue.length === 0) return;
    if (!this.stream) {
      if (this.retryTimer) return; // the reconnect timer flushes
      if (!this.openStream()) return;
    }
    const stream = this.stream;
    // Nothing is written before the peer accepts the stream: a connect that fails would
    // lose it all, while the queue keeps it (bounded) for the next attempt.
    if (!stream || !this.connected) return;
    const { maxOutstandingWrites, maxBatchBytes } = this.ctx.limits;
    while (this.queue.length > 0 && this.outstandingWrites < maxOutstandingWrites) {
      let n = 0;
      let bytes = 0;
      while (n < this.queue.length && (n === 0 || bytes + this.queue[n].bytes <= maxBatchBytes)) {
        bytes += this.queue[n].bytes;
        n++;
      }
      const taken = n === this.queue.length ? this.queue : this.queue.slice(0, n);
      this.queue = n === this.queue.length ? [] : this.queue.slice(n);
      this.queuedBytes -= bytes;
      const batch: MessageBatch = { messages: taken.map((q) => toWire(q.message, false)) };
      this.outstandingWrites++;
      this.ctx.stats.batchesSent++;
      this.ctx.stats.messagesSent += taken.length;
      stream.write(batch, () => this.onWritten(stream));
      this.armStallTimer();
    }
  }

  private onWritten(stream: grpc.ClientWritableStream<MessageBatch>): void {
    if (stream !== this.stream) return;
    this.outstandingWrites--;
    this.progressed();
  }

  private progressed(): void {
    if (this.stallTimer) {
      clearTimeout(this.stallTimer);
      this.stallTimer = null;
    }
    this.armStallTimer();
    if (this.queue.length > 0) this.flush();
  }

  /**
   * Armed while we wait on the peer (to accept the stream, or to take a write); progress
   * re-arms it, and a peer that stops making progress lets it fire.
   */
  private armStallTimer(): void {
    if (this.stallTimer || (this.connected && this.outstandingWrites === 0)) return;
    const stream = this.stream;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (stream !== this.stream || !stream) return;
      this.ctx.logger.warn({ peer: this.peer, address: this.address, stallTimeoutMs: this.ctx.limits.stallTimeoutMs }, 'raft stream stalled; cancelling');
      stream.cancel();
    }, this.ctx.limits.stallTimeoutMs);
  }

  private ensureStub(): RaftStub | null {
    if (this.stub) return this.stub;
    const pkg = this.ctx.pkg();
    if (!pkg) {
      if (!this.waitingForPackage) {
        this.waitingForPackage = true;
        this.ctx.whenLoaded().then(
          () => {
            this.waitingForPackage = false;
            this.scheduleFlush();
            if (this.pendingSnapshot && !this.snapshotCall) this.startNextSnapshot();
          },
          () => void (this.waitingForPackage = false),
        );
      }
      return null;
    }
    this.stub = new pkg.Raft(this.address, this.ctx.credentials, this.ctx.channelOptions);
    return this.stub;
  }

  private openStream(): boolean {
    const stub = this.ensureStub();
    if (!stub) return false;
    // No deadline: the stream lives as long as both ends do. Liveness comes from HTTP/2
    // keepalive (a dead host) and the stall timer (a live host that stopped reading).
    let stream: grpc.ClientWritableStream<MessageBatch> | null = null;
    stream = stub.Send(this.ctx.metadata(), {}, (err) => this.onStreamEnd(stream, err));
    this.stream = stream;
    this.connected = false;
    this.outstandingWrites = 0;
    stream.on('metadata', () => {
      if (stream !== this.stream) return;
      this.connected = true;
      this.backoffMs = this.ctx.limits.reconnectBackoffMinMs;
      if (this.failures > 0) this.ctx.logger.info({ peer: this.peer, address: this.address, failures: this.failures }, 'raft stream re-established');
      this.failures = 0;
      this.progressed();
    });
    this.armStallTimer();
    return true;
  }

  private onStreamEnd(stream: grpc.ClientWritableStream<MessageBatch> | null, err: grpc.ServiceError | null): void {
    if (stream !== this.stream || this.closed) return;
    this.stream = null;
    this.connected = false;
    this.outstandingWrites = 0;
    if (this.stallTimer) {
      clearTimeout(this.stallTimer);
      this.stallTimer = null;
    }
    if (err) {
      this.ctx.stats.streamFailures++;
      this.failures++;
      const fields = { peer: this.peer, address: this.address, status: statusOf(err), retryInMs: this.backoffMs };
      if (err.code === grpc.status.UNAUTHENTICATED) this.ctx.logger.error(fields, 'raft peer refused our auth token');
      else if (this.failures === 1) this.ctx.logger.warn(fields, 'raft stream to peer failed');
      else this.ctx.logger.debug(fields, 'raft stream to peer failed again');
      // What was written to the dead stream is lost; the leader must stop assuming it arrived.
      this.ctx.reportUnreachable(this.peer);
    }
    const delayMs = err ? this.backoffMs : this.ctx.limits.reconnectBackoffMinMs;
    if (err) this.backoffMs = Math.min(this.backoffMs * 2, this.ctx.limits.reconnectBackoffMaxMs);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.flush();
    }, delayMs);
  }

  // ---- snapshots ----

  enqueueSnapshot(message: Message): void {
    const size = message.snapshot?.data.length ?? 0;
    if (size > this.ctx.limits.maxSnapshotBytes) {
      this.ctx.logger.error({ peer: this.peer, bytes: size, maxSnapshotBytes: this.ctx.limits.maxSnapshotBytes }, 'snapshot larger than the transport limit; not sent');
      this.ctx.stats.snapshotsFailed++;
      this.ctx.reportSnapshot(this.peer, false);
      return;
    }
    this.pendingSnapshot = message;
    if (!this.snapshotCall) this.startNextSnapshot();
  }

  private startNextSnapshot(): void {
    const message = this.pendingSnapshot;
    if (!message || this.closed) return;
    const stub = this.ensureStub();
    if (!stub) return; // resumed when the package is loaded
    this.pendingSnapshot = null;
    const snapshot = message.snapshot;
    if (!snapshot) throw new Error('raft transport: assertion failed: MsgSnap without a snapshot');
    const { data } = snapshot;
    const { snapshotBaseTimeoutMs, minSnapshotBytesPerSec } = this.ctx.limits;
    const deadline = Date.now() + snapshotBaseTimeoutMs + Math.ceil((data.length / minSnapshotBytesPerSec) * 1000);
    let settled = false;
    let call: grpc.ClientWritableStream<SnapshotChunk> | null = null;
    const startedAt = Date.now();
    call = stub.InstallSnapshot(this.ctx.metadata(), { deadline }, (err) => {
      settled = true;
      if (this.snapshotCall === call) this.snapshotCall = null;
      // Reported even when this link was closed by setPeers: the leader is waiting on it.
      // (Once the whole transport is closed, reports are muted there.)
      const ok = err === null;
      if (ok) this.ctx.stats.snapshotsSent++;
      else this.ctx.stats.snapshotsFailed++;
      const fields = { peer: this.peer, index: snapshot.meta.index, bytes: data.length, ms: Date.now() - startedAt, status: statusOf(err) };
      if (ok) this.ctx.logger.info(fields, 'snapshot sent');
      else this.ctx.logger.warn(fields, 'snapshot transfer failed');
      this.ctx.reportSnapshot(this.peer, ok);
      this.startNextSnapshot();
    });
    this.snapshotCall = call;
    const stream = call;
    // 'drain' never comes once the call has ended; its 'status' then ends the wait.
    const drainOrEnd = (): Promise<void> =>
      new Promise<void>((resolve) => {
        const done = (): void => {
          stream.off('drain', done);
          stream.off('status', done);
          resolve();
        };
        stream.on('drain', done);
        stream.on('status', done);
      });
    const sendAll = async (): Promise<void> => {
      const header: SnapshotChunk = { header: { message: toWire(message, true), totalBytes: data.length } };
      if (!stream.write(header)) await drainOrEnd();
      for (let at = 0; at < data.length; at += MAX_SNAPSHOT_PIECE_BYTES) {
        if (settled) return;
        if (!stream.write({ data: data.subarray(at, at + MAX_SNAPSHOT_PIECE_BYTES) })) await drainOrEnd();
      }
      if (!settled) stream.end();
    };
    // A failure while writing also ends the call with a status, which the callback reports.
    sendAll().catch(() => stream.cancel());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.flushHandle) clearImmediate(this.flushHandle);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.flushHandle = null;
    this.retryTimer = null;
    this.stallTimer = null;
    this.ctx.stats.messagesDropped += this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
    // A half-close lets the peer finish what it has; the channel close below waits for it.
    this.stream?.end();
    this.stream = null;
    this.snapshotCall?.cancel();
    this.snapshotCall = null;
    this.pendingSnapshot = null;
    this.stub?.close();
    this.stub = null;
  }
}

// ---- the transport ----

/** An inbound call in progress, so close() can end it. */
type InboundCall = { fail: (err: grpc.ServiceError) => void };

export class GrpcTransport {
  private readonly selfId: NodeId;
  private readonly logger: Logger;
  private readonly limits: GrpcTransportLimits;
  private readonly onMessageCb: (m: Message) => void;
  private readonly authHeader: Buffer | null;
  private readonly links = new Map<NodeId, PeerLink>();
  private peers: Map<NodeId, string>;
  private readonly unreachableListeners: Array<(peer: NodeId) => void> = [];
  private readonly snapshotListeners: Array<(peer: NodeId, ok: boolean) => void> = [];
  private readonly servers: grpc.Server[] = [];
  private readonly inbound = new Set<InboundCall>();
  private inflightSnapshotBytes = 0;
  private pkg: RaftPackage | null = null;
  private readonly pkgPromise: Promise<RaftPackage>;
  private readonly ctx: LinkContext;
  private readonly counters: TransportStats = {
    batchesSent: 0,
    messagesSent: 0,
    batchesReceived: 0,
    messagesReceived: 0,
    messagesDropped: 0,
    streamFailures: 0,
    snapshotsSent: 0,
    snapshotsFailed: 0,
    snapshotsReceived: 0,
    authRejected: 0,
    invalidRejected: 0,
    appFramesSent: 0,
    appFramesReceived: 0,
  };
  private closed = false;

  constructor(opts: GrpcTransportOptions) {
    this.selfId = opts.selfId;
    this.peers = new Map(opts.peers);
    this.onMessageCb = opts.onMessage;
    this.logger = (opts.logger ?? pino({ level: 'silent' })).child({ module: 'raft-transport', self: opts.selfId });
    this.limits = { ...DEFAULT_TRANSPORT_LIMITS, ...opts.limits };
    this.authHeader = opts.authToken === undefined ? null : Buffer.from(`Bearer ${opts.authToken}`);
    this.pkgPromise = loadRaftPackage();
    this.pkgPromise.then(
      (pkg) => void (this.pkg = pkg),
      (err: unknown) => this.logger.error({ err }, 'cannot load raft.proto'),
    );
    const limits = this.limits;
    const channelOptions: grpc.ChannelOptions = {
      'grpc.max_send_message_length': MAX_WIRE_MESSAGE_BYTES,
      'grpc.max_receive_message_length': MAX_WIRE_MESSAGE_BYTES,
      'grpc.keepalive_time_ms': limits.keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': limits.keepaliveTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
      // grpc-js's own reconnect backoff (up to 120 s by default) would keep failing our
      // calls fast long after the peer is back; hold it to the same bounds as ours.
      'grpc.initial_reconnect_backoff_ms': limits.reconnectBackoffMinMs,
      'grpc.max_reconnect_backoff_ms': limits.reconnectBackoffMaxMs,
    };
    const authValue = this.authHeader?.toString();
    this.ctx = {
      selfId: this.selfId,
      limits,
      logger: this.logger,
      stats: this.counters,
      credentials: opts.credentials ?? grpc.credentials.createInsecure(),
      channelOptions,
      pkg: () => this.pkg,
      whenLoaded: () => this.pkgPromise,
      metadata: () => {
        const md = new grpc.Metadata();
        if (authValue !== undefined) md.set('authorization', authValue);
        return md;
      },
      reportUnreachable: (peer) => this.emitUnreachable(peer),
      reportSnapshot: (peer, ok) => this.emitSnapshotDone(peer, ok),
    };
  }

  /** Adds dfs.raft.Raft to the daemon's server (create it with RAFT_SERVER_OPTIONS). */
  async register(server: grpc.Server): Promise<void> {
    const pkg = await this.pkgPromise;
    this.pkg = pkg;
    const handlers: RaftHandlers = {
      Send: (call, callback) => this.handleSend(call, callback),
      InstallSnapshot: (call, callback) => this.handleInstallSnapshot(call, callback),
    };
    server.addService(pkg.Raft.service, handlers);
    this.servers.push(server);
  }

  /**
   * Queues `msgs` for their peers and returns at once; never throws for an unreachable
   * peer (loss is reported through onUnreachable / onSnapshotDone). Call it only after the
   * Ready's entries and hard state are durable.
   */
  send(msgs: Message[]): void {
    for (const m of msgs) {
      if (m.to === this.selfId) throw new Error(`raft transport: assertion failed: message ${m.type} addressed to self`);
      if (m.type === 'MsgSnap' && !m.snapshot) throw new Error('raft transport: assertion failed: MsgSnap without a snapshot');
      if (this.closed) {
        this.counters.messagesDropped++;
        continue;
      }
      const link = this.linkFor(m.to);
      if (!link) {
        this.counters.messagesDropped++;
        this.logger.warn({ peer: m.to, type: m.type }, 'raft message for a peer with no address; dropped');
        if (m.type === 'MsgSnap') this.emitSnapshotDone(m.to, false);
        else this.emitUnreachable(m.to);
        continue;
      }
      if (m.type === 'MsgSnap') link.enqueueSnapshot(m);
      else link.enqueue(m);
    }
  }

  /** Membership changed: links to removed peers close, changed addresses reconnect. */
  setPeers(peers: Map<NodeId, string>): void {
    this.peers = new Map(peers);
    this.peers.delete(this.selfId);
    for (const [id, link] of this.links) {
      if (this.peers.get(id) !== link.address) {
        link.close();
        this.links.delete(id);
      }
    }
  }

  /** The driver calls node.reportUnreachable(peer): messages to it may have been lost. */
  onUnreachable(cb: (peer: NodeId) => void): void {
    this.unreachableListeners.push(cb);
  }

  /** The driver calls node.reportSnapshot(peer, ok) when a MsgSnap transfer ends. */
  onSnapshotDone(cb: (peer: NodeId, ok: boolean) => void): void {
    this.snapshotListeners.push(cb);
  }

  stats(): TransportStats {
    return { ...this.counters };
  }

  /** Stops sending and receiving. The daemon's server itself stays up (it is not ours). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links.values()) link.close();
    this.links.clear();
    for (const call of [...this.inbound]) call.fail(serviceError(grpc.status.UNAVAILABLE, 'raft transport closed'));
    this.inbound.clear();
    if (this.pkg) for (const server of this.servers) server.removeService(this.pkg.Raft.service);
    this.servers.length = 0;
  }

  private linkFor(peer: NodeId): PeerLink | null {
    const existing = this.links.get(peer);
    if (existing) return existing;
    const address = this.peers.get(peer);
    if (address === undefined) return null;
    const link = new PeerLink(peer, address, this.ctx);
    this.links.set(peer, link);
    return link;
  }

  // Listeners run on a later microtask: the driver may be inside its Ready loop when it
  // calls send(), and reportUnreachable re-entering it there would be a surprise.
  private emitUnreachable(peer: NodeId): void {
    if (this.closed) return;
    queueMicrotask(() => {
      for (const cb of this.unreachableListeners) cb(peer);
    });
  }

  private emitSnapshotDone(peer: NodeId, ok: boolean): void {
    if (this.closed) return;
    queueMicrotask(() => {
      for (const cb of this.snapshotListeners) cb(peer, ok);
    });
  }

  // ---- the receiving side ----

  private authorized(metadata: grpc.Metadata): boolean {
    if (!this.authHeader) return true;
    const [value] = metadata.get('authorization');
    if (typeof value !== 'string') return false;
    const got = Buffer.from(value);
    return got.length === this.authHeader.length && timingSafeEqual(got, this.authHeader);
  }

  private deliver(m: Message): void {
    try {
      this.onMessageCb(m);
    } catch (err) {
      // The driver broke: a programmer error. Crash loudly, outside grpc-js's event
      // handlers (which would swallow or misattribute it).
      process.nextTick(() => {
        throw err;
      });
    }
  }

  /** Registers an inbound call; returns its single-shot completion. */
  private track<T>(callback: grpc.sendUnaryData<T>, reply: T, onDone: () => void): { finish: (err: grpc.ServiceError | null) => void; isDone: () => boolean } {
    let done = false;
    const entry: InboundCall = { fail: (err) => finish(err) };
    const finish = (err: grpc.ServiceError | null): void => {
      if (done) return;
      done = true;
      this.inbound.delete(entry);
      onDone();
      if (err) callback(err);
      else callback(null, reply);
    };
    this.inbound.add(entry);
    return { finish, isDone: () => done };
  }

  private refuseUnauthenticated(peerAddress: string, method: string): grpc.ServiceError {
    this.counters.authRejected++;
    this.logger.warn({ from: peerAddress, method }, 'raft call with a missing or wrong auth token refused');
    return serviceError(grpc.status.UNAUTHENTICATED, 'missing or wrong cluster auth token');
  }

  private handleSend(
    call: grpc.ServerReadableStream<MessageBatch__Output, SendAck>,
    callback: grpc.sendUnaryData<SendAck>,
  ): void {
    if (this.closed) return callback(serviceError(grpc.status.UNAVAILABLE, 'raft transport closed'));
    if (!this.authorized(call.metadata)) return callback(this.refuseUnauthenticated(call.getPeer(), 'Send'));
    const { finish, isDone } = this.track(callback, {}, () => undefined);
    // Response headers now, not with the reply at the end: they are the sender's signal
    // that the stream was accepted (its backoff resets on them).
    call.sendMetadata(new grpc.Metadata());
    call.on('data', (batch: MessageBatch__Output) => {
      if (isDone()) return;
      this.counters.batchesReceived++;
      for (const wire of batch.messages) {
        let m: Message;
        try {
          if (wire.type === 'MSG_SNAP') throw new WireError('MsgSnap on the Send stream (it travels by InstallSnapshot)');
          m = fromWire(wire, this.selfId);
        } catch (err) {
          if (!(err instanceof WireError)) throw err;
          this.counters.invalidRejected++;
          this.logger.warn({ from: call.getPeer(), err: err.message }, 'malformed raft message; stream refused');
          return finish(serviceError(grpc.status.INVALID_ARGUMENT, err.message));
        }
        this.counters.messagesReceived++;
        this.deliver(m);
        if (isDone()) return; // closed by the handler
      }
    });
    call.on('end', () => finish(null));
    call.on('error', () => finish(serviceError(grpc.status.CANCELLED, 'stream error')));
    call.on('cancelled', () => finish(serviceError(grpc.status.CANCELLED, 'cancelled by the sender')));
  }

  private handleInstallSnapshot(
    call: grpc.ServerReadableStream<SnapshotChunk__Output, SnapshotAck>,
    callback: grpc.sendUnaryData<SnapshotAck>,
  ): void {
    if (this.closed) return callback(serviceError(grpc.status.UNAVAILABLE, 'raft transport closed'));
    if (!this.authorized(call.metadata)) return callback(this.refuseUnauthenticated(call.getPeer(), 'InstallSnapshot'));
    let message: Message | null = null;
    let buffer: Buffer | null = null;
    let reservedBytes = 0;
    let receivedBytes = 0;
    const { finish, isDone } = this.track(callback, {}, () => {
      this.inflightSnapshotBytes -= reservedBytes;
      reservedBytes = 0;
      buffer = null;
    });
    const invalid = (reason: string): void => {
      this.counters.invalidRejected++;
      this.logger.warn({ from: call.getPeer(), reason }, 'malformed snapshot stream refused');
      finish(serviceError(grpc.status.INVALID_ARGUMENT, reason));
    };
    call.on('data', (chunk: SnapshotChunk__Output) => {
      if (isDone()) return;
      if (chunk.body === 'header' && chunk.header) {
        if (message) return invalid('second snapshot header');
        const { totalBytes } = chunk.header;
        const wire = chunk.header.message;
        if (!wire || wire.type !== 'MSG_SNAP' || !wire.snapshot) return invalid('header without a MsgSnap and its snapshot metadata');
        if (!Number.isSafeInteger(totalBytes) || totalBytes > this.limits.maxSnapshotBytes) {
          return invalid(`snapshot of ${totalBytes} bytes exceeds the limit of ${this.limits.maxSnapshotBytes}`);
        }
        if (this.inflightSnapshotBytes + totalBytes > this.limits.maxInflightSnapshotBytes) {
          return finish(serviceError(grpc.status.RESOURCE_EXHAUSTED, `snapshot buffers full (${this.inflightSnapshotBytes} bytes in flight)`));
        }
        try {
          message = fromWire(wire, this.selfId);
          message.snapshot = { meta: snapshotMetaOf(wire.snapshot), data: Buffer.alloc(0) };
        } catch (err) {
          if (!(err instanceof WireError)) throw err;
          return invalid(err.message);
        }
        this.inflightSnapshotBytes += totalBytes;
        reservedBytes = totalBytes;
        buffer = Buffer.allocUnsafe(totalBytes);
      } else if (chunk.body === 'data') {
        const piece = chunk.data ?? Buffer.alloc(0);
        if (!buffer) return invalid('snapshot data before the header');
        if (piece.length > MAX_SNAPSHOT_PIECE_BYTES) return invalid(`snapshot piece of ${piece.length} bytes exceeds ${MAX_SNAPSHOT_PIECE_BYTES}`);
        if (receivedBytes + piece.length > buffer.length) return invalid(`more snapshot data than the announced ${buffer.length} bytes`);
        piece.copy(buffer, receivedBytes);
        receivedBytes += piece.length;
      } else {
        invalid('empty snapshot chunk');
      }
    });
    call.on('end', () => {
      if (isDone()) return;
      if (!message?.snapshot || !buffer) return invalid('snapshot stream ended without a header');
      if (receivedBytes !== buffer.length) return invalid(`received ${receivedBytes} of ${buffer.length} announced snapshot bytes`);
      message.snapshot.data = buffer;
      const complete = message;
      this.counters.snapshotsReceived++;
      this.logger.info({ from: complete.from, index: complete.snapshot?.meta.index, bytes: receivedBytes }, 'snapshot received');
      // The reply means "delivered to the node", like the Send stream; the node answers
      // with MsgAppResp once it has installed it.
      finish(null);
      this.deliver(complete);
    });
    call.on('error', () => finish(serviceError(grpc.status.CANCELLED, 'stream error')));
    call.on('cancelled', () => finish(serviceError(grpc.status.CANCELLED, 'cancelled by the sender')));
  }
}
