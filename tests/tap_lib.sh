# Shared by the shell tests of the CLI (sourced): TAP bookkeeping around
# one command per test. The sourcing script sets RILL; this sets T (a
# temporary directory removed at exit), n and failed.
#   check NAME EXPECTED_STATUS CMD...  runs CMD, stdout in $T/out, stderr
#                                      in $T/err; ok when the status matches
#   expect FILE PATTERN                grep -E in $T/FILE, or the test fails
#   empty FILE                         $T/FILE is empty, or the test fails
#   report                             prints the TAP line (and the output
#                                      of a failed test)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0
failed=0

check() {
	name=$1 want=$2
	shift 2
	n=$((n + 1))
	"$@" >"$T/out" 2>"$T/err"
	got=$?
	if [ "$got" = "$want" ]; then
		ok=1
	else
		ok=0
		why="exit status $got, expected $want"
	fi
}

expect() {
	if [ "$ok" = 1 ] && ! grep -Eq -- "$2" "$T/$1"; then
		ok=0
		why="$1 lacks /$2/"
	fi
}

empty() {
	if [ "$ok" = 1 ] && [ -s "$T/$1" ]; then
		ok=0
		why="$1 is not empty"
	fi
}

report() {
	if [ "$ok" = 1 ]; then
		echo "ok $n - $name"
	else
		echo "not ok $n - $name # $why"
		sed 's/^/#   out: /' "$T/out"
		sed 's/^/#   err: /' "$T/err"
		failed=$((failed + 1))
	fi
}
