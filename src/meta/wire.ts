// Conversions between namespace values (types.ts) and meta.proto messages. Byte-string
// names travel as protobuf bytes (latin1 <-> Buffer is lossless).
import type { Attr as PAttr, Attr__Output as PAttrOut } from './gen/dfs/meta/Attr.js';
import type { ChunkRef as PChunkRef, ChunkRef__Output as PChunkRefOut } from './gen/dfs/meta/ChunkRef.js';
import type { CommandRequest, CommandRequest__Output } from './gen/dfs/meta/CommandRequest.js';
import type { Layout as PLayout, Layout__Output as PLayoutOut } from './gen/dfs/meta/Layout.js';
import type { SetAttrFields as PSet, SetAttrFields__Output as PSetOut } from './gen/dfs/meta/SetAttrFields.js';
import type { Timespec as PTimespec, Timespec__Output as PTimespecOut } from './gen/dfs/meta/Timespec.js';
import type { Caller__Output as PCallerOut } from './gen/dfs/meta/Caller.js';
import type { CommandReply, CommandReply__Output } from './gen/dfs/meta/CommandReply.js';
import type { Attr, ChunkRef, Command, CommandValues, DelegatedIno, Layout, NodeState, Result, SetAttrFields, Timespec } from './types.js';

export const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
export const str = (b: Buffer | null | undefined): string => (b ? b.toString('latin1') : '');

const ZERO: Timespec = { sec: 0, nsec: 0 };

export function tsToWire(t: Timespec): PTimespec {
  return { sec: t.sec, nsec: t.nsec };
}

export function tsFromWire(t: PTimespecOut | null | undefined): Timespec {
  return t ? { sec: Number(t.sec), nsec: t.nsec } : ZERO;
}

export function layoutToWire(l: Layout): PLayout {
  return l.kind === 'replicas' ? { kind: 'replicas', replicas: l.replicas } : { kind: 'ec', k: l.k, m: l.m };
}

export function layoutFromWire(l: PLayoutOut | null | undefined): Layout {
  if (l && l.kind === 'ec') return { kind: 'ec', k: l.k, m: l.m };
  return { kind: 'replicas', replicas: l?.replicas || 3 };
}

export function attrToWire(a: Attr): PAttr {
  return {
    ino: a.ino,
    mode: a.mode,
    uid: a.uid,
    gid: a.gid,
    size: a.size,
    nlink: a.nlink,
    rdev: a.rdev,
    atime: tsToWire(a.atime),
    mtime: tsToWire(a.mtime),
    ctime: tsToWire(a.ctime),
    version: a.version,
    chunkSizeBytes: a.chunkSizeBytes,
    layout: layoutToWire(a.layout),
  };
}

export function attrFromWire(a: PAttrOut | null | undefined): Attr {
  if (!a) throw new Error('meta wire: reply without attr');
  return {
    ino: a.ino,
    mode: a.mode,
    uid: a.uid,
    gid: a.gid,
    size: a.size,
    nlink: a.nlink,
    rdev: a.rdev,
    atime: tsFromWire(a.atime),
    mtime: tsFromWire(a.mtime),
    ctime: tsFromWire(a.ctime),
    version: a.version,
    chunkSizeBytes: a.chunkSizeBytes,
    layout: layoutFromWire(a.layout),
  };
}

export function chunkToWire(c: ChunkRef): PChunkRef {
  const out: PChunkRef = { index: c.index, chunkId: c.chunkId, sizeBytes: c.sizeBytes, placement: c.placement };
  if (c.inline) {
    out.hasInline = true;
    out.inline = c.inline;
  }
  if (c.ec) {
    out.ecK = c.ec.k;
    out.ecM = c.ec.m;
    out.ecShardBytes = c.ec.shardBytes;
  }
  return out;
}

export function chunkFromWire(c: PChunkRefOut): ChunkRef {
  const out: ChunkRef = { index: c.index, chunkId: c.chunkId, sizeBytes: c.sizeBytes, placement: [...c.placement] };
  if (c.hasInline) out.inline = c.inline;
  if (c.ecK > 0) out.ec = { k: c.ecK, m: c.ecM, shardBytes: c.ecShardBytes };
  return out;
}

function timeHowToWire(t: Timespec | 'now' | undefined): { how: number; time?: PTimespec } {
  if (t === undefined) return { how: 0 };
  if (t === 'now') return { how: 2 };
  return { how: 1, time: tsToWire(t) };
}

function timeHowFromWire(how: number, t: PTimespecOut | null): Timespec | 'now' | undefined {
  if (how === 1) return tsFromWire(t);
  if (how === 2) return 'now';
  return undefined;
}

