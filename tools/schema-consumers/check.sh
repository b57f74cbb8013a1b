#!/usr/bin/env bash
# Checks that third-party tools can consume Herald's generated schemas:
#   1. json-schema-to-typescript turns every schemas/*.schema.json into TypeScript types;
#   2. tsc --strict type-checks client.ts, a small client written against those types;
#   3. @asyncapi/parser reads schemas/asyncapi.json with no error-level diagnostic;
#   4. Python's jsonschema validates every recorded frame (conformance sessions, the examples of
#      ../shared/WIRE.md or $HERALD_WIRE_MD) against the schemas (validate_frames.py).
# Runnable from any directory; needs node, npm and python3 (3.8+, with venv or pip).
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

# Python: a virtualenv of its own (gitignored), with pinned major versions.
venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  'jsonschema>=4.18,<5' 'rfc3339-validator>=0.1.4,<0.2'
"$venv/bin/python" "$here/validate_frames.py" "$root"
