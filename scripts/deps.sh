#!/bin/sh
# Installs what taskcast needs to build and test on Debian 12 (bookworm).
#   scripts/deps.sh            build and run
#   scripts/deps.sh --browser  also chromium, node and npm for the browser tests
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PACKAGES="build-essential cmake pkg-config
  libzmq3-dev libwebsockets-dev libwebsockets-evlib-ev libev-dev libcap-dev libmsgpack-dev
  libsodium-dev
  python3 python3-pytest python3-websockets python3-zmq python3-msgpack python3-jwt
  python3-cryptography curl"
# The browser tests drive Debian's chromium with playwright-core from npm.
if [ "${1:-}" = "--browser" ]; then
  PACKAGES="$PACKAGES chromium"
  command -v node >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs"
  command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES npm"
fi
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