export function setToWire(s: SetAttrFields): PSet {
  const at = timeHowToWire(s.atime);
  const mt = timeHowToWire(s.mtime);
  return {
    hasMode: s.mode !== undefined,
    mode: s.mode ?? 0,
    hasUid: s.uid !== undefined,
    uid: s.uid ?? 0,
    hasGid: s.gid !== undefined,
    gid: s.gid ?? 0,
    hasSize: s.size !== undefined,
    size: s.size ?? 0,
    atimeHow: at.how,
    atime: at.time,
    mtimeHow: mt.how,
    mtime: mt.time,
  };
}

export function setFromWire(s: PSetOut | null): SetAttrFields {
  const out: SetAttrFields = {};
  if (!s) return out;
  if (s.hasMode) out.mode = s.mode;
  if (s.hasUid) out.uid = s.uid;
  if (s.hasGid) out.gid = s.gid;
  if (s.hasSize) out.size = s.size;
  const at = timeHowFromWire(s.atimeHow, s.atime);
  if (at !== undefined) out.atime = at;
  const mt = timeHowFromWire(s.mtimeHow, s.mtime);
  if (mt !== undefined) out.mtime = mt;
  return out;
}

function delegatedFromWire(d: { session: string; ino: number; rangeFirst: number }): DelegatedIno {
  return d.rangeFirst > 0 ? { session: d.session, ino: d.ino, first: d.rangeFirst } : { session: d.session, ino: d.ino };
}

function delegatedToWire(d: DelegatedIno | undefined): { session: string; ino: number; rangeFirst: number } | null {
  return d ? { session: d.session, ino: d.ino, rangeFirst: d.first ?? 0 } : null;
}

function caller(c: PCallerOut | null): { uid: number; gid: number } {
  return { uid: c?.uid ?? 0, gid: c?.gid ?? 0 };
}

export function commandToWire(c: Command, clientId: string, seq: number): CommandRequest {
  const base = { clientId, seq };
  switch (c.op) {
    case 'mknod':
      return {
        ...base,
        mknod: {
          parent: c.parent,
          name: bytes(c.name),
          mode: c.mode,
          rdev: c.rdev,
          caller: c.caller,
          now: tsToWire(c.now),
          hasOpen: c.open !== undefined,
          openSession: c.open?.session ?? '',
          openHandle: c.open?.handle ?? 0,
          delegated: delegatedToWire(c.delegated),
        },
      };
    case 'mkdir':
      return { ...base, mkdir: { parent: c.parent, name: bytes(c.name), mode: c.mode, caller: c.caller, now: tsToWire(c.now), delegated: delegatedToWire(c.delegated), lease: c.lease ?? '' } };
    case 'symlink':
      return {
        ...base,
        symlink: { parent: c.parent, name: bytes(c.name), target: bytes(c.target), caller: c.caller, now: tsToWire(c.now), delegated: delegatedToWire(c.delegated) },
      };
    case 'link':
      return { ...base, link: { ino: c.ino, newParent: c.newParent, newName: bytes(c.newName), now: tsToWire(c.now) } };
    case 'unlink':
      return { ...base, unlink: { parent: c.parent, name: bytes(c.name), now: tsToWire(c.now) } };
    case 'rmdir':
      return { ...base, rmdir: { parent: c.parent, name: bytes(c.name), now: tsToWire(c.now) } };
    case 'rename':
      return {
        ...base,
        rename: { parent: c.parent, name: bytes(c.name), newParent: c.newParent, newName: bytes(c.newName), flags: c.flags, now: tsToWire(c.now) },
      };
    case 'setattr':
      return { ...base, setattr: { ino: c.ino, set: setToWire(c.set), now: tsToWire(c.now) } };
    case 'setxattr':
      return { ...base, setxattr: { ino: c.ino, name: bytes(c.name), value: c.value, flags: c.flags, now: tsToWire(c.now) } };
    case 'removexattr':
      return { ...base, removexattr: { ino: c.ino, name: bytes(c.name), now: tsToWire(c.now) } };
    case 'setlayout':
      return { ...base, setlayout: { ino: c.ino, layout: layoutToWire(c.layout), now: tsToWire(c.now) } };
    case 'open':
      return { ...base, open: { ino: c.ino, session: c.session, handle: c.handle } };
    case 'release':
      return { ...base, release: { ino: c.ino, session: c.session, handle: c.handle } };
    case 'handles':
      return { ...base, handles: { session: c.session, items: c.items.map((i) => ({ open: i.open, ino: i.ino, handle: i.handle })) } };
    case 'closeSession':
      return { ...base, closeSession: { session: c.session } };
    case 'allocChunkIds':
      return { ...base, allocChunkIds: { count: c.count } };
    case 'allocInodes':
      return { ...base, allocInodes: { session: c.session, count: c.count } };
    case 'commitWrite':
      return {
        ...base,
        commitWrite: { ino: c.ino, chunks: c.chunks.map(chunkToWire), sizeBytes: c.sizeBytes, mtime: tsToWire(c.mtime), now: tsToWire(c.now) },
      };
    case 'gcDone':
      return { ...base, gcDone: { chunkIds: c.chunkIds } };
    case 'registerNode':
      return { ...base, registerNode: { nodeId: c.node.nodeId, address: c.node.address, zone: c.node.zone, rack: c.node.rack } };
    case 'setNodeState':
      return { ...base, setNodeState: { nodeId: c.nodeId, state: c.state } };
    case 'setPlacement':
      return { ...base, setPlacement: { chunkId: c.chunkId, placement: c.placement } };
    case 'reportBadCopy':
      return { ...base, reportBadCopy: { chunkId: c.chunkId, nodeId: c.nodeId } };
    case 'batch':
      return { ...base, batch: { ops: c.ops.map((o) => commandToWire(o, '', 0)), hasSession: c.session !== undefined, session: c.session ?? '', lastPlain: c.lastPlain === true } };
    case 'leaseGrant':
      return { ...base, leaseGrant: { session: c.session, ino: c.ino, exclusive: c.exclusive } };
    case 'leaseRelease':
      return { ...base, leaseRelease: { session: c.session, ino: c.ino } };
    case 'sessionExpire':
      return { ...base, sessionExpire: { session: c.session } };
    case 'clientsExpire':
      return { ...base, clientsExpire: { clients: c.clients.map((k) => ({ clientId: k.clientId, seq: k.seq })) } };
  }
}

