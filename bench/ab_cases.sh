#!/bin/sh
# A/B of two rill binaries over the basic `rill bench` cases, interleaved:
#   bench/ab_cases.sh OLD_RILL NEW_RILL [ROUNDS]
# For each round, each binary in turn runs tcp4, unix and shut+unix with
# 512 MiB and tls+tcp with 256 MiB; each line is "binary round case
# value unit ratio" (ratio: the rill flow over its same-run baseline).
OLD=${1:?usage: $0 OLD_RILL NEW_RILL [ROUNDS]}
NEW=${2:?usage: $0 OLD_RILL NEW_RILL [ROUNDS]}
ROUNDS=${3:-3}
r=1
while [ "$r" -le "$ROUNDS" ]; do
	for b in old new; do
		if [ "$b" = old ]; then R=$OLD; else R=$NEW; fi
		for c in tcp4 unix shut+unix tls+tcp; do
			bytes=512M
			[ "$c" = tls+tcp ] && bytes=256M
			printf "%s r%d %s " "$b" "$r" "$c"
			"$R" bench --bytes "$bytes" "$c" 2>&1 |
				awk -v c="$c" '$1 == c && /throughput/ {
					print $3, $4, $NF; exit }'
		done
	done
	r=$((r + 1))
done
