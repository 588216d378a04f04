#!/bin/sh
# tests/e2e/run_socket.sh IXR UCLIENT SRC: two clients at once on one
# `ixr run --listen unix:` socket, each sending its own interactions; each
# must get exactly its own output lines, in order. Prints 'N passed, N failed'.
set -u
IXR=$1
UCLIENT=$2
SRC=$3
T=$(mktemp -d /tmp/ixr-e2e-sock.XXXXXX)
trap 'kill "$PID" 2>/dev/null; rm -rf "$T"' EXIT
cd "$SRC" || exit 1
IXR_LUA_DIR=lua "$IXR" run --handlers tests/e2e/handlers --listen "unix:$T/s.sock" \
  --clock manual 2> "$T/log" &
PID=$!
pass=0
fail=0
# Client X sends presents for X1..X20 (each: started + route), then
# interaction.deleted for each (each: ended): 60 lines. Deletions, not route
# results, end the sessions because request ids are numbered across both
# clients in arrival order, which neither client can know.
for c in A B; do
  i=1
  while [ $i -le 20 ]; do
    printf '{"name":"interaction.present","data":{"interactionid":"%s%d"}}\n' "$c" "$i"
    i=$((i + 1))
  done > "$T/$c.in"
  i=1
  while [ $i -le 20 ]; do
    printf '{"name":"interaction.deleted","data":{"interactionid":"%s%d"}}\n' "$c" "$i"
    i=$((i + 1))
  done >> "$T/$c.in"
done
"$UCLIENT" "$T/s.sock" 60 < "$T/A.in" > "$T/A.out" &
CA=$!
"$UCLIENT" "$T/s.sock" 60 < "$T/B.in" > "$T/B.out" &
CB=$!
wait "$CA"; ra=$?
wait "$CB"; rb=$?
for c in A B; do
  other=B
  [ "$c" = B ] && other=A
  out="$T/$c.out"
  if [ "$(wc -l < "$out")" -eq 60 ]; then pass=$((pass + 1)); echo "PASS $c got 60 lines"
  else fail=$((fail + 1)); echo "FAIL $c got $(wc -l < "$out") lines"; fi
  if ! grep -q "\"interactionid\":\"$other" "$out"; then pass=$((pass + 1)); echo "PASS $c got none of $other's lines"
  else fail=$((fail + 1)); echo "FAIL $c got lines of $other"; fi
  # in order: for each interaction, started, then route, then ended
  bad=0
  i=1
  while [ $i -le 20 ]; do
    s=$(grep -n "\"state\":\"started\"[^}]*\"interactionid\":\"$c$i\"" "$out" | cut -d: -f1)
    a=$(grep -n "\"action\":\"route\"[^}]*\"interactionid\":\"$c$i\"" "$out" | cut -d: -f1)
    e=$(grep -n "\"state\":\"ended\"[^}]*\"interactionid\":\"$c$i\",\"reason\":\"deleted\"" "$out" | cut -d: -f1)
    if [ -z "$s" ] || [ -z "$a" ] || [ -z "$e" ] || [ "$s" -ge "$a" ] || [ "$a" -ge "$e" ]; then bad=1; fi
    i=$((i + 1))
  done
  if [ $bad -eq 0 ]; then pass=$((pass + 1)); echo "PASS $c: started, route, ended in order for each of its interactions"
  else fail=$((fail + 1)); echo "FAIL $c: lines out of order or missing"; fi
done
if [ $ra -eq 0 ] && [ $rb -eq 0 ]; then pass=$((pass + 1)); echo "PASS both clients done"; else fail=$((fail + 1)); echo "FAIL client exit codes $ra $rb"; fi
kill "$PID" 2>/dev/null
wait "$PID" 2>/dev/null

# --record with a --control socket: the control connection's lines are no
# events and are not recorded (its replies went to it, not to the stream).
IXR_LUA_DIR=lua "$IXR" run --handlers tests/e2e/handlers --listen "unix:$T/r.sock" \
  --control "unix:$T/c.sock" --clock manual --record "$T/ctl.rec" 2>> "$T/log" &
PID=$!
printf '{"name":"interaction.present","data":{"interactionid":"R1"}}\n' |
  "$UCLIENT" "$T/r.sock" 2 > "$T/r.out"
printf '{"name":"ixr.status","id":"probe"}\n' | "$UCLIENT" "$T/c.sock" 1 > "$T/c.out"
kill "$PID" 2>/dev/null
wait "$PID" 2>/dev/null
if grep -q 'R1' "$T/ctl.rec" && grep -q '"probe"' "$T/c.out" && ! grep -q 'probe' "$T/ctl.rec"; then
  pass=$((pass + 1)); echo "PASS --record leaves the control socket's lines out"
else
  fail=$((fail + 1)); echo "FAIL --record and --control"; cat "$T/ctl.rec" "$T/c.out"
fi
[ $fail -eq 0 ] || { cat "$T/A.out" "$T/B.out" "$T/log"; }
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
