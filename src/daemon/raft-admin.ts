// Raft state and administration over the meta service: status for `dfs raft status`,
// leadership transfer for `dfs raft transfer-leader`, membership changes for
// `dfs cluster add-member|remove-member`. A follower forwards admin calls to the leader.
//
// Membership changes are single-step (one node at a time, at most one pending). A new
// node joins as a learner (it receives the log but does not vote, so a slow catch-up
// cannot cost the cluster its quorum) and is promoted once it is within CATCH_UP_SLACK
// entries of the commit index.
import type { Logger } from 'pino';
import { MetaClient, type RaftAdminBackend } from '../meta/grpc.js';
import type { RaftStatusReply } from '../meta/gen/dfs/meta/RaftStatusReply.js';
import type { RaftAdminReply } from '../meta/gen/dfs/meta/RaftAdminReply.js';
import type { RaftAdminRequest__Output } from '../meta/gen/dfs/meta/RaftAdminRequest.js';
import type { RaftDriver } from '../cluster/raft/driver.js';
import type { ConfChange } from '../cluster/raft/types.js';
import { NODE_ID_RE, parseAddress } from './config.js';

const TRANSFER_WAIT_MS = 10_000;
/** Default bound on a learner's catch-up before add-member gives up promoting it. */
export const CATCH_UP_DEFAULT_MS = 120_000;
/** A learner this close to the commit index is caught up enough to vote. */
const CATCH_UP_SLACK = 100;
/** A pending membership change blocks the next one for about one round; wait this long. */
const CONF_PENDING_WAIT_MS = 10_000;
const POLL_MS = 50;

