#!/bin/sh
# `rill bench relay`: the rows of rill relay beside each peer (socat -b
# 131072, HAProxy, the threaded forwarder; the copy path, direct TCP and
# socat's 8 KiB default as extra rows) for every metric, the report after
# the table, JSON, and the rows of a missing tool skipped with a note (not
# a failure). Small transfers, one round: timings are not asserted.
# TAP output. Usage: test_bench_relay.sh PATH/TO/rill
RILL=${1:?usage: $0 PATH/TO/rill}
. "$(dirname "$0")/tap_lib.sh"

v=' +[0-9.]+'
echo "1..3"

check "bench relay: every metric beside every peer, then the report" 0 \
	"$RILL" bench --bytes 8M --rounds 1 relay
expect out '^flow +metric +value +baseline'
for base in 'fwd-threads' 'splice-threads' 'rill relay --no-splice' \
	'rill relay \(untuned\)' 'direct tcp'; do
	expect out "^relay +throughput${v} MB/s +${base}${v} MB/s${v}x\$"
done
expect out "^relay +cpu${v} ms/GiB +fwd-threads${v} ms/GiB${v}x\$"
expect out "^relay +cpu${v} ms/GiB +splice-threads${v} ms/GiB${v}x\$"
expect out "^relay +rtt-added${v} us +fwd-threads${v} us${v}x\$"
expect out "^relay +4-streams${v} MB/s +fwd-threads${v} MB/s${v}x\$"
for tool in socat haproxy; do
	if command -v $tool >/dev/null; then
		expect out "^relay +throughput${v} MB/s +${tool}"
		expect out "^relay +cpu${v} ms/GiB +${tool}"
		expect out "^relay +rtt-added${v} us +${tool}"
		expect out "^relay +4-streams${v} MB/s +${tool}"
		expect out "^\\| ${tool}"
	else
		expect err "skipped: ${tool} is not installed"
	fi
done
# The TLS rows (bench/bench_tls_relay.c), both directions.
if command -v socat >/dev/null && command -v haproxy >/dev/null &&
	command -v stunnel4 >/dev/null; then
	for d in termination origination; do
		for tool in socat haproxy stunnel4; do
			expect out "^tls ${d} +throughput${v} MB/s +${tool}${v} MB/s${v}x\$"
			expect out "^tls ${d} +CPU${v} ms/GiB +${tool}${v} ms/GiB${v}x\$"
		done
	done
fi
expect out '^relay run: 1 interleaved rounds, medians; 8 MiB per run'
expect out '^\| rill relay \| [0-9.]+ \| [0-9.]+ \|'
expect out '^\| fwd-threads \| [0-9.]+ \| [0-9.]+ \|'
expect out '^\| direct tcp \| [0-9.]+ \| - \| [0-9.]+ \| [0-9.]+ \| - \| [0-9.]+ \| - \|$'
expect out '^  throughput: [0-9.]+x the best peer'
expect out '^  4 streams: the relay.s CPU time spread over [0-9]+ thread'
report

check "bench --json relay-vs-copy is valid JSON with its row" 0 \
	"$RILL" bench --json --bytes 8M --rounds 1 relay-vs-copy
if [ "$ok" = 1 ] && ! python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))
assert len(rows) == 1, rows
r = rows[0]
assert r["flow"] == "relay" and r["baseline"] == "rill relay --no-splice"
assert r["value"] > 0 and r["baseline_value"] > 0, r
assert r["lower_is_better"] is False, r
' "$T/out" 2>"$T/err2"; then
	ok=0
	why="JSON check failed: $(cat "$T/err2")"
fi
report

check "without socat and haproxy their rows are skipped with a note" 0 \
	env PATH=/nonexistent "$RILL" bench --bytes 4M --rounds 1 relay-vs
expect out "^relay +throughput${v} MB/s +fwd-threads"
expect err '^rill bench: relay-vs-socat skipped: socat is not installed$'
expect err '^rill bench: relay-vs-haproxy skipped: haproxy is not installed$'
if [ "$ok" = 1 ] && grep -Eq '^(relay +[a-z0-9-]+ +[0-9.]+ [^ ]+ +|\| )(socat|haproxy)' \
	"$T/out"; then
	ok=0
	why="a socat or haproxy row was printed"
fi
report

[ "$failed" = 0 ]
