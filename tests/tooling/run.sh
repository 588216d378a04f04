#!/bin/sh
# tests/tooling/run.sh IXR SRC: tests of the strategy author tooling through
# the ixr program: ixr test (scenarios that must pass, and scenarios that
# must fail with a given report), ixr run --record, ixr replay (to the same
# output, and into a scenario that passes) and --trace.
# Prints "ok"/"not ok" per check and closes with "N passed, N failed".
set -u
IXR=${1:?usage: run.sh IXR SRC}
SRC=${2:?usage: run.sh IXR SRC}
T=$SRC/tests/tooling
# The standard library (and types.lua) of this source tree.
IXR_LUA_DIR=$SRC/lua
export IXR_LUA_DIR
W=$(mktemp -d "${TMPDIR:-/tmp}/ixr-tooling.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT INT TERM
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok - $1"; }
# not_ok DESCRIPTION [FILE...]: the files are shown, indented, to explain.
not_ok() {
  failed=$((failed + 1))
  echo "not ok - $1"
  shift
  for f in "$@"; do
    [ -f "$f" ] && { echo "  --- $(basename "$f")"; sed 's/^/  | /' "$f" | head -40; }
  done
}

# has FILE TEXT: FILE contains TEXT as a fixed string.
has() { LC_ALL=C grep -aqF -- "$2" "$1"; }

# ---- ixr test: scenarios that must pass ---------------------------------

"$IXR" test "$T/pass/" > "$W/pass.out" 2> "$W/pass.err"
rc=$?
npass=$(ls "$T"/pass/*.scenario | wc -l | tr -d ' ')
# (a directory given with its slash: its files are named without a double one)
if [ $rc -eq 0 ] && has "$W/pass.out" "$npass passed, 0 failed" &&
   has "$W/pass.out" "PASS $T/pass/timers.scenario" && ! has "$W/pass.out" "//"; then
  ok "ixr test: the $npass scenarios of tests/tooling/pass pass"
else
  not_ok "ixr test tests/tooling/pass (exit $rc)" "$W/pass.out" "$W/pass.err"
fi

# The bundled strategies' scenarios, from another directory: each scenario
# names its handlers relative to itself.
(cd "$W" && "$IXR" test "$SRC/tests/scenarios") > "$W/bundled.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q '^[1-9][0-9]* passed, 0 failed$' "$W/bundled.out"; then
  ok "ixr test: tests/scenarios pass when run from another directory"
else
  not_ok "ixr test tests/scenarios from another directory (exit $rc)" "$W/bundled.out"
fi

# ---- ixr test: scenarios that must fail, with the report they must give --

for f in "$T"/fail/*.scenario; do
  name=$(basename "$f")
  "$IXR" test "$f" > "$W/fail.out" 2> "$W/fail.err"
  rc=$?
  missing=""
  # Each "# want: TEXT" line must appear in the report (@FILE: the path).
  while IFS= read -r want; do
    text=$(printf '%s\n' "$want" | sed "s|^# want: ||; s|@FILE|$f|")
    has "$W/fail.out" "$text" || missing="$missing
  wanted: $text"
  done <<EOF
$(grep '^# want: ' "$f")
EOF
  if [ $rc -ne 1 ]; then
    not_ok "$name must fail with exit status 1 (got $rc)" "$W/fail.out" "$W/fail.err"
  elif ! has "$W/fail.out" "0 passed, 1 failed"; then
    not_ok "$name: no '0 passed, 1 failed' summary" "$W/fail.out"
  elif [ -n "$missing" ]; then
    not_ok "$name: the report lacks:$missing" "$W/fail.out"
  else
    ok "$name fails with the expected report"
  fi
done

# A mix of passing and failing files: every file runs, the summary counts
# both, and the exit status is 1.
"$IXR" test "$T/pass" "$T/fail/wrong_action.scenario" "$T/fail/missing_line.scenario" \
  > "$W/mix.out" 2>&1
rc=$?
if [ $rc -eq 1 ] && [ "$(tail -n 1 "$W/mix.out")" = "$npass passed, 2 failed" ]; then
  ok "ixr test: passing and failing files together: '$npass passed, 2 failed', exit 1"
else
  not_ok "ixr test with passing and failing files (exit $rc)" "$W/mix.out"
fi

"$IXR" test "$W/no-such.scenario" > "$W/nofile.out" 2>&1
rc=$?
if [ $rc -eq 1 ] && has "$W/nofile.out" "FAIL $W/no-such.scenario: cannot read"; then
  ok "ixr test: a file that does not exist fails"
else
  not_ok "ixr test on a missing file (exit $rc)" "$W/nofile.out"
fi

"$IXR" test > /dev/null 2>&1
rc1=$?
"$IXR" test --bogus "$T/pass" > /dev/null 2>&1
rc2=$?
mkdir "$W/empty"
"$IXR" test "$W/empty" > /dev/null 2> "$W/empty.err"
rc3=$?
if [ $rc1 -eq 2 ] && [ $rc2 -eq 2 ] && [ $rc3 -eq 1 ] && has "$W/empty.err" "no *.scenario file"; then
  ok "ixr test: usage errors exit 2; a directory without scenarios exits 1"
else
  not_ok "ixr test usage errors (exit $rc1, $rc2, $rc3)" "$W/empty.err"
fi

# ---- record and replay: generated traffic --------------------------------

# Deterministic traffic for handlers/ (default and chat): one interaction
# after another so that request ids are known, through every kind of path:
# routed, failed and queued, timed out, switched over, requeue timeout,
# deleted, chat with messages, and bad input (not JSON, invalid UTF-8,
# unknown interaction, no name).
gen_traffic() {
  awk -v n="$1" -v clock="$2" 'BEGIN {
    seed = 4242; req = 0
    for (i = 1; i <= n; i++) {
      seed = (seed * 69069 + 1) % 4294967296
      p = int(seed / 65536) % 8
      id = "G" i
      pre = "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"" id "\""
      if (p == 0) {
        print pre ",\"media\":\"chat\",\"queue\":\"q" (i % 3) "\"}}"; req++
        print "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"" id "\",\"requestid\":\"r" req "\"}}"
      } else if (p == 1) {
        print pre ",\"media\":\"email\",\"queue\":\"mail\"}}"; req++
        print "{\"name\":\"error.interaction.route\",\"data\":{\"interactionid\":\"" id "\",\"requestid\":\"r" req "\",\"error\":\"no_agents\"}}"; req++
        print "{\"name\":\"interaction.queue.done\",\"data\":{\"interactionid\":\"" id "\",\"requestid\":\"r" req "\"}}"
      } else if (p == 2) {
        print pre ",\"media\":\"chat\"}}"; req++
        print "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"" id "\",\"resultof\":\"revoking\"}}"
        print pre ",\"media\":\"chat\"}}"; req++
        print "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"" id "\",\"requestid\":\"r" req "\"}}"
      } else if (p == 3) {
        print pre ",\"media\":\"sms\"}}"; req++
        print "{\"name\":\"interaction.deleted\",\"data\":{\"interactionid\":\"" id "\"}}"
      } else if (p == 4) {
        print pre ",\"strategy\":\"chat\",\"userdata\":{\"Language\":\"" (i % 2 ? "fr" : "xx") "\",\"Segment\":\"" (i % 5 ? "std" : "gold") "\"}}}"; req++
        print "{\"name\":\"interaction.message\",\"data\":{\"interactionid\":\"" id "\",\"text\":\"h\\u00e9llo \\\"" i "\\\"\"}}"
        print "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"" id "\",\"resultof\":\"routing\"}}"
        print "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"" id "\",\"requestid\":\"r" req "\"}}"
      } else if (p == 5 && clock == "manual") {
        print pre ",\"media\":\"voice\"}}"; req++
        print "{\"name\":\"clock.advance\",\"data\":{\"ms\":30000}}"; req++
        print "{\"name\":\"interaction.queue.done\",\"data\":{\"interactionid\":\"" id "\",\"requestid\":\"r" req "\"}}"
      } else if (p == 6 && clock == "manual") {
        print pre ",\"media\":\"chat\"}}"; req++
        print "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"" id "\"}}"
        print "{\"name\":\"clock.advance\",\"data\":{\"ms\":300000}}"
      } else {
        print "not json at all " i
        printf "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"bad\377\376%d\"}}\n", i
        print "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"nobody" i "\",\"requestid\":\"r1\"}}"
        print "{\"data\":{\"interactionid\":\"" id "\"},\"id\":" i "}"
      }
    }
  }'
}

gen_traffic 300 manual > "$W/traffic.ndjson"
"$IXR" run --clock manual --handlers "$SRC/handlers" --record "$W/rec.ndjson" \
  < "$W/traffic.ndjson" > "$W/run.out" 2> "$W/run.err"
rc=$?
lines=$(wc -l < "$W/traffic.ndjson" | tr -d ' ')
records=$(($(wc -l < "$W/rec.ndjson") - 1))
if [ $rc -eq 0 ] && [ "$records" -eq "$lines" ] &&
   [ "$(head -n 1 "$W/rec.ndjson")" = '{"record":"ixr","version":1,"clock":"manual","max_line":1048576,"start_time_ms":0}' ] &&
   has "$W/run.out" '"error":"bad_json"' && has "$W/run.out" '"reason":"requeue_timeout"' &&
   has "$W/run.out" '"state":"resumed"' && has "$W/rec.ndjson" '"base64":"'; then
  ok "ixr run --record: $lines lines of generated traffic, one record each (base64 for invalid UTF-8)"
else
  not_ok "ixr run --record (exit $rc, $records records for $lines lines)" "$W/run.err"
fi

"$IXR" replay --handlers "$SRC/handlers" "$W/rec.ndjson" > "$W/replay.out" 2> "$W/replay.err"
rc=$?
if [ $rc -eq 0 ] && [ -s "$W/run.out" ] && cmp -s "$W/run.out" "$W/replay.out" &&
   ! has "$W/replay.err" "diverged"; then
  ok "ixr replay: the recorded run replays to the same $(wc -l < "$W/run.out" | tr -d ' ') output lines, byte for byte"
else
  diff "$W/run.out" "$W/replay.out" > "$W/replay.diff" 2>&1
  not_ok "ixr replay gives another output (exit $rc)" "$W/replay.diff" "$W/replay.err"
fi

# Exact bytes: every traffic line that is a plain event comes back out of
# the record, as a bare event line of the scenario, unchanged.
mkdir "$W/scen"
"$IXR" replay --handlers "$SRC/handlers" --to-scenario "$W/scen/replayed.scenario" \
  "$W/rec.ndjson" > /dev/null 2> "$W/to.err"
rc=$?
LC_ALL=C grep -a '^{"name"' "$W/traffic.ndjson" | LC_ALL=C grep -av "$(printf '\377')" > "$W/events.a"
grep '^{"name"' "$W/scen/replayed.scenario" > "$W/events.b"
if [ $rc -eq 0 ] && [ "$(wc -l < "$W/events.a")" -gt 500 ] && cmp -s "$W/events.a" "$W/events.b" && has "$W/scen/replayed.scenario" '{"send_raw":"not json at all 1' &&
   has "$W/scen/replayed.scenario" '{"send_base64":"' && has "$W/to.err" "wrote $W/scen/replayed.scenario"; then
  ok "ixr replay --to-scenario: inputs kept byte for byte (bare events, send_raw, send_base64)"
else
  not_ok "ixr replay --to-scenario (exit $rc)" "$W/to.err"
fi

(cd / && "$IXR" test "$W/scen/replayed.scenario") > "$W/to.test" 2>&1
rc=$?
if [ $rc -eq 0 ] && has "$W/to.test" "1 passed, 0 failed"; then
  ok "the replay converted to a scenario passes ixr test (from any directory)"
else
  not_ok "the converted scenario fails (exit $rc)" "$W/to.test"
fi

# The same with the real clock (no clock.advance in the traffic then).
gen_traffic 200 real > "$W/traffic-real.ndjson"
"$IXR" run --handlers "$SRC/handlers" --record "$W/rec-real.ndjson" \
  < "$W/traffic-real.ndjson" > "$W/run-real.out" 2> /dev/null
rc=$?
"$IXR" replay --handlers "$SRC/handlers" "$W/rec-real.ndjson" > "$W/replay-real.out" 2> "$W/replay-real.err"
rc2=$?
if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] && cmp -s "$W/run-real.out" "$W/replay-real.out" &&
   head -n 1 "$W/rec-real.ndjson" | grep -qE '^\{"record":"ixr","version":1,"clock":"real","max_line":1048576,"start_time_ms":1[0-9]{12}\}$'; then
  ok "real clock: generated traffic recorded and replayed to the same output"
else
  diff "$W/run-real.out" "$W/replay-real.out" > "$W/real.diff" 2>&1
  not_ok "real clock record and replay (exit $rc, $rc2)" "$W/real.diff" "$W/replay-real.err"
fi

# Real time passing between events: timers fire during the run (200 ms
# route timeout), and the replay fires them at the same places without
# waiting, by following the recorded times.
{
  echo '{"name":"interaction.present","data":{"interactionid":"R1"}}'
  echo '{"name":"interaction.present","data":{"interactionid":"R2"}}'
  echo '{"name":"interaction.route.done","data":{"interactionid":"R2","requestid":"r2"}}'
  sleep 1
  echo '{"name":"interaction.present","data":{"interactionid":"R3"}}'
  echo '{"name":"test.boom","data":{"interactionid":"R3","why":"x"}}'
} | "$IXR" run --handlers "$T/handlers" --record "$W/rec-time.ndjson" > "$W/run-time.out" 2> /dev/null
rc=$?
start=$(date +%s)
"$IXR" replay --handlers "$T/handlers" --to-scenario "$W/scen/timed.scenario" \
  "$W/rec-time.ndjson" > "$W/replay-time.out" 2> "$W/replay-time.err"
rc2=$?
took=$(($(date +%s) - start))
if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] && cmp -s "$W/run-time.out" "$W/replay-time.out" &&
   has "$W/run-time.out" '"action":"queue","session":"s1"' &&
   has "$W/run-time.out" '"error":"handler_error"' &&
   grep -q '^{"advance":[1-9][0-9][0-9]' "$W/scen/timed.scenario" && [ "$took" -le 1 ]; then
  ok "real time: timers that fired between events replay the same, without waiting (${took}s)"
else
  diff "$W/run-time.out" "$W/replay-time.out" > "$W/time.diff" 2>&1
  not_ok "real-time record and replay (exit $rc, $rc2, ${took}s)" "$W/time.diff" "$W/replay-time.err" "$W/rec-time.ndjson"
fi
"$IXR" test "$W/scen/timed.scenario" > "$W/timed.test" 2>&1
rc=$?
if [ $rc -eq 0 ] && has "$W/timed.test" "1 passed, 0 failed"; then
  ok "the real-time replay as a scenario passes (advances in place of waiting)"
else
  not_ok "the real-time scenario fails (exit $rc)" "$W/timed.test" "$W/scen/timed.scenario"
fi

# A record that does not match the runtime clock is reported.
cat > "$W/skewed.ndjson" <<'EOF'
{"record":"ixr","version":1,"clock":"manual"}
{"t":0,"line":"{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"S\"}}"}
{"t":5000,"line":"{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"S\",\"requestid\":\"r1\"}}"}
EOF
"$IXR" replay --handlers "$T/handlers" "$W/skewed.ndjson" > /dev/null 2> "$W/skewed.err"
rc=$?
if [ $rc -eq 0 ] && has "$W/skewed.err" "skewed.ndjson:3 was recorded at 5000 ms but replayed at 0 ms"; then
  ok "ixr replay warns where the clock diverged from the recording"
else
  not_ok "ixr replay divergence warning (exit $rc)" "$W/skewed.err"
fi

printf '{"t":0,"line":"{}"}\n{"t":-1,"line":"x"}\n' > "$W/broken.ndjson"
"$IXR" replay --handlers "$T/handlers" "$W/broken.ndjson" > /dev/null 2> "$W/broken.err"
rc=$?
"$IXR" run --record "$W/no/such/dir/rec" < /dev/null > /dev/null 2> "$W/norec.err"
rc2=$?
printf '{"name":"interaction.present","data":{"interactionid":"E1"}}\n' > "$W/events.ndjson"
"$IXR" replay --handlers "$T/handlers" "$W/events.ndjson" > /dev/null 2> "$W/events.err"
rc3=$?
if [ $rc -eq 1 ] && has "$W/broken.err" "broken.ndjson:2: a record line needs \"t\"" &&
   [ $rc2 -eq 1 ] && has "$W/norec.err" "--record $W/no/such/dir/rec: No such file" &&
   [ $rc3 -eq 1 ] && has "$W/events.err" "events.ndjson:1: an event, not a record line: this looks like an events file"; then
  ok "a malformed record and an unwritable --record file are errors, with the place"
else
  not_ok "record errors (exit $rc, $rc2)" "$W/broken.err" "$W/norec.err"
fi

# ixr check: warnings (what loads but looks misspelt) go to standard error
# and leave the exit status 0; standard output has the problems only.
mkdir -p "$W/warn"
printf 'return { defualts = "legacy", start = function() end }\n' > "$W/warn/default.lua"
"$IXR" check --handlers "$W/warn" > "$W/warn.out" 2> "$W/warn.err"
rc=$?
# A problem whose text reads like a warning, in a directory whose name has
# a colon, is still a problem (standard output, exit 1).
mkdir -p "$W/warn:2"
printf 'error("warning: not really")\nreturn {}\n' > "$W/warn:2/w.lua"
cp "$W/warn/default.lua" "$W/warn:2/default.lua"
"$IXR" check --handlers "$W/warn:2" > "$W/warn2.out" 2> "$W/warn2.err"
rc2=$?
if [ $rc -eq 0 ] && [ ! -s "$W/warn.out" ] &&
   has "$W/warn.err" "default.lua:1: warning: field 'defualts' is no field of a strategy: did you mean 'defaults'?" &&
   [ $rc2 -eq 1 ] && has "$W/warn2.out" "w.lua:1: warning: not really" &&
   ! has "$W/warn2.out" "defualts" && has "$W/warn2.err" "defualts"; then
  ok "ixr check: a near-miss field is a warning on standard error, exit 0; problems stay on standard output"
else
  not_ok "ixr check warnings (exit $rc, $rc2)" "$W/warn.out" "$W/warn.err" "$W/warn2.out" "$W/warn2.err"
fi

# ---- trace -----------------------------------------------------------------

head -n 40 "$W/traffic.ndjson" | LC_ALL=C grep -av "$(printf '\377')" > "$W/trace-in.ndjson"
"$IXR" run --clock manual --handlers "$SRC/handlers" < "$W/trace-in.ndjson" > "$W/plain.out" 2> /dev/null
"$IXR" run --clock manual --handlers "$SRC/handlers" --trace < "$W/trace-in.ndjson" \
  > "$W/trace.out" 2> "$W/trace.err"
rc=$?
if [ $rc -eq 0 ] && cmp -s "$W/plain.out" "$W/trace.out" &&
   has "$W/trace.err" "in line 1: interaction.present G1" &&
   has "$W/trace.err" "s1 G1 -> new session, flow start $SRC/handlers/default.lua:" &&
   has "$W/trace.err" "-> the flow, waiting in request" &&
   has "$W/trace.err" "-> standard handler " &&
   has "$W/trace.err" "/ixr/multimedia.lua:" &&
   grep -q "interaction.message -> strategy's own handler $SRC/handlers/chat.lua:[0-9]" "$W/trace.err" &&
   has "$W/trace.err" '  out {"type":"session","state":"suspended"' &&
   has "$W/trace.err" '  out {"type":"action","action":"route"'; then
  ok "ixr run --trace: event in, session, handler (standard or own, FILE:LINE), output, on stderr only"
else
  not_ok "ixr run --trace (exit $rc)" "$W/trace.err"
fi

"$IXR" test --trace "$T/pass/timers.scenario" > "$W/ttrace.out" 2> "$W/ttrace.err"
rc=$?
if [ $rc -eq 0 ] && has "$W/ttrace.err" "in line 5: interaction.present T1" &&
   has "$W/ttrace.err" "test: line 10: advance 1000 ms" &&
   has "$W/ttrace.err" "timer at 100 ms: s1 session:after" &&
   has "$W/ttrace.err" "test: line 13: expect matched output #3" &&
   ! grep -q "^in line\|^test:" "$W/ttrace.out"; then
  ok "ixr test --trace: runtime steps with the scenario's line numbers, on stderr"
else
  not_ok "ixr test --trace (exit $rc)" "$W/ttrace.err" "$W/ttrace.out"
fi

# ---- hostile files and paths ----------------------------------------------

# A symbolic link back up the tree: each scenario runs once.
mkdir -p "$W/loop/sub"
cp "$T/pass/$(ls "$T/pass" | head -n 1)" "$W/loop/sub/one.scenario"
sed -i "s|\"handlers\": *\"[^\"]*\"|\"handlers\": \"$T/handlers\"|" "$W/loop/sub/one.scenario"
ln -s .. "$W/loop/sub/up"
"$IXR" test "$W/loop" > "$W/loop.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && [ "$(tail -n 1 "$W/loop.out")" = "1 passed, 0 failed" ]; then
  ok "ixr test: a directory with a link back to its parent runs each file once"
else
  not_ok "ixr test through a symlink loop (exit $rc)" "$W/loop.out"
fi

# The report cannot be written: exit 1.
if [ -w /dev/full ]; then
  "$IXR" test "$T/pass" > /dev/full 2> "$W/full.err"
  rc=$?
  if [ $rc -eq 1 ] && has "$W/full.err" "cannot write the report"; then
    ok "ixr test > /dev/full exits 1"
  else
    not_ok "ixr test > /dev/full (exit $rc)" "$W/full.err"
  fi
fi

# Records: --to-scenario onto the record itself is refused (the record
# stays whole); a header after a blank line is still the header; a line
# holding a newline is refused.
printf '{"name":"interaction.present","data":{"interactionid":"H1"}}\n' |
  "$IXR" run --handlers "$T/handlers" --record "$W/self.rec" > /dev/null 2>&1
cp "$W/self.rec" "$W/self.orig"
"$IXR" replay --handlers "$T/handlers" --to-scenario "$W/self.rec" "$W/self.rec" \
  > /dev/null 2> "$W/self.err"
rc=$?
if [ $rc -eq 1 ] && cmp -s "$W/self.rec" "$W/self.orig" && has "$W/self.err" "is the record itself"; then
  ok "ixr replay --to-scenario onto its own record: refused, record intact"
else
  not_ok "ixr replay --to-scenario onto its record (exit $rc)" "$W/self.err"
fi
# nor onto a record named like its temporary file
cp "$W/self.orig" "$W/sc.partial"
"$IXR" replay --handlers "$T/handlers" --to-scenario "$W/sc" "$W/sc.partial" \
  > /dev/null 2> "$W/partial.err"
rc=$?
if [ $rc -eq 0 ] && cmp -s "$W/sc.partial" "$W/self.orig" && [ -s "$W/sc" ] &&
   [ "$(ls "$W" | grep -c '^sc\.')" = 1 ]; then
  ok "ixr replay --to-scenario OUT with a record named OUT.partial: record intact, no leftovers"
else
  not_ok "ixr replay --to-scenario OUT OUT.partial (exit $rc)" "$W/partial.err"
fi
{ echo; cat "$W/self.orig"; } > "$W/blank.rec"
"$IXR" replay --handlers "$T/handlers" "$W/blank.rec" > "$W/blank.out" 2> "$W/blank.err"
rc=$?
if [ $rc -eq 0 ] && has "$W/blank.out" '"interactionid":"H1"'; then
  ok "ixr replay: a blank line before the header"
else
  not_ok "ixr replay with a blank first line (exit $rc)" "$W/blank.err"
fi
printf '{"t":1,"line":"a\\nb"}\n' > "$W/nl.rec"
"$IXR" replay --handlers "$T/handlers" "$W/nl.rec" > /dev/null 2> "$W/nl.err"
rc=$?
if [ $rc -eq 1 ] && has "$W/nl.err" "holds a newline"; then
  ok "ixr replay: a record line holding a newline is refused"
else
  not_ok "ixr replay, newline in a record line (exit $rc)" "$W/nl.err"
fi

# round_trip NAME RUN_OPTIONS...: $W/NAME.ndjson through ixr run --clock manual
# with --record, the record through ixr replay --to-scenario, the scenario
# through ixr test; their exit statuses in rc, rc2, rc3 (outputs in $W/NAME*).
round_trip() {
  rt_name=$1
  shift
  "$IXR" run --clock manual --handlers "$T/handlers" "$@" --record "$W/$rt_name.rec" \
    < "$W/$rt_name.ndjson" > "$W/$rt_name.out" 2> "$W/$rt_name.err"
  rc=$?
  "$IXR" replay --handlers "$T/handlers" --to-scenario "$W/$rt_name.scenario" "$W/$rt_name.rec" \
    > "$W/$rt_name-replay.out" 2> "$W/$rt_name-replay.err"
  rc2=$?
  "$IXR" test "$W/$rt_name.scenario" > "$W/$rt_name-test.out" 2>&1
  rc3=$?
}

# The line limit of the recorded run is in the record's header: a line over
# the default limit (1 MiB) that the run took with --max-line 2000000 is
# handled again by the replay, and the scenario made from it says so too.
pad=$(head -c 1200000 /dev/zero | tr '\0' 'y')
printf '{"name":"interaction.present","data":{"interactionid":"B1","pad":"%s"}}\n{"name":"interaction.present","data":{"interactionid":"B2"}}\n' "$pad" \
  > "$W/big.ndjson"
unset pad
round_trip big --max-line 2000000
if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ $rc3 -eq 0 ] && has "$W/big.out" '"interactionid":"B1"' &&
   cmp -s "$W/big.out" "$W/big-replay.out" && has "$W/big.rec" '"max_line":2000000,' &&
   has "$W/big.scenario" '{"max_line":2000000}'; then
  ok "a record keeps --max-line: its replay and its scenario take the 1.2 MB line again"
else
  not_ok "record and replay with --max-line 2000000 (exit $rc, $rc2, $rc3)" "$W/big.err" \
    "$W/big-replay.err" "$W/big-test.out"
fi
# A line over the limit is noted in the record where it came: the replay and
# the scenario meet the same line_too_long error at the same line number, and
# the line numbers after it stay the same.
pad=$(head -c 300 /dev/zero | tr '\0' 'z')
printf '{"name":"interaction.present","data":{"interactionid":"L1"}}\n%s\nnot json\n{"name":"interaction.present","data":{"interactionid":"L2"}}\n' "$pad" \
  > "$W/long.ndjson"
unset pad
round_trip long --max-line 100
if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ $rc3 -eq 0 ] &&
   has "$W/long.out" '"error":"line_too_long"' && has "$W/long.out" '"error":"bad_json"' &&
   has "$W/long.out" '"line":3' && has "$W/long.rec" '"too_long":' &&
   ! has "$W/long.rec" 'zzzz' && cmp -s "$W/long.out" "$W/long-replay.out" &&
   has "$W/long.scenario" '{"send_too_long":true}'; then
  ok "a line over --max-line is noted in the record: replay and scenario give its error at its line"
else
  not_ok "record and replay of a line over --max-line (exit $rc, $rc2, $rc3)" "$W/long.out" \
    "$W/long-replay.out" "$W/long.rec" "$W/long-test.out"
fi
sed '1s/"max_line":2000000/"max_line":20/' "$W/big.rec" > "$W/badml.rec"
"$IXR" replay --handlers "$T/handlers" "$W/badml.rec" > "$W/badml.out" 2> "$W/badml.err"
rc=$?
if [ $rc -eq 1 ] && [ ! -s "$W/badml.out" ] &&
   has "$W/badml.err" "badml.rec:1: the header's \"max_line\" must be 64 to 1073741824 bytes"; then
  ok "ixr replay: a header with an impossible max_line is refused before anything runs"
else
  not_ok "ixr replay with max_line 20 in the header (exit $rc)" "$W/badml.err"
fi

# --start-time: the dates a manual-clock run sees; its record keeps them, so
# the replay and the scenario made from it see them too. On the real clock
# the record keeps when the run started.
printf '{"name":"interaction.present","data":{"interactionid":"W1","strategy":"hours"}}\n{"name":"clock.advance","data":{"ms":3600000}}\n{"name":"interaction.present","data":{"interactionid":"W2","strategy":"hours"}}\n' \
  > "$W/hours.ndjson"
round_trip hours --start-time 2024-11-05T19:30:00Z
if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ $rc3 -eq 0 ] &&
   has "$W/hours.out" '"at":1730835000,"stamp":"2024-11-05T19:30:00Z","target":"Day"' &&
   has "$W/hours.out" '"at":1730838600,"stamp":"2024-11-05T20:30:00Z","target":"Night"' &&
   has "$W/hours.rec" '"start_time_ms":1730835000000}' && cmp -s "$W/hours.out" "$W/hours-replay.out" &&
   has "$W/hours.scenario" '{"start_time":"2024-11-05T19:30:00Z"}'; then
  ok "--start-time: os.date sees it; the record, the replay and its scenario keep it"
else
  not_ok "--start-time, record and replay (exit $rc, $rc2, $rc3)" "$W/hours.err" "$W/hours.out" \
    "$W/hours-replay.out" "$W/hours-test.out"
fi
"$IXR" run --clock manual --start-time 1730835000123 --handlers "$T/handlers" \
  < "$W/hours.ndjson" > "$W/hours-ms.out" 2>&1
rc=$?
"$IXR" run --clock manual --start-time 2024-02-30T00:00:00Z --handlers "$T/handlers" \
  < /dev/null > "$W/st-bad.out" 2>&1
rc2=$?
"$IXR" run --start-time 2024-11-05T19:30:00Z --handlers "$T/handlers" < /dev/null > "$W/st-real.out" 2>&1
rc3=$?
if [ $rc -eq 0 ] && has "$W/hours-ms.out" '"at":1730835000,' && [ $rc2 -eq 2 ] &&
   has "$W/st-bad.out" "--start-time takes YYYY-MM-DDTHH:MM:SS[.mmm]Z or ms since 1970, not '2024-02-30T00:00:00Z'" &&
   [ $rc3 -eq 2 ] && has "$W/st-real.out" "--start-time needs --clock manual"; then
  ok "--start-time takes ms too; an impossible date, or the real clock, is refused"
else
  not_ok "--start-time arguments (exit $rc, $rc2, $rc3)" "$W/hours-ms.out" "$W/st-bad.out" "$W/st-real.out"
fi
sed '1s/"start_time_ms":[0-9]*/"start_time_ms":1.5/' "$W/hours.rec" > "$W/st-frac.rec"
"$IXR" replay --handlers "$T/handlers" "$W/st-frac.rec" > "$W/st-frac.out" 2> "$W/st-frac.err"
rc=$?
if [ $rc -eq 1 ] && [ ! -s "$W/st-frac.out" ] &&
   has "$W/st-frac.err" "st-frac.rec:1: the header's \"start_time_ms\" must be whole milliseconds"; then
  ok "ixr replay: a header whose start_time_ms is not whole milliseconds is refused"
else
  not_ok "ixr replay with start_time_ms 1.5 (exit $rc)" "$W/st-frac.err"
fi

# --record keeps the record already there as FILE.1, and refuses the file
# it would read its input from.
echo precious > "$W/keep.rec"
printf '{"name":"interaction.present","data":{"interactionid":"K1"}}\n' |
  "$IXR" run --handlers "$T/handlers" --record "$W/keep.rec" > /dev/null 2> "$W/keep.err"
rc=$?
printf '{"name":"x"}\n' > "$W/self-in.ndjson"
"$IXR" run --handlers "$T/handlers" --record "$W/self-in.ndjson" < "$W/self-in.ndjson" \
  > /dev/null 2> "$W/self-in.err"
rc2=$?
if [ $rc -eq 0 ] && [ "$(cat "$W/keep.rec.1")" = precious ] && has "$W/keep.rec" '"K1\"' &&
   has "$W/keep.err" "is now $W/keep.rec.1" && [ $rc2 -eq 1 ] &&
   has "$W/self-in.err" "it is the standard input" && [ "$(cat "$W/self-in.ndjson")" = '{"name":"x"}' ]; then
  ok "ixr run --record: the last record is kept as FILE.1; the input file itself is refused"
else
  not_ok "--record FILE.1 / stdin (exit $rc, $rc2)" "$W/keep.err" "$W/self-in.err"
fi

# A scenario saved with a byte order mark; a record whose first line has
# one (the runtime skips it there) gives a scenario that passes.
printf '\357\273\277# saved by an editor that writes a BOM\n{"handlers":"%s"}\n{"name":"interaction.present","data":{"interactionid":"M1"}}\n{"expect":{"type":"session","state":"started"}}\n{"expect":{"type":"action","action":"route"}}\n' \
  "$T/handlers" > "$W/bom.scenario"
"$IXR" test "$W/bom.scenario" > "$W/bom.out" 2>&1
rc=$?
printf '\357\273\277{"name":"interaction.present","data":{"interactionid":"M2"}}\n' |
  "$IXR" run --clock manual --handlers "$T/handlers" --record "$W/bom.rec" > "$W/bom-run.out" 2>/dev/null
"$IXR" replay --handlers "$T/handlers" --to-scenario "$W/bom-rec.scenario" "$W/bom.rec" > /dev/null 2>&1
"$IXR" test "$W/bom-rec.scenario" > "$W/bom-rec.out" 2>&1
rc2=$?
if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] && has "$W/bom-run.out" '"M2"'; then
  ok "a byte order mark: before a scenario's first line, and before a record's (in its scenario)"
else
  not_ok "byte order marks in scenarios and records (exit $rc, $rc2)" "$W/bom.out" "$W/bom-rec.out"
fi

# Real clock: a timer armed by one line for "now" fires before the next
# line when both arrive in the same millisecond, in the run and in the
# replay (which advances by 0 between such lines).
printf '%s\n%s\n%s\n' \
  '{"name":"interaction.present","data":{"interactionid":"S1"}}' \
  '{"name":"test.later","data":{"interactionid":"S1","seconds":0,"n":1}}' \
  '{"name":"interaction.present","data":{"interactionid":"S2"}}' |
  "$IXR" run --handlers "$T/handlers" --record "$W/same-ms.rec" > "$W/same-ms.out" 2>/dev/null
"$IXR" replay --handlers "$T/handlers" "$W/same-ms.rec" > "$W/same-ms.replay" 2>/dev/null
rc=$?
if [ $rc -eq 0 ] && has "$W/same-ms.out" '"later"' && cmp -s "$W/same-ms.out" "$W/same-ms.replay"; then
  ok "real clock: a timer due between two lines of one millisecond fires between them in the replay too"
else
  diff "$W/same-ms.out" "$W/same-ms.replay" > "$W/same-ms.diff" 2>&1
  not_ok "same-millisecond timer replay (exit $rc)" "$W/same-ms.diff" "$W/same-ms.rec"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
