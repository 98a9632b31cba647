#!/usr/bin/env python3
"""exec: and fd: through the rill CLI, with real peers.

- rill relay tcp://... exec:PROG: inetd mode (one child per connection),
  3 MiB through /bin/cat checked by hash with the half-close carried both
  ways, the child's exit status in the log line, a program that cannot
  run.
- rill cat exec:PROG.
- systemd socket activation with Debian's systemd-socket-activate: rill
  http serve, rill relay, rill echo on an inherited listening socket
  (fd:3 and fd:NAME), rill cat on an inherited connected one (--accept),
  and the inherited socket never reaching an exec: child.

Prints TAP. Usage: test_exec_cli.py RILL_BINARY
"""
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap_lib import Tap, free_port  # noqa: E402

RILL = os.path.abspath(sys.argv[1])
T = Tap()
ok, skip = T.ok, T.skip


class Proc:
    """A child whose stderr goes to a file we can read."""

    def __init__(self, argv, tmp, stdout=subprocess.DEVNULL):
        fd, self.log = tempfile.mkstemp(dir=tmp, suffix=".log")
        os.close(fd)
        self.f = open(self.log, "wb")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=stdout, stderr=self.f)

    def text(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_for(self, pattern, timeout=10):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.p.poll() is not None:
                return re.search(pattern, self.text())
            time.sleep(0.02)
        return None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.f.close()
        return self.p.returncode


def relay(tmp, target, *opts):
    r = Proc([RILL, "relay", *opts, "tcp://127.0.0.1:0", target], tmp)
    m = r.wait_for(r"listening on tcp://127\.0\.0\.1:(\d+)")
    if m is None:
        raise RuntimeError("relay did not start: " + r.text())
    r.port = int(m.group(1))
    return r


def log_lines(r, n, timeout=10):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        lines = [l for l in r.text().splitlines() if " end=" in l]
        if len(lines) >= n:
            return lines
        time.sleep(0.02)
    return [l for l in r.text().splitlines() if " end=" in l]


def exchange(port, data, timeout=20):
    """Sends data, half-closes, reads to EOF; returns the bytes read."""
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.settimeout(timeout)
    out = []

    def writer():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=writer)
    t.start()
    try:
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            out.append(b)
    finally:
        t.join()
        s.close()
    return b"".join(out)


def test_relay_cat_3mib(tmp):
    r = relay(tmp, "exec:/bin/cat")
    try:
        data = os.urandom(3 * 1024 * 1024)
        got = exchange(r.port, data)
        ok(hashlib.sha256(got).digest() == hashlib.sha256(data).digest(),
           "relay -> exec:/bin/cat: 3 MiB echoed, equal by SHA-256, "
           "ended by the half-close", "%d bytes back" % len(got))
        lines = log_lines(r, 1)
        ok(len(lines) == 1 and "exec:/bin/cat (pid " in lines[0] and
           "up=3145728 down=3145728" in lines[0] and
           lines[0].endswith("end=eof exit=0"),
           "the log line names the child and its exit status", lines)
    finally:
        ok(r.stop() == 0, "relay exits 0 on SIGTERM", r.text())


def test_half_close_from_child(tmp):
    # The child answers, closes its standard output and goes on reading:
    # the client sees EOF while it can still write, and what it writes
    # then still reaches the child (counted into a file).
    count = os.path.join(tmp, "count")
    r = relay(tmp, "exec:/bin/sh -c echo%20hi;exec%20>&-;wc%20-c%20>" + count)
    try:
        s = socket.create_connection(("127.0.0.1", r.port), 5)
        s.settimeout(10)
        got = b""
        while True:
            b = s.recv(100)
            if not b:
                break
            got += b
        s.sendall(b"x" * 1000000)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        s.close()
        lines = log_lines(r, 1)
        n = ""
        t0 = time.monotonic()
        while n != "1000000" and time.monotonic() - t0 < 10:
            with open(count) as f:
                n = f.read().strip()
            time.sleep(0.02)
        # Both directions ended before wc did: the line says so.
        ok(got == b"hi\n" and n == "1000000" and len(lines) == 1 and
           lines[0].endswith("end=eof exit=running"),
           "half-close from the child: EOF first, then 1 MB more reached "
           "its stdin", "got %r, count %r, %r" % (got, n, lines))
    finally:
        r.stop()


