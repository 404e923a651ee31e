#!/bin/sh
# Node ws + Redis peer: bench/peers/node/start.sh PORT REDIS_PORT SECRET [PIDFILE]
# Runs redis-server on 127.0.0.1:REDIS_PORT and server.js on 127.0.0.1:PORT (a
# node:cluster primary and TASKCAST_PEER_WORKERS workers, default 2: one per core)
# in the foreground, as described in ../lib.sh: prints "PID NAME" for Redis, the
# primary and each worker once every worker serves (and writes them to PIDFILE),
# and stops them on SIGTERM/SIGINT or bench/peers/node/stop.sh PORT.
# The npm packages are pinned in package-lock.json (they run on Debian 12's Node 18).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/peers/lib.sh
. "$HERE/../lib.sh"
[ $# -ge 3 ] || peers_die "usage: start.sh PORT REDIS_PORT SECRET [PIDFILE]"
peers_check_args "$1" "$2" "$3"
PORT=$1
REDIS_PORT=$2
WORKERS=${TASKCAST_PEER_WORKERS:-2}

NODE_PKGS=""
command -v node >/dev/null 2>&1 || NODE_PKGS="$NODE_PKGS nodejs"
command -v npm >/dev/null 2>&1 || NODE_PKGS="$NODE_PKGS npm"
# shellcheck disable=SC2086
peers_need_debs python3 redis-server redis-tools $NODE_PKGS
# npm ci when node_modules is missing or was installed from another lock file.
if ! cmp -s "$HERE/package-lock.json" "$HERE/node_modules/.taskcast-lock" 2>/dev/null; then
  echo "peers: npm ci in $HERE" >&2
  (cd "$HERE" && npm ci --omit=dev --no-audit --no-fund >&2) || peers_die "npm ci failed"
  cp "$HERE/package-lock.json" "$HERE/node_modules/.taskcast-lock"
fi
peers_port_open "$PORT" && peers_die "port $PORT is already in use"

peers_begin node "$PORT" "${4:-}"
peers_start_redis "$REDIS_PORT"

export TASKCAST_PEER_PORT="$PORT"
export TASKCAST_PEER_JWT_SECRET="$3"
export TASKCAST_PEER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export TASKCAST_PEER_WORKERS="$WORKERS"
export TASKCAST_PEER_READY_DIR="$RUNDIR"
export NODE_ENV=production
peers_spawn node node "$HERE/server.js"
PRIMARY=$SPAWNED

# shellcheck disable=SC2317 # called through peers_wait
s_workers_up() {
  peers_alive "$PRIMARY" || peers_die "node exited (see $RUNDIR/node.log)"
  peers_count_ready "$WORKERS"
}
peers_wait 30 s_workers_up || peers_die "node did not start (see $RUNDIR/node.log)"

peers_record "$REDIS_PID" redis
peers_record "$PRIMARY" node-primary
for f in "$RUNDIR"/ready.*; do
  peers_record "${f##*.}" node-worker
done
peers_serve
