# The dom0 job of the Xen guest tests (tests/xen/test_vm_xen.py): sets up
# Xen's user space, runs the dom0<->dom0 legs, starts the PV domU and
# runs the dom0 halves of the dom0<->domU legs while the domU runs the
# other halves (xen_domu.sh), then relays the domU's results from its
# console log. Every leg's lines name it; the words "libxenvchan" and
# "domU" are in the lines of those legs.
#
# Environment (from the initramfs): LIBP (xen_lib_peer, on libxenvchan),
# RILLP (xen_rill_peer, on rill), CONF (test_conf_xen), RILL (the CLI),
# PROXY (Xen's vchan-socket-proxy), DOMU_KERNEL, DOMU_INITRD, XEN_MODE
# (test or bench), BENCH_BYTES, BENCH_RTTS.
. /etc/rill-vm/guest_lib.sh
. /etc/rill-vm/xen_lib.sh

D=/local/domain/0/data
M=512K # bytes each way in a leg

xen_setup() {
	mkdir -p /proc/xen /var/run/xenstored /var/run/xen /var/lib/xenstored \
		/var/log/xen /var/lib/xen /run/xen /var/log/xen/console
	mount -t xenfs xenfs /proc/xen || return 1
	"$XEN_BIN/xenstored" --pid-file=/run/xenstored.pid || return 1
	"$XEN_BIN/xen-init-dom0" >/dev/null || return 1
	"$XEN_BIN/xenconsoled" --log=guest \
		--log-dir=/var/log/xen/console || return 1
	xen_devices_ready
}

# ---------------------------------------------------------------------
# dom0 <-> dom0

interop_dom0() {
	xen_bg rs-lc 60 $RILLP "rill server <-> libxenvchan client (dom0<->dom0)" \
		server 0 $D/i1 --send $M --expect $M
	vm_run lc-rs 60 $LIBP "libxenvchan client <-> rill server (dom0<->dom0)" \
		client 0 $D/i1 --send $M --expect $M
	xen_bg_wait
	xen_bg ls-rc 60 $LIBP "libxenvchan server <-> rill client (dom0<->dom0)" \
		server 0 $D/i2 --send $M --expect $M
	vm_run rc-ls 60 $RILLP "rill client <-> libxenvchan server (dom0<->dom0)" \
		client 0 $D/i2 --send $M --expect $M
	xen_bg_wait
}

# Every ring size from 1 KiB (in the page) to 1 MiB (256 grants), both
# roles against libxenvchan; the server picks the sizes. One process per
# side walks through the sizes (processes start slowly under emulation).
SIZES=1K,2K,4K,16K,64K,256K,1M
ring_sizes() {
	xen_bg sizes-rs 90 $RILLP "ring sizes $SIZES: rill server <-> libxenvchan client" \
		server 0 $D/s --sizes $SIZES --send 64K --expect 64K
	vm_run sizes-lc 90 $LIBP "ring sizes $SIZES: libxenvchan client <-> rill server" \
		client 0 $D/s --sizes $SIZES --send 64K --expect 64K
	xen_bg_wait
	xen_bg sizes-ls 90 $LIBP "ring sizes $SIZES: libxenvchan server <-> rill client" \
		server 0 $D/t --sizes $SIZES --send 64K --expect 64K
	vm_run sizes-rc 90 $RILLP "ring sizes $SIZES: rill client <-> libxenvchan server" \
		client 0 $D/t --sizes $SIZES --send 64K --expect 64K
	xen_bg_wait
}

# A peer killed by SIGKILL (it never clears its live byte itself: the
# kernel's unmap notification must): EOF within 5 s, each role, with
# libxenvchan and with rill as the one killed.
kill_legs() {
	vm_run kill-lc 60 $RILLP "SIGKILL of a libxenvchan client: rill server sees EOF" \
		server 0 $D/k1 --expect 64K --kill-peer \
		$LIBP victim client 0 $D/k1 --send 64K --hold
	vm_run kill-rc 60 $RILLP "SIGKILL of a rill client: rill server sees EOF" \
		server 0 $D/k2 --expect 64K --kill-peer \
		$RILLP victim client 0 $D/k2 --send 64K --hold
	vm_run kill-ls 60 $RILLP "SIGKILL of a libxenvchan server: rill client sees EOF" \
		client 0 $D/k3 --expect 64K --kill-peer \
		$LIBP victim server 0 $D/k3 --send 64K --hold
	vm_run kill-rs 60 $RILLP "SIGKILL of a rill server: rill client sees EOF" \
		client 0 $D/k4 --expect 64K --kill-peer \
		$RILLP victim server 0 $D/k4 --send 64K --hold
}

