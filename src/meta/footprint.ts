// What a namespace command touches that a directory lease covers (decision 0012): pure,
// shared by the leader (recalls before a conflicting call) and the client (which leases
// it must give back before a synchronous change).
import type { Command, Ino } from './types.js';

/**
 * What a command reads or changes that an exclusive lease covers: directories whose
 * entries or attributes it touches (`dirs`), and named entries that may themselves be
 * leased directories (an rmdir's target, a rename's source and destination), which the
 * leader resolves. A batch names its session: that session's own leases never conflict.
 */
export interface LeaseFootprint {
  dirs: Ino[];
  entries: Array<{ parent: Ino; name: string }>;
  session: string | null;
}

export function leaseFootprint(c: Command): LeaseFootprint {
  const out: LeaseFootprint = { dirs: [], entries: [], session: null };
  addFootprint(c, out);
  return out;
}

function addFootprint(c: Command, out: LeaseFootprint): void {
  switch (c.op) {
    case 'mknod':
    case 'mkdir':
    case 'symlink':
    case 'unlink':
      out.dirs.push(c.parent);
      return;
    case 'rmdir':
      out.dirs.push(c.parent);
      out.entries.push({ parent: c.parent, name: c.name });
      return;
    case 'link':
      out.dirs.push(c.newParent);
      return;
    case 'rename':
      out.dirs.push(c.parent, c.newParent);
      out.entries.push({ parent: c.parent, name: c.name }, { parent: c.newParent, name: c.newName });
      return;
    case 'setattr':
    case 'setxattr':
    case 'removexattr':
    case 'setlayout':
      out.dirs.push(c.ino);
      return;
    case 'batch':
      if (c.session !== undefined) out.session = c.session;
      for (const op of c.ops) addFootprint(op, out);
      return;
    default:
      return;
  }
}
