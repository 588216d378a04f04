#!/bin/sh
# tests/e2e/cli_reload.sh IXR SRC: hot reload through the ixr command:
# --watch picks up a changed file, a broken write is rejected and the old
# code keeps serving, SIGHUP reloads, and ixr.reload / ixr.status answer on
# the stream. Prints 'N passed, N failed'.
set -u
IXR=$1
SRC=$2
export IXR_LUA_DIR="$SRC/lua"
T=$(mktemp -d /tmp/ixr-cli-reload.XXXXXX)
trap 'kill "$PID" 2>/dev/null; kill "${PID3:-}" 2>/dev/null; rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "PASS $1"; }
ko() { fail=$((fail + 1)); echo "FAIL $1"; }

strategy() { # version
  cat > "$T/h/default.lua" <<LUA
return { defaults = 'none', start = function(s, e) s:action('v', { n = $1 }) end }
LUA
}
mkdir "$T/h"
strategy 1
mkfifo "$T/in"
"$IXR" run --handlers "$T/h" --watch < "$T/in" > "$T/out" 2> "$T/log" &
PID=$!
exec 3> "$T/in"
n=0
present() { n=$((n + 1)); printf '{"name":"interaction.present","data":{"interactionid":"I%d"}}\n' "$n" >&3; }
# waits until the output has a line with all the given fragments
wait_for() {
  i=0
  while [ $i -lt 50 ]; do
    if grep -F -- "$1" "$T/out" | grep -qF -- "${2:-$1}"; then return 0; fi
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}

# sends presents until one is answered by version $1 (a reload takes the
# debounce and a busy machine may take longer still), up to ~10 s
serves() {
  k=0
  while [ $k -lt 40 ]; do
    present
    if wait_for "\"I$n\"" '"action":"v"' && grep -F "\"I$n\"" "$T/out" | grep -qF "\"n\":$1}"; then
      return 0
    fi
    sleep 0.25
    k=$((k + 1))
  done
  return 1
}

if serves 1; then ok "generation 1 serves"; else ko "generation 1 serves"; fi

strategy 2
if serves 2; then ok "--watch reloads a changed file"; else ko "--watch reloads a changed file"; fi

printf 'return { start = function( }\n' > "$T/h/default.lua"
i=0
while [ $i -lt 50 ] && ! grep -q "reload rejected" "$T/log"; do sleep 0.2; i=$((i + 1)); done
present
if wait_for "\"I$n\"" '"n":2'; then ok "a broken write is rejected, the old code serves"; else ko "a broken write is rejected, the old code serves"; fi
if grep -q "reload rejected" "$T/log" && grep -q "default.lua:1:" "$T/log"; then
  ok "the rejection names FILE:LINE in the log"
else
  ko "the rejection names FILE:LINE in the log"
fi

# SIGHUP with no file changed (so the watcher has nothing to do): one more
# reload in the log, of the same (rejected) files
before=$(grep -c "reload" "$T/log")
kill -HUP "$PID"
i=0
while [ $i -lt 50 ] && [ "$(grep -c "reload" "$T/log")" -le "$before" ]; do sleep 0.2; i=$((i + 1)); done
if [ "$(grep -c "reload" "$T/log")" -gt "$before" ]; then ok "SIGHUP reloads"; else ko "SIGHUP reloads"; fi
strategy 3
if serves 3; then ok "a fixed file is picked up again"; else ko "a fixed file is picked up again"; fi

printf '{"name":"ixr.reload","id":"x1"}\n{"name":"ixr.status"}\n' >&3
if wait_for '"name":"ixr.reload"' '"ok":true'; then ok "ixr.reload replies"; else ko "ixr.reload replies"; fi
if wait_for '"name":"ixr.status"' '"generation":'; then ok "ixr.status replies"; else ko "ixr.status replies"; fi

