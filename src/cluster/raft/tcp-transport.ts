// The Raft transport over a framed protocol on node:net (wire-codec.ts): the same contract
// as GrpcTransport (transport.ts), without HTTP/2 in the way. Every (self -> peer)
// direction keeps one TCP connection (no Nagle) and writes, per event-loop turn, one
// socket write of everything queued for that peer; snapshots travel on a connection of
// their own per transfer, in pieces, so they never hold up heartbeats and appends.
//
// Raft tolerates lost messages, so this transport may lose some (a broken connection, a
// full queue) but never reorders or duplicates them within a direction, and it tells the
// driver when it may have lost some (onUnreachable) so the leader falls back to probing.
//
// Inbound connections come from the daemon's listener: PortMux (port-mux.ts) hands over
// those that start with the wire PREAMBLE, on the same host:port as gRPC. Each starts with
// a Hello (node id, purpose, cluster token) that the `authenticator` accepts or refuses;
// that and `dial` are the seam where mutual TLS plugs in (see RaftConnectionSecurity).
import { timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';
// SHEDDABLE: the queue-overflow policy is GrpcTransport's, shared so the two cannot drift.
import { DEFAULT_TRANSPORT_LIMITS, MAX_SNAPSHOT_PIECE_BYTES, MAX_WIRE_MESSAGE_BYTES, SHEDDABLE, type GrpcTransportLimits, type TransportStats } from './transport.js';
import type { Message, NodeId } from './types.js';
import {
  ConnectionPurpose,
  encodeBatchFrame,
  encodedMessageBytes,
  encodeError,
  ACCEPT_FEATURE_APP,
  encodeFrame,
  encodeHello,
  encodeSnapshotHeader,
  ERROR_CODE_NAMES,
  ErrorCode,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameType,
  decodeBatch,
  decodeError,
  decodeHello,
  decodeSnapshotHeader,
  PREAMBLE,
  putFrameHeader,
  WIRE_VERSION,
  WireError,
  type Frame,
  type Hello,
} from './wire-codec.js';

export interface TcpTransportLimits extends GrpcTransportLimits {
  /** Largest frame payload either side accepts; batches and pieces stay well below it. */
  maxFrameBytes: number;
  /** An inbound connection must present its hello within this. */
  helloTimeoutMs: number;
  /**
   * Inbound connections at once (each peer keeps one, plus one per snapshot in flight);
   * beyond it new ones are refused with RESOURCE_EXHAUSTED.
   */
  maxInboundConnections: number;
}

export const DEFAULT_TCP_TRANSPORT_LIMITS: TcpTransportLimits = {
  ...DEFAULT_TRANSPORT_LIMITS,
  maxFrameBytes: MAX_WIRE_MESSAGE_BYTES,
  helloTimeoutMs: 5_000,
  maxInboundConnections: 1024,
};

/** Hello frames are small: node id + token. */
const MAX_HELLO_FRAME_BYTES = 64 * 1024;

/**
 * Who may talk Raft to this node, and how we prove who we are. Today: the cluster token
 * (tokenAuthenticator). The security issue's mutual TLS replaces both halves: `dial` opens
 * a node:tls connection with the node's certificate, and `authenticate` reads the role and
 * node id from `(socket as tls.TLSSocket).getPeerCertificate()` and checks hello.nodeId
 * against it (the PortMux then terminates TLS and routes by ALPN instead of the preamble).
 */
export interface RaftConnectionSecurity {
  /** Credentials our hellos carry (empty: none). */
  helloToken(): Buffer;
  /** An inbound hello: null to accept, or the reason for refusing it (logged, sent back). */
  authenticate(hello: Hello, socket: Duplex): string | null;
  /** Opens the connection to a peer; it must emit 'connect' (or fail with 'error'/'close'). */
  dial(host: string, port: number): net.Socket;
}

/** Plain TCP, and the shared cluster token compared in constant time (as GrpcTransport). */
export function tokenSecurity(authToken?: string): RaftConnectionSecurity {
  const expected = authToken === undefined ? null : Buffer.from(authToken, 'utf8');
  return {
    helloToken: () => expected ?? Buffer.alloc(0),
    authenticate: (hello) => {
      if (!expected) return null;
      const ok = hello.token.length === expected.length && timingSafeEqual(hello.token, expected);
      return ok ? null : 'missing or wrong cluster auth token';
    },
    dial: (host, port) => net.connect({ host, port }),
  };
}

export interface TcpTransportOptions {
  selfId: NodeId;
  /** Every other member: id -> `host:port` of its daemon (the same address gRPC uses). */
  peers: Map<NodeId, string>;
  /** Called with each message for this node, in arrival order per sender. */
  onMessage: (m: Message) => void;
  /** Called with each App frame's payload for this node (a copy), in arrival order per sender. */
  onApp?: (from: NodeId, payload: Buffer) => void;
  logger?: Logger;
  /** Cluster secret; shorthand for `security: tokenSecurity(authToken)`. */
  authToken?: string;
  /** Overrides authToken: the seam for mutual TLS. */
  security?: RaftConnectionSecurity;
  limits?: Partial<TcpTransportLimits>;
}

function assert(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(`raft tcp transport: assertion failed: ${what}`);
}

/** `host:port` or `[v6]:port`; port 0 only for a listener (`allowAnyPort`). */
export function splitAddress(address: string, opts: { allowAnyPort?: boolean } = {}): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  const lowest = opts.allowAnyPort ? 0 : 1;
  if (!m || !Number.isInteger(port) || port < lowest || port > 65535) throw new Error(`raft: bad address ${JSON.stringify(address)} (expected host:port)`);
  return { host: m[1], port };
}

