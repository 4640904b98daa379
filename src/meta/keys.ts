// Key schema of the namespace store (format version KEY_FORMAT_VERSION). Integers are
// u64 big-endian so byte order = numeric order and a directory, a file's chunks or a
// session's handles are each one contiguous, prefix-scannable range.
//
//   v                                  format version (u32be)
//   n/ino  n/chunk  n/inodes           counters: next inode, next chunk id, live inodes
//   i/<ino>                            inode record (codec.ts)
//   d/<parent>/<name bytes>            dentry -> (ino, type)
//   c/<ino>/<index>                    chunk ref
//   x/<ino>/<name bytes>               xattr value
//   o/<ino>/<len u8><session><handle>  open handle (by inode: "is it open?")
//   h/<len u8><session><ino><handle>   same handle (by session: closeSession)
//   orphan/<ino>                       unlinked inode kept alive by open handles
//   g/<chunkId>                        garbage chunk object -> placement
//   q/<clientId utf8>                  last applied (seq, result) of a client
//   m/<nodeId utf8>                    address (host:port utf8) of a Raft member
//   node/<nodeId utf8>                 chunk server record (JSON: address, zone, rack, state)
//   r/<chunkId>                        which file chunk references an object -> (ino, index)
//   b/<chunkId>/<nodeId utf8>          a copy reported bad (scrub, fsck, read) until repaired
//   s/<len u8><session><first>         inode numbers delegated to a session: [first, end) -> end
//   l/<dir>                            the session holding the directory's exclusive lease (utf8)
//   l/<dir>/<len u8><session>          a session holding a shared lease on it
//   L/<len u8><session><dir>           the same leases, by session -> 'x' | 's' (closeSession)
// Session ids are length-prefixed so one session's range never contains another's.
import type { Ino } from './types.js';

export const KEY_FORMAT_VERSION = 1;

const MAX_U64_SAFE = Number.MAX_SAFE_INTEGER;
export const SESSION_MAX_BYTES = 255;
export const CLIENT_ID_MAX_BYTES = 255;

function u64(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > MAX_U64_SAFE) throw new RangeError(`not a u64 key part: ${n}`);
  const b = Buffer.allocUnsafe(8);
  b.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 0);
  b.writeUInt32BE(n >>> 0, 4);
  return b;
}

export function readU64(b: Buffer, offset: number): number {
  return b.readUInt32BE(offset) * 0x1_0000_0000 + b.readUInt32BE(offset + 4);
}

const P = {
  version: Buffer.from('v', 'latin1'),
  nextIno: Buffer.from('n/ino', 'latin1'),
  nextChunk: Buffer.from('n/chunk', 'latin1'),
  inodeCount: Buffer.from('n/inodes', 'latin1'),
  appliedIndex: Buffer.from('n/applied', 'latin1'),
  inode: Buffer.from('i/', 'latin1'),
  dentry: Buffer.from('d/', 'latin1'),
  chunk: Buffer.from('c/', 'latin1'),
  xattr: Buffer.from('x/', 'latin1'),
  openByIno: Buffer.from('o/', 'latin1'),
  openBySession: Buffer.from('h/', 'latin1'),
  orphan: Buffer.from('orphan/', 'latin1'),
  garbage: Buffer.from('g/', 'latin1'),
  client: Buffer.from('q/', 'latin1'),
  member: Buffer.from('m/', 'latin1'),
  node: Buffer.from('node/', 'latin1'),
  ref: Buffer.from('r/', 'latin1'),
  bad: Buffer.from('b/', 'latin1'),
  inoRange: Buffer.from('s/', 'latin1'),
  lease: Buffer.from('l/', 'latin1'),
  leaseBySession: Buffer.from('L/', 'latin1'),
  slash: Buffer.from('/', 'latin1'),
};

export const versionKey = (): Buffer => P.version;
export const nextInoKey = (): Buffer => P.nextIno;
export const nextChunkKey = (): Buffer => P.nextChunk;
export const inodeCountKey = (): Buffer => P.inodeCount;
/** Index of the last replicated-log entry applied into this store. */
export const appliedIndexKey = (): Buffer => P.appliedIndex;

export const inodeKey = (ino: Ino): Buffer => Buffer.concat([P.inode, u64(ino)]);
export const isInodeKey = (key: Buffer): boolean => key.length === 10 && key[0] === 0x69 && key[1] === 0x2f;

export const dentryPrefix = (parent: Ino): Buffer => Buffer.concat([P.dentry, u64(parent), P.slash]);
export const dentryKey = (parent: Ino, name: string): Buffer =>
  Buffer.concat([dentryPrefix(parent), Buffer.from(name, 'latin1')]);
export const isDentryKey = (key: Buffer): boolean => key.length > 11 && key[0] === 0x64 && key[1] === 0x2f;
/** The name part of a dentry key. */
export const dentryName = (key: Buffer): string => key.subarray(11).toString('latin1');

export const chunkPrefix = (ino: Ino): Buffer => Buffer.concat([P.chunk, u64(ino), P.slash]);
export const chunkKey = (ino: Ino, index: number): Buffer => Buffer.concat([chunkPrefix(ino), u64(index)]);
export const chunkIndex = (key: Buffer): number => readU64(key, 11);

export const xattrPrefix = (ino: Ino): Buffer => Buffer.concat([P.xattr, u64(ino), P.slash]);
export const xattrKey = (ino: Ino, name: string): Buffer =>
  Buffer.concat([xattrPrefix(ino), Buffer.from(name, 'latin1')]);
export const xattrName = (key: Buffer): string => key.subarray(11).toString('latin1');

