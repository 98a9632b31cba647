# The domU job of the Xen guest tests: the domU halves of the dom0<->domU
# legs, in the order xen_dom0.sh runs the dom0 halves. Its results go to
# its console (VM_RESULTS=/dev/hvc0), which dom0's xenconsoled logs and
# dom0 relays.
. /etc/rill-vm/guest_lib.sh
. /etc/rill-vm/xen_lib.sh

xen_devices_ready || exit 0
SELF=$(xenstore-read domid) || {
	vm_fail "domU: cannot read its domid from xenstore"
	exit 0
}
M=256K
P0=/local/domain/0/data/vchan/$SELF
PU=/local/domain/$SELF/data/vchan/0

if [ "$XEN_MODE" = bench ]; then
	for r in $(seq 1 "$BENCH_ROUNDS"); do
		for kind in lib rill rill-nospin; do
			prog=$RILLP
			[ $kind = lib ] && prog=$LIBP
			spin=50000
			[ $kind = rill-nospin ] && spin=0
			export RILL_VCHAN_SPIN_NS=$spin
			vm_run "domU-bench-tput-$kind-$r" \
				120 $prog "domU bench $kind tput" client 0 \
				$P0/t$kind$r --bench-tput $BENCH_BYTES
			vm_run "domU-bench-rtt-$kind-$r" \
				120 $prog "domU bench $kind rtt" client 0 \
				$P0/r$kind$r --bench-rtt $BENCH_RTTS
		done
	done
	exit 0
fi

vm_run domU-lc 90 $LIBP "domU libxenvchan client <-> rill server in dom0" \
	client 0 $P0/a --send $M --expect $M
vm_run domU-rc 90 $RILLP "domU rill client <-> libxenvchan server in dom0" \
	client 0 $P0/b --send $M --expect $M
vm_run domU-rs 90 $RILLP "domU rill server <-> libxenvchan client in dom0" \
	server 0 $PU/c --send $M --expect $M
vm_run domU-ls 90 $LIBP "domU libxenvchan server <-> rill client in dom0" \
	server 0 $PU/d --send $M --expect $M
vm_run domU-rr 90 $RILLP "domU rill client <-> rill server in dom0 (default path)" \
	client 0 rr --send $M --expect $M
vm_run domU-rr2 90 $RILLP "domU rill server <-> rill client in dom0 (default path)" \
	server 0 rr2 --send $M --expect $M
vm_run domU-1k 90 $LIBP "ring 1K: domU libxenvchan client <-> rill server in dom0" \
	client 0 $P0/e --send 32K --expect 32K
vm_run domU-1m 90 $RILLP "ring 1M: domU rill client <-> libxenvchan server in dom0" \
	client 0 $P0/f --send $M --expect $M
