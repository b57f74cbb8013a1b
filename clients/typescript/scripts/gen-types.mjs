// Generates src/generated/<stem>.ts from every ../../schemas/<stem>.schema.json with
// json-schema-to-typescript (the approach of tools/schema-consumers/gen-types.mjs).
//
//   node scripts/gen-types.mjs           write src/generated/
//   node scripts/gen-types.mjs --check   fail if src/generated/ differs from what it would write
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile } from 'json-schema-to-typescript';

const here = path.dirname(fileURLToPath(import.meta.url));
const schemasDir = path.resolve(here, '..', '..', '..', 'schemas');
const outDir = path.resolve(here, '..', 'src', 'generated');
const check = process.argv.includes('--check');

const files = (await readdir(schemasDir)).filter((f) => f.endsWith('.schema.json')).sort();
if (files.length === 0) {
  console.error(`no *.schema.json in ${schemasDir}`);
  process.exit(1);
}

const wanted = new Map();
for (const file of files) {
  const schema = JSON.parse(await readFile(path.join(schemasDir, file), 'utf8'));
  const stem = file.slice(0, -'.schema.json'.length);
  const ts = await compile(schema, schema.title ?? stem, {
    bannerComment:
      `// Generated from schemas/${file} by clients/typescript/scripts/gen-types.mjs ` +
      '(`npm run gen`); do not edit.',
    cwd: schemasDir,
    additionalProperties: false,
    strictIndexSignatures: true,
    format: false,
  });
  wanted.set(`${stem}.ts`, ts);
}

if (check) {
  const stale = [];
  const present = new Set((await readdir(outDir).catch(() => [])).filter((f) => f.endsWith('.ts')));
  for (const [name, ts] of wanted) {
    const have = await readFile(path.join(outDir, name), 'utf8').catch(() => null);
    if (have !== ts) stale.push(have === null ? `${name} (missing)` : name);
    present.delete(name);
  }
  for (const extra of present) stale.push(`${extra} (no schema any more)`);
  if (stale.length) {
    console.error(`src/generated is stale: ${stale.join(', ')}; run \`npm run gen\``);
    process.exit(1);
  }
  console.log(`src/generated is up to date with ${files.length} schemas`);
} else {
  await mkdir(outDir, { recursive: true });
  for (const [name, ts] of wanted) await writeFile(path.join(outDir, name), ts);
  console.log(`json-schema-to-typescript: ${files.length} schemas -> ${outDir}`);
}