/** The command in a request, or null when the request names none (a malformed call). */
export function commandFromWire(r: CommandRequest__Output): Command | null {
  switch (r.command) {
    case 'mknod': {
      const c = r.mknod!;
      const cmd: Command = { op: 'mknod', parent: c.parent, name: str(c.name), mode: c.mode, rdev: c.rdev, caller: caller(c.caller), now: tsFromWire(c.now) };
      if (c.hasOpen) cmd.open = { session: c.openSession, handle: c.openHandle };
      if (c.delegated) cmd.delegated = delegatedFromWire(c.delegated);
      return cmd;
    }
    case 'mkdir': {
      const c = r.mkdir!;
      const cmd: Extract<Command, { op: 'mkdir' }> = { op: 'mkdir', parent: c.parent, name: str(c.name), mode: c.mode, caller: caller(c.caller), now: tsFromWire(c.now) };
      if (c.delegated) cmd.delegated = delegatedFromWire(c.delegated);
      if (c.lease) cmd.lease = c.lease;
      return cmd;
    }
    case 'symlink': {
      const c = r.symlink!;
      const cmd: Command = { op: 'symlink', parent: c.parent, name: str(c.name), target: str(c.target), caller: caller(c.caller), now: tsFromWire(c.now) };
      if (c.delegated) cmd.delegated = delegatedFromWire(c.delegated);
      return cmd;
    }
    case 'link': {
      const c = r.link!;
      return { op: 'link', ino: c.ino, newParent: c.newParent, newName: str(c.newName), now: tsFromWire(c.now) };
    }
    case 'unlink': {
      const c = r.unlink!;
      return { op: 'unlink', parent: c.parent, name: str(c.name), now: tsFromWire(c.now) };
    }
    case 'rmdir': {
      const c = r.rmdir!;
      return { op: 'rmdir', parent: c.parent, name: str(c.name), now: tsFromWire(c.now) };
    }
    case 'rename': {
      const c = r.rename!;
      return { op: 'rename', parent: c.parent, name: str(c.name), newParent: c.newParent, newName: str(c.newName), flags: c.flags, now: tsFromWire(c.now) };
    }
    case 'setattr': {
      const c = r.setattr!;
      return { op: 'setattr', ino: c.ino, set: setFromWire(c.set), now: tsFromWire(c.now) };
    }
    case 'setxattr': {
      const c = r.setxattr!;
      return { op: 'setxattr', ino: c.ino, name: str(c.name), value: c.value, flags: c.flags, now: tsFromWire(c.now) };
    }
    case 'removexattr': {
      const c = r.removexattr!;
      return { op: 'removexattr', ino: c.ino, name: str(c.name), now: tsFromWire(c.now) };
    }
    case 'setlayout': {
      const c = r.setlayout!;
      return { op: 'setlayout', ino: c.ino, layout: layoutFromWire(c.layout), now: tsFromWire(c.now) };
    }
    case 'open': {
      const c = r.open!;
      return { op: 'open', ino: c.ino, session: c.session, handle: c.handle };
    }
    case 'release': {
      const c = r.release!;
      return { op: 'release', ino: c.ino, session: c.session, handle: c.handle };
    }
    case 'handles': {
      const c = r.handles!;
      return { op: 'handles', session: c.session, items: c.items.map((i) => ({ open: i.open, ino: i.ino, handle: i.handle })) };
    }
    case 'closeSession':
      return { op: 'closeSession', session: r.closeSession!.session };
    case 'allocChunkIds':
      return { op: 'allocChunkIds', count: r.allocChunkIds!.count };
    case 'commitWrite': {
      const c = r.commitWrite!;
      return { op: 'commitWrite', ino: c.ino, chunks: c.chunks.map(chunkFromWire), sizeBytes: c.sizeBytes, mtime: tsFromWire(c.mtime), now: tsFromWire(c.now) };
    }
    case 'gcDone':
      return { op: 'gcDone', chunkIds: [...r.gcDone!.chunkIds] };
    case 'registerNode': {
      const n = r.registerNode!;
      return { op: 'registerNode', node: { nodeId: n.nodeId, address: n.address, zone: n.zone, rack: n.rack } };
    }
    case 'setNodeState':
      return { op: 'setNodeState', nodeId: r.setNodeState!.nodeId, state: r.setNodeState!.state as NodeState };
    case 'setPlacement':
      return { op: 'setPlacement', chunkId: r.setPlacement!.chunkId, placement: [...r.setPlacement!.placement] };
    case 'reportBadCopy':
      return { op: 'reportBadCopy', chunkId: r.reportBadCopy!.chunkId, nodeId: r.reportBadCopy!.nodeId };
    case 'allocInodes':
      return { op: 'allocInodes', session: r.allocInodes!.session, count: r.allocInodes!.count };
    case 'batch': {
      const ops: Command[] = [];
      for (const o of r.batch!.ops) {
        const cmd = commandFromWire(o);
        if (cmd === null) return null;
        ops.push(cmd);
      }
      const b = r.batch!;
      const cmd: Extract<Command, { op: 'batch' }> = b.hasSession ? { op: 'batch', ops, session: b.session } : { op: 'batch', ops };
      if (b.lastPlain) cmd.lastPlain = true;
      return cmd;
    }
    case 'leaseGrant':
      return { op: 'leaseGrant', session: r.leaseGrant!.session, ino: r.leaseGrant!.ino, exclusive: r.leaseGrant!.exclusive };
    case 'leaseRelease':
      return { op: 'leaseRelease', session: r.leaseRelease!.session, ino: r.leaseRelease!.ino };
    case 'sessionExpire':
      return { op: 'sessionExpire', session: r.sessionExpire!.session };
    case 'clientsExpire':
      return { op: 'clientsExpire', clients: r.clientsExpire!.clients.map((k) => ({ clientId: k.clientId, seq: k.seq })) };
    default:
      return null;
  }
}

