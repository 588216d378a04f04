#!/bin/sh
# tests/tooling/types_test.sh IXR SRC: lua/ixr/types.lua (the editor
# annotations) names exactly what the runtime provides, so the two cannot
# drift apart. Both directions, for each part:
#
#   session methods  types.lua -> runtime: a live session has each one
#                                 (tests/tooling/types/probe.lua)
#                    runtime -> types.lua: each entry of session_methods[]
#                                 in runtime/session.c is declared
#   session fields   types.lua -> runtime: a live session has each one, of
#                                 the declared type (probe.lua)
#                    runtime -> types.lua: each name s_index answers in
#                                 runtime/session.c is declared
#   strategy fields  types.lua -> runtime: the loader reads each one: a
#                                 strategy that sets it to a value no field
#                                 accepts is rejected by ixr check, naming it
#                    runtime -> types.lua: each field adopt() reads in
#                                 runtime/strategy.c is declared
#   ixr.core,        both ways at run time, by comparing the loaded modules
#   ixr.multimedia   with the declarations (probe.lua)
#
# Prints "ok"/"not ok" per check and closes with "N passed, N failed".
set -u
IXR=${1:?usage: types_test.sh IXR SRC}
SRC=${2:?usage: types_test.sh IXR SRC}
TYPES=$SRC/lua/ixr/types.lua
# The standard library (and types.lua) of this source tree.
IXR_LUA_DIR=$SRC/lua
export IXR_LUA_DIR
W=$(mktemp -d "${TMPDIR:-/tmp}/ixr-types.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT INT TERM
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; }

# declared PATTERN: names declared in types.lua by lines matching
# "^PATTERN<name>" (for example "function Session:" or "Session\.").
declared() { sed -n "s/^$1\([A-Za-z_][A-Za-z0-9_]*\).*/\1/p" "$TYPES" | sort -u; }

# from_c FILE START END PATTERN: the quoted names matching PATTERN between
# the lines matching START and END in a C file.
from_c() {
  sed -n "/$2/,/$3/p" "$1" | grep -o "$4" | sed 's/.*"\([A-Za-z_0-9]*\)".*/\1/' | sort -u
}

# same_set WHAT RUNTIME_LIST DECLARED_LIST: every runtime name is declared.
all_declared() {
  what=$1
  runtime=$2
  decl=$3
  if [ -z "$runtime" ]; then
    not_ok "$what: found none in the C source: the code moved, update this test"
    return
  fi
  missing=""
  for n in $runtime; do
    echo "$decl" | grep -qx "$n" || missing="$missing $n"
  done
  if [ -z "$missing" ]; then
    ok "$what: all declared in types.lua ($(echo $runtime | tr ' ' ','))"
  else
    not_ok "$what: not declared in lua/ixr/types.lua:$missing"
  fi
}

# ---- runtime -> types.lua, from the C source --------------------------------

all_declared "session methods (session_methods[] in runtime/session.c)" \
  "$(from_c "$SRC/runtime/session.c" 'session_methods\[\] = {' '};' '{"[a-z_]*",')" \
  "$(declared 'function Session:')"

all_declared "session fields (s_index in runtime/session.c)" \
  "$(from_c "$SRC/runtime/session.c" '^static int s_index' '^}' 'strcmp(k, "[a-z_]*")')" \
  "$(declared 'Session\.')"

all_declared "strategy fields (adopt() in runtime/strategy.c)" \
  "$(from_c "$SRC/runtime/strategy.c" '^static char \*adopt' '^}' 'lua_getfield(L, tbl, "[a-z_]*")')" \
  "$(declared 'Strategy\.')"

# ---- types.lua -> runtime, at run time ---------------------------------------

"$IXR" test "$SRC/tests/tooling/types/probe.scenario" > "$W/probe.out" 2>&1
if [ $? -eq 0 ]; then
  ok "session members, ixr.core and ixr.multimedia: types.lua matches a live runtime"
else
  not_ok "types.lua does not match the live runtime:"
  sed 's/^/  | /' "$W/probe.out"
fi

# Each declared strategy field set to a coroutine, which no field accepts:
# if the loader reads the field, ixr check rejects the file and names it.
fields=$(declared 'Strategy\.')
mkdir "$W/handlers"
for f in $fields; do
  {
    echo "return {"
    [ "$f" = start ] || echo "  start = function() end,"
    echo "  $f = coroutine.create(function() end),"
    echo "}"
  } > "$W/handlers/bad_$f.lua"
done
"$IXR" check --handlers "$W/handlers" > "$W/check.out" 2> /dev/null
unread=""
for f in $fields; do
  grep -q "bad_$f\.lua:[0-9]*: .*\b$f\b" "$W/check.out" || unread="$unread $f"
done
if [ -z "$fields" ]; then
  not_ok "strategy fields: types.lua declares none (Strategy.<name> = ...)"
elif [ -z "$unread" ]; then
  ok "strategy fields: the loader reads every one types.lua declares ($(echo $fields | tr ' ' ','))"
else
  not_ok "strategy fields declared in types.lua that the loader ignores:$unread"
  sed 's/^/  | /' "$W/check.out"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
