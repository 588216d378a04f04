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
trap 'kill "$PID" 2>/dev/null; rm -rf "$T"' EXIT
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

present
if wait_for '"I1"' '"n":1'; then ok "generation 1 serves"; else ko "generation 1 serves"; fi

sleep 0.3 # the watcher is set up before stdin is read, but be gentle
strategy 2
sleep 1   # the debounce (200 ms) and the reload
present
if wait_for '"I2"' '"n":2'; then ok "--watch reloads a changed file"; else ko "--watch reloads a changed file"; fi

printf 'return { start = function( }\n' > "$T/h/default.lua"
sleep 1
present
if wait_for '"I3"' '"n":2'; then ok "a broken write is rejected, the old code serves"; else ko "a broken write is rejected, the old code serves"; fi
if grep -q "reload rejected" "$T/log" && grep -q "default.lua:1:" "$T/log"; then
  ok "the rejection names FILE:LINE in the log"
else
  ko "the rejection names FILE:LINE in the log"
fi

strategy 3
kill -HUP "$PID"
sleep 0.5
present
if wait_for '"I4"' '"n":3'; then ok "SIGHUP reloads"; else ko "SIGHUP reloads"; fi

printf '{"name":"ixr.reload","id":"x1"}\n{"name":"ixr.status"}\n' >&3
if wait_for '"name":"ixr.reload"' '"ok":true'; then ok "ixr.reload replies"; else ko "ixr.reload replies"; fi
if wait_for '"name":"ixr.status"' '"generation":'; then ok "ixr.status replies"; else ko "ixr.status replies"; fi

exec 3>&-
wait "$PID"
rc=$?
if [ $rc -eq 0 ]; then ok "exits 0 at the end of input"; else ko "exits 0 at the end of input (got $rc)"; fi
[ $fail -eq 0 ] || { echo "--- output"; cat "$T/out"; echo "--- log"; cat "$T/log"; }
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
