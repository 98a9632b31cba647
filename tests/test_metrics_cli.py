#!/usr/bin/env python3
"""TAP tests of --metrics, --log-format json and systemd readiness on
`rill relay`, `rill echo` and `rill http serve`, against real peers:

- promtool (Debian's prometheus package) checks every scrape;
- a real Prometheus server on loopback scrapes `rill relay --metrics`
  while traffic flows, and its HTTP query API must show byte counters
  equal to the bytes the test moved;
- the JSON log lines are parsed with Python's json module, including a
  hostile HTTP target and header values (quotes, backslashes, control
  characters, invalid UTF-8);
- NOTIFY_SOCKET is a datagram socket of the test: READY=1 must arrive
  only once the listener accepts (the test connects at once), WATCHDOG=1
  as often as WATCHDOG_USEC asks, STOPPING=1 at SIGTERM; and a real
  transient Type=notify unit through systemd-run where systemd runs.

Usage: test_metrics_cli.py RILL_BINARY [--quote LOGFMT_QUOTE] [TEST...]
(LOGFMT_QUOTE: tests/logfmt_quote, the JSON quoting alone, for the test
of every byte value.)
Tests that need a missing program are skipped with the reason.
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request

RILL = os.path.abspath(sys.argv[1])
ARGS = sys.argv[2:]
QUOTE = None
if ARGS[:1] == ["--quote"]:
    QUOTE = ARGS[1]
    ARGS = ARGS[2:]
ONLY = ARGS
TMP = tempfile.mkdtemp(prefix="rill-metrics-")
results = []


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def test(fn):
    results.append((fn.__name__, fn))
    return fn


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise Fail("timed out waiting for " + what)


class Proc:
    """A rill child whose stderr goes to a file."""

    def __init__(self, args, env=None, ready=r"listening on"):
        self.logpath = os.path.join(TMP, "p%d.log" % id(self))
        self.log = open(self.logpath, "wb")
        self.p = subprocess.Popen([RILL] + args, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=self.log,
                                  env=env)
        if ready:
            wait_for(lambda: re.search(ready, self.text()) or
                     self.p.poll() is not None, 10, "%s to start" % args[0])
            check(self.p.poll() is None, "%s exited: %s" % (args, self.text()))

    def text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def raw(self):
        with open(self.logpath, "rb") as f:
            return f.read()

    def stop(self, signalled=False):
        """SIGTERM (unless sent already), then the exit status is 0."""
        if self.p.poll() is None and not signalled:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise Fail("did not stop on SIGTERM")
        self.log.close()
        check(rc == 0, "exit status %d: %s" % (rc, self.text()[-2000:]))


def scrape(url, unix=None):
    if unix is not None:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(unix)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 200"), head[:100])
        check(b"text/plain; version=0.0.4" in head, head)
        return body.decode()
    with urllib.request.urlopen(url, timeout=10) as r:
        check(r.status == 200, r.status)
        check(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"),
              r.headers["Content-Type"])
        return r.read().decode()


def promtool_ok(text):
    if shutil.which("promtool") is None:
        raise Skip("promtool not installed (Debian package prometheus)")
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    check(p.returncode == 0 and p.stdout.strip() == b"" and
          p.stderr.strip() == b"",
          "promtool: rc=%d %s %s" % (p.returncode, p.stdout, p.stderr))


def value(text, name, **labels):
    """The value of the sample name{labels...} (labels: a subset)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r'([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$', line)
        if m is None or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


class EchoServer:
    """A plain Python echo server (the relay's target)."""

    def __init__(self):
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(64)
        self.port = self.s.getsockname()[1]
        self.uri = "tcp://127.0.0.1:%d" % self.port
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    @staticmethod
    def serve(c):
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        c.close()

    def close(self):
        self.s.close()


