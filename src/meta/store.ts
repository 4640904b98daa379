// MetaStore: the namespace served in process over a Kv. Mutations run one at a time
// through apply() (it reads then writes), grouped: while one group's batch is being
// written, new commands queue, and the next group is applied back-to-back into one
// combined KV write (group commit). Each command still sees the effects of the ones
// before it in its group.
//
// Durability rule: a group is written with sync=true when it holds a commitWrite (the
// client is about to report data durable on close/fsync) or when `syncAll` is set;
// otherwise sync=false — the RocksDB WAL is in the page cache, so the group survives a
// process kill but not a power loss. The Raft log (a later layer) will make every
// command durable before it is applied here.
import { apply, applyEnvelope, bootstrap, checkFormat, DEFAULT_CHUNK_SIZE_BYTES, nameError, decodeRef, type ApplyConfig } from './apply.js';
import type { MetaApi, ReaddirPage } from './api.js';
import { CachedReader, type CacheStats } from './cache.js';
import { LeaseIndex } from './lease-index.js';
import { decodeChunk, decodeClient, decodeDentry, decodeGarbage, decodeInode, decodeU64, decodeXattr, encodeU64, isInlineChunkValue } from './codec.js';
import * as K from './keys.js';
import { KV_SCAN_LIMIT_MAX, prefixEnd, type Kv, type KvOp } from './kv.js';
import { Tx } from './tx.js';
import {
  Errno,
  NAME_MAX_BYTES,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  type Attr,
  type ChunkRef,
  type Command,
  type CommandValues,
  type Envelope,
  type GarbageChunk,
  type Ino,
  type NodeRecord,
  type Result,
  type StatFs,
  XATTR_COUNT_MAX,
} from './types.js';

export const READDIR_PAGE_MAX = 1024;
export const GET_CHUNKS_MAX = 4096;
export const LIST_XATTR_MAX = XATTR_COUNT_MAX;
export const LIST_GARBAGE_MAX = KV_SCAN_LIMIT_MAX;

/** One committed Raft entry for the namespace: a client command and/or a membership change. */
export interface CommittedItem {
  index: number;
  envelope: Envelope | null;
  /** A member's address to record (null: the member left). */
  member?: { nodeId: string; address: string | null };
}

export interface CapacityBytes {
  totalBytes: number;
  freeBytes: number;
  availBytes: number;
}

export interface MetaStoreOptions {
  /** Chunk size of new regular files. Default 4 MiB. */
  chunkSizeBytes?: number;
  /** Write every group with sync=true. Default false. */
  syncAll?: boolean;
  /** Inode + dentry entries kept in the read cache. Default 100 000. */
  cacheEntries?: number;
  /** Commands waiting to be applied; beyond it execute() answers EAGAIN. Default 10 000. */
  queueMax?: number;
  /** Commands per group commit. Default 256. */
  groupMax?: number;
  /** Byte capacity for statfs, from the chunk store. Default: all zero. */
  capacity?: () => CapacityBytes | Promise<CapacityBytes>;
  /** Soft bound on inodes reported by statfs. Default 2^32. */
  filesMax?: number;
}

export interface MetaStoreStats extends CacheStats {
  commandsApplied: number;
  groupsWritten: number;
  syncedGroups: number;
  queueLength: number;
}

type Pending =
  | { kind: 'command'; command: Command; resolve: (r: Result<unknown>) => void; reject: (e: unknown) => void }
  | { kind: 'envelope'; envelope: Envelope; resolve: (r: Result<unknown>) => void; reject: (e: unknown) => void };

const fail = (errno: number): { ok: false; errno: number } => ({ ok: false, errno });
const isDirMode = (mode: number): boolean => (mode & S_IFMT) === S_IFDIR;

function needsSync(p: Pending): boolean {
  const command = p.kind === 'command' ? p.command : p.envelope.command;
  if (command?.op === 'batch') return Array.isArray(command.ops) && command.ops.some((o) => o?.op === 'commitWrite');
  return command?.op === 'commitWrite';
}