# A hostile libxenvchan peer writes indices out of range: RILL_ERING.
hostile_legs() {
	for what in prod cons; do
		xen_bg "hostile-$what" 60 $LIBP \
			"hostile libxenvchan client ($what index)" \
			client 0 $D/h$what --send 4K --expect 4K --hostile $what
		vm_run "ering-$what" 60 $RILLP \
			"rill server gets RILL_ERING from a hostile libxenvchan client ($what)" \
			server 0 $D/h$what --send 4K --expect 4K --expect-ering
		xen_bg_wait
	done
	xen_bg hostile-srv 60 $LIBP "hostile libxenvchan server (prod index)" \
		server 0 $D/hs --send 4K --expect 4K --hostile prod
	vm_run ering-srv 60 $RILLP \
		"rill client gets RILL_ERING from a hostile libxenvchan server" \
		client 0 $D/hs --send 4K --expect 4K --expect-ering
	xen_bg_wait
}

# Xen's vchan-socket-proxy as a third-party peer, in both of its modes.
proxy_legs() {
	# server mode: vchan -> Unix socket, where rill echo answers
	xen_daemon $RILL echo unix:/tmp/echo.sock
	xen_daemon "$PROXY" -m server 0 $D/p1 /tmp/echo.sock
	vm_run proxy-srv 60 $RILLP \
		"rill client <-> vchan-socket-proxy server -> rill echo (libxenvchan)" \
		client 0 $D/p1 --send 256K --expect 256K --echo
	xen_daemons_stop
	# client mode on stdin/stdout: the pattern in, the reply checked
	xen_bg proxy-cli 60 $RILLP \
		"rill server <-> vchan-socket-proxy client (libxenvchan)" \
		server 0 $D/p2 --send 256K --expect 256K --until-eof
	vm_run proxy-pipe 60 sh -c "($RILLP gen 2 256K; sleep 1) |
		$PROXY 0 $D/p2 - | $RILLP check 1 256K \
		'vchan-socket-proxy client: the rill server answered'"
	xen_bg_wait
}

# The CLI: rill echo / cat / relay with xen-vchan URIs (shut+ for the
# half-close that rill cat needs).
cli_legs() {
	head -c 1000000 /dev/urandom >/tmp/in
	xen_daemon $RILL echo shut+xen-vchan:0/echo
	xen_wait_key $D/vchan/0/echo/ring-ref
	vm_run cli-cat 60 sh -c "$RILL cat shut+xen-vchan:0/echo </tmp/in \
		>/tmp/out && cmp /tmp/in /tmp/out && echo '1..1' &&
		echo 'ok 1 - rill cat <-> rill echo over shut+xen-vchan (dom0<->dom0)'"
	xen_daemon $RILL echo tcp://127.0.0.1:7000
	xen_daemon $RILL relay xen-vchan:0/relay tcp://127.0.0.1:7000
	xen_wait_key $D/vchan/0/relay/ring-ref
	vm_run cli-relay 60 $RILLP "rill relay xen-vchan:0/relay -> tcp echo" \
		client 0 relay --send $M --expect $M --echo
	xen_daemons_stop
}

# xen-vchan has no half-close: at the end of its input rill cat must not
# end the vchan (live 0), or a libxenvchan peer stops answering and the
# reply is cut short (issue 22). The peer is Xen's vchan-socket-proxy in
# server mode in front of rill echo; 1 MiB goes there and back, checked
# by hash, straight and through a relay hop (tcp -> xen-vchan).
nohc_legs() {
	head -c 1048576 /dev/urandom >/tmp/nohc-in
	xen_daemon $RILL echo unix:/tmp/nohc-echo.sock
	xen_daemon "$PROXY" -m server 0 $D/n1 /tmp/nohc-echo.sock
	xen_daemon "$PROXY" -m server 0 $D/n2 /tmp/nohc-echo.sock
	xen_wait_key $D/n1/ring-ref
	xen_wait_key $D/n2/ring-ref
	vm_run nohc-cat 90 sh -c ". /etc/rill-vm/xen_lib.sh
		$RILL cat --idle-timeout 3 'xen-vchan:0?path=$D/n1' \
			</tmp/nohc-in >/tmp/nohc-out1
		nohc_check 'rill cat -> libxenvchan echo (no half-close)' \
			/tmp/nohc-out1 \$?"
	xen_daemon $RILL relay --idle-timeout 3 tcp://127.0.0.1:7100 \
		"xen-vchan:0?path=$D/n2"
	vm_run nohc-relay 90 sh -c ". /etc/rill-vm/xen_lib.sh
		i=0; while ! netstat -ltn 2>/dev/null | grep -q ':7100 ' &&
			[ \$i -lt 100 ]; do sleep 0.1; i=\$((i + 1)); done
		$RILL cat tcp://127.0.0.1:7100 </tmp/nohc-in >/tmp/nohc-out2
		nohc_check 'rill cat -> rill relay -> libxenvchan echo (no half-close)' \
			/tmp/nohc-out2 \$?"
	xen_daemons_stop
	rm -f /tmp/nohc-in /tmp/nohc-out1 /tmp/nohc-out2
}

