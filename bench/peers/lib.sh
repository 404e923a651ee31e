# Shared helpers for the peers' start.sh and stop.sh (sourced, POSIX sh).
#
# A peer's start.sh PORT REDIS_PORT SECRET [PIDFILE] runs in the foreground:
#   1. starts every server process of its stack as its own children;
#   2. once the stack serves, prints "PID NAME" for every server process (Redis,
#      masters, workers: the processes whose CPU and RSS count) and writes the
#      same lines to PIDFILE, renamed into place, so the file appears when ready;
#   3. waits. SIGTERM or SIGINT to start.sh (or stop.sh PORT|PIDFILE from
#      elsewhere) stops the whole stack; start.sh exits 0 then. If a server
#      process dies on its own, start.sh stops the rest and exits 1.
#
# RUNDIR (configuration, logs, ready markers) is $TASKCAST_PEER_RUNDIR, or
# ${TMPDIR:-/tmp}/taskcast-peer-NAME-PORT.

peers_die() {
  echo "peers: $*" >&2
  exit 1
}

peers_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# peers_need_debs PKG...: apt-get install the Debian packages not yet installed
# (the way scripts/deps.sh does it). Output goes to stderr: stdout is the PID list.
peers_need_debs() {
  missing=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  echo "peers: installing$missing" >&2
  peers_sudo apt-get update >&2
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive peers_sudo apt-get install -y --no-install-recommends \
    $missing >&2
}

# peers_check_args PORT REDIS_PORT SECRET
peers_check_args() {
  case "$1" in '' | *[!0-9]*) peers_die "PORT must be a number, got '$1'" ;; esac
  case "$2" in '' | *[!0-9]*) peers_die "REDIS_PORT must be a number, got '$2'" ;; esac
  [ "${#3}" -ge 32 ] || peers_die "SECRET must be at least 32 bytes (HS256)"
}

# peers_rundir NAME PORT: print the run directory's path.
peers_rundir_of() {
  echo "${TASKCAST_PEER_RUNDIR:-${TMPDIR:-/tmp}/taskcast-peer-$1-$2}"
}

