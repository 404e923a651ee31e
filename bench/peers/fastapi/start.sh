#!/bin/sh
# FastAPI + uvicorn + Redis peer: bench/peers/fastapi/start.sh PORT REDIS_PORT SECRET [PIDFILE]
# Runs redis-server on 127.0.0.1:REDIS_PORT and uvicorn on 127.0.0.1:PORT (its
# supervisor and TASKCAST_PEER_WORKERS worker processes, default 2: one per core)
# in the foreground, as described in ../lib.sh: prints "PID NAME" for Redis, the
# supervisor and each worker once every worker serves (and writes them to PIDFILE),
# and stops them on SIGTERM/SIGINT or bench/peers/fastapi/stop.sh PORT.
# Debian packages only, run by /usr/bin/python3 (see ../README.md for the settings).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/peers/lib.sh
. "$HERE/../lib.sh"
[ $# -ge 3 ] || peers_die "usage: start.sh PORT REDIS_PORT SECRET [PIDFILE]"
peers_check_args "$1" "$2" "$3"
PORT=$1
REDIS_PORT=$2
WORKERS=${TASKCAST_PEER_WORKERS:-2}

peers_need_debs python3 python3-fastapi python3-uvicorn python3-uvloop python3-httptools \
  python3-websockets python3-redis python3-hiredis python3-jwt redis-server redis-tools
peers_port_open "$PORT" && peers_die "port $PORT is already in use"

peers_begin fastapi "$PORT" "${4:-}"
peers_start_redis "$REDIS_PORT"

export TASKCAST_PEER_JWT_SECRET="$3"
export TASKCAST_PEER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export TASKCAST_PEER_READY_DIR="$RUNDIR"
# uvloop and httptools as uvicorn's docs advise for speed; the "websockets"
# implementation (the default when installed); no permessage-deflate, like the
# other systems; no access log; uvicorn's own supervisor runs the workers on one
# shared listening socket.
peers_spawn uvicorn /usr/bin/python3 -m uvicorn app:app --app-dir "$HERE" \
  --host 127.0.0.1 --port "$PORT" --workers "$WORKERS" \
  --loop uvloop --http httptools --ws websockets --ws-per-message-deflate false \
  --lifespan on --no-access-log --log-level warning --backlog 4096
SUPERVISOR=$SPAWNED

# shellcheck disable=SC2317 # called through peers_wait
s_workers_up() {
  peers_alive "$SUPERVISOR" || peers_die "uvicorn exited (see $RUNDIR/uvicorn.log)"
  peers_count_ready "$WORKERS"
}
peers_wait 30 s_workers_up || peers_die "uvicorn did not start (see $RUNDIR/uvicorn.log)"

peers_record "$REDIS_PID" redis
peers_record "$SUPERVISOR" uvicorn-supervisor
for f in "$RUNDIR"/ready.*; do
  peers_record "${f##*.}" uvicorn-worker
done
peers_serve
