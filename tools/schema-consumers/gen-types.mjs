// Writes one TypeScript module per JSON Schema: schemas/<stem>.schema.json -> <out>/<stem>.ts.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { compile } from 'json-schema-to-typescript';

const [schemasDir, outDir] = process.argv.slice(2);
if (!schemasDir || !outDir) {
  console.error('usage: node gen-types.mjs <schemas dir> <out dir>');
  process.exit(2);
}

const files = (await readdir(schemasDir)).filter((f) => f.endsWith('.schema.json')).sort();
if (files.length === 0) {
  console.error(`no *.schema.json in ${schemasDir}`);
  process.exit(1);
}
for (const file of files) {
  const schema = JSON.parse(await readFile(path.join(schemasDir, file), 'utf8'));
  const stem = file.slice(0, -'.schema.json'.length);
  const ts = await compile(schema, schema.title ?? stem, {
    bannerComment: `// Generated from schemas/${file} by tools/schema-consumers; do not edit.`,
    cwd: schemasDir,
    // The user object is open on purpose (extra fields are echoed back), the rest is closed.
    additionalProperties: false,
    strictIndexSignatures: true,
    format: false,
  });
  await writeFile(path.join(outDir, `${stem}.ts`), ts);
}
console.log(`json-schema-to-typescript: ${files.length} schemas -> ${outDir}`);
