// Bundles the client into one browser script, server/src/demo/herald-client.js, which the demo
// page loads (global `Herald`). The file is committed: the server embeds it with include_str!.
//
//   node scripts/bundle.mjs           write it
//   node scripts/bundle.mjs --check   fail if the committed file differs from a fresh bundle
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, '..', '..', '..', 'server', 'src', 'demo', 'herald-client.js');
const check = process.argv.includes('--check');

const result = await build({
  entryPoints: [path.resolve(here, '..', 'src', 'index.ts')],
  bundle: true,
  format: 'iife',
  globalName: 'Herald',
  platform: 'browser',
  target: 'es2020',
  legalComments: 'none',
  charset: 'utf8',
  write: false,
  banner: {
    js:
      '// The Herald TypeScript client (clients/typescript), bundled by its scripts/bundle.mjs ' +
      '(`npm run build`); do not edit.',
  },
});
const text = result.outputFiles[0].text;

if (check) {
  const have = await readFile(out, 'utf8').catch(() => null);
  if (have !== text) {
    console.error(`${path.relative(process.cwd(), out)} is stale; run \`npm run build\` in clients/typescript`);
    process.exit(1);
  }
  console.log('server/src/demo/herald-client.js is up to date');
} else {
  await writeFile(out, text);
  console.log(`bundled ${text.length} bytes -> ${out}`);
}
