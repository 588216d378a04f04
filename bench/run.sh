#!/bin/sh
# bench/run.sh: builds and runs the benchmarks, side by side, and prints one
# line per benchmark and a summary with the ratios (make bench).
#
#   sh bench/run.sh [--check | --quick] [BUILD]      (BUILD defaults to build)
#
#   --check   only generate the traffic and check that ixr and the plain Lua
#             baseline answer it exactly as the generator predicts
#   --quick   a small smoke run (seconds, not minutes; figures meaningless)
#
# Knobs (environment): BENCH_N interactions to generate (60000), BENCH_RUNS
# rounds of the throughput benchmarks (5), BENCH_SEED (1), BENCH_MEM session
# counts of the memory benchmark ("100000 1000000") and BENCH_MEM_MINIMAL
# those of its variant without user data ("1000000"), BENCH_LAT_SECONDS (3),
# BENCH_KEEP=1 keeps the work directory, IXR_BIN / BENCH_BIN use programs
# built elsewhere (then nothing is built).
#
# Every throughput benchmark runs once per round, in turn, so that the
# ratios compare runs made at nearly the same time on this noisy machine;
# a figure is the median over the rounds and a ratio is the median of the
# per-round ratios. docs/performance.md explains each benchmark.
set -eu

MODE=full
case "${1:-}" in
  --check) MODE=check; shift ;;
  --quick) MODE=quick; shift ;;
esac
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

N=${BENCH_N:-60000}
RUNS=${BENCH_RUNS:-5}
SEED=${BENCH_SEED:-1}
MEMS=${BENCH_MEM:-100000 1000000}
MEMS_MIN=${BENCH_MEM_MINIMAL:-1000000}
LAT_SECONDS=${BENCH_LAT_SECONDS:-3}
if [ "$MODE" = quick ]; then
  N=${BENCH_N:-5000}
  RUNS=${BENCH_RUNS:-1}
  MEMS=${BENCH_MEM:-10000}
  MEMS_MIN=${BENCH_MEM_MINIMAL:-10000}
  LAT_SECONDS=${BENCH_LAT_SECONDS:-1}
fi

say() { printf '%s\n' "$*"; }
die() { say "bench: $*" >&2; exit 1; }

# ---- what the benchmarks need ------------------------------------------------

command -v lua5.4 >/dev/null 2>&1 ||
  die "lua5.4 is missing (apt-get install lua5.4 lua-cjson, or make deps)"
lua5.4 -e 'require "cjson.safe"' 2>/dev/null ||
  die "lua-cjson for Lua 5.4 is missing (apt-get install lua-cjson, or make deps)"

if [ -n "${IXR_BIN:-}" ] || [ -n "${BENCH_BIN:-}" ]; then
  IXR=${IXR_BIN:-$BUILD/ixr}
  BB=${BENCH_BIN:-$BUILD/bench}
else
  IXR=$BUILD/ixr
  BB=$BUILD/bench
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  # Someone else may be building in the same directory: try again.
  tries=0
  until cmake --build "$BUILD" --target ixr_bench -j 2 >"$BUILD/bench-build.log" 2>&1; do
    tries=$((tries + 1))
    [ $tries -lt 3 ] || { cat "$BUILD/bench-build.log" >&2; die "build failed"; }
    sleep 5
  done
fi
for p in "$IXR" "$BB/gen" "$BB/timecmd" "$BB/sock" "$BB/api" "$BB/mem" "$BB/ceiling" "$BB/echo"; do
  [ -x "$p" ] || die "$p is missing (is add_subdirectory(bench) in CMakeLists.txt?)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ixr-bench.XXXXXX")
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then say "bench: work files kept in $WORK" >&2
  else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

EV=$WORK/events.ndjson
META=$WORK/events.meta
COUNTS=$WORK/events.counts
SOCK=$WORK/ixr.sock
RESULTS=$WORK/results
: >"$RESULTS"

