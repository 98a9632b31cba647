#!/bin/sh
# /init of a rillvm guest (tests/vm/rillvm.py builds the initramfs): mounts
# the kernel's file systems, brings up the loopback interface, loads the
# modules listed in /etc/rill-vm/modules (in order), runs /etc/rill-vm/job
# with its standard output on the result port ($VM_RESULTS) and its
# standard error on the console, says "done" and powers off. Anything that
# goes wrong here is reported as a "fail" line (guest_lib.sh), which the
# host counts as a failed test.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
exec </dev/null >/dev/console 2>&1
. /etc/rill-vm/env
. /etc/rill-vm/guest_lib.sh
# Raw: no "\n" -> "\r\n" and no echo of anything on the result port.
stty -F "$VM_RESULTS" raw -echo 2>/dev/null
{
	vm_note "/init starts"
	ip link set lo up || vm_fail "ip link set lo up failed"
	while read -r m; do
		insmod "$m" || vm_fail "insmod $m failed"
	done </etc/rill-vm/modules
	vm_note "the job starts"
	sh /etc/rill-vm/job || vm_fail "the job exited with status $?"
	vm_note "the job ends"
	echo "${VM_MARK}done"
} >"$VM_RESULTS"
sync
poweroff -f
