// The interface the client (src/fuse) uses to reach the namespace. Implemented in
// process by MetaStore (src/meta/store.ts) and across processes by the gRPC client
// (src/meta/grpc-client.ts); both must behave the same.
import type { Attr, ChunkRef, Command, CommandValues, DirEntry, Envelope, Ino, Result, StatFs } from './types.js';

export interface ReaddirPage {
  /** Entries in name (byte) order, strictly after the requested cursor; never '.' or '..'. */
  entries: Array<DirEntry & { attr: Attr }>;
  /** True when no entry follows the last one returned. */
  done: boolean;
}

/** What the leader sends down a session's stream (decision 0012). */
export interface SessionEvents {
  /** The renewal numbered `seq` was acknowledged by the leader. */
  renewed(seq: number): void;
  /** The leader wants these directories' exclusive leases back. */
  recall(dirs: Ino[]): void;
  /** The stream ended (leader change, network): open a new one. */
  closed(reason: string): void;
}

/** A client's end of its session stream. */
export interface SessionLink {
  renew(seq: number): void;
  close(): void;
}

/**
 * `session` on lookup, getattr and readdir names the asking client: directories its own
 * session holds exclusively are not recalled for it.
 */
export interface MetaApi {
  lookup(parent: Ino, name: string, session?: string): Promise<Result<Attr>>;
  getattr(ino: Ino, session?: string): Promise<Result<Attr>>;
  /** A page of at most `limit` entries whose names sort after `after` (null: from the start). */
  readdir(ino: Ino, after: string | null, limit: number, session?: string): Promise<Result<ReaddirPage>>;
  readlink(ino: Ino): Promise<Result<string>>;
  getxattr(ino: Ino, name: string, session?: string): Promise<Result<Buffer>>;
  listxattr(ino: Ino, session?: string): Promise<Result<string[]>>;
  /** Chunk refs of a file with index in [fromIndex, fromIndex + count), in index order; holes are absent. */
  getChunks(ino: Ino, fromIndex: number, count: number): Promise<Result<ChunkRef[]>>;
  statfs(): Promise<Result<StatFs>>;
  /**
   * Opens the session's stream to the leader (absent: this backend has no leases, e.g.
   * an in-process store; the client then runs every call synchronously).
   */
  openSession?(session: string, events: SessionEvents): SessionLink;
  /**
   * Apply a command under a client id and sequence number the caller chose, so that it can
   * send the same envelope again after an answer it did not get (the leader's dedup table
   * answers a repeat with the first result). Absent: only execute().
   */
  executeEnvelope?(envelope: Envelope): Promise<Result<unknown>>;
  /** Apply one namespace mutation; resolves once it is durable. */
  execute<C extends Command>(command: C): Promise<Result<CommandValues[C['op']]>>;
}
