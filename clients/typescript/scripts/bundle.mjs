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

// The demo page's chart library, uPlot (MIT), copied as its package ships it from node_modules
// (a devDependency pinned by the lockfile) to server/src/demo/vendor/, which the server embeds:
// the page loads nothing from the network.
const vendor = path.resolve(here, '..', '..', '..', 'server', 'src', 'demo', 'vendor');
for (const name of ['uPlot.iife.min.js', 'uPlot.min.css', 'LICENSE']) {
  const from = path.resolve(here, '..', 'node_modules', 'uplot', name === 'LICENSE' ? '' : 'dist', name);
  const want = await readFile(from, 'utf8');
  const to = path.join(vendor, name === 'LICENSE' ? 'uPlot.LICENSE' : name);
  if (check) {
    const have = await readFile(to, 'utf8').catch(() => null);
    if (have !== want) {
      console.error(`${path.relative(process.cwd(), to)} is stale; run \`npm run build\` in clients/typescript`);
      process.exit(1);
    }
  } else {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(vendor, { recursive: true });
    await writeFile(to, want);
  }
}
console.log(check ? 'server/src/demo/vendor (uPlot) is up to date' : `copied uPlot -> ${vendor}`);
