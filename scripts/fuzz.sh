#!/bin/sh
# Builds the libFuzzer targets (fuzz/) with clang into build-fuzz/ and runs
# each: first over its committed seed corpus (fuzz/corpus/NAME, a
# regression), then coverage-guided for SECONDS (default 10), as many
# targets at a time as there are cores.
#   scripts/fuzz.sh [SECONDS] [NAME...]     e.g. scripts/fuzz.sh 600 jwt
# New inputs go to build-fuzz/corpus/NAME (kept between runs); a crash, a
# sanitizer report, a broken invariant, a leak or a timeout fails the run
# and its input is kept in build-fuzz/crashes/NAME/ (and printed in base64).
# Reproduce with: build-fuzz/fuzz/fuzz_NAME build-fuzz/crashes/NAME/crash-...
set -eu
cd "$(dirname "$0")/.."
secs=${1:-10}
[ $# -gt 0 ] && shift
case $secs in
'' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [NAME...]" >&2; exit 2 ;;
esac
./scripts/deps.sh --fuzz
dir=build-fuzz
cmake -S . -B "$dir" -DCMAKE_C_COMPILER="${TASKCAST_FUZZ_CC:-clang-14}" -DTASKCAST_FUZZ=ON \
  -DTASKCAST_WERROR=ON -DTASKCAST_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS_DEBUG="-g -O1" >/dev/null
cmake --build "$dir" --target fuzz_all -j "$(nproc)"

if [ $# -eq 0 ]; then
  for src in fuzz/fuzz_*.c; do
    src=${src#fuzz/fuzz_}
    set -- "$@" "${src%.c}"
  done
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}:halt_on_error=1"
jobs=$(nproc)
log="$dir/logs"
mkdir -p "$log"
touch "$log/.start" # inputs kept by this run are newer

# One target: the regression over the seeds, then the timed run. Output in
# $log/NAME.log; exit status non-zero on any finding.
run_one() {
  name=$1
  bin="$dir/fuzz/fuzz_$name"
  seeds="fuzz/corpus/$name"
  mkdir -p "$dir/corpus/$name" "$dir/crashes/$name"
  opts="-timeout=25 -rss_limit_mb=2048 -artifact_prefix=$dir/crashes/$name/"
  if [ -f "fuzz/$name.dict" ]; then opts="$opts -dict=fuzz/$name.dict"; fi
  {
    # shellcheck disable=SC2086
    "$bin" $opts -runs=0 "$seeds" &&
      "$bin" $opts -max_total_time="$secs" -print_final_stats=1 "$dir/corpus/$name" "$seeds"
  } >"$log/$name.log" 2>&1
}

passed=0
failed=0
while [ $# -gt 0 ]; do
  batch=""
  i=0
  while [ $# -gt 0 ] && [ $i -lt "$jobs" ]; do
    run_one "$1" &
    batch="$batch $!:$1"
    shift
    i=$((i + 1))
  done
  for job in $batch; do
    pid=${job%%:*}
    name=${job#*:}
    if wait "$pid"; then
      passed=$((passed + 1))
      summary=$(grep -E '^#[0-9]+.*DONE' "$log/$name.log" | tail -1 | sed 's/^#\([0-9]*\)[[:space:]]*DONE[[:space:]]*/\1 runs, /')
      echo "fuzz_$name: ok ($summary)"
    else
      failed=$((failed + 1))
      echo "fuzz_$name: FAILED (log: $log/$name.log)"
      grep -E 'ERROR|invariant broken|runtime error|SUMMARY|Test unit written' "$log/$name.log" | head -20
      find "$dir/crashes/$name" -type f -newer "$log/.start" | while read -r f; do
        echo "  kept: $f  (reproduce: $dir/fuzz/fuzz_$name $f)"
        echo "  base64: $(head -c 4096 "$f" | base64 -w0)"
      done
    fi
  done
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
