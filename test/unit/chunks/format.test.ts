import { describe, expect, it } from 'vitest';
import { blockCrcs, crc32cOf } from '../../../src/chunks/crc.js';
import { decodeFixedHeader, encodePrefix, FormatError, prefixLengthBytes, verifyPrefix } from '../../../src/chunks/format.js';

describe('chunk format v1', () => {
  it('computes the standard CRC32C check value', () => {
    // RFC 3720 / iSCSI check value for "123456789".
    expect(crc32cOf(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('encodes a pinned header (changing these bytes needs a new format version)', () => {
    const data = Buffer.from('hello, chunk world');
    const prefix = encodePrefix(0x0102030405, data, 4096);
    expect(prefix.length).toBe(prefixLengthBytes(1));
    expect(prefix.toString('hex')).toBe(GOLDEN_PREFIX_HEX);
  });

  it('decodes what it encodes and rejects damage', () => {
    const data = Buffer.alloc(10_000, 1);
    const prefix = encodePrefix(77, data, 4096);
    const header = decodeFixedHeader(prefix, 1 << 20);
    expect(header).toMatchObject({ formatVersion: 1, blockSizeBytes: 4096, chunkId: 77, dataLengthBytes: 10_000, blockCount: 3 });
    const verified = verifyPrefix(header, prefix);
    expect(Array.from(verified.crcs)).toEqual(Array.from(blockCrcs(data, 4096)));
    expect(verified.dataOffsetBytes).toBe(prefix.length);

    for (const at of [0, 8, 10, 12, 24, 32]) {
      const bad = Buffer.from(prefix);
      bad[at] ^= 0x40;
      expect(() => verifyPrefix(decodeFixedHeader(bad, 1 << 20), bad), `byte ${at}`).toThrow(FormatError);
    }
    expect(() => decodeFixedHeader(prefix, 9_999)).toThrow(/above limit/);
    expect(() => decodeFixedHeader(prefix.subarray(0, 20), 1 << 20)).toThrow(/truncated/);
  });
});

// magic | v1 | 40 | 4096 | id | length 18 | 1 block | reserved | block CRC | header CRC
const GOLDEN_PREFIX_HEX =
  '4446534348554e4b' + '0100' + '2800' + '00100000' + '0504030201000000' + '1200000000000000' + '01000000' + '00000000' + 'f988da48' + '17e1a597';