const quorum = (n: number): number => Math.floor(n / 2) + 1;
const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class RaftAdmin implements RaftAdminBackend {
  constructor(
    private readonly driver: RaftDriver,
    private readonly selfId: string,
    private readonly members: () => Map<string, string>,
    private readonly log: Logger,
  ) {}

  status(): RaftStatusReply {
    const s = this.driver.status();
    const members = this.members();
    const ids = [...new Set([...s.conf.voters, ...s.conf.learners, ...members.keys()])].sort();
    return {
      nodeId: this.selfId,
      term: s.term,
      leader: s.leader ?? '',
      role: s.role,
      commit: s.commit,
      applied: this.driver.appliedIndex,
      lastIndex: s.lastIndex,
      leadTransferee: s.leadTransferee ?? '',
      members: ids.map((id) => {
        const p = s.progress[id];
        return {
          nodeId: id,
          address: members.get(id) ?? '',
          isLearner: s.conf.learners.includes(id),
          match: p?.match ?? 0,
          next: p?.next ?? 0,
          state: p?.state ?? '',
          recentActive: p?.recentActive ?? false,
        };
      }),
    };
  }

  async admin(req: RaftAdminRequest__Output): Promise<RaftAdminReply> {
    const leader = this.driver.leaderId;
    if (leader !== this.selfId) {
      const address = leader ? this.members().get(leader) : undefined;
      if (!address) return { errno: 11, message: 'no leader known yet; try again', leader: leader ?? '' };
      const client = await MetaClient.connect(address, { attempts: 1, deadlineMs: (req.timeoutMs || CATCH_UP_DEFAULT_MS) + 30_000 });
      try {
        return await client.raftAdmin(req);
      } finally {
        client.close();
      }
    }
    switch (req.action) {
      case 'add-member':
        return this.addMember(req);
      case 'remove-member':
        return this.removeMember(req);
      case 'transfer-leader': {
        if (!(this.status().members ?? []).some((m) => m.nodeId === req.nodeId && !m.isLearner)) {
          return { errno: 22, message: `'${req.nodeId}' is not a voter of this cluster`, leader };
        }
        if (req.nodeId === this.selfId) return { errno: 0, message: `${req.nodeId} already leads`, leader };
        this.driver.transferLeader(req.nodeId);
        let unsubscribe: () => void = () => undefined;
        const moved = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), TRANSFER_WAIT_MS);
          unsubscribe = this.driver.onLeaderChange((l) => {
            if (l === req.nodeId) {
              clearTimeout(timer);
              resolve(true);
            }
          });
        });
        unsubscribe();
        this.log.info({ to: req.nodeId, moved }, 'leadership transfer');
        return moved
          ? { errno: 0, message: `leadership moved to ${req.nodeId}`, leader: req.nodeId }
          : { errno: 110, message: `leadership did not move to ${req.nodeId} within ${TRANSFER_WAIT_MS} ms`, leader: this.driver.leaderId ?? '' };
      }
      default:
        return { errno: 38, message: `action '${req.action}' is not supported by this version`, leader };
    }
  }

  /** Learner first; promoted to voter once it caught up. Re-running it promotes a learner. */
  private async addMember(req: RaftAdminRequest__Output): Promise<RaftAdminReply> {
    const id = req.nodeId;
    const leader = this.selfId;
    if (!NODE_ID_RE.test(id)) return { errno: 22, message: `'${id}' is not a valid node id (1-64 of [A-Za-z0-9._-])`, leader };
    let s = this.driver.status();
    if (s.conf.voters.includes(id)) return { errno: 17, message: `'${id}' is already a voter`, leader };
    if (!s.conf.learners.includes(id)) {
      try {
        parseAddress(req.address, 'address');
      } catch (e) {
        return { errno: 22, message: (e as Error).message, leader };
      }
      const taken = [...this.members()].find(([m, a]) => a === req.address && m !== id);
      if (taken) return { errno: 17, message: `address ${req.address} belongs to member '${taken[0]}'`, leader };
      const added = await this.change({ type: 'addLearner', node: id, address: req.address });
      if (added) return added;
      this.log.info({ node: id, address: req.address }, 'member added as a learner');
    }
    const timeoutMs = req.timeoutMs || CATCH_UP_DEFAULT_MS;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      s = this.driver.status();
      if (s.leader !== this.selfId) {
        return { errno: 11, message: `leadership moved while '${id}' was catching up; it stays a learner: run add-member again to promote it`, leader: s.leader ?? '' };
      }
      if (!s.conf.learners.includes(id)) {
        if (s.conf.voters.includes(id)) return { errno: 0, message: `${id} is a voter`, leader };
        return { errno: 4, message: `'${id}' was removed while catching up`, leader };
      }
      const p = s.progress[id];
      if (p && p.match > 0 && p.state === 'replicate' && p.match + CATCH_UP_SLACK >= s.commit) break;
      if (performance.now() >= deadline) {
        return {
          errno: 110,
          message: `'${id}' is a learner but did not catch up within ${timeoutMs} ms (match ${p?.match ?? 0} of commit ${s.commit}); is \`dfs daemon --join\` running at ${this.members().get(id) ?? '?'}? Run add-member again to promote it`,
          leader,
        };
      }
      await delay(POLL_MS);
    }
    const promoted = await this.change({ type: 'addVoter', node: id });
    if (promoted) return promoted;
    const voters = this.driver.status().conf.voters.length;
    this.log.info({ node: id, voters }, 'learner promoted to voter');
    return { errno: 0, message: `${id} added: caught up as a learner, now one of ${voters} voters`, leader };
  }

  private async removeMember(req: RaftAdminRequest__Output): Promise<RaftAdminReply> {
    const id = req.nodeId;
    const s = this.driver.status();
    const leader = this.selfId;
    const isVoter = s.conf.voters.includes(id);
    if (!isVoter && !s.conf.learners.includes(id)) return { errno: 2, message: `'${id}' is not a member of this cluster`, leader };
    if (isVoter) {
      const remaining = s.conf.voters.filter((v) => v !== id);
      if (remaining.length === 0) return { errno: 22, message: `'${id}' is the last voter; a cluster cannot remove its last voter`, leader };
      const live = remaining.filter((v) => v === this.selfId || s.progress[v]?.recentActive);
      if (live.length < quorum(remaining.length) && !req.force) {
        return {
          errno: 16,
          message: `removing '${id}' leaves ${remaining.length} voters of which only ${live.length} answer (a quorum is ${quorum(remaining.length)}); bring nodes back first, or pass --force`,
          leader,
        };
      }
    }
    if (id === this.selfId) {
      // The leader does not remove itself: it hands leadership to the most caught-up
      // live voter, which then carries out the removal.
      const to = s.conf.voters
        .filter((v) => v !== id && s.progress[v]?.recentActive)
        .sort((a, b) => (s.progress[b]?.match ?? 0) - (s.progress[a]?.match ?? 0))[0];
      if (!to) return { errno: 16, message: `no other live voter to hand leadership to before removing '${id}'`, leader };
      const moved = await this.admin({ ...req, action: 'transfer-leader', nodeId: to });
      if (moved.errno !== 0) return moved;
      return this.admin(req);
    }
    const removed = await this.change({ type: 'removeNode', node: id });
    if (removed) return removed;
    const conf = this.driver.status().conf;
    this.log.info({ node: id, voters: conf.voters, learners: conf.learners }, 'member removed');
    return { errno: 0, message: `${id} removed; ${conf.voters.length} voters remain (${conf.voters.join(', ')})`, leader };
  }

  /** Proposes one membership change and waits until it is applied here; null when it was. */
  private async change(cc: ConfChange): Promise<RaftAdminReply | null> {
    const deadline = performance.now() + CONF_PENDING_WAIT_MS;
    for (;;) {
      const r = await this.driver.proposeConfChange(cc);
      if (r.ok) return null;
      if (r.reason === 'confChangePending' && performance.now() < deadline) {
        await delay(POLL_MS);
        continue;
      }
      const leader = r.leader ?? '';
      switch (r.reason) {
        case 'notLeader':
        case 'overwritten':
        case 'stopped':
          return { errno: 11, message: `membership change ${cc.type} ${cc.node} not applied: leadership moved (${r.reason}); try again`, leader };
        case 'transferring':
          return { errno: 11, message: 'a leadership transfer is in progress; try again', leader };
        case 'confChangePending':
          return { errno: 16, message: 'another membership change is still pending; try again', leader };
        case 'timeout':
          return { errno: 110, message: `membership change ${cc.type} ${cc.node} did not commit in time (is a quorum up?)`, leader };
        default:
          return { errno: 5, message: `membership change refused: ${r.reason}`, leader };
      }
    }
  }
}
