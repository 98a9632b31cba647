#!/bin/sh
# TAP wrapper for the examples: runs one example program with what it
# needs in a fresh temporary directory and reports its exit status.
# Usage: run_example.sh MODE PROGRAM
#   tls   PROGRAM CERT KEY CA   (a CA and a localhost certificate, made
#                                here with the openssl CLI: no key is
#                                ever committed)
#   sock  PROGRAM DIR/http.sock
#   dir   PROGRAM DIR
mode=$1
prog=$2
name=$(basename "$prog")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "1..1"
case $mode in
tls)
	if ! command -v openssl >/dev/null; then
		echo "ok 1 # SKIP $name: no openssl CLI"
		exit 0
	fi
	(
		cd "$tmp" &&
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
			-nodes -keyout ca.key -out ca.pem -days 2 \
			-subj "/CN=rill example CA" &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
			-nodes -keyout srv.key -out srv.csr -subj "/CN=localhost" &&
		printf 'subjectAltName=DNS:localhost\n' >ext &&
		openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key \
			-CAcreateserial -out srv.pem -days 2 -extfile ext
	) >"$tmp/openssl.log" 2>&1 || {
		echo "not ok 1 - $name: generating certificates failed"
		sed 's/^/# /' "$tmp/openssl.log"
		exit 0
	}
	set -- "$tmp/srv.pem" "$tmp/srv.key" "$tmp/ca.pem"
	;;
sock) set -- "$tmp/http.sock" ;;
dir) set -- "$tmp" ;;
*) echo "not ok 1 - bad mode $mode"; exit 0 ;;
esac
if "$prog" "$@" >"$tmp/out" 2>&1; then
	echo "ok 1 - $name"
	sed 's/^/# /' "$tmp/out"
else
	echo "not ok 1 - $name exited with status $?"
	sed 's/^/# /' "$tmp/out"
fi
