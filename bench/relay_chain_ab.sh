#!/bin/bash
# iperf3 through a chain of three `rill relay`s, splice path (A) against the
# generic path (B), alternating runs so both see the same machine load.
# Usage: bench/relay_chain_ab.sh [build/rill] [runs]
R=${1:-build/rill}
N=${2:-4}
iperf3 -s -p 18051 >/dev/null 2>&1 &
pids=($!)
chain() { # opts baseport
	$R relay --quiet $1 tcp://127.0.0.1:$(($2 + 2)) tcp://127.0.0.1:18051 &
	pids+=($!)
	$R relay --quiet $1 tcp://127.0.0.1:$(($2 + 1)) tcp://127.0.0.1:$(($2 + 2)) &
	pids+=($!)
	$R relay --quiet $1 tcp://127.0.0.1:$2 tcp://127.0.0.1:$(($2 + 1)) &
	pids+=($!)
}
chain "" 18060
chain "--no-splice" 18070
sleep 0.5
for i in $(seq "$N"); do
	echo -n "splice "
	iperf3 -c 127.0.0.1 -p 18060 -t 3 -f g | awk '/receiver/ {print $7 " Gbit/s"}'
	echo -n "copy   "
	iperf3 -c 127.0.0.1 -p 18070 -t 3 -f g | awk '/receiver/ {print $7 " Gbit/s"}'
done
kill "${pids[@]}"
