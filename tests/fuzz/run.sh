#!/bin/sh
# tests/fuzz/run.sh [SECONDS]: builds the libFuzzer targets with clang in
# their own build directory, replays every saved regression, then runs each
# target for SECONDS (default 60) on a copy of its seed corpus. Prints the
# executions per target; exits 1 if a regression or the fuzzer crashed.
#
# Environment:
#   BUILD_FUZZ   build directory (default: build-fuzz at the top)
#   FUZZ_CC      the compiler (default: clang)
#   FUZZ_ARGS    more libFuzzer flags for every target (e.g. -jobs=2)
#   FUZZ_TARGETS the targets to run (default: fuzz_decode fuzz_dispatch)
#
# Crash inputs land in tests/fuzz/crashes/ (not tracked by git). The corpus
# that grows while fuzzing stays in $BUILD_FUZZ/corpus/, never in the repo.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FUZZ="$ROOT/tests/fuzz"
SECONDS_EACH=${1:-60}
BUILD=${BUILD_FUZZ:-$ROOT/build-fuzz}
CC_FUZZ=${FUZZ_CC:-clang}
TARGETS=${FUZZ_TARGETS:-"fuzz_decode fuzz_dispatch"}
JOBS=$(nproc 2>/dev/null || echo 2)

case "$SECONDS_EACH" in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

# The longest input per target: JSON lines for the decoder; two bytes an
# event for the dispatcher.
max_len() {
  case "$1" in
    fuzz_decode) echo 4096 ;;
    fuzz_dispatch) echo 512 ;;
    *) echo 4096 ;;
  esac
}

if ! command -v "$CC_FUZZ" >/dev/null 2>&1; then
  echo "fuzz: $CC_FUZZ not found (Debian: apt-get install clang libclang-rt-dev)" >&2
  exit 2
fi
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$FUZZ" -B "$BUILD" -DCMAKE_C_COMPILER="$CC_FUZZ" >/dev/null
fi
cmake --build "$BUILD" -j "$JOBS" >/dev/null

# Sanitizers: stop at the first report, with a stack. A smaller quarantine
# than the default 256 MiB keeps page faults (and runs) cheap.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=64:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

status=0
mkdir -p "$FUZZ/crashes"

# 1. Every saved regression, one process each so that one crash hides none.
for t in $TARGETS; do
  dir="$FUZZ/regressions/$t"
  [ -d "$dir" ] || continue
  for f in "$dir"/*; do
    [ -f "$f" ] || continue
    case "$f" in *.md) continue ;; esac
    if "$BUILD/$t" "$f" >"$BUILD/regression.log" 2>&1; then
      echo "fuzz: regression $t $(basename "$f"): ok"
    else
      echo "fuzz: regression $t $(basename "$f"): FAILED" >&2
      grep -E "invariant broken|ERROR: |SUMMARY: " "$BUILD/regression.log" >&2 || true
      status=1
    fi
  done
done

# 2. Fuzzing, one target after the other.
targets_ok=0
targets_failed=0
for t in $TARGETS; do
  work="$BUILD/corpus/$t"
  mkdir -p "$work"
  cp "$FUZZ/corpus/$t"/* "$work"/ 2>/dev/null || true
  dict=""
  [ -f "$FUZZ/$t.dict" ] && dict="-dict=$FUZZ/$t.dict"
  log="$BUILD/$t.log"
  echo "fuzz: $t for ${SECONDS_EACH}s (log: $log)"
  rc=0
  # shellcheck disable=SC2086 # $dict and $FUZZ_ARGS are lists of flags
  "$BUILD/$t" -max_total_time="$SECONDS_EACH" -max_len="$(max_len "$t")" \
    -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$FUZZ/crashes/$t-" $dict ${FUZZ_ARGS:-} \
    "$work" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  echo "fuzz: $t: ${runs:-0} executions (${rate:-?}/s), corpus $(find "$work" -type f | wc -l) inputs"
  if [ "$rc" -eq 0 ]; then
    targets_ok=$((targets_ok + 1))
  else
    targets_failed=$((targets_failed + 1))
    status=1
    echo "fuzz: $t FAILED (exit $rc):" >&2
    grep -E "invariant broken|ERROR: |SUMMARY: |^    #[0-9]+ .* in (ixr|fz|LLVMFuzzer)|Test unit written" "$log" >&2 || tail -n 30 "$log" >&2
  fi
done

if [ "$status" -ne 0 ]; then
  echo "fuzz: FAILED. Crash inputs are in tests/fuzz/crashes/; see tests/fuzz/README.md" >&2
fi
echo "fuzz: $targets_ok passed, $targets_failed failed"
exit "$status"
