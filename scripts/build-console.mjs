// Builds the management console (src/console) into dist/console: one minified JS bundle
// (Preact, esbuild), one CSS file and index.html; the daemon serves them (src/daemon/http-api.ts).
// Prints the sizes (BENCHMARKS.md quotes them).
import { build } from 'esbuild';
import { copyFile, mkdir, rm, stat } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'src', 'console');
const out = path.join(root, 'dist', 'console');
await rm(out, { recursive: true, force: true });
await mkdir(path.join(out, 'assets'), { recursive: true });
await build({
  entryPoints: [path.join(src, 'main.tsx')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2022',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outfile: path.join(out, 'assets', 'app.js'),
  logLevel: 'warning',
  legalComments: 'none',
});
await copyFile(path.join(src, 'index.html'), path.join(out, 'index.html'));
await copyFile(path.join(src, 'app.css'), path.join(out, 'assets', 'app.css'));
const sizes = [];
for (const f of ['assets/app.js', 'assets/app.css', 'index.html']) {
  const body = await readFile(path.join(out, f));
  sizes.push(`${f} ${(await stat(path.join(out, f))).size} B (${gzipSync(body).length} B gzip)`);
}
console.log(`build-console: ${sizes.join(', ')}`);
