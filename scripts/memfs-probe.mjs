#!/usr/bin/env node
// The binding ceiling probe (issue 11): an in-memory filesystem (src/fuse/memory-vfs.ts)
// mounted through dfs's own FUSE binding and adapter with the mount options and kernel
// timeouts a dfs daemon uses. Whatever fsbench measures on it is what the binding and
// the adapter allow on this machine; BENCHMARKS.md compares dfs with it. A measuring
// tool, not a product mode: the data lives in this process and is gone when it exits.
//
//   npm run build && node scripts/memfs-probe.mjs MOUNTPOINT [--capacity-gib N]
//
// Prints "mounted <dir> pid <pid>" once the mount answers; SIGINT/SIGTERM unmount and
// exit 0; an unmount from outside (fusermount3 -u) exits too.
import { stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => pathToFileURL(join(root, 'dist/src', p)).href;
const { FuseAdapter, DEFAULT_ADAPTER_OPTIONS } = await import(dist('fuse/adapter.js'));
const { MemoryVfs } = await import(dist('fuse/memory-vfs.js'));
const { prepareMountpoint } = await import(dist('fuse/mountpoint.js'));

const args = process.argv.slice(2);
const mountArg = args.find((a) => !a.startsWith('--'));
if (!mountArg) {
  console.error('usage: memfs-probe.mjs MOUNTPOINT [--capacity-gib N]');
  process.exit(2);
}
const mountpoint = resolve(mountArg);
const capIndex = args.indexOf('--capacity-gib');
const capacityGiB = capIndex >= 0 ? Number(args[capIndex + 1]) : 8;
if (!(capacityGiB > 0)) {
  console.error('--capacity-gib must be a positive number');
  process.exit(2);
}

await prepareMountpoint(mountpoint);
const vfs = new MemoryVfs({ capacityBytes: capacityGiB * 1024 ** 3, rootUid: process.getuid(), rootGid: process.getgid() });
// As src/daemon/daemon.ts mounts: default adapter options with the config's attribute
// timeout (default 1 s) for entries and attributes, the same -o options inside mount().
const attrTimeoutS = 1;
const fuse = new FuseAdapter(vfs, { ...DEFAULT_ADAPTER_OPTIONS, entryTimeoutS: attrTimeoutS, attrTimeoutS });
fuse.mount(mountpoint, 'memvfs');

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  await fuse.unmount();
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
fuse.whenExited().then(() => {
  if (!stopping) process.exit(0);
});

// The first request needs the event loop: poll the mount without blocking it.
const deadline = Date.now() + 10_000;
for (;;) {
  try {
    await stat(mountpoint);
    break;
  } catch (e) {
    if (Date.now() > deadline) {
      console.error(`mount at ${mountpoint} did not answer: ${e.message}`);
      await stop(1);
    }
    await sleep(20);
  }
}
console.log(`mounted ${mountpoint} pid ${process.pid}`);
