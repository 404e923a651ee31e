#!/bin/sh
# Installs dependencies, builds (warnings as errors) twice, plain and with
# AddressSanitizer + UndefinedBehaviorSanitizer, and runs every test on both:
# C unit tests, PyJWT interoperability, the end-to-end suite that starts
# real brokers and gateways on loopback, some driven from a real browser, and
# the browser client library's tests (clients/js, node --test).
# Then every fuzz target (clang, libFuzzer) runs over its seeds and for a
# few seconds (TASKCAST_FUZZ_SECONDS, default 10) with scripts/fuzz.sh.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh --test --browser --fuzz --bench
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
(cd clients/js && npm ci --no-audit --no-fund --loglevel=error)
# The browser tests skip themselves when chromium or playwright-core is
# missing; here both were just installed, so a skip would be a failure.
export TASKCAST_REQUIRE_BROWSER=1
# Likewise Celery and Redis for the jobs benchmark's smoke (bench/jobs.py).
export TASKCAST_REQUIRE_CELERY=1
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
echo "== fuzz"
./scripts/fuzz.sh "${TASKCAST_FUZZ_SECONDS:-10}" || status=1
exit $status
