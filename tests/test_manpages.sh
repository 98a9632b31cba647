#!/bin/sh
# TAP: every function the shared library exports has a man page (it is
# named in the NAME line of a page in doc/man), every function a page
# names exists, and every `rill` subcommand and long option printed by the
# --help texts appears in rill(1).
# Usage: test_manpages.sh BUILD_DIR SOURCE_DIR
build=$1
src=$2
man="$src/doc/man"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "1..4"

nm -D --defined-only "$build/librill.so" | awk '$2 == "T" {print $3}' | sort -u >"$tmp/exported"
for p in "$man"/*.3; do
	sed -n '/^\.SH NAME/{n;p;q}' "$p" | sed 's/ \\-.*//; s/,/ /g' | tr ' ' '\n' | grep .
done | sort -u >"$tmp/documented"

missing=$(comm -23 "$tmp/exported" "$tmp/documented")
if [ -s "$tmp/exported" ] && [ -z "$missing" ]; then
	echo "ok 1 - every exported function ($(wc -l <"$tmp/exported")) has a man page"
else
	echo "not ok 1 - exported functions without a man page:"
	echo "$missing" | sed 's/^/#   /'
fi

stale=$(comm -13 "$tmp/exported" "$tmp/documented")
if [ -z "$stale" ]; then
	echo "ok 2 - every function named in a man page exists"
else
	echo "not ok 2 - man pages name functions that are not exported:"
	echo "$stale" | sed 's/^/#   /'
fi

rill="$build/rill"
cmds=$("$rill" --help | awk '/^Commands:/ {on=1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on=0}')
bad=""
for c in $cmds; do
	grep -q "^\.B $c\$" "$man/rill.1" || bad="$bad $c"
done
if [ -n "$cmds" ] && [ -z "$bad" ]; then
	echo "ok 3 - every subcommand has a section in rill(1):" $cmds
else
	echo "not ok 3 - subcommands missing from rill(1):$bad"
fi

bad=""
for c in $cmds; do
	for o in $("$rill" $c --help 2>&1 | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		esc=$(printf '%s' "$o" | sed 's/-/\\\\-/g')
		grep -q -- "$esc" "$man/rill.1" || bad="$bad $c:$o"
	done
done
if [ -z "$bad" ]; then
	echo "ok 4 - every option in the --help texts appears in rill(1)"
else
	echo "not ok 4 - options missing from rill(1):$bad"
fi
