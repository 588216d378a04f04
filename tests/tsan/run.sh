#!/bin/sh
# tests/tsan/run.sh: builds libixr's sources and two_runtimes.c with
# -fsanitize=thread in BUILDDIR/tsan, and runs two runtimes on two threads
# with halt_on_error, so that any data race fails the test.
#
#   sh tests/tsan/run.sh BUILDDIR SRCDIR [EVENTS-PER-THREAD]
#
# The library is every runtime/*.c except the command line's files
# (main.c, cli_*.c). Dependencies (Lua, libuv, yajl) are the system's
# uninstrumented libraries: ThreadSanitizer watches ixr's own code.
set -u

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILDDIR SRCDIR [EVENTS-PER-THREAD]" >&2
  exit 2
fi
out=$1/tsan
src=$2
events=${3:-3000}
CC=${CC:-cc}
mkdir -p "$out" || exit 2

deps=$(pkg-config --cflags lua5.4 libuv yajl) || exit 2
libs=$(pkg-config --libs lua5.4 libuv yajl) || exit 2
flags="-std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -fsanitize=thread -fPIE"

objs=
for c in "$src"/runtime/*.c "$src"/tests/tsan/two_runtimes.c; do
  base=${c##*/}
  case $base in
    main.c | cli_*.c) continue ;;
  esac
  o=$out/${base%.c}.o
  # Rebuild when the source or any header of runtime/ is newer.
  if [ ! -f "$o" ] || [ -n "$(find "$c" -newer "$o")" ] ||
     [ -n "$(find "$src/runtime" -name '*.h' -newer "$o")" ]; then
    # shellcheck disable=SC2086 # flags and deps are word lists
    $CC $flags $deps -I"$src/runtime" -c "$c" -o "$o" || {
      echo "FAIL compiling $c with -fsanitize=thread"
      echo "0 passed, 1 failed"
      exit 1
    }
  fi
  objs="$objs $o"
done
# shellcheck disable=SC2086
$CC -fsanitize=thread -pie $objs -o "$out/two_runtimes" $libs -lpthread -lm || {
  echo "FAIL linking two_runtimes"
  echo "0 passed, 1 failed"
  exit 1
}

TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export TSAN_OPTIONS
unset IXR_LUA_DIR
if "$out/two_runtimes" "$src/tests/tsan/handlers" "$src/lua" "$events"; then
  echo "ok   two runtimes on two threads under ThreadSanitizer"
  echo "1 passed, 0 failed"
else
  echo "FAIL two runtimes on two threads under ThreadSanitizer (see the report above)"
  echo "0 passed, 1 failed"
  exit 1
fi
