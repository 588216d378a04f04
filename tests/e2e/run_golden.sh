#!/bin/sh
# run_golden.sh: end-to-end golden tests of the ixr program.
#
#   sh tests/e2e/run_golden.sh PATH-TO-IXR SOURCE-DIR
#
# For every tests/e2e/NAME.ndjson, runs
#   ixr run --handlers tests/e2e/handlers --clock manual < NAME.ndjson
# from the source directory and compares standard output byte for byte with
# tests/e2e/NAME.expected. Each case runs twice: with standard input
# redirected from the file (read as a regular file) and through a pipe (read
# as a stream), since ixr reads the two differently and both must give the
# same output. A case also fails when ixr exits non-zero or its standard
# error shows a crash or a sanitizer report.
#
# Paths in the output (strategy errors, tracebacks) are relative to the
# source directory, which keeps the golden files independent of where the
# tree is checked out.
#
# To (re)make a golden file, run the command above by hand and read the
# output line by line against CONTRACT.md before saving it.

if [ $# -ne 2 ]; then
  echo "usage: sh $0 PATH-TO-IXR SOURCE-DIR" >&2
  exit 2
fi

case $1 in
  /*) ixr=$1 ;;
  *) ixr=$(pwd)/$1 ;;
esac
src=$2

if [ ! -x "$ixr" ]; then
  echo "run_golden.sh: $ixr is not an executable" >&2
  exit 2
fi
if ! cd "$src"; then
  echo "run_golden.sh: cannot enter $src" >&2
  exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ixr-golden.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# What a crash or a sanitizer leaves on standard error. Ordinary log lines
# ("ixr: error: ... error in flow: ...") are expected in the error cases.
crash='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|Assertion .* failed|Segmentation fault|Aborted|core dumped|handles left open|PANIC'

passed=0
failed=0

# run_one NAME MODE: runs one case, sets $why to "" or to what went wrong.
run_one() {
  name=$1
  mode=$2
  out=$tmp/$name.$mode.out
  err=$tmp/$name.$mode.err
  if [ "$mode" = file ]; then
    IXR_LUA_DIR=lua "$ixr" run --handlers tests/e2e/handlers --clock manual \
      <"tests/e2e/$name.ndjson" >"$out" 2>"$err"
    status=$?
  else
    # The exit status of a pipeline is the last command's: ixr's.
    cat "tests/e2e/$name.ndjson" |
      IXR_LUA_DIR=lua "$ixr" run --handlers tests/e2e/handlers --clock manual \
        >"$out" 2>"$err"
    status=$?
  fi
  why=""
  if ! diff -u "tests/e2e/$name.expected" "$out" >"$tmp/$name.$mode.diff"; then
    why="output differs from tests/e2e/$name.expected"
  fi
  if [ "$status" -ne 0 ]; then
    why="${why:+$why; }exit status $status"
  fi
  if grep -E "$crash" "$err" >/dev/null 2>&1; then
    why="${why:+$why; }crash text on standard error"
  fi
}

found=0
for input in tests/e2e/*.ndjson; do
  [ -f "$input" ] || continue
  found=1
  name=$(basename "$input" .ndjson)
  if [ ! -f "tests/e2e/$name.expected" ]; then
    echo "FAIL $name: no tests/e2e/$name.expected"
    failed=$((failed + 1))
    continue
  fi
  for mode in file pipe; do
    run_one "$name" "$mode"
    if [ -z "$why" ]; then
      echo "PASS $name ($mode)"
      passed=$((passed + 1))
    else
      echo "FAIL $name ($mode): $why"
      if [ -s "$tmp/$name.$mode.diff" ]; then
        sed 's/^/    /' "$tmp/$name.$mode.diff"
      fi
      if [ -s "$tmp/$name.$mode.err" ]; then
        echo "    standard error:"
        sed 's/^/    | /' "$tmp/$name.$mode.err"
      fi
      failed=$((failed + 1))
    fi
  done
done

# Standard streams that do not work: a clear error and exit status 1, never
# a crash (a closed descriptor was once taken by the event loop's own).
# check_cli NAME EXPECTED-STATUS STDERR-PATTERN COMMAND...: runs COMMAND
# through sh (for its redirections) and checks the status and stderr.
check_cli() {
  name=$1
  want=$2
  pattern=$3
  shift 3
  IXR_LUA_DIR=lua sh -c "$*" 2>"$tmp/cli.err"
  status=$?
  if [ "$status" -eq "$want" ] &&
    { [ -z "$pattern" ] || grep -E "$pattern" "$tmp/cli.err" >/dev/null; } &&
    ! grep -E "$crash" "$tmp/cli.err" >/dev/null; then
    echo "PASS $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name: exit status $status (expected $want), standard error:"
    sed 's/^/    | /' "$tmp/cli.err"
    failed=$((failed + 1))
  fi
}
run="'$ixr' run --handlers tests/e2e/handlers --clock manual"
check_cli closed_stdout 1 'standard output is closed' "$run <tests/e2e/basic.ndjson >&-"
check_cli closed_stdin 1 'standard input is closed' "$run <&- >/dev/null"
check_cli closed_stderr 0 '' "$run <tests/e2e/basic.ndjson >/dev/null 2>&-"
check_cli test_closed_stdout 1 'cannot write the report' "'$ixr' test tests/tooling/pass >&-"
check_cli check_closed_stdin 0 '' "'$ixr' check --handlers handlers <&-"
if [ -w /dev/full ]; then
  check_cli full_stdout 1 'write failed' "$run <tests/e2e/basic.ndjson >/dev/full"
fi
# Standard error shares a pipe with standard output (2>&1), which libuv
# makes non-blocking: every log line still arrives though the reader is
# slow, and the pipe is blocking again for whoever writes after ixr.
IXR_LUA_DIR=lua "$ixr" run --handlers tests/e2e/handlers --clock manual --trace \
  <tests/e2e/basic.ndjson >"$tmp/trace.out" 2>&1
want=$(($(wc -c <"$tmp/trace.out") + 300000))
got=$( (IXR_LUA_DIR=lua "$ixr" run --handlers tests/e2e/handlers --clock manual --trace \
  <tests/e2e/basic.ndjson 2>&1; head -c 300000 /dev/zero 2>/dev/null) | (sleep 1; wc -c))
if [ "$got" -eq "$want" ]; then
  echo "PASS shared_pipe ($got bytes)"
  passed=$((passed + 1))
else
  echo "FAIL shared_pipe: $got bytes through a slow reader, expected $want"
  failed=$((failed + 1))
fi

# A timer re-arming itself with session:after(0) must leave the loop free
# for input (it once held it: no input, no SIGTERM, memory growing).
out=$( (echo '{"name":"interaction.present","data":{"interactionid":"T","strategy":"tick"}}'
  sleep 0.3
  echo '{"name":"interaction.stop","data":{"interactionid":"T"}}') |
  IXR_LUA_DIR=lua timeout 20 "$ixr" run --handlers tests/e2e/handlers 2>/dev/null)
if echo "$out" | grep -q '"ticked".*"some":true'; then
  echo "PASS timer_chain"
  passed=$((passed + 1))
else
  echo "FAIL timer_chain: the stop event was not handled; output:"
  echo "$out" | sed 's/^/    | /'
  failed=$((failed + 1))
fi

# expect NAME WANT GOT: passes when GOT matches the extended regex WANT.
expect() {
  if printf '%s\n' "$3" | grep -E "$2" >/dev/null; then
    echo "PASS $1"
    passed=$((passed + 1))
  else
    echo "FAIL $1: expected /$2/, got:"
    printf '%s\n' "$3" | sed 's/^/    | /'
    failed=$((failed + 1))
  fi
}

# ixr version: the program's name and version, exit 0.
expect version '^ixr [0-9]+\.[0-9]+\.[0-9]+$' "$("$ixr" version 2>&1; echo "status $?")"
expect version_status '^status 0$' "$("$ixr" version >/dev/null 2>&1; echo "status $?")"

# At the end of its input, ixr run exits 0 without waiting for the timers of
# live sessions (a 30 s route timeout here, on the real clock).
start=$(date +%s)
out=$(echo '{"name":"interaction.present","data":{"interactionid":"L1"}}' |
  IXR_LUA_DIR=lua timeout 20 "$ixr" run --handlers tests/e2e/handlers 2>/dev/null
  echo "status $?")
expect eof_real_clock '"action":"route".*status 0$' "$(printf '%s' "$out" | tr '\n' ' ')"
expect eof_no_wait '^[0-9]$' "$(($(date +%s) - start))"

# --handlers defaults to ./handlers: the bundled strategies, from the root.
out=$(echo '{"name":"interaction.present","data":{"interactionid":"D1"}}' |
  IXR_LUA_DIR=lua "$ixr" run --clock manual 2>/dev/null)
expect handlers_default '"action":"route".*"target":"AgentGroup:General"' "$out"

# A strategy file added after the strategies were loaded is not in service
# until a reload, and the error says so (not "looked for", as if missing).
mkdir "$tmp/late"
cp tests/e2e/handlers/default.lua "$tmp/late/"
out=$( (echo '{"name":"interaction.present","data":{"interactionid":"N1"}}'
  sleep 0.5
  cp tests/e2e/handlers/default.lua "$tmp/late/fresh.lua"
  echo '{"name":"interaction.present","data":{"interactionid":"N2","strategy":"fresh"}}') |
  IXR_LUA_DIR=lua "$ixr" run --handlers "$tmp/late" --clock manual 2>/dev/null)
expect added_after_load "strategy_not_found.*no strategy 'fresh' in service: .*/late/fresh.lua is not among the strategies in service \\(added since they were loaded" "$out"

# A .lua file whose name cannot be a strategy's is not loaded, and ixr check
# says so on standard error (a warning: exit 0 when nothing else is wrong).
cp tests/e2e/handlers/default.lua "$tmp/late/new route.lua"
out=$(IXR_LUA_DIR=lua "$ixr" check --handlers "$tmp/late" 2>&1; echo "status $?")
expect check_bad_name "new route.lua: warning: not loaded: a strategy's name is.*status 0$" "$(printf '%s' "$out" | tr '\n' ' ')"

if [ "$found" -eq 0 ]; then
  echo "no tests/e2e/*.ndjson cases found in $src"
  failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