/** A command's result as the Execute RPC (and a forwarded command, src/daemon/forward.ts) answers it. */
export function commandReply(command: Command, r: Result<unknown>): CommandReply {
  if (!r.ok) return { errno: r.errno };
  const dirs = r.dirs?.map(attrToWire) ?? [];
  if (command.op === 'allocChunkIds') return { errno: 0, firstChunkId: (r.value as CommandValues['allocChunkIds']).first, dirs };
  if (command.op === 'allocInodes') {
    const v = r.value as CommandValues['allocInodes'];
    return { errno: 0, firstIno: v.first, chunkSizeBytes: v.chunkSizeBytes, dirs };
  }
  if (command.op === 'handles') return { errno: 0, skipped: (r.value as CommandValues['handles']).skipped, dirs };
  if (command.op === 'batch') {
    const v = r.value as CommandValues['batch'];
    return { errno: 0, batch: { applied: v.applied, errno: v.errno, last: v.last ? attrToWire(v.last) : null }, dirs };
  }
  if (r.value === null) return { errno: 0, none: true, dirs };
  return { errno: 0, attr: attrToWire(r.value as Attr), dirs };
}

/** The client's side of commandReply. */
export function resultOfReply(v: CommandReply__Output): Result<unknown> {
  if (v.errno) return { ok: false, errno: v.errno };
  let value: unknown = null;
  if (v.value === 'attr') value = attrFromWire(v.attr);
  else if (v.value === 'firstChunkId') value = { first: v.firstChunkId };
  else if (v.value === 'skipped') value = { skipped: v.skipped };
  else if (v.value === 'firstIno') value = { first: v.firstIno, chunkSizeBytes: v.chunkSizeBytes };
  else if (v.value === 'batch') {
    const b = v.batch;
    value = b?.last ? { applied: b.applied, errno: b.errno, last: attrFromWire(b.last) } : { applied: b?.applied ?? 0, errno: b?.errno ?? 0 };
  }
  if (v.dirs.length === 0) return { ok: true, value };
  return { ok: true, value, dirs: v.dirs.map(attrFromWire) };
}
