// The leader's node registry (issue 16): storage faults and free space reported by
// heartbeats become node states, events and the leader's admission inputs.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { NodeRegistry } from '../../../src/cluster/registry.js';
import type { HeartbeatRequest__Output } from '../../../src/meta/gen/dfs/meta/HeartbeatRequest.js';
import type { NodeRecord } from '../../../src/meta/types.js';

const MiB = 1024 * 1024;

function harness() {
  let now = 1_000;
  const records: NodeRecord[] = [];
  const events: Array<{ kind: string; nodeId: string }> = [];
  const registry = new NodeRegistry(
    {
      isLeader: () => true,
      leaderId: () => 'n1',
      forward: { heartbeat: () => Promise.reject(new Error('leader')), view: () => Promise.reject(new Error('leader')) },
      listNodes: async () => records,
      register: async (rec) => {
        records.push({ ...rec, state: 'active' });
        return { ok: true, value: null };
      },
      nowMs: () => now,
      log: pino({ level: 'silent' }),
      event: (kind, _message, nodeId) => events.push({ kind, nodeId }),
    },
    { suspectAfterMs: 3_000, deadAfterMs: 30_000, storageFailedAfterMs: 10_000, spaceHeadroomBytes: 4 * MiB },
  );
  const beat = (nodeId: string, over: Partial<HeartbeatRequest__Output> = {}) =>
    registry.heartbeat({
      nodeId,
      address: `127.0.0.1:${nodeId.length}`,
      zone: '',
      rack: '',
      totalBytes: 1000 * MiB,
      freeBytes: 500 * MiB,
      usedBytes: 0,
      chunkCount: 0,
      storageFault: '',
      storageFaultMs: 0,
      reserveBytes: 100 * MiB,
      logFreeBytes: 500 * MiB,
      chunkReserveBytes: 100 * MiB,
      version: '',
      corruptReads: 0,
      ...over,
    });
  const state = async (id: string) => (await registry.view()).nodes.find((n) => n.nodeId === id)!;
  return { registry, beat, state, events, advance: (ms: number) => (now += ms) };
}

describe('node registry: storage faults and the free-space reserve', () => {
  it('a storage fault is suspect (no new data), failed after storageFailedAfterMs, up again once it clears; each change an event', async () => {
    const h = harness();
    await h.beat('n2');
    expect((await h.state('n2')).state).toBe('up');
    await h.beat('n2', { storageFault: 'EIO: i/o error', storageFaultMs: 1_000 });
    expect(await h.state('n2')).toMatchObject({ state: 'suspect', storageFault: 'EIO: i/o error' });
    expect(h.registry.storageFaulted(['n1', 'n2'])).toEqual(['n2']);
    await h.beat('n2', { storageFault: 'EIO: i/o error', storageFaultMs: 10_000 });
    expect((await h.state('n2')).state).toBe('failed');
    await h.beat('n2');
    expect((await h.state('n2')).state).toBe('up');
    expect(h.events.map((e) => e.kind)).toEqual(['storage-fault', 'storage-failed', 'storage-recovered']);
    // A fault reported by a beat older than suspectAfterMs no longer counts for admission.
    await h.beat('n3', { storageFault: 'ENOSPC', storageFaultMs: 1 });
    h.advance(3_000);
    expect(h.registry.storageFaulted(['n3'])).toEqual([]);
  });

  it('a node is low on space below its reserve plus the headroom, and only then', async () => {
    const h = harness();
    await h.beat('n2', { logFreeBytes: 104 * MiB });
    await h.beat('n3', { logFreeBytes: 103 * MiB });
    await h.beat('n4', { logFreeBytes: 1 * MiB, reserveBytes: 0 });
    expect(h.registry.belowReserve(['n2', 'n3', 'n4'])).toEqual(['n3']);
    expect(await h.state('n3')).toMatchObject({ spaceLow: true, chunkReserveBytes: 100 * MiB });
    expect((await h.state('n2')).spaceLow).toBe(false);
    // Only voters asked about count.
    expect(h.registry.belowReserve(['n2'])).toEqual([]);
  });
});