def echo_through(port, payload):
    """Sends payload to 127.0.0.1:port, half-closes, reads all back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    got = bytearray()

    def reader():
        while True:
            b = s.recv(65536)
            if not b:
                break
            got.extend(b)

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    t.join(30)
    s.close()
    check(bytes(got) == payload, "echo mismatch: %d of %d bytes" %
          (len(got), len(payload)))
    return len(payload)


def relay_port(proc):
    m = re.search(r"listening on tcp://127\.0\.0\.1:(\d+)", proc.text())
    return int(m.group(1))


# ---------------------------------------------------------------------------
# Scrapes and promtool


@test
def relay_metrics_promtool():
    es = EchoServer()
    mport = free_port()
    r = Proc(["relay", "--threads", "2", "--metrics",
              "tcp://127.0.0.1:%d" % mport, "tcp://127.0.0.1:0", es.uri])
    try:
        port = relay_port(r)
        n = sum(echo_through(port, os.urandom(k)) for k in (1, 70000, 300001))
        listen = "tcp://127.0.0.1:0"  # the label is the URI as given
        text = wait_for(lambda: (lambda t: t if value(
            t, "rill_connections_active", listener=listen) == 0 else None)(
            scrape("http://127.0.0.1:%d/metrics" % mport)), 10,
            "connections to end")
        promtool_ok(text)
        check(value(text, "rill_bytes_total", listener=listen,
                    direction="up") == n, text)
        check(value(text, "rill_bytes_total", direction="down") == n, text)
        check(value(text, "rill_connections_accepted_total") == 3, text)
        check(value(text, "rill_connection_duration_seconds_count") == 3, text)
        check(value(text, "rill_connect_duration_seconds_count") == 3, text)
        check(value(text, "process_open_fds") > 0, text)
        check(value(text, "process_resident_memory_bytes") > 0, text)
    finally:
        r.stop()
        es.close()


@test
def relay_denied_and_connect_failures():
    es = EchoServer()
    mport = free_port()
    dead = free_port()
    r = Proc(["relay", "--threads", "1", "--max-conns", "1", "--metrics",
              "tcp://127.0.0.1:%d" % mport, "tcp://127.0.0.1:0", es.uri])
    r2 = Proc(["relay", "--metrics", "tcp://127.0.0.1:%d" % (mport2 := free_port()),
               "tcp://127.0.0.1:0", "tcp://127.0.0.1:%d" % dead])
    try:
        held = socket.create_connection(("127.0.0.1", relay_port(r)))
        held.sendall(b"x")
        check(held.recv(1) == b"x", "held connection")
        extra = socket.create_connection(("127.0.0.1", relay_port(r)))
        check(extra.recv(1) == b"", "the extra connection is closed")
        extra.close()
        held.close()
        c = socket.create_connection(("127.0.0.1", relay_port(r2)))
        c.settimeout(10)
        check(c.recv(1) == b"", "closed after the failed connect")
        c.close()
        t = wait_for(lambda: (lambda t: t if value(
            t, "rill_connections_denied_total", reason="max-conns") == 1
            else None)(scrape("http://127.0.0.1:%d/metrics" % mport)), 10,
            "denied count")
        promtool_ok(t)
        t2 = wait_for(lambda: (lambda t: t if value(
            t, "rill_connect_failures_total", reason="econnrefused") == 1
            else None)(scrape("http://127.0.0.1:%d/metrics" % mport2)), 10,
            "connect failure count")
        promtool_ok(t2)
    finally:
        r.stop()
        r2.stop()
        es.close()


@test
def echo_metrics_on_unix_socket():
    sock = os.path.join(TMP, "echo-metrics.sock")
    port = free_port()
    e = Proc(["echo", "-v", "--metrics", "unix:" + sock,
              "tcp://127.0.0.1:%d" % port])
    try:
        n = echo_through(port, os.urandom(123457))
        text = wait_for(lambda: (lambda t: t if value(
            t, "rill_connections_active") == 0 else None)(
            scrape(None, unix=sock)), 10, "the echo connection to end")
        promtool_ok(text)
        check(value(text, "rill_bytes_total", direction="up") == n, text)
        check(value(text, "rill_bytes_total", direction="down") == n, text)
        check(value(text, "rill_connections_accepted_total") == 1, text)
    finally:
        e.stop()


@test
def metrics_unix_socket_other_uid():
    # What rill(1) advises: a metrics socket where only its owner may
    # reach it (here a 0700 directory; the socket itself is made under
    # the process's umask). Another uid (nobody) cannot connect to it;
    # the owner scrapes it.
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        raise Skip("needs root and setpriv to act as another uid")
    d = os.path.join(TMP, "private")
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.chmod(TMP, 0o755)
    sock = os.path.join(d, "m.sock")
    port = free_port()
    e = Proc(["echo", "-v", "--metrics", "unix:" + sock,
              "tcp://127.0.0.1:%d" % port])
    try:
        code = ("import socket,sys\n"
                "s=socket.socket(socket.AF_UNIX)\n"
                "try:\n s.connect(sys.argv[1])\n"
                "except PermissionError:\n sys.exit(3)\n"
                "sys.exit(0)\n")
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                            "--clear-groups", "/usr/bin/python3", "-c",
                            code, sock], capture_output=True, timeout=30)
        check(p.returncode == 3, "nobody could connect: %r" % (p,))
        promtool_ok(scrape(None, unix=sock))
    finally:
        e.stop()


def scrape_until(mport, pred, what, timeout=10):
    """Scrapes until pred(text) holds; five scrapes a second at most (the
    metrics listener serves 16 new connections a second)."""
    deadline = time.monotonic() + timeout
    while True:
        text = scrape("http://127.0.0.1:%d/metrics" % mport)
        if pred(text):
            return text
        if time.monotonic() > deadline:
            raise Fail("timed out waiting for %s:\n%s" % (what, text))
        time.sleep(0.2)


@test
def http_metrics_and_hostile_scrapes():
    d = os.path.join(TMP, "www")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "a.txt"), "w") as f:
        f.write("hello\n")
    port, mport = free_port(), free_port()
    h = Proc(["http", "serve", "--threads", "2", "--metrics",
              "tcp://127.0.0.1:%d" % mport, "tcp://127.0.0.1:%d" % port, d],
             ready=None)
    try:
        wait_for(lambda: scrape_or_none(mport), 10, "the metrics listener")
        base = "http://127.0.0.1:%d" % port
        for path, code in (("/a.txt", 200), ("/missing", 404), ("/", 200)):
            try:
                urllib.request.urlopen(base + path, timeout=10).read()
                got = 200
            except urllib.error.HTTPError as e:
                got = e.code
            check(got == code, "%s: %d" % (path, got))
        req = urllib.request.Request(base + "/a.txt", method="DELETE")
        try:
            urllib.request.urlopen(req, timeout=10)
        except urllib.error.HTTPError as e:
            check(e.code == 405, e.code)
        # The metrics endpoint refuses what is not a scrape, and a huge
        # request head, and goes on serving.
        for raw, want in ((b"POST /metrics HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 0\r\n\r\n", b" 405 "),
                          (b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n", b" 404 "),
                          (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 +
                           b"\r\n\r\n", b" 431 ")):
            s = socket.create_connection(("127.0.0.1", mport), timeout=10)
            s.sendall(raw)
            check(want in s.recv(200), raw[:40])
            s.close()
        text = scrape("http://127.0.0.1:%d/metrics" % mport)
        promtool_ok(text)
        check(value(text, "rill_http_requests_total", method="GET",
                    code="2xx") == 2, text)
        check(value(text, "rill_http_requests_total", method="GET",
                    code="4xx") == 1, text)
        check(value(text, "rill_http_requests_total", method="DELETE",
                    code="4xx") == 1, text)
        check(value(text, "rill_http_request_duration_seconds_count") == 4,
              text)
        check(value(text, "rill_connections_accepted_total") == 4, text)
        # Each urllib request was its own connection, and all have
        # ended: none active, four durations, and the bytes of exactly
        # the heads and bodies that went each way.
        text = scrape_until(mport, lambda t: value(
            t, "rill_connection_duration_seconds_count") == 4,
            "four connection ends to be counted")
        check(value(text, "rill_connections_active") == 0, text)
        # A raw keep-alive connection of two requests whose bytes are
        # known; it stays open (active 1) until we close it.
        up0 = value(text, "rill_bytes_total", direction="up")
        down0 = value(text, "rill_bytes_total", direction="down")
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        req = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        got = b""
        for _ in range(2):
            s.sendall(req)
            one = b""
            while not one.endswith(b"hello\n"):
                c = s.recv(4096)
                check(c, "the keep-alive response ended early")
                one += c
            got += one
        text = scrape("http://127.0.0.1:%d/metrics" % mport)
        check(value(text, "rill_connections_active") == 1, text)
        s.close()
        text = scrape_until(mport, lambda t: value(
            t, "rill_connections_active") == 0,
            "the connection's end to be counted")
        promtool_ok(text)
        check(value(text, "rill_bytes_total", direction="up") - up0 ==
              2 * len(req), text)
        check(value(text, "rill_bytes_total", direction="down") - down0 ==
              len(got), (len(got), text))
        check(value(text, "rill_connection_duration_seconds_count") == 5,
              text)
    finally:
        h.stop()


@test
def metrics_listener_limit():
    # 40 connections at once, none sending: at most 16 a second are
    # served, the others closed at once; silent ones are dropped at the
    # 5 s head deadline; the process goes on serving scrapes.
    port, mport = free_port(), free_port()
    e = Proc(["echo", "-v", "--metrics", "tcp://127.0.0.1:%d" % mport,
              "tcp://127.0.0.1:%d" % port])
    try:
        conns = [socket.create_connection(("127.0.0.1", mport), timeout=10)
                 for _ in range(40)]
        closed = 0
        for c in conns:
            c.settimeout(0.5)
            try:
                if c.recv(1) == b"":
                    closed += 1
            except socket.timeout:
                pass
        check(closed >= 40 - 16, "closed at once: %d of 40" % closed)
        t0 = time.monotonic()
        for c in conns:
            c.settimeout(10)
            try:
                c.recv(100)  # 408 or EOF for the silent ones
            except OSError:
                pass
            c.close()
        check(time.monotonic() - t0 < 9, "silent connections dropped")
        time.sleep(1.1)
        promtool_ok(scrape("http://127.0.0.1:%d/metrics" % mport))
    finally:
        e.stop()


# Keep-alive scrapers that each ask again well within the 10 s idle
# timeout: paced under the 16-a-second accept rate, they would pile up
# without end if nothing bounded the connections held at once.
KEEPALIVE_ATTACKER = r"""
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
held = []
def pump():
    for s in list(held):
        try:
            while True:
                if not s.recv(65536):
                    raise OSError("closed")
        except BlockingIOError:
            pass
        except OSError:
            held.remove(s)
            continue
        try:
            s.send(req)
        except OSError:
            held.remove(s)
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), 2)
        s.setblocking(False)
        s.send(req)
        held.append(s)
    except OSError:
        pass
    time.sleep(0.1)
    if i % 5 == 4:
        pump()