# peers_begin NAME PORT PIDFILE: set RUNDIR (created, emptied of old state) and
# PEERS_PIDFILE, and arrange that the stack is stopped however start.sh ends.
peers_begin() {
  RUNDIR=$(peers_rundir_of "$1" "$2")
  PEERS_PIDFILE=$3
  mkdir -p "$RUNDIR" || peers_die "cannot create $RUNDIR"
  rm -f "$RUNDIR/pids" "$RUNDIR"/ready.* "$RUNDIR"/*.log
  [ -n "$PEERS_PIDFILE" ] && rm -f "$PEERS_PIDFILE"
  echo $$ >"$RUNDIR/start.pid"
  PEERS_TOP=""
  trap 'peers_shutdown 1' EXIT
  trap 'peers_shutdown 0' TERM INT HUP
}

# peers_spawn NAME COMMAND...: start a server process as a child of this shell, in
# its own session (a terminal's Ctrl-C reaches start.sh, which stops it in order).
# Sets SPAWNED to its PID.
peers_spawn() {
  name=$1
  shift
  setsid "$@" </dev/null >>"$RUNDIR/$name.log" 2>&1 &
  SPAWNED=$!
  PEERS_TOP="$PEERS_TOP $SPAWNED"
}

# peers_port_open PORT: true when something accepts on 127.0.0.1:PORT.
peers_port_open() {
  /usr/bin/python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

# peers_wait TIMEOUT_S COMMAND...: retry COMMAND every 0.1 s until it succeeds.
peers_wait() {
  n=$(($1 * 10))
  shift
  while [ "$n" -gt 0 ]; do
    "$@" && return 0
    sleep 0.1
    n=$((n - 1))
  done
  return 1
}

# peers_alive PID: true while PID runs (and is not a zombie).
peers_alive() {
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  [ "${s%% *}" != "Z" ]
}

peers_gone() {
  ! peers_alive "$1"
}

# peers_children PID: print the PIDs whose parent is PID (reads /proc: no procps).
peers_children() {
  for f in /proc/[0-9]*/stat; do
    s=$(cat "$f" 2>/dev/null) || continue
    # "pid (comm) state ppid ...": cut after the last ')' since comm may hold spaces.
    s=${s##*) }
    s=${s#* }
    [ "${s%% *}" = "$1" ] && { p=${f#/proc/}; echo "${p%/stat}"; }
  done
  return 0
}

# peers_count_ready N: true when N workers have written RUNDIR/ready.<pid>.
peers_count_ready() {
  [ "$(find "$RUNDIR" -maxdepth 1 -name 'ready.*' | wc -l)" -ge "$1" ]
}

# peers_all_alive: true while every process peers_spawn started runs.
peers_all_alive() {
  for p in $PEERS_TOP; do peers_alive "$p" || return 1; done
}

# peers_start_redis PORT: Redis for the FastAPI and Node peers, on 127.0.0.1:PORT,
# no persistence (no RDB snapshot, no AOF: pub/sub keeps nothing). Everything else
# is Redis's default (one thread; client-output-buffer-limit pubsub 32mb 8mb 60: a
# subscriber connection that falls that far behind is dropped). Sets REDIS_PID.
peers_start_redis() {
  peers_port_open "$1" && peers_die "Redis port $1 is already in use"
  peers_spawn redis redis-server --bind 127.0.0.1 --port "$1" --save "" \
    --appendonly no --daemonize no --protected-mode yes --dir "$RUNDIR" --loglevel warning
  REDIS_PID=$SPAWNED
  peers_wait 10 sh -c "redis-cli -p '$1' ping 2>/dev/null | grep -q PONG" ||
    peers_die "redis-server did not answer on port $1 (see $RUNDIR/redis.log)"
}

# peers_record PID NAME: add one server process to the list.
peers_record() {
  echo "$1 $2" >>"$RUNDIR/pids"
}

# peers_serve: publish the PID list (stdout, PIDFILE), then wait until stopped.
peers_serve() {
  cat "$RUNDIR/pids"
  if [ -n "$PEERS_PIDFILE" ]; then
    cp "$RUNDIR/pids" "$PEERS_PIDFILE.tmp" && mv "$PEERS_PIDFILE.tmp" "$PEERS_PIDFILE"
  fi
  while peers_all_alive; do
    sleep 1 &
    wait $! || true
  done
  echo "peers: a server process exited (logs in $RUNDIR)" >&2
  exit 1
}

# peers_stop_pids PID...: SIGTERM each, wait up to 10 s, SIGKILL what is left.
peers_stop_pids() {
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  n=100
  left="$*"
  while [ -n "$left" ] && [ "$n" -gt 0 ]; do
    sleep 0.1
    n=$((n - 1))
    still=""
    for p in $left; do peers_alive "$p" && still="$still $p"; done
    left=$still
  done
  for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
  return 0
}

# peers_shutdown STATUS: stop every server process (workers first, as listed last),
# reap them, remove the PID files, exit with STATUS.
peers_shutdown() {
  trap - EXIT TERM INT HUP
  # The servers first (workers before masters), then Redis, which they use.
  listed=""
  [ -r "$RUNDIR/pids" ] && listed=$(grep -v ' redis$' "$RUNDIR/pids" | cut -d' ' -f1 | tac)
  # shellcheck disable=SC2086,SC2046 # PID lists, split on purpose
  peers_stop_pids $listed $(echo "$PEERS_TOP" | tr ' ' '\n' | grep -vx "${REDIS_PID:-x}")
  [ -n "${REDIS_PID:-}" ] && peers_stop_pids "$REDIS_PID"
  wait 2>/dev/null || true
  rm -f "$RUNDIR/pids" "$RUNDIR/start.pid"
  [ -n "$PEERS_PIDFILE" ] && rm -f "$PEERS_PIDFILE"
  exit "$1"
}

# peers_stop NAME PORT: stop.sh for a peer started on PORT. SIGTERM to its start.sh,
# which stops the stack; if start.sh is gone, the listed processes are stopped.
peers_stop() {
  case "$2" in
    '' | *[!0-9]*) peers_die "usage: stop.sh PORT" ;;
  esac
  d=$(peers_rundir_of "$1" "$2")
  sup=$(cat "$d/start.pid" 2>/dev/null) || sup=""
  if [ -n "$sup" ] && peers_alive "$sup"; then
    kill -TERM "$sup" 2>/dev/null || true
    peers_wait 15 peers_gone "$sup" && return 0
  fi
  [ -r "$d/pids" ] || return 0
  # shellcheck disable=SC2046
  peers_stop_pids $(cut -d' ' -f1 "$d/pids" | tac)
  rm -f "$d/pids" "$d/start.pid"
}
