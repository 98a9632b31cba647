#!/usr/bin/env python3
"""TLS relay rows: one forwarder between a TLS end and a plain end, in
both directions, rill relay beside socat -b 131072, HAProxy (nbthread 1)
and stunnel4, one stream each, interleaved rounds, medians.

  termination  (TLS in, plain out):
      sender -> [helper: rill relay tcp -> tls+tcp] -> FORWARDER -> sink
  origination  (plain in, TLS out):
      sender -> FORWARDER -> [helper: rill relay tls+tcp -> tcp] -> sink

The helpers are rill relays (fast, not measured). Each forwarder is
started for one transfer and stopped after it; its CPU is what wait4()
reports for it (user + system, startup included, tiny beside a transfer).
Throughput is bytes / (sink done - sender start). The sink is socat
reading into /dev/null, the sender socat reading /dev/zero through head.

Usage: bench/tls_relay_ab.py [BUILD_DIR] [MiB] [ROUNDS]
"""
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
MIB = int(sys.argv[2]) if len(sys.argv) > 2 else 512
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
RILL = os.path.abspath(os.path.join(BUILD, "rill"))
NBYTES = MIB << 20


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def listening(port):
    """Whether something listens on 127.0.0.1:port (from /proc/net/tcp:
    a probe connection would be relayed to the one-shot sink)."""
    needle = ":%04X 00000000:0000 0A" % port
    with open("/proc/net/tcp") as f:
        return any(needle in line for line in f)


