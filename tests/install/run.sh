#!/bin/sh
# tests/install/run.sh: install ixr into a temporary prefix and build the
# examples against the installed package, twice: with pkg-config (ixr.pc,
# examples/Makefile) and with CMake (find_package(ixr), examples/CMakeLists.txt).
# Then run every example, without IXR_LUA_DIR, so the library must find its
# installed standard library by itself.
#
#   sh tests/install/run.sh BUILDDIR SRCDIR [PREFIX]
#
# BUILDDIR is a configured and built ixr build directory; it is installed
# with `cmake --install BUILDDIR --prefix PREFIX` (default: a new temporary
# directory, removed at the end). Prints "N passed, N failed"; exits 1 on
# any failure.
set -u

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILDDIR SRCDIR [PREFIX]" >&2
  exit 2
fi
builddir=$1
src=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ixr-install-XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' INT TERM
prefix=${3:-$tmp/prefix}
ex=$src/examples
unset IXR_LUA_DIR

pass=0
fail=0
ok() {
  pass=$((pass + 1))
  echo "ok   $1"
}
bad() {
  fail=$((fail + 1))
  echo "FAIL $1"
  if [ -n "${2:-}" ] && [ -s "$2" ]; then sed -e 's/^/     | /' "$2" | head -n 40; fi
}
# has FILE FRAGMENT...: every fragment occurs in FILE (fixed strings).
has() {
  f=$1
  shift
  for frag in "$@"; do
    grep -F -q -e "$frag" "$f" || {
      echo "missing: $frag" >> "$f"
      return 1
    }
  done
}

# ---- install --------------------------------------------------------------

if cmake --install "$builddir" --prefix "$prefix" > "$tmp/install.log" 2>&1; then
  ok "cmake --install into $prefix"
else
  bad "cmake --install into $prefix" "$tmp/install.log"
  echo "$pass passed, $fail failed"
  exit 1
fi