def test_inetd_many(tmp):
    # One child per connection: each prints its own pid.
    r = relay(tmp, "exec:/bin/sh -c echo%20$$;cat%20>/dev/null")
    try:
        socks = [socket.create_connection(("127.0.0.1", r.port), 5)
                 for _ in range(6)]
        pids = []
        for s in socks:
            s.settimeout(10)
            line = b""
            while not line.endswith(b"\n"):
                b = s.recv(64)
                if not b:
                    break
                line += b
            pids.append(line.strip())
        for s in socks:
            s.shutdown(socket.SHUT_WR)
            s.recv(1)
            s.close()
        lines = log_lines(r, 6)
        ok(len(set(pids)) == 6 and all(p.isdigit() for p in pids) and
           len(lines) == 6 and all("exit=0" in l for l in lines),
           "inetd mode: six concurrent connections, six children, each "
           "reaped with its status logged", "%r %r" % (pids, lines))
    finally:
        r.stop()


def test_exit_statuses(tmp):
    for target, want, name in [
            ("exec:/bin/sh -c exit%207", "end=eof exit=7", "an exit status"),
            ("exec:/bin/sh -c kill%20-KILL%20$$", "exit=SIGKILL",
             "a signal")]:
        r = relay(tmp, target)
        try:
            exchange(r.port, b"")
            lines = log_lines(r, 1)
            ok(len(lines) == 1 and lines[0].endswith(want),
               "relay logs %s of the child (%s)" % (name, want), lines)
        finally:
            r.stop()


def test_cannot_run(tmp):
    r = relay(tmp, "exec:/nonexistent/agent --stdio")
    try:
        got = exchange(r.port, b"")
        lines = log_lines(r, 1)
        ok(got == b"" and len(lines) == 1 and
           'connect-failed(exec: cannot run "/nonexistent/agent": '
           'No such file or directory)' in lines[0],
           "a program that cannot run: connect-failed naming it", lines)
    finally:
        r.stop()
    p = subprocess.run([RILL, "relay", "tcp://127.0.0.1:0", "exec:"],
                       capture_output=True, text=True, timeout=10)
    ok(p.returncode == 2 and 'missing program' in p.stderr,
       "relay refuses an exec: URI without a program", p.stderr)
    p = subprocess.run([RILL, "cat", "-l", "exec:/bin/cat"],
                       capture_output=True, text=True, timeout=10)
    ok(p.returncode == 1 and "inetd" in p.stderr,
       "listening on exec: is a clear error", p.stderr)


def test_cat(tmp):
    p = subprocess.run([RILL, "cat", "exec:/usr/bin/tr a-z A-Z"],
                       input=b"some data\n", capture_output=True, timeout=10)
    ok(p.returncode == 0 and p.stdout == b"SOME DATA\n",
       "rill cat exec:/usr/bin/tr: stdin to the child and back", p)


# ---------------------------------------------------------------------
# Socket activation


def activate(tmp, port, *args, fdname=None, accept=False, stdout=None):
    argv = ["systemd-socket-activate", "-l", "127.0.0.1:%d" % port]
    if fdname:
        argv.append("--fdname=" + fdname)
    if accept:
        argv.append("--accept")
    p = Proc(argv + [RILL, *args], tmp,
             stdout=stdout if stdout is not None else subprocess.DEVNULL)
    if p.wait_for(r"Listening on") is None:
        raise RuntimeError("systemd-socket-activate: " + p.text())
    return p


