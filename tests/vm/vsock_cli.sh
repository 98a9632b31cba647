# rill's CLI and socat over real AF_VSOCK, inside the vsock guest
# (test_vm_vsock.py). Sourced helpers: tests/tap_lib.sh.
RILL=${RILL:?}
. /etc/rill-vm/tap_lib.sh
echo "1..1"
check "version" 0 "$RILL" --version
report
exit $((failed > 0))
