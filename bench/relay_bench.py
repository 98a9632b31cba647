#!/usr/bin/env python3
"""Benchmark of `rill relay`, beside its baselines, all in the same run.

Throughput: iperf3 (a real peer, one TCP stream) through
  direct            iperf3 -c -> iperf3 -s                (no relay)
  rill relay        splice path (the default between sockets)
  rill relay copy   --no-splice (generic path, zero-copy buffers)
  socat             socat -b 131072 TCP-LISTEN:..,fork TCP:..
  haproxy           HAProxy, mode tcp (when installed)
  fwd-threads       bench/fwd_floor (two blocking threads per connection;
                    --floor PATH, default build/bench/fwd_floor)
`rill bench relay` measures the same peers with its own endpoints, plus
round trips and four streams; this script is the iperf3 cross-check.
The cases are interleaved over several rounds and the median is kept, so a
noisy neighbour hurts every case alike.

Memory: N connections held open (idle, after one round trip each) through
one relay; the relay's RSS growth divided by N, for both paths.

Usage: bench/relay_bench.py [--rill build/rill] [--floor PATH]
                            [--seconds 3] [--rounds 3]
                            [--conns 9900] [--skip-memory] [--skip-throughput]
Prints a Markdown table (the BENCHMARKS.md section).
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d never opened" % port)


class Procs:
    def __init__(self):
        self.ps = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=kw.pop("stdout", subprocess.DEVNULL),
                             stderr=kw.pop("stderr", subprocess.DEVNULL),
                             **kw)
        self.ps.append(p)
        return p

    def stop(self):
        for p in self.ps:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.ps:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.ps = []


def iperf(port, secs):
    # iperf3's server runs one test at a time and may still be finishing
    # the previous one ("server is busy"): retry a few times.
    err = None
    for _ in range(5):
        j = None
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port),
                              "-t", str(secs), "-J"], capture_output=True,
                             text=True, timeout=secs + 30)
        try:
            j = json.loads(out.stdout)
            return j["end"]["sum_received"]["bits_per_second"] / 1e9
        except (ValueError, KeyError):
            err = (j.get("error") if isinstance(j, dict) else None) \
                or out.stdout[-300:]
            time.sleep(0.5)
    raise RuntimeError("iperf3 failed: %s" % err)


def forwarders(a, sport, tmp):
    """name -> function(port) giving the argv of each forwarder."""
    target = "tcp://127.0.0.1:%d" % sport
    fwd = {
        "rill relay (splice)": lambda p: [a.rill, "relay", "--quiet",
                                          "tcp://127.0.0.1:%d" % p, target],
        "rill relay (copy)": lambda p: [a.rill, "relay", "--quiet",
                                        "--no-splice",
                                        "tcp://127.0.0.1:%d" % p, target],
        "socat": lambda p: ["socat", "-b", "131072",
                            "TCP-LISTEN:%d,fork,reuseaddr,bind=127.0.0.1" % p,
                            "TCP:127.0.0.1:%d" % sport],
    }
    if shutil.which("haproxy"):
        def hap(p):
            cfg = os.path.join(tmp, "haproxy-%d.cfg" % p)
            with open(cfg, "w") as f:
                f.write("defaults\n    mode tcp\n    timeout connect 10s\n"
                        "    timeout client 120s\n    timeout server 120s\n"
                        "frontend f\n    bind 127.0.0.1:%d\n"
                        "    default_backend b\nbackend b\n"
                        "    server s 127.0.0.1:%d\n" % (p, sport))
            return ["haproxy", "-db", "-f", cfg]
        fwd["haproxy"] = hap
    if os.access(a.floor, os.X_OK):
        fwd["fwd-threads"] = lambda p: [a.floor, str(p), str(sport)]
    return fwd


def throughput(a):
    procs = Procs()
    tmp = tempfile.mkdtemp(prefix="rill-relay-bench-")
    try:
        sport = free_port()
        procs.start(["iperf3", "-s", "-p", str(sport)])
        wait_port(sport)
        cases = {"direct": sport}
        for name, argv in forwarders(a, sport, tmp).items():
            port = free_port()
            procs.start(argv(port))
            wait_port(port)
            cases[name] = port
        res = {k: [] for k in cases}
        for _ in range(a.rounds):
            for k, port in cases.items():
                res[k].append(iperf(port, a.seconds))
        return {k: statistics.median(v) for k, v in res.items()}, res
    finally:
        procs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def cpu_s(pid):
    """CPU seconds (user+sys) of pid and its reaped children."""
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in v[11:15]) / tck


def cpu_cost(a, nbytes=2 << 30):
    """CPU seconds each forwarder spends moving nbytes (iperf3 -n): a
    measure the neighbours' load does not distort much."""
    procs = Procs()
    out = {}
    tmp = tempfile.mkdtemp(prefix="rill-relay-bench-")
    try:
        sport = free_port()
        procs.start(["iperf3", "-s", "-p", str(sport)])
        wait_port(sport)
        for name, argv in forwarders(a, sport, tmp).items():
            port = free_port()
            p = procs.start(argv(port))
            wait_port(port)
            time.sleep(0.3)  # the probe connection's socat child exits
            c0 = cpu_s(p.pid)
            subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port),
                            "-n", str(nbytes)], capture_output=True,
                           timeout=300)
            time.sleep(0.5)
            out[name] = cpu_s(p.pid) - c0
        return out
    finally:
        procs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