// ---- the sending side: one link per peer ----

/** A Raft message, or (message null) an App frame already encoded. */
interface Queued {
  message: Message | null;
  app: Buffer | null;
  /** Exact encoded size. */
  bytes: number;
}

interface LinkContext {
  readonly selfId: NodeId;
  readonly limits: TcpTransportLimits;
  readonly logger: Logger;
  readonly stats: TransportStats;
  readonly security: RaftConnectionSecurity;
  reportUnreachable(peer: NodeId): void;
  reportSnapshot(peer: NodeId, ok: boolean): void;
}

/**
 * An outbound connection: preamble + hello, then frames once the peer accepted. Reads the
 * peer's control frames (Accept, Pong, SnapshotDone, Error); ends exactly once.
 */
class Outbound {
  readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder(MAX_HELLO_FRAME_BYTES);
  private ended = false;
  /** Why it failed, as the peer said or as we saw it. */
  reason = 'connection closed';
  refusedCode: ErrorCode | null = null;

  constructor(
    address: { host: string; port: number },
    ctx: LinkContext,
    purpose: ConnectionPurpose,
    private readonly onFrame: (f: Frame) => void,
    private readonly onEnd: (failed: boolean) => void,
  ) {
    const socket = ctx.security.dial(address.host, address.port);
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, ctx.limits.keepaliveTimeMs);
    // Written before 'connect': the socket buffers it, and one round trip is saved.
    socket.write(Buffer.concat([PREAMBLE, encodeHello({ protocolVersion: WIRE_VERSION, nodeId: ctx.selfId, purpose, token: ctx.security.helloToken() })]));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.refusedCode === null) this.reason = err.code ?? err.message;
    });
    socket.on('close', () => this.finish(true));
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    this.decoder.push(chunk);
    try {
      for (let f = this.decoder.next(); f && !this.ended; f = this.decoder.next()) {
        if (f.type === FrameType.Error) {
          const { code, reason } = decodeError(f.payload);
          this.refusedCode = code;
          this.reason = `${ERROR_CODE_NAMES[code] ?? code}: ${reason}`;
          this.destroy(this.reason);
          return;
        }
        this.onFrame(f);
      }
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      this.destroy(`malformed frame from the peer: ${err.message}`);
    }
  }

  write(buf: Buffer, cb?: () => void): boolean {
    return this.socket.write(buf, cb);
  }

  destroy(reason: string): void {
    if (this.ended) return;
    if (this.refusedCode === null) this.reason = reason;
    this.socket.destroy();
  }

  /** We are done with it (success): no failure is reported. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.socket.destroy();
    this.onEnd(false);
  }

  private finish(failed: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(failed);
  }
}

class PeerLink {
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private conn: Outbound | null = null;
  /** The peer accepted the current connection's hello. */
  private accepted = false;
  /** Its Accept said it takes App frames (kept across reconnects: the last one seen). */
  peerTakesApp = false;
  private outstandingWrites = 0;
  private flushHandle: NodeJS.Immediate | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private pongTimer: NodeJS.Timeout | null = null;
  private backoffMs: number;
  /** Consecutive failed connections: the first is logged loudly, the rest quietly. */
  private failures = 0;
  private snapshotConn: Outbound | null = null;
  /** A newer MsgSnap waiting for the one in flight; a still newer one replaces it. */
  private pendingSnapshot: Message | null = null;
  private closed = false;
  private readonly target: { host: string; port: number };

  constructor(
    readonly peer: NodeId,
    readonly address: string,
    private readonly ctx: LinkContext,
  ) {
    this.backoffMs = ctx.limits.reconnectBackoffMinMs;
    this.target = splitAddress(address);
  }

  enqueue(message: Message): void {
    const bytes = encodedMessageBytes(message);
    if (bytes + 4 > this.ctx.limits.maxFrameBytes) {
      // Raft's maxMsgBytes bounds MsgApp far below this; one this large is a config error.
      this.ctx.logger.error({ peer: this.peer, type: message.type, bytes }, 'raft message too large for the transport; dropped');
      this.ctx.stats.messagesDropped++;
      this.ctx.reportUnreachable(this.peer);
      return;
    }
    this.queue.push({ message, app: null, bytes });
    this.queuedBytes += bytes;
    const { maxQueuedMessages, maxQueuedBytes } = this.ctx.limits;
    if (this.queue.length > maxQueuedMessages || this.queuedBytes > maxQueuedBytes) this.shed();
    this.scheduleFlush();
  }

  /** An App frame, sent in order with the messages; shed first when the queue overflows (its sender times out). */
  enqueueApp(frame: Buffer): void {
    this.queue.push({ message: null, app: frame, bytes: frame.length });
    this.queuedBytes += frame.length;
    const { maxQueuedMessages, maxQueuedBytes } = this.ctx.limits;
    if (this.queue.length > maxQueuedMessages || this.queuedBytes > maxQueuedBytes) this.shed();
    this.flushNow();
  }

  /**
   * The queue overflowed (peer slow or down). Drop down to 3/4 of the bounds: first the
   * oldest sheddable messages, then, only if the queue is all votes and the like, the
   * oldest of those.
   */
  private shed(): void {
    const { maxQueuedMessages, maxQueuedBytes } = this.ctx.limits;
    let excessMessages = this.queue.length - Math.floor((maxQueuedMessages * 3) / 4);
    let excessBytes = this.queuedBytes - Math.floor((maxQueuedBytes * 3) / 4);
    let dropped = 0;
    const kept: Queued[] = [];
    for (const q of this.queue) {
      if ((excessMessages > 0 || excessBytes > 0) && (q.message === null || SHEDDABLE.has(q.message.type))) {
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
    this.ctx.logger.warn({ peer: this.peer, dropped, queued: this.queue.length, connected: this.accepted }, 'raft send queue full; dropped oldest messages');
    this.ctx.reportUnreachable(this.peer);
  }

  private scheduleFlush(): void {
    // setImmediate, not a microtask: everything sent during this turn of the event loop,
    // from any number of callbacks, leaves in one write.
    if (this.flushHandle === null && !this.closed) this.flushHandle = setImmediate(() => this.flush());
  }

  /**
   * Write what is queued now instead of at the end of the turn (a message someone waits
   * for). Whatever is queued goes, scheduled or not; a full write window still holds it.
   */
  flushNow(): void {
    if (this.queue.length === 0 || this.closed) return;
    if (this.flushHandle !== null) clearImmediate(this.flushHandle);
    this.flush();
  }

  private flush(): void {
    this.flushHandle = null;
    if (this.closed || this.queue.length === 0) return;
    if (!this.conn) {
      if (this.retryTimer) return; // the reconnect timer flushes
      this.connect();
      return;
    }
    // Nothing is written before the peer accepts: a refused or failed connection would
    // lose it all, while the queue keeps it (bounded) for the next attempt.
    if (!this.accepted) return;
    const conn = this.conn;
    const { maxOutstandingWrites, maxBatchBytes } = this.ctx.limits;
    // Frames beyond one maxBatchBytes batch still go in the same socket write.
    conn.socket.cork();
    while (this.queue.length > 0 && this.outstandingWrites < maxOutstandingWrites) {
      const app = this.queue[0].app;
      if (app !== null) {
        this.queue.shift();
        this.queuedBytes -= app.length;
        this.outstandingWrites++;
        this.ctx.stats.appFramesSent++;
        conn.write(app, () => this.onWritten(conn));
        continue;
      }
      let n = 0;
      let bytes = 0;
      while (n < this.queue.length && this.queue[n].app === null && (n === 0 || bytes + this.queue[n].bytes <= maxBatchBytes)) {
        bytes += this.queue[n].bytes;
        n++;
      }
      const taken = n === this.queue.length ? this.queue : this.queue.slice(0, n);
      this.queue = n === this.queue.length ? [] : this.queue.slice(n);
      this.queuedBytes -= bytes;
      const frame = encodeBatchFrame(
        taken.map((q) => q.message as Message),
        bytes,
      );
      this.outstandingWrites++;
      this.ctx.stats.batchesSent++;
      this.ctx.stats.messagesSent += taken.length;
      conn.write(frame, () => this.onWritten(conn));
    }
    conn.socket.uncork();
    this.armStallTimer();
  }

  private onWritten(conn: Outbound): void {
    if (conn !== this.conn) return;
    this.outstandingWrites--;
    this.progressed();
  }

  private progressed(): void {
    if (this.stallTimer) {
      clearTimeout(this.stallTimer);
      this.stallTimer = null;
    }
    this.armStallTimer();
    if (this.queue.length > 0) this.scheduleFlush();
  }

  /**
   * Armed while we wait on the peer (to accept, or to take a write off the socket's
   * buffer); progress re-arms it, and a peer that stops making progress lets it fire.
   */
  private armStallTimer(): void {
    if (this.stallTimer || !this.conn || (this.accepted && this.outstandingWrites === 0)) return;
    const conn = this.conn;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (conn !== this.conn) return;
      this.ctx.logger.warn({ peer: this.peer, address: this.address, stallTimeoutMs: this.ctx.limits.stallTimeoutMs }, 'raft connection stalled; closing');
      conn.destroy(`stalled for ${this.ctx.limits.stallTimeoutMs} ms`);
    }, this.ctx.limits.stallTimeoutMs);
  }

  private connect(): void {
    this.accepted = false;
    this.outstandingWrites = 0;
    let conn: Outbound | null = null;
    conn = new Outbound(
      this.target,
      this.ctx,
      ConnectionPurpose.Messages,
      (f) => this.onControlFrame(conn, f),
      (failed) => this.onConnectionEnd(conn, failed),
    );
    this.conn = conn;
    this.armStallTimer();
  }

  private onControlFrame(conn: Outbound | null, f: Frame): void {
    if (!conn || conn !== this.conn) return;
    if (f.type === FrameType.Accept && !this.accepted) {
      this.accepted = true;
      this.peerTakesApp = f.payload.length > 0 && (f.payload[0] & ACCEPT_FEATURE_APP) !== 0;
      this.backoffMs = this.ctx.limits.reconnectBackoffMinMs;
      if (this.failures > 0) this.ctx.logger.info({ peer: this.peer, address: this.address, failures: this.failures }, 'raft connection re-established');
      this.failures = 0;
      this.startKeepalive(conn);
      this.progressed();
    } else if (f.type === FrameType.Pong) {
      if (this.pongTimer) clearTimeout(this.pongTimer);
      this.pongTimer = null;
    } else {
      conn.destroy(`unexpected frame type ${f.type} from the receiver`);
    }
  }

  /** Pings the idle-looking connection: a receiver silent for time + timeout is dead. */
  private startKeepalive(conn: Outbound): void {
    const { keepaliveTimeMs, keepaliveTimeoutMs } = this.ctx.limits;
    this.keepaliveTimer = setInterval(() => {
      if (conn !== this.conn || this.pongTimer) return;
      conn.write(encodeFrame(FrameType.Ping));
      this.pongTimer = setTimeout(() => {
        this.pongTimer = null;
        if (conn === this.conn) conn.destroy(`no pong within ${keepaliveTimeoutMs} ms`);
      }, keepaliveTimeoutMs);
    }, keepaliveTimeMs);
    this.keepaliveTimer.unref();
  }

  private clearConnectionTimers(): void {
    for (const t of [this.stallTimer, this.pongTimer]) if (t) clearTimeout(t);
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.stallTimer = null;
    this.pongTimer = null;
    this.keepaliveTimer = null;
  }

  private onConnectionEnd(conn: Outbound | null, _failed: boolean): void {
    if (!conn || conn !== this.conn || this.closed) return;
    this.conn = null;
    this.accepted = false;
    this.outstandingWrites = 0;
    this.clearConnectionTimers();
    // A messages connection never ends on purpose while the link lives: every end is a failure.
    this.ctx.stats.streamFailures++;
    this.failures++;
    const fields = { peer: this.peer, address: this.address, reason: conn.reason, retryInMs: this.backoffMs };
    if (conn.refusedCode === ErrorCode.Unauthenticated) this.ctx.logger.error(fields, 'raft peer refused our credentials');
    else if (this.failures === 1) this.ctx.logger.warn(fields, 'raft connection to peer failed');
    else this.ctx.logger.debug(fields, 'raft connection to peer failed again');
    // What was written to the dead connection may be lost; the leader must stop assuming it arrived.
    this.ctx.reportUnreachable(this.peer);
    const delayMs = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.ctx.limits.reconnectBackoffMaxMs);
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
    if (!this.snapshotConn) this.startNextSnapshot();
  }

  private startNextSnapshot(): void {
    const message = this.pendingSnapshot;
    if (!message || this.closed) return;
    this.pendingSnapshot = null;
    const snapshot = message.snapshot;
    assert(snapshot !== null, 'MsgSnap without a snapshot');
    const { data } = snapshot;
    const { snapshotBaseTimeoutMs, minSnapshotBytesPerSec } = this.ctx.limits;
    const timeoutMs = snapshotBaseTimeoutMs + Math.ceil((data.length / minSnapshotBytesPerSec) * 1000);
    const startedAt = Date.now();
    let conn: Outbound | null = null;
    let done = false;
    let sending = false;
    const deadline = setTimeout(() => conn?.destroy(`snapshot not done within ${timeoutMs} ms`), timeoutMs);
    const report = (ok: boolean): void => {
      clearTimeout(deadline);
      if (this.snapshotConn === conn) this.snapshotConn = null;
      // Reported even when this link was closed by setPeers: the leader is waiting on it.
      // (Once the whole transport is closed, reports are muted there.)
      if (ok) this.ctx.stats.snapshotsSent++;
      else this.ctx.stats.snapshotsFailed++;
      const fields = { peer: this.peer, index: snapshot.meta.index, bytes: data.length, ms: Date.now() - startedAt, reason: ok ? 'OK' : conn?.reason };
      if (ok) this.ctx.logger.info(fields, 'snapshot sent');
      else this.ctx.logger.warn(fields, 'snapshot transfer failed');
      this.ctx.reportSnapshot(this.peer, ok);
      this.startNextSnapshot();
    };
    const sendAll = async (c: Outbound): Promise<void> => {
      const drained = (): Promise<void> =>
        new Promise<void>((resolve) => {
          const go = (): void => {
            c.socket.off('drain', go);
            c.socket.off('close', go);
            resolve();
          };
          c.socket.on('drain', go);
          c.socket.on('close', go);
        });
      if (!c.write(encodeSnapshotHeader(message))) await drained();
      for (let at = 0; at < data.length && !c.socket.destroyed; at += MAX_SNAPSHOT_PIECE_BYTES) {
        const piece = data.subarray(at, at + MAX_SNAPSHOT_PIECE_BYTES);
        const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
        putFrameHeader(header, 0, FrameType.SnapshotData, piece.length);
        c.socket.cork();
        c.write(header);
        const more = c.write(piece);
        c.socket.uncork();
        if (!more) await drained();
      }
    };
    conn = new Outbound(
      this.target,
      this.ctx,
      ConnectionPurpose.Snapshot,
      (f) => {
        const c = conn;
        if (!c) return;
        if (f.type === FrameType.Accept && !sending) {
          sending = true;
          void sendAll(c);
        } else if (f.type === FrameType.SnapshotDone && sending && !done) {
          done = true;
          c.end();
        } else if (f.type !== FrameType.Pong) {
          c.destroy(`unexpected frame type ${f.type} on a snapshot connection`);
        }
      },
      (failed) => report(!failed && done),
    );
    this.snapshotConn = conn;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.flushHandle) clearImmediate(this.flushHandle);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.flushHandle = null;
    this.retryTimer = null;
    this.clearConnectionTimers();
    this.ctx.stats.messagesDropped += this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
    // Let what was written reach the peer, then close.
    const conn = this.conn;
    this.conn = null;
    conn?.socket.end();
    conn?.socket.setTimeout(1000, () => conn.socket.destroy());
    this.snapshotConn?.destroy('link closed');
    this.pendingSnapshot = null;
  }
}

