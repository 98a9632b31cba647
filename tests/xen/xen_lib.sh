# Helpers of the Xen guest jobs (xen_dom0.sh, xen_domu.sh), sourced after
# /etc/rill-vm/guest_lib.sh.

XEN_BIN=/usr/lib/xen-4.17/bin
XEN_BG_DIR=/tmp/xen-bg
xen_bg_pids=""

# xen_bg NAME TIMEOUT CMD...: vm_run in the background; its report is
# kept in a file and printed by xen_bg_wait (reports must not interleave
# on the result port).
xen_bg() {
	mkdir -p "$XEN_BG_DIR"
	xen_bg_n=$1
	(vm_run "$@" >"$XEN_BG_DIR/$xen_bg_n") &
	xen_bg_pids="$xen_bg_pids $!"
}

# xen_bg_wait: waits for every xen_bg job, then prints their reports.
xen_bg_wait() {
	for p in $xen_bg_pids; do
		wait "$p"
	done
	xen_bg_pids=""
	for f in "$XEN_BG_DIR"/*; do
		[ -f "$f" ] || continue
		cat "$f"
		rm -f "$f"
	done
}

# xen_daemon CMD...: a helper process (echo server, proxy) that
# xen_daemons_stop ends.
xen_daemon_pids=""
xen_daemon() {
	"$@" </dev/null >/dev/null 2>>/tmp/xen-daemons.log &
	xen_daemon_pids="$xen_daemon_pids $!"
}

xen_daemons_stop() {
	for p in $xen_daemon_pids; do
		kill "$p" 2>/dev/null
	done
	for p in $xen_daemon_pids; do
		wait "$p" 2>/dev/null
	done
	xen_daemon_pids=""
}

# xen_modules_ready: the devices rill's Xen backend needs are there.
xen_devices_ready() {
	for d in evtchn gntdev gntalloc; do
		[ -c "/dev/xen/$d" ] || {
			vm_fail "no /dev/xen/$d after loading the Xen modules"
			return 1
		}
	done
}

# xen_wait_key PATH: waits (up to 20 s) until the xenstore key exists (a
# server started in the background published its vchan).
xen_wait_key() {
	i=0
	while ! xenstore-read "$1" >/dev/null 2>&1 && [ $i -lt 100 ]; do
		sleep 0.2
		i=$((i + 1))
	done
}

# nohc_check NAME FILE STATUS: the TAP of one no-half-close leg
# (xen_dom0.sh nohc_legs): exit status 0, and FILE is /tmp/nohc-in.
nohc_check() {
	want=$(sha256sum /tmp/nohc-in | cut -d' ' -f1)
	got=$(sha256sum "$2" | cut -d' ' -f1)
	echo "1..2"
	if [ "$3" = 0 ]; then
		echo "ok 1 - $1: exit 0"
	else
		echo "not ok 1 - $1: exit status $3"
	fi
	if [ "$want" = "$got" ]; then
		echo "ok 2 - $1: the reply is whole ($(wc -c <"$2") bytes, sha256)"
	else
		echo "not ok 2 - $1: the reply differs ($(wc -c <"$2") of $(wc -c </tmp/nohc-in) bytes)"
	fi
}