export class MetaStore implements MetaApi {
  private readonly reader: CachedReader;
  /** The lease table in memory (decision 0012), following every written batch. */
  readonly leases: LeaseIndex;
  private readonly config: ApplyConfig;
  private readonly queue: Pending[] = [];
  private running = false;
  private idleWaiters: Array<() => void> = [];
  private failure: unknown = undefined;
  private closed = false;
  private counters = { commandsApplied: 0, groupsWritten: 0, syncedGroups: 0 };

  private constructor(
    private readonly kv: Kv,
    private readonly options: Required<Omit<MetaStoreOptions, 'capacity'>> & Pick<MetaStoreOptions, 'capacity'>,
  ) {
    this.reader = new CachedReader(kv, options.cacheEntries);
    this.leases = new LeaseIndex();
    this.config = { chunkSizeBytes: options.chunkSizeBytes };
  }

  /** Opens the namespace in `kv`, creating the root directory if the store is empty. */
  static async open(kv: Kv, options: MetaStoreOptions = {}): Promise<MetaStore> {
    const opts = {
      chunkSizeBytes: options.chunkSizeBytes ?? DEFAULT_CHUNK_SIZE_BYTES,
      syncAll: options.syncAll ?? false,
      cacheEntries: options.cacheEntries ?? 100_000,
      queueMax: options.queueMax ?? 10_000,
      groupMax: options.groupMax ?? 256,
      filesMax: options.filesMax ?? 2 ** 32,
      capacity: options.capacity,
    };
    if (!Number.isInteger(opts.chunkSizeBytes) || opts.chunkSizeBytes < 4096 || opts.chunkSizeBytes > 2 ** 31) {
      throw new RangeError(`chunkSizeBytes out of range: ${opts.chunkSizeBytes}`);
    }
    for (const n of [opts.queueMax, opts.groupMax]) {
      if (!Number.isInteger(n) || n < 1) throw new RangeError('queueMax and groupMax must be positive integers');
    }
    const tx = new Tx(kv);
    tx.begin();
    const created = await bootstrap(tx);
    tx.commit();
    if (created) await kv.write(tx.ops(), { sync: true });
    await checkFormat(new Tx(kv));
    const store = new MetaStore(kv, opts);
    await store.leases.rebuild(kv);
    return store;
  }

  // ---- mutations ---------------------------------------------------------------------

  execute<C extends Command>(command: C): Promise<Result<CommandValues[C['op']]>> {
    return this.enqueue((resolve, reject) => ({ kind: 'command', command, resolve, reject })) as Promise<
      Result<CommandValues[C['op']]>
    >;
  }

  /** Applies a client's command at most once per (clientId, seq); see applyEnvelope. */
  executeEnvelope(envelope: Envelope): Promise<Result<unknown>> {
    return this.enqueue((resolve, reject) => ({ kind: 'envelope', envelope, resolve, reject }));
  }

