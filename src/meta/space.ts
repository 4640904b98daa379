// Which commands need new space (issue 16, decision 0014). While a voter's free space is
// below its reserve the leader refuses these with ENOSPC; everything else — reads, unlink,
// rmdir, rename, truncate and other setattr, opens and releases, and the cluster's own
// housekeeping (GC, repair placements, node records, leases, sessions) — goes on, so a
// user can free space by deleting. Pure.
import type { Command } from './types.js';

/**
 * True when `c` adds data or names: a new inode, a link, an xattr, chunk ids for new chunk
 * data, inline (small-file) data. Not a commitWrite of chunk objects: their bytes are on
 * the chunk servers already (each admitted them against its own reserve), and refusing
 * the refs would leave them as orphans that no delete can free.
 */
export function needsSpace(c: Command): boolean {
  switch (c.op) {
    case 'mknod':
    case 'mkdir':
    case 'symlink':
    case 'link':
    case 'setxattr':
    case 'allocChunkIds':
      return true;
    case 'commitWrite':
      return c.chunks.some((ref) => ref.inline !== undefined && ref.inline.length > 0);
    case 'batch':
      return c.ops.some(needsSpace);
    default:
      return false;
  }
}
