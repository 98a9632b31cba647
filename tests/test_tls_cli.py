#!/usr/bin/env python3
"""TAP tests of the tls+ URIs through the rill CLI: rill cat and rill echo
over tls+tcp and tls+unix, and rill relay terminating TLS (tls+tcp in, tcp
out), originating it (tcp in, tls+tcp out) and both; transfers checked by
SHA-256, with `openssl s_client` and plain Python sockets as the peers.

Usage: test_tls_cli.py RILL_BINARY
Certificates are made at run time with `openssl req` (no key is stored).
"""
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

RILL = os.path.abspath(sys.argv[1])
TMP = tempfile.mkdtemp(prefix="rill-tls-cli-")
CERT = os.path.join(TMP, "cert.pem")
KEY = os.path.join(TMP, "key.pem")
SIZE = 4 << 20
results = []


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


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        with open("/proc/net/tcp") as f:
            needle = ":%04X 00000000:0000 0A" % port
            if any(needle in line for line in f):
                return
        time.sleep(0.02)
    raise Fail("nothing listens on port %d" % port)


def wait_path(path, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            return
        time.sleep(0.02)
    raise Fail("%s never appeared" % path)


class Proc:
    def __init__(self, args, **kw):
        self.err_path = os.path.join(TMP, "err-%d-%s" % (len(results), os.path.basename(args[0])))
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen(args, stderr=self.err, **kw)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.err.close()

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")


def rill_cat(uri, data, timeout=30):
    p = subprocess.run([RILL, "cat", uri], input=data, capture_output=True,
                       timeout=timeout)
    check(p.returncode == 0, "rill cat %s: exit %d: %s" %
          (uri, p.returncode, p.stderr.decode(errors="replace").strip()))
    return p.stdout


def sha(b):
    return hashlib.sha256(b).hexdigest()


def echo_roundtrip_plain(port, data):
    """A plain socket client with half-close: send all, shut down, read."""
    s = socket.create_connection(("127.0.0.1", port))
    got = bytearray()
    s.setblocking(True)
    import threading

    def reader():
        while True:
            b = s.recv(1 << 16)
            if not b:
                return
            got.extend(b)
    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    t.join(30)
    s.close()
    return bytes(got)


def test(fn):
    results.append((fn.__name__, fn))
    return fn


@test
def cat_to_echo_over_tls_tcp():
    port = free_port()
    e = Proc([RILL, "echo", "tls+tcp://127.0.0.1:%d?cert=%s&key=%s" % (port, CERT, KEY)])
    try:
        wait_port(port)
        data = os.urandom(SIZE)
        got = rill_cat("tls+tcp://127.0.0.1:%d?ca=%s" % (port, CERT), data)
        check(sha(got) == sha(data), "echoed data differs (%d of %d bytes)" % (len(got), len(data)))
    finally:
        e.stop()


@test
def cat_listen_over_tls_unix():
    path = os.path.join(TMP, "l.sock")
    out = os.path.join(TMP, "received")
    data = os.urandom(SIZE)
    with open(out, "wb") as o:
        srv = Proc([RILL, "cat", "-l", "tls+unix:%s?cert=%s&key=%s" % (path, CERT, KEY)],
                   stdin=subprocess.DEVNULL, stdout=o)
        try:
            wait_path(path)
            rill_cat("tls+unix:%s?ca=%s&sni=localhost" % (path, CERT), data)
            srv.p.wait(30)
            check(srv.p.returncode == 0, "rill cat -l: %s" % srv.stderr())
        finally:
            srv.stop()
    with open(out, "rb") as f:
        got = f.read()
    check(sha(got) == sha(data), "received data differs (%d bytes)" % len(got))


@test
def s_client_against_rill_echo():
    port = free_port()
    e = Proc([RILL, "echo", "tls+tcp://127.0.0.1:%d?cert=%s&key=%s&alpn=x,http/1.1" % (port, CERT, KEY)])
    try:
        wait_port(port)
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                            "-CAfile", CERT, "-verify_return_error", "-servername", "localhost",
                            "-alpn", "http/1.1", "-no_ign_eof", "-nocommands"],
                           input=b"ping over tls\n", capture_output=True, timeout=20)
        out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        check("Verify return code: 0 (ok)" in out, "s_client did not verify: " + out)
        check("ALPN protocol: http/1.1" in out, "no ALPN in: " + out)
    finally:
        e.stop()


@test
def relay_terminates_tls():
    back = free_port()
    front = free_port()
    e = Proc([RILL, "echo", "tcp://127.0.0.1:%d" % back])
    r = Proc([RILL, "relay", "tls+tcp://127.0.0.1:%d?cert=%s&key=%s" % (front, CERT, KEY),
              "tcp://127.0.0.1:%d" % back])
    try:
        wait_port(back)
        wait_port(front)
        data = os.urandom(SIZE)
        got = rill_cat("tls+tcp://127.0.0.1:%d?ca=%s" % (front, CERT), data)
        check(sha(got) == sha(data), "relayed data differs (%d bytes)" % len(got))
    finally:
        r.stop()
        e.stop()
    check(r.p.returncode == 0, "relay exit %s: %s" % (r.p.returncode, r.stderr()))


