// Parses schemas/asyncapi.{json,yaml} with @asyncapi/parser and fails on any error diagnostic.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Parser, fromFile } from '@asyncapi/parser';

const schemasDir = process.argv[2];
const candidates = ['asyncapi.json', 'asyncapi.yaml', 'asyncapi.yml'].map((f) =>
  path.join(schemasDir, f),
);
const file = candidates.find((f) => existsSync(f));
if (!file) {
  console.error(`no asyncapi.json or asyncapi.yaml in ${schemasDir}`);
  process.exit(1);
}

// Severity as @asyncapi/parser (Spectral) numbers it: 0 error, 1 warning, 2 info, 3 hint.
const names = ['error', 'warning', 'info', 'hint'];
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, file).parse();
for (const d of diagnostics) {
  const where = d.path && d.path.length ? d.path.join('/') : '(root)';
  console.log(`${names[d.severity] ?? d.severity}: ${d.code}: ${d.message} at ${where}`);
}
const errors = diagnostics.filter((d) => d.severity === 0);
if (!document || errors.length > 0) {
  console.error(`@asyncapi/parser: ${errors.length} error(s) in ${file}`);
  process.exit(1);
}
const channels = document.channels().all().map((c) => c.address());
const messages = document.allMessages().all().length;
console.log(
  `@asyncapi/parser: ${path.basename(file)} is valid AsyncAPI ${document.version()} ` +
    `(${channels.length} channels: ${channels.join(' ')}; ${messages} messages)`,
);
