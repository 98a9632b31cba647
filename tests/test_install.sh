#!/bin/sh
# TAP: install rill into a temporary destdir, build an outside program with
# `pkg-config --cflags --libs rill` alone, run it, and check that the shared
# library exports only public symbols (rill_*, never rill__*).
# Usage: test_install.sh BUILD_DIR SOURCE_DIR
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "1..5"

if meson install -C "$build" --destdir "$tmp" --no-rebuild >"$tmp/install.log" 2>&1; then
	echo "ok 1 - meson install into a destdir"
else
	echo "not ok 1 - meson install into a destdir"
	sed 's/^/# /' "$tmp/install.log"
fi

pc=$(find "$tmp" -name rill.pc | head -n 1)
so=$(find "$tmp" -name 'librill.so.*.*' | head -n 1)
if [ -n "$pc" ] && [ -n "$so" ] && find "$tmp" -name librill.a | grep -q . &&
	find "$tmp" -path '*include/rill.h' | grep -q . &&
	find "$tmp" -path '*include/rill/impl.h' | grep -q .; then
	echo "ok 2 - headers, static and shared library and rill.pc installed"
else
	echo "not ok 2 - headers, static and shared library and rill.pc installed (pc=$pc so=$so)"
fi

export PKG_CONFIG_SYSROOT_DIR="$tmp"
export PKG_CONFIG_PATH="$(dirname "$pc")"
flags=$(pkg-config --cflags --libs rill 2>"$tmp/pc.err")
if cc -o "$tmp/outside" "$src/tests/install/outside.c" $flags >"$tmp/cc.log" 2>&1; then
	echo "ok 3 - outside program builds with pkg-config alone ($flags)"
else
	echo "not ok 3 - outside program builds with pkg-config alone"
	sed 's/^/# /' "$tmp/cc.log" "$tmp/pc.err"
fi

out=$(LD_LIBRARY_PATH="$(dirname "$so")" "$tmp/outside" 2>&1)
case "$out" in
*": ok") echo "ok 4 - outside program runs against the installed shared library" ;;
*) echo "not ok 4 - outside program runs: $out" ;;
esac

bad=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBR]$/ {print $3}' | grep -v '^rill_' ; \
	nm -D --defined-only "$so" | awk '{print $3}' | grep '^rill__')
if [ -z "$bad" ] && nm -D --defined-only "$so" | grep -q ' rill_read$'; then
	echo "ok 5 - shared library exports only public rill_ symbols"
else
	echo "not ok 5 - shared library exports non-public symbols:"
	echo "$bad" | sed 's/^/#   /'
fi