@test
def relay_originates_tls():
    back = free_port()
    front = free_port()
    e = Proc([RILL, "echo", "tls+tcp://127.0.0.1:%d?cert=%s&key=%s" % (back, CERT, KEY)])
    r = Proc([RILL, "relay", "tcp://127.0.0.1:%d" % front,
              "tls+tcp://127.0.0.1:%d?ca=%s" % (back, CERT)])
    try:
        wait_port(back)
        wait_port(front)
        data = os.urandom(SIZE)
        got = echo_roundtrip_plain(front, data)
        check(sha(got) == sha(data), "relayed data differs (%d bytes)" % len(got))
    finally:
        r.stop()
        e.stop()
    check(r.p.returncode == 0, "relay exit %s: %s" % (r.p.returncode, r.stderr()))


@test
def relay_tls_to_tls_over_unix():
    back = os.path.join(TMP, "back.sock")
    front = free_port()
    e = Proc([RILL, "echo", "tls+unix:%s?cert=%s&key=%s" % (back, CERT, KEY)])
    r = Proc([RILL, "relay", "tls+tcp://127.0.0.1:%d?cert=%s&key=%s" % (front, CERT, KEY),
              "tls+unix:%s?ca=%s&sni=localhost" % (back, CERT)])
    try:
        wait_path(back)
        wait_port(front)
        data = os.urandom(SIZE)
        got = rill_cat("tls+tcp://127.0.0.1:%d?ca=%s" % (front, CERT), data)
        check(sha(got) == sha(data), "relayed data differs (%d bytes)" % len(got))
    finally:
        r.stop()
        e.stop()


@test
def cat_reports_certificate_errors():
    port = free_port()
    e = Proc([RILL, "echo", "tls+tcp://127.0.0.1:%d?cert=%s&key=%s" % (port, CERT, KEY)])
    try:
        wait_port(port)
        # The system store does not know the test certificate.
        p = subprocess.run([RILL, "cat", "tls+tcp://localhost:%d" % port],
                           input=b"", capture_output=True, timeout=20)
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 1, "exit %d" % p.returncode)
        check("self-signed" in err, "no reason in: " + err)
        p = subprocess.run([RILL, "cat", "tls+tcp://127.0.0.1:%d?ca=%s&sni=wrong.example" % (port, CERT)],
                           input=b"", capture_output=True, timeout=20)
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 1 and "wrong.example" in err, "no host name in: " + err)
        # verify=none is explicit and works.
        got = rill_cat("tls+tcp://localhost:%d?verify=none" % port, b"unverified")
        check(got == b"unverified", "got %r" % got)
    finally:
        e.stop()


@test
def bad_tls_uris_say_what():
    for uri, part in [("tls+tcp://h:1?min=1.1", "1.1"),
                      ("tls+tcp://h:1?verify=maybe", "maybe"),
                      ("tls+tcp://h:1?alpn=a,,b", "a,,b"),
                      ("tls+tcp://h:1?bogus=1", "bogus")]:
        p = subprocess.run([RILL, "cat", uri], input=b"", capture_output=True, timeout=10)
        err = p.stderr.decode(errors="replace")
        check(p.returncode != 0 and part in err, "%s: %r" % (uri, err))


def proc_cpu(pid):
    """User + system CPU seconds of pid so far."""
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


@test
def keyupdate_flood_from_a_non_reader():
    """An attacker's client asks for a KeyUpdate answer over and over
    (tests/tls_keyupdate_flood.c) and never reads. rill echo must stop
    reading it once the answers pile up, so that TCP's (here the Unix
    socket's) flow control holds the attacker: its send blocks, and rill
    reads nothing more and idles. Before, rill read on, kept every answer
    and copied the whole backlog for each one: 9 s of CPU in 10 s, still
    reading."""
    flood = os.path.join(os.path.dirname(RILL), "tests",
                         "tls_keyupdate_flood")
    check(os.path.exists(flood), "no %s (built with the tests)" % flood)
    path = os.path.join(TMP, "ku.sock")
    srv = Proc([RILL, "echo", "tls+unix:%s?cert=%s&key=%s" %
                (path, CERT, KEY)])
    try:
        wait_path(path)
        fl = subprocess.Popen([flood, path, str(8 << 20), "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            first = fl.stdout.readline().split()
            cpu0 = proc_cpu(srv.p.pid)
            second = fl.stdout.readline().split()
            cpu = proc_cpu(srv.p.pid) - cpu0
            fl.wait(10)
        finally:
            if fl.poll() is None:
                fl.kill()
                fl.wait()
        check(fl.returncode == 0 and len(first) == 4 and len(second) == 2,
              "flooder failed: %r %r %r" % (first, second, fl.stderr.read()))
        sent, blocked, read = int(first[1]), first[3] == b"1", int(second[1])
        check(blocked and sent < 4 << 20 and read == 0 and cpu < 1.0,
              "rill read on: the attacker sent %d bytes, blocked: %s; "
              "in the next 3 s rill read %d more and spent %.2f s of CPU" %
              (sent, blocked, read, cpu))
        data = os.urandom(1 << 16)
        got = rill_cat("tls+unix:%s?ca=%s&sni=localhost" % (path, CERT),
                       data)
        check(got == data, "rill echo no longer serves others")
    finally:
        srv.stop()


def main():
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", KEY, "-out", CERT,
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2"],
                   check=True, capture_output=True)
    print("1..%d" % len(results))
    failed = 0
    for i, (name, fn) in enumerate(results, 1):
        t0 = time.time()
        try:
            fn()
            print("ok %d - %s # %.2fs" % (i, name, time.time() - t0))
        except Exception as e:
            failed += 1
            print("not ok %d - %s" % (i, name))
            for line in traceback.format_exception_only(type(e), e):
                print("# " + line.rstrip())
        sys.stdout.flush()
    shutil.rmtree(TMP, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
