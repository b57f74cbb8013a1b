#!/usr/bin/env bash
# CI for the TypeScript client (clients/typescript):
#   1. npm ci (devDependencies from the lockfile; nothing else is fetched afterwards);
#   2. the types generated from schemas/ are fresh (npm run gen:check);
#   3. tsc --strict compiles the client to dist/ and type-checks examples/ (the README's usage);
#   4. the committed browser bundle server/src/demo/herald-client.js is fresh;
#   5. node:test suites against the real binary (HERALD_BIN, default target/debug/herald), Redis
#      on 127.0.0.1:6379 for the restart test (CI=true makes its absence a failure).
# Runnable from any directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

npm ci --no-audit --no-fund --loglevel=error
npm run --silent gen:check
npx --no-install tsc -p tsconfig.json
npx --no-install tsc -p tsconfig.examples.json
echo "tsc --strict: the client and examples/ compile against the generated types"
node scripts/bundle.mjs --check

export HERALD_BIN="${HERALD_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/herald}"
if [[ ! -x "$HERALD_BIN" ]]; then
  echo "building the server ($HERALD_BIN is missing)" >&2
  (cd "$root" && cargo build -p herald-server)
fi
node --test --test-concurrency=1 test/*.test.mjs
