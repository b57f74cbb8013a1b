#!/usr/bin/env bash
# The conformance suite through a load balancer: three `herald serve` nodes sharing one Redis
# (their own --redis-prefix and --topic-prefix, so nothing else on that Redis meets them) behind
# nginx with least_conn, WebSocket upgrade headers and unbuffered proxying (what SSE needs). The
# sessions' actors land on different nodes, so every session that applies checks that the
# cluster acts as one server. Everything started here is stopped on exit, and the cluster's Redis
# keys are deleted.
#
#   tests/conformance/through-nginx.sh [extra `conformance run` options]
#
# Needs: Redis on 127.0.0.1:6379 (REDIS_URL to change it), nginx at /usr/sbin/nginx (Debian:
# apt-get install -y nginx), $CARGO_TARGET_DIR/debug/{herald,conformance} (built if missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379}"
nginx_bin=/usr/sbin/nginx

# Sessions that cannot apply behind a balancer, with the reason. (None of the default suite so
# far: every session's actors may sit on any node, and the cluster must still pass it. Sessions
# that need a non-default server setting live in conformance/tests/sessions and are not run here.)
# Format: NAME  # reason; the names are passed to `conformance run --exclude`.
not_behind_a_balancer=(
)

# Sessions that fail here only because of a known server defect that is being fixed. They are
# NOT excluded: the run fails while the defect is there. Marked so they are easy to find
# (grep KNOWN-DEFECT):
#
#   KNOWN-DEFECT (cluster presence events, seen at 4bff538; related to issue 15.11, presence that
#   does not converge with Redis): a join or leave announced through Redis reaches members who
#   joined the room on another node AFTER the event. Seen in about every run:
#     - ws-rejoin-same-room: bob, back in the room, gets the user_left of his own leave;
#     - ws-error-schema-violation, ws-oversized-frame-1009 (and any session where a second member
#       joins on another node right after the first): bob gets alice's user_joined, with
#       "users":[alice], after his own room_joined listed them both.
#   KNOWN-DEFECT issue 15.12 (close codes lost behind a proxy): the over-size frame in
#     ws-oversized-frame-1009 is not compressed (the runner's client does not offer
#     permessage-deflate), so this run does not reach that defect; when the server's close frame
#     is dropped after a reset, that session fails at its expect_close step.

[ -x "$bin/herald" ] && [ -x "$bin/conformance" ] || cargo build -p herald-server -p conformance
if [ ! -x "$nginx_bin" ]; then
  echo "FAILED: $nginx_bin is missing (apt-get install -y nginx); the suite was NOT run through a balancer" >&2
  exit 1
fi
redis_host_port="${redis_url#redis://}"
redis_host_port="${redis_host_port%%/*}"
redis() { redis-cli -h "${redis_host_port%:*}" -p "${redis_host_port##*:}" "$@"; }
if ! redis ping >/dev/null 2>&1; then
  echo "FAILED: no Redis at $redis_url; the suite was NOT run through a balancer" >&2
  exit 1
fi

prefix="conf-nginx-$$-$RANDOM"
work=$(mktemp -d)
pids=()
nginx_pid=
cleanup() {
  status=$?
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$nginx_pid" ] && wait "$nginx_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$status" -ne 0 ]; then
    for f in "$work"/node*.log "$work"/error.log; do
      [ -s "$f" ] && { echo "--- $f (last lines)"; tail -n 20 "$f"; }
    done
  fi
  redis --scan --pattern "$prefix:*" | while read -r key; do redis del "$key" >/dev/null; done || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT INT TERM

addrs=()
for i in 1 2 3; do
  NO_COLOR=1 "$bin/herald" serve --listen 127.0.0.1:0 --broker "$redis_url" \
    --redis-prefix "$prefix" --topic-prefix "$prefix." >"$work/node$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 1 100); do grep -q "^listening on" "$work/node$i.log" && break; sleep 0.1; done
  addr=$(sed -n 's/^listening on http:\/\///p' "$work/node$i.log")
  [ -n "$addr" ] || { echo "FAILED: node $i did not start" >&2; exit 1; }
  addrs+=("$addr")
done

# A free loopback port for nginx (it cannot listen on port 0 and say which it got).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
upstreams=""
for a in "${addrs[@]}"; do upstreams+="    server $a;"$'\n'; done
mkdir -p "$work"/{body,proxy,fastcgi,uwsgi,scgi}
cat >"$work/nginx.conf" <<EOF
daemon off;
master_process off;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  upstream herald {
    least_conn;
$upstreams  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://herald;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header Host \$host;
      proxy_buffering off;
      proxy_read_timeout 1h;
    }
  }
}
EOF
"$nginx_bin" -p "$work" -c "$work/nginx.conf" >/dev/null 2>&1 &
nginx_pid=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" || { echo "FAILED: nginx did not start" >&2; exit 1; }

echo "three nodes (${addrs[*]}) sharing Redis prefix $prefix, behind nginx on 127.0.0.1:$port"
exclude=()
if [ "${#not_behind_a_balancer[@]}" -gt 0 ]; then
  echo "not run behind a balancer: ${not_behind_a_balancer[*]}"
  exclude=(--exclude "$(IFS=,; echo "${not_behind_a_balancer[*]}")")
fi
"$bin/conformance" run --target "http://127.0.0.1:$port" "${exclude[@]}" "$@"
