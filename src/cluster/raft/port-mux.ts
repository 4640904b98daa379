// One listening address for gRPC and the framed Raft transport. Membership replicates a
// single host:port per node, so the Raft connections (tcp-transport.ts) arrive on the
// daemon's gRPC port: the mux accepts every connection, reads its first bytes and routes
//   - the wire PREAMBLE ("dfsr") -> the Raft handler (TcpTransport.acceptConnection);
//   - anything else (HTTP/2's "PRI * HTTP/2.0" preface) -> grpc-js, through
//     Server.createConnectionInjector, with the bytes read so far pushed back (unshift).
// grpc-js then serves that socket exactly as one it accepted itself; the server needs no
// bindAsync at all, and tryShutdown/forceShutdown close injected sessions as usual.
//
// Under mutual TLS (the security issue) every connection starts with a TLS ClientHello, so
// the bytes say nothing: the mux would terminate TLS itself (node:tls, the cluster CA) and
// route by the ALPN protocol the client asked for ("h2" -> grpc-js with insecure server
// credentials on the decrypted socket, "dfs-raft" -> Raft), or give Raft a port of its own.
import net from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { PREAMBLE } from './wire-codec.js';
import { splitAddress } from './tcp-transport.js';

export interface PortMuxOptions {
  /** `host:port` to listen on (port 0: any free port). */
  address: string;
  /**
   * A server already listening on `address` (bound before anything else, so there is no
   * window between checking the port and binding it); the mux takes its connections from
   * now on. Without it the mux binds `address` itself.
   */
  server?: net.Server;
  /** The daemon's gRPC server and its credentials: non-Raft connections go there. */
  grpcServer: grpc.Server;
  grpcCredentials: grpc.ServerCredentials;
  /** Takes connections that start with the Raft PREAMBLE (still in the socket). */
  onRaftConnection: (socket: net.Socket) => void;
  logger?: Logger;
  /** A connection that sends nothing for this long is dropped before routing. */
  sniffTimeoutMs?: number;
}

export interface PortMuxStats {
  grpcConnections: number;
  raftConnections: number;
  /** Closed before we could tell what they were (silent, or closed early). */
  dropped: number;
}

export class PortMux {
  private readonly sniffing = new Set<net.Socket>();
  private readonly counters: PortMuxStats = { grpcConnections: 0, raftConnections: 0, dropped: 0 };
  private closed = false;

  private constructor(
    private readonly server: net.Server,
    private readonly injector: grpc.ConnectionInjector,
    private readonly opts: PortMuxOptions,
    private readonly logger: Logger,
    readonly port: number,
  ) {}

  /** Listens on opts.address; rejects with the listen error (EADDRINUSE, ...). */
  static async listen(opts: PortMuxOptions): Promise<PortMux> {
    const { host, port } = splitAddress(opts.address, { allowAnyPort: true });
    const logger = (opts.logger ?? pino({ level: 'silent' })).child({ module: 'port-mux' });
    const injector = opts.grpcServer.createConnectionInjector(opts.grpcCredentials);
    // The connection handler needs the mux, which needs the bound port: route through a holder.
    let mux: PortMux | null = null;
    const onConnection = (socket: net.Socket): void => {
      if (mux) mux.route(socket);
      else socket.destroy();
    };
    const server = opts.server ?? net.createServer({ noDelay: true });
    server.on('connection', onConnection);
    if (!opts.server) {
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host, port }, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        injector.destroy();
        throw err;
      }
    } else if (opts.server.address() === null) {
      injector.destroy();
      throw new Error(`port mux: the server given for ${opts.address} is not listening`);
    }
    server.on('error', (err) => logger.error({ err }, 'listener error'));
    const bound = (server.address() as net.AddressInfo).port;
    mux = new PortMux(server, injector, opts, logger, bound);
    return mux;
  }

  stats(): PortMuxStats {
    return { ...this.counters };
  }

  private route(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.sniffing.add(socket);
    const seen: Buffer[] = [];
    let seenBytes = 0;
    const timer = setTimeout(() => drop('nothing sent'), this.opts.sniffTimeoutMs ?? 10_000);
    const cleanup = (): void => {
      clearTimeout(timer);
      this.sniffing.delete(socket);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const drop = (why: string): void => {
      cleanup();
      this.counters.dropped++;
      this.logger.debug({ from: socket.remoteAddress, why }, 'connection dropped before routing');
      socket.destroy();
    };
    const onError = (): void => drop('socket error');
    const onClose = (): void => drop('closed');
    const onData = (chunk: Buffer): void => {
      seen.push(chunk);
      seenBytes += chunk.length;
      const head = seen.length === 1 ? chunk : Buffer.concat(seen, seenBytes);
      const n = Math.min(head.length, PREAMBLE.length);
      const maybeRaft = head.subarray(0, n).equals(PREAMBLE.subarray(0, n));
      if (maybeRaft && n < PREAMBLE.length) return; // need more bytes to tell
      cleanup();
      // Stop the flow and push back what we read: the next owner reads the stream from its first byte.
      socket.pause();
      socket.unshift(head);
      if (maybeRaft) {
        this.counters.raftConnections++;
        this.opts.onRaftConnection(socket);
      } else {
        this.counters.grpcConnections++;
        this.injector.injectConnection(socket);
      }
      // The Raft side reads with 'data' listeners, which resume a paused stream only when
      // added; make sure it flows (grpc-js's HTTP/2 session reads the handle itself).
      if (maybeRaft) socket.resume();
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  }

  /**
   * Stops accepting (the port is free when this resolves) and drops connections not yet
   * routed. Routed ones belong to their
   * owners: close the transport, and shut the gRPC server down (tryShutdown or
   * forceShutdown also ends the injected sessions).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.sniffing]) s.destroy();
    this.sniffing.clear();
    this.injector.destroy();
    // Not server.close's callback: that waits for every routed connection to end too.
    this.server.close();
    await new Promise((resolve) => setImmediate(resolve));
  }
}
