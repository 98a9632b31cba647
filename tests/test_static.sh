#!/bin/sh
# Static analysis of src/, cli/ and bench/ with cppcheck: every finding of the
# classes error, warning, portability and performance fails the test.
# Style findings are left to review (they are matters of taste and change
# with cppcheck's version). TAP output; one test per run. A check that
# cannot find cppcheck is a SKIP with the reason, never a pass.
# Usage: test_static.sh SOURCE_ROOT
cd "${1:?usage: $0 SOURCE_ROOT}" || exit 1
echo "1..1"
if ! command -v cppcheck >/dev/null 2>&1; then
	echo "ok 1 - cppcheck # SKIP cppcheck is not installed"
	exit 0
fi
llhttp=/usr/share/include/llhttp
out=$(cppcheck --quiet --enable=warning,portability,performance \
	--std=c11 --inline-suppr --error-exitcode=3 \
	-I include -I src -I src/core -I "$llhttp" -D_GNU_SOURCE \
	src cli 2>&1)
status=$?
if [ "$status" = 0 ] && [ -z "$out" ]; then
	echo "ok 1 - cppcheck (error, warning, portability, performance): src/ and cli/ clean"
else
	echo "not ok 1 - cppcheck found problems (status $status)"
	echo "$out" | sed 's/^/# /'
	exit 1
fi
