#!/usr/bin/env python3
"""What the tunnel layers cost in `rill relay`: interleaved runs of one
loopback stream through

  plain     rill relay tcp:// tcp://SINK            (splice path)
  copy      rill relay --no-splice tcp:// tcp://SINK (user-space path)
  socks5    rill relay socks5+tcp:// 'tcp://{target}' (SOCKS5 handshake
            by the sender, then the tunnel's user-space path)
  connect   rill relay connect+tcp:// 'tcp://{target}'

    bench/tunnel_ab.py [--build DIR] [--rounds N] [--mib N]

Every relay is started once; each round sends one stream of N MiB
through every case (each round starts one further along) into one sink
(socat to /dev/null, else a Python thread); the medians of the throughputs and of the per-round
ratios against `copy` are printed, and the load average before and after.
"""
import argparse
import os
import re
import socket
import statistics as st
import subprocess
import threading
import time

SINKS = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sink_server():
    """socat (one forked process per stream, writing to /dev/null) when it
    is installed: a Python sink tops out below the relay's speed."""
    port = free_port()
    try:
        p = subprocess.Popen(["socat", "-u", "-b", "131072",
                              "TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr"
                              % port, "OPEN:/dev/null"])
        SINKS.append(p)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                return port
            except OSError:
                time.sleep(0.05)
    except FileNotFoundError:
        pass
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    done = {}

    def serve():
        while True:
            c, _ = s.accept()
            n = 0
            while True:
                b = c.recv(1 << 20)
                if not b:
                    break
                n += len(b)
            done[c.getpeername()] = n
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    return s.getsockname()[1]


def relay(build, *args):
    p = subprocess.Popen([os.path.join(build, "rill"), "relay", "--quiet",
                          "--threads", "1", *args], stderr=subprocess.PIPE,
                         stdout=subprocess.DEVNULL)
    return p


def listen_port(p, uri):
    # --quiet prints nothing: find the port with ss.
    for _ in range(200):
        out = subprocess.run(["ss", "-ltnp"], capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            if "pid=%d," % p.pid in line:
                m = re.search(r"127\.0\.0\.1:(\d+)", line)
                if m:
                    return int(m.group(1))
        time.sleep(0.05)
    raise SystemExit("relay did not start: " + uri)


def handshake(s, kind, sink):
    if kind == "socks5":
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + sink.to_bytes(2, "big"))
        r = b""
        while len(r) < 10:
            r += s.recv(10 - len(r))
        assert r[1] == 0, r
    elif kind == "connect":
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % sink)
        r = b""
        while not r.endswith(b"\r\n\r\n"):
            r += s.recv(1)
        assert r.startswith(b"HTTP/1.1 200"), r


def stream(port, kind, sink, mib):
    buf = b"\0" * (1 << 20)
    s = socket.create_connection(("127.0.0.1", port))
    handshake(s, kind, sink)
    t0 = time.monotonic()
    for _ in range(mib):
        s.sendall(buf)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # EOF once the relay passed the sink's close on
    dt = time.monotonic() - t0
    s.close()
    return mib / dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mib", type=int, default=512)
    a = ap.parse_args()
    sink = sink_server()
    target = "tcp://127.0.0.1:%d" % sink
    cases = [
        ("copy", "plain", relay(a.build, "--no-splice", "tcp://127.0.0.1:0",
                                target)),
        ("plain", "plain", relay(a.build, "tcp://127.0.0.1:0", target)),
        ("socks5", "socks5", relay(a.build, "--allow-target", "127.0.0.1",
                                   "socks5+tcp://127.0.0.1:0",
                                   "tcp://{target}")),
        ("connect", "connect", relay(a.build, "--allow-target", "127.0.0.1",
                                     "connect+tcp://127.0.0.1:0",
                                     "tcp://{target}")),
    ]
    ports = [listen_port(p, n) for n, _, p in cases]
    print("load before: %s" % open("/proc/loadavg").read().strip())
    res = {n: [] for n, _, _ in cases}
    ratios = {n: [] for n, _, _ in cases}
    for r in range(a.rounds):
        got = {}
        for i in range(len(cases)):
            k = (i + r) % len(cases)
            name, kind, _ = cases[k]
            got[name] = stream(ports[k], kind, sink, a.mib)
            res[name].append(got[name])
        for name in got:
            ratios[name].append(got[name] / got["copy"])
    print("load after: %s" % open("/proc/loadavg").read().strip())
    print("%-8s %10s %14s" % ("case", "MiB/s", "ratio to copy"))
    for name, _, _ in cases:
        print("%-8s %10.0f %14.2f" % (name, st.median(res[name]),
                                      st.median(ratios[name])))
    for p in [c[2] for c in cases] + SINKS:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    main()
