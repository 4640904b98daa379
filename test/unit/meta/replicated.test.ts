// MetaStore as the state machine of a replicated log: applyCommitted, the applied index,
// replay after a crash, and snapshot images.
import { describe, expect, it } from 'vitest';
import { MemKV } from '../../../src/meta/kv.js';
import { MetaStore } from '../../../src/meta/store.js';
import { loadEnvelopeCodec } from '../../../src/meta/envelope-codec.js';
import { ROOT_INO, S_IFREG, type Envelope } from '../../../src/meta/types.js';

const now = { sec: 1_700_000_000, nsec: 5 };
const caller = { uid: 0, gid: 0 };

function envelopes(): Envelope[] {
  return [
    { clientId: 'c1', seq: 1, command: { op: 'mkdir', parent: ROOT_INO, name: 'd', mode: 0o755, caller, now } },
    { clientId: 'c1', seq: 2, command: { op: 'mknod', parent: 2, name: 'f', mode: S_IFREG | 0o644, rdev: 0, caller, now } },
    { clientId: 'c2', seq: 1, command: { op: 'mkdir', parent: ROOT_INO, name: 'd', mode: 0o755, caller, now } },
    { clientId: 'c1', seq: 3, command: { op: 'setxattr', ino: 3, name: 'user.k', value: Buffer.from([0, 255]), flags: 0, now } },
  ];
}

describe('MetaStore driven by a replicated log', () => {
  it('applies entries in order, records the applied index, and replays idempotently', async () => {
    const kv = new MemKV();
    const store = await MetaStore.open(kv);
    const codec = await loadEnvelopeCodec();
    const items = envelopes().map((e, i) => ({ index: i + 2, envelope: codec.decode(codec.encode(e)) }));
    const results = await store.applyCommitted([{ index: 1, envelope: null }, ...items]);
    expect(results.map((r) => (r.ok ? 'ok' : r.errno))).toEqual(['ok', 'ok', 'ok', 17, 'ok']);
    expect(await store.appliedIndex()).toBe(5);
    // A client retry of an applied command (same client and seq, later in the log)
    // returns the recorded result and changes nothing.
    const retry = await store.applyCommitted([{ index: 6, envelope: items[3].envelope }]);
    expect(retry[0].ok).toBe(true);
    const image = await store.snapshotImage();
    // Replaying the same log on a fresh replica gives the same bytes (deterministic apply).
    const other = await MetaStore.open(new MemKV());
    await other.applyCommitted([{ index: 1, envelope: null }, ...items, { index: 6, envelope: items[3].envelope }]);
    expect(await other.snapshotImage()).toEqual(image);
    const f = await store.lookup(2, 'f');
    expect(f.ok && f.value.nlink).toBe(1);
    const x = await store.getxattr(3, 'user.k');
    expect(x.ok && [...x.value]).toEqual([0, 255]);
  });

  it('a snapshot image restores the same namespace on another store', async () => {
    const a = await MetaStore.open(new MemKV());
    await a.applyCommitted(envelopes().map((e, i) => ({ index: i + 1, envelope: e })));
    const image = await a.snapshotImage();
    const b = await MetaStore.open(new MemKV());
    await b.applyCommitted([{ index: 1, envelope: { clientId: 'z', seq: 1, command: { op: 'mkdir', parent: ROOT_INO, name: 'other', mode: 0o700, caller, now } } }]);
    await b.restoreImage(image);
    expect((await b.lookup(ROOT_INO, 'other')).ok).toBe(false);
    const la = await a.readdir(ROOT_INO, null, 100);
    const lb = await b.readdir(ROOT_INO, null, 100);
    expect(lb).toEqual(la);
    expect(await b.appliedIndex()).toBe(4);
    expect(await b.snapshotImage()).toEqual(image);
  });
});