conformance() {
	vm_run conf-xen-vchan 240 $CONF conf/xen-vchan/
}

# ---------------------------------------------------------------------
# dom0 <-> domU

domu_start() {
	cat >/etc/xen/domu.cfg <<EOF
name = "rill-domu"
kernel = "$DOMU_KERNEL"
ramdisk = "$DOMU_INITRD"
extra = "console=hvc0 quiet loglevel=3 rdinit=/init panic=-1"
memory = 160
vcpus = 1
on_crash = "destroy"
EOF
	"$XEN_BIN/xl" create -q /etc/xen/domu.cfg >/tmp/xl.log 2>&1 || {
		vm_fail "xl create failed: $(tail -n 5 /tmp/xl.log)"
		return 1
	}
	U=$("$XEN_BIN/xl" domid rill-domu)
	vm_note "dom0: the domU ($U) is created"
}

# The dom0 halves, in the order xen_domu.sh runs the domU halves.
domu_legs() {
	M=256K
	P0=/local/domain/0/data/vchan/$U
	PU=/local/domain/$U/data/vchan/0
	vm_run du-rs 90 $RILLP "dom0 rill server <-> libxenvchan client in domU" \
		server $U $P0/a --send $M --expect $M
	vm_run du-ls 90 $LIBP "dom0 libxenvchan server <-> rill client in domU" \
		server $U $P0/b --send $M --expect $M
	vm_run du-lc 90 $LIBP "dom0 libxenvchan client <-> rill server in domU" \
		client $U $PU/c --send $M --expect $M
	vm_run du-rc 90 $RILLP "dom0 rill client <-> libxenvchan server in domU" \
		client $U $PU/d --send $M --expect $M
	vm_run du-rr 90 $RILLP "dom0 rill server <-> rill client in domU (default path)" \
		server $U rr --send $M --expect $M
	vm_run du-rr2 90 $RILLP "dom0 rill client <-> rill server in domU (default path)" \
		client $U rr2 --send $M --expect $M
	vm_run du-1k 90 $RILLP "ring 1K: dom0 rill server <-> libxenvchan client in domU" \
		server $U $P0/e --read-size 1K --write-size 1K --send 32K --expect 32K
	vm_run du-1m 90 $LIBP "ring 1M: dom0 libxenvchan server <-> rill client in domU" \
		server $U $P0/f --read-size 1M --write-size 1M --send $M --expect $M
}

# Waits for the domU's job to end, then relays its results (they came
# through its console: xenconsoled's log).
domu_results() {
	log=/var/log/xen/console/guest-rill-domu.log
	i=0
	while ! grep -q "${VM_MARK}done" "$log" 2>/dev/null && [ $i -lt 600 ]; do
		sleep 0.2
		i=$((i + 1))
	done
	grep -q "${VM_MARK}done" "$log" 2>/dev/null ||
		vm_fail "the domU did not finish its job (console: $(tail -n 5 "$log" 2>/dev/null | tr '\n' ' '))"
	tr -d '\r' <"$log" | grep "^${VM_MARK}" | grep -v "^${VM_MARK}done"
}

# The benchmark (bench/xen_vchan.py): throughput and round trip, dom0
# server and domU client, for libxenvchan and rill (spinning by default,
# and without the spin), BENCH_ROUNDS rounds with the kinds interleaved.
BENCH_KINDS="lib rill rill-nospin"
bench() {
	P0=/local/domain/0/data/vchan/$U
	for r in $(seq 1 "$BENCH_ROUNDS"); do
		for kind in $BENCH_KINDS; do
			prog=$RILLP
			[ $kind = lib ] && prog=$LIBP
			spin=50000
			[ $kind = rill-nospin ] && spin=0
			export RILL_VCHAN_SPIN_NS=$spin
			vm_run "bench-tput-$kind-$r" 120 \
				$prog "bench $kind tput (dom0 server)" server $U \
				$P0/t$kind$r --read-size 1M --write-size 1M \
				--bench-tput $BENCH_BYTES
			vm_run "bench-rtt-$kind-$r" 120 \
				$prog "bench $kind rtt (dom0 server)" server $U \
				$P0/r$kind$r --bench-rtt $BENCH_RTTS
		done
	done
}

if ! xen_setup; then
	vm_fail "Xen's user space did not start in dom0"
	exit 0
fi
vm_note "dom0: Xen's user space is up"
if [ "$XEN_MODE" = bench ]; then
	domu_start && bench && domu_results
	exit 0
fi
interop_dom0
ring_sizes
kill_legs
hostile_legs
proxy_legs
cli_legs
nohc_legs
conformance
vm_note "dom0: the dom0<->dom0 legs are done"
if domu_start; then
	domu_legs
	vm_note "dom0: the dom0 halves of the domU legs are done"
	domu_results
fi
