// Value encodings. Every value starts with a format byte so a later format can be read
// next to this one. Attrs are binary because every operation reads them.
import type { Attr, ChunkEc, Ino, Layout, Result, Timespec } from './types.js';

const V1 = 1;

class Writer {
  private buf = Buffer.allocUnsafe(128);
  private pos = 0;
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  u8(v: number): this {
    this.ensure(1);
    this.buf.writeUInt8(v, this.pos);
    this.pos += 1;
    return this;
  }
  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }
  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }
  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`not a u64: ${v}`);
    return this.u32(Math.floor(v / 0x1_0000_0000)).u32(v >>> 0);
  }
  /** Signed integer seconds, exact up to 2^53, stored as a float64. */
  i53(v: number): this {
    if (!Number.isSafeInteger(v)) throw new RangeError(`not a safe integer: ${v}`);
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
    return this;
  }
  bytes(b: Buffer): this {
    this.ensure(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
    return this;
  }
  done(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  u8(): number {
    return this.buf.readUInt8(this.pos++);
  }
  u16(): number {
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): number {
    return this.u32() * 0x1_0000_0000 + this.u32();
  }
  i53(): number {
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }
  bytes(n: number): Buffer {
    if (this.pos + n > this.buf.length) throw new RangeError('truncated value');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  end(): void {
    if (this.pos !== this.buf.length) throw new RangeError('trailing bytes in value');
  }
}

function version(r: Reader, what: string): void {
  const v = r.u8();
  if (v !== V1) throw new Error(`unknown ${what} value format ${v}`);
}

/** What an inode key holds: the attrs plus what is not part of Attr. */
export interface InodeRecord {
  attr: Attr;
  /** For a directory, the directory holding it (root: itself); 0 otherwise. */
  parent: Ino;
  /** For a symlink, its target bytes; '' otherwise. */
  target: string;
}

function writeTime(w: Writer, t: Timespec): void {
  w.i53(t.sec).u32(t.nsec);
}
function readTime(r: Reader): Timespec {
  return { sec: r.i53(), nsec: r.u32() };
}

function encodeLayout(w: Writer, l: Layout): void {
  if (l.kind === 'replicas') w.u8(1).u8(l.replicas).u8(0);
  else w.u8(2).u8(l.k).u8(l.m);
}
function readLayout(r: Reader): Layout {
  const kind = r.u8();
  const a = r.u8();
  const b = r.u8();
  if (kind === 1) return { kind: 'replicas', replicas: a };
  if (kind === 2) return { kind: 'ec', k: a, m: b };
  throw new Error(`unknown layout kind ${kind}`);
}

export function encodeInode(rec: InodeRecord): Buffer {
  const a = rec.attr;
  const w = new Writer()
    .u8(V1)
    .u32(a.mode)
    .u32(a.uid)
    .u32(a.gid)
    .u64(a.size)
    .u32(a.nlink)
    .u32(a.rdev);
  writeTime(w, a.atime);
  writeTime(w, a.mtime);
  writeTime(w, a.ctime);
  w.u64(a.version).u32(a.chunkSizeBytes);
  encodeLayout(w, a.layout);
  w.u64(rec.parent);
  const target = Buffer.from(rec.target, 'latin1');
  w.u16(target.length).bytes(target);
  return w.done();
}

export function decodeInode(ino: Ino, value: Buffer): InodeRecord {
  const r = new Reader(value);
  version(r, 'inode');
  const mode = r.u32();
  const uid = r.u32();
  const gid = r.u32();
  const size = r.u64();
  const nlink = r.u32();
  const rdev = r.u32();
  const atime = readTime(r);
  const mtime = readTime(r);
  const ctime = readTime(r);
  const attrVersion = r.u64();
  const chunkSizeBytes = r.u32();
  const layout = readLayout(r);
  const parent = r.u64();
  const target = r.bytes(r.u16()).toString('latin1');
  r.end();
  return {
    attr: { ino, mode, uid, gid, size, nlink, rdev, atime, mtime, ctime, version: attrVersion, chunkSizeBytes, layout },
    parent,
    target,
  };
}

export interface DentryValue {
  ino: Ino;
  /** mode & S_IFMT of the inode. */
  type: number;
}
export function encodeDentry(d: DentryValue): Buffer {
  return new Writer().u8(V1).u64(d.ino).u32(d.type).done();
}
export function decodeDentry(value: Buffer): DentryValue {
  const r = new Reader(value);
  version(r, 'dentry');
  const ino = r.u64();
  const type = r.u32();
  r.end();
  return { ino, type };
}

function writePlacement(w: Writer, placement: string[]): void {
  if (placement.length > 255) throw new RangeError('placement too long');
  w.u8(placement.length);
  for (const node of placement) {
    const b = Buffer.from(node, 'utf8');
    w.u16(b.length).bytes(b);
  }
}
function readPlacement(r: Reader): string[] {
  const n = r.u8();
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(r.bytes(r.u16()).toString('utf8'));
  return out;
}

/** A chunk ref without its index (the index is in the key). */
export interface ChunkValue {
  chunkId: number;
  sizeBytes: number;
  placement: string[];
  inline?: Buffer;
  ec?: ChunkEc;
}
/** Chunk values with inline data use format 2: format 1 plus a length-prefixed data field. */
const CHUNK_INLINE_V2 = 2;
/** Erasure-coded chunks use format 3: format 1 plus u8 k, u8 m, u32 shard bytes. */
const CHUNK_EC_V3 = 3;
export function encodeChunk(c: ChunkValue): Buffer {
  if (c.inline && c.ec) throw new RangeError('a chunk is inline or erasure-coded, not both');
  const w = new Writer().u8(c.inline ? CHUNK_INLINE_V2 : c.ec ? CHUNK_EC_V3 : V1).u64(c.chunkId).u32(c.sizeBytes);
  writePlacement(w, c.placement);
  if (c.inline) w.u32(c.inline.length).bytes(c.inline);
  if (c.ec) w.u8(c.ec.k).u8(c.ec.m).u32(c.ec.shardBytes);
  return w.done();
}
/** Whether a chunk value holds its data inline (it names no chunk object): read without decoding it. */
export function isInlineChunkValue(value: Buffer): boolean {
  return value.length > 0 && value[0] === CHUNK_INLINE_V2;
}
export function decodeChunk(value: Buffer): ChunkValue {
  const r = new Reader(value);
  const v = r.u8();
  if (v !== V1 && v !== CHUNK_INLINE_V2 && v !== CHUNK_EC_V3) throw new Error(`unknown chunk value format ${v}`);
  const chunkId = r.u64();
  const sizeBytes = r.u32();
  const placement = readPlacement(r);
  const inline = v === CHUNK_INLINE_V2 ? Buffer.from(r.bytes(r.u32())) : undefined;
  const ec = v === CHUNK_EC_V3 ? { k: r.u8(), m: r.u8(), shardBytes: r.u32() } : undefined;
  r.end();
  if (inline) return { chunkId, sizeBytes, placement, inline };
  return ec ? { chunkId, sizeBytes, placement, ec } : { chunkId, sizeBytes, placement };
}

export function encodeGarbage(placement: string[]): Buffer {
  const w = new Writer().u8(V1);
  writePlacement(w, placement);
  return w.done();
}
export function decodeGarbage(value: Buffer): string[] {
  const r = new Reader(value);
  version(r, 'garbage');
  const p = readPlacement(r);
  r.end();
  return p;
}

export function encodeU64(n: number): Buffer {
  return new Writer().u64(n).done();
}
export function decodeU64(value: Buffer): number {
  const r = new Reader(value);
  const n = r.u64();
  r.end();
  return n;
}

export function encodeXattr(value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([V1]), value]);
}
export function decodeXattr(value: Buffer): Buffer {
  if (value[0] !== V1) throw new Error(`unknown xattr value format ${value[0]}`);
  return Buffer.from(value.subarray(1));
}

/** The last command a client had applied and its result, for retried commands. */
export interface ClientRecord {
  seq: number;
  result: Result<unknown>;
}
// JSON: results are small plain data (Attr, null, {first}) and rarely read.
export function encodeClient(rec: ClientRecord): Buffer {
  return Buffer.concat([Buffer.from([V1]), Buffer.from(JSON.stringify(rec), 'utf8')]);
}
export function decodeClient(value: Buffer): ClientRecord {
  if (value[0] !== V1) throw new Error(`unknown client record format ${value[0]}`);
  return JSON.parse(value.subarray(1).toString('utf8')) as ClientRecord;
}