// ---- the receiving side ----

/** One inbound connection, from its preamble to its close. */
class Inbound {
  private readonly decoder: FrameDecoder;
  private preambleBytes = 0;
  private hello: Hello | null = null;
  private helloTimer: NodeJS.Timeout | null;
  private done = false;
  // Snapshot connections: what is being assembled.
  private snapMessage: Message | null = null;
  private snapBuffer: Buffer | null = null;
  private snapReceived = 0;
  private reservedBytes = 0;

  constructor(
    private readonly socket: Duplex & { setNoDelay?: (b: boolean) => unknown; setTimeout?: (ms: number, cb?: () => void) => unknown; remoteAddress?: string },
    private readonly t: TcpTransport,
    private readonly ctx: ReceiverContext,
  ) {
    this.decoder = new FrameDecoder(MAX_HELLO_FRAME_BYTES);
    socket.setNoDelay?.(true);
    const { keepaliveTimeMs, keepaliveTimeoutMs, helloTimeoutMs } = ctx.limits;
    this.helloTimer = setTimeout(() => this.refuse(ErrorCode.Invalid, `no hello within ${helloTimeoutMs} ms`), helloTimeoutMs);
    // The sender pings at least every keepaliveTimeMs: silence beyond that plus the timeout is a dead sender.
    socket.setTimeout?.(keepaliveTimeMs + keepaliveTimeoutMs, () => this.close('idle'));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => this.close('socket error'));
    socket.on('close', () => this.close('closed'));
  }

  private get from(): string {
    return this.hello?.nodeId ?? this.socket.remoteAddress ?? 'unknown';
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    if (this.preambleBytes < PREAMBLE.length) {
      const n = Math.min(chunk.length, PREAMBLE.length - this.preambleBytes);
      if (!chunk.subarray(0, n).equals(PREAMBLE.subarray(this.preambleBytes, this.preambleBytes + n))) {
        return this.refuse(ErrorCode.Invalid, 'not a dfs raft connection (bad preamble)');
      }
      this.preambleBytes += n;
      chunk = chunk.subarray(n);
    }
    this.decoder.push(chunk);
    try {
      for (let f = this.decoder.next(); f && !this.done; f = this.decoder.next()) this.onFrame(f);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      this.refuse(ErrorCode.Invalid, err.message);
    }
  }

  private onFrame(f: Frame): void {
    if (!this.hello) {
      if (f.type !== FrameType.Hello) throw new WireError(`frame type ${f.type} before the hello`);
      return this.onHello(decodeHello(f.payload));
    }
    switch (f.type) {
      case FrameType.Ping:
        this.socket.write(encodeFrame(FrameType.Pong));
        return;
      case FrameType.Batch:
        if (this.hello.purpose !== ConnectionPurpose.Messages) throw new WireError('batch on a snapshot connection');
        return this.onBatch(f.payload);
      case FrameType.App:
        if (this.hello.purpose !== ConnectionPurpose.Messages) throw new WireError('app frame on a snapshot connection');
        this.ctx.stats.appFramesReceived++;
        return this.t.deliverApp(this.hello.nodeId, Buffer.from(f.payload));
      case FrameType.SnapshotHeader:
        if (this.hello.purpose !== ConnectionPurpose.Snapshot) throw new WireError('snapshot on a messages connection');
        return this.onSnapshotHeader(f.payload);
      case FrameType.SnapshotData:
        if (this.hello.purpose !== ConnectionPurpose.Snapshot) throw new WireError('snapshot data on a messages connection');
        return this.onSnapshotData(f.payload);
      default:
        throw new WireError(`unexpected frame type ${f.type}`);
    }
  }

  private onHello(hello: Hello): void {
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    if (hello.protocolVersion !== WIRE_VERSION) throw new WireError(`protocol version ${hello.protocolVersion} unsupported (this node speaks ${WIRE_VERSION})`);
    if (hello.nodeId === this.ctx.selfId) throw new WireError('a hello from ourselves');
    const refusal = this.ctx.security.authenticate(hello, this.socket);
    if (refusal !== null) {
      this.ctx.stats.authRejected++;
      this.ctx.logger.warn({ from: hello.nodeId, address: this.socket.remoteAddress, reason: refusal }, 'raft connection refused');
      return this.refuse(ErrorCode.Unauthenticated, refusal, false);
    }
    this.hello = hello;
    this.decoder.setMaxFrameBytes(this.ctx.limits.maxFrameBytes);
    this.socket.write(encodeFrame(FrameType.Accept, Buffer.from([ACCEPT_FEATURE_APP])));
  }

  private check(m: Message): void {
    if (m.to !== this.ctx.selfId) throw new WireError(`message for ${JSON.stringify(m.to)} delivered to ${JSON.stringify(this.ctx.selfId)}`);
    if (m.from !== this.hello?.nodeId) throw new WireError(`message from ${JSON.stringify(m.from)} on ${JSON.stringify(this.hello?.nodeId)}'s connection`);
  }

  private onBatch(payload: Buffer): void {
    const messages = decodeBatch(payload);
    // All or nothing: a batch with one bad message is refused before any of it is delivered.
    for (const m of messages) this.check(m);
    this.ctx.stats.batchesReceived++;
    for (const m of messages) {
      this.ctx.stats.messagesReceived++;
      this.t.deliver(m);
      if (this.done) return; // closed by the handler
    }
  }

  private onSnapshotHeader(payload: Buffer): void {
    if (this.snapMessage) throw new WireError('second snapshot header');
    const { message, totalBytes } = decodeSnapshotHeader(payload);
    this.check(message);
    const { maxSnapshotBytes, maxInflightSnapshotBytes } = this.ctx.limits;
    if (totalBytes > maxSnapshotBytes) throw new WireError(`snapshot of ${totalBytes} bytes exceeds the limit of ${maxSnapshotBytes}`);
    if (!this.t.reserveSnapshotBytes(totalBytes, maxInflightSnapshotBytes)) {
      return this.refuse(ErrorCode.ResourceExhausted, `snapshot buffers full (limit ${maxInflightSnapshotBytes} bytes)`);
    }
    this.reservedBytes = totalBytes;
    this.snapMessage = message;
    this.snapBuffer = Buffer.allocUnsafe(totalBytes);
    this.decoder.setMaxFrameBytes(MAX_SNAPSHOT_PIECE_BYTES);
    if (totalBytes === 0) this.snapshotComplete();
  }

  private onSnapshotData(piece: Buffer): void {
    const buffer = this.snapBuffer;
    if (!buffer) throw new WireError('snapshot data before the header');
    if (this.snapReceived + piece.length > buffer.length) throw new WireError(`more snapshot data than the announced ${buffer.length} bytes`);
    piece.copy(buffer, this.snapReceived);
    this.snapReceived += piece.length;
    if (this.snapReceived === buffer.length) this.snapshotComplete();
  }

  private snapshotComplete(): void {
    const message = this.snapMessage;
    const buffer = this.snapBuffer;
    assert(message?.snapshot != null && buffer !== null, 'snapshot complete without a header');
    message.snapshot.data = buffer;
    this.releaseSnapshot();
    this.ctx.stats.snapshotsReceived++;
    this.ctx.logger.info({ from: message.from, index: message.snapshot.meta.index, bytes: buffer.length }, 'snapshot received');
    // Done means "delivered to the node", as for GrpcTransport; the node answers with
    // MsgAppResp once it has installed it.
    this.socket.write(encodeFrame(FrameType.SnapshotDone));
    this.t.deliver(message);
  }

  private releaseSnapshot(): void {
    this.t.releaseSnapshotBytes(this.reservedBytes);
    this.reservedBytes = 0;
    this.snapBuffer = null;
  }

  /** Tells the sender why (one Error frame), then closes; nothing more is read. */
  refuse(code: ErrorCode, reason: string, invalid = code === ErrorCode.Invalid): void {
    if (this.done) return;
    if (invalid) {
      this.ctx.stats.invalidRejected++;
      this.ctx.logger.warn({ from: this.from, reason }, 'malformed raft connection refused');
    }
    const socket = this.socket;
    this.close(reason);
    if (socket.writable) socket.end(encodeError(code, reason));
    // A sender that never reads our error must not keep the socket open.
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  close(_reason: string): void {
    if (this.done) return;
    this.done = true;
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    this.releaseSnapshot();
    this.t.forget(this);
    this.socket.pause();
    if (_reason === 'idle' || _reason === 'transport closed') this.socket.destroy();
  }

  destroy(): void {
    this.close('transport closed');
    this.socket.destroy();
  }
}

