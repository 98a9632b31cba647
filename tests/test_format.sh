#!/bin/sh
# Every C source and header follows .clang-format (clang-format-14), as
# `make format-check` requires. TAP output; one test per run.
# Usage: test_format.sh SOURCE_ROOT
cd "${1:?usage: $0 SOURCE_ROOT}" || exit 1
echo "1..1"
if ! command -v clang-format-14 >/dev/null 2>&1; then
	echo "ok 1 - clang-format # SKIP clang-format-14 is not installed"
	exit 0
fi
if [ -e .git ]; then
	files=$(git ls-files '*.c' '*.h' | grep -v '^third_party/')
else
	files=$(find . -name '*.[ch]' -not -path './third_party/*' \
	        -not -path './build*')
fi
# shellcheck disable=SC2086
if out=$(clang-format-14 --dry-run --Werror $files 2>&1); then
	echo "ok 1 - clang-format: $(echo "$files" | wc -w) files conform"
else
	echo "not ok 1 - clang-format: some files differ (run 'make format')"
	echo "$out" | grep -oE '^[^: ]+\.[ch]:' | sort | uniq -c |
		sed 's/^ *\([0-9]*\) \(.*\):$/# \2: \1 places differ/'
	exit 1
fi
