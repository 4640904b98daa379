// A follower's namespace commands, forwarded to the leader over the Raft transport's App
// frames instead of a gRPC call (issue 11: the gRPC hop — HTTP/2 framing and protobuf on
// both sides — was the largest single cost of a command from a follower's mount).
//
// The leader runs a forwarded command exactly as one that arrived over gRPC
// (ReplicatedMeta.executeEnvelopeR: admission, the lease gate, propose, wait for apply)
// and sends its answer back the same way. The command keeps its client id and sequence
// number, so a forward that got no answer is sent again under the dedup table, like any
// retried call. Delivery is not promised (a connection that fails loses what it carried):
// a forward unanswered within the deadline is a call without answer (`noAnswer`).
//
// Payloads (App frames; big-endian):
//   request: u8 1 | u32 id | CommandRequest bytes (the envelope, meta/envelope-codec.ts)
//   answer:  u8 2 | u32 id | u8 0 | CommandReply bytes          (the leader's answer)
//            u8 2 | u32 id | u8 1 | u8 n | n bytes leader id    (not the leader; maybe who is)
import type { Logger } from 'pino';
import type { NodeId } from '../cluster/raft/types.js';
import type { EnvelopeCodec } from '../meta/envelope-codec.js';
import { Errno, type Envelope, type Result } from '../meta/types.js';
import { NotLeader } from './replicated-meta.js';

const REQUEST = 1;
const ANSWER = 2;
const ANSWERED = 0;
const NOT_LEADER = 1;

/** What a forward needs of the transport (TcpTransport.sendApp). */
export interface AppSender {
  sendApp(peer: NodeId, payload: Buffer): boolean;
  canSendApp(peer: NodeId): boolean;
}

/** What runs a forwarded command on the leader (ReplicatedMeta). */
export interface EnvelopeExecutor {
  executeEnvelopeR(envelope: Envelope): Promise<Result<unknown> | NotLeader>;
}

interface Waiter {
  peer: NodeId;
  resolve: (r: Result<unknown> | NotLeader) => void;
  timer: NodeJS.Timeout;
}

/** Forwarded commands waiting for their answer at most (a leader that answers nothing meanwhile is looked for again). */
export const FORWARD_DEADLINE_MS = 8_000;
/** Forwards in flight at once from one node; beyond it a forward fails at once as unanswered (the caller retries). */
const MAX_IN_FLIGHT = 4096;

export class CommandForwarder {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private closed = false;
  readonly counters = { forwarded: 0, answered: 0, unanswered: 0, served: 0 };

  constructor(
    private readonly transport: AppSender,
    private readonly local: EnvelopeExecutor,
    private readonly codec: EnvelopeCodec,
    private readonly log: Logger,
    private readonly deadlineMs = FORWARD_DEADLINE_MS,
  ) {}

  /** Whether `leader` takes forwarded commands now (connected, and of a version that has them); else use gRPC. */
  reaches(leader: NodeId): boolean {
    return !this.closed && this.transport.canSendApp(leader);
  }

  /** Sends `envelope` to `leader`: its answer, NotLeader (with who leads, if it knows), or a failure without answer. */
  forward(leader: NodeId, envelope: Envelope): Promise<Result<unknown> | NotLeader> {
    const unanswered: Result<unknown> = { ok: false, errno: Errno.ETIMEDOUT, noAnswer: true };
    if (this.closed || this.waiting.size >= MAX_IN_FLIGHT) return Promise.resolve(unanswered);
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    const body = this.codec.encode(envelope);
    const payload = Buffer.allocUnsafe(5 + body.length);
    payload.writeUInt8(REQUEST, 0);
    payload.writeUInt32BE(id, 1);
    body.copy(payload, 5);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        this.counters.unanswered++;
        resolve(unanswered);
      }, this.deadlineMs);
      this.waiting.set(id, { peer: leader, resolve, timer });
      this.counters.forwarded++;
      if (!this.transport.sendApp(leader, payload)) this.settle(id, unanswered);
    });
  }

  /** An App frame from `from` (TcpTransport's onApp). Malformed ones are dropped and logged: they come from an authenticated member. */
  onApp(from: NodeId, payload: Buffer): void {
    if (payload.length < 5) return this.malformed(from, 'short payload');
    const kind = payload.readUInt8(0);
    const id = payload.readUInt32BE(1);
    if (kind === REQUEST) return void this.serve(from, id, payload.subarray(5));
    if (kind !== ANSWER || payload.length < 6) return this.malformed(from, `kind ${kind}`);
    const status = payload.readUInt8(5);
    if (status === ANSWERED) {
      let r: Result<unknown>;
      try {
        r = this.codec.decodeReply(payload.subarray(6));
      } catch (e) {
        return this.malformed(from, `answer: ${(e as Error).message}`);
      }
      this.counters.answered++;
      return this.settle(id, r);
    }
    if (status === NOT_LEADER && payload.length >= 7) {
      const n = payload.readUInt8(6);
      const leader = payload.subarray(7, 7 + n).toString('utf8');
      return this.settle(id, new NotLeader(leader.length > 0 ? leader : null));
    }
    this.malformed(from, `answer status ${status}`);
  }

  /**
   * The transport lost its connection to `peer` (or shed its queue): what was sent there
   * may be gone, so its waiting forwards get "no answer" now rather than at their deadline
   * (the caller looks for the leader again at once).
   */
  peerUnreachable(peer: NodeId): void {
    for (const [id, w] of [...this.waiting]) if (w.peer === peer) this.settle(id, { ok: false, errno: Errno.ETIMEDOUT, noAnswer: true });
  }

  /** Every waiting forward gets "no answer" (the daemon stops). */
  close(): void {
    this.closed = true;
    for (const id of [...this.waiting.keys()]) this.settle(id, { ok: false, errno: Errno.EIO, noAnswer: true });
  }

  private settle(id: number, r: Result<unknown> | NotLeader): void {
    const w = this.waiting.get(id);
    if (!w) return; // answered after its deadline: the caller has moved on
    this.waiting.delete(id);
    clearTimeout(w.timer);
    w.resolve(r);
  }

  private async serve(from: NodeId, id: number, body: Buffer): Promise<void> {
    let envelope: Envelope | null;
    try {
      envelope = this.codec.decode(body);
    } catch (e) {
      return this.malformed(from, `request: ${(e as Error).message}`);
    }
    this.counters.served++;
    let r: Result<unknown> | NotLeader;
    if (!envelope) r = { ok: false, errno: Errno.EINVAL };
    else {
      try {
        r = await this.local.executeEnvelopeR(envelope);
      } catch (e) {
        this.log.error({ err: e, from }, 'forwarded command failed');
        r = { ok: false, errno: Errno.EIO };
      }
    }
    let answer: Buffer;
    if (r instanceof NotLeader) {
      const leader = Buffer.from(r.leader ?? '', 'utf8');
      answer = Buffer.allocUnsafe(7 + leader.length);
      answer.writeUInt8(NOT_LEADER, 5);
      answer.writeUInt8(leader.length, 6);
      leader.copy(answer, 7);
    } else {
      const reply = this.codec.encodeReply(envelope?.command ?? null, r);
      answer = Buffer.allocUnsafe(6 + reply.length);
      answer.writeUInt8(ANSWERED, 5);
      reply.copy(answer, 6);
    }
    answer.writeUInt8(ANSWER, 0);
    answer.writeUInt32BE(id, 1);
    this.transport.sendApp(from, answer);
  }

  private malformed(from: NodeId, what: string): void {
    this.log.warn({ from, what }, 'malformed forwarded-command frame; dropped');
  }
}
