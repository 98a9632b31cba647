#!/bin/sh
# Installs every Debian 12 package rill's build, tests and benchmarks need.
# Runs `apt-get update` once and `apt-get install -y` only when something is
# missing, so repeated `make` calls stay fast and offline-safe.
# Then, when RILL_VM_KERNEL_DIR is set (the Makefile sets it to
# build/vm-kernel), makes sure Debian's stock kernel for the guest tests is
# unpacked there (tests/vm/rillvm.py fetch-kernel: downloaded once, never
# installed into /boot).
set -eu

PKGS="meson ninja-build pkg-config gcc clang libclang-rt-14-dev libuv1-dev
libssl-dev openssl node-llhttp socat ncat iperf3 curl wrk nginx-light
valgrind python3 iproute2 clang-format-14 libxen-dev haproxy systemd
python3-h11 libxenmisc4.17 microsocks dante-server tinyproxy prometheus
xen-hypervisor-4.17-amd64 xen-utils-4.17 xenstore-utils
qemu-system-x86 busybox-static cpio kmod cppcheck h2o stunnel4 linux-perf
libwslay-dev python3-websockets node-ws websockify chromium"

fetch_kernel() {
	[ -n "${RILL_VM_KERNEL_DIR:-}" ] || return 0
	# A failed download leaves the guest tests skipped, not the build.
	python3 "$(dirname "$0")/../tests/vm/rillvm.py" fetch-kernel \
		"$RILL_VM_KERNEL_DIR" ||
		echo "install-deps: no guest kernel; the guest tests will be skipped" >&2
}

# RILL_DEPS_PKGS replaces the list (tests/test_deps.sh checks the script
# with a package that exists nowhere).
PKGS=${RILL_DEPS_PKGS:-$PKGS}
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	fetch_kernel
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	# Not root: no password prompt in the middle of a build; one line
	# that says what to run, and a failure.
	echo "install-deps: missing packages; as root run: apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi
echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
fetch_kernel