  private enqueue(
    make: (resolve: (r: Result<unknown>) => void, reject: (e: unknown) => void) => Pending,
  ): Promise<Result<unknown>> {
    if (this.closed || this.failure !== undefined) return Promise.resolve(fail(Errno.EIO));
    if (this.queue.length >= this.options.queueMax) return Promise.resolve(fail(Errno.EAGAIN));
    return new Promise((resolve, reject) => {
      this.queue.push(make(resolve, reject));
      if (!this.running) {
        this.running = true;
        void this.drain();
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const group = this.queue.splice(0, this.options.groupMax);
      await this.runGroup(group);
    }
    // Same synchronous step as the empty-queue check: no command can slip in between.
    this.running = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async runGroup(group: Pending[]): Promise<void> {
    const tx = new Tx(this.reader);
    const outcomes: Array<{ result: Result<unknown> } | { error: unknown }> = [];
    let sync = this.options.syncAll;
    for (const p of group) {
      tx.begin();
      try {
        let result: Result<unknown>;
        if (p.kind === 'envelope') {
          result = await applyEnvelope(p.envelope, tx, this.config);
          // Even a failed command's result is recorded for retries.
          tx.commit();
        } else {
          result = await apply(p.command, tx, this.config);
          if (result.ok) tx.commit();
          else tx.rollback();
        }
        if (needsSync(p)) sync = true;
        outcomes.push({ result });
      } catch (error) {
        // A bug or a corrupt store: this command fails loudly, the group goes on.
        tx.rollback();
        outcomes.push({ error });
      }
    }
    const ops = tx.ops();
    try {
      await this.kv.write(ops, { sync });
      this.reader.writeThrough(ops);
      this.leases.follow(ops);
      this.counters.groupsWritten++;
      if (sync) this.counters.syncedGroups++;
      this.counters.commandsApplied += group.length;
    } catch (error) {
      // The store may or may not hold the batch: stop serving mutations rather than
      // guess, and drop the cache so reads see whatever the KV has.
      this.failure = error;
      this.reader.clear();
      for (const p of group) p.resolve(fail(Errno.EIO));
      for (const p of this.queue.splice(0)) p.resolve(fail(Errno.EIO));
      return;
    }
    group.forEach((p, i) => {
      const o = outcomes[i];
      if ('result' in o) p.resolve(o.result);
      else p.reject(o.error);
    });
  }

  // ---- replicated log ----------------------------------------------------------------

  /** Make every applied batch durable (before the replicated log is compacted past it). */
  async syncApplied(): Promise<void> {
    const raw = await this.kv.get(K.appliedIndexKey());
    await this.kv.write([{ type: 'put', key: K.appliedIndexKey(), value: raw ?? encodeU64(0) }], { sync: true });
  }

  /**
   * After a failed write (issue 16): reopen the KV and read again what it holds (the
   * cache and the lease table are rebuilt from it, never kept from before the fault).
   * The Raft driver then re-applies from appliedIndex() on.
   */
  async recover(): Promise<void> {
    if (this.failure === undefined || this.closed) return;
    if (this.kv.reopen) await this.kv.reopen();
    this.reader.clear();
    await this.leases.rebuild(this.kv);
    this.failure = undefined;
  }

  /** Why the store refuses writes (a failed write), or undefined. */
  get writeFailure(): unknown {
    return this.failure;
  }

  /** Index of the last log entry applied into the store (0 before any). */
  async appliedIndex(): Promise<number> {
    const raw = await this.kv.get(K.appliedIndexKey());
    return raw === undefined ? 0 : decodeU64(raw);
  }

  /**
   * Applies committed log entries in order, as one atomic batch together with the new
   * applied index, and returns each entry's result. `envelope: null` marks an entry
   * without a namespace command (a leader's no-op, a membership change): it only moves
   * the applied index. Written without fsync: the log is the durability point, and
   * entries after the stored applied index are applied again after a crash (the
   * dedup table makes that idempotent for client commands, and apply is deterministic).
   * Must not run concurrently with execute() (one writer).
   */
  async applyCommitted(items: CommittedItem[]): Promise<Array<Result<unknown>>> {
    if (this.failure !== undefined) throw new Error('namespace store failed earlier; refusing to apply');
    const tx = new Tx(this.reader);
    const results: Array<Result<unknown>> = [];
    let last = 0;
    for (const item of items) {
      if (item.index <= last) throw new Error(`log entries out of order: ${item.index} after ${last}`);
      last = item.index;
      tx.begin();
      let result: Result<unknown> = { ok: true, value: null };
      if (item.member) {
        if (item.member.address === null) tx.del(K.memberKey(item.member.nodeId));
        else tx.put(K.memberKey(item.member.nodeId), Buffer.from(item.member.address, 'utf8'));
      }
      if (item.envelope) {
        result = item.envelope.clientId ? await applyEnvelope(item.envelope, tx, this.config) : await apply(item.envelope.command, tx, this.config);
        if (!result.ok && !item.envelope.clientId) tx.rollback();
        else tx.commit();
      } else {
        tx.commit();
      }
      results.push(result);
    }
    if (items.length === 0) return results;
    tx.begin();
    tx.put(K.appliedIndexKey(), encodeU64(last));
    tx.commit();
    const ops = tx.ops();
    try {
      await this.kv.write(ops, { sync: false });
    } catch (error) {
      this.failure = error;
      this.reader.clear();
      throw error;
    }
    this.reader.writeThrough(ops);
    this.leases.follow(ops);
    this.counters.groupsWritten++;
    this.counters.commandsApplied += items.length;
    return results;
  }

  /**
   * Every key and value of the namespace, for a Raft snapshot: [u32 keyLen][key]
   * [u32 valueLen][value]... Reads page by page; the image is held in memory (a bound
   * of the current snapshot design, noted in docs/architecture.md).
   */
  async snapshotImage(): Promise<Buffer> {
    const parts: Buffer[] = [];
    let after: Buffer | undefined;
    for (;;) {
      const rows = await this.kv.scan(after ? { gt: after, limit: KV_SCAN_LIMIT_MAX } : { limit: KV_SCAN_LIMIT_MAX });
      for (const [k, v] of rows) {
        const head = Buffer.allocUnsafe(4);
        head.writeUInt32BE(k.length);
        const vhead = Buffer.allocUnsafe(4);
        vhead.writeUInt32BE(v.length);
        parts.push(head, k, vhead, v);
      }
      if (rows.length < KV_SCAN_LIMIT_MAX) break;
      after = rows[rows.length - 1][0];
    }
    return Buffer.concat(parts);
  }

  /** Replaces the whole namespace with a snapshot image (a follower that fell behind). */
  async restoreImage(image: Buffer): Promise<void> {
    const dels: KvOp[] = [];
    let after: Buffer | undefined;
    for (;;) {
      const rows = await this.kv.scan(after ? { gt: after, limit: KV_SCAN_LIMIT_MAX } : { limit: KV_SCAN_LIMIT_MAX });
      for (const [k] of rows) dels.push({ type: 'del', key: k });
      if (rows.length < KV_SCAN_LIMIT_MAX) break;
      after = rows[rows.length - 1][0];
    }
    const puts: KvOp[] = [];
    for (let pos = 0; pos < image.length; ) {
      const kl = image.readUInt32BE(pos);
      const key = image.subarray(pos + 4, pos + 4 + kl);
      pos += 4 + kl;
      const vl = image.readUInt32BE(pos);
      const value = image.subarray(pos + 4, pos + 4 + vl);
      pos += 4 + vl;
      puts.push({ type: 'put', key: Buffer.from(key), value: Buffer.from(value) });
    }
    // Deletes first, then puts, in one atomic batch: a crash leaves the old or the new image.
    await this.kv.write([...dels, ...puts], { sync: true });
    this.reader.clear();
    await this.leases.rebuild(this.kv);
  }

  // ---- queries -----------------------------------------------------------------------

  private async attr(ino: Ino): Promise<Attr | undefined> {
    if (!Number.isSafeInteger(ino) || ino < 1) return undefined;
    const raw = await this.reader.get(K.inodeKey(ino));
    return raw === undefined ? undefined : decodeInode(ino, raw).attr;
  }

  async getattr(ino: Ino): Promise<Result<Attr>> {
    const attr = await this.attr(ino);
    return attr === undefined ? fail(Errno.ENOENT) : { ok: true, value: attr };
  }

  private async dirAttr(ino: Ino): Promise<Result<Attr>> {
    const attr = await this.attr(ino);
    if (attr === undefined) return fail(Errno.ENOENT);
    if (!isDirMode(attr.mode)) return fail(Errno.ENOTDIR);
    return { ok: true, value: attr };
  }

  async lookup(parent: Ino, name: string): Promise<Result<Attr>> {
    const dir = await this.dirAttr(parent);
    if (!dir.ok) return dir;
    const bad = nameError(name);
    if (bad !== undefined) return fail(Errno[bad]);
    const raw = await this.reader.get(K.dentryKey(parent, name));
    if (raw === undefined) return fail(Errno.ENOENT);
    const attr = await this.attr(decodeDentry(raw).ino);
    return attr === undefined ? fail(Errno.ENOENT) : { ok: true, value: attr };
  }

  async readdir(ino: Ino, after: string | null, limit: number): Promise<Result<ReaddirPage>> {
    if (!Number.isInteger(limit) || limit < 1) return fail(Errno.EINVAL);
    if (after !== null && (typeof after !== 'string' || after.length > NAME_MAX_BYTES)) return fail(Errno.EINVAL);
    const dir = await this.dirAttr(ino);
    if (!dir.ok) return dir;
    const pageSize = Math.min(limit, READDIR_PAGE_MAX);
    const prefix = K.dentryPrefix(ino);
    const rows = await this.kv.scan({
      ...(after === null ? { gte: prefix } : { gt: K.dentryKey(ino, after) }),
      lt: prefixEnd(prefix) as Buffer,
      // One more than asked tells whether the page is the last one.
      limit: pageSize + 1,
    });
    const done = rows.length <= pageSize;
    const entries: ReaddirPage['entries'] = [];
    for (const [key, value] of rows.slice(0, pageSize)) {
      const d = decodeDentry(value);
      const attr = await this.attr(d.ino);
      // Removed between the scan and this read: the entry is gone, not made up.
      if (attr === undefined) continue;
      entries.push({ name: K.dentryName(key), ino: d.ino, type: d.type, attr });
    }
    return { ok: true, value: { entries, done } };
  }

  async readlink(ino: Ino): Promise<Result<string>> {
    if (!Number.isSafeInteger(ino) || ino < 1) return fail(Errno.ENOENT);
    const raw = await this.reader.get(K.inodeKey(ino));
    if (raw === undefined) return fail(Errno.ENOENT);
    const rec = decodeInode(ino, raw);
    if ((rec.attr.mode & S_IFMT) !== S_IFLNK) return fail(Errno.EINVAL);
    return { ok: true, value: rec.target };
  }

  async getxattr(ino: Ino, name: string): Promise<Result<Buffer>> {
    if (typeof name !== 'string' || name.length === 0 || name.length > 255) return fail(Errno.ERANGE);
    if ((await this.attr(ino)) === undefined) return fail(Errno.ENOENT);
    const raw = await this.kv.get(K.xattrKey(ino, name));
    return raw === undefined ? fail(Errno.ENODATA) : { ok: true, value: decodeXattr(raw) };
  }

  async listxattr(ino: Ino): Promise<Result<string[]>> {
    if ((await this.attr(ino)) === undefined) return fail(Errno.ENOENT);
    const prefix = K.xattrPrefix(ino);
    const rows = await this.kv.scan({ gte: prefix, lt: prefixEnd(prefix) as Buffer, limit: LIST_XATTR_MAX + 1 });
    // More names than one answer may carry: say so rather than return a partial list.
    if (rows.length > LIST_XATTR_MAX) return fail(Errno.ERANGE);
    return { ok: true, value: rows.map(([key]) => K.xattrName(key)) };
  }

  async getChunks(ino: Ino, fromIndex: number, count: number): Promise<Result<ChunkRef[]>> {
    if (!Number.isSafeInteger(fromIndex) || fromIndex < 0 || !Number.isInteger(count) || count < 1) {
      return fail(Errno.EINVAL);
    }
    const attr = await this.attr(ino);
    if (attr === undefined) return fail(Errno.ENOENT);
    if (isDirMode(attr.mode)) return fail(Errno.EISDIR);
    if ((attr.mode & S_IFMT) !== S_IFREG) return fail(Errno.EINVAL);
    const n = Math.min(count, GET_CHUNKS_MAX);
    const rows = await this.kv.scan({
      gte: K.chunkKey(ino, fromIndex),
      lt: K.chunkKey(ino, Math.min(fromIndex + n, Number.MAX_SAFE_INTEGER)),
      limit: n,
    });
    return {
      ok: true,
      value: rows.map(([key, value]) => {
        const c = decodeChunk(value);
        const ref: ChunkRef = { index: K.chunkIndex(key), chunkId: c.chunkId, sizeBytes: c.sizeBytes, placement: c.placement };
        if (c.inline) ref.inline = c.inline;
        if (c.ec) ref.ec = c.ec;
        return ref;
      }),
    };
  }

  async statfs(): Promise<Result<StatFs>> {
    const raw = await this.kv.get(K.inodeCountKey());
    const files = raw === undefined ? 0 : decodeU64(raw);
    const cap = this.options.capacity ? await this.options.capacity() : { totalBytes: 0, freeBytes: 0, availBytes: 0 };
    return {
      ok: true,
      value: {
        totalBytes: cap.totalBytes,
        freeBytes: cap.freeBytes,
        availBytes: cap.availBytes,
        files,
        freeFiles: Math.max(0, this.options.filesMax - files),
        blockSizeBytes: 4096,
        nameMaxBytes: NAME_MAX_BYTES,
      },
    };
  }

  /** Up to `limit` unreferenced chunk objects, in chunk id order, for the GC loop. */
  /**
   * A page of every file chunk that has an object (inline data excluded), in key order,
   * from after `cursor` (null: the start); `next` is null at the end. For the healer's scan.
   */
  async scanChunkRefs(cursor: Buffer | null, limit: number): Promise<{ refs: Array<{ ino: Ino; ref: ChunkRef }>; next: Buffer | null }> {
    const prefix = Buffer.from('c/', 'latin1');
    const n = Math.max(1, Math.min(Math.floor(limit), KV_SCAN_LIMIT_MAX));
    const rows = await this.kv.scan(cursor ? { gt: cursor, lt: prefixEnd(prefix) as Buffer, limit: n } : { gte: prefix, lt: prefixEnd(prefix) as Buffer, limit: n });
    const refs: Array<{ ino: Ino; ref: ChunkRef }> = [];
    for (const [key, value] of rows) {
      // Inline data is in the namespace itself: no object to heal (and no copy of it to make).
      if (isInlineChunkValue(value)) continue;
      const c = decodeChunk(value);
      if (c.chunkId === 0) continue;
      const { ino, index } = K.chunkKeyParts(key);
      const ref: ChunkRef = { index, chunkId: c.chunkId, sizeBytes: c.sizeBytes, placement: c.placement };
      if (c.ec) ref.ec = c.ec;
      refs.push({ ino, ref });
    }
    return { refs, next: rows.length === n ? rows[rows.length - 1][0] : null };
  }

  /**
   * A page of the dedup table (client id and the seq of its last applied command), in
   * key order from after `cursor` (null: the start); `next` is null at the end. For the
   * session janitor, which forgets clients not heard from for long.
   */
  async scanClients(cursor: Buffer | null, limit: number): Promise<{ clients: Array<{ clientId: string; seq: number }>; next: Buffer | null }> {
    const prefix = K.clientPrefix();
    const n = Math.max(1, Math.min(Math.floor(limit), KV_SCAN_LIMIT_MAX));
    const lt = prefixEnd(prefix) as Buffer;
    const rows = await this.kv.scan(cursor ? { gt: cursor, lt, limit: n } : { gte: prefix, lt, limit: n });
    const clients = rows.map(([key, value]) => ({ clientId: key.toString('utf8', prefix.length), seq: decodeClient(value).seq }));
    return { clients, next: rows.length === n ? rows[rows.length - 1][0] : null };
  }

  /**
   * The sessions that hold open handles or delegated inode ranges (at most `limit`), one
   * seek per session: what closeSession would clean up for each.
   */
  async sessionsHolding(limit: number): Promise<Set<string>> {
    const out = new Set<string>();
    for (const prefix of K.sessionStatePrefixes()) {
      const lt = prefixEnd(prefix) as Buffer;
      let from = prefix;
      while (out.size < limit) {
        const [row] = await this.kv.scan({ gte: from, lt, limit: 1 });
        if (row === undefined) break;
        const session = K.sessionOfKey(row[0], prefix.length);
        if (session === undefined) break;
        out.add(session);
        from = prefixEnd(Buffer.concat([prefix, K.sessionIdBytes(session)])) as Buffer;
      }
    }
    return out;
  }

  /** The file chunk that references object `chunkId`, or null when none does. */
  async chunkOwner(chunkId: number): Promise<{ ino: Ino; ref: ChunkRef } | null> {
    const owner = await this.kv.get(K.refKey(chunkId));
    if (owner === undefined) return null;
    const { ino, index } = decodeRef(owner);
    const raw = await this.kv.get(K.chunkKey(ino, index));
    if (raw === undefined) return null;
    const c = decodeChunk(raw);
    if (c.chunkId !== chunkId) return null;
    const ref: ChunkRef = { index, chunkId, sizeBytes: c.sizeBytes, placement: c.placement };
    if (c.ec) ref.ec = c.ec;
    return { ino, ref };
  }

  /** Holders of a garbage object still to be deleted, or null when it is not garbage. */
  async garbageHolders(chunkId: number): Promise<string[] | null> {
    const raw = await this.kv.get(K.garbageKey(chunkId));
    return raw === undefined ? null : decodeGarbage(raw);
  }

  /** Copies reported bad and not yet replaced. */
  async badCopies(limit: number): Promise<Array<{ chunkId: number; nodeId: string }>> {
    const prefix = K.badPrefix();
    const rows = await this.kv.scan({ gte: prefix, lt: prefixEnd(prefix) as Buffer, limit: Math.max(1, Math.min(limit, KV_SCAN_LIMIT_MAX)) });
    return rows.map(([key]) => K.badOf(key));
  }

  /** The chunk servers the cluster has registered (node table). */
  async listNodes(): Promise<NodeRecord[]> {
    const prefix = K.nodePrefix();
    const rows = await this.kv.scan({ gte: prefix, lt: prefixEnd(prefix) as Buffer, limit: KV_SCAN_LIMIT_MAX });
    return rows.map(([, value]) => JSON.parse(value.toString('utf8')) as NodeRecord);
  }

  /** Raft members' addresses as replicated with their membership changes (node id → host:port). */
  async memberAddresses(): Promise<Map<string, string>> {
    const prefix = K.memberPrefix();
    const rows = await this.kv.scan({ gte: prefix, lt: prefixEnd(prefix) as Buffer, limit: KV_SCAN_LIMIT_MAX });
    return new Map(rows.map(([key, value]) => [K.memberIdOf(key), value.toString('utf8')]));
  }

  /**
   * Records the initial members' addresses before the bootstrap snapshot is taken. Every
   * bootstrapping node seeds the same --initial-cluster, so their images stay identical.
   */
  async seedMembers(members: ReadonlyMap<string, string>): Promise<void> {
    const ops: KvOp[] = [...members].map(([id, address]) => ({ type: 'put', key: K.memberKey(id), value: Buffer.from(address, 'utf8') }));
    await this.kv.write(ops, { sync: true });
    this.reader.writeThrough(ops);
  }

  async listGarbage(limit: number): Promise<GarbageChunk[]> {
    const n = Math.max(1, Math.min(Math.floor(limit), LIST_GARBAGE_MAX));
    const prefix = K.garbagePrefix();
    const rows = await this.kv.scan({ gte: prefix, lt: prefixEnd(prefix) as Buffer, limit: n });
    return rows.map(([key, value]) => ({ chunkId: K.garbageChunkId(key), placement: decodeGarbage(value) }));
  }

  stats(): MetaStoreStats {
    return { ...this.reader.stats(), ...this.counters, queueLength: this.queue.length };
  }

  /** Waits for queued commands, then closes the KV. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.running) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await this.kv.close();
  }
}
