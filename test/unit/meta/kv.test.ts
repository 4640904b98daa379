import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemKV, prefixEnd, type Kv } from '../../../src/meta/kv.js';
import { RocksKV } from '../../../src/meta/rocks-kv.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const keys = (rows: Array<[Buffer, Buffer]>): string[] => rows.map(([k]) => k.toString('latin1'));

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function rocksAt(): Promise<{ kv: RocksKV; path: string }> {
  const path = await mkdtemp(join(tmpdir(), 'dfs-kv-'));
  dirs.push(path);
  return { kv: await RocksKV.open(join(path, 'db')), path: join(path, 'db') };
}

const engines: Array<[string, () => Promise<Kv>]> = [
  ['MemKV', async () => new MemKV()],
  ['RocksKV', async () => (await rocksAt()).kv],
];

describe.each(engines)('%s', (_name, make) => {
  it('gets, puts and deletes', async () => {
    const kv = await make();
    expect(await kv.get(b('a'))).toBeUndefined();
    await kv.write([{ type: 'put', key: b('a'), value: b('1') }], { sync: false });
    expect((await kv.get(b('a')))?.toString()).toBe('1');
    await kv.write([{ type: 'put', key: b('a'), value: b('2') }, { type: 'del', key: b('a') }], { sync: true });
    expect(await kv.get(b('a'))).toBeUndefined();
    await kv.write([{ type: 'del', key: b('missing') }], { sync: false });
    await kv.close();
  });

  it('orders keys as unsigned bytes and honours bounds, limit and reverse', async () => {
    const kv = await make();
    const all = ['\x00', 'a', 'a\x00', 'a\xff', 'ab', 'b', '\x7f', '\x80', '\xff', '\xff\xff'];
    await kv.write(
      all.map((k) => ({ type: 'put' as const, key: b(k), value: b(k) })),
      { sync: false },
    );
    const sorted = [...all].sort((x, y) => Buffer.compare(b(x), b(y)));
    expect(keys(await kv.scan({ limit: 100 }))).toEqual(sorted);
    expect(keys(await kv.scan({ limit: 3 }))).toEqual(sorted.slice(0, 3));
    expect(keys(await kv.scan({ gt: b('a'), lt: b('b'), limit: 100 }))).toEqual(['a\x00', 'ab', 'a\xff']);
    expect(keys(await kv.scan({ gte: b('a'), lte: b('b'), limit: 100 }))).toEqual(['a', 'a\x00', 'ab', 'a\xff', 'b']);
    expect(keys(await kv.scan({ gte: b('a'), lte: b('b'), limit: 2, reverse: true }))).toEqual(['b', 'a\xff']);
    expect(keys(await kv.scan({ lt: b('a'), limit: 100, reverse: true }))).toEqual(['\x00']);
    expect(keys(await kv.scan({ gt: b('\xff'), limit: 100 }))).toEqual(['\xff\xff']);
    expect(keys(await kv.scan({ gt: b('zz'), lt: b('\x80'), limit: 100 }))).toEqual(['\x7f']);
    const values = (await kv.scan({ gte: b('ab'), limit: 1 })).map(([, v]) => v.toString('latin1'));
    expect(values).toEqual(['ab']);
    await kv.write([{ type: 'del', key: b('ab') }, { type: 'put', key: b('aa'), value: b('x') }], { sync: false });
    expect(keys(await kv.scan({ gt: b('a\x00'), lt: b('b'), limit: 100 }))).toEqual(['aa', 'a\xff']);
    await kv.close();
  });

  it('refuses unbounded scans', async () => {
    const kv = await make();
    await expect(kv.scan({ limit: 0 })).rejects.toThrow(RangeError);
    await expect(kv.scan({ limit: 1_000_000 })).rejects.toThrow(RangeError);
    await kv.close();
  });

  it('pages through many keys in order', async () => {
    const kv = await make();
    const n = 5000;
    const batch = [];
    for (let i = n - 1; i >= 0; i--) {
      const key = Buffer.alloc(4);
      key.writeUInt32BE(i * 7919 % n);
      batch.push({ type: 'put' as const, key, value: key });
    }
    await kv.write(batch, { sync: false });
    let cursor: Buffer | undefined;
    let seen = 0;
    for (;;) {
      const page = await kv.scan({ ...(cursor ? { gt: cursor } : {}), limit: 333 });
      if (page.length === 0) break;
      for (const [k] of page) expect(k.readUInt32BE(0)).toBe(seen++);
      cursor = page[page.length - 1][0];
    }
    expect(seen).toBe(n);
    await kv.close();
  });
});

describe('RocksKV persistence', () => {
  it('keeps writes across close and reopen', async () => {
    const { kv, path } = await rocksAt();
    await kv.write(
      [
        { type: 'put', key: b('k1'), value: b('v1') },
        { type: 'put', key: b('k2'), value: b('v2') },
      ],
      { sync: true },
    );
    await kv.write([{ type: 'del', key: b('k1') }], { sync: false });
    await kv.close();
    const again = await RocksKV.open(path);
    expect(await again.get(b('k1'))).toBeUndefined();
    expect((await again.get(b('k2')))?.toString()).toBe('v2');
    expect(keys(await again.scan({ limit: 10 }))).toEqual(['k2']);
    await again.close();
  });
});

describe('prefixEnd', () => {
  it('is the first key past the prefix', () => {
    expect(prefixEnd(b('d/'))?.toString('latin1')).toBe('d0');
    expect(prefixEnd(b('a\xff'))?.toString('latin1')).toBe('b');
    expect(prefixEnd(b('\xff\xff'))).toBeUndefined();
  });
});
