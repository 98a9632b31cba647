#!/usr/bin/env python3
"""TAP tests of `rill relay` against real peers (Python sockets).

Usage: test_relay.py RILL_BINARY [--heavy]

--heavy: the 1 GiB three-relay chain (suite 'release'); otherwise 64 MiB,
plus every behaviour test. Each relay test runs on the splice path and on
the generic path (--no-splice) where the path matters; the relay's log
line says which path it took (via=splice / via=copy) and the tests check it.
Every relay is stopped with SIGTERM at the end and must exit 0 (under ASan
that includes LeakSanitizer's verdict).
"""
import asyncio
import hashlib
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

RILL = os.path.abspath(sys.argv[1])
HEAVY = "--heavy" in sys.argv[2:]
ONLY = [a for a in sys.argv[2:] if not a.startswith("--")]

results = []


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Relay:
    """A `rill relay` child; its stderr goes to a file we can read."""

    def __init__(self, target, *opts, listen="tcp://127.0.0.1:0"):
        self.log = tempfile.NamedTemporaryFile(prefix="relay", suffix=".log",
                                               delete=False)
        self.p = subprocess.Popen(
            [RILL, "relay", *opts, listen, target],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.log)
        deadline = time.monotonic() + 10
        while True:
            m = re.search(r"listening on tcp://127\.0\.0\.1:(\d+)", self.text())
            if m is None and "listening on unix:" in self.text():
                self.port = None
                break
            if m:
                self.port = int(m.group(1))
                self.uri = "tcp://127.0.0.1:%d" % self.port
                break
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise Fail("relay did not start: " + self.text())
            time.sleep(0.02)

    def text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def lines(self):
        return [l for l in self.text().splitlines() if " end=" in l]

    def wait_lines(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.lines()) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.lines()

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.p.pid))

    def stop(self, expect_code=0):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            code = self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise Fail("relay did not exit after SIGTERM")
        text = self.text()
        os.unlink(self.log.name)
        check(code == expect_code,
              "relay exit status %s, log:\n%s" % (code, text[-3000:]))
        return text


class Server(threading.Thread):
    """A TCP server thread; handler(conn) runs per connection."""

    def __init__(self, handler, port=0):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.uri = "tcp://127.0.0.1:%d" % self.port
        self.handler = handler
        self.conns = []
        self.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.handle, args=(c,),
                             daemon=True).start()

    def handle(self, c):
        try:
            self.handler(c)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def echo_handler(c):
    while True:
        b = c.recv(1 << 20)
        if not b:
            c.shutdown(socket.SHUT_WR)
            return
        c.sendall(b)


ECHO_PROC = r"""
import socket, sys, threading, os
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1024)
print(s.getsockname()[1], flush=True)
def h(c):
    try:
        while True:
            b = c.recv(1 << 20)
            if not b:
                c.shutdown(socket.SHUT_WR); break
            c.sendall(b)
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=h, args=(c,), daemon=True).start()
"""


def echo_process(port=0):
    p = subprocess.Popen([sys.executable, "-c", ECHO_PROC, str(port)],
                         stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline())
    return p, port


def block_stream(total, seed):
    """Deterministic data: 1 MiB random blocks, each tagged with its index
    so that reordered or repeated blocks change the hash."""
    rnd = random.Random(seed)
    base = rnd.randbytes(1 << 20)
    sent = 0
    i = 0
    while sent < total:
        n = min(1 << 20, total - sent)
        blk = i.to_bytes(8, "little") + base[8:n] if n > 8 else base[:n]
        yield blk
        sent += n
        i += 1


