// How the CLI shows namespace names and takes them back (issue 16).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseShownPath, showBytes, showPath } from '../../../src/daemon/names.js';

const bytes = (...b: number[]): string => Buffer.from(b).toString('latin1');
const utf8 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');

describe('names as the CLI shows them', () => {
  it('shows UTF-8 as text, escapes control characters, invalid bytes and the backslash', () => {
    expect(showBytes(utf8('/photos/été 日本.jpg'))).toBe('/photos/été 日本.jpg');
    expect(showBytes(utf8('a\nb\tc\x1b[2J'))).toBe('a\\x0ab\\x09c\\x1b[2J');
    expect(showBytes(utf8('del\x7f c1\u0085'))).toBe('del\\x7f c1\\xc2\\x85');
    expect(showBytes(bytes(0x66, 0xff, 0x80, 0xc3))).toBe('f\\xff\\x80\\xc3');
    expect(showBytes(bytes(0xed, 0xa0, 0x80))).toBe('\\xed\\xa0\\x80'); // a surrogate is not UTF-8
    expect(showBytes(bytes(0xc0, 0xaf))).toBe('\\xc0\\xaf'); // overlong
    expect(showBytes(utf8('back\\slash'))).toBe('back\\\\slash');
    expect(showPath('/a\nb')).toBe('/a\\x0ab');
  });

  it('takes the shown form back to the same bytes, for any name', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (arr) => {
        const name = Buffer.from(arr).toString('latin1');
        const shown = showBytes(name);
        expect([...shown].some((ch) => ch.charCodeAt(0) < 0x20 || (ch.charCodeAt(0) >= 0x7f && ch.charCodeAt(0) <= 0x9f))).toBe(false);
        expect(parseShownPath(shown)).toBe(name);
      }),
      { numRuns: 2000 },
    );
    expect(parseShownPath('/dir/\\xff\\x0a.txt')).toBe(bytes(0x2f, 0x64, 0x69, 0x72, 0x2f, 0xff, 0x0a, 0x2e, 0x74, 0x78, 0x74));
    expect(parseShownPath('/été')).toBe(utf8('/été'));
  });
});
