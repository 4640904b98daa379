// The file operations the Raft log store needs, as an interface: the real one is Node's
// fs/promises (every call runs in the libuv thread pool, so the event loop never waits on
// the disk); tests wrap it to count and order writes and datasyncs or to inject faults.
import { constants } from 'node:fs';
import { open, mkdir, readdir, readFile, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

export interface LogFile {
  /** Write all of `buf` at `position` (short writes are retried). */
  write(buf: Buffer, position: number): Promise<void>;
  /** fdatasync: the data, and metadata only if needed to read it back (size). */
  datasync(): Promise<void>;
  /**
   * Optional: write all of `buf` at `position` and make it durable as by datasync(), in
   * one operation (one trip through the libuv pool instead of two: on the commit path of
   * every Raft entry). Without it the store calls write() then datasync().
   */
  writeDurable?(buf: Buffer, position: number): Promise<void>;
  /** Set the size (sparse preallocation). */
  truncate(sizeBytes: number): Promise<void>;
  close(): Promise<void>;
}

export interface LogFs {
  mkdirp(dir: string): Promise<void>;
  list(dir: string): Promise<string[]>;
  readFile(path: string): Promise<Buffer>;
  /** Open for writing, creating or truncating the file. */
  createFile(path: string): Promise<LogFile>;
  /** Open an existing file for writing in place (the active log segment). */
  openFile(path: string): Promise<LogFile>;
  /** Atomic replace of `target`. */
  rename(source: string, target: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** fsync the directory, making creates, renames and unlinks in it durable. */
  syncDir(dir: string): Promise<void>;
}

class NodeLogFile implements LogFile {
  constructor(private readonly fh: FileHandle) {}

  writeDurable?: (buf: Buffer, position: number) => Promise<void>;

  async write(buf: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await this.fh.write(buf, done, buf.length - done, position + done);
      if (bytesWritten <= 0) throw new Error(`log write made no progress at ${position + done}`);
      done += bytesWritten;
    }
  }

  datasync(): Promise<void> {
    return this.fh.datasync();
  }

  truncate(sizeBytes: number): Promise<void> {
    return this.fh.truncate(sizeBytes);
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

export const nodeLogFs: LogFs = {
  async mkdirp(dir) {
    await mkdir(dir, { recursive: true });
  },
  list: (dir) => readdir(dir),
  readFile: (path) => readFile(path),
  createFile: async (path) => new NodeLogFile(await open(path, 'w')),
  openFile: async (path) => {
    // O_DSYNC: every write returns once its data is durable, as if followed by fdatasync
    // (same flush on ext4/xfs), so writeDurable is a single pwrite in the pool.
    const file = new NodeLogFile(await open(path, constants.O_RDWR | constants.O_DSYNC));
    file.writeDurable = (buf, position) => file.write(buf, position);
    return file;
  },
  rename: (source, target) => rename(source, target),
  unlink: (path) => unlink(path),
  async syncDir(dir) {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};