lib=$(find "$prefix" -name 'libixr.so' | head -n 1)
libdir=${lib%/*}
if [ -z "$lib" ]; then
  libdir=$prefix/lib
fi
missing=
for f in include/ixr.h share/ixr/lua/ixr/multimedia.lua; do
  [ -f "$prefix/$f" ] || missing="$missing $prefix/$f"
done
for f in libixr.so libixr.a pkgconfig/ixr.pc cmake/ixr/ixrConfig.cmake \
         cmake/ixr/ixrConfigVersion.cmake cmake/ixr/ixrTargets.cmake; do
  [ -f "$libdir/$f" ] || missing="$missing $libdir/$f"
done
if [ -z "$missing" ]; then
  ok "installed files: header, libraries, ixr.pc, CMake package, lua/"
else
  echo "not installed:$missing" > "$tmp/files.log"
  bad "installed files" "$tmp/files.log"
fi

# Only the public API leaves the shared library: ixr_ names, not ixr__ ones.
if nm -D --defined-only "$libdir/libixr.so" > "$tmp/nm.log" 2>&1; then
  awk 'NF >= 3 { print $3 }' "$tmp/nm.log" | grep -v -E '^ixr_[a-z0-9]' \
    | grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$' > "$tmp/extra.log"
  if [ -s "$tmp/extra.log" ]; then
    bad "only ixr_ symbols exported" "$tmp/extra.log"
  else
    ok "only ixr_ symbols exported ($(wc -l < "$tmp/nm.log") symbols)"
  fi
else
  bad "nm -D libixr.so" "$tmp/nm.log"
fi

# ---- the default standard library -----------------------------------------

# A probe built against the installed header and library (without ixr.pc,
# so that this check stands on its own) reports the lua directory the
# library picked by default.
if cc -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -I"$prefix/include" \
     "$src/tests/install/probe.c" -o "$tmp/probe" -L"$libdir" -lixr \
     > "$tmp/probe.log" 2>&1 &&
   LD_LIBRARY_PATH=$libdir "$tmp/probe" "$ex/handlers" > "$tmp/probe.out" 2>> "$tmp/probe.log"; then
  got=$(cat "$tmp/probe.out")
  if [ "$(cd "$got" 2>/dev/null && pwd -P)" = "$(cd "$prefix/share/ixr/lua" && pwd -P)" ]; then
    ok "the installed lua/ is found by default"
  else
    echo "standard library used: $got (expected $prefix/share/ixr/lua)" >> "$tmp/probe.log"
    bad "the installed lua/ is found by default" "$tmp/probe.log"
  fi
else
  bad "lua dir probe" "$tmp/probe.log"
fi

# ---- build the examples twice ---------------------------------------------

PKG_CONFIG_PATH=$libdir/pkgconfig
export PKG_CONFIG_PATH
# ixr.pc must describe the copy it was installed with (a prefix given to
# cmake --install included), or the build below would use another one.
inc=$(pkg-config --variable=includedir ixr 2>&1)
ldir=$(pkg-config --variable=libdir ixr 2>&1)
if [ "$(cd "$inc" 2>/dev/null && pwd -P)" = "$(cd "$prefix/include" && pwd -P)" ] &&
   [ "$(cd "$ldir" 2>/dev/null && pwd -P)" = "$(cd "$libdir" && pwd -P)" ]; then
  ok "ixr.pc points into the prefix"
else
  printf 'includedir=%s\nlibdir=%s\nexpected %s/include and %s\n' \
    "$inc" "$ldir" "$prefix" "$libdir" > "$tmp/pcvars.log"
  bad "ixr.pc points into the prefix" "$tmp/pcvars.log"
fi
if make -k -C "$ex" OUT="$tmp/pc" > "$tmp/pc.log" 2>&1; then
  ok "examples built with pkg-config (ixr.pc)"
else
  bad "examples built with pkg-config (ixr.pc)" "$tmp/pc.log"
fi

if cmake -S "$ex" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$prefix" \
     -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$tmp/cm.log" 2>&1 &&
   cmake --build "$tmp/cm" >> "$tmp/cm.log" 2>&1; then
  ok "examples built with find_package(ixr)"
else
  bad "examples built with find_package(ixr)" "$tmp/cm.log"
fi

# ---- run them ---------------------------------------------------------------

run_minimal() { # DIR LABEL
  [ -x "$1/minimal" ] || return 0
  log=$tmp/run.log
  if LD_LIBRARY_PATH=$libdir "$1/minimal" "$ex/handlers" < "$ex/events.ndjson" > "$log" 2>&1 &&
     has "$log" "session started   I1 s1 default" \
       "action  route  I1 r1 {\"type\":\"action\",\"action\":\"route\"" \
       "action  queue  I2 r3" "session suspended I2 s2 revoking" \
       "session resumed   I2 s2" "session ended     I2 s2 deleted" \
       "4 actions, 2 sessions started, 2 ended, 0 live"; then
    ok "$2: minimal"
  else
    bad "$2: minimal" "$log"
  fi
}

run_tcp() {
  [ -x "$1/tcp_server" ] || return 0
  log=$tmp/run.log
  if LD_LIBRARY_PATH=$libdir "$1/tcp_server" --selftest "$ex/handlers" > "$log" 2>&1 &&
     has "$log" "selftest: ok"; then
    ok "$2: tcp_server --selftest"
  else
    bad "$2: tcp_server --selftest" "$log"
  fi
}

run_host() {
  [ -x "$1/host_function" ] || return 0
  log=$tmp/run.log
  if LD_LIBRARY_PATH=$libdir "$1/host_function" "$ex/host_handlers" > "$log" 2>&1 &&
     has "$log" "\"interactionid\":\"I1\",\"requestid\":\"r1\",\"args\":{\"customer\":\"Alice\",\"target\":\"AgentGroup:VIP\"}" \
       "\"args\":{\"customer\":\"Bob\",\"target\":\"AgentGroup:General\"}" \
       "\"interactionid\":\"I3\",\"requestid\":\"r3\",\"args\":{\"target\":\"AgentGroup:General\"}" \
       "\"error\":\"handler_error\"" "bad argument #1 to 'lookup_customer'" \
       "3 lookups, 3 sessions live"; then
    ok "$2: host_function"
  else
    bad "$2: host_function" "$log"
  fi
}

for kind in pc cm; do
  if [ "$kind" = pc ]; then label=pkg-config; else label=find_package; fi
  for prog in minimal tcp_server host_function; do
    if [ ! -x "$tmp/$kind/$prog" ]; then
      bad "$label: $prog was not built"
      continue
    fi
  done
  run_minimal "$tmp/$kind" "$label"
  run_tcp "$tmp/$kind" "$label"
  run_host "$tmp/$kind" "$label"
done

# The static library: minimal_static must not need libixr.so at run time.
if [ -x "$tmp/cm/minimal_static" ]; then
  log=$tmp/run.log
  if "$tmp/cm/minimal_static" "$ex/handlers" < "$ex/events.ndjson" > "$log" 2>&1 &&
     has "$log" "4 actions, 2 sessions started, 2 ended, 0 live"; then
    ok "find_package: minimal_static (ixr::ixr_static)"
  else
    bad "find_package: minimal_static (ixr::ixr_static)" "$log"
  fi
else
  bad "find_package: minimal_static was not built"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
