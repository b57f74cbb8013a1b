#!/usr/bin/env bash
# Redis's own cost per chat: one node with the Redis broker under a fixed fan-out load, on a
# redis-server of its own (a free local port, no persistence), so `CONFIG RESETSTAT` touches
# nothing else. The command statistics are reset once the clients have joined and read 8 s
# later, so they count chats only. Loopback only; stops by itself. Needs redis-server, redis-cli
# and a release build (`cargo build --release -p herald-server -p herald-bench`).
#
# HERALD_BIN overrides the herald binary (to compare two builds with the same bench);
# DELIVERY_RATE (default 20000: 200 chats/s in rooms of 100) sets the load.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
herald="${HERALD_BIN:-$bin/herald}"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
log="$dir/herald.log"
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  >"$dir/redis.log" 2>&1 &
rds=$!
srv=
trap 'kill $srv $rds 2>/dev/null || true; wait 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
HERALD_MESSAGE_RATE=0 taskset -c 0 "$herald" serve --listen 127.0.0.1:0 \
  --broker "redis://127.0.0.1:$port" --redis-prefix "cost" >"$log" 2>/dev/null &
srv=$!
for _ in $(seq 1 100); do grep -q "listening on" "$log" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' "$log")
"$bin/herald-bench" fanout --target "$addr" --load-cores 1 --clients 2000 --room-size 100 \
  --delivery-rate "${DELIVERY_RATE:-20000}" --duration 10 --server-pid "$srv" 2>/dev/null | grep '^{' &
bench=$!
sleep 5
cpu() { redis-cli -p "$port" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ {t += $2} END {printf "%.0f", t * 1e6}'; }
redis-cli -p "$port" config resetstat >/dev/null
cpu0=$(cpu)
sleep 8
cpu1=$(cpu)
echo "Redis commands over 8 s of chats (usec_per_call is Redis's own time):"
redis-cli -p "$port" info commandstats | tr -d '\r' | grep -E '^cmdstat_' || true
echo "redis_cpu_usec=$((cpu1 - cpu0)) (user + sys, the whole process, over the same 8 s)"
wait $bench
