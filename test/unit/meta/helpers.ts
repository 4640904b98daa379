import { MemKV } from '../../../src/meta/kv.js';
import { MetaStore, type MetaStoreOptions } from '../../../src/meta/store.js';
import type { Attr, Command, CommandValues, Ino, Result, Timespec } from '../../../src/meta/types.js';

export const CALLER = { uid: 1000, gid: 1000 };

/** A MetaStore over MemKV with a fake clock that advances one second per command. */
export class Fixture {
  clock = 100;
  constructor(readonly store: MetaStore, readonly kv: MemKV) {}

  static async create(options: MetaStoreOptions = {}): Promise<Fixture> {
    const kv = new MemKV();
    return new Fixture(await MetaStore.open(kv, options), kv);
  }

  now(): Timespec {
    return { sec: ++this.clock, nsec: 0 };
  }

  run<C extends Command>(c: C): Promise<Result<CommandValues[C['op']]>> {
    return this.store.execute(c);
  }

  async ok<C extends Command>(c: C): Promise<CommandValues[C['op']]> {
    const r = await this.store.execute(c);
    if (!r.ok) throw new Error(`${c.op} failed with errno ${r.errno}`);
    return r.value;
  }

  mknod(parent: Ino, name: string, mode = 0o100644): Promise<Result<Attr>> {
    return this.run({ op: 'mknod', parent, name, mode, rdev: 0, caller: CALLER, now: this.now() });
  }
  mkdir(parent: Ino, name: string, mode = 0o755): Promise<Result<Attr>> {
    return this.run({ op: 'mkdir', parent, name, mode, caller: CALLER, now: this.now() });
  }
  async file(parent: Ino, name: string): Promise<Attr> {
    return this.ok({ op: 'mknod', parent, name, mode: 0o100644, rdev: 0, caller: CALLER, now: this.now() });
  }
  async dir(parent: Ino, name: string): Promise<Attr> {
    return this.ok({ op: 'mkdir', parent, name, mode: 0o755, caller: CALLER, now: this.now() });
  }
  unlink(parent: Ino, name: string): Promise<Result<null>> {
    return this.run({ op: 'unlink', parent, name, now: this.now() });
  }
  rmdir(parent: Ino, name: string): Promise<Result<null>> {
    return this.run({ op: 'rmdir', parent, name, now: this.now() });
  }
  rename(parent: Ino, name: string, newParent: Ino, newName: string, flags = 0): Promise<Result<null>> {
    return this.run({ op: 'rename', parent, name, newParent, newName, flags, now: this.now() });
  }
  link(ino: Ino, newParent: Ino, newName: string): Promise<Result<Attr>> {
    return this.run({ op: 'link', ino, newParent, newName, now: this.now() });
  }
  async attr(ino: Ino): Promise<Attr> {
    const r = await this.store.getattr(ino);
    if (!r.ok) throw new Error(`getattr ${ino}: errno ${r.errno}`);
    return r.value;
  }
  async names(ino: Ino): Promise<string[]> {
    const r = await this.store.readdir(ino, null, 1000);
    if (!r.ok) throw new Error(`readdir ${ino}: errno ${r.errno}`);
    return r.value.entries.map((e) => e.name);
  }
}

export function errnoOf(r: Result<unknown>): number {
  return r.ok ? 0 : r.errno;
}
