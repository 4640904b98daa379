// The replicated state machine of the simulation: the ordered list of what was applied
// at each log index ("." for an empty entry, "@type:node" for a membership change, the
// command text otherwise). A snapshot is that list; a restarted node rebuilds from its
// snapshot and re-applies the committed log after it.
import type { ConfState } from '../types.js';

export interface SmImage {
  items: string[];
  conf: ConfState;
}

export class SimStateMachine {
  /** items[i - 1] is what index i applied. */
  items: string[] = [];
  conf: ConfState;
  /** Application commands applied so far (for reads). */
  commandCount = 0;
  /** commandCountAt[i] = commands among indexes 1..i. */
  private countAt: number[] = [0];

  constructor(conf: ConfState) {
    this.conf = { voters: [...conf.voters], learners: [...conf.learners] };
  }

  get applied(): number {
    return this.items.length;
  }

  apply(index: number, item: string): void {
    if (index !== this.items.length + 1) throw new Error(`state machine: apply ${index} after ${this.items.length}`);
    this.items.push(item);
    if (isCommand(item)) this.commandCount++;
    this.countAt.push(this.commandCount);
  }

  commandsUpTo(index: number): number {
    if (index > this.items.length) throw new Error(`state machine: read at ${index} beyond applied ${this.items.length}`);
    return this.countAt[index];
  }

  image(): Buffer {
    return Buffer.from(JSON.stringify({ items: this.items, conf: this.conf } satisfies SmImage));
  }

  static restore(data: Buffer, index: number): SimStateMachine {
    const img = JSON.parse(data.toString('utf8')) as SmImage;
    if (img.items.length !== index) throw new Error(`state machine: snapshot image has ${img.items.length} items, meta index ${index}`);
    const sm = new SimStateMachine(img.conf);
    for (let i = 0; i < img.items.length; i++) sm.apply(i + 1, img.items[i]);
    return sm;
  }
}

export function isCommand(item: string): boolean {
  return item.length > 0 && item[0] === 'c';
}
