#!/bin/sh
# CPU time per request of two `rill http serve` binaries, same run,
# interleaved: wrk -t1 -c50 against a 612-byte file for SECONDS each, the
# server's utime+stime read from /proc. CPU per request stays meaningful on
# a loaded machine, where requests per second do not.
#
# Usage: bench/http_cpu_ab.sh RILL_A RILL_B [ROUNDS] [SECONDS]
set -eu
a=$1
b=$2
rounds=${3:-4}
secs=${4:-4}
command -v wrk >/dev/null || { echo "wrk not installed" >&2; exit 1; }
tmp=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
head -c 459 /dev/urandom | base64 -w0 | head -c 612 >"$tmp/index.html"
tck=$(getconf CLK_TCK)
port=$((23000 + $$ % 5000))
i=0
while [ $i -lt "$rounds" ]; do
	for which in A B; do
		if [ $which = A ]; then r=$a; else r=$b; fi
		port=$((port + 1))
		"$r" http serve --threads 1 "tcp://127.0.0.1:$port" "$tmp" \
			2>/dev/null &
		pid=$!
		sleep 0.3
		n=$(wrk -t1 -c50 -d"${secs}s" "http://127.0.0.1:$port/index.html" |
			awk '/requests in/ {print $1}')
		cpu=$(awk '{print $14 + $15}' "/proc/$pid/stat")
		kill "$pid"
		wait "$pid" 2>/dev/null || true
		pid=""
		echo "round $((i + 1)) $which requests $n cpu_us_per_req" \
			"$(echo "scale=2; $cpu * 1000000 / $tck / $n" | bc)"
	done
	i=$((i + 1))
done
