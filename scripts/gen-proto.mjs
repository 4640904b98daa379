#!/usr/bin/env node
// Generates TypeScript types for every src/**/*.proto into a sibling gen/ folder
// (src/chunks/chunk.proto -> src/chunks/gen/). The gen/ folders are git-ignored; run
// `npm run gen` after editing a .proto. New .proto files are picked up without change here.
import { execFile } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = path.join(root, 'src');
const require = createRequire(import.meta.url);
const generatorBin = path.join(
  path.dirname(require.resolve('@grpc/proto-loader/package.json')),
  'build/bin/proto-loader-gen-types.js',
);
// Must match the proto-loader options used at runtime (src/common/proto.ts).
const generatorFlags = ['--longs=Number', '--enums=String', '--defaults', '--oneofs', '--grpcLib=@grpc/grpc-js'];

async function findProtos(dir) {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.proto'))
    .map((e) => path.join(e.parentPath ?? e.path, e.name))
    .filter((file) => !file.split(path.sep).includes('gen'))
    .sort();
}

async function listTs(dir) {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => path.join(e.parentPath ?? e.path, e.name));
}

// The generator writes extensionless relative imports; module NodeNext needs `.js`.
function addJsSuffixes(source) {
  return source.replace(/from '(\.{1,2}\/[^']+?)(?<!\.js)'/g, "from '$1.js'");
}

async function main() {
  const protos = await findProtos(srcDir);
  const byDir = new Map();
  for (const file of protos) {
    const dir = path.dirname(file);
    byDir.set(dir, [...(byDir.get(dir) ?? []), file]);
  }
  for (const [dir, files] of byDir) {
    const outDir = path.join(dir, 'gen');
    await rm(outDir, { recursive: true, force: true });
    const relFiles = files.map((f) => path.relative(root, f));
    await execFileAsync(process.execPath, [generatorBin, ...generatorFlags, '-O', path.relative(root, outDir), ...relFiles], {
      cwd: root,
    });
    for (const tsFile of await listTs(outDir)) {
      await writeFile(tsFile, addJsSuffixes(await readFile(tsFile, 'utf8')));
    }
    console.log(`gen-proto: ${relFiles.join(', ')} -> ${path.relative(root, outDir)}/`);
  }
  if (protos.length === 0) console.log('gen-proto: no .proto files under src/');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
