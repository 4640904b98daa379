// Directory attributes learned from this client's own namespace commands.
//
// After a create, unlink, mkdir or rename the kernel drops its cached attributes of the
// directory (they changed) and asks for them again at the next path walk through it:
// one GETATTR round trip per create in a loop, a third of its cost. Every command's reply
// carries the directories it changed as they are right after it (`Result.dirs`); the
// next GETATTR of such a directory within `reuseMs` is answered from that. It is what
// a GETATTR at the command's commit would have returned, and it is served only briefly,
// so another client's later change shows after at most `reuseMs` plus the kernel's own
// attribute TTL, as for any attribute the kernel caches.
import type { Attr, Ino, Result } from '../meta/types.js';

/** How long after a command its directory attributes answer GETATTR. */
export const DIR_ATTR_REUSE_MS = 100;
/** Directories remembered at most (the oldest go first). */
const DIR_ATTR_MAX = 1024;

export class DirAttrs {
  private readonly byIno = new Map<Ino, { attr: Attr; atMs: number }>();

  /** `reuseMs` 0 turns it off (a mount with attribute caching off). */
  constructor(private readonly reuseMs: number = DIR_ATTR_REUSE_MS) {}

  /** Remember the directories a command's result names. */
  note(r: Result<unknown>): void {
    if (!r.ok || !r.dirs || this.reuseMs <= 0) return;
    const now = performance.now();
    for (const attr of r.dirs) {
      const had = this.byIno.get(attr.ino);
      // Replies of concurrent commands may arrive out of order: the newest version wins.
      if (had && had.attr.version > attr.version) continue;
      this.byIno.delete(attr.ino);
      this.byIno.set(attr.ino, { attr, atMs: now });
    }
    while (this.byIno.size > DIR_ATTR_MAX) {
      const oldest = this.byIno.keys().next();
      if (oldest.done) break;
      this.byIno.delete(oldest.value);
    }
  }

  /** The attributes of `ino` if a command of ours returned them less than `reuseMs` ago. */
  get(ino: Ino): Attr | undefined {
    const e = this.byIno.get(ino);
    if (!e) return undefined;
    if (performance.now() - e.atMs >= this.reuseMs) {
      this.byIno.delete(ino);
      return undefined;
    }
    return e.attr;
  }
}
