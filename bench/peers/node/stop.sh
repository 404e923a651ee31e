#!/bin/sh
# Stops what bench/peers/node/start.sh PORT ... started: stop.sh PORT
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
peers_stop node "${1:-}"
