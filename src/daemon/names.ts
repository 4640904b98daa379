// Names as the CLI shows and takes them (issue 16). Namespace names are byte strings (one
// char per byte, as the kernel gave them): any bytes but '/' and NUL. Shown, a name is its
// UTF-8 text where the bytes are valid UTF-8, with every control character (C0, DEL, C1),
// every byte that is not valid UTF-8 and the backslash itself escaped as `\xHH` / `\\` — so
// a name can never move the cursor or clear a terminal, and the shown form is unambiguous.
// `parseShownPath` takes that form back, so such names can be addressed (`dfs info --addr`).
// Pure.

/** The shown form of a namespace byte string (a name or a path of names). */
export function showBytes(bytes: string): string {
  const buf = Buffer.from(bytes, 'latin1');
  let out = '';
  for (let i = 0; i < buf.length; ) {
    const n = utf8Length(buf, i);
    if (n === 0) {
      out += hex(buf[i]);
      i++;
      continue;
    }
    const ch = buf.toString('utf8', i, i + n);
    const cp = ch.codePointAt(0)!;
    if (cp < 0x20 || cp === 0x7f || (cp >= 0x80 && cp <= 0x9f)) for (let j = i; j < i + n; j++) out += hex(buf[j]);
    else out += ch === '\\' ? '\\\\' : ch;
    i += n;
  }
  return out;
}

/** The shown form of a path the user gave (a JS string, as argv decoded it). */
export function showPath(p: string): string {
  return showBytes(Buffer.from(p, 'utf8').toString('latin1'));
}

/** The byte string a shown path names: `\xHH` is that byte, `\\` a backslash, the rest UTF-8. */
export function parseShownPath(shown: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < shown.length; ) {
    if (shown[i] === '\\' && shown[i + 1] === '\\') {
      bytes.push(0x5c);
      i += 2;
    } else if (shown[i] === '\\' && shown[i + 1] === 'x' && /^[0-9a-fA-F]{2}$/.test(shown.slice(i + 2, i + 4))) {
      bytes.push(parseInt(shown.slice(i + 2, i + 4), 16));
      i += 4;
    } else {
      const cp = shown.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      for (const b of Buffer.from(ch, 'utf8')) bytes.push(b);
      i += ch.length;
    }
  }
  return Buffer.from(bytes).toString('latin1');
}

function hex(b: number): string {
  return `\\x${b.toString(16).padStart(2, '0')}`;
}

/** Length of the valid UTF-8 sequence at `i` (shortest form, no surrogates, ≤ U+10FFFF), or 0. */
function utf8Length(buf: Buffer, i: number): number {
  const b = buf[i];
  if (b < 0x80) return 1;
  const cont = (k: number): boolean => i + k < buf.length && (buf[i + k] & 0xc0) === 0x80;
  if (b >= 0xc2 && b <= 0xdf) return cont(1) ? 2 : 0;
  if (b >= 0xe0 && b <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    if (b === 0xe0 && buf[i + 1] < 0xa0) return 0; // overlong
    if (b === 0xed && buf[i + 1] >= 0xa0) return 0; // surrogate
    return 3;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (b === 0xf0 && buf[i + 1] < 0x90) return 0; // overlong
    if (b === 0xf4 && buf[i + 1] >= 0x90) return 0; // > U+10FFFF
    return 4;
  }
  return 0;
}
