#!/usr/bin/env bash
# Redis's own cost per chat: one node with the Redis broker under a fixed fan-out load; the
# command statistics are reset once the clients have joined and read 8 s later, so they count
# chats only. Loopback only; stops by itself. Needs redis-cli and a release build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
redis="${REDIS_URL:-redis://127.0.0.1:6379}"
log=$(mktemp)
HERALD_MESSAGE_RATE=0 taskset -c 0 "$bin/herald" serve --listen 127.0.0.1:0 --broker "$redis" \
  --redis-prefix "cost-$$" >"$log" 2>/dev/null &
srv=$!
trap 'kill $srv 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' "$log")
"$bin/herald-bench" fanout --target "$addr" --load-cores 1 --clients 2000 --room-size 100 \
  --delivery-rate 20000 --duration 10 --server-pid "$srv" 2>/dev/null | grep '^{' &
bench=$!
sleep 5
redis-cli config resetstat >/dev/null
sleep 8
echo "Redis commands over 8 s of chats (usec_per_call is Redis's own time):"
redis-cli info commandstats | tr -d '\r' | grep -E '^cmdstat_(evalsha|xadd|publish):'
wait $bench
