#!/usr/bin/env bash
# Fan-out over Redis versus one node: the same herald-bench run against
#   1. one node, in-memory broker;
#   2. one node, Redis broker (every chat goes through Redis and back);
#   3. two nodes, Redis broker (clients dealt to the nodes in turn, so every room spans both).
# The servers share the CPUs in SERVER_CORES (default 0), the load generator gets LOAD_CORES
# (default 1); Redis runs wherever the system runs it. Loopback only; every run stops by itself.
# Usage: bench/scripts/cluster-compare.sh [herald-bench SCENARIO ARGUMENTS...]
#   default: fanout --clients 2000 --room-size 100 --delivery-rate 20000 --duration 10
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
redis="${REDIS_URL:-redis://127.0.0.1:6379}"
server_cores="${SERVER_CORES:-0}"
load_cores="${LOAD_CORES:-1}"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(fanout --clients 2000 --room-size 100 --delivery-rate 20000 --duration 10)

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}
trap cleanup EXIT

# start_node VAR LOGFILE [herald serve args...]: starts a node and sets VAR to its address.
# (Not a command substitution: the pid must be recorded in this shell for cleanup.)
start_node() {
  local var=$1 log=$2; shift 2
  HERALD_MESSAGE_RATE=0 taskset -c "$server_cores" "$bin/herald" serve --listen 127.0.0.1:0 "$@" \
    >"$log" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
  printf -v "$var" '%s' "$(sed -n 's/^listening on //p' "$log")"
}

run() {
  local label=$1 targets=$2
  "$bin/herald-bench" "${args[@]}" --target "$targets" --load-cores "$load_cores" \
    --label "$label" | grep '^{'
}

tmp=$(mktemp -d)
start_node a "$tmp/a.log"
run memory-1-node "$a"
cleanup

prefix="bench-$$-$(date +%s)"
start_node a "$tmp/a.log" --broker "$redis" --redis-prefix "$prefix-1"
run redis-1-node "$a"
cleanup

start_node a "$tmp/a.log" --broker "$redis" --redis-prefix "$prefix-2"
start_node b "$tmp/b.log" --broker "$redis" --redis-prefix "$prefix-2"
run redis-2-nodes "$a,$b"
cleanup
rm -rf "$tmp"
