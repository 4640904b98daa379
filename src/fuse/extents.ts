// A sorted set of disjoint half-open byte ranges [start, end), used to know which
// bytes of a dirty chunk were written by this client.

export class Extents {
  private ranges: Array<[number, number]> = [];

  add(start: number, end: number): void {
    if (end <= start) return;
    const out: Array<[number, number]> = [];
    let s = start;
    let e = end;
    let placed = false;
    for (const [rs, re] of this.ranges) {
      if (re < s) {
        out.push([rs, re]);
      } else if (rs > e) {
        if (!placed) {
          out.push([s, e]);
          placed = true;
        }
        out.push([rs, re]);
      } else {
        s = Math.min(s, rs);
        e = Math.max(e, re);
      }
    }
    if (!placed) out.push([s, e]);
    this.ranges = out;
  }

  /** True when [start, end) is written entirely. */
  covers(start: number, end: number): boolean {
    if (end <= start) return true;
    for (const [rs, re] of this.ranges) {
      if (rs <= start && re >= end) return true;
      if (rs > start) return false;
    }
    return false;
  }

  /** The maximal unwritten sub-ranges of [start, end). */
  gaps(start: number, end: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    let pos = start;
    for (const [rs, re] of this.ranges) {
      if (re <= pos) continue;
      if (rs >= end) break;
      if (rs > pos) out.push([pos, Math.min(rs, end)]);
      pos = Math.max(pos, re);
      if (pos >= end) break;
    }
    if (pos < end) out.push([pos, end]);
    return out;
  }

  /** End of the last written byte, 0 when empty. */
  end(): number {
    return this.ranges.length === 0 ? 0 : this.ranges[this.ranges.length - 1][1];
  }

  /** Forget everything at or past `offset` (a truncate). */
  truncate(offset: number): void {
    this.ranges = this.ranges.filter(([s]) => s < offset).map(([s, e]) => [s, Math.min(e, offset)]);
  }

  clear(): void {
    this.ranges = [];
  }
}