interface ReceiverContext {
  readonly selfId: NodeId;
  readonly limits: TcpTransportLimits;
  readonly logger: Logger;
  readonly stats: TransportStats;
  readonly security: RaftConnectionSecurity;
}

// ---- the transport ----

export class TcpTransport {
  private readonly selfId: NodeId;
  private readonly logger: Logger;
  private readonly limits: TcpTransportLimits;
  private readonly onMessageCb: (m: Message) => void;
  private readonly onAppCb: ((from: NodeId, payload: Buffer) => void) | null;
  private readonly links = new Map<NodeId, PeerLink>();
  private peers: Map<NodeId, string>;
  private readonly unreachableListeners: Array<(peer: NodeId) => void> = [];
  private readonly snapshotListeners: Array<(peer: NodeId, ok: boolean) => void> = [];
  private readonly inbound = new Set<Inbound>();
  private inflightSnapshotBytes = 0;
  private readonly ctx: LinkContext & ReceiverContext;
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

  constructor(opts: TcpTransportOptions) {
    this.selfId = opts.selfId;
    this.peers = new Map(opts.peers);
    this.peers.delete(this.selfId);
    this.onMessageCb = opts.onMessage;
    this.onAppCb = opts.onApp ?? null;
    this.logger = (opts.logger ?? pino({ level: 'silent' })).child({ module: 'raft-tcp-transport', self: opts.selfId });
    this.limits = { ...DEFAULT_TCP_TRANSPORT_LIMITS, ...opts.limits };
    assert(this.limits.maxBatchBytes + 4 <= this.limits.maxFrameBytes, 'maxBatchBytes must fit in maxFrameBytes');
    const security = opts.security ?? tokenSecurity(opts.authToken);
    this.ctx = {
      selfId: this.selfId,
      limits: this.limits,
      logger: this.logger,
      stats: this.counters,
      security,
      reportUnreachable: (peer) => this.emitUnreachable(peer),
      reportSnapshot: (peer, ok) => this.emitSnapshotDone(peer, ok),
    };
  }

