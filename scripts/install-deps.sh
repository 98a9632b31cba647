#!/bin/sh
# Installs every Debian 12 package rill's build, tests and benchmarks need.
# Runs `apt-get update` once and `apt-get install -y` only when something is
# missing, so repeated `make` calls stay fast and offline-safe.
set -eu

PKGS="meson ninja-build pkg-config gcc clang libclang-rt-14-dev libuv1-dev
libssl-dev openssl node-llhttp socat ncat iperf3 curl wrk nginx-light
valgrind python3 iproute2 clang-format-14 libxen-dev haproxy systemd
python3-h11 cppcheck"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi
echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
