#!/usr/bin/env python3
"""TAP: rill relay against hostile neighbours (issue 23, relay access control).

Usage: test_relay_hostile.py RILL_BINARY

Each test plays the attacker against a relay and checks, at the TARGET,
that nothing it should not see reached it:
  - a client that matches no --allow pattern is closed at accept and the
    target sees no connection at all (TCP by source address; Unix socket
    by uid, the attacker being uid 65534 through setpriv);
  - --max-per-source N: the N+1th connection of one source is closed
    before any connect, while other sources still get through;
  - without any option the relay has a finite --max-conns (1024): the
    1025th connection is refused, the target never sees it;
  - rill echo and rill http serve refuse unlisted sources the same way.
Allowed clients' bytes are checked by hash through the relay each time.
"""
import hashlib
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap_lib import Tap  # noqa: E402

RILL = os.path.abspath(sys.argv[1])
tap = Tap()


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Target(threading.Thread):
    """The relay's target: counts every connection it accepts; echoes
    (echo=True) or holds each one open without a word."""

    def __init__(self, echo=True, path=None):
        super().__init__(daemon=True)
        if path is None:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.uri = "tcp://127.0.0.1:%d" % self.sock.getsockname()[1]
        else:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(path)
            self.uri = "unix:" + path
        self.sock.listen(2048)
        self.echo = echo
        self.accepted = 0
        self.conns = []
        self.lock = threading.Lock()
        self.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.conns.append(c)
            if self.echo:
                threading.Thread(target=self.serve, args=(c,),
                                 daemon=True).start()

    def serve(self, c):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def count(self):
        with self.lock:
            return self.accepted

    def close(self):
        self.sock.close()
        with self.lock:
            for c in self.conns:
                c.close()


class Relay:
    def __init__(self, listen, target, *opts):
        self.log = tempfile.NamedTemporaryFile(prefix="hostile", suffix=".log",
                                               delete=False)
        self.p = subprocess.Popen([RILL, "relay", *opts, listen, target],
                                  stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 10
        while "listening on" not in self.text():
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("relay did not start: " + self.text())
            time.sleep(0.02)
        m = re.search(r"listening on tcp://127\.0\.0\.1:(\d+)", self.text())
        self.port = int(m.group(1)) if m else None

    def text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def wait_for(self, pattern, n=1, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.text())) >= n:
                return True
            time.sleep(0.02)
        return False

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            code = self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            code = "killed"
        text = self.text()
        os.unlink(self.log.name)
        return code, text


def tcp_client(port, src="127.0.0.1"):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def roundtrip(s, size=1 << 20, seed=1):
    """Sends size bytes, half-closes, reads the echo; True when the
    SHA-256 of what came back is the one of what was sent."""
    data = hashlib.shake_256(b"%d" % seed).digest(size)
    t = threading.Thread(target=s.sendall, args=(data,))
    t.start()
    t.join()
    s.shutdown(socket.SHUT_WR)
    h, n = hashlib.sha256(), 0
    while True:
        d = s.recv(65536)
        if not d:
            break
        h.update(d)
        n += len(d)
    s.close()
    return n == size and h.digest() == hashlib.sha256(data).digest()


def closed_at_once(s, timeout=5):
    """The relay closed s without a byte (EOF or reset)."""
    s.settimeout(timeout)
    try:
        d = s.recv(1)
    except ConnectionResetError:
        d = b""
    except socket.timeout:
        return False
    finally:
        s.close()
    return d == b""


def settle(target, n, timeout=3.0):
    """Waits until the target accepted n connections (or the timeout),
    then a little longer for any that should not come."""
    deadline = time.monotonic() + timeout
    while target.count() < n and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    return target.count()


