#!/usr/bin/env bash
# Runs the demo page's browser test: headless Chromium (Debian's package) driven by
# playwright-core, against the server binary (HERALD_BIN, default target/debug/herald).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]]; then
  echo "installing chromium" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

export HERALD_BIN="${HERALD_BIN:-$repo/target/debug/herald}"
if [[ ! -x "$HERALD_BIN" ]]; then
  echo "building the server" >&2
  (cd "$repo" && cargo build -p herald-server)
fi

cd "$here"
# playwright-core must not fetch browsers of its own: the system's Chromium is used.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund
node --test
