#!/bin/sh
# Builds taskcast with warnings as errors.
#   scripts/build.sh            -> build/        (release with debug info)
#   scripts/build.sh --sanitize -> build-asan/   (AddressSanitizer + UndefinedBehaviorSanitizer)
set -eu
cd "$(dirname "$0")/.."
dir=build
flags="-DTASKCAST_WERROR=ON"
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  flags="$flags -DTASKCAST_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"
fi
cmake -S . -B "$dir" $flags >/dev/null
cmake --build "$dir" -j "$(nproc)"
