#!/usr/bin/env python3
"""Real peers against `rill cat` and `rill echo` (TAP).

socat and ncat talk to rill over TCP and Unix sockets in both directions:
hash-checked transfers of 64 MiB, half-close both ways, a request/response
where the client half-closes after the request and reads the whole reply,
one-line errors and exit codes, and 1,000 concurrent connections to
`rill echo` with no file descriptor leaked.

Usage: test_cli_socket.py PATH/TO/rill [FILTER]
"""
import asyncio
import hashlib
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback

RILL = os.path.abspath(sys.argv[1])
FILTER = sys.argv[2] if len(sys.argv) > 2 else None
BIG = 64 << 20
TMP = tempfile.mkdtemp(prefix="rill-cli-")
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class Skip(Exception):
    pass


def make_file(name, size, seed):
    path = os.path.join(TMP, name)
    if not os.path.exists(path):
        block = hashlib.sha256(seed.encode()).digest() * 2048  # 64 KiB
        # Vary every block so that a reordered block changes the hash.
        with open(path, "wb") as f:
            for i in range(size // len(block)):
                f.write(i.to_bytes(8, "little") + block[8:])
    return path


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def need(tool):
    if shutil.which(tool) is None:
        raise Skip("%s is not installed (scripts/install-deps.sh)" % tool)


def start_echo(uri):
    """Starts `rill echo -v URI`; returns (process, listening URI)."""
    p = subprocess.Popen([RILL, "echo", "-v", uri], stderr=subprocess.PIPE,
                         text=True)
    line = p.stderr.readline()
    m = re.match(r"rill: listening on (\S+)", line)
    if not m:
        p.kill()
        raise AssertionError("rill echo did not start: %r" % line)
    return p, m.group(1)


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port=None, path=None, timeout=10):
    """Waits until something listens, without connecting to it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if port is not None:
            for f in ("/proc/net/tcp", "/proc/net/tcp6"):
                try:
                    for line in open(f).read().splitlines()[1:]:
                        parts = line.split()
                        if parts[3] == "0A" and \
                                int(parts[1].split(":")[1], 16) == port:
                            return
                except OSError:
                    pass
        elif os.path.exists(path):
            return
        time.sleep(0.02)
    raise AssertionError("nothing listens on %s" % (port or path))


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, timeout=timeout, capture_output=True, **kw)


def port_of(uri):
    return int(uri.rsplit(":", 1)[1])


# ---------------------------------------------------------------------------
# rill echo with socat and ncat as clients

@test
def echo_tcp_socat_client_64mib():
    need("socat")
    src = make_file("big", BIG, "a")
    p, uri = start_echo("tcp://127.0.0.1:0")
    try:
        out = os.path.join(TMP, "out-socat")
        with open(src, "rb") as i, open(out, "wb") as o:
            r = subprocess.run(["socat", "-t", "60", "-b", "262144", "-",
                                "TCP:127.0.0.1:%d" % port_of(uri)],
                               stdin=i, stdout=o, timeout=120)
        assert r.returncode == 0, r
        assert sha(out) == sha(src), "echoed bytes differ"
    finally:
        stop(p)


@test
def echo_tcp_ncat_client_64mib():
    need("ncat")
    src = make_file("big", BIG, "a")
    p, uri = start_echo("tcp://127.0.0.1:0")
    try:
        out = os.path.join(TMP, "out-ncat")
        with open(src, "rb") as i, open(out, "wb") as o:
            r = subprocess.run(["ncat", "127.0.0.1", str(port_of(uri))],
                               stdin=i, stdout=o, timeout=120)
        assert r.returncode == 0, r
        assert sha(out) == sha(src), "echoed bytes differ"
    finally:
        stop(p)


@test
def echo_unix_socat_client_64mib():
    need("socat")
    src = make_file("big", BIG, "a")
    path = os.path.join(TMP, "echo.sock")
    p, uri = start_echo("unix:" + path)
    try:
        assert uri == "unix:" + path, uri
        out = os.path.join(TMP, "out-unix")
        with open(src, "rb") as i, open(out, "wb") as o:
            # socat's default 8 KiB blocks: socat writes blocking, and
            # one 256 KiB write can outgrow a Unix socket's buffers
            # while socat does not read the echo: a deadlock any echo
            # server with bounded buffers would share.
            r = subprocess.run(["socat", "-t", "60", "-",
                                "UNIX-CONNECT:" + path],
                               stdin=i, stdout=o, timeout=120)
        assert r.returncode == 0, r
        assert sha(out) == sha(src), "echoed bytes differ"
    finally:
        stop(p)
    # The listener removed its socket file when it was told to stop?
    # SIGTERM kills rill echo without a close, so the file may stay;
    # rill_listener_close unlinking is covered by test_socket.


@test
def echo_tcp6_socat_client():
    need("socat")
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError as e:
        raise Skip("no IPv6 loopback: %s" % e)
    p, uri = start_echo("tcp://[::1]:0")
    try:
        data = os.urandom(1 << 20)
        r = run(["socat", "-t", "30", "-", "TCP6:[::1]:%d" % port_of(uri)],
                input=data)
        assert r.returncode == 0 and r.stdout == data, r.returncode
    finally:
        stop(p)


# ---------------------------------------------------------------------------
# rill cat as client, socat / ncat as servers, both directions at once

@test
def cat_client_socat_server_both_directions_64mib():
    need("socat")
    up = make_file("big", BIG, "a")
    down = make_file("big2", BIG, "b")
    port = free_port()
    got_up = os.path.join(TMP, "got-up")
    got_down = os.path.join(TMP, "got-down")
    # socat sends `down` and stores what it receives; -t: after one
    # direction's EOF, keep the other going (half-close).
    with open(down, "rb") as i, open(got_up, "wb") as o:
        srv = subprocess.Popen(["socat", "-t", "60", "-b", "262144",
                                "TCP-LISTEN:%d,reuseaddr,bind=127.0.0.1"
                                % port, "-"], stdin=i, stdout=o)
    try:
        wait_listening(port=port)
        with open(up, "rb") as i, open(got_down, "wb") as o:
            r = subprocess.run([RILL, "cat", "tcp://127.0.0.1:%d" % port],
                               stdin=i, stdout=o, stderr=subprocess.PIPE,
                               timeout=120)
        assert r.returncode == 0, r.stderr
        assert srv.wait(60) == 0
        assert sha(got_down) == sha(down), "socat -> rill bytes differ"
        assert sha(got_up) == sha(up), "rill -> socat bytes differ"
    finally:
        stop(srv)


@test
def cat_listen_socat_client_both_directions_64mib():
    need("socat")
    up = make_file("big", BIG, "a")
    down = make_file("big2", BIG, "b")
    port = free_port()
    got_srv = os.path.join(TMP, "got-srv")
    got_cli = os.path.join(TMP, "got-cli")
    with open(down, "rb") as i, open(got_srv, "wb") as o:
        srv = subprocess.Popen([RILL, "cat", "-l",
                                "tcp://127.0.0.1:%d" % port],
                               stdin=i, stdout=o, stderr=subprocess.PIPE)
    try:
        wait_listening(port=port)
        with open(up, "rb") as i, open(got_cli, "wb") as o:
            r = subprocess.run(["socat", "-t", "60", "-b", "262144", "-",
                                "TCP:127.0.0.1:%d" % port],
                               stdin=i, stdout=o, timeout=120)
        assert r.returncode == 0
        assert srv.wait(60) == 0, srv.stderr.read()
        assert sha(got_srv) == sha(up), "socat -> rill bytes differ"
        assert sha(got_cli) == sha(down), "rill -> socat bytes differ"
    finally:
        stop(srv)


@test
def cat_client_ncat_server_both_directions():
    need("ncat")
    up = make_file("big", BIG, "a")
    down = make_file("big2", BIG, "b")
    port = free_port()
    got_up = os.path.join(TMP, "got-ncat-up")
    got_down = os.path.join(TMP, "got-ncat-down")
    with open(down, "rb") as i, open(got_up, "wb") as o:
        srv = subprocess.Popen(["ncat", "-l", "127.0.0.1", str(port)],
                               stdin=i, stdout=o)
    try:
        wait_listening(port=port)
        with open(up, "rb") as i, open(got_down, "wb") as o:
            r = subprocess.run([RILL, "cat", "tcp://127.0.0.1:%d" % port],
                               stdin=i, stdout=o, stderr=subprocess.PIPE,
                               timeout=120)
        assert r.returncode == 0, r.stderr
        srv.wait(60)
        assert sha(got_down) == sha(down), "ncat -> rill bytes differ"
        assert sha(got_up) == sha(up), "rill -> ncat bytes differ"
    finally:
        stop(srv)


@test
def cat_listen_ncat_client_both_directions():
    need("ncat")
    up = make_file("big", BIG, "a")
    down = make_file("big2", BIG, "b")
    port = free_port()
    got_srv = os.path.join(TMP, "got-srv-ncat")
    got_cli = os.path.join(TMP, "got-cli-ncat")
    with open(down, "rb") as i, open(got_srv, "wb") as o:
        srv = subprocess.Popen([RILL, "cat", "-l",
                                "tcp://127.0.0.1:%d" % port],
                               stdin=i, stdout=o, stderr=subprocess.PIPE)
    try:
        wait_listening(port=port)
        with open(up, "rb") as i, open(got_cli, "wb") as o:
            r = subprocess.run(["ncat", "127.0.0.1", str(port)],
                               stdin=i, stdout=o, timeout=120)
        assert r.returncode == 0
        assert srv.wait(60) == 0, srv.stderr.read()
        assert sha(got_srv) == sha(up), "ncat -> rill bytes differ"
        assert sha(got_cli) == sha(down), "rill -> ncat bytes differ"
    finally:
        stop(srv)


@test
def cat_unix_both_directions_with_socat():
    need("socat")
    up = make_file("big", BIG, "a")
    down = make_file("big2", BIG, "b")
    path = os.path.join(TMP, "cat.sock")
    got_srv = os.path.join(TMP, "got-srv-unix")
    got_cli = os.path.join(TMP, "got-cli-unix")
    with open(down, "rb") as i, open(got_srv, "wb") as o:
        srv = subprocess.Popen([RILL, "cat", "-l", "unix:" + path],
                               stdin=i, stdout=o, stderr=subprocess.PIPE)
    try:
        wait_listening(path=path)
        with open(up, "rb") as i, open(got_cli, "wb") as o:
            # socat's default 8 KiB blocks: socat writes blocking, and
            # one 256 KiB write can outgrow a Unix socket's buffers
            # while socat does not read the echo: a deadlock any echo
            # server with bounded buffers would share.
            r = subprocess.run(["socat", "-t", "60", "-",
                                "UNIX-CONNECT:" + path],
                               stdin=i, stdout=o, timeout=120)
        assert r.returncode == 0
        assert srv.wait(60) == 0, srv.stderr.read()
        assert sha(got_srv) == sha(up) and sha(got_cli) == sha(down)
        assert not os.path.exists(path), "socket file left behind"
    finally:
        stop(srv)


@test
def request_response_client_half_closes_then_reads_reply():
    """The server reads the whole request (to EOF), then answers; the
    client (rill cat) half-closes after the request and must read the
    whole reply. Then the roles swap: socat is the client and rill cat
    -l answers with a reply file only after... its stdin is the reply."""
    need("socat")
    reply = make_file("reply", 8 << 20, "r")
    request = os.urandom(3 << 20)
    port = free_port()
    srv = subprocess.Popen(
        ["socat", "-t", "60",
         "TCP-LISTEN:%d,reuseaddr,bind=127.0.0.1" % port,
         "SYSTEM:sha256sum | cut -c1-64; cat %s" % reply])
    try:
        wait_listening(port=port)
        r = run([RILL, "cat", "tcp://127.0.0.1:%d" % port], input=request)
        assert r.returncode == 0, r.stderr
        want = hashlib.sha256(request).hexdigest().encode() + b"\n"
        with open(reply, "rb") as f:
            want += f.read()
        assert r.stdout == want, "reply differs (%d vs %d bytes)" % (
            len(r.stdout), len(want))
    finally:
        stop(srv)
    # Same exchange with socat as the half-closing client of rill echo:
    # the reply (the echo) is complete although the request side closed
    # first.
    p, uri = start_echo("tcp://127.0.0.1:0")
    try:
        r = run(["socat", "-t", "60", "-", "TCP:127.0.0.1:%d" % port_of(uri)],
                input=request)
        assert r.returncode == 0 and r.stdout == request
    finally:
        stop(p)


# ---------------------------------------------------------------------------
# Errors: one line, non-zero exit

def one_line_error(r, *needles):
    err = r.stderr.decode() if isinstance(r.stderr, bytes) else r.stderr
    assert r.returncode == 1, (r.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@test
def cat_errors_are_one_line():
    port = free_port()
    one_line_error(run([RILL, "cat", "tcp://127.0.0.1:%d" % port],
                       input=b""), "refused", str(port))
    one_line_error(run([RILL, "cat", "tcp://nothing.invalid:80"],
                       input=b""), "resolve", "nothing.invalid")
    one_line_error(run([RILL, "cat", "tcp://h:70000"], input=b""),
                   'bad port "70000" in "tcp://h:70000"')
    one_line_error(run([RILL, "cat", "unix:" + os.path.join(TMP, "none")],
                       input=b""), "No such file")
    # Address in use: listen twice.
    p, uri = start_echo("tcp://127.0.0.1:0")
    try:
        one_line_error(run([RILL, "echo", uri]), "in use")
        one_line_error(run([RILL, "cat", "-l", uri], input=b""), "in use")
    finally:
        stop(p)
    r = run([RILL, "cat"])
    assert r.returncode == 2
    r = run([RILL, "cat", "--help"])
    assert r.returncode == 0 and b"Usage: rill cat" in r.stdout
    r = run([RILL, "echo", "--help"])
    assert r.returncode == 0 and b"Usage: rill echo" in r.stdout


@test
def cat_peer_reset_is_an_error():
    # A server that resets the connection: SO_LINGER 0 then close.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    p = subprocess.Popen([RILL, "cat", "tcp://127.0.0.1:%d" % port],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    c, _ = s.accept()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()
    s.close()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1, (p.returncode, err)
    assert b"reset" in err, err


@test
def echo_on_stdio_pipes():
    # "-" as a listener serves standard input/output once: pipes in and
    # out, non-blocking, with end of file passed on.
    data = os.urandom(5 << 20)
    r = run([RILL, "echo", "-"], input=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data


@test
def cat_stdin_from_regular_file_stdout_to_file():
    # Regular files cannot be polled: the stdio flow uses them blocking.
    src = make_file("reply", 8 << 20, "r")
    p, uri = start_echo("tcp://127.0.0.1:0")
    try:
        out = os.path.join(TMP, "cat-file-out")
        with open(src, "rb") as i, open(out, "wb") as o:
            r = subprocess.run([RILL, "cat", uri], stdin=i, stdout=o,
                               stderr=subprocess.PIPE, timeout=60)
        assert r.returncode == 0, r.stderr
        assert sha(out) == sha(src)
    finally:
        stop(p)


# ---------------------------------------------------------------------------
# 1,000 concurrent connections, no fd leaked

def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


@test
def echo_1000_concurrent_connections_no_fd_leak():
    n = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * n + 64
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            raise Skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    p, uri = start_echo("tcp://127.0.0.1:0")  # inherits the limit
    try:
        port = port_of(uri)
        time.sleep(0.1)
        before = fd_count(p.pid)

        async def one(i, payload, opened, go):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            opened.append(1)
            if len(opened) == n:
                go.set()
            await go.wait()  # every connection open at once
            w.write(payload)
            await w.drain()
            w.write_eof()
            got = await r.read()
            w.close()
            return hashlib.sha256(got).digest() == \
                hashlib.sha256(payload).digest()

        async def main():
            opened = []
            go = asyncio.Event()
            sem = asyncio.Semaphore(256)  # connect in waves: backlog 511

            async def guarded(i):
                payload = hashlib.sha256(b"%d" % i).digest() * 2048
                async with sem:
                    pass
                return await one(i, payload, opened, go)
            return await asyncio.gather(*(guarded(i) for i in range(n)))

        results = asyncio.run(asyncio.wait_for(main(), 120))
        assert all(results), "%d of %d echoes differ" % (
            results.count(False), n)
        deadline = time.time() + 10
        while fd_count(p.pid) != before and time.time() < deadline:
            time.sleep(0.05)
        assert fd_count(p.pid) == before, "fds before %d, after %d" % (
            before, fd_count(p.pid))
        assert p.poll() is None, "rill echo died"
    finally:
        stop(p)


def main():
    tests = [t for t in TESTS if FILTER is None or FILTER in t.__name__]
    print("1..%d" % len(tests))
    failed = 0
    for i, t in enumerate(tests, 1):
        t0 = time.time()
        try:
            t()
            print("ok %d - %s # %.2fs" % (i, t.__name__, time.time() - t0))
        except Skip as e:
            print("ok %d - %s # SKIP %s" % (i, t.__name__, e))
        except Exception:
            failed += 1
            print("not ok %d - %s" % (i, t.__name__))
            for line in traceback.format_exc().splitlines():
                print("# " + line)
        sys.stdout.flush()
    shutil.rmtree(TMP, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
