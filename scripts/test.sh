#!/bin/sh
# Installs dependencies, builds (warnings as errors) twice, plain and with
# AddressSanitizer + UndefinedBehaviorSanitizer, and runs every test on both:
# C unit tests, PyJWT interoperability, and the end-to-end suite that starts
# real brokers and gateways on loopback.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh
./scripts/build.sh --sanitize
# LeakSanitizer also runs; abort on the first UBSan finding.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for dir in build build-asan; do
  echo "== tests in $dir"
  (cd "$dir" && ctest --output-on-failure --timeout 900) || status=1
done
exit $status
