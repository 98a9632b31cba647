#!/bin/sh
# The CLI skeleton: --help, --version, a wrong command line (exit 2 with a
# message on stderr), and `rill bench` printing the pair row beside its
# memcpy baseline (timings are not asserted). TAP output.
# Usage: test_cli_core.sh PATH/TO/rill
RILL=${1:?usage: $0 PATH/TO/rill}
. "$(dirname "$0")/tap_lib.sh"

echo "1..12"

check "--help prints usage, exit 0" 0 "$RILL" --help
expect out '^Usage: rill COMMAND'
expect out 'bench'
empty err
report

check "-h is --help" 0 "$RILL" -h
expect out '^Usage: rill'
report

check "--version prints the version, exit 0" 0 "$RILL" --version
expect out '^rill [0-9]+\.[0-9]+\.[0-9]+'
empty err
report

check "no command: exit 2, message on stderr" 2 "$RILL"
expect err 'rill: no command given'
expect err "Try 'rill --help'"
empty out
report

check "unknown command: exit 2, names it" 2 "$RILL" frobnicate
expect err "unknown command 'frobnicate'"
empty out
report

check "unknown option: exit 2" 2 "$RILL" --frobnicate
expect err "rill: "
empty out
report

check "bench --help: exit 0" 0 "$RILL" bench --help
expect out '^Usage: rill bench'
report

check "bench bad option: exit 2" 2 "$RILL" bench --no-such-option
expect err "Try 'rill bench --help'"
report

check "bench bad size: exit 2, names it" 2 "$RILL" bench --bytes lots
expect err "bad size 'lots'"
report

check "bench unknown case: exit 2" 2 "$RILL" bench --bytes 1M no-such-case
expect err "no benchmark case matches 'no-such-case'"
empty out
report

check "bench prints the pair row beside memcpy" 0 "$RILL" bench --bytes 4M pair
expect out '^flow +metric +value +baseline'
expect out '^pair +throughput +[0-9.]+ MB/s +memcpy +[0-9.]+ MB/s +[0-9.]+x$'
report

check "bench --json is valid JSON with the pair row" 0 "$RILL" bench --json --bytes 4M pair
if [ "$ok" = 1 ] && ! python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))
assert any(r["flow"] == "pair" and r["baseline"] == "memcpy" and
           r["value"] > 0 and r["baseline_value"] > 0 for r in rows), rows
' "$T/out" 2>"$T/err"; then
	ok=0
	why="JSON check failed"
fi
report

[ "$failed" = 0 ]
