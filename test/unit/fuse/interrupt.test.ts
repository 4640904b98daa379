// Which interrupted callers the adapter answers EINTR: only dying ones (fatalSignalPending
// reads /proc/<tid>/status). A caller that handles, blocks or ignores the signal, or gets
// a stop or a default-ignored one, is answered as usual.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fatalSignalPending } from '../../../src/fuse/adapter.js';

const bit = (sig: number) => 1n << BigInt(sig - 1);
const hex = (m: bigint) => m.toString(16).padStart(16, '0');

function status(m: { pnd?: bigint; shd?: bigint; blk?: bigint; ign?: bigint; cgt?: bigint }): string {
  return [
    'Name:\tmkdir',
    'State:\tS (sleeping)',
    'SigQ:\t1/96362',
    `SigPnd:\t${hex(m.pnd ?? 0n)}`,
    `ShdPnd:\t${hex(m.shd ?? 0n)}`,
    `SigBlk:\t${hex(m.blk ?? 0n)}`,
    `SigIgn:\t${hex(m.ign ?? 0n)}`,
    `SigCgt:\t${hex(m.cgt ?? 0n)}`,
    'CapInh:\t0000000000000000',
    '',
  ].join('\n');
}

describe('fatalSignalPending', () => {
  it('nothing pending: not dying', () => {
    expect(fatalSignalPending(status({}))).toBe(false);
  });

  it('SIGKILL pending (also what any fatal signal of the group becomes): dying, even if "caught"', () => {
    expect(fatalSignalPending(status({ pnd: bit(9) }))).toBe(true);
    expect(fatalSignalPending(status({ shd: bit(9), cgt: bit(9), blk: bit(9) }))).toBe(true);
  });

  it('a default-fatal signal (SIGQUIT, SIGTERM, a real-time one) not caught, blocked or ignored: dying', () => {
    expect(fatalSignalPending(status({ shd: bit(3) }))).toBe(true);
    expect(fatalSignalPending(status({ shd: bit(15) }))).toBe(true);
    expect(fatalSignalPending(status({ pnd: bit(40) }))).toBe(true);
  });

  it('caught, blocked or ignored signals, stops and default-ignored signals: not dying', () => {
    expect(fatalSignalPending(status({ shd: bit(10), cgt: bit(10) }))).toBe(false);
    expect(fatalSignalPending(status({ shd: bit(15), blk: bit(15) }))).toBe(false);
    expect(fatalSignalPending(status({ shd: bit(1), ign: bit(1) }))).toBe(false);
    for (const sig of [17, 18, 19, 20, 21, 22, 23, 28]) expect(fatalSignalPending(status({ shd: bit(sig) })), `signal ${sig}`).toBe(false);
  });

  it('reads a real process: a sleeping one is not dying', async () => {
    const c = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      expect(fatalSignalPending(await readFile(`/proc/${c.pid}/status`, 'latin1'))).toBe(false);
    } finally {
      c.kill('SIGKILL');
    }
  });
});
