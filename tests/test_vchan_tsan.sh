#!/bin/sh
# Builds the vchan ring core and a two-thread ring test with
# ThreadSanitizer (clang) and runs it. TAP on stdout.
# Usage: test_vchan_tsan.sh SOURCE_DIR
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! command -v clang >/dev/null 2>&1; then
	echo "1..0 # SKIP clang not installed"
	exit 0
fi
if ! clang -std=c17 -O1 -g -fsanitize=thread -D_GNU_SOURCE -Wall -Werror \
	-I"$src/include" -I"$src/src" \
	"$src/tests/tsan_vchan_ring.c" "$src/src/transport/vchan/ring.c" \
	-o "$tmp/tsan_ring" -lpthread 2>"$tmp/cc.log"; then
	echo "1..1"
	echo "not ok 1 - TSan build of the vchan ring test"
	sed 's/^/# /' "$tmp/cc.log"
	exit 1
fi
TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$tmp/tsan_ring"
