// Raft state and administration over the meta service: status for `dfs raft status`,
// leadership transfer for `dfs raft transfer-leader`. A follower forwards admin calls
// to the leader.
import type { Logger } from 'pino';
import { MetaClient, type RaftAdminBackend } from '../meta/grpc.js';
import type { RaftStatusReply } from '../meta/gen/dfs/meta/RaftStatusReply.js';
import type { RaftAdminReply } from '../meta/gen/dfs/meta/RaftAdminReply.js';
import type { RaftAdminRequest__Output } from '../meta/gen/dfs/meta/RaftAdminRequest.js';
import type { RaftDriver } from '../cluster/raft/driver.js';

const TRANSFER_WAIT_MS = 10_000;

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
      const client = await MetaClient.connect(address, { attempts: 1 });
      try {
        return await client.raftAdmin(req);
      } finally {
        client.close();
      }
    }
    switch (req.action) {
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
        return { errno: 38, message: `action '${req.action}' is not supported by this version (membership changes come next)`, leader };
    }
  }
}
