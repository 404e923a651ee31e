#!/bin/sh
# Installs, builds and starts a local taskcast: one broker, two gateways
# (ports 8000 and 8001), a worker pool (examples/jobs/pool.conf: render, thumb)
# and a demo worker that submits a real job to it for the user "demo" every
# 3 s. No Docker needed. Ctrl-C stops everything.
#   DEMO_USER=alice scripts/demo.sh     (another demo user)
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
./scripts/deps.sh
./scripts/build.sh
bin=$root/build/bin
run=$root/.run
mkdir -p "$run"
user=${DEMO_USER:-demo}

# A development secret, kept between runs (at least 32 bytes: RFC 7518).
if [ -z "${TASKCAST_JWT_SECRET:-}" ]; then
  [ -s "$run/jwt-secret" ] || od -An -tx1 -N24 /dev/urandom | tr -d ' \n' > "$run/jwt-secret"
  TASKCAST_JWT_SECRET=$(cat "$run/jwt-secret")
fi
export TASKCAST_JWT_SECRET

pids=""
stop() {
  trap - INT TERM EXIT
  [ -n "$pids" ] && kill $pids 2>/dev/null || true
  wait 2>/dev/null || true
  echo "taskcast demo stopped (logs in $run/)"
}
trap stop INT TERM EXIT

"$bin/taskcast-broker" >"$run/broker.log" 2>&1 &
pids="$pids $!"
for port in 8000 8001; do
  TASKCAST_LISTEN=127.0.0.1:$port "$bin/taskcast-gateway" --name "gateway-$port" \
    >"$run/gateway-$port.log" 2>&1 &
  pids="$pids $!"
done
for port in 8000 8001; do
  i=0
  until curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then
      echo "gateway on port $port did not become ready; see $run/gateway-$port.log" >&2
      exit 1
    fi
    sleep 0.1
  done
done
# A worker pool running the example jobs (examples/jobs/pool.conf: render, thumb).
(cd "$root" && exec "$bin/taskcast-worker" --config examples/jobs/pool.conf --concurrency 2 --grace-s 2 \
  --name demo-pool) >"$run/pool.log" 2>&1 &
pids="$pids $!"
# The demo user's stream of tasks: a real job on that pool every 3 s
# (--mode fake would publish fake task events instead, without the pool).
"$bin/taskcast-demo-worker" --mode jobs --every-ms 3000 --user "$user" >"$run/worker.log" 2>&1 &
pids="$pids $!"

token=$("$bin/taskcast-cli" token --user "$user" --ttl 86400)
cat <<MSG

taskcast is running: broker (5555-5558), gateways on 8000 and 8001, a worker pool for
the jobs render and thumb (examples/jobs/), and a demo worker that submits a real job
to it for "$user" every 3 s: watch each one queued, running with progress, and finished.

Watch the tasks in a terminal:
  $bin/taskcast-cli watch --user $user --url ws://127.0.0.1:8000 --token $token

Or in a browser (start jobs of your own and cancel them there too): open this file
and paste the URL below (or add it after '#'):
  file://$root/examples/watch.html#ws://127.0.0.1:8001/api/v1/ws/tasks/$user?token=$token

WebSocket URL (either gateway):
  ws://127.0.0.1:8000/api/v1/ws/tasks/$user?token=$token
Status:  curl 'http://127.0.0.1:8000/api/v1/ws/status?token=$token'
Publish your own event:
  $bin/taskcast-cli publish --user $user --task my-task --status running --progress 50 --message hello
Run a job on the pool (watch it queue, run, progress and finish), or cancel it:
  $bin/taskcast-cli submit --kind render --user $user --args '{"steps": 20, "delay": 0.5}'
  $bin/taskcast-cli cancel --user $user --task TASK_ID

Logs: $run/   Ctrl-C stops everything.
MSG
wait
