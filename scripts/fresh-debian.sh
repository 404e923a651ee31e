#!/bin/bash
# Runs a command on a clean clone of the current HEAD inside a brand-new
# Debian 12 container: what a new user's machine starts from, whatever this
# machine has installed.
#   scripts/fresh-debian.sh                 .ci/run (install, build, every test)
#   scripts/fresh-debian.sh sh -c '...'     any other command, run in the clone
#   scripts/fresh-debian.sh --rebuild ...   build the base image again first
#   scripts/fresh-debian.sh --keep ...      keep the clone (and its builds) after a success
# The base image is a `debootstrap --variant=minbase bookworm` root file system
# with Debian's usual sources (bookworm, -updates, -security), built once and
# kept by podman. Everything else goes under ${XDG_CACHE_HOME:-~/.cache}/taskcast-fresh-debian:
# runs/<time>/src (the clone, removed after a success unless --keep) and
# runs/<time>.log (the output). Uncommitted changes are not in the clone.
# Needs podman, runc and debootstrap (apt-get install podman runc debootstrap),
# and root or sudo for debootstrap. Podman runs with runc (crun fails on some
# hosts) and with ulimits no higher than this shell's hard limits. When this
# machine sets NODE_EXTRA_CA_CERTS (a proxy that re-signs TLS), the host's CA
# bundle is mounted read-only and trusted by node/npm in the container too.
# Extra podman run options: TASKCAST_PODMAN_ARGS (e.g. "--cpus 1.5").
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)
IMAGE=localhost/taskcast-fresh-debian:bookworm-minbase
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/taskcast-fresh-debian
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

rebuild=0
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rebuild) rebuild=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || set -- .ci/run

for tool in podman runc debootstrap git; do
  command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
  command -v "$tool" >/dev/null 2>&1 || {
    echo "fresh-debian: $tool is missing (apt-get install podman runc debootstrap git)" >&2
    exit 2
  }
done
mkdir -p "$CACHE/runs"

# ---- the base image, once
if [ "$rebuild" -eq 1 ] || ! podman image exists "$IMAGE"; then
  rootfs="$CACHE/rootfs"
  $SUDO rm -rf "$rootfs"
  echo "fresh-debian: debootstrap --variant=minbase bookworm (about a minute)" >&2
  $SUDO debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
    tail -20 "$CACHE/debootstrap.log" >&2
    exit 1
  }
  # The sources a Debian 12 installation comes with.
  printf '%s\n' "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
    "deb $SECURITY bookworm-security main" | $SUDO tee "$rootfs/etc/apt/sources.list" >/dev/null
  $SUDO rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  $SUDO tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' \
    --change 'ENV LANG=C.UTF-8' - "$IMAGE" >/dev/null
  $SUDO rm -rf "$rootfs"
  echo "fresh-debian: built $IMAGE" >&2
fi

# ---- a clean clone of HEAD (a worktree's HEAD too, not the clone's default branch)
head=$(git rev-parse HEAD)
[ -z "$(git status --porcelain --untracked-files=no)" ] ||
  echo "fresh-debian: uncommitted changes are not in the clone (HEAD is $head)" >&2
run="$CACHE/runs/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
git clone --quiet --no-local --no-checkout "$repo" "$run/src"
git -C "$run/src" checkout --quiet --detach "$head"
log="$run.log"

# ---- the run
# podman's default ulimits are above what this machine lets runc set: use
# this shell's hard limits, and for nproc no more than kernel.pid_max (runc
# was refused anything above it here).
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
pidmax=$(cat /proc/sys/kernel/pid_max)
[ "$nofile" != unlimited ] || nofile=1048576
if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pidmax" ]; then nproc=$pidmax; fi
# A name, to remove the container when this script is interrupted: with
# --sig-proxy=false, Ctrl-C ends `podman run` at once (the command's shell
# would ignore it as the container's PID 1), then the EXIT trap removes it.
name="taskcast-fresh-debian-${run##*/}-$$"
trap 'podman rm -f -t 0 "$name" >/dev/null 2>&1 || true' EXIT
trap 'echo "fresh-debian: interrupted; the clone is in $run" >&2; exit 130' INT TERM
set -- --name "$name" --sig-proxy=false --runtime runc --rm \
  --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
  -v "$run/src:/src" -w /src "$IMAGE" "$@"
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r "${NODE_EXTRA_CA_CERTS}" ]; then
  set -- -v "$NODE_EXTRA_CA_CERTS:/etc/ssl/host-ca.crt:ro" -e NODE_EXTRA_CA_CERTS=/etc/ssl/host-ca.crt "$@"
fi
echo "fresh-debian: $head in a new $IMAGE container; log: $log" >&2
start=$(date +%s)
# shellcheck disable=SC2086
podman run ${TASKCAST_PODMAN_ARGS:-} "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
secs=$(($(date +%s) - start))
echo "fresh-debian: exit status $status after $((secs / 60)) min $((secs % 60)) s" | tee -a "$log" >&2
if [ "$status" -eq 0 ] && [ "$keep" -eq 0 ]; then
  rm -rf "$run"
else
  echo "fresh-debian: the clone and its builds are in $run" >&2
fi
exit "$status"
