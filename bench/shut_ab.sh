#!/bin/sh
# `rill bench shut+unix` with two rill binaries A and B in alternating runs
# (ABBA...), so both see the same machine load; each run is itself a
# same-run ratio of shut+unix against the plain unix flow. Prints every
# run (binary, shut+unix MB/s, unix MB/s, ratio), then each binary's
# medians.
# Usage: bench/shut_ab.sh RILL_A RILL_B [pairs] [bytes]
A=${1:?usage: $0 RILL_A RILL_B [pairs] [bytes]}
B=${2:?usage: $0 RILL_A RILL_B [pairs] [bytes]}
N=${3:-10}
BYTES=${4:-1G}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for i in $(seq "$N"); do
	if [ $((i % 2)) = 1 ]; then order="A B"; else order="B A"; fi
	for w in $order; do
		if [ "$w" = A ]; then r=$A; else r=$B; fi
		taskset -c 0 "$r" bench --bytes "$BYTES" shut+unix 2>&1 |
			awk -v w="$w" '/^shut\+unix/ {sub("x", "", $8);
				print w, $3, $6, $8}' | tee -a "$out"
	done
done
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
for w in A B; do
	echo "$w: median ratio $(awk -v w="$w" '$1 == w {print $4}' "$out" |
		median)x, shut+unix $(awk -v w="$w" '$1 == w {print $2}' "$out" |
		median) MB/s, unix $(awk -v w="$w" '$1 == w {print $3}' "$out" |
		median) MB/s (medians of $N runs)"
done