def transfer(port, total, seed=1, chunk_hash=True):
    """Sends `total` bytes through an echo path and checks they come back
    identical (SHA-256 both ways). Returns elapsed seconds."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    hs, hr = hashlib.sha256(), hashlib.sha256()
    got = [0]
    err = []

    def rd():
        try:
            while True:
                b = s.recv(4 << 20)
                if not b:
                    return
                hr.update(b)
                got[0] += len(b)
        except OSError as e:
            err.append(e)

    t0 = time.monotonic()
    t = threading.Thread(target=rd)
    t.start()
    for blk in block_stream(total, seed):
        hs.update(blk)
        s.sendall(blk)
    s.shutdown(socket.SHUT_WR)
    t.join(timeout=600)
    dt = time.monotonic() - t0
    s.close()
    check(not err, "receive error %r" % err)
    check(got[0] == total, "received %d of %d bytes" % (got[0], total))
    check(hs.digest() == hr.digest(), "hash mismatch")
    return dt


def recv_all(s, timeout=10):
    s.settimeout(timeout)
    out = bytearray()
    while True:
        b = s.recv(1 << 20)
        if not b:
            return bytes(out)
        out += b


def sees_end(s, timeout):
    """True if s reports EOF or a reset within timeout (data is drained)."""
    s.settimeout(timeout)
    try:
        while True:
            b = s.recv(1 << 16)
            if not b:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


PATHS = [("splice", []), ("copy", ["--no-splice"])]


def via_ok(lines, path):
    want = "via=" + path
    return all(want in l for l in lines if "end=eof" in l)


# ---------------------------------------------------------------------------

def t_chain(path, opts):
    total = (1 << 30) if HEAVY else (64 << 20)
    echo, eport = echo_process()
    try:
        r3 = Relay("tcp://127.0.0.1:%d" % eport, *opts)
        r2 = Relay(r3.uri, *opts)
        r1 = Relay(r2.uri, *opts)
        dt = transfer(r1.port, total, seed=3)
        for r in (r1, r2, r3):
            lines = r.wait_lines(1)
            check(len(lines) == 1 and "end=eof" in lines[0],
                  "log: %r" % lines)
            check("up=%d down=%d" % (total, total) in lines[0],
                  "counts: %r" % lines[0])
            check(via_ok(lines, path), "path: %r" % lines[0])
        for r in (r1, r2, r3):
            r.stop()
        return "%d MiB each way in %.2f s" % (total >> 20, dt)
    finally:
        echo.kill()
        echo.wait()


def t_half_close(path, opts):
    reply = random.Random(9).randbytes(3 << 20)

    def h(c):
        req = recv_all(c)
        c.sendall(hashlib.sha256(req).digest() + reply)
        c.shutdown(socket.SHUT_WR)
        recv_all(c)

    srv = Server(h)
    r = Relay(srv.uri, *opts)
    try:
        req = random.Random(2).randbytes(700000)
        s = socket.create_connection(("127.0.0.1", r.port))
        s.sendall(req)
        s.shutdown(socket.SHUT_WR)
        got = recv_all(s)
        s.close()
        check(got[:32] == hashlib.sha256(req).digest(),
              "server did not get the whole request before EOF")
        check(got[32:] == reply, "reply cut short: %d of %d bytes"
              % (len(got) - 32, len(reply)))
        lines = r.wait_lines(1)
        check("end=eof" in lines[0] and via_ok(lines, path), repr(lines))
        check("up=700000 down=%d" % (len(reply) + 32) in lines[0],
              repr(lines))
    finally:
        r.stop()
        srv.close()


def t_refused(path, opts):
    port = free_port()
    r = Relay("tcp://127.0.0.1:%d" % port, *opts)
    try:
        s = socket.create_connection(("127.0.0.1", r.port))
        t0 = time.monotonic()
        check(sees_end(s, 5), "accepted connection not closed")
        check(time.monotonic() - t0 < 3, "closed too late")
        s.close()
        lines = r.wait_lines(1)
        check("end=connect-failed(" in lines[0], repr(lines))
        check("refused" in lines[0], "log does not say why: %r" % lines)
    finally:
        r.stop()


def t_retry_until(path, opts):
    port = free_port()
    r = Relay("tcp://127.0.0.1:%d" % port, "--retry-until", "8", *opts)
    srv = None
    try:
        s = socket.create_connection(("127.0.0.1", r.port))
        s.sendall(b"ping")
        time.sleep(1.0)  # the target appears late
        srv = Server(echo_handler, port)
        s.settimeout(8)
        check(s.recv(10) == b"ping", "no echo through the late target")
        s.shutdown(socket.SHUT_WR)
        check(sees_end(s, 5), "no EOF")
        s.close()
        lines = r.wait_lines(1)
        check("end=eof" in lines[0], repr(lines))
    finally:
        r.stop()
        if srv:
            srv.close()


def t_idle_timeout(path, opts):
    srv = Server(echo_handler)
    r = Relay(srv.uri, "--idle-timeout", "0.5", *opts)
    try:
        busy = socket.create_connection(("127.0.0.1", r.port))
        idle = socket.create_connection(("127.0.0.1", r.port))
        idle.sendall(b"x")
        idle.settimeout(5)
        check(idle.recv(1) == b"x", "no echo")
        t0 = time.monotonic()
        # The busy one talks every 0.15 s and must survive 1.5 s.
        while time.monotonic() - t0 < 1.5:
            busy.sendall(b"y")
            busy.settimeout(5)
            check(busy.recv(1) == b"y", "busy connection cut")
            time.sleep(0.15)
        check(sees_end(idle, 0.1), "idle connection not closed")
        busy.close()
        idle.close()
        lines = r.wait_lines(2)
        check(any("end=idle-timeout" in l for l in lines), repr(lines))
    finally:
        r.stop()
        srv.close()


def t_max_conns(path, opts):
    srv = Server(echo_handler)
    r = Relay(srv.uri, "--max-conns", "2", *opts)
    try:
        a = socket.create_connection(("127.0.0.1", r.port))
        b = socket.create_connection(("127.0.0.1", r.port))
        for s in (a, b):
            s.sendall(b"hi")
            s.settimeout(5)
            check(s.recv(2) == b"hi", "first two must work")
        c = socket.create_connection(("127.0.0.1", r.port))
        check(sees_end(c, 3), "third connection not closed at once")
        c.close()
        lines = r.wait_lines(1)
        check(any("end=refused(max-conns 2 reached)" in l for l in lines),
              repr(lines))
        a.close()
        r.wait_lines(2)
        d = socket.create_connection(("127.0.0.1", r.port))
        d.sendall(b"ok")
        d.settimeout(5)
        check(d.recv(2) == b"ok", "a slot did not free up")
        d.close()
        b.close()
    finally:
        r.stop()
        srv.close()


def t_linger(path, opts):
    release = threading.Event()

    def h(c):  # reads the request, answers only when released
        recv_all(c, timeout=30)
        release.wait(10)
        c.sendall(b"late reply")
        c.shutdown(socket.SHUT_WR)

    srv = Server(h)
    r1 = Relay(srv.uri, "--linger", "0.5", *opts)
    r2 = Relay(srv.uri, *opts)  # default: wait for both
    try:
        s1 = socket.create_connection(("127.0.0.1", r1.port))
        s1.sendall(b"q")
        s1.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        check(sees_end(s1, 5), "linger did not close")
        dt = time.monotonic() - t0
        check(dt >= 0.4, "closed before the linger time (%.2f s)" % dt)
        lines = r1.wait_lines(1)
        check("end=linger-timeout" in lines[0], repr(lines))
        s2 = socket.create_connection(("127.0.0.1", r2.port))
        s2.sendall(b"q")
        s2.shutdown(socket.SHUT_WR)
        time.sleep(1.5)
        release.set()
        check(recv_all(s2) == b"late reply", "reply cut short")
        lines = r2.wait_lines(1)
        check("end=eof" in lines[-1], repr(lines))
        s1.close()
        s2.close()
    finally:
        release.set()
        r1.stop()
        r2.stop()
        srv.close()


def t_signal(path, opts):
    srv = Server(echo_handler)
    r = Relay(srv.uri, "--grace", "1", *opts)
    try:
        s = socket.create_connection(("127.0.0.1", r.port))
        s.sendall(b"a")
        s.settimeout(5)
        check(s.recv(1) == b"a", "no echo")
        r.p.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        try:
            x = socket.create_connection(("127.0.0.1", r.port), timeout=2)
            x.close()
            raise Fail("still accepting after SIGTERM")
        except ConnectionRefusedError:
            pass
        s.sendall(b"b")  # works during the grace period
        check(s.recv(1) == b"b", "connection dead during grace")
        t0 = time.monotonic()
        check(sees_end(s, 5), "not closed after grace")
        check(time.monotonic() - t0 < 2, "grace too long")
        code = r.p.wait(timeout=5)
        check(code == 0, "exit status %d" % code)
        check("end=shutdown" in r.text(), r.text())
        s.close()
    finally:
        r.stop()
        srv.close()
    # No connections: SIGINT stops it at once.
    r = Relay(srv.uri, *opts)
    t0 = time.monotonic()
    r.p.send_signal(signal.SIGINT)
    check(r.p.wait(timeout=5) == 0, "exit status after SIGINT")
    check(time.monotonic() - t0 < 2, "idle relay slow to stop")
    r.stop()


def t_target_killed(path, opts):
    echo, eport = echo_process()
    r = Relay("tcp://127.0.0.1:%d" % eport, "--threads", "2", *opts)
    try:
        # Warm up the pipe pools: one per loop, and the connections go to
        # the loops in turn.
        for _ in range(4):
            transfer(r.port, 1 << 20)
        base = r.fds()
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", r.port))
            stop = threading.Event()

            def pump():
                blk = b"z" * 65536
                try:
                    while not stop.is_set():
                        s.sendall(blk)
                except OSError:
                    pass

            t = threading.Thread(target=pump, daemon=True)
            t.start()
            time.sleep(0.3)
            echo.send_signal(signal.SIGKILL)
            echo.wait()
            t0 = time.monotonic()
            check(sees_end(s, 5), "client did not see EOF/reset")
            check(time.monotonic() - t0 < 3, "too slow")
            stop.set()
            s.close()
            t.join()
            echo, eport2 = echo_process(eport)
            check(eport2 == eport, "port")
            transfer(r.port, 256 << 10)  # keeps serving
        for _ in range(20):
            transfer(r.port, 4096)
        deadline = time.monotonic() + 5
        while r.fds() > base and time.monotonic() < deadline:
            time.sleep(0.05)
        check(r.fds() <= base, "fd leak: %d -> %d" % (base, r.fds()))
        # warm-up + 3 x (killed + check) + 20
        lines = r.wait_lines(30)
        check(len(lines) == 30, "%d log lines" % len(lines))
        check(sum("end=eof" in l for l in lines) >= 27, repr(lines))
    finally:
        r.stop()
        echo.kill()
        echo.wait()


def many_conns(port, n, size):
    """n concurrent connections through port, size random bytes each way
    (echoed); True for each whose reply hashes like what it sent."""
    async def one(i):
        data = random.Random(i).randbytes(size)
        rd, wr = await asyncio.open_connection("127.0.0.1", port)
        wr.write(data)
        await wr.drain()
        wr.write_eof()
        got = await rd.read()
        wr.close()
        return hashlib.sha256(got).digest() == hashlib.sha256(data).digest()

    async def main():
        return await asyncio.gather(*[one(i) for i in range(n)])

    return asyncio.run(main())


def t_many(path, opts):
    raise_nofile()
    echo, eport = echo_process()
    r = Relay("tcp://127.0.0.1:%d" % eport, *opts)
    n = 1000
    try:
        ok = many_conns(r.port, n, 16 << 10)
        check(all(ok), "%d of %d connections corrupted" % (ok.count(False),
                                                           n))
        lines = r.wait_lines(n, timeout=30)
        check(len(lines) == n, "%d log lines" % len(lines))
        check(all("end=eof" in l for l in lines), "a connection failed")
        check(via_ok(lines, path), "path")
    finally:
        r.stop()
        echo.kill()
        echo.wait()


def thread_cpu(pid):
    """{thread name: CPU ticks} of every thread of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                v = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0) + int(v[11]) + int(v[12])
    return out


