import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { blockCrcs } from '../../../src/chunks/crc.js';
import {
  checkEcScheme,
  dataShardRanges,
  decodeData,
  EC_MAX_DATA_SHARDS,
  EC_MAX_PARITY_SHARDS,
  EcError,
  encodeStripe,
  parseEcScheme,
  reconstruct,
  shardSizeBytes,
} from '../../../src/chunks/ec.js';
import { patternBytes } from './helpers.js';

const MiB = 1024 * 1024;
const SCHEMES: Array<[number, number]> = [
  [1, 1],
  [2, 1],
  [3, 2],
  [4, 2],
  [6, 3],
  [8, 3],
  [10, 4],
  [12, 6],
  [24, 6],
];

/** Sizes: the edges (0, 1, around the 8-byte shard unit), odd sizes, and a few multi-MiB. */
const sizeArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(0, 1, 7, 8, 9, 63, 65, 4095, 4097) },
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 300_000 }) },
  { weight: 1, arbitrary: fc.constantFrom(MiB + 1, 4 * MiB, 4 * MiB - 3, 6 * MiB + 5) },
);

/** A scheme, a size, a seed and an erasure set of at most m shard indexes. */
const caseArb = fc
  .record({ scheme: fc.constantFrom(...SCHEMES), sizeBytes: sizeArb, seed: fc.integer({ min: 1, max: 0x7fffffff }) })
  .chain(({ scheme, sizeBytes, seed }) => {
    const [k, m] = scheme;
    return fc
      .uniqueArray(fc.integer({ min: 0, max: k + m - 1 }), { maxLength: m })
      .map((erased) => ({ k, m, sizeBytes, seed, erased }));
  });

function erase<T>(shards: T[], erased: number[]): Array<T | null> {
  return shards.map((s, i) => (erased.includes(i) ? null : s));
}

async function expectEcError(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const error: unknown = await promise.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EcError);
  expect((error as EcError).code).toBe(code);
  expect((error as EcError).message).toMatch(message);
}

