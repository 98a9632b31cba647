#!/usr/bin/env python3
"""Byte ranges, validators and HEAD of `rill http serve`, checked by real
clients: curl (-r, -C -) and Python's h11 (Debian's python3-h11) as a
strict HTTP/1.1 parser of every response, all requests of a group on one
keep-alive connection so that a framing mistake (a body on a 304 or a
HEAD, a wrong Content-Length) breaks the next response.

Rules: RFC 9110 sections 8.8 (validators), 13 (conditional requests) and
14 (range requests). Prints TAP. Usage: test_http_ranges.py BUILD_DIR
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap_lib import Tap, free_port, wait_port  # noqa: E402

try:
    import h11
except ImportError:
    # Debian's package installs into the system interpreter's path; a
    # Python from elsewhere (pyenv) can still use that pure-Python module.
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import h11
    except ImportError:
        h11 = None

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
RILL = os.path.join(BUILD, "rill")
T = Tap()
ok, skip = T.ok, T.skip


class H11Client:
    """Requests on one connection, every response parsed by h11."""

    def __init__(self, port):
        self.port = port
        self.sock = None

    def _connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), 5)
        self.sock.settimeout(10)
        self.conn = h11.Connection(h11.CLIENT)

    def request(self, method, target, headers=()):
        if self.sock is None:
            self._connect()
        hs = [("Host", "test")] + list(headers)
        self.sock.sendall(self.conn.send(
            h11.Request(method=method, target=target, headers=hs)))
        self.sock.sendall(self.conn.send(h11.EndOfMessage()))
        resp, body = None, b""
        while True:
            ev = self.conn.next_event()
            if ev is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(1 << 16))
                continue
            if isinstance(ev, h11.Response):
                resp = ev
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        headers = {}
        for k, v in resp.headers:
            headers.setdefault(k.decode().lower(), v.decode())
        if self.conn.our_state is h11.DONE and \
                self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        else:
            self.close()
        return resp.status_code, headers, body

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def curl(*args):
    return subprocess.run(["curl", "-s", "--max-time", "20", *args],
                          capture_output=True)


def check_file(c, name, data, big):
    """The range and conditional matrix on one file."""
    n = len(data)
    what = "%s (%s)" % (name, "streamed" if big else "cached")
    url = "/" + name
    st, h, body = c.request("GET", url)
    etag = h.get("etag", "")
    ok(st == 200 and body == data and etag.startswith('"') and
       etag.endswith('"') and h.get("accept-ranges") == "bytes" and
       "last-modified" in h,
       "%s: GET 200 with a strong ETag, Accept-Ranges, Last-Modified" % what,
       (st, h))
    lm = h.get("last-modified", "")
    cases = [
        ("bytes=0-9", 206, data[0:10], "bytes 0-9/%d" % n),
        ("bytes=10-", 206, data[10:], "bytes 10-%d/%d" % (n - 1, n)),
        ("bytes=-100", 206, data[-100:], "bytes %d-%d/%d" % (n - 100, n - 1, n)),
        ("bytes=%d-99999999" % (n - 5), 206, data[-5:],
         "bytes %d-%d/%d" % (n - 5, n - 1, n)),
        ("bytes=-99999999", 206, data, "bytes 0-%d/%d" % (n - 1, n)),
        ("BYTES=1-1", 206, data[1:2], "bytes 1-1/%d" % n),
        ("bytes=0-0,", 206, data[0:1], "bytes 0-0/%d" % n),
        ("bytes=%d-" % n, 416, b"", "bytes */%d" % n),
        ("bytes=%d-%d" % (n + 10, n + 20), 416, b"", "bytes */%d" % n),
        ("bytes=-0", 416, b"", "bytes */%d" % n),
        ("bytes=5-1", 200, data, None),
        ("bytes=0-1,5-6", 200, data, None),
        ("items=0-1", 200, data, None),
        ("bytes=x-1", 200, data, None),
    ]
    for rng, want, wbody, wcr in cases:
        st, h, body = c.request("GET", url, [("Range", rng)])
        good = st == want and body == wbody and h.get("content-range") == wcr
        if want == 206:
            good = good and h.get("content-length") == str(len(wbody)) and \
                h.get("etag") == etag
        ok(good, "%s: Range %s -> %d" % (what, rng, want),
           (st, h, len(body)))
    conds = [
        ([("If-None-Match", etag)], 304),
        ([("If-None-Match", "W/" + etag)], 304),
        ([("If-None-Match", '"x", ' + etag)], 304),
        ([("If-None-Match", "*")], 304),
        ([("If-None-Match", '"other"')], 200),
        ([("If-Modified-Since", lm)], 304),
        ([("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")], 200),
        ([("If-None-Match", '"other"'), ("If-Modified-Since", lm)], 200),
        ([("If-Match", '"other"')], 412),
        ([("If-Match", etag)], 200),
        ([("If-Match", "W/" + etag)], 412),
        ([("If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")], 412),
        ([("If-Unmodified-Since", lm)], 200),
        ([("Range", "bytes=0-3"), ("If-Range", etag)], 206),
        ([("Range", "bytes=0-3"), ("If-Range", '"other"')], 200),
        ([("Range", "bytes=0-3"), ("If-Range", "W/" + etag)], 200),
        ([("Range", "bytes=0-3"), ("If-Range", lm)], 206),
        ([("Range", "bytes=0-3"),
          ("If-Range", "Sun, 06 Nov 1994 08:49:37 GMT")], 200),
    ]
    for hdrs, want in conds:
        st, h, body = c.request("GET", url, hdrs)
        good = st == want
        if want == 304:
            good = good and body == b"" and h.get("etag") == etag
        elif want == 200:
            good = good and body == data
        elif want == 206:
            good = good and body == data[:4]
        elif want == 412:
            good = good and body == b""
        ok(good, "%s: %s -> %d" % (what, "; ".join(
            "%s: %s" % kv for kv in hdrs), want), (st, h, len(body)))
    st, h, body = c.request("HEAD", url)
    ok(st == 200 and body == b"" and h.get("content-length") == str(n) and
       h.get("etag") == etag, "%s: HEAD 200 with the length, no body" % what,
       (st, h))
    # Range is for GET only (RFC 9110 14.2).
    st, h, body = c.request("HEAD", url, [("Range", "bytes=0-9")])
    ok(st == 200 and body == b"" and h.get("content-length") == str(n),
       "%s: HEAD ignores Range" % what, (st, h))
    st, h, body = c.request("HEAD", url, [("If-None-Match", etag)])
    ok(st == 304 and body == b"", "%s: HEAD with If-None-Match -> 304" % what,
       (st, h))


def run_h11(port, root, files):
    c = H11Client(port)
    try:
        for name, data, big in files:
            check_file(c, name, data, big)
        # HEAD on every other kind of path, with GET's headers.
        for path, want in [("/", 200), ("/sub", 301), ("/sub/", 200),
                           ("/missing", 404), ("/../etc/passwd", 404)]:
            gst, gh, gbody = c.request("GET", path)
            st, h, body = c.request("HEAD", path)
            ok(st == want == gst and body == b"" and
               h.get("content-length") == str(len(gbody)) and
               h.get("content-type") == gh.get("content-type"),
               "HEAD %s: %d, GET's headers, no body" % (path, want),
               (st, h, gst, gh))
        st, h, body = c.request("GET", "/empty.txt")
        ok(st == 200 and body == b"" and h.get("content-length") == "0",
           "empty file: GET 200 with no body", (st, h))
        for rng in ["bytes=0-", "bytes=-5"]:
            st, h, body = c.request("GET", "/empty.txt", [("Range", rng)])
            ok(st == 416 and h.get("content-range") == "bytes */0",
               "empty file: Range %s -> 416" % rng, (st, h))
        types = {"a.css": "text/css", "x.json": "application/json",
                 "p.png": "image/png", "v.mp4": "video/mp4",
                 "s.svg": "image/svg+xml", "f.woff2": "font/woff2",
                 "page.html": "text/html; charset=utf-8",
                 "data.csv": "text/csv; charset=utf-8",
                 "blob.xyz": "application/octet-stream",
                 "arch.tar.XZ": "application/x-xz"}
        bad = []
        for fname, want in types.items():
            st, h, body = c.request("HEAD", "/types/" + fname)
            if st != 200 or h.get("content-type") != want:
                bad.append((fname, st, h.get("content-type")))
        ok(not bad, "Content-Type from the table for %d extensions"
           % len(types), bad)
        # A changed file gets a new ETag: the old one no longer matches.
        path = os.path.join(root, "small.bin")
        _, h, _ = c.request("GET", "/small.bin")
        old = h.get("etag")
        time.sleep(0.01)
        with open(path, "wb") as f:
            f.write(b"changed")
        time.sleep(1.1)  # past the server's 1 s cache revalidation
        st, h, body = c.request("GET", "/small.bin", [("If-None-Match", old)])
        ok(st == 200 and body == b"changed" and h.get("etag") != old,
           "a changed file: new ETag, the old one gives 200", (st, h, body))
    except h11.RemoteProtocolError as e:
        ok(False, "h11 parses every response", repr(e))
    finally:
        c.close()


def run_curl(port, tmp, name, data):
    url = "http://127.0.0.1:%d/%s" % (port, name)
    out = os.path.join(tmp, "curl.out")
    r = curl("-r", "100-199", "-o", out, url)
    with open(out, "rb") as f:
        got = f.read()
    ok(r.returncode == 0 and got == data[100:200],
       "curl -r 100-199 %s" % name, r.stderr)
    # A partial download, resumed with -C -: exactly the file.
    for cut in (1, 123457, len(data) - 1):
        with open(out, "wb") as f:
            f.write(data[:cut])
        r = curl("-C", "-", "-o", out, url)
        with open(out, "rb") as f:
            got = f.read()
        ok(r.returncode == 0 and
           hashlib.sha256(got).digest() == hashlib.sha256(data).digest(),
           "curl -C - resumes %s after %d bytes exactly" % (name, cut),
           "rc %d, %d bytes: %s" % (r.returncode, len(got), r.stderr))
    # Already complete: the server says 416, curl keeps the file.
    r = curl("-C", "-", "-o", out, url)
    with open(out, "rb") as f:
        got = f.read()
    ok(r.returncode == 0 and got == data,
       "curl -C - on a complete %s leaves it alone" % name, r.stderr)


def main():
    if shutil.which("curl") is None:
        print("1..1\nok 1 - http ranges # SKIP curl not installed")
        return 0
    tmp = tempfile.mkdtemp(prefix="rill-ranges-")
    root = os.path.join(tmp, "www")
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(os.path.join(root, "types"))
    big = os.urandom(1500000)  # above the 256 KiB read-whole limit
    small = os.urandom(1000)  # small enough for the server's cache
    for name, data in [("big.bin", big), ("small.bin", small),
                       ("empty.txt", b""), ("sub/a.txt", b"a\n")]:
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    for fname in ["a.css", "x.json", "p.png", "v.mp4", "s.svg", "f.woff2",
                  "page.html", "data.csv", "blob.xyz", "arch.tar.XZ"]:
        with open(os.path.join(root, "types", fname), "wb") as f:
            f.write(b"t")
    # Last-Modified must be a strong validator for If-Range dates: at
    # least a second old (RFC 9110 8.8.2.2).
    past = time.time() - 3600
    for name in ["big.bin", "small.bin"]:
        os.utime(os.path.join(root, name), (past, past))
    port = free_port()
    srv = subprocess.Popen([RILL, "http", "serve", "-q",
                            "tcp://127.0.0.1:%d" % port, root],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not wait_port(port):
            ok(False, "rill http serve starts", srv.stderr.read())
            return 1
        if h11 is None:
            skip("h11 checks", "python3-h11 not installed")
        else:
            run_h11(port, root,
                    [("big.bin", big, True), ("small.bin", small, False)])
        run_curl(port, tmp, "big.bin", big)
        with open(os.path.join(root, "small.bin"), "rb") as f:
            run_curl(port, tmp, "small.bin", f.read())
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            rc = srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()
            rc = srv.wait()
        ok(rc == 0, "rill http serve exits 0 on SIGTERM", rc)
        shutil.rmtree(tmp, ignore_errors=True)
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
