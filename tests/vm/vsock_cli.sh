# rill's CLI and socat over real AF_VSOCK (vsock_loopback: CID 1 is this
# guest), inside the vsock guest of test_vm_vsock.py; busybox sh. Every
# transfer is checked by SHA-256. Bookkeeping: tests/tap_lib.sh.
#
#   echo/cat with half-close (plain, shut+), both ends listening
#   concurrent clients of one rill echo
#   a reader that stalls: back-pressure reaches the sender, memory bounded
#   relay vsock->tcp and tcp->vsock, splice and copy paths
#   relay --retry-until with a listener that starts late
#   a refused target: rill cat's message, relay's log
#   HTTP over vsock: rill http serve, rill http get and socat as client
#   socat VSOCK-LISTEN / VSOCK-CONNECT against rill, both directions
RILL=${RILL:?}
. /etc/rill-vm/tap_lib.sh
# Every rill and socat process that should end by itself is killed after
# 30 s: a flow that never ends (a lost half-close, say) fails its test
# instead of hanging the rest. Servers (echo, relay, http serve) are
# stopped by the tests; their own limit is longer, or a server killed
# first would end a hung client's flow for it.
LIMIT="timeout 30"
SERVE="timeout 150"

# -- helpers ---------------------------------------------------------------

# begin NAME: a test made of several steps; bad WHY marks it failed (the
# first reason is kept); report (tap_lib.sh) prints it.
# Logs and outputs of the last test are removed: a background job opens
# its own redirections after the caller went on, and wait_for must not
# find the last test's "listening on" in the meantime.
begin() {
	n=$((n + 1))
	name=$1
	ok=1
	why=
	rm -f "$T"/*.err "$T/got"
	: >"$T/out"
	: >"$T/err"
}

bad() {
	if [ "$ok" = 1 ]; then
		ok=0
		why="$*"
	fi
}

# keep FILE...: show these files (logs) if the test fails.
keep() {
	for f in "$@"; do
		[ -f "$f" ] && sed "s|^|$(basename "$f"): |" "$f" >>"$T/err"
	done
}

hash() {
	sha256sum <"$1" | cut -d' ' -f1
}

# same EXPECTED GOT: the two files hold the same bytes.
same() {
	if [ ! -f "$2" ] || [ "$(hash "$1")" != "$(hash "$2")" ]; then
		bad "$2 differs from $1 ($(wc -c <"$1") bytes sent, $(wc -c \
			<"$2" 2>/dev/null || echo no) received)"
	fi
}

# wait_for FILE PATTERN: until FILE has a line matching PATTERN (20 s).
wait_for() {
	i=0
	while ! grep -q -- "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 400 ]; then
			bad "no /$2/ in $(basename "$1") after 20 s"
			return 1
		fi
		usleep 50000
	done
}

# stop PID...: end background processes (gone already is fine).
stop() {
	for p in "$@"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	return 0
}

# max_rss_kib FILE: the "Maximum resident set size" busybox time -v wrote.
max_rss_kib() {
	sed -n 's/.*Maximum resident set size (kbytes): *//p' "$1"
}

head -c $((2 << 20)) /dev/urandom >"$T/d2m"
head -c $((1 << 20)) /dev/urandom >"$T/d1m"
head -c $((8 << 20)) /dev/urandom >"$T/d8m"
echo "the reply of the listener" >"$T/reply"

# -- echo / cat ------------------------------------------------------------

# LAYER PORT: 2 MiB to rill echo and back through rill cat, whose end of
# input half-closes the flow; the echo's half-close ends the output.
echo_cat() {
	begin "${1}vsock: rill cat -> rill echo, half-close, 2 MiB by hash"
	$SERVE "$RILL" echo -v "${1}vsock://any:$2" 2>"$T/echo.err" &
	e=$!
	wait_for "$T/echo.err" "listening on"
	$LIMIT "$RILL" cat "${1}vsock://1:$2" <"$T/d2m" >"$T/got" 2>>"$T/err" ||
		bad "rill cat exited with status $?"
	same "$T/d2m" "$T/got"
	stop $e
	keep "$T/echo.err"
	report
}
echo_cat "" 5001
echo_cat shut+ 5002

