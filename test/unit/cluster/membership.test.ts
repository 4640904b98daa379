import { describe, expect, it } from 'vitest';
import { Membership } from '../../../src/cluster/membership.js';
import { decodeConfChange, encodeConfChange } from '../../../src/cluster/raft/conf-change.js';

describe('membership addresses', () => {
  it('carries a new member address in the conf change bytes', () => {
    expect(decodeConfChange(encodeConfChange({ type: 'addLearner', node: 'n4', address: '10.0.0.4:7400' }))).toEqual({ type: 'addLearner', node: 'n4', address: '10.0.0.4:7400' });
    expect(decodeConfChange(encodeConfChange({ type: 'addVoter', node: 'n4' }))).toEqual({ type: 'addVoter', node: 'n4' });
  });

  it('follows changes and rebuilds from a configuration, replicated addresses first', () => {
    const m = new Membership('n1', '127.0.0.1:1', new Map([['n1', '127.0.0.1:1'], ['n2', '127.0.0.1:2'], ['n3', '127.0.0.1:3']]));
    const seen: string[][] = [];
    m.onChange(() => seen.push([...m.peers().keys()]));
    m.apply({ type: 'addLearner', node: 'n4', address: '127.0.0.1:4' });
    m.apply({ type: 'addVoter', node: 'n4' });
    expect(m.addresses.get('n4')).toBe('127.0.0.1:4');
    m.apply({ type: 'removeNode', node: 'n2' });
    expect([...m.peers().keys()].sort()).toEqual(['n3', 'n4']);
    expect(seen).toHaveLength(3);
    // A snapshot: n3 moved (the replicated address wins over the hint), n5 is known only from the state.
    m.reset({ voters: ['n1', 'n3', 'n4', 'n5'], learners: [] }, new Map([['n3', '127.0.0.1:33'], ['n5', '127.0.0.1:5']]));
    expect(Object.fromEntries(m.addresses)).toEqual({ n1: '127.0.0.1:1', n3: '127.0.0.1:33', n4: '127.0.0.1:4', n5: '127.0.0.1:5' });
  });

  it('keeps the join hints while this node is not a member of anything yet', () => {
    const m = new Membership('n4', '127.0.0.1:4', new Map([['n1', '127.0.0.1:1']]));
    m.reset({ voters: [], learners: [] }, new Map());
    expect([...m.peers().keys()]).toEqual(['n1']);
  });
});