def t_threads_many(path, opts):
    """--threads 2: 1000 concurrent connections hash-checked, spread over
    both loops (the second loop's thread, rill-loop-1, did work)."""
    raise_nofile()
    echo, eport = echo_process()
    r = Relay("tcp://127.0.0.1:%d" % eport, "--threads", "2", *opts)
    n = 1000
    size = 64 << 10
    try:
        check("(2 threads)" in r.text(), r.text())
        ok = many_conns(r.port, n, size)
        check(all(ok), "%d of %d connections corrupted" % (ok.count(False),
                                                           n))
        lines = r.wait_lines(n, timeout=30)
        check(len(lines) == n, "%d log lines" % len(lines))
        check(all("end=eof" in l for l in lines), "a connection failed")
        check(all("up=%d down=%d" % (size, size) in l for l in lines),
              "byte counts")
        check(via_ok(lines, path), "path")
        ids = sorted(int(re.search(r"#(\d+) ", l).group(1)) for l in lines)
        check(ids == list(range(1, n + 1)), "connection ids not 1..%d" % n)
        cpu = thread_cpu(r.p.pid)
        check(cpu.get("rill-loop-1", 0) > 0, "loop 1 did nothing: %r" % cpu)
    finally:
        r.stop()
        echo.kill()
        echo.wait()


