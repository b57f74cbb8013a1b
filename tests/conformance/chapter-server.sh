#!/usr/bin/env bash
# "Any implementation": replays the conformance suite against bench/reference/chapter-server.js,
# the project's chapter-style Node server, by profile. Its welcome has no capabilities list, so
# only the core sessions apply. Every core session must pass except those listed, with their
# reasons, in chapter-server.expected-failures; a listed session that starts passing fails too.
#
#   tests/conformance/chapter-server.sh   (uses $CARGO_TARGET_DIR/debug/conformance, built if missing)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"
[ -x "$bin/conformance" ] || cargo build -p conformance

command -v node >/dev/null || { echo "FAILED: node is not installed; the chapter-server run cannot run" >&2; exit 1; }
if [ ! -d bench/reference/node_modules/ws ]; then
  (cd bench/reference && npm ci --no-audit --no-fund >/dev/null)
fi

log=$(mktemp)
node bench/reference/chapter-server.js serve --listen 127.0.0.1:0 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' "$log")
[ -n "$addr" ] || { echo "FAILED: the chapter server did not start:" >&2; cat "$log" >&2; exit 1; }

"$bin/conformance" run --target "$addr" \
  --expected-failures tests/conformance/chapter-server.expected-failures
