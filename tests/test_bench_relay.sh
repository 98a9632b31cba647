#!/bin/sh
# `rill bench relay`: the relay rows (splice and generic paths) beside a
# direct TCP stream and socat, as a table and as JSON, and the socat rows
# skipped with a note (not a failure) when socat is missing. Small
# transfers; timings are not asserted. TAP output.
# Usage: test_bench_relay.sh PATH/TO/rill
RILL=${1:?usage: $0 PATH/TO/rill}
. "$(dirname "$0")/tap_lib.sh"

row='throughput +[0-9.]+ MB/s +'
echo "1..3"

check "bench relay prints the relay rows beside direct tcp and socat" 0 \
	"$RILL" bench --bytes 8M relay
expect out '^flow +metric +value +baseline'
expect out "^relay-splice +${row}direct tcp +[0-9.]+ MB/s +[0-9.]+x\$"
expect out "^relay-copy +${row}direct tcp +[0-9.]+ MB/s +[0-9.]+x\$"
if command -v socat >/dev/null; then
	expect out "^relay-splice +${row}socat +[0-9.]+ MB/s +[0-9.]+x\$"
	expect out "^relay-copy +${row}socat +[0-9.]+ MB/s +[0-9.]+x\$"
else
	expect err 'relay-copy-vs-socat skipped: socat is not installed'
fi
report

check "bench --json relay-copy is valid JSON with its rows" 0 \
	"$RILL" bench --json --bytes 8M relay-copy
if [ "$ok" = 1 ] && ! python3 -c '
import json, shutil, sys
rows = json.load(open(sys.argv[1]))
bases = {r["baseline"] for r in rows if r["flow"] == "relay-copy" and
         r["value"] > 0 and r["baseline_value"] > 0}
want = {"direct tcp", "socat"} if shutil.which("socat") else {"direct tcp"}
assert bases == want and len(rows) == len(want), rows
' "$T/out" 2>"$T/err"; then
	ok=0
	why="JSON check failed"
fi
report

check "without socat its rows are skipped with a note, exit 0" 0 \
	env PATH=/nonexistent "$RILL" bench --bytes 4M relay-splice
expect out "^relay-splice +${row}direct tcp"
expect err '^rill bench: relay-splice-vs-socat skipped: socat is not installed$'
if [ "$ok" = 1 ] && grep -q socat "$T/out"; then
	ok=0
	why="a socat row was printed"
fi
report

[ "$failed" = 0 ]