def t_threads_shutdown(path, opts):
    """--threads 2 under load: 40 connections streaming both ways when
    SIGTERM comes; after --grace 0.5 every one is closed (end=shutdown),
    on both loops, and the relay exits 0."""
    raise_nofile()
    echo, eport = echo_process()
    r = Relay("tcp://127.0.0.1:%d" % eport, "--threads", "2", "--grace",
              "0.5", *opts)
    stop = threading.Event()
    socks = []
    ended = []

    def pump(s):
        blk = b"y" * 65536
        s.settimeout(10)
        try:
            while not stop.is_set():
                s.sendall(blk)
                if not s.recv(1 << 16):
                    break
        except OSError:
            pass
        ended.append(s)

    try:
        for _ in range(40):
            socks.append(socket.create_connection(("127.0.0.1", r.port)))
        ts = [threading.Thread(target=pump, args=(s,), daemon=True)
              for s in socks]
        for t in ts:
            t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        r.p.send_signal(signal.SIGTERM)
        code = r.p.wait(timeout=10)
        dt = time.monotonic() - t0
        check(code == 0, "exit status %d: %s" % (code, r.text()[-2000:]))
        check(dt < 4, "took %.2f s to stop (grace 0.5 s)" % dt)
        for t in ts:
            t.join(timeout=10)
        check(len(ended) == 40, "%d of 40 clients saw the end" % len(ended))
        lines = r.lines()
        check(len(lines) == 40, "%d log lines" % len(lines))
        check(all("end=shutdown" in l for l in lines), repr(lines[:3]))
        check("40 connection(s) get 0.500 s" in r.text(), r.text()[:500])
        check(r.text().rstrip().endswith("rill relay: stopped"),
              r.text()[-300:])
        return "stopped in %.2f s" % dt
    finally:
        stop.set()
        for s in socks:
            s.close()
        r.stop()
        echo.kill()
        echo.wait()


