#!/bin/sh
# bench/profile.sh: where `ixr run` spends its time on the benchmark traffic.
#
#   sh bench/profile.sh perf [BUILD]        sampled profile (perf record)
#   sh bench/profile.sh callgrind [BUILD]   instruction counts (valgrind)
#
# Generates the traffic of bench/run.sh (BENCH_N interactions: 60000 for
# perf, 5000 for callgrind, which runs about 50 times slower), runs
# `ixr run --handlers bench/handlers` on it under the profiler and prints
# the top functions, by self and by inclusive cost. The raw data stays in
# the printed directory for perf report / callgrind_annotate.
#
# Debian's liblua5.4 has no symbols: its functions show up as addresses.
# To see them, point PROFILE_LUA_LIB at a directory holding a liblua5.4.so.0
# built with symbols from the same Lua release (5.4.4), for example:
#   cd lua-5.4.4/src && gcc -O2 -g -fPIC -shared -DLUA_COMPAT_5_3 \
#     -DLUA_USE_LINUX -Wl,-soname,liblua5.4.so.0 -o liblua5.4.so.0 \
#     $(ls *.c | grep -v -e '^lua.c' -e '^luac.c') -lm -ldl
# (it is only loaded for the profiled run, through LD_LIBRARY_PATH).
set -eu

TOOL=${1:-}
BUILD=${2:-build}
case "$TOOL" in
  perf | callgrind) ;;
  *) echo "usage: sh bench/profile.sh perf|callgrind [BUILD]" >&2; exit 2 ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
IXR=${IXR_BIN:-$BUILD/ixr}
BB=${BENCH_BIN:-$BUILD/bench}
if [ -z "${IXR_BIN:-}" ] && [ -z "${BENCH_BIN:-}" ]; then
  cmake --build "$BUILD" --target ixr ixr_bench_gen -j 2 >/dev/null
fi
if [ "$TOOL" = perf ]; then N=${BENCH_N:-60000}; else N=${BENCH_N:-5000}; fi

OUT=$(mktemp -d "${TMPDIR:-/tmp}/ixr-profile.XXXXXX")
"$BB/gen" -n "$N" --seed "${BENCH_SEED:-1}" -o "$OUT/events.ndjson" 2>/dev/null
LIBS="LD_LIBRARY_PATH=${PROFILE_LUA_LIB:-${LD_LIBRARY_PATH:-}}"

if [ "$TOOL" = perf ]; then
  command -v perf >/dev/null 2>&1 || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 1; }
  env "$LIBS" perf record -q -o "$OUT/perf.data" -F 2000 --call-graph dwarf,16384 \
    "$IXR" run --handlers bench/handlers --log-level error \
    <"$OUT/events.ndjson" >/dev/null 2>"$OUT/perf.log" || { cat "$OUT/perf.log" >&2; exit 1; }
  echo "== self (perf, % of samples)"
  perf report -i "$OUT/perf.data" --no-children --stdio --sort dso,symbol -g none 2>/dev/null |
    grep -E '^ +[0-9]' | head -n 30
  echo "== inclusive (perf, % of samples)"
  perf report -i "$OUT/perf.data" --children --stdio --sort symbol -g none 2>/dev/null |
    grep -E '^ +[0-9]' | head -n 40
else
  command -v valgrind >/dev/null 2>&1 || { echo "valgrind is missing" >&2; exit 1; }
  env "$LIBS" valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
    "$IXR" run --handlers bench/handlers --log-level error \
    <"$OUT/events.ndjson" >/dev/null 2>"$OUT/callgrind.log" || { cat "$OUT/callgrind.log" >&2; exit 1; }
  events=$(wc -l <"$OUT/events.ndjson")
  total=$(sed -n 's/.*Collected : *//p' "$OUT/callgrind.log")
  echo "== $events events, $total instructions, $((total / events)) per event"
  echo "== self (instructions)"
  callgrind_annotate "$OUT/callgrind.out" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | sed -n '2,31p'
  echo "== inclusive (instructions)"
  callgrind_annotate --inclusive=yes "$OUT/callgrind.out" 2>/dev/null |
    grep -E '^ *[0-9,]+ \(' | sed -n '2,45p'
fi
echo "== data in $OUT"
