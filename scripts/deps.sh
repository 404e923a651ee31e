#!/bin/sh
# Installs what taskcast needs to build and test on Debian 12 (bookworm).
#   scripts/deps.sh            build and run (what the demo needs, nothing more)
#   scripts/deps.sh --test     also the Python packages the tests use (pytest, websockets,
#                              pyzmq, msgpack, PyJWT, cryptography)
#   scripts/deps.sh --browser  also chromium, node and npm for the browser tests
#   scripts/deps.sh --fuzz     also clang 14 and its libFuzzer runtime (scripts/fuzz.sh)
#   scripts/deps.sh --bench    also Celery and Redis (bench/jobs.py's peer, and its smoke)
#   (flags may be combined)
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PACKAGES="build-essential cmake pkg-config
  libzmq3-dev libwebsockets-dev libwebsockets-evlib-ev libev-dev libcap-dev libmsgpack-dev
  libsodium-dev python3 curl"
for flag in "$@"; do
  case $flag in
  --test)
    PACKAGES="$PACKAGES python3-pytest python3-websockets python3-zmq python3-msgpack
      python3-jwt python3-cryptography"
    ;;
  --browser)
    # The browser tests drive Debian's chromium with playwright-core from npm.
    PACKAGES="$PACKAGES chromium"
    command -v node >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs"
    command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES npm"
    ;;
  --fuzz)
    # libFuzzer: clang's -fsanitize=fuzzer needs its runtime package too.
    PACKAGES="$PACKAGES clang-14 libclang-rt-14-dev"
    ;;
  --bench)
    # bench/jobs.py compares with Celery on Redis (Debian's packages).
    PACKAGES="$PACKAGES python3-celery python3-redis redis-server"
    ;;
  *)
    echo "usage: scripts/deps.sh [--test] [--browser] [--fuzz] [--bench]" >&2
    exit 2
    ;;
  esac
done
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "taskcast: installing$missing" >&2
  $SUDO apt-get update
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
fi