# rill cat -l on one end, rill cat on the other: both send while both
# receive; each side's end of input reaches the other as end of file.
begin "vsock: rill cat -l <-> rill cat, both directions by hash"
$LIMIT "$RILL" cat -l -v vsock://any:5003 <"$T/reply" >"$T/lgot" 2>"$T/l.err" &
l=$!
wait_for "$T/l.err" "listening on"
$LIMIT "$RILL" cat vsock://1:5003 <"$T/d1m" >"$T/cgot" 2>>"$T/err" ||
	bad "rill cat exited with status $?"
wait $l || bad "rill cat -l exited with status $?"
same "$T/d1m" "$T/lgot"
same "$T/reply" "$T/cgot"
keep "$T/l.err"
report

# -- concurrent clients ----------------------------------------------------

begin "vsock: 8 concurrent rill cat clients of one rill echo, by hash"
$SERVE "$RILL" echo -v vsock://any:5004 2>"$T/echo.err" &
e=$!
wait_for "$T/echo.err" "listening on"
pids=
for i in 1 2 3 4 5 6 7 8; do
	head -c $((256 << 10)) /dev/urandom >"$T/c$i"
	$LIMIT "$RILL" cat vsock://1:5004 <"$T/c$i" >"$T/c$i.got" 2>>"$T/err" &
	pids="$pids $!"
done
for p in $pids; do
	wait "$p" || bad "a client exited with status $?"
done
for i in 1 2 3 4 5 6 7 8; do
	same "$T/c$i" "$T/c$i.got"
done
stop $e
keep "$T/echo.err"
report

# -- a reader that stalls --------------------------------------------------

# stalled_case FILE PORT STALL_S: FILE through rill cat -l into a pipe
# whose reader sleeps STALL_S seconds first; the max RSS of both rill
# processes go to $T/l.err and $T/s.err.
stalled_case() {
	rm -f "$T/l.err" "$T/s.err"
	time -v $LIMIT "$RILL" cat -l -v "vsock://any:$2" </dev/null 2>"$T/l.err" |
		{
			sleep "$3"
			cat >"$T/got"
		} &
	l=$!
	wait_for "$T/l.err" "listening on"
	time -v $LIMIT "$RILL" cat "vsock://1:$2" <"$1" >/dev/null 2>"$T/s.err" &
	s=$!
	if [ "$3" != 0 ]; then
		sleep $(($3 - 1))
		kill -0 $s 2>/dev/null ||
			bad "the sender finished while the reader slept"
	fi
	wait $s || bad "the sender exited with status $?"
	wait $l
	# The listener's own status is not the pipeline's: time -v has it.
	grep -q "Exit status: 0" "$T/l.err" || bad "rill cat -l did not exit 0"
	same "$1" "$T/got"
}

# 8 MiB to a reader that sleeps 3 s first. The vsock and pipe buffers hold
# a few hundred KiB: the sender must still be waiting when the reader
# starts, and neither rill may take the data into memory: their max RSS
# stays within 4 MiB of the same two processes moving 1 MiB unhindered.
# (rill cat keeps at most 4 writes of up to 256 KiB in flight; measured:
# the receiver grows by about 2 MiB, the sender by nothing. A flow that
# buffered would hold the 7.5 MiB the kernel cannot.)
begin "vsock: a stalled reader holds the sender back, memory bounded"
stalled_case "$T/d1m" 5005 0
base_recv=$(max_rss_kib "$T/l.err")
base_send=$(max_rss_kib "$T/s.err")
stalled_case "$T/d8m" 5006 3
recv=$(max_rss_kib "$T/l.err")
send=$(max_rss_kib "$T/s.err")
echo "# max RSS in KiB, 1 MiB unhindered / 8 MiB stalled: receiver" \
	"$base_recv / $recv, sender $base_send / $send"
if [ -z "$base_recv" ] || [ -z "$recv" ] || [ -z "$send" ] ||
	[ -z "$base_send" ]; then
	bad "no max RSS from time -v"
elif [ $((recv - base_recv)) -gt 4096 ] ||
	[ $((send - base_send)) -gt 4096 ]; then
	bad "max RSS grew by more than 4 MiB: receiver $base_recv ->" \
		"$recv KiB, sender $base_send -> $send KiB"
fi
keep "$T/l.err" "$T/s.err"
report

# -- relay -----------------------------------------------------------------