def t_tcp_denied():
    name = "--allow: an unlisted TCP source is closed at accept, no connect"
    tgt = Target()
    try:
        r = Relay("tcp://127.0.0.1:0", tgt.uri, "--allow", "10.0.0.0/8",
                  "--allow", "127.0.0.2")
    except AssertionError as e:
        tap.ok(False, name, e)
        tgt.close()
        return
    try:
        attackers = [tcp_client(r.port) for _ in range(5)]
        for s in attackers:
            try:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            except OSError:
                pass  # already closed by the relay: as it should be
        all_closed = all(closed_at_once(s) for s in attackers)
        logged = r.wait_for(r"tcp://127\.0\.0\.1:\d+ -> .* end=denied", 5)
        seen_denied = settle(tgt, 0)
        ok_hash = roundtrip(tcp_client(r.port, "127.0.0.2"), seed=2)
        seen_after = settle(tgt, 1)
    finally:
        code, text = r.stop()
        tgt.close()
    tap.ok(all_closed and logged and seen_denied == 0 and ok_hash and
           seen_after == 1 and code == 0, name,
           "closed=%s logged=%s target saw %d while denying, %d after; "
           "allowed client hash ok=%s; exit %s\n%s"
           % (all_closed, logged, seen_denied, seen_after, ok_hash, code,
              text[-1500:]))


def t_unix_uid_denied(tmp):
    name = "--allow uid=0: uid 65534 on the Unix socket is closed, no connect"
    if os.geteuid() != 0:
        tap.skip(name, "needs root to act as uid 65534 through setpriv")
        return
    tgt = Target()
    sock = os.path.join(tmp, "relay.sock")
    try:
        r = Relay("unix:" + sock, tgt.uri, "--allow", "uid=0")
    except AssertionError as e:
        tap.ok(False, name, e)
        tgt.close()
        return
    try:
        os.chmod(tmp, 0o755)
        os.chmod(sock, 0o777)  # the kernel lets uid 65534 connect...
        attacker = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "/usr/bin/python3", "-c",
             "import socket,sys\n"
             "s=socket.socket(socket.AF_UNIX); s.settimeout(5)\n"
             "s.connect(sys.argv[1])\n"
             "try: s.sendall(b'steal'); d=s.recv(1)\n"
             "except (BrokenPipeError, ConnectionResetError): d=b''\n"
             "print('uid', __import__('os').getuid(), 'got', len(d))\n",
             sock], capture_output=True, text=True, timeout=20)
        logged = r.wait_for(r"uid=65534 .* end=denied", 1, 5)
        seen_denied = settle(tgt, 0)
        c = socket.socket(socket.AF_UNIX)  # ...but the relay refuses it
        c.settimeout(10)
        c.connect(sock)
        ok_hash = roundtrip(c, seed=3)
        seen_after = settle(tgt, 1)
    finally:
        code, text = r.stop()
        tgt.close()
    tap.ok(attacker.stdout.strip() == "uid 65534 got 0" and logged and
           seen_denied == 0 and ok_hash and seen_after == 1 and code == 0,
           name, "attacker: %r %r; logged=%s; target saw %d, then %d; "
           "hash ok=%s; exit %s\n%s"
           % (attacker.stdout, attacker.stderr[-300:], logged, seen_denied,
              seen_after, ok_hash, code, text[-1500:]))


def t_max_per_source():
    name = "--max-per-source 2: the third connection of one source never " \
           "reaches the target, other sources do"
    tgt = Target(echo=True)
    try:
        r = Relay("tcp://127.0.0.1:0", tgt.uri, "--max-per-source", "2",
                  "--threads", "1")
    except AssertionError as e:
        tap.ok(False, name, e)
        tgt.close()
        return
    try:
        held = [tcp_client(r.port) for _ in range(2)]
        two = settle(tgt, 2)
        third = tcp_client(r.port)
        third_closed = closed_at_once(third)
        logged = r.wait_for(r"refused\(max-per-source 2 reached\)", 1, 5)
        still_two = settle(tgt, 2)
        other_ok = roundtrip(tcp_client(r.port, "127.0.0.3"), seed=4)
        # One of the two ends: that source may connect again.
        held.pop().close()
        r.wait_for(r" end=", 3, 5)  # the refused, the other, this one
        again_ok = roundtrip(tcp_client(r.port), seed=5)
        for s in held:
            s.close()
        total = settle(tgt, 4)
    finally:
        code, text = r.stop()
        tgt.close()
    tap.ok(two == 2 and third_closed and logged and still_two == 2 and
           other_ok and again_ok and total == 4 and code == 0, name,
           "target saw %d, %d after the third, %d in all; third closed=%s "
           "logged=%s other source ok=%s again ok=%s exit %s\n%s"
           % (two, still_two, total, third_closed, logged, other_ok,
              again_ok, code, text[-1500:]))