# value KEY: the value of KEY=... in the line on standard input
value() { tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
# median: of the numbers on standard input, one a line
median() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
    else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# ratio A B: A / B with 3 decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }'; }
# record NAME VALUE: one sample of a series
record() { say "$1 $2" >>"$RESULTS"; }
series() { awk -v k="$1" '$1 == k { print $2 }' "$RESULTS"; }

# ---- the machine ------------------------------------------------------------

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mhz=$(sed -n 's/^cpu MHz[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
memkb=$(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)
cjson=$(dpkg-query -W -f='${Version}' lua-cjson 2>/dev/null || echo "?")
say "machine cpus=$(nproc) model=\"$cpu\" mhz=${mhz%.*} mem_gb=$((memkb / 1048576)) \
kernel=$(uname -r) lua=\"$(lua5.4 -v 2>&1 | cut -d' ' -f2)\" lua_cjson=$cjson \
ixr=\"$($IXR version | cut -d' ' -f2)\" load=\"$(cut -d' ' -f1-3 /proc/loadavg)\""

# ---- the traffic, and the check that it is what it claims --------------------

"$BB/gen" -n "$N" --seed "$SEED" -o "$EV" --counts "$COUNTS" --meta "$META" 2>/dev/null
EVENTS=$(sed -n 's/^events=//p' "$META")
BYTES=$(sed -n 's/^bytes=//p' "$META")
say "traffic interactions=$N events=$EVENTS bytes=$BYTES seed=$SEED \
mix=\"$(grep '^path\.' "$META" | sed 's/^path\.//' | tr '\n' ' ' | sed 's/ $//')\" \
errors_deliberate=$(sed -n 's/^errors=//p' "$META")"

"$IXR" run --handlers bench/handlers --log-level error <"$EV" >"$WORK/ixr.out"
lua5.4 bench/check.lua "$META" "$WORK/ixr.out" ixr || die "ixr's output is not what the generator expects"
# ixr's average output line (with its newline): the echo floor writes lines
# of this size, so that the socket and the client carry what they do with ixr.
OUT_LINE_BYTES=$(wc -lc <"$WORK/ixr.out" | awk '{ if ($1 > 0) printf "%.0f", $2 / $1; else print 0 }')
lua5.4 bench/plain/baseline.lua "$EV" >"$WORK/plain.out"
lua5.4 bench/check.lua "$META" "$WORK/plain.out" plain_lua ||
  die "the plain Lua baseline's output is not what the generator expects"
rm -f "$WORK/ixr.out" "$WORK/plain.out"
[ "$MODE" = check ] && exit 0

# ---- throughput, in rounds ---------------------------------------------------

# timed NAME TIMECMD_ARGS...: runs bench/timecmd with these arguments (its
# -i/-o redirections, then -- and the command) and records the events/s of
# wall time and of CPU time, and the peak RSS, under NAME.
timed() {
  name=$1
  shift
  "$BB/timecmd" "$@" 2>"$WORK/timecmd.err" ||
    { cat "$WORK/timecmd.err" >&2; die "$name failed"; }
  line=$(grep '^timecmd ' "$WORK/timecmd.err" | tail -n 1)
  wall=$(say "$line" | value wall_s)
  cpu=$(awk -v u="$(say "$line" | value user_s)" -v s="$(say "$line" | value sys_s)" \
    'BEGIN { print u + s }')
  record "$name" "$(awk -v n="$EVENTS" -v t="$wall" 'BEGIN { printf "%.0f", n / t }')"
  record "$name.cpu" "$(awk -v n="$EVENTS" -v t="$cpu" 'BEGIN { printf "%.0f", n / t }')"
  record "$name.rss_kb" "$(say "$line" | value maxrss_kb)"
}

start_server() {
  rm -f "$SOCK"
  "$IXR" run --handlers bench/handlers --listen "unix:$SOCK" --log-level error \
    2>>"$WORK/server.log" &
  SERVER=$!
}
stop_server() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=""
}

r=1
while [ $r -le "$RUNS" ]; do
  timed run_file -i "$EV" -o /dev/null -- "$IXR" run --handlers bench/handlers --log-level error
  timed plain_lua -o /dev/null -- lua5.4 bench/plain/baseline.lua "$EV"

  start_server
  out=$("$BB/sock" throughput "$SOCK" "$EV") || die "sock throughput failed"
  stop_server
  record sock "$(say "$out" | value events_per_s)"

  "$BB/ceiling" --both "$EV" >"$WORK/ceiling.out" || die "ceiling failed"
  record ceiling_bare "$(grep '^bench=ceiling_bare ' "$WORK/ceiling.out" | value events_per_s)"
  record ceiling "$(grep '^bench=ceiling ' "$WORK/ceiling.out" | value events_per_s)"
  # Its second run, as the ceiling's handler runs after its bare loop: the
  # first run in a process is slower (1.4 to 2 times here), and ixr is a
  # process that runs long, so both are taken warm.
  out=$("$BB/api" --runs 2 "$EV") || die "api failed"
  out=$(say "$out" | tail -n 1)
  record api "$(say "$out" | value events_per_s)"
  api_lines=$(say "$out" | value lines_out)
  # Every round: each loop fed every event without a failure (a run whose
  # events fail does less work, and would look fast).
  for f in "$(say "$out" | value failed)" \
    $(grep '^bench=ceiling' "$WORK/ceiling.out" | tr ' ' '\n' | sed -n 's/^failed=//p'); do
    [ "$f" = 0 ] || die "round $r: api or ceiling failed on $f events"
  done

  # api against plain_lua would compare unlike work (api is fed decoded
  # events: no JSON, no I/O, no process start): only against the ceiling,
  # which is fed the same way.
  for k in run_file sock api; do
    v=$(series $k | tail -n 1)
    [ $k = api ] || record "$k/plain_lua" "$(ratio "$v" "$(series plain_lua | tail -n 1)")"
    record "$k/ceiling" "$(ratio "$v" "$(series ceiling | tail -n 1)")"
  done
  say "round $r/$RUNS run_file=$(series run_file | tail -n 1) plain_lua=$(series plain_lua | tail -n 1) \
sock=$(series sock | tail -n 1) api=$(series api | tail -n 1) ceiling=$(series ceiling | tail -n 1) \
ceiling_bare=$(series ceiling_bare | tail -n 1)" >&2
  r=$((r + 1))
done

# The in-process programs leave the bad_json lines out: check the rest.
want=$(( $(sed -n 's/^lines_out=//p' "$META") - $(sed -n 's/^error.bad_json=//p' "$META") ))
[ "$api_lines" = "$want" ] || die "api wrote $api_lines lines, expected $want"
ceil_lines=$(grep '^bench=ceiling ' "$WORK/ceiling.out" | value lines_out)
[ "$ceil_lines" = "$want" ] || die "ceiling emitted $ceil_lines lines, expected $want"

m() { series "$1" | median; }
RUN_FILE=$(m run_file)
PLAIN=$(m plain_lua)
SOCKT=$(m sock)
API=$(m api)
CEIL=$(m ceiling)
BARE=$(m ceiling_bare)

# ---- latency at half the measured peak ---------------------------------------

RATE=$(awk -v p="$SOCKT" 'BEGIN { printf "%.0f", p / 2 }')
start_server
sleep 0.2 # let it load its strategies before the clock starts
# How busy the server was at that fixed rate (server_busy): its CPU time
# over the traffic's wall time, measured by the client from its first send
# to its last answer, the same way for ixr and for the echo floor below (it
# wakes for every few events, which costs more than reading 64 KiB at a
# time at the peak). The client fails (status 1) when events go unanswered.
LAT=$(BENCH_SERVER_PID=$SERVER "$BB/sock" latency "$SOCK" "$EV" "$COUNTS" "$RATE" "$LAT_SECONDS") ||
  { stop_server; die "latency run failed: $LAT"; }
stop_server

# The floor of that latency on this machine (bench/echo.c): a server that
# only answers, with the same loop, socket and output counts, at the same
# rate; then the same server spinning per line so that it is as busy as
# ixr was, with no pause of any kind. What ixr's p99 has above the second
# is ixr's own (the collector, mostly); what the second has is the
# machine's at that load.
# echo_at SPIN_US: runs the echo server and the client; prints their lines.
echo_at() {
  rm -f "$SOCK"
  "$BB/echo" "$SOCK" "$COUNTS" "$1" "$OUT_LINE_BYTES" >"$WORK/echo.out" 2>>"$WORK/server.log" &
  ECHO=$!
  i=0
  while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  out=$(BENCH_SERVER_PID=$ECHO "$BB/sock" latency "$SOCK" "$EV" "$COUNTS" "$RATE" "$LAT_SECONDS") ||
    { kill "$ECHO" 2>/dev/null; die "latency floor run failed: $out"; }
  wait "$ECHO" || die "echo server failed"
  say "$out spin_us=$1 line_bytes=$OUT_LINE_BYTES"
}
FLOOR0=$(echo_at 0)
busy_ixr=$(say "$LAT" | value server_busy)
busy_0=$(say "$FLOOR0" | value server_busy)
SPIN=$(awk -v a="$busy_ixr" -v b="$busy_0" -v r="$RATE" \
  'BEGIN { s = (a - b) * 1e6 / r; if (s < 0) s = 0; printf "%.2f", s }')
FLOOR=$(echo_at "$SPIN")
FLOOR0="bench=latency_floor $(say "$FLOOR0" | sed 's/^bench=latency //')"
FLOOR="bench=latency_floor $(say "$FLOOR" | sed 's/^bench=latency //')"

# The same rate and a tenth of it on a simulated clock, in process: what ixr
# itself adds (bench/pace.c), without the socket and the other process.
PACE=$("$BB/pace" "$EV" "$RATE" "$((RATE / 10))") || die "pace failed"

# ---- memory per live session -------------------------------------------------

MEMOUT=""
for n in $MEMS; do
  o=$("$BB/mem" "$n" "$EV") || die "mem $n failed"
  MEMOUT="$MEMOUT$o
"
done
MEMOUT_MIN=""
for n in $MEMS_MIN; do
  o=$("$BB/mem" --minimal "$n" "$EV") || die "mem --minimal $n failed"
  MEMOUT_MIN="$MEMOUT_MIN$o
"
done

# ---- hot reload pause (issue 4): 10 and 100 strategy files, 100,000 sessions ----

RELOADOUT=""
for f in 10 100; do
  o=$("$BB/reload" --files "$f" --sessions "${BENCH_RELOAD_SESSIONS:-100000}" --reloads 30) ||
    die "reload $f failed"
  RELOADOUT="$RELOADOUT$o
"
done

# ---- the report --------------------------------------------------------------

say "bench=run_file events=$EVENTS runs=$RUNS events_per_s=$RUN_FILE \
cpu_events_per_s=$(m run_file.cpu) rss_mb=$(awk -v k="$(m run_file.rss_kb)" 'BEGIN { printf "%.0f", k / 1024 }') median"
say "bench=plain_lua events=$EVENTS runs=$RUNS events_per_s=$PLAIN \
cpu_events_per_s=$(m plain_lua.cpu) rss_mb=$(awk -v k="$(m plain_lua.rss_kb)" 'BEGIN { printf "%.0f", k / 1024 }') median"
say "bench=sock_throughput events=$EVENTS runs=$RUNS events_per_s=$SOCKT median"
say "bench=api events=$((EVENTS - $(sed -n 's/^error.bad_json=//p' "$META"))) runs=$RUNS events_per_s=$API median"
say "bench=ceiling events=$((EVENTS - $(sed -n 's/^error.bad_json=//p' "$META"))) runs=$RUNS events_per_s=$CEIL median"
say "bench=ceiling_bare runs=$RUNS events_per_s=$BARE median"
say "$LAT"
say "$FLOOR0"
say "$FLOOR"
say "$PACE"
printf '%s' "$MEMOUT" "$MEMOUT_MIN" "$RELOADOUT"
say "ratio run_file/plain_lua=$(m run_file/plain_lua) run_file/ceiling=$(m run_file/ceiling) \
sock/plain_lua=$(m sock/plain_lua) api/ceiling=$(m api/ceiling) median_of_rounds"

# targets of issue 8
verdict() { if [ "$1" = 1 ]; then echo ok; else echo MISSED; fi; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a >= b) ? 1 : 0 }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) ? 1 : 0 }'; }
p99=$(say "$LAT" | value p99_us)
say "target run_file>=300000/s $(verdict "$(ge "$RUN_FILE" 300000)") ($RUN_FILE)"
say "target run_file/plain_lua>=1.0 $(verdict "$(ge "$(m run_file/plain_lua)" 1.0)") ($(m run_file/plain_lua))"
say "target api/ceiling>=0.40 $(verdict "$(ge "$(m api/ceiling)" 0.40)") ($(m api/ceiling))"
say "target latency_p99<1000us $(verdict "$(lt "$p99" 1000)") (${p99}us at ${RATE}/s; a server as busy without pauses: $(say "$FLOOR" | value p99_us)us)"
r10=$(printf '%s' "$RELOADOUT" | grep 'files=10 ' | value pause_ms_median)
say "target reload_pause_10_files<10ms $(verdict "$(lt "$r10" 10)") (${r10}ms median, ${BENCH_RELOAD_SESSIONS:-100000} sessions)"
printf '%s' "$MEMOUT" "$MEMOUT_MIN" | while read -r line; do
  [ "$(say "$line" | value sessions)" = 1000000 ] || continue
  kind=$(say "$line" | value bench)
  mb=$(say "$line" | value rss_total_mb)
  say "target 1M_sessions<2048MB $(verdict "$(lt "$mb" 2048)") (${mb}MB, $kind)"
done
