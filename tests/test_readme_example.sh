#!/bin/sh
# The README's API example is real: README.md shows exactly
# examples/readme_example.c, and the program built from it runs and prints
# what the README says it prints. TAP output.
# Usage: test_readme_example.sh SOURCE_ROOT PATH/TO/readme_example
SRC=${1:?usage: $0 SOURCE_ROOT PROGRAM}
PROG=${2:?usage: $0 SOURCE_ROOT PROGRAM}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "1..2"

# The first ```c block after the "<!-- example: examples/readme_example.c -->"
# marker, and the first ``` block after "<!-- example output -->".
awk '/<!-- example: examples\/readme_example.c -->/ {m=1; next}
     m==1 && /^```c$/ {m=2; next}
     m==2 && /^```$/ {exit}
     m==2 {print}' "$SRC/README.md" >"$T/readme.c"
awk '/<!-- example output -->/ {m=1; next}
     m==1 && /^```$/ {if (m==1) {m=2; next}}
     m==2 && /^```$/ {exit}
     m==2 {print}' "$SRC/README.md" >"$T/expected"

if diff -u "$SRC/examples/readme_example.c" "$T/readme.c" >"$T/diff"; then
	echo "ok 1 - README.md shows examples/readme_example.c verbatim"
else
	echo "not ok 1 - README.md and examples/readme_example.c differ"
	sed 's/^/# /' "$T/diff" | head -40
	fail=1
fi

if "$PROG" >"$T/out" 2>"$T/err" && [ -s "$T/expected" ] &&
	diff -u "$T/expected" "$T/out" >"$T/diff"; then
	echo "ok 2 - the example runs and prints what the README says"
else
	echo "not ok 2 - the example's output differs from the README"
	sed 's/^/# /' "$T/diff" "$T/err" | head -40
	fail=1
fi
[ -z "$fail" ]
