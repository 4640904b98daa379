// The bytes of an EntryType.ConfChange entry: a ConfChange as JSON (versioned).
import type { ConfChange, ConfChangeType, ConfState, Entry } from './types.js';
import { EntryType } from './types.js';
import { assert } from './util.js';

const CONF_CHANGE_VERSION = 1;
const TYPES: readonly ConfChangeType[] = ['addVoter', 'addLearner', 'removeNode'];

export function encodeConfChange(cc: ConfChange): Buffer {
  return Buffer.from(JSON.stringify({ v: CONF_CHANGE_VERSION, type: cc.type, node: cc.node, ...(cc.address !== undefined ? { address: cc.address } : {}) }));
}

export function decodeConfChange(data: Buffer): ConfChange {
  const raw: unknown = JSON.parse(data.toString('utf8'));
  assert(typeof raw === 'object' && raw !== null, 'conf change is not an object');
  const o = raw as { v?: unknown; type?: unknown; node?: unknown; address?: unknown };
  assert(o.v === CONF_CHANGE_VERSION, `conf change version ${String(o.v)} unknown`);
  assert(typeof o.node === 'string' && TYPES.includes(o.type as ConfChangeType), 'malformed conf change');
  assert(o.address === undefined || typeof o.address === 'string', 'malformed conf change address');
  const cc: ConfChange = { type: o.type as ConfChangeType, node: o.node };
  if (typeof o.address === 'string') cc.address = o.address;
  return cc;
}

/** The ConfChange carried by a committed entry, or null for an application command. */
export function confChangeOf(e: Entry): ConfChange | null {
  return e.type === EntryType.ConfChange ? decodeConfChange(e.data) : null;
}

/** The configuration after applying `cc` to `conf` (the core's rule; pure). */
export function nextConf(conf: ConfState, cc: ConfChange): ConfState {
  const { node } = cc;
  let voters = conf.voters;
  let learners = conf.learners;
  switch (cc.type) {
    case 'addVoter':
      learners = learners.filter((n) => n !== node);
      if (!voters.includes(node)) voters = [...voters, node];
      break;
    case 'addLearner':
      voters = voters.filter((n) => n !== node);
      if (!learners.includes(node)) learners = [...learners, node];
      break;
    case 'removeNode':
      voters = voters.filter((n) => n !== node);
      learners = learners.filter((n) => n !== node);
      break;
  }
  return { voters: [...voters], learners: [...learners] };
}