def t_default_max_conns():
    name = "no options: a finite default --max-conns (1024) refuses " \
           "connection 1025 before any connect"
    raise_nofile()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * 1024 + 64:
        tap.skip(name, "RLIMIT_NOFILE %d is too low for 1025 connections "
                 "through a relay" % soft)
        return
    tgt = Target(echo=False)
    try:
        r = Relay("tcp://127.0.0.1:0", tgt.uri, "--threads", "1")
    except AssertionError as e:
        tap.ok(False, name, e)
        tgt.close()
        return
    clients = []
    try:
        for i in range(1024):
            clients.append(tcp_client(r.port))
        full = settle(tgt, 1024, timeout=30)
        extra = tcp_client(r.port)
        extra_closed = closed_at_once(extra)
        logged = r.wait_for(r"refused\(max-conns 1024 reached\)", 1, 5)
        after = settle(tgt, 1024)
    finally:
        for s in clients:
            s.close()
        code, text = r.stop()
        tgt.close()
    tap.ok(full == 1024 and extra_closed and logged and after == 1024 and
           code == 0, name,
           "target saw %d, then %d; extra closed=%s logged=%s exit %s\n%s"
           % (full, after, extra_closed, logged, code, text[-800:]))


def t_echo_and_http_allow(tmp):
    """The same filter behind rill echo and rill http serve."""
    name = "rill echo / http serve --allow: an unlisted source is closed, " \
           "allowed ones are served"
    with open(os.path.join(tmp, "f.bin"), "wb") as f:
        body = hashlib.shake_256(b"http").digest(300000)
        f.write(body)
    procs, ports = [], []
    for argv in (["echo", "-v", "--allow", "127.0.0.2"],
                 ["http", "serve", "--threads", "2", "--allow",
                  "127.0.0.2/32"]):
        port = socket.socket()
        port.bind(("127.0.0.1", 0))
        ports.append(port.getsockname()[1])
        port.close()
        tail = [tmp] if argv[0] == "http" else []
        procs.append(subprocess.Popen(
            [RILL, *argv, "tcp://127.0.0.1:%d" % ports[-1], *tail],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True))
    try:
        for p in ports:  # up: an allowed probe gets through
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    tcp_client(p, "127.0.0.2").close()
                    break
                except OSError:
                    time.sleep(0.05)
        echo_denied = closed_at_once(tcp_client(ports[0]))
        echo_ok = roundtrip(tcp_client(ports[0], "127.0.0.2"), seed=6)
        req = b"GET /f.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        denied = tcp_client(ports[1])
        try:
            denied.sendall(req)
        except OSError:
            pass  # already closed: as it should be
        http_denied = closed_at_once(denied)
        c = tcp_client(ports[1], "127.0.0.2")
        c.sendall(req)
        resp = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            resp += d
        c.close()
        http_ok = resp.startswith(b"HTTP/1.1 200") and resp.endswith(body)
    finally:
        errs = []
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                errs.append(p.communicate(timeout=20)[1])
            except subprocess.TimeoutExpired:
                p.kill()
                errs.append(p.communicate()[1])
    logged = "end=denied" in errs[0] and "end=denied" in errs[1]
    tap.ok(echo_denied and echo_ok and http_denied and http_ok and logged,
           name, "echo denied=%s ok=%s; http denied=%s ok=%s; logged=%s\n%s"
           % (echo_denied, echo_ok, http_denied, http_ok, logged,
              "\n".join(e[-600:] for e in errs)))


def guarded(fn, *args):
    """Runs one test; an exception is that test's failure."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        tap.ok(False, fn.__name__, "%s: %s" % (type(e).__name__, e))


def main():
    guarded(t_tcp_denied)
    with tempfile.TemporaryDirectory() as tmp:
        guarded(t_echo_and_http_allow, tmp)
    # The attacker (uid 65534) must reach the socket's directory: not
    # under a TMPDIR of mode 0700 (run.py's), but right in /tmp.
    with tempfile.TemporaryDirectory(prefix="rill-hostile-",
                                     dir="/tmp") as tmp:
        guarded(t_unix_uid_denied, tmp)
    guarded(t_max_per_source)
    guarded(t_default_max_conns)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
