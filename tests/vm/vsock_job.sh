# The vsock guest's job (run by /init; see test_vm_vsock.py): the API
# checks, the conformance suite on vsock, shut+vsock and tls+vsock, and the
# CLI. Every program's TAP goes back to the host through guest_lib.sh.
. /etc/rill-vm/guest_lib.sh

if [ ! -c /dev/vsock ]; then
	vm_fail "no /dev/vsock after loading the vsock modules"
fi
vm_run api 120 "$VSOCK_API"
vm_run conf-vsock 300 "$CONF_SOCKET" conf/vsock/
vm_run conf-shut+vsock 300 "$CONF_SOCKET" conf/shut+vsock/
vm_run conf-tls+vsock 300 "$TLS_CONF" conf/tls+vsock/
vm_run cli 300 sh /etc/rill-vm/vsock_cli.sh