pump()
print(len(held), flush=True)
while True:
    time.sleep(1)
    pump()
"""


def proc_sockets(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith(
                    "socket:"):
                n += 1
        except OSError:
            pass
    return n


@test
def metrics_keepalive_pileup():
    # Another uid opens 40 connections to the metrics listener at 10 a
    # second (under its accept rate) and keeps each alive with a scrape
    # a second: at most 16 are held at once (before the bound, all 40
    # were, and the count grew by 10 a second for as long as the
    # attacker went on). Once it goes, scrapes are served again.
    port, mport = free_port(), free_port()
    e = Proc(["echo", "-v", "--metrics", "tcp://127.0.0.1:%d" % mport,
              "tcp://127.0.0.1:%d" % port])
    att = None
    try:
        promtool_ok(scrape("http://127.0.0.1:%d/metrics" % mport))
        time.sleep(0.3)
        sock0 = proc_sockets(e.p.pid)
        cmd = ["/usr/bin/python3", "-c", KEEPALIVE_ATTACKER, str(mport), "40"]
        if os.geteuid() == 0 and shutil.which("setpriv") is not None:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534",
                   "--clear-groups"] + cmd
        att = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        held = int(att.stdout.readline() or -1)
        peak = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:
            peak = max(peak, proc_sockets(e.p.pid) - sock0)
            time.sleep(0.05)
        check(peak <= 16 and held <= 16,
              "metrics connections held at once: %d (the attacker "
              "holds %d of 40)" % (peak, held))
        att.kill()
        att.wait()
        att = None
        wait_for(lambda: scrape_or_none(mport), 10, "a scrape after")
    finally:
        if att is not None:
            att.kill()
            att.wait()
        e.stop()


def scrape_or_none(mport):
    try:
        return scrape("http://127.0.0.1:%d/metrics" % mport)
    except (OSError, Fail):
        return None


@test
def tls_handshake_results():
    if shutil.which("openssl") is None:
        raise Skip("openssl not installed")
    key, cert = os.path.join(TMP, "k.pem"), os.path.join(TMP, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                    "-out", cert, "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2"],
                   check=True, capture_output=True)
    es = EchoServer()
    port, mport = free_port(), free_port()
    listen = "tls+tcp://127.0.0.1:%d?cert=%s&key=%s" % (port, cert, key)
    r = Proc(["relay", "--threads", "1", "--metrics",
              "tcp://127.0.0.1:%d" % mport, listen, es.uri])
    try:
        ctx = ssl.create_default_context(cafile=cert)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"ping")
                check(t.recv(4) == b"ping", "echo over TLS")
        # Plain text where TLS is expected.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            try:
                s.recv(100)
            except OSError:
                pass
        lab = "tls+tcp://127.0.0.1:%d" % port
        text = wait_for(lambda: (lambda t: t if value(
            t, "rill_tls_handshakes_total", side="accept", result="ok") == 1
            and value(t, "rill_tls_handshakes_total", side="accept",
                      result="etls_not_tls") == 1 else None)(
            scrape("http://127.0.0.1:%d/metrics" % mport)), 10,
            "TLS handshake counts")
        promtool_ok(text)
        check(cert not in text and "key=" not in text,
              "the listener label leaves the query (key paths) out")
        check(value(text, "rill_connections_accepted_total", listener=lab) == 1,
              text)
    finally:
        r.stop()
        es.close()


# ---------------------------------------------------------------------------
# A real Prometheus server


def prom_query(pport, q):
    url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (
        pport, urllib.parse.quote(q))
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            d = json.load(r)
    except OSError:
        return None  # not up yet
    res = d["data"]["result"]
    return None if not res else res[0]["value"][1]


@test
def prometheus_scrapes_relay():
    if shutil.which("prometheus") is None:
        raise Skip("prometheus not installed (Debian package prometheus)")
    es = EchoServer()
    mport, pport = free_port(), free_port()
    r = Proc(["relay", "--threads", "2", "--metrics",
              "tcp://127.0.0.1:%d" % mport, "tcp://127.0.0.1:0", es.uri])
    pdir = os.path.join(TMP, "prom")
    os.makedirs(pdir, exist_ok=True)
    conf = os.path.join(pdir, "prometheus.yml")
    with open(conf, "w") as f:
        f.write("global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n"
                "scrape_configs:\n  - job_name: rill\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % mport)
    plog = open(os.path.join(pdir, "log"), "wb")
    prom = subprocess.Popen(
        ["prometheus", "--config.file=" + conf,
         "--storage.tsdb.path=" + os.path.join(pdir, "data"),
         "--web.listen-address=127.0.0.1:%d" % pport],
        stdout=plog, stderr=plog, stdin=subprocess.DEVNULL)
    try:
        port = relay_port(r)
        wait_for(lambda: prom_query(pport, 'up{job="rill"}') == "1", 30,
                 "Prometheus to scrape the relay")
        # A long connection that moves bytes while Prometheus scrapes:
        # its bytes show before it ends (the relay adds live
        # connections' bytes once a second).
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        moved = 0
        chunk = os.urandom(100000)
        for _ in range(5):
            s.sendall(chunk)
            got = 0
            while got < len(chunk):
                got += len(s.recv(len(chunk) - got))
            moved += len(chunk)
        live = wait_for(lambda: (lambda v: v if v is not None and
                                 float(v) >= moved else None)(
            prom_query(pport, 'sum(rill_bytes_total{direction="up"})')),
            15, "live bytes in Prometheus")
        check(float(live) == moved, "live: %s != %d" % (live, moved))
        # Then many short connections at once, and the long one ends.
        total = moved
        threads = []
        sizes = [1, 1000, 65536, 65537, 250000, 777777, 3, 12345]
        out = []
        for k in sizes:
            t = threading.Thread(target=lambda k=k: out.append(
                echo_through(port, os.urandom(k))))
            t.start()
            threads.append(t)
        for t in threads:
            t.join(60)
        check(len(out) == len(sizes), "every transfer finished")
        total += sum(sizes)
        s.shutdown(socket.SHUT_WR)
        check(s.recv(10) == b"", "EOF after the half-close")
        s.close()
        for direction in ("up", "down"):
            q = 'sum(rill_bytes_total{job="rill",direction="%s"})' % direction
            v = wait_for(lambda: (lambda v: v if v is not None and
                                  float(v) >= total else None)(
                prom_query(pport, q)), 20, "bytes %s to reach %d" %
                (direction, total))
            check(int(v) == total, "%s: Prometheus has %s, the test moved %d"
                  % (direction, v, total))
        v = prom_query(pport, 'sum(rill_connections_accepted_total)')
        check(v == str(1 + len(sizes)), "accepted: %s" % v)
    finally:
        prom.terminate()
        try:
            prom.wait(20)
        except subprocess.TimeoutExpired:
            prom.kill()
        plog.close()
        r.stop()
        es.close()


# ---------------------------------------------------------------------------
# JSON logs


def json_lines(raw, cmd):
    """Every line of raw that is a JSON object of cmd, parsed."""
    objs = []
    for line in raw.split(b"\n"):
        if not line.startswith(b"{"):
            continue
        # Valid UTF-8 and no raw control character, whatever came in.
        text = line.decode("utf-8")
        check(not re.search(r"[\x00-\x1f\x7f]", text), repr(line))
        o = json.loads(text)
        if o.get("cmd") == cmd:
            objs.append(o)
    return objs


TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@test
def relay_json_log():
    es = EchoServer()
    r = Proc(["relay", "--log-format", "json", "--max-conns", "1",
              "--threads", "1", "tcp://127.0.0.1:0", es.uri])
    try:
        port = relay_port(r)
        echo_through(port, b"x" * 1000)
        held = socket.create_connection(("127.0.0.1", port))
        held.sendall(b"y")
        held.recv(1)
        extra = socket.create_connection(("127.0.0.1", port))
        extra.recv(1)
        extra.close()
        held.close()
        objs = wait_for(lambda: (lambda o: o if len(o) == 3 else None)(
            json_lines(r.raw(), "relay")), 10, "three JSON records")
    finally:
        r.stop()
        es.close()
    eof = [o for o in objs if o["end"] == "eof"]
    refused = [o for o in objs if o["end"] == "refused"]
    check(len(eof) == 2 and len(refused) == 1, objs)
    o = eof[0]
    check(o["up"] == 1000 and o["down"] == 1000, o)
    check(o["via"] in ("splice", "copy"), o)
    check(o["client"].startswith("tcp://127.0.0.1:"), o)
    check(TS.match(o["ts"]) and TS.match(o["start"]) and
          o["start"] <= o["ts"], o)
    check(isinstance(o["id"], int) and o["time"] >= 0, o)
    check(refused[0]["detail"] == "max-conns 1 reached", refused)


@test
def http_json_log_hostile():
    d = os.path.join(TMP, "www2")
    os.makedirs(d, exist_ok=True)
    port = free_port()
    h = Proc(["http", "serve", "--threads", "1", "--log-format", "json",
              "tcp://127.0.0.1:%d" % port, d], ready=None)
    # What a client chooses: quotes, backslashes, a raw tab and DEL,
    # invalid UTF-8 (a lone continuation byte, an overlong '/', a
    # truncated sequence), U+2028 and a valid 'é'; in the target and in
    # header values. (HTTP allows no raw CR, LF or NUL there: llhttp
    # refuses them before any handler runs.)
    target = b'/a"b\\c%0A\x80\xc0\xaf\xc3?q=\xe2\x80\xa8\xc3\xa9'
    ua = b'ua\t"x\\y\xff\xfe}{'
    referer = b'","end":"forged'
    try:
        wait_for(lambda: port_open(port), 10, "http serve")
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\nUser-Agent: " +
                  ua + b"\r\nReferer: " + referer +
                  b"\r\nConnection: close\r\n\r\n")
        resp = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            resp += b
        s.close()
        check(resp.startswith(b"HTTP/1.1 404"), resp[:60])
        objs = wait_for(lambda: json_lines(h.raw(), "http"), 10,
                        "a JSON record")
    finally:
        h.stop()
    check(len(objs) == 1, objs)
    o = objs[0]
    R = "\ufffd"
    check(o["target"] == '/a"b\\c%0A' + R + R + R + R + "?q=\u2028\u00e9",
          repr(o["target"]))
    check(o["user_agent"] == 'ua\t"x\\y' + R + R + "}{",
          repr(o["user_agent"]))
    check(o["referer"] == referer.decode(), repr(o["referer"]))
    check("end" not in o, "a header value forged a member: %r" % o)
    check(o["method"] == "GET" and o["status"] == 404 and o["host"] == "h", o)
    check(TS.match(o["ts"]) and TS.match(o["start"]), o)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


@test
def json_quoting_every_byte():
    if QUOTE is None:
        raise Skip("no --quote helper given")
    import random
    rnd = random.Random(28)
    cases = [bytes(range(256)), bytes(range(128)), b"", b"\x00",
             "\u2028\u2029\U0010ffff\ud7ff\ue000".encode("utf-8"),
             b"\xed\xa0\x80\xf4\x90\x80\x80\xe0\x80\xaf\xc1\xbf"]
    cases += [bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(64)))
              for _ in range(300)]
    for raw in cases:
        p = subprocess.run([QUOTE], input=raw, capture_output=True, timeout=10)
        check(p.returncode == 0, p)
        line = p.stdout
        check(line.endswith(b"\n") and line.count(b"\n") == 1, line)
        text = line[:-1].decode("utf-8")  # always valid UTF-8
        check(not re.search(r"[\x00-\x1f\x7f\u2028\u2029]", text),
              repr(text))
        got = json.loads(text)["s"]
        # The valid UTF-8 comes back unchanged; each byte that is not
        # part of a valid sequence becomes U+FFFD.
        check(got == lax_replace(raw), (raw, got))


def lax_replace(raw):
    """U+FFFD per invalid byte (Python's decoder groups some)."""
    out, i = [], 0
    while i < len(raw):
        for n in (1, 2, 3, 4):
            try:
                out.append(raw[i:i + n].decode("utf-8"))
                i += n
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


@test
def echo_json_log():
    port = free_port()
    e = Proc(["echo", "-v", "--log-format", "json",
              "tcp://127.0.0.1:%d" % port])
    try:
        echo_through(port, b"z" * 4321)
        objs = wait_for(lambda: json_lines(e.raw(), "echo"), 10, "a record")
    finally:
        e.stop()
    o = objs[0]
    check(o["up"] == 4321 and o["down"] == 4321 and o["end"] == "eof", o)


@test
def bad_log_format_is_a_usage_error():
    for args in (["relay", "--log-format", "xml", "tcp://127.0.0.1:1",
                  "tcp://127.0.0.1:2"],
                 ["echo", "--log-format", "", "tcp://127.0.0.1:1"],
                 ["http", "serve", "--log-format", "JSON", "tcp://127.0.0.1:1"]):
        p = subprocess.run([RILL] + args, capture_output=True, timeout=10)
        check(p.returncode == 2 and b"log-format" in p.stderr, (args, p))
    # A --metrics URI that cannot listen: a clear error, exit 1.
    p = subprocess.run([RILL, "echo", "--metrics", "bogus://x",
                        "tcp://127.0.0.1:0"], capture_output=True, timeout=10)
    check(p.returncode == 1 and b"metrics" in p.stderr, p)


# ---------------------------------------------------------------------------
# systemd readiness


class NotifySocket:
    n = 0

    def __init__(self, abstract=False):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            NotifySocket.n += 1
            name = "rill-test-notify-%d-%d" % (os.getpid(), NotifySocket.n)
            self.s.bind("\0" + name)
            self.env = "@" + name
        else:
            NotifySocket.n += 1
            path = os.path.join(TMP, "notify-%d.sock" % NotifySocket.n)
            self.s.bind(path)
            self.env = path

    def recv(self, timeout):
        self.s.settimeout(timeout)
        try:
            return self.s.recv(4096).decode()
        except socket.timeout:
            return None

    def close(self):
        self.s.close()


def readiness(args, port, abstract=False):
    ns = NotifySocket(abstract)
    env = dict(os.environ, NOTIFY_SOCKET=ns.env, WATCHDOG_USEC="200000")
    p = Proc(args, env=env, ready=None)
    try:
        msg = ns.recv(15)
        check(msg is not None and msg.startswith("READY=1"), msg)
        check("\nSTATUS=" in msg, msg)
        # At once: the listener must accept now.
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.close()
        dogs = 0
        deadline = time.monotonic() + 3
        while dogs < 3 and time.monotonic() < deadline:
            m = ns.recv(1)
            if m == "WATCHDOG=1":
                dogs += 1
        check(dogs >= 3, "WATCHDOG=1 every 100 ms: %d in 3 s" % dogs)
        p.p.send_signal(signal.SIGTERM)
        while True:
            m = ns.recv(10)
            check(m is not None, "no STOPPING=1")
            if m == "STOPPING=1":
                break
            check(m == "WATCHDOG=1", m)
        p.stop(signalled=True)
        check("NOTIFY_SOCKET" not in p.text(), p.text())
    finally:
        if p.p.poll() is None:
            p.p.kill()
        ns.close()


@test
def notify_relay():
    es = EchoServer()
    port = free_port()
    try:
        readiness(["relay", "--threads", "2", "tcp://127.0.0.1:%d" % port,
                   es.uri], port)
    finally:
        es.close()


@test
def notify_http_serve():
    port = free_port()
    readiness(["http", "serve", "--threads", "2",
               "tcp://127.0.0.1:%d" % port, TMP], port)


@test
def notify_echo_abstract():
    port = free_port()
    readiness(["echo", "tcp://127.0.0.1:%d" % port], port, abstract=True)


@test
def notify_exec_child_does_not_inherit():
    # An exec: target (one child per connection) must not see
    # NOTIFY_SOCKET: it could otherwise claim readiness for the relay.
    ns = NotifySocket()
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=ns.env)
    p = Proc(["relay", "--threads", "1", "tcp://127.0.0.1:%d" % port,
              "exec:/usr/bin/env"], env=env, ready=None)
    try:
        check((ns.recv(15) or "").startswith("READY=1"), "READY=1")
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
        s.close()
        check(b"PATH=" in out, out[:200])
        check(b"NOTIFY_SOCKET" not in out and b"WATCHDOG" not in out, out)
        p.stop()
    finally:
        if p.p.poll() is None:
            p.p.kill()
        ns.close()