HOLD = r"""
import asyncio, sys, resource
s, h = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
held = []
async def h_(r, w):
    held.append(w)
    b = await r.read(1)
    w.write(b)
    await w.drain()
    await r.read()
async def main():
    srv = await asyncio.start_server(h_, "127.0.0.1", 0, backlog=4096)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def memory(a, opts):
    procs = Procs()
    s, h = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
    socks = []
    try:
        hold = procs.start([sys.executable, "-c", HOLD],
                           stdout=subprocess.PIPE, text=True)
        tport = int(hold.stdout.readline())
        rport = free_port()
        relay = procs.start([a.rill, "relay", "--quiet", *opts,
                             "tcp://127.0.0.1:%d" % rport,
                             "tcp://127.0.0.1:%d" % tport])
        wait_port(rport)

        def open_one():
            c = socket.create_connection(("127.0.0.1", rport))
            c.sendall(b"x")
            c.settimeout(30)
            assert c.recv(1) == b"x"
            return c

        for _ in range(20):  # warm-up: allocator arenas, pipe pool
            socks.append(open_one())
        time.sleep(0.3)
        base = rss_kib(relay.pid)
        n0 = len(socks)
        for _ in range(a.conns - n0):
            socks.append(open_one())
        time.sleep(0.5)
        after = rss_kib(relay.pid)
        n = len(socks) - n0
        fds = len(os.listdir("/proc/%d/fd" % relay.pid))
        return n, base, after, (after - base) * 1024.0 / n, fds
    finally:
        for c in socks:
            c.close()
        procs.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rill", default="build/rill")
    ap.add_argument("--floor", default="build/bench/fwd_floor")
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=9900)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    a = ap.parse_args()
    a.rill = os.path.abspath(a.rill)
    a.floor = os.path.abspath(a.floor)
    print("cores: %d, kernel %s" % (os.cpu_count(), os.uname().release))
    if not a.skip_throughput:
        med, raw = throughput(a)
        d = med["direct"]
        sc = med["socat"]
        print("\n| case | Gbit/s (median of %d x %d s) | vs direct | vs socat |"
              % (a.rounds, a.seconds))
        print("|---|---|---|---|")
        for k, v in med.items():
            print("| %s | %.2f | %.2fx | %.2fx |" % (k, v, v / d, v / sc))
        print("\nraw: " + "; ".join("%s %s" % (k, " ".join("%.2f" % x
                                                            for x in v))
                                    for k, v in raw.items()))
        cpu = cpu_cost(a)
        print("\n| forwarder | CPU seconds to forward 2 GiB | vs socat |")
        print("|---|---|---|")
        for k, v in cpu.items():
            print("| %s | %.2f | %.2fx |" % (k, v, v / cpu["socat"]))
    if not a.skip_memory:
        print("\n| path | idle connections | relay RSS before -> after "
              "(KiB) | per connection | relay fds |")
        print("|---|---|---|---|---|")
        for name, opts in (("splice", []), ("copy", ["--no-splice"])):
            n, b, af, per, fds = memory(a, opts)
            print("| %s | %d | %d -> %d | %.0f B | %d |" % (name, n, b, af,
                                                          per, fds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
