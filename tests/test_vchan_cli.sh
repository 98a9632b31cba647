#!/bin/sh
# rill cat / echo / relay with vchan URIs, 5 MB checked with cmp. TAP.
# Usage: test_vchan_cli.sh RILL_BINARY
rill=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/rill-vchan-cli-XXXXXX")
export RILL_VCHAN_DIR="$dir"
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
echo "1..3"
head -c 5000000 /dev/urandom >"$dir/in"
port=$((20000 + $$ % 20000))

"$rill" echo vchan:echo1 2>/dev/null &
pids="$pids $!"
sleep 0.5
if timeout 20 "$rill" cat vchan:echo1 <"$dir/in" >"$dir/out1" 2>"$dir/err1" &&
	cmp -s "$dir/in" "$dir/out1"; then
	echo "ok 1 - rill cat through rill echo over vchan"
else
	echo "not ok 1 - rill cat vchan:echo1"
	sed 's/^/# /' "$dir/err1"
fi

"$rill" echo "tcp://127.0.0.1:$port" 2>/dev/null &
pids="$pids $!"
"$rill" relay --retry-until 10 "vchan:d/rel?read_size=4096&write_size=1025" "tcp://127.0.0.1:$port" 2>/dev/null &
pids="$pids $!"
sleep 0.5
if timeout 20 "$rill" cat "vchan:d/rel" <"$dir/in" >"$dir/out2" 2>"$dir/err2" &&
	cmp -s "$dir/in" "$dir/out2"; then
	echo "ok 2 - rill relay from a vchan listener to tcp"
else
	echo "not ok 2 - rill relay vchan -> tcp"
	sed 's/^/# /' "$dir/err2"
fi

"$rill" relay "unix:$dir/s.sock" vchan:echo1 2>/dev/null &
pids="$pids $!"
sleep 0.5
if timeout 20 "$rill" cat "unix:$dir/s.sock" <"$dir/in" >"$dir/out3" 2>"$dir/err3" &&
	cmp -s "$dir/in" "$dir/out3"; then
	echo "ok 3 - rill relay from unix to a vchan server"
else
	echo "not ok 3 - rill relay unix -> vchan"
	sed 's/^/# /' "$dir/err3"
fi
