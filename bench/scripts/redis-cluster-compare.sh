#!/usr/bin/env bash
# Fan-out through one Redis versus through a three-shard Redis Cluster, at the same total load:
# three Herald nodes (release build) on
#   1. one redis-server of this script's own (`--broker redis://`);
#   2. three redis-servers of its own joined by `redis-cli --cluster create` (no replicas,
#      `--broker redis+cluster://`);
# each under the same herald-bench fanout run (clients dealt to the three nodes in turn, so every
# room spans them). Once the clients have joined, every Redis's statistics are reset and read
# 8 s later: its CPU (user + sys, the whole process: pub/sub delivery and idle work included),
# the time its scripts ran (`EVALSHA` usec, Redis's own count) and its XADD calls, one per chat
# (the chat script stores each chat once), so the figures are Redis CPU and script time per
# chat on each shard. Loopback only; every process is
# stopped at the end. Needs redis-server, redis-cli and
# `cargo build --release -p herald-server -p herald-bench`.
#
# SERVER_CORES (default 0) pins the Herald nodes, LOAD_CORES (default 1) the load generator;
# DELIVERY_RATE (default 30000: 300 chats/s in rooms of 100) and CLIENTS (default 3000) set the
# load.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
server_cores="${SERVER_CORES:-0}"
load_cores="${LOAD_CORES:-1}"
rate="${DELIVERY_RATE:-30000}"
clients="${CLIENTS:-3000}"
dir=$(mktemp -d)
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop; rm -rf "$dir"' EXIT

# A free port whose cluster bus port (+10000) is valid.
free_port() {
  python3 -c 'import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p < 55000: print(p); break'
}

# redis_start PORT [extra redis-server args...]
redis_start() {
  local port=$1; shift
  mkdir -p "$dir/$port"
  (cd "$dir/$port" && exec redis-server --port "$port" --bind 127.0.0.1 --save "" \
    --appendonly no "$@" >"$dir/$port/redis.log" 2>&1) &
  pids+=($!)
  for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
}

# start_node VAR URL PREFIX: a Herald node on the broker URL; sets VAR to its address.
start_node() {
  local var=$1 url=$2 prefix=$3 log
  log="$dir/node-$var.log"
  HERALD_MESSAGE_RATE=0 taskset -c "$server_cores" "$bin/herald" serve --listen 127.0.0.1:0 \
    --broker "$url" --redis-prefix "$prefix" >"$log" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
  printf -v "$var" '%s' "$(sed -n 's/^listening on //p' "$log")"
}

cpu() { redis-cli -p "$1" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ {t += $2} END {printf "%.0f", t * 1e6}'; }
evalsha_usec() { redis-cli -p "$1" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:calls=[0-9]*,usec=\([0-9]*\),.*/\1/p'; }
xadds() { redis-cli -p "$1" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_xadd:calls=\([0-9]*\),.*/\1/p'; }

# measure LABEL URL PORT...: three nodes on URL, the load, and each Redis's CPU per chat.
measure() {
  local label=$1 url=$2; shift 2
  local ports=("$@") a b c
  start_node a "$url" "bench"
  start_node b "$url" "bench"
  start_node c "$url" "bench"
  "$bin/herald-bench" fanout --target "$a,$b,$c" --load-cores "$load_cores" --clients "$clients" \
    --room-size 100 --delivery-rate "$rate" --duration 12 --label "$label" 2>/dev/null \
    | grep '^{' >"$dir/$label.json" &
  local bench=$!
  # Joins are done well within 6 s at these sizes; the window then holds chats only.
  sleep 6
  local cpu0=() p
  for p in "${ports[@]}"; do redis-cli -p "$p" config resetstat >/dev/null; cpu0+=("$(cpu "$p")"); done
  sleep 8
  local i=0 total_cpu=0 total_chats=0
  for p in "${ports[@]}"; do
    local used=$(( $(cpu "$p") - cpu0[i] )) chats scripts
    chats=$(xadds "$p"); chats=${chats:-0}
    scripts=$(evalsha_usec "$p"); scripts=${scripts:-0}
    echo "$label shard $p: redis_cpu_usec=$used chats=$chats cpu_usec_per_chat=$(awk -v u="$used" -v c="$chats" 'BEGIN {printf "%.1f", c ? u / c : 0}') script_usec_per_chat=$(awk -v u="$scripts" -v c="$chats" 'BEGIN {printf "%.1f", c ? u / c : 0}')"
    total_cpu=$((total_cpu + used)); total_chats=$((total_chats + chats)); i=$((i + 1))
  done
  echo "$label all: redis_cpu_usec=$total_cpu chats=$total_chats cpu_usec_per_chat=$(awk -v u="$total_cpu" -v c="$total_chats" 'BEGIN {printf "%.1f", c ? u / c : 0}')"
  wait $bench || true
  cat "$dir/$label.json"
  stop
}

single=$(free_port)
redis_start "$single"
measure one-redis "redis://127.0.0.1:$single" "$single"

ports=()
for _ in 1 2 3; do
  port=$(free_port)
  redis_start "$port" --cluster-enabled yes --cluster-config-file nodes.conf
  ports+=("$port")
done
redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >/dev/null
for p in "${ports[@]}"; do
  for _ in $(seq 1 100); do redis-cli -p "$p" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
done
measure three-shards "redis+cluster://$(IFS=,; echo "${ports[*]/#/127.0.0.1:}")" "${ports[@]}"
