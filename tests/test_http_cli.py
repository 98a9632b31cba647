#!/usr/bin/env python3
"""Real clients and servers against `rill http serve` / `rill http get`.

curl over TCP and a Unix socket, python3's http.client, wrk (a short run,
no timing asserts), raw sockets with malformed and hostile requests, and
`rill http get` against python3's http.server and against rill's own
server over unix (and tls+tcp / vchan when those schemes exist).
Prints TAP. Usage: test_http_cli.py BUILD_DIR
"""
import http.client
import hashlib
import threading
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
RILL = os.path.join(BUILD, "rill")
n_test = 0
failed = 0


def ok(cond, name, detail=""):
    global n_test, failed
    n_test += 1
    if cond:
        print("ok %d - %s" % (n_test, name))
    else:
        failed += 1
        print("not ok %d - %s" % (n_test, name))
        for line in str(detail).splitlines()[:20]:
            print("#   " + line)
    sys.stdout.flush()


def skip(name, why):
    global n_test
    n_test += 1
    print("ok %d - %s # SKIP %s" % (n_test, name, why))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, path=None, timeout=10.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if path:
                s = socket.socket(socket.AF_UNIX)
                s.connect(path)
            else:
                s = socket.create_connection(("127.0.0.1", port), 0.2)
            s.close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def start_serve(uri, root, *opts):
    p = subprocess.Popen([RILL, "http", "serve", *opts, uri, root],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def curl(*args):
    r = subprocess.run(["curl", "-s", "--max-time", "10", *args],
                       capture_output=True)
    return r


def raw(port, data, timeout=5.0, shut=True):
    s = socket.create_connection(("127.0.0.1", port), 2)
    s.settimeout(timeout)
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    out = b""
    t0 = time.time()
    try:
        while time.time() - t0 < timeout:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


def thread_written(pid, name):
    """Bytes pid's threads called name wrote (wchar of
    /proc/PID/task/TID/io, which counts write(2) and sendfile(2) alike:
    CPU ticks do not do here, sendfile serves 20 x 3 MiB in under one
    10 ms tick)."""
    t = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() != name:
                    continue
            with open("/proc/%d/task/%s/io" % (pid, tid)) as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k == "wchar":
                        t += int(v)
        except OSError:
            pass
    return t


def threads_case(root, big):
    """--threads 2: concurrent clients, each on its own connection, get
    the right bytes; the second loop served some; SIGTERM with requests
    in flight lets them finish."""
    port = free_port()
    p = start_serve("tcp://127.0.0.1:%d" % port, root, "--threads", "2")
    try:
        ok(wait_port(port), "serve --threads 2 listens", "")
        want = hashlib.sha256(big).digest()
        res = []

        def get():
            r = raw(port, b"GET /big.bin HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\n\r\n", timeout=20)
            res.append(hashlib.sha256(r.partition(b"\r\n\r\n")[2])
                       .digest() == want)

        ts = [threading.Thread(target=get) for _ in range(40)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        ok(len(res) == 40 and all(res),
           "--threads 2: 40 concurrent 3 MiB GETs hash-checked",
           "%d of %d right" % (sum(res), len(res)))
        w1 = thread_written(p.pid, "rill-loop-1")
        ok(w1 >= len(big),
           "--threads 2: the second loop served connections",
           "rill-loop-1 wrote %d bytes" % w1)
        late = []
        t = threading.Thread(target=lambda: late.append(raw(
            port, b"GET /big.bin HTTP/1.1\r\nHost: x\r\n"
            b"Connection: close\r\n\r\n", timeout=20)))
        t.start()
        time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        t.join(30)
        try:
            rc = p.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        body = late[0].partition(b"\r\n\r\n")[2] if late else b""
        ok(rc == 0 and hashlib.sha256(body).digest() == want,
           "--threads 2: SIGTERM lets the request in flight finish, "
           "exit 0", "rc %r, %d body bytes" % (rc, len(body)))
    finally:
        stop(p)


def cache_case(tmp):
    """The open-file cache (SERVE_CACHE_MS, 1 s): a changed or deleted
    small file is seen within the interval; file bodies over sendfile and
    over TLS (the core's pread + write steps) arrive intact, whole and as
    ranges; a file cut while it is sent aborts the response (the client
    sees fewer bytes than Content-Length), and nothing hangs."""
    root = os.path.join(tmp, "cache")
    os.makedirs(root)
    small = os.path.join(root, "s.txt")
    with open(small, "wb") as f:
        f.write(b"first version\n")
    mid = os.urandom(3 * 1024 * 1024 + 17)
    with open(os.path.join(root, "mid.bin"), "wb") as f:
        f.write(mid)
    port = free_port()
    p = start_serve("tcp://127.0.0.1:%d" % port, root, "--threads", "1")
    try:
        wait_port(port)
        base = "http://127.0.0.1:%d" % port
        ok(curl(base + "/s.txt").stdout == b"first version\n",
           "cache: first GET")
        curl(base + "/s.txt")  # now served from the cache
        with open(small, "wb") as f:
            f.write(b"second, longer version\n")
        t0 = time.time()
        seen = None
        while time.time() - t0 < 5:
            if curl(base + "/s.txt").stdout == b"second, longer version\n":
                seen = time.time() - t0
                break
            time.sleep(0.05)
        ok(seen is not None and seen <= 1.5,
           "cache: a changed file is served within the 1 s interval",
           "seen after %s s" % seen)
        os.unlink(small)
        t0 = time.time()
        seen = None
        while time.time() - t0 < 5:
            r = curl("-o", "/dev/null", "-w", "%{http_code}", base + "/s.txt")
            if r.stdout == b"404":
                seen = time.time() - t0
                break
            time.sleep(0.05)
        ok(seen is not None and seen <= 1.5,
           "cache: a deleted file is gone within the 1 s interval",
           "seen after %s s" % seen)
        r = curl(base + "/mid.bin")
        ok(r.stdout == mid, "sendfile: 3 MiB body intact", len(r.stdout))
        r = curl("-r", "4097-2100000", base + "/mid.bin")
        ok(r.stdout == mid[4097:2100001], "sendfile: unaligned range intact",
           len(r.stdout))
        # A file cut while it is sent: the response is aborted.
        big = os.path.join(root, "cut.bin")
        with open(big, "wb") as f:
            f.write(os.urandom(64 * 1024 * 1024))
        c = subprocess.Popen(["curl", "-s", "-o", "/dev/null", "-w",
                              "%{size_download}", "--limit-rate", "4M",
                              base + "/cut.bin"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        os.truncate(big, 8 * 1024 * 1024)
        try:
            out, _ = c.communicate(timeout=30)
            ok(c.returncode == 18 and int(out or 0) < 64 * 1024 * 1024,
               "a file cut while sent: response aborted (curl exit 18)",
               "curl exit %d, %s bytes" % (c.returncode, out))
        except subprocess.TimeoutExpired:
            c.kill()
            c.wait()
            ok(False, "a file cut while sent: response aborted",
               "curl hung")
    finally:
        stop(p)
    if not shutil.which("openssl"):
        skip("file bodies over tls+tcp", "openssl not installed")
        return
    crt = os.path.join(tmp, "cache-c.pem")
    key = os.path.join(tmp, "cache-k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "1",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   capture_output=True)
    tport = free_port()
    p = start_serve("tls+tcp://127.0.0.1:%d?cert=%s&key=%s" % (tport, crt,
                                                                key), root)
    try:
        wait_port(tport)
        r = curl("--cacert", crt, "https://127.0.0.1:%d/mid.bin" % tport)
        ok(r.stdout == mid, "tls: 3 MiB file body intact (pread + write)",
           len(r.stdout))
        r = curl("--cacert", crt, "-r", "4097-2100000",
                 "https://127.0.0.1:%d/mid.bin" % tport)
        ok(r.stdout == mid[4097:2100001], "tls: unaligned range intact",
           len(r.stdout))
    finally:
        stop(p)


def trickle_case():
    """A hostile server for `rill http get`: it trickles its response, one
    byte every 0.3 s, so that no single wait for bytes reaches --timeout.
    A trickled head is still cut at --timeout (the head as a whole), a
    trickled body (a slow stream is legitimate) by --max-time."""
    head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 1000
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000
    for what, resp, opts, want in [
            ("head", head, ["--timeout", "1500"],
             b"no response head within --timeout"),
            ("head", head, ["--timeout", "5000", "--max-time", "1500"],
             b"no response head within --max-time"),
            ("body", body, ["--timeout", "2000", "--max-time", "1500"],
             b"response body: no end within --max-time")]:
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        port = ls.getsockname()[1]

        def serve():
            try:
                c, _ = ls.accept()
                c.recv(4096)
                i = resp.index(b"\r\n\r\n") + 4 if what == "body" else 20
                c.sendall(resp[:i])
                for ch in resp[i:]:
                    c.sendall(bytes([ch]))
                    time.sleep(0.3)
            except OSError:
                pass

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        t0 = time.time()
        try:
            g = subprocess.run([RILL, "http", "get"] + opts +
                               ["http://127.0.0.1:%d/" % port],
                               capture_output=True, timeout=30)
        except subprocess.TimeoutExpired as e:
            g = e
        dt = time.time() - t0
        ls.close()
        ok(getattr(g, "returncode", None) == 1 and dt < 5 and
           want in g.stderr and g.stderr.count(b"\n") == 1,
           "rill http get %s against a server trickling its %s: exit 1 "
           "after %.1f s, one line" % (" ".join(opts), what, dt),
           getattr(g, "stderr", g))


def main():
    tmp = tempfile.mkdtemp(prefix="rill-http-")
    root = os.path.join(tmp, "www")
    os.makedirs(os.path.join(root, "sub"))
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<h1>hi</h1>\n")
    with open(os.path.join(root, "sub", "a.txt"), "w") as f:
        f.write("aaa\n")
    with open(os.path.join(tmp, "secret.txt"), "w") as f:
        f.write("secret\n")
    os.makedirs(os.path.join(root, "empty"))
    os.symlink(os.path.join(tmp, "secret.txt"), os.path.join(root, "abs_out"))
    os.symlink("../secret.txt", os.path.join(root, "rel_out"))
    os.symlink("sub/a.txt", os.path.join(root, "rel_in"))
    big = os.urandom(3 * 1024 * 1024 + 17)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(big)

    port = free_port()
    sock = os.path.join(tmp, "s.sock")
    srv = start_serve("tcp://127.0.0.1:%d" % port, root,
                      "--header-timeout", "500", "--max-header-bytes",
                      "4096", "--max-body", "1000")
    usrv = start_serve("unix:" + sock, root)
    try:
        ok(wait_port(port), "serve listens on tcp")
        ok(wait_port(0, sock), "serve listens on unix")
        base = "http://127.0.0.1:%d" % port

        # ---- curl ----
        r = curl("-i", base + "/")
        out = r.stdout.decode(errors="replace")
        ok(r.returncode == 0 and "200 OK" in out and "<h1>hi</h1>" in out
           and "text/html" in out and "Last-Modified:" in out,
           "curl GET / serves index.html", out)
        r = curl(base + "/sub/a.txt", base + "/sub/a.txt", base + "/rel_in")
        ok(r.stdout == b"aaa\n" * 3, "curl keep-alive reuse, symlink "
           "inside DIR followed", r.stdout)
        r = curl("-o", "-", base + "/big.bin")
        ok(r.stdout == big, "curl large file (3 MiB) intact",
           len(r.stdout))
        r = curl("-I", base + "/big.bin")
        ok(b"Content-Length: %d" % len(big) in r.stdout,
           "curl HEAD gives the length", r.stdout)
        r = curl("-o", "/dev/null", "-w", "%{http_code}", "-H",
                 "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT",
                 base + "/sub/a.txt")
        ok(r.stdout == b"304", "If-Modified-Since in the future: 304",
           r.stdout)
        r = curl("-o", "/dev/null", "-w", "%{http_code}", "-H",
                 "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT",
                 base + "/sub/a.txt")
        ok(r.stdout == b"200", "If-Modified-Since in the past: 200",
           r.stdout)
        r = curl(base + "/sub/")
        ok(b'<a href="a.txt">a.txt</a>' in r.stdout,
           "directory listing", r.stdout)
        r = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                 base + "/sub")
        ok(r.stdout.startswith(b"301") and r.stdout.endswith(b"/sub/"),
           "directory without slash redirects", r.stdout)
        for path in ["/../secret.txt", "/%2e%2e/secret.txt",
                     "/sub/%2E%2e/%2e%2E/secret.txt", "/sub/..%2fsecret.txt",
                     "/abs_out", "/rel_out", "/nope", "/a%00b"]:
            r = curl("--path-as-is", "-o", "/dev/null", "-w",
                     "%{http_code}", base + path)
            ok(r.stdout == b"404", "no escape: %s -> 404" % path, r.stdout)
        r = curl("-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE",
                 base + "/")
        ok(r.stdout == b"405", "DELETE -> 405", r.stdout)
        r = curl("--unix-socket", sock, "http://x/sub/a.txt")
        ok(r.stdout == b"aaa\n", "curl --unix-socket", r.stdout)
        r = curl("--unix-socket", sock, "-o", "-", "http://x/big.bin")
        ok(r.stdout == big, "curl --unix-socket large file", len(r.stdout))

        # ---- python http.client: keep-alive on one connection ----
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        bodies = []
        for _ in range(5):
            c.request("GET", "/sub/a.txt")
            resp = c.getresponse()
            bodies.append((resp.status, resp.read()))
        c.request("HEAD", "/index.html")
        resp = c.getresponse()
        head_ok = resp.status == 200 and resp.read() == b""
        c.request("POST", "/sub/a.txt", body=b"x" * 10)
        resp = c.getresponse()
        post = resp.status
        resp.read()
        c.close()
        ok(bodies == [(200, b"aaa\n")] * 5 and head_ok and post == 405,
           "http.client keep-alive: 5 GETs, HEAD, POST on one connection",
           (bodies, head_ok, post))

        # ---- pipelining with responses in order ----
        out = raw(port, b"GET /sub/a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        i1, i2, i3 = out.find(b"aaa\n"), out.find(b"404"), out.find(b"<h1>")
        ok(out.count(b"HTTP/1.1 ") == 3 and 0 < i1 < i2 < i3,
           "pipelined requests answered in order", out[:400])

        # ---- hostile requests ----
        corpus = [
            ("bad request line", b"GARBAGE\r\n\r\n", b"400"),
            ("bad method char", b"G@T / HTTP/1.1\r\n\r\n", b"400"),
            ("HTTP/2.0 line", b"GET / HTTP/2.0\r\n\r\n", b"505"),
            ("header injection CR", b"GET / HTTP/1.1\r\nA: b\rX: y\r\n\r\n",
             b"400"),
            ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
             b"400"),
            ("CL + TE", b"POST / HTTP/1.1\r\nContent-Length: 4\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"400"),
            ("two CL", b"POST / HTTP/1.1\r\nContent-Length: 1\r\n"
             b"Content-Length: 2\r\n\r\nab", b"400"),
            ("TE not chunked", b"POST / HTTP/1.1\r\nTransfer-Encoding: "
             b"gzip\r\n\r\n", b"400"),
            ("oversize header", b"GET / HTTP/1.1\r\nX: " + b"a" * 8000 +
             b"\r\n\r\n", b"431"),
            ("many headers", b"GET / HTTP/1.1\r\n" +
             b"".join(b"H%d: v\r\n" % i for i in range(300)) + b"\r\n",
             b"431"),
            ("body over limit", b"POST / HTTP/1.1\r\nContent-Length: "
             b"5000\r\n\r\n", b"413"),
        ]
        for name, data, status in corpus:
            out = raw(port, data)
            ok(out.startswith(b"HTTP/1.1 " + status) and
               b"Connection: close" in out,
               "hostile: %s -> %s" % (name, status.decode()), out[:200])
        # Slowloris: the head never completes; 408 after the deadline,
        # while other clients are served meanwhile.
        s = socket.create_connection(("127.0.0.1", port), 2)
        s.sendall(b"GET / HTTP/1.1\r\nX-a: 1\r\n")
        s.settimeout(0.2)
        r = curl(base + "/sub/a.txt")
        served = r.stdout == b"aaa\n"
        out = b""
        s.settimeout(5)
        t0 = time.time()
        try:
            for _ in range(10):
                time.sleep(0.1)
                s.sendall(b"X-b: 2\r\n")  # trickle
        except OSError:
            pass
        try:
            while True:
                b = s.recv(4096)
                if not b:
                    break
                out += b
        except OSError:
            pass
        s.close()
        ok(out.startswith(b"HTTP/1.1 408") and time.time() - t0 < 4.5,
           "slowloris (trickled head) -> 408 at the head deadline", out)
        ok(served, "others served during slowloris", r.stdout)
        r = curl(base + "/sub/a.txt")
        ok(r.stdout == b"aaa\n", "server still serves after the corpus",
           r.stdout)

        # ---- wrk: a short run, no timing asserts ----
        if shutil.which("wrk"):
            w = subprocess.run(["wrk", "-t1", "-c20", "-d1s",
                                base + "/index.html"],
                               capture_output=True, text=True, timeout=30)
            reqs = [l for l in w.stdout.splitlines() if "requests in" in l]
            ok(w.returncode == 0 and reqs and "Non-2xx" not in w.stdout
               and "Socket errors" not in w.stdout,
               "wrk -c20 1 s: no errors", w.stdout + w.stderr)
        else:
            skip("wrk", "wrk not installed")

        # ---- rill http get ----
        g = subprocess.run([RILL, "http", "get", base + "/sub/a.txt"],
                           capture_output=True)
        ok(g.returncode == 0 and g.stdout == b"aaa\n",
           "rill http get over tcp", g)
        g = subprocess.run([RILL, "http", "get", "-i", base + "/sub/a.txt"],
                           capture_output=True)
        ok(g.returncode == 0 and g.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
           and g.stdout.endswith(b"\r\n\r\naaa\n"), "rill http get -i", g)
        g = subprocess.run([RILL, "http", "get", "--via", "unix:" + sock,
                            "http://localhost/big.bin"], capture_output=True)
        ok(g.returncode == 0 and g.stdout == big,
           "rill http get --via unix: (rill's server)", len(g.stdout))
        g = subprocess.run([RILL, "http", "get", base + "/nope"],
                           capture_output=True)
        ok(g.returncode == 1 and b"404" in g.stderr and
           g.stderr.count(b"\n") == 1, "rill http get 404: exit 1, one line",
           g)
        g = subprocess.run([RILL, "http", "get", "http://127.0.0.1:%d/" %
                            free_port()], capture_output=True)
        ok(g.returncode == 1 and g.stderr.count(b"\n") == 1 and
           b"refused" in g.stderr, "rill http get refused: one line", g)
        g = subprocess.run([RILL, "http", "get", "ftp://x/"],
                           capture_output=True)
        ok(g.returncode == 2, "rill http get bad URL: usage error", g)
        trickle_case()

        # Against python3's http.server.
        pport = free_port()
        py = subprocess.Popen([sys.executable, "-m", "http.server", "-b",
                               "127.0.0.1", "-d", root, str(pport)],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        try:
            wait_port(pport)
            g = subprocess.run([RILL, "http", "get", "http://127.0.0.1:%d/"
                                "big.bin" % pport], capture_output=True)
            ok(g.returncode == 0 and g.stdout == big,
               "rill http get against python3 http.server", len(g.stdout))
            g = subprocess.run([RILL, "http", "get", "-i", "http://127.0.0."
                                "1:%d/nope" % pport], capture_output=True)
            ok(g.returncode == 1 and b"404" in g.stdout,
               "rill http get -i 404 from http.server", g)
        finally:
            py.kill()
            py.wait()

        # tls+tcp and vchan when those schemes exist in this build.
        for scheme, lis, extra in [
            ("vchan", "vchan:rill-http-test-%d" % os.getpid(), []),
        ]:
            chk = subprocess.run([RILL, "http", "serve", lis, root],
                                 capture_output=True, timeout=1) \
                if False else None
            p = start_serve(lis, root)
            time.sleep(0.3)
            if p.poll() is not None:
                err = p.stderr.read().decode(errors="replace")
                skip("rill http get over " + scheme,
                     "scheme not available: " + err.strip())
                continue
            try:
                g = subprocess.run([RILL, "http", "get", "--via", lis,
                                    "http://x/sub/a.txt"],
                                   capture_output=True, timeout=10)
                ok(g.returncode == 0 and g.stdout == b"aaa\n",
                   "rill http get over " + scheme, g)
            finally:
                stop(p)
        tls_ok = False
        if shutil.which("openssl"):
            crt = os.path.join(tmp, "c.pem")
            key = os.path.join(tmp, "k.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                            "-nodes", "-keyout", key, "-out", crt, "-days",
                            "1", "-subj", "/CN=localhost", "-addext",
                            "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                           capture_output=True)
            tport = free_port()
            lis = "tls+tcp://127.0.0.1:%d?cert=%s&key=%s" % (tport, crt, key)
            p = start_serve(lis, root)
            time.sleep(0.3)
            if p.poll() is not None:
                err = p.stderr.read().decode(errors="replace")
                skip("rill http get over tls+tcp",
                     "scheme not available: " + err.strip())
            else:
                tls_ok = True
                try:
                    via = "tls+tcp://127.0.0.1:%d?ca=%s" % (tport, crt)
                    g = subprocess.run([RILL, "http", "get", "--via", via,
                                        "https://localhost/"
                                        if False else "http://localhost/"
                                        "sub/a.txt"],
                                       capture_output=True, timeout=10)
                    ok(g.returncode == 0 and g.stdout == b"aaa\n",
                       "rill http get over tls+tcp (rill's server)", g)
                    r = curl("--cacert", crt, "https://127.0.0.1:%d/sub/"
                             "a.txt" % tport)
                    ok(r.stdout == b"aaa\n", "curl https against rill "
                       "serve tls+tcp", r)
                finally:
                    stop(p)
        if not tls_ok and not shutil.which("openssl"):
            skip("rill http get over tls+tcp", "openssl not installed")

        threads_case(root, big)
        cache_case(tmp)

        # Graceful shutdown: SIGTERM exits 0.
        srv.send_signal(signal.SIGTERM)
        try:
            rc = srv.wait(5)
        except subprocess.TimeoutExpired:
            rc = None
        ok(rc == 0, "SIGTERM: graceful exit 0", rc)
    finally:
        stop(srv)
        stop(usrv)
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % n_test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