@test
def systemd_run_notify_unit():
    if not os.path.isdir("/run/systemd/system"):
        raise Skip("systemd is not PID 1 here (no /run/systemd/system): "
                   "no transient Type=notify unit can be started")
    port = free_port()
    unit = "rill-metrics-test-%d" % os.getpid()
    p = subprocess.run(["systemd-run", "--unit", unit, "-p", "Type=notify",
                        "--collect", RILL, "echo",
                        "tcp://127.0.0.1:%d" % port],
                       capture_output=True, timeout=60)
    try:
        # systemd-run returns once the unit is active, that is after
        # READY=1 for Type=notify.
        check(p.returncode == 0, p)
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.close()
    finally:
        subprocess.run(["systemctl", "stop", unit], capture_output=True,
                       timeout=60)


def main():
    print("1..%d" % len(results))
    failed = 0
    for i, (name, fn) in enumerate(results, 1):
        if ONLY and name not in ONLY:
            print("ok %d - %s # SKIP not selected" % (i, name))
            continue
        t0 = time.time()
        try:
            fn()
            print("ok %d - %s # %.2fs" % (i, name, time.time() - t0))
        except Skip as e:
            print("ok %d - %s # SKIP %s" % (i, name, e))
        except Exception as e:
            failed += 1
            print("not ok %d - %s" % (i, name))
            for line in traceback.format_exc().splitlines()[-12:]:
                print("# " + line)
        sys.stdout.flush()
    shutil.rmtree(TMP, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
