import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { ROOT, shTry } from './harness.js';

describe('systemd unit', () => {
  it('passes systemd-analyze verify and its example config has only known keys', async () => {
    const r = await shTry(`bash ${path.join(ROOT, 'scripts', 'verify-systemd.sh')}`);
    expect(r.out).toContain('dfs.json.example: ok');
    expect(r.code).toBe(0);
  });
});