/** A session id as keys hold it: its length (u8), then its utf8 bytes. */
export function sessionIdBytes(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  if (bytes.length === 0 || bytes.length > SESSION_MAX_BYTES) throw new RangeError('bad session id');
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}
export const openPrefix = (ino: Ino): Buffer => Buffer.concat([P.openByIno, u64(ino), P.slash]);
export const openKey = (ino: Ino, sessionId: string, handle: number): Buffer =>
  Buffer.concat([openPrefix(ino), sessionIdBytes(sessionId), u64(handle)]);
export const sessionPrefix = (sessionId: string): Buffer => Buffer.concat([P.openBySession, sessionIdBytes(sessionId)]);
export const sessionKey = (sessionId: string, ino: Ino, handle: number): Buffer =>
  Buffer.concat([sessionPrefix(sessionId), u64(ino), u64(handle)]);
/** (ino, handle) of a key under sessionPrefix(sessionId). */
export function parseSessionKey(key: Buffer, prefixLength: number): { ino: Ino; handle: number } {
  return { ino: readU64(key, prefixLength), handle: readU64(key, prefixLength + 8) };
}

/** Every session's handles (h/) and inode ranges (s/): where sessionsHolding looks. */
export const sessionStatePrefixes = (): Buffer[] => [P.openBySession, P.inoRange];
/** The session id of a key under one of sessionStatePrefixes() (or undefined when malformed). */
export function sessionOfKey(key: Buffer, prefixLength: number): string | undefined {
  const len = key[prefixLength];
  if (len === undefined || len === 0 || key.length < prefixLength + 1 + len) return undefined;
  return key.toString('utf8', prefixLength + 1, prefixLength + 1 + len);
}

export const orphanKey = (ino: Ino): Buffer => Buffer.concat([P.orphan, u64(ino)]);

export const garbagePrefix = (): Buffer => P.garbage;
export const garbageKey = (chunkId: number): Buffer => Buffer.concat([P.garbage, u64(chunkId)]);
export const garbageChunkId = (key: Buffer): number => readU64(key, 2);

export const clientPrefix = (): Buffer => P.client;
export const clientKey = (clientId: string): Buffer => Buffer.concat([P.client, Buffer.from(clientId, 'utf8')]);
export const memberKey = (nodeId: string): Buffer => Buffer.concat([P.member, Buffer.from(nodeId, 'utf8')]);
export const memberPrefix = (): Buffer => P.member;
export const nodeKey = (nodeId: string): Buffer => Buffer.concat([P.node, Buffer.from(nodeId, 'utf8')]);
export const nodePrefix = (): Buffer => P.node;
export const refKey = (chunkId: number): Buffer => Buffer.concat([P.ref, u64(chunkId)]);
export const badPrefix = (chunkId?: number): Buffer => (chunkId === undefined ? P.bad : Buffer.concat([P.bad, u64(chunkId), P.slash]));
export const badKey = (chunkId: number, nodeId: string): Buffer => Buffer.concat([badPrefix(chunkId), Buffer.from(nodeId, 'utf8')]);
export const badOf = (key: Buffer): { chunkId: number; nodeId: string } => ({ chunkId: readU64(key, 2), nodeId: key.subarray(11).toString('utf8') });
export const chunkKeyParts = (key: Buffer): { ino: Ino; index: number } => ({ ino: readU64(key, 2), index: readU64(key, 11) });
export const memberIdOf = (key: Buffer): string => key.subarray(P.member.length).toString('utf8');

export const inoRangePrefix = (sessionId: string): Buffer => Buffer.concat([P.inoRange, sessionIdBytes(sessionId)]);
export const inoRangeKey = (sessionId: string, first: Ino): Buffer => Buffer.concat([inoRangePrefix(sessionId), u64(first)]);

export const leaseKey = (dir: Ino): Buffer => Buffer.concat([P.lease, u64(dir)]);
export const sharedLeasePrefix = (dir: Ino): Buffer => Buffer.concat([P.lease, u64(dir), P.slash]);
export const sharedLeaseKey = (dir: Ino, sessionId: string): Buffer => Buffer.concat([sharedLeasePrefix(dir), sessionIdBytes(sessionId)]);
export const sessionLeasePrefix = (sessionId: string): Buffer => Buffer.concat([P.leaseBySession, sessionIdBytes(sessionId)]);
export const sessionLeaseKey = (sessionId: string, dir: Ino): Buffer => Buffer.concat([sessionLeasePrefix(sessionId), u64(dir)]);
/** The directory of an exclusive lease key (`l/<dir>`), or undefined for any other key. */
export function exclusiveLeaseDir(key: Buffer): Ino | undefined {
  return key.length === P.lease.length + 8 && key.subarray(0, P.lease.length).equals(P.lease) ? readU64(key, P.lease.length) : undefined;
}
/** Session and directory of a lease-by-session key (`L/<len><session><dir>`), or undefined. */
export function sessionLeaseOf(key: Buffer): { session: string; dir: Ino } | undefined {
  if (key.length < P.leaseBySession.length + 1 + 8 || !key.subarray(0, P.leaseBySession.length).equals(P.leaseBySession)) return undefined;
  const len = key[P.leaseBySession.length];
  const at = P.leaseBySession.length + 1;
  return { session: key.subarray(at, at + len).toString('utf8'), dir: readU64(key, at + len) };
}
/** Both lease tables, for a scan of every lease: `l/…` and `L/…`. */
export const leasePrefixes = (): Buffer[] => [P.lease, P.leaseBySession];
/** The session of a shared lease key (after sharedLeasePrefix). */
export const sharedLeaseSession = (key: Buffer): string => key.subarray(P.lease.length + 9 + 1).toString('utf8');
