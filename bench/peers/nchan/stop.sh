#!/bin/sh
# Stops what bench/peers/nchan/start.sh PORT ... started: stop.sh PORT
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/peers/lib.sh
. "$HERE/../lib.sh"
peers_stop nchan "${1:-}"