# relay_case WHAT LISTEN TARGET SERVER CLIENT_URI [--no-splice]: a rill
# echo SERVER behind `rill relay LISTEN TARGET`, 2 MiB through it by rill
# cat; the relay's log line says which path the bytes took.
relay_case() {
	what=$1 listen=$2 target=$3 server=$4 client=$5 opt=$6
	via=splice
	[ -n "$opt" ] && via=copy
	begin "relay $what ($via): 2 MiB by hash, half-close across"
	$SERVE "$RILL" echo -v "$server" 2>"$T/echo.err" &
	e=$!
	wait_for "$T/echo.err" "listening on"
	# shellcheck disable=SC2086
	$SERVE "$RILL" relay $opt "$listen" "$target" 2>"$T/relay.err" &
	r=$!
	wait_for "$T/relay.err" "listening on"
	$LIMIT "$RILL" cat "$client" <"$T/d2m" >"$T/got" 2>>"$T/err" ||
		bad "rill cat exited with status $?"
	same "$T/d2m" "$T/got"
	wait_for "$T/relay.err" "end=" &&
		{ grep -q "via=$via end=eof" "$T/relay.err" ||
			bad "the relay's log lacks via=$via end=eof"; }
	stop $r $e
	keep "$T/relay.err" "$T/echo.err"
	report
}
relay_case "vsock->tcp" vsock://any:5007 tcp://127.0.0.1:7001 \
	tcp://127.0.0.1:7001 vsock://1:5007
relay_case "vsock->tcp" vsock://any:5007 tcp://127.0.0.1:7001 \
	tcp://127.0.0.1:7001 vsock://1:5007 --no-splice
relay_case "tcp->vsock" tcp://127.0.0.1:7002 vsock://1:5008 \
	vsock://any:5008 tcp://127.0.0.1:7002
relay_case "tcp->vsock" tcp://127.0.0.1:7002 vsock://1:5008 \
	vsock://any:5008 tcp://127.0.0.1:7002 --no-splice

# The client comes first; the vsock listener 1.5 s later. The relay's
# refused connects are retried until it is there.
begin "relay --retry-until: a vsock target that starts listening late"
$SERVE "$RILL" relay --retry-until 20 tcp://127.0.0.1:7003 vsock://1:5009 \
	2>"$T/relay.err" &
r=$!
wait_for "$T/relay.err" "listening on"
$LIMIT "$RILL" cat tcp://127.0.0.1:7003 <"$T/d1m" >"$T/got" 2>>"$T/err" &
c=$!
sleep 1.5
kill -0 $c 2>/dev/null || bad "the client ended before the target listened"
$SERVE "$RILL" echo vsock://any:5009 2>"$T/echo.err" &
e=$!
wait $c || bad "rill cat exited with status $?"
same "$T/d1m" "$T/got"
wait_for "$T/relay.err" "end=" &&
	{ grep -q "end=eof" "$T/relay.err" || bad "the relay's log lacks end=eof"; }
stop $r $e
keep "$T/relay.err" "$T/echo.err"
report

# -- refused ---------------------------------------------------------------

check "vsock: rill cat to a port without listener says refused" 1 \
	$LIMIT "$RILL" cat vsock://1:5010
expect err "connect vsock://1:5010.*[Rr]efused"
report

check "shut+vsock: refused too" 1 $LIMIT "$RILL" cat shut+vsock://1:5010
expect err "[Rr]efused"
report

begin "relay to a refused vsock target: connect-failed(...refused)"
$SERVE "$RILL" relay --retry-until 0.5 tcp://127.0.0.1:7004 vsock://1:5010 \
	2>"$T/relay.err" &
r=$!
wait_for "$T/relay.err" "listening on"
$LIMIT "$RILL" cat tcp://127.0.0.1:7004 </dev/null >"$T/got" 2>>"$T/err"
wait_for "$T/relay.err" "end=" &&
	{ grep -q "end=connect-failed(.*[Rr]efused" "$T/relay.err" ||
		bad "the relay's log lacks end=connect-failed(...refused)"; }
[ -s "$T/got" ] && bad "bytes came from a refused target"
stop $r
keep "$T/relay.err"
report

# -- HTTP ------------------------------------------------------------------

mkdir "$T/www"
cp "$T/d1m" "$T/www/one.bin"
begin "http over vsock: rill http serve, rill http get, 1 MiB by hash"
$SERVE "$RILL" http serve vsock://any:5011 "$T/www" >"$T/http.out" 2>"$T/http.err" &
h=$!
i=0
until $LIMIT "$RILL" http get --via vsock://1:5011 http://guest/one.bin \
	>"$T/got" 2>"$T/get.err"; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		bad "rill http get kept failing"
		break
	fi
	usleep 100000
