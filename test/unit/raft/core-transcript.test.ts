// Transcript tests: "> command" lines, each followed by its expected output. To update
// after a deliberate change, run with RAFT_TRANSCRIPT_DUMP=<file> (a JSON array of
// the produced transcripts, in order), paste them back and review the diff.
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Network, runTranscript, type NetOptions } from './core-harness.js';

function check(ids: string[], opts: NetOptions, text: string): void {
  const { expected, actual } = runTranscript(new Network(ids, opts), text);
  if (process.env.RAFT_TRANSCRIPT_DUMP !== undefined) dumped.push(actual);
  expect(actual).toBe(expected);
}

const dumped: string[] = [];
afterAll(() => {
  const out = process.env.RAFT_TRANSCRIPT_DUMP;
  if (out !== undefined) writeFileSync(out, JSON.stringify(dumped));
});

describe('raft core transcripts', () => {
  it('elects, replicates, refuses a stale candidate, restarts from storage', () => {
    check(['1', '2', '3'], {}, `
> tick 10
> state
1 leader term=1 lead=1 commit=1 applied=1 last=1
2 follower term=1 lead=1 commit=0 applied=0 last=1
3 follower term=1 lead=1 commit=1 applied=1 last=1
> propose 1 a
ok index=2 term=1
> propose 2 b
refused notLeader leader=1
> isolate 3
> propose 1 c
ok index=3 term=1
> state
1 leader term=1 lead=1 commit=3 applied=3 last=3
2 follower term=1 lead=1 commit=2 applied=2 last=3
3 follower term=1 lead=1 commit=1 applied=1 last=2
# 3 has a stale log: its election at a higher term fails, the others move to that term
> heal
> campaign 3
> state
1 follower term=2 lead=- commit=3 applied=3 last=3
2 follower term=2 lead=- commit=2 applied=2 last=3
3 follower term=2 lead=- commit=1 applied=1 last=2
> tick 10
> state
1 leader term=3 lead=1 commit=4 applied=4 last=4
2 follower term=3 lead=1 commit=3 applied=3 last=4
3 follower term=3 lead=1 commit=4 applied=4 last=4
> data 1 2 3
1: a,c
2: a,c
3: a,c
> restart 2
> state 2
2 follower term=3 lead=- commit=3 applied=3 last=4
> tick 1
> state 2
2 follower term=3 lead=1 commit=4 applied=4 last=4
> data 2
2: a,c
`);
  });

  it('pre-vote keeps an isolated node from inflating the term', () => {
    check(['1', '2', '3'], { preVote: true }, `
> campaign 1
> isolate 3
> tick 50 3
> state
1 leader term=1 lead=1 commit=1 applied=1 last=1
2 follower term=1 lead=1 commit=0 applied=0 last=1
3 preCandidate term=1 lead=- commit=1 applied=1 last=1
> heal
> tick 1
> state
1 leader term=1 lead=1 commit=1 applied=1 last=1
2 follower term=1 lead=1 commit=1 applied=1 last=1
3 follower term=1 lead=1 commit=1 applied=1 last=1
`);
  });

  it('without pre-vote an isolated node disrupts the cluster on rejoin', () => {
    check(['1', '2', '3'], {}, `
> campaign 1
> isolate 3
> tick 50 3
> state 3
3 candidate term=5 lead=- commit=1 applied=1 last=1
> heal
> tick 15
> state
1 follower term=6 lead=3 commit=2 applied=2 last=2
2 follower term=6 lead=3 commit=2 applied=2 last=2
3 leader term=6 lead=3 commit=2 applied=2 last=2
`);
  });

  it('check-quorum steps down a partitioned leader and followers keep their lease', () => {
    check(['1', '2', '3'], { preVote: true, checkQuorum: true }, `
> campaign 1
# 2 and 3 hear from 1: a pre-vote from 3 is ignored
> campaign 3
> state
1 leader term=1 lead=1 commit=1 applied=1 last=1
2 follower term=1 lead=1 commit=0 applied=0 last=1
3 preCandidate term=1 lead=- commit=1 applied=1 last=1
> tick 1
> state 3
3 follower term=1 lead=1 commit=1 applied=1 last=1
> isolate 1
# the first check (10 ticks) still counts the answers from before the partition
> tick 18 1
> state 1
1 leader term=1 lead=1 commit=1 applied=1 last=1
> tick 1 1
> state 1
1 follower term=1 lead=- commit=1 applied=1 last=1
> tick 20 2 3
> state
1 follower term=1 lead=- commit=1 applied=1 last=1
2 leader term=2 lead=2 commit=2 applied=2 last=2
3 follower term=2 lead=2 commit=2 applied=2 last=2
> heal
> tick 1
> state
1 follower term=2 lead=2 commit=2 applied=2 last=2
2 leader term=2 lead=2 commit=2 applied=2 last=2
3 follower term=2 lead=2 commit=2 applied=2 last=2
`);
  });

  it('serves ReadIndex on leader and follower only with a confirmed leadership', () => {
    check(['1', '2', '3'], {}, `
> campaign 1
> propose 1 a
ok index=2 term=1
> read 1 r1
> reads 1
read r1 index=2
> read 2 r2
> reads 2
read r2 index=2
> isolate 1
> read 1 r3
> tick 5 1
> reads 1
no reads
> heal
> tick 1
> reads 1
read r3 index=2
`);
  });

  it('transfers leadership, and aborts a transfer that cannot finish', () => {
    check(['1', '2', '3'], { preVote: true, checkQuorum: true }, `
> campaign 1
> propose 1 a
ok index=2 term=1
> transfer 1 3
> state
1 follower term=2 lead=3 commit=2 applied=2 last=3
2 follower term=2 lead=3 commit=3 applied=3 last=3
3 leader term=2 lead=3 commit=3 applied=3 last=3
> propose 3 b
ok index=4 term=2
> isolate 2
> transfer 3 2
> propose 3 c
refused transferring leader=3
> tick 9 3
> propose 3 c
refused transferring leader=3
> tick 1 3
> propose 3 c
ok index=5 term=2
> state 3
3 leader term=2 lead=3 commit=5 applied=5 last=5
`);
  });

  it('adds a learner, promotes it, removes a follower and then the leader', () => {
    check(['1', '2', '3'], {}, `
> campaign 1
> propose 1 a
ok index=2 term=1
> add-peer 4 1
> conf 1 addLearner 4
ok index=3 term=1
> propose 1 b
ok index=4 term=1
> state 4
4 follower term=1 lead=1 commit=3 applied=3 last=4
> conf-state 1 4
1: voters=1,2,3 learners=4
4: voters=1,2,3 learners=4
> conf 1 addVoter 4
ok index=5 term=1
> conf-state 1 2 3 4
1: voters=1,2,3,4 learners=-
2: voters=1,2,3 learners=4
3: voters=1,2,3 learners=4
4: voters=1,2,3,4 learners=-
> conf 1 removeNode 2
ok index=6 term=1
> conf-state 1 3 4
1: voters=1,3,4 learners=-
3: voters=1,2,3,4 learners=-
4: voters=1,2,3,4 learners=-
> conf 1 removeNode 1
ok index=7 term=1
> state
1 follower term=1 lead=- commit=7 applied=7 last=7
2 follower term=1 lead=1 commit=5 applied=5 last=6
3 follower term=1 lead=1 commit=6 applied=6 last=7
4 follower term=1 lead=1 commit=6 applied=6 last=7
> tick 25 3 4
> state 3 4
3 leader term=2 lead=3 commit=8 applied=8 last=8
4 follower term=2 lead=3 commit=8 applied=8 last=8
> propose 3 c
ok index=9 term=2
> propose 4 d
refused notLeader leader=3
> data 3 4
3: a,b,c
4: a,b
`);
  });

  it('catches up a follower by snapshot after compaction', () => {
    check(['1', '2', '3'], {}, `
> campaign 1
> isolate 3
> propose 1 a
ok index=2 term=1
> propose 1 b
ok index=3 term=1
> propose 1 c
ok index=4 term=1
> compact 1
compacted to 4
> propose 1 d
ok index=5 term=1
> heal
> tick 1
> state
1 leader term=1 lead=1 commit=5 applied=5 last=5
2 follower term=1 lead=1 commit=5 applied=5 last=5
3 follower term=1 lead=1 commit=5 applied=5 last=5
> data 3
3: a,b,c,d
> restart 3
> tick 1
> data 3
3: a,b,c,d
`);
  });
});