  /**
   * Takes an inbound connection (from PortMux, or any net.Server): it must start with the
   * PREAMBLE, which is read here (PortMux leaves it in the socket).
   */
  acceptConnection(socket: Duplex): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const conn = new Inbound(socket, this, this.ctx);
    this.inbound.add(conn);
    if (this.inbound.size > this.limits.maxInboundConnections) {
      conn.refuse(ErrorCode.ResourceExhausted, `too many raft connections (limit ${this.limits.maxInboundConnections})`);
    }
  }

  /**
   * Queues `msgs` for their peers and returns at once; never throws for an unreachable
   * peer (loss is reported through onUnreachable / onSnapshotDone). Call it only after the
   * Ready's entries and hard state are durable.
   */
  send(msgs: Message[]): void {
    for (const m of msgs) {
      if (m.to === this.selfId) assert(false, `message ${m.type} addressed to self`);
      assert(m.type !== 'MsgSnap' || m.snapshot !== null, 'MsgSnap without a snapshot');
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

  /** Write every queued message now (the driver calls it for messages that are waited for). */
  flush(): void {
    for (const link of this.links.values()) link.flushNow();
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

  /** Stops sending and receiving. The listener itself stays up (it is the daemon's). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links.values()) link.close();
    this.links.clear();
    for (const c of [...this.inbound]) c.destroy();
    this.inbound.clear();
  }

  // ---- for Inbound ----

  /** @internal */
  forget(c: Inbound): void {
    this.inbound.delete(c);
  }

  /** @internal */
  reserveSnapshotBytes(n: number, limit: number): boolean {
    if (this.inflightSnapshotBytes + n > limit) return false;
    this.inflightSnapshotBytes += n;
    return true;
  }

  /** @internal */
  releaseSnapshotBytes(n: number): void {
    this.inflightSnapshotBytes -= n;
    assert(this.inflightSnapshotBytes >= 0, 'snapshot reservations below zero');
  }

  /**
   * Queues an App frame for `peer` (written at once, in order with Raft messages). False
   * when it cannot be sent (no address, closed): the caller answers its waiter itself.
   * Delivery is not promised: a connection that fails loses what it had queued.
   */
  sendApp(peer: NodeId, payload: Buffer): boolean {
    if (this.closed || peer === this.selfId) return false;
    const link = this.linkFor(peer);
    if (!link) return false;
    if (payload.length + FRAME_HEADER_BYTES > this.limits.maxFrameBytes) return false;
    link.enqueueApp(encodeFrame(FrameType.App, payload));
    return true;
  }

  /**
   * Whether App frames to `peer` would be taken: its last Accept on our connection said so.
   * False before the first connection and for a peer of an older version (the caller uses
   * another way).
   */
  canSendApp(peer: NodeId): boolean {
    return !this.closed && (this.links.get(peer)?.peerTakesApp ?? false);
  }

  /** @internal */
  deliverApp(from: NodeId, payload: Buffer): void {
    if (this.closed || !this.onAppCb) return;
    try {
      this.onAppCb(from, payload);
    } catch (err) {
      process.nextTick(() => {
        throw err;
      });
    }
  }

  /** @internal */
  deliver(m: Message): void {
    if (this.closed) return;
    try {
      this.onMessageCb(m);
    } catch (err) {
      // The driver broke: a programmer error. Crash loudly, outside the socket's event
      // handlers (where it would look like a wire problem).
      process.nextTick(() => {
        throw err;
      });
    }
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
}