describe('erasure coding (src/chunks/ec.ts)', () => {
  it('shards are ceil(size/k) rounded up to 8 bytes, data shards hold the chunk in order', async () => {
    expect(shardSizeBytes(0, 6)).toBe(0);
    expect(shardSizeBytes(1, 6)).toBe(8);
    expect(shardSizeBytes(48, 6)).toBe(8);
    expect(shardSizeBytes(49, 6)).toBe(16);
    expect(shardSizeBytes(4 * MiB, 4)).toBe(MiB);
    expect(shardSizeBytes(4 * MiB, 6)).toBe(699_056);

    const data = patternBytes(1000, 3);
    const shards = await encodeStripe(data, 6, 3);
    expect(shards).toHaveLength(9);
    for (const s of shards) expect(s.length).toBe(168);
    expect(Buffer.concat(shards.slice(0, 6)).subarray(0, 1000).equals(data)).toBe(true);
    expect(Buffer.concat(shards.slice(0, 6)).subarray(1000).every((b) => b === 0)).toBe(true);
  });

  it('any k of k+m shards give back the data (property: random sizes, schemes, erasure sets ≤ m)', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ k, m, sizeBytes, seed, erased }) => {
        const data = patternBytes(sizeBytes, seed);
        const shards = await encodeStripe(data, k, m);
        expect(shards).toHaveLength(k + m);

        const decoded = await decodeData(erase(shards, erased), k, m, sizeBytes);
        expect(decoded.length).toBe(sizeBytes);
        expect(decoded.equals(data)).toBe(true);

        const rebuilt = await reconstruct(erase(shards, erased), k, m);
        for (let i = 0; i < k + m; i++) expect(rebuilt[i].equals(shards[i]), `shard ${i}`).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('every erasure set of size m is decodable for 6+3 and 4+2 (exhaustive)', async () => {
    for (const [k, m] of [
      [6, 3],
      [4, 2],
      [10, 4],
    ]) {
      const data = patternBytes(100_003, k * 31 + m);
      const shards = await encodeStripe(data, k, m);
      const n = k + m;
      for (let mask = 0; mask < 1 << n; mask++) {
        let bits = 0;
        for (let i = 0; i < n; i++) bits += (mask >> i) & 1;
        if (bits !== m) continue;
        const erased = [...Array(n).keys()].filter((i) => (mask >> i) & 1);
        const decoded = await decodeData(erase(shards, erased), k, m, data.length);
        expect(decoded.equals(data), `${k}+${m} without ${erased.join(',')}`).toBe(true);
      }
    }
  });

  it('more than m missing shards is TOO_FEW_SHARDS, with a message that says how many', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...SCHEMES).chain(([k, m]) =>
          fc.uniqueArray(fc.integer({ min: 0, max: k + m - 1 }), { minLength: m + 1, maxLength: k + m }).map((erased) => ({ k, m, erased })),
        ),
        async ({ k, m, erased }) => {
          const shards = await encodeStripe(patternBytes(5000, 9), k, m);
          const present = k + m - erased.length;
          const message = new RegExp(`${present} of ${k + m} shards present, ${k} needed`);
          await expectEcError(decodeData(erase(shards, erased), k, m, 5000), 'TOO_FEW_SHARDS', message);
          await expectEcError(reconstruct(erase(shards, erased), k, m), 'TOO_FEW_SHARDS', message);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a corrupted shard caught by its CRC32C and treated as missing still decodes to the right bytes', async () => {
    const [k, m] = [6, 3];
    const data = patternBytes(4 * MiB - 123, 42);
    const shards = await encodeStripe(data, k, m);
    // What the chunk store keeps next to each shard object: one CRC32C per 64 KiB block.
    const blockBytes = 64 * 1024;
    const stored = shards.map((s) => blockCrcs(s, blockBytes));

    // Bit rot in data shard 2 and parity shard 7 (one bit each).
    const damaged = shards.map((s) => Buffer.from(s));
    damaged[2][12_345] ^= 0x10;
    damaged[7][300_000] ^= 0x01;

    // Without the CRC the coder cannot tell: using the bad data shard gives wrong bytes.
    expect((await decodeData(damaged, k, m, data.length)).equals(data)).toBe(false);

    // The caller's job: compare CRCs, pass the shards that fail as missing.
    const checked = damaged.map((s, i) => (blockCrcs(s, blockBytes).every((crc, b) => crc === stored[i][b]) ? s : null));
    expect(checked.map((s) => s === null)).toEqual([false, false, true, false, false, false, false, true, false]);
    expect((await decodeData(checked, k, m, data.length)).equals(data)).toBe(true);
    // Repair rewrites the bad shards with their true bytes.
    const repaired = await reconstruct(checked, k, m);
    expect(repaired[2].equals(shards[2])).toBe(true);
    expect(repaired[7].equals(shards[7])).toBe(true);
  });

  it('parity bytes are pinned (a change needs a new EC_CODEC_VERSION: shards on disk must stay decodable)', async () => {
    const digest = (shards: Buffer[]): string => createHash('sha256').update(Buffer.concat(shards)).digest('hex').slice(0, 32);
    const golden: Array<[number, number, number, string]> = [
      [4, 2, 100_000, GOLDEN['4+2/100000']],
      [6, 3, 4 * MiB, GOLDEN['6+3/4MiB']],
      [10, 4, 777, GOLDEN['10+4/777']],
    ];
    for (const [k, m, sizeBytes, expected] of golden) {
      const shards = await encodeStripe(patternBytes(sizeBytes, 7), k, m);
      expect(digest(shards.slice(k)), `${k}+${m} of ${sizeBytes} bytes`).toBe(expected);
      // An independent check of the code: its first parity shard is the XOR of the data shards.
      const xor = Buffer.alloc(shards[0].length);
      for (let i = 0; i < k; i++) for (let b = 0; b < xor.length; b++) xor[b] ^= shards[i][b];
      expect(shards[k].equals(xor)).toBe(true);
    }
  });

  it('shards are new buffers: the input is neither aliased nor modified', async () => {
    const data = patternBytes(4096, 5);
    const copy = Buffer.from(data);
    const shards = await encodeStripe(data, 4, 2);
    data.fill(0);
    expect(Buffer.concat(shards.slice(0, 4)).subarray(0, 4096).equals(copy)).toBe(true);

    const partial = erase(shards, [0, 5]);
    const before = partial.map((s) => (s ? Buffer.from(s) : null));
    const rebuilt = await reconstruct(partial, 4, 2);
    expect(partial).toEqual(before);
    rebuilt[1].fill(0xff);
    expect(shards[1].equals(before[1] as Buffer)).toBe(true);
  });

  it('concurrent stripes in the threadpool do not interfere', async () => {
    const datas = Array.from({ length: 12 }, (_, i) => patternBytes(MiB + i * 1001, i + 1));
    const encoded = await Promise.all(datas.map((d) => encodeStripe(d, 6, 3)));
    const decoded = await Promise.all(encoded.map((s, i) => decodeData(erase(s, [i % 9, (i + 4) % 9, (i + 7) % 9]), 6, 3, datas[i].length)));
    for (let i = 0; i < datas.length; i++) expect(decoded[i].equals(datas[i]), `stripe ${i}`).toBe(true);
  });

  it('empty data is k+m empty shards and decodes to empty', async () => {
    const shards = await encodeStripe(Buffer.alloc(0), 6, 3);
    expect(shards.map((s) => s.length)).toEqual(Array(9).fill(0));
    expect((await decodeData(erase(shards, [0, 1, 8]), 6, 3, 0)).length).toBe(0);
    expect((await reconstruct(erase(shards, [0, 1, 8]), 6, 3)).map((s) => s.length)).toEqual(Array(9).fill(0));
  });

  it('dataShardRanges maps a byte range of the chunk onto the data shards (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...SCHEMES),
        fc.integer({ min: 0, max: 200_000 }),
        fc.integer({ min: 0, max: 250_000 }),
        fc.integer({ min: 0, max: 250_000 }),
        async ([k, m], sizeBytes, offsetBytes, lengthBytes) => {
          const data = patternBytes(sizeBytes, sizeBytes + 1);
          const shards = await encodeStripe(data, k, m);
          const ranges = dataShardRanges(offsetBytes, lengthBytes, sizeBytes, k);
          const read = Buffer.concat(ranges.map((r) => shards[r.shardIndex].subarray(r.shardOffsetBytes, r.shardOffsetBytes + r.lengthBytes)));
          expect(read.equals(data.subarray(offsetBytes, offsetBytes + lengthBytes))).toBe(true);
          for (const r of ranges) {
            expect(r.shardIndex).toBeLessThan(k);
            expect(r.lengthBytes).toBeGreaterThan(0);
          }
        },
      ),
      { numRuns: 200 },
    );
    // A 128 KiB read inside one data shard touches one shard (one chunk server).
    expect(dataShardRanges(MiB + 4096, 128 * 1024, 4 * MiB, 4)).toEqual([{ shardIndex: 1, shardOffsetBytes: 4096, lengthBytes: 128 * 1024 }]);
  });

  it('rejects bad arguments with INVALID and a clear message', async () => {
    for (const [k, m, message] of [
      [0, 1, /k=0 must be an integer in 1\.\.24/],
      [25, 1, /k=25 must be an integer in 1\.\.24/],
      [1.5, 1, /k=1.5/],
      [4, 0, /m=0 must be an integer in 1\.\.6/],
      [4, 7, /m=7 must be an integer in 1\.\.6/],
      [Number.NaN, 2, /k=NaN/],
    ] as Array<[number, number, RegExp]>) {
      expect(() => checkEcScheme(k, m)).toThrow(message);
      await expectEcError(encodeStripe(Buffer.alloc(10), k, m), 'INVALID', message);
    }
    expect(EC_MAX_DATA_SHARDS).toBe(24);
    expect(EC_MAX_PARITY_SHARDS).toBe(6);

    const shards = await encodeStripe(patternBytes(1000, 1), 4, 2);
    await expectEcError(reconstruct(shards.slice(0, 5), 4, 2), 'INVALID', /expected 6 shard slots for 4\+2, got 5/);
    await expectEcError(decodeData([...shards, null], 4, 2, 1000), 'INVALID', /expected 6 shard slots/);
    const uneven = shards.map((s, i) => (i === 3 ? s.subarray(0, s.length - 8) : s));
    await expectEcError(reconstruct(uneven, 4, 2), 'INVALID', /shard 3 is 248 bytes, others are 256/);
    const unaligned = shards.map((s) => s.subarray(0, 255));
    await expectEcError(reconstruct(unaligned, 4, 2), 'INVALID', /shard length 255 is not a multiple of 8/);
    await expectEcError(decodeData(shards, 4, 2, 2000), 'INVALID', /shards of 256 bytes do not match a 4\+2 stripe of 2000 bytes/);
    await expectEcError(decodeData(shards, 4, 2, -1), 'INVALID', /data length -1/);
    await expectEcError(encodeStripe(Buffer.alloc(0), 4, 2).then(() => decodeData(shards, 4, 2, 1.5)), 'INVALID', /data length 1.5/);
    expect(() => dataShardRanges(-1, 10, 100, 4)).toThrow(/offset -1/);
    expect(() => shardSizeBytes(100, 0)).toThrow(/k=0/);
  });

  it('parses k+m layouts', () => {
    expect(parseEcScheme('6+3')).toEqual({ k: 6, m: 3 });
    expect(parseEcScheme(' 10 + 4 ')).toEqual({ k: 10, m: 4 });
    expect(() => parseEcScheme('6:3')).toThrow(/not of the form k\+m/);
    expect(() => parseEcScheme('6+')).toThrow(/not of the form k\+m/);
    expect(() => parseEcScheme('30+2')).toThrow(/k=30/);
    expect(() => parseEcScheme('4+8')).toThrow(/m=8/);
  });
});

/** First 128 bits of sha256(parity shards) of patternBytes(size, 7); see the pinned-parity test. */
const GOLDEN: Record<string, string> = {
  '4+2/100000': '46cc8d06257f2baad543560ae09610ab',
  '6+3/4MiB': 'a18c3a422a64923476112827b25fa1ec',
  '10+4/777': '890c6f1f68a07773c95562c674b5962f',
};