def wait_port(port, proc, timeout=10.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return False
        if listening(port):
            return True
        time.sleep(0.02)
    return False


def start(argv):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop_cpu(p):
    """SIGTERM, reap, and the process's CPU seconds (user + system)."""
    # Not p.poll(): it would reap a forwarder that already exited (socat
    # ends with its connection) and lose its rusage.
    try:
        os.kill(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _, _, ru = os.wait4(p.pid, 0)
    p.returncode = 0
    return ru.ru_utime + ru.ru_stime


def stop(p):
    if p.poll() is None:
        p.kill()
    p.wait()


def forwarder(kind, direction, lport, cport, d):
    """argv of forwarder kind listening on lport, connecting to cport."""
    crt, key, pem = d + "/c.pem", d + "/k.pem", d + "/ck.pem"
    term = direction == "termination"
    if kind == "rill":
        if term:
            return [RILL, "relay", "tls+tcp://127.0.0.1:%d?cert=%s&key=%s"
                    % (lport, crt, key), "tcp://127.0.0.1:%d" % cport]
        return [RILL, "relay", "tcp://127.0.0.1:%d" % lport,
                "tls+tcp://127.0.0.1:%d?verify=none" % cport]
    if kind == "socat":
        if term:
            return ["socat", "-b", "131072",
                    "OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,cert=%s,"
                    "key=%s,verify=0" % (lport, crt, key),
                    "TCP:127.0.0.1:%d" % cport]
        return ["socat", "-b", "131072",
                "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr" % lport,
                "OPENSSL:127.0.0.1:%d,verify=0" % cport]
    if kind == "haproxy":
        cfg = "%s/haproxy-%s.cfg" % (d, direction)
        with open(cfg, "w") as f:
            f.write("global\n  nbthread 1\n  maxconn 100\n"
                    "defaults\n  mode tcp\n  timeout connect 5s\n"
                    "  timeout client 60s\n  timeout server 60s\n"
                    "frontend f\n  bind 127.0.0.1:%d%s\n"
                    "  default_backend b\nbackend b\n"
                    "  server s 127.0.0.1:%d%s\n"
                    % (lport, " ssl crt " + pem if term else "", cport,
                       "" if term else " ssl verify none"))
        return ["haproxy", "-db", "-f", cfg]
    if kind == "stunnel":
        cfg = "%s/stunnel-%s.conf" % (d, direction)
        with open(cfg, "w") as f:
            f.write("foreground = yes\npid =\n%s"
                    "[t]\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
                    "cert = %s\nkey = %s\n"
                    % ("" if term else "client = yes\n", lport, cport, crt,
                       key))
        return ["stunnel4", cfg]
    raise ValueError(kind)


def one(kind, direction, d):
    """One transfer through kind: (MB/s, forwarder CPU s per GiB)."""
    sink_port, fwd_port, helper_port = free_port(), free_port(), free_port()
    sink = start(["socat", "-u", "-b", "131072",
                  "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr" % sink_port,
                  "OPEN:/dev/null"])
    procs = [sink]
    try:
        if direction == "termination":
            fwd = start(forwarder(kind, direction, fwd_port, sink_port, d))
            helper = start([RILL, "relay", "tcp://127.0.0.1:%d" % helper_port,
                            "tls+tcp://127.0.0.1:%d?verify=none" % fwd_port])
            entry = helper_port
        else:
            helper = start([RILL, "relay", "tls+tcp://127.0.0.1:%d?cert=%s/"
                            "c.pem&key=%s/k.pem" % (helper_port, d, d),
                            "tcp://127.0.0.1:%d" % sink_port])
            fwd = start(forwarder(kind, direction, fwd_port, helper_port, d))
            entry = fwd_port
        procs += [fwd, helper]
        for port, p in ((fwd_port, fwd), (helper_port, helper)):
            if not wait_port(port, p):
                raise RuntimeError("%s (%s) does not listen" % (kind,
                                                               direction))
        t0 = time.monotonic()
        sender = subprocess.Popen(
            "head -c %d /dev/zero | socat -u -b 131072 - TCP:127.0.0.1:%d"
            % (NBYTES, entry), shell=True)
        sender.wait()
        sink.wait(timeout=120)
        dt = time.monotonic() - t0
        cpu = stop_cpu(fwd)
        procs.remove(fwd)
        return NBYTES / dt / 1e6, cpu / (NBYTES / (1 << 30))
    finally:
        for p in procs:
            stop(p)


def main():
    for tool in ("socat", "haproxy", "stunnel4", "openssl"):
        if not shutil.which(tool):
            print("tls_relay_ab: %s is not installed" % tool)
            return 1
    d = tempfile.mkdtemp(prefix="rill-tls-ab-")
    os.chmod(d, 0o755)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    d + "/k.pem", "-out", d + "/c.pem", "-days", "1",
                    "-subj", "/CN=localhost"], capture_output=True,
                   check=True)
    with open(d + "/ck.pem", "w") as f:
        f.write(open(d + "/c.pem").read() + open(d + "/k.pem").read())
    for name in ("k.pem", "ck.pem"):
        os.chmod(d + "/" + name, 0o644)
    kinds = ["rill", "socat", "haproxy", "stunnel"]
    res = {}
    try:
        for r in range(ROUNDS):
            for direction in ("termination", "origination"):
                for k in kinds:
                    res.setdefault((direction, k), []).append(
                        one(k, direction, d))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print("TLS relay, one stream of %d MiB, %d interleaved rounds, medians;"
          " load average %s" % (MIB, ROUNDS, " ".join(load)))
    print("%-12s %-8s %10s %10s   %s" % ("direction", "forwarder", "Gbit/s",
                                         "CPU s/GiB", "vs rill"))
    for direction in ("termination", "origination"):
        med = {}
        for k in kinds:
            v = res[(direction, k)]
            med[k] = (statistics.median(x[0] for x in v),
                      statistics.median(x[1] for x in v))
        for k in kinds:
            g, c = med[k]
            extra = ""
            if k != "rill":
                extra = "rill tput %.2fx, rill CPU %.2fx" % (
                    med["rill"][0] / g, med["rill"][1] / c)
            print("%-12s %-8s %10.2f %10.2f   %s" % (
                direction if k == "rill" else "", k, g * 8 / 1000, c, extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