def test_activated_http(tmp):
    www = os.path.join(tmp, "www")
    os.makedirs(www)
    body = os.urandom(500000)
    with open(os.path.join(www, "f.bin"), "wb") as f:
        f.write(body)
    for uri, name in [("fd:3", None), ("fd:web", "web")]:
        port = free_port()
        a = activate(tmp, port, "http", "serve", uri, www, fdname=name)
        try:
            got = urllib.request.urlopen(
                "http://127.0.0.1:%d/f.bin" % port, timeout=10).read()
            ok(got == body, "socket-activated rill http serve %s answers"
               % uri, a.text())
        except OSError as e:
            ok(False, "socket-activated rill http serve %s answers" % uri,
               "%s\n%s" % (e, a.text()))
        finally:
            a.stop()


def test_activated_relay_exec(tmp):
    # The activated relay's exec: children see their three standard
    # descriptors only: the inherited listening socket (fd 3) is
    # close-on-exec.
    port = free_port()
    a = activate(tmp, port, "relay", "fd:3",
                 "exec:/bin/sh -c ls%20/proc/$$/fd;exit%200")
    try:
        got = exchange(port, b"")
        fds = sorted(got.decode().split())
        ok(fds == ["0", "1", "2"],
           "socket-activated relay: the exec: child has fds 0 1 2 only",
           "%r\n%s" % (got, a.text()))
        got = exchange(port, b"")
        ok(sorted(got.decode().split()) == ["0", "1", "2"],
           "and so has the second connection's child", repr(got))
    finally:
        a.stop()


def test_activated_echo(tmp):
    port = free_port()
    a = activate(tmp, port, "echo", "fd:3")
    try:
        data = os.urandom(200000)
        ok(exchange(port, data) == data,
           "socket-activated rill echo fd:3 echoes", a.text())
    finally:
        a.stop()


def test_activated_accept(tmp):
    # --accept: one connected socket per connection, as fd 3 (inetd's
    # "nowait"): rill cat fd:3 connects with it.
    port = free_port()
    out = os.path.join(tmp, "accepted.out")
    with open(out, "wb") as o:
        a = activate(tmp, port, "cat", "fd:3", accept=True, stdout=o)
        try:
            got = exchange(port, b"through an accepted socket\n")
            t0 = time.monotonic()
            data = b""
            while time.monotonic() - t0 < 10:
                with open(out, "rb") as f:
                    data = f.read()
                if data:
                    break
                time.sleep(0.02)
            ok(data == b"through an accepted socket\n" and got == b"",
               "systemd-socket-activate --accept: rill cat fd:3 on the "
               "connected socket", "%r %r\n%s" % (data, got, a.text()))
        finally:
            a.stop()


def test_fd_errors(tmp):
    p = subprocess.run([RILL, "echo", "fd:3"], capture_output=True,
                       text=True, timeout=10)
    ok(p.returncode == 1 and "fd:3: not a socket, and not inherited" in
       p.stderr, "listening on a descriptor that was not inherited",
       p.stderr)
    p = subprocess.run([RILL, "relay", "fd:web", "tcp://127.0.0.1:1"],
                       capture_output=True, text=True, timeout=10)
    ok(p.returncode != 0 and "no socket activation" in p.stderr,
       "fd:NAME without socket activation", p.stderr)


def main():
    tests = [test_relay_cat_3mib, test_half_close_from_child,
             test_inetd_many, test_exit_statuses, test_cannot_run,
             test_cat, test_fd_errors]
    activation = [test_activated_http, test_activated_relay_exec,
                  test_activated_echo, test_activated_accept]
    tmp = tempfile.mkdtemp(prefix="rill-exec-")
    try:
        for t in tests:
            try:
                t(tmp)
            except Exception as e:  # a broken test is a failure
                ok(False, t.__name__, repr(e))
        for t in activation:
            if shutil.which("systemd-socket-activate") is None:
                skip(t.__name__, "systemd-socket-activate not installed "
                     "(package systemd)")
                continue
            try:
                t(tmp)
            except Exception as e:
                ok(False, t.__name__, repr(e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
