#!/bin/sh
# Installs what building and testing ixr needs, on Debian, when missing.
# Safe to run again: it installs nothing when everything is there.
set -e
PKGS="gcc make cmake pkg-config liblua5.4-dev libuv1-dev libyajl-dev libcmocka-dev lua-check valgrind locales"
# locales: test_codec makes a comma-decimal locale with localedef, to check
# that output numbers do not follow a host program's setlocale().
# The plain-Lua reference of make bench runs on the lua5.4 interpreter
# with lua-cjson.
PKGS="$PKGS lua5.4 lua-cjson"
# --fuzz (make fuzz): clang, its sanitizer and libFuzzer runtimes, and
# llvm-symbolizer for readable stacks.
if [ "${1:-}" = "--fuzz" ]; then
  PKGS="$PKGS clang libclang-rt-dev llvm"
fi
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: missing:$missing (and no apt-get: install them by hand)" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
