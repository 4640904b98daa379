// Records the Raft simulator's client operations as a history for the append-only log
// model: each proposed command is append(cmd) (invoked when proposed, answered when the
// proposer applies it, answered "no effect" when refused or overwritten, incomplete when
// its node crashed or jumped past it by snapshot), each ReadIndex read is read() answered
// with the commands applied up to its read index.
import type { SimClientObserver } from '../sim/index.js';
import { HistoryRecorder, type CheckOptions, type CheckResult, type Operation } from './checker.js';
import { checkAppendLog, type LogInput, type LogOutput } from './models.js';

/** A simulator run has a few hundred client operations; this only stops a runaway. */
const MAX_SIM_OPS = 50_000;

export class SimHistory implements SimClientObserver {
  private readonly rec = new HistoryRecorder<LogInput, LogOutput>(MAX_SIM_OPS);
  /** Command -> operation id; `answered` once the client got its first answer. */
  private readonly writes = new Map<string, { id: number; answered: boolean }>();
  private readonly reads = new Map<string, number>();

  writeInvoked(cmd: string): void {
    if (this.writes.has(cmd)) throw new Error(`sim history: command ${cmd} proposed twice`);
    this.writes.set(cmd, { id: this.rec.invoke(`w:${cmd}`, { op: 'append', value: cmd }), answered: false });
  }

  writeAcked(cmd: string): void {
    this.answerWrite(cmd, true);
  }

  writeFailed(cmd: string): void {
    this.answerWrite(cmd, false);
  }

  private answerWrite(cmd: string, applied: boolean): void {
    const w = this.writes.get(cmd);
    if (w === undefined) throw new Error(`sim history: answer for ${cmd}, never proposed`);
    // A client takes the first answer it gets (a broken driver may answer twice: that
    // first answer is what the checker must judge).
    if (w.answered) return;
    w.answered = true;
    this.rec.complete(w.id, { op: 'append', applied });
  }

  readInvoked(ctx: string): void {
    this.reads.set(ctx, this.rec.invoke(`r:${ctx}`, { op: 'read' }));
  }

  readServed(ctx: string, commands: readonly string[]): void {
    const id = this.reads.get(ctx);
    if (id === undefined) return;
    this.reads.delete(ctx);
    this.rec.complete(id, { op: 'read', values: [...commands] });
  }

  history(): Operation<LogInput, LogOutput>[] {
    return this.rec.history();
  }

  check(opts: CheckOptions): CheckResult {
    return checkAppendLog(this.history(), opts);
  }
}