def t_unix_to_tcp(path, opts):
    """Listen on a Unix abstract socket, forward to TCP: splice works across
    families; half-close and data both ways."""
    name = "rill-relay-test-%d" % os.getpid()
    srv = Server(echo_handler)
    r = Relay(srv.uri, *opts, listen="unix:@" + name)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect("\0" + name)
        data = random.Random(5).randbytes(4 << 20)
        t = threading.Thread(target=lambda: (s.sendall(data),
                                             s.shutdown(socket.SHUT_WR)))
        t.start()
        got = recv_all(s)
        t.join()
        s.close()
        check(got == data, "echo through unix->tcp differs (%d bytes)"
              % len(got))
        lines = r.wait_lines(1)
        check("end=eof" in lines[0] and via_ok(lines, path), repr(lines))
    finally:
        r.stop()
        srv.close()


TESTS = [
    ("chain of three relays, hash-checked both ways", t_chain, True),
    ("half-close request/response", t_half_close, True),
    ("unix listener to tcp target", t_unix_to_tcp, True),
    ("target refused: connection closed, log says why", t_refused, False),
    ("--retry-until: target appears late", t_retry_until, False),
    ("--idle-timeout", t_idle_timeout, False),
    ("--max-conns", t_max_conns, False),
    ("--linger, and the default waits for the reply", t_linger, False),
    ("SIGTERM/SIGINT: stop accepting, grace, close", t_signal, False),
    ("target SIGKILLed mid-transfer: EOF/reset, keeps serving, no fd leak",
     t_target_killed, True),
    ("1000 concurrent connections, hash-checked", t_many, True),
    ("--threads 2: 1000 connections hash-checked, both loops used",
     t_threads_many, True),
    ("--threads 2: SIGTERM under load, grace, every loop closes",
     t_threads_shutdown, True),
]


def main():
    if HEAVY:
        tests = [(n, f, b) for n, f, b in TESTS if f is t_chain]
    else:
        tests = TESTS
    todo = []
    for name, fn, both in tests:
        for path, opts in (PATHS if both else PATHS[:1]):
            full = "relay: %s [%s]" % (name, path)
            if ONLY and not any(o in full for o in ONLY):
                continue
            todo.append((full, fn, path, opts))
    print("1..%d" % len(todo), flush=True)
    failed = 0
    for i, (full, fn, path, opts) in enumerate(todo, 1):
        t0 = time.monotonic()
        try:
            note = fn(path, opts)
            print("ok %d - %s # %.2fs%s" % (i, full, time.monotonic() - t0,
                                           (" " + note) if note else ""),
                  flush=True)
        except Exception as e:
            failed += 1
            print("not ok %d - %s" % (i, full), flush=True)
            for l in traceback.format_exc().splitlines():
                print("# " + l, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
