# The vsock guest's job (run by /init; see test_vm_vsock.py): the API
# checks, the CLI, and the conformance suite on vsock, shut+vsock and
# tls+vsock, in two lanes at once (much of each is waiting: deadlines,
# stalls, sleeps). Every program's TAP goes back to the host through
# guest_lib.sh. Each lane's limits add up to less than the host's hard
# timeout of the whole guest (test_vm_vsock.py), so that a program that
# hangs is killed and counted as failed while the others still report. A
# passing run takes 100-150 s; the limits leave room for a host so loaded
# that a program takes 160 s (measured at a load average of 15 on 2 cores).
. /etc/rill-vm/guest_lib.sh

if [ ! -c /dev/vsock ]; then
	vm_fail "no /dev/vsock after loading the vsock modules"
fi
lane=$(mktemp)
{
	vm_run conf-shut+vsock 240 "$CONF_SOCKET_OPT" conf/shut+vsock/
	vm_run conf-tls+vsock 240 "$TLS_CONF" conf/tls+vsock/
} >"$lane" &
lane_pid=$!
vm_run api 90 "$VSOCK_API"
vm_run cli 240 sh /etc/rill-vm/vsock_cli.sh
vm_run conf-vsock 240 "$CONF_SOCKET" conf/vsock/
wait "$lane_pid" || vm_fail "the second lane exited with status $?"
cat "$lane"
rm -f "$lane"
