// Which commands the leader refuses while a voter is below its reserve (decision 0014).
import { describe, expect, it } from 'vitest';
import { needsSpace } from '../../../src/meta/space.js';
import type { Command } from '../../../src/meta/types.js';

const now = { sec: 1, nsec: 0 };
const caller = { uid: 0, gid: 0, groups: [] };

describe('needsSpace', () => {
  it('refuses what adds names or data; lets deletes, truncates, opens and housekeeping through', () => {
    const grows: Command[] = [
      { op: 'mknod', parent: 1, name: 'f', mode: 0o100644, rdev: 0, caller, now },
      { op: 'mkdir', parent: 1, name: 'd', mode: 0o755, caller, now },
      { op: 'symlink', parent: 1, name: 's', target: 't', caller, now },
      { op: 'link', ino: 2, newParent: 1, newName: 'l', now },
      { op: 'setxattr', ino: 2, name: 'user.a', value: Buffer.from('v'), flags: 0, now },
      { op: 'allocChunkIds', count: 64 },
      { op: 'commitWrite', ino: 2, chunks: [{ index: 0, chunkId: 0, sizeBytes: 3, placement: [], inline: Buffer.from('abc') }], sizeBytes: 3, mtime: now, now },
      { op: 'batch', ops: [{ op: 'unlink', parent: 1, name: 'x', now }, { op: 'mkdir', parent: 1, name: 'd2', mode: 0o755, caller, now }] },
    ];
    const passes: Command[] = [
      { op: 'unlink', parent: 1, name: 'f', now },
      { op: 'rmdir', parent: 1, name: 'd', now },
      { op: 'rename', parent: 1, name: 'a', newParent: 1, newName: 'b', flags: 0, now },
      { op: 'setattr', ino: 2, set: { size: 0 }, now },
      { op: 'removexattr', ino: 2, name: 'user.a', now },
      { op: 'open', ino: 2, session: 's', handle: 1 },
      { op: 'closeSession', session: 's' },
      { op: 'gcDone', chunkIds: [1] },
      { op: 'setPlacement', chunkId: 1, placement: ['n1'] },
      // Chunk objects already on the chunk servers: refusing the refs would orphan them.
      { op: 'commitWrite', ino: 2, chunks: [{ index: 0, chunkId: 9, sizeBytes: 4096, placement: ['n1'] }], sizeBytes: 4096, mtime: now, now },
      { op: 'batch', ops: [{ op: 'unlink', parent: 1, name: 'x', now }] },
    ];
    for (const c of grows) expect(needsSpace(c), c.op).toBe(true);
    for (const c of passes) expect(needsSpace(c), c.op).toBe(false);
  });
});
