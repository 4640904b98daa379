// The Overview page's repair ETA: from the pace the queue shrank, never from nothing.
import { describe, expect, it } from 'vitest';
import { durationText, repairEtaMs } from '../../../src/console/eta.js';

const s = (timeMs: number, repairQueue: number | null) => ({ timeMs, repairQueue });

describe('repairEtaMs', () => {
  it('extrapolates the last two minutes', () => {
    // 100 → 80 chunks in 20 s: 80 more take 80 s.
    expect(repairEtaMs([s(0, 100), s(10_000, 90), s(20_000, 80)], 80)).toBe(80_000);
    // Only the window counts: the old fast drop is ignored.
    expect(repairEtaMs([s(0, 1000), s(200_000, 100), s(300_000, 90), s(310_000, 80)], 80)).toBeCloseTo((80 / 20) * 110_000);
  });

  it('is unknown without a shrinking queue or enough samples', () => {
    expect(repairEtaMs([], 5)).toBeNull();
    expect(repairEtaMs([s(0, 5)], 5)).toBeNull();
    expect(repairEtaMs([s(0, 5), s(10_000, 7)], 7)).toBeNull();
    expect(repairEtaMs([s(0, null), s(10_000, 5)], 5)).toBeNull();
    expect(repairEtaMs([s(0, 9), s(10_000, 5)], 0)).toBeNull();
  });

  it('reads as seconds, minutes or hours', () => {
    expect(durationText(400)).toBe('1 s');
    expect(durationText(80_000)).toBe('80 s');
    expect(durationText(600_000)).toBe('10 min');
    expect(durationText(3 * 3_600_000 + 1_800_000)).toBe('3.5 h');
  });
});