exec 3>&-
wait "$PID"
rc=$?
if [ $rc -eq 0 ]; then ok "exits 0 at the end of input"; else ko "exits 0 at the end of input (got $rc)"; fi
# A SIGHUP while ixr starts (here: while a strategy takes a moment to load)
# is handled once it runs; its default action used to kill the process.
mkdir "$T/slow"
cat > "$T/slow/default.lua" <<'LUA'
local big = string.rep("x", 300000000)
assert(not big:find("y", 1, true))
big = nil
return { defaults = 'none', start = function(s, e) s:action('v', { n = 9 }) end }
LUA
mkfifo "$T/in2"
trap '' PIPE # a write to the fifo of a killed ixr must fail, not kill this script
"$IXR" run --handlers "$T/slow" < "$T/in2" > "$T/out2" 2> "$T/log2" &
PID2=$!
exec 4> "$T/in2"
# Once ixr catches SIGHUP (its bit, the lowest, in SigCgt): a signal sent
# before the program runs at all (a slow start under a sanitizer) can be
# handled by nobody. The strategy then still takes a while to load.
catches_hup() {
  cgt=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null)
  case $cgt in *[13579bdfBDF]) return 0 ;; *) return 1 ;; esac
}
i=0
while ! catches_hup "$PID2" && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
kill -HUP "$PID2" 2>/dev/null
sleep 0.05
kill -HUP "$PID2" 2>/dev/null
printf '{"name":"interaction.present","data":{"interactionid":"S1"}}\n' >&4 2>/dev/null
exec 4>&-
wait "$PID2"
rc=$?
if [ $rc -eq 0 ] && grep -q '"n":9' "$T/out2"; then
  ok "SIGHUP during the start does not kill ixr"
else
  ko "SIGHUP during the start does not kill ixr (exit $rc)"
  cat "$T/log2"
fi

# A reload by SIGHUP is no input line: the record notes where it put a new
# generation in service, and a replay says it cannot redo it (it used to
# replay everything on the final files without a word).
mkdir "$T/hr"
printf "return { defaults = 'none', start = function(s, e) s:action('v', { n = 1 }) end }\n" > "$T/hr/default.lua"
mkfifo "$T/in3"
"$IXR" run --handlers "$T/hr" --record "$T/r.rec" < "$T/in3" > "$T/out3" 2> "$T/log3" &
PID3=$!
exec 5> "$T/in3"
printf '{"name":"interaction.present","data":{"interactionid":"R1"}}\n' >&5
i=0
while [ $i -lt 50 ] && ! grep -q '"R1"' "$T/out3"; do sleep 0.1; i=$((i + 1)); done
printf "return { defaults = 'none', start = function(s, e) s:action('v', { n = 2 }) end }\n" > "$T/hr/default.lua"
kill -HUP "$PID3"
i=0
while [ $i -lt 50 ] && ! grep -q 'generation 2 in service' "$T/log3"; do sleep 0.1; i=$((i + 1)); done
printf '{"name":"interaction.present","data":{"interactionid":"R2"}}\n' >&5
printf '{"name":"ixr.reload"}\n' >&5
printf '{"name":"interaction.present","data":{"interactionid":"R3"}}\n' >&5
exec 5>&-
wait "$PID3"
if [ "$(grep -c '"reloaded":2' "$T/r.rec")" -eq 1 ] && [ "$(grep -c '"reloaded"' "$T/r.rec")" -eq 1 ]; then
  ok "the record notes a reload by SIGHUP, and not one by an ixr.reload line"
else
  ko "the record notes a reload by SIGHUP, and not one by an ixr.reload line"
  cat "$T/r.rec"
fi
"$IXR" replay --handlers "$T/hr" --to-scenario "$T/r.scenario" "$T/r.rec" > "$T/out4" 2> "$T/log4"
if grep -q 'reloaded its strategies 1 time by SIGHUP, --watch or the control socket, first at' "$T/log4" &&
   grep -q '^# The recorded run reloaded its strategies here' "$T/r.scenario" &&
   [ "$(grep -c '"type":"action"' "$T/out4")" -eq 3 ]; then
  ok "a replay says it cannot redo a reload that was no input line"
else
  ko "a replay says it cannot redo a reload that was no input line"
  cat "$T/log4"
fi

[ $fail -eq 0 ] || { echo "--- output"; cat "$T/out"; echo "--- log"; cat "$T/log"; }
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
