// Small shared helpers of the Raft core: assertions and entry-size limits.
import type { Entry } from './types.js';

/** A programmer error: the caller broke the contract. Crash loudly. */
export function assert(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(`raft: assertion failed: ${what}`);
}

/** Bytes an entry counts for against maxMsgBytes (payload plus a fixed header estimate). */
export function entrySizeBytes(e: Entry): number {
  return e.data.length + ENTRY_OVERHEAD_BYTES;
}

const ENTRY_OVERHEAD_BYTES = 16;

/** The longest prefix of `ents` within maxBytes; never empty if `ents` is not. */
export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entrySizeBytes(ents[0]);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entrySizeBytes(ents[n]);
    if (size > maxBytes) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}