done
same "$T/www/one.bin" "$T/got"
keep "$T/get.err" "$T/http.err"
report

if [ -n "${SOCAT:-}" ]; then
	begin "http over vsock: socat VSOCK-CONNECT as the client"
	printf 'GET /one.bin HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n' |
		$LIMIT "$SOCAT" -t 30 - VSOCK-CONNECT:1:5011 >"$T/resp" 2>>"$T/err" ||
		bad "socat exited with status $?"
	head -n 1 "$T/resp" | grep -q "^HTTP/1.1 200" ||
		bad "no 200 status line: $(head -n 1 "$T/resp")"
	grep -qi "^content-length: 1048576" "$T/resp" ||
		bad "no Content-Length: 1048576"
	# The body is the last 1 MiB of the response.
	tail -c 1048576 "$T/resp" >"$T/body"
	same "$T/www/one.bin" "$T/body"
	report
fi
stop $h

# -- socat as the peer -----------------------------------------------------

if [ -z "${SOCAT:-}" ]; then
	n=$((n + 1))
	echo "ok $n - socat peers # SKIP no socat on the host"
else
	# socat -d -d logs "listening on" once its socket listens.
	begin "socat VSOCK-LISTEN <- rill cat: 2 MiB by hash"
	$LIMIT "$SOCAT" -d -d -u VSOCK-LISTEN:5012 CREATE:"$T/got" 2>"$T/socat.err" &
	s=$!
	wait_for "$T/socat.err" "listening on"
	$LIMIT "$RILL" cat vsock://1:5012 <"$T/d2m" >/dev/null 2>>"$T/err" ||
		bad "rill cat exited with status $?"
	wait $s || bad "socat exited with status $?"
	same "$T/d2m" "$T/got"
	keep "$T/socat.err"
	report

	begin "socat VSOCK-LISTEN -> rill cat: 2 MiB by hash"
	$LIMIT "$SOCAT" -d -d -u OPEN:"$T/d2m" VSOCK-LISTEN:5013 2>"$T/socat.err" &
	s=$!
	wait_for "$T/socat.err" "listening on"
	$LIMIT "$RILL" cat vsock://1:5013 </dev/null >"$T/got" 2>>"$T/err" ||
		bad "rill cat exited with status $?"
	wait $s || bad "socat exited with status $?"
	same "$T/d2m" "$T/got"
	keep "$T/socat.err"
	report

	begin "socat VSOCK-CONNECT -> rill cat -l: 2 MiB by hash"
	$LIMIT "$RILL" cat -l -v vsock://any:5014 </dev/null >"$T/got" 2>"$T/l.err" &
	l=$!
	wait_for "$T/l.err" "listening on"
	$LIMIT "$SOCAT" -u OPEN:"$T/d2m" VSOCK-CONNECT:1:5014 2>>"$T/err" ||
		bad "socat exited with status $?"
	wait $l || bad "rill cat -l exited with status $?"
	same "$T/d2m" "$T/got"
	keep "$T/l.err"
	report

	begin "socat VSOCK-CONNECT <-> rill echo: half-close, 2 MiB by hash"
	$SERVE "$RILL" echo -v vsock://any:5015 2>"$T/echo.err" &
	e=$!
	wait_for "$T/echo.err" "listening on"
	$LIMIT "$SOCAT" -t 30 - VSOCK-CONNECT:1:5015 <"$T/d2m" >"$T/got" 2>>"$T/err" ||
		bad "socat exited with status $?"
	same "$T/d2m" "$T/got"
	stop $e
	keep "$T/echo.err"
	report

	begin "rill cat <-> socat VSOCK-LISTEN echo (EXEC:cat): half-close"
	$LIMIT "$SOCAT" -d -d -t 30 VSOCK-LISTEN:5016 EXEC:cat 2>"$T/socat.err" &
	s=$!
	wait_for "$T/socat.err" "listening on"
	$LIMIT "$RILL" cat vsock://1:5016 <"$T/d2m" >"$T/got" 2>>"$T/err" ||
		bad "rill cat exited with status $?"
	wait $s || bad "socat exited with status $?"
	same "$T/d2m" "$T/got"
	keep "$T/socat.err"
	report
fi

echo "1..$n"
exit $((failed > 0))
