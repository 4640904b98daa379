// Injected storage faults for integration tests (issue 16): with DFS_TEST_FAULTS=1 in its
// environment a server daemon reads `<dataDir>/test-faults` every 100 ms; while that file
// names `log` and/or `meta` (one per line), every write of the Raft log or of the namespace
// RocksDB fails with EIO. Removing the file clears the fault. Never on without the variable.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { LogFile, LogFs } from '../cluster/raft/log-fs.js';
import type { Kv } from '../meta/kv.js';

export type FaultTarget = 'log' | 'meta';

const POLL_MS = 100;

export class TestFaults {
  private active = new Set<FaultTarget>();
  private timer: NodeJS.Timeout | null = null;

  private constructor(private readonly file: string) {}

  /** The switch for `dataDir`, or null when the environment does not ask for one. */
  static fromEnv(dataDir: string, env: NodeJS.ProcessEnv = process.env): TestFaults | null {
    if (env.DFS_TEST_FAULTS !== '1') return null;
    const f = new TestFaults(path.join(dataDir, 'test-faults'));
    f.timer = setInterval(() => void f.poll(), POLL_MS);
    f.timer.unref();
    return f;
  }

  private async poll(): Promise<void> {
    let text = '';
    try {
      text = await readFile(this.file, 'utf8');
    } catch {
      // no file: no fault
    }
    const next = new Set<FaultTarget>();
    for (const line of text.split('\n')) {
      const t = line.trim();
      if (t === 'log' || t === 'meta') next.add(t);
    }
    this.active = next;
  }

  private check(target: FaultTarget, what: string): void {
    if (!this.active.has(target)) return;
    throw Object.assign(new Error(`EIO: i/o error, ${what} (injected by ${this.file})`), { code: 'EIO', errno: -5 });
  }

  /** `fs` whose writes, syncs and creates fail while `log` is named. */
  logFs(fs: LogFs): LogFs {
    const wrapFile = (f: LogFile): LogFile => ({
      write: async (buf, position) => {
        this.check('log', 'write');
        return f.write(buf, position);
      },
      datasync: async () => {
        this.check('log', 'fdatasync');
        return f.datasync();
      },
      writeDurable: f.writeDurable
        ? async (buf, position) => {
            this.check('log', 'write');
            return f.writeDurable!(buf, position);
          }
        : undefined,
      truncate: (size) => f.truncate(size),
      close: () => f.close(),
    });
    return {
      ...fs,
      createFile: async (p) => {
        this.check('log', `open '${p}'`);
        return wrapFile(await fs.createFile(p));
      },
      openFile: async (p) => wrapFile(await fs.openFile(p)),
      rename: async (source, target) => {
        this.check('log', `rename '${source}'`);
        return fs.rename(source, target);
      },
    };
  }

  /** `kv` whose writes fail while `meta` is named (as RocksDB's do on a failing disk). */
  kv<K extends Kv>(kv: K): K {
    const write = kv.write.bind(kv);
    kv.write = async (batch, opts) => {
      this.check('meta', 'rocksdb write');
      return write(batch, opts);
    };
    return kv;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
