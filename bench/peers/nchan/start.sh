#!/bin/sh
# nginx + Nchan peer: bench/peers/nchan/start.sh PORT REDIS_PORT SECRET [PIDFILE]
# Runs nginx (a master and TASKCAST_PEER_WORKERS workers, default 2: one per core)
# on 127.0.0.1:PORT in the foreground, as described in ../lib.sh: prints "PID NAME"
# for the master and each worker once it serves (and writes them to PIDFILE), and
# stops it on SIGTERM/SIGINT or bench/peers/nchan/stop.sh PORT.
# Nchan keeps channels in nginx's shared memory, so there is no Redis: REDIS_PORT
# is accepted for a uniform interface and not used.
# TASKCAST_PEER_NCHAN_AUTH=njs (default) checks the JWT with auth_request and njs
# inside the worker; =nchan with nchan_authorize_request (see ../README.md).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/peers/lib.sh
. "$HERE/../lib.sh"
[ $# -ge 3 ] || peers_die "usage: start.sh PORT REDIS_PORT SECRET [PIDFILE]"
peers_check_args "$1" "$2" "$3"
PORT=$1
WORKERS=${TASKCAST_PEER_WORKERS:-2}
case "${TASKCAST_PEER_NCHAN_AUTH:-njs}" in
  njs) AUTH="auth_request /_auth_njs;" ;;
  nchan) AUTH="nchan_authorize_request /_auth_proxy;" ;;
  *) peers_die "TASKCAST_PEER_NCHAN_AUTH is njs or nchan" ;;
esac

# Debian 12: nginx 1.22 with Nchan 1.3.6 and njs 0.7.9 as dynamic modules.
peers_need_debs nginx libnginx-mod-nchan libnginx-mod-http-js python3
MODULES=/usr/lib/nginx/modules
[ -r "$MODULES/ngx_nchan_module.so" ] || peers_die "no $MODULES/ngx_nchan_module.so"
peers_port_open "$PORT" && peers_die "port $PORT is already in use"

peers_begin nchan "$PORT" "${4:-}"
mkdir -p "$RUNDIR/tmp"
: >"$RUNDIR/error.log"

# A worker's open-file limit bounds its connections (a WebSocket is one).
# shellcheck disable=SC3045 # dash and bash both have ulimit -H
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
[ "$NOFILE" -gt 1048576 ] && NOFILE=1048576
CONNECTIONS=$((NOFILE - 100))
# As root, the workers run as www-data, as Debian's packaged nginx does, when it
# can reach RUNDIR (temporary files, the auth socket); else as root.
USERLINE=""
if [ "$(id -u)" -eq 0 ]; then
  chown -R www-data "$RUNDIR/tmp"
  if su -s /bin/sh -c "test -w '$RUNDIR/tmp'" www-data 2>/dev/null; then
    USERLINE="user www-data;"
  else
    echo "peers: www-data cannot reach $RUNDIR: nginx workers run as root" >&2
    USERLINE="user root;"
  fi
fi
sed -e "s|@MODULES@|$MODULES|g" -e "s|@USER@|$USERLINE|" -e "s|@WORKERS@|$WORKERS|" \
  -e "s|@NOFILE@|$NOFILE|" -e "s|@CONNECTIONS@|$CONNECTIONS|" -e "s|@RUNDIR@|$RUNDIR|g" \
  -e "s|@HERE@|$HERE|g" -e "s|@PORT@|$PORT|g" -e "s|@AUTH@|$AUTH|" \
  "$HERE/nginx.conf.in" >"$RUNDIR/nginx.conf"

export TASKCAST_PEER_JWT_SECRET="$3"
nginx -e "$RUNDIR/error.log" -p "$RUNDIR" -c "$RUNDIR/nginx.conf" -t -q ||
  peers_die "bad nginx configuration (see $RUNDIR/error.log)"
peers_spawn nginx nginx -e "$RUNDIR/error.log" -p "$RUNDIR" -c "$RUNDIR/nginx.conf"
MASTER=$SPAWNED

# shellcheck disable=SC2317 # called through peers_wait
s_workers_up() {
  peers_alive "$MASTER" || peers_die "nginx exited (see $RUNDIR/error.log)"
  [ "$(peers_children "$MASTER" | wc -l)" -ge "$WORKERS" ] && peers_port_open "$PORT"
}
peers_wait 10 s_workers_up || peers_die "nginx did not start (see $RUNDIR/error.log)"

peers_record "$MASTER" nginx-master
for w in $(peers_children "$MASTER"); do
  peers_record "$w" nginx-worker
done
peers_serve
