#!/bin/sh
# rill http serve vs nginx (one worker) serving the same small file, in the
# same run: wrk -t1 -c50 over TCP loopback, then over a Unix socket (wrk
# cannot speak to a Unix socket, so that leg uses rill's own client-less
# path through `socat` only when available: see BENCHMARKS.md).
#
# Usage: bench/http_vs_nginx.sh [BUILD_DIR] [SECONDS]
set -eu
build=${1:-build}
secs=${2:-10}
rill="$build/rill"
[ -x "$rill" ] || { echo "no $rill: run make first" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk not installed" >&2; exit 1; }
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx not installed" >&2; exit 1; }

tmp=$(mktemp -d)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

mkdir -p "$tmp/www" "$tmp/nginx"
# A typical small static page (612 bytes, the size of nginx's welcome page).
head -c 459 /dev/urandom | base64 -w0 | head -c 612 >"$tmp/www/index.html"

port_rill=$((20000 + $$ % 10000))
port_nginx=$((port_rill + 1))

cat >"$tmp/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
error_log $tmp/nginx/error.log warn;
pid $tmp/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    types { text/html html; }
    server {
        listen 127.0.0.1:$port_nginx;
        listen unix:$tmp/nginx.sock;
        root $tmp/www;
    }
}
CONF

"$nginx" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/stderr" &
pids="$pids $!"
"$rill" http serve -q "tcp://127.0.0.1:$port_rill" "$tmp/www" &
pids="$pids $!"
"$rill" http serve -q "unix:$tmp/rill.sock" "$tmp/www" &
pids="$pids $!"
sleep 0.5

run() { # name url
	out=$(wrk -t1 -c50 -d"${secs}s" --latency "$2" 2>&1)
	rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec/ {print $2}')
	p50=$(printf '%s\n' "$out" | awk '$1 == "50%" {print $2}')
	p99=$(printf '%s\n' "$out" | awk '$1 == "99%" {print $2}')
	printf '%-22s %12s req/s   p50 %8s   p99 %8s\n' "$1" "$rps" "$p50" "$p99"
	eval "rps_$3=$rps"
}

echo "wrk -t1 -c50 -d${secs}s, 612-byte file, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)"
run "nginx (1 worker) tcp" "http://127.0.0.1:$port_nginx/index.html" nginx
run "rill http serve tcp" "http://127.0.0.1:$port_rill/index.html" rill
awk -v a="$rps_rill" -v b="$rps_nginx" 'BEGIN {printf "ratio rill/nginx (tcp): %.2f\n", a / b}'
