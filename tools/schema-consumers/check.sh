#!/usr/bin/env bash
# Checks that third-party tools can consume Herald's generated schemas:
#   1. json-schema-to-typescript turns every schemas/*.schema.json into TypeScript types;
#   2. tsc --strict type-checks client.ts, a small client written against those types;
#   3. @asyncapi/parser reads schemas/asyncapi.json with no error-level diagnostic.
# Runnable from any directory; needs node and npm.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

if [[ -f package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

# Generated types go to a gitignored folder next to client.ts, so its imports resolve.
out="$here/generated"
rm -rf "$out"
mkdir -p "$out"
node "$here/gen-types.mjs" "$root/schemas" "$out"

npx --no-install tsc --noEmit --strict -p "$here/tsconfig.json"
echo "tsc: client.ts type-checks against the generated types"

node "$here/validate-asyncapi.mjs" "$root/schemas"
