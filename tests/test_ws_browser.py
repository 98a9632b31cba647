#!/usr/bin/env python3
"""A real browser over rill's WebSocket layer. Prints TAP.
Usage: test_ws_browser.py BUILD_DIR

Headless Chromium (Debian's chromium package) loads tests/ws_browser/
index.html from `rill http serve`; the page opens a WebSocket to
`rill relay ws+tcp://... tcp://...` in front of an echo service, sends
1 MiB of random bytes in 64 KiB binary messages, checks every byte that
comes back, and reports on the console ("WSTEST OK ..." or "WSTEST FAIL
..."), which this test reads from Chromium's log. A negative control
runs the same page against an echo that flips one byte, and must report
the failure: so the check can fail. Then the same page is served by
`rill http serve --ws /ws=tcp://...` and opens its socket on the same
port (same origin).
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap_lib import Tap, free_port, wait_port  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
RILL = os.path.join(BUILD, "rill")
PAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "ws_browser")
tap = Tap()
procs = []


def start(args):
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    procs.append(p)
    return p


def corrupting_echo(port, at):
    """A TCP echo that flips one bit of byte `at` of each connection."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(8)

    def serve(c):
        n = 0
        while True:
            d = c.recv(65536)
            if not d:
                break
            b = bytearray(d)
            if n <= at < n + len(b):
                b[at - n] ^= 0x01
            n += len(b)
            c.sendall(b)
        c.close()

    def loop():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return ls


def browse(chromium, url, timeout=90):
    """Runs headless Chromium on url; returns the page's WSTEST line."""
    # Chromium's profile and its own temporary files (its singleton
    # socket...) in one directory, removed afterwards.
    base = tempfile.mkdtemp(prefix="rill-chromium-")
    prof = os.path.join(base, "profile")
    env = dict(os.environ, TMPDIR=base)
    p = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
         "--no-first-run", "--disable-extensions", "--enable-logging=stderr",
         "--v=0", "--user-data-dir=" + prof, url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True, env=env)
    result = [None]

    def reader():
        for line in p.stderr:
            line = line.decode(errors="replace")
            if "WSTEST " in line:
                result[0] = line.split("WSTEST ", 1)[1].split('"')[0]
                return
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    p.wait()
    shutil.rmtree(base, ignore_errors=True)
    return result[0] or "no report within %d s" % timeout


def main():
    chromium = shutil.which("chromium")
    if chromium is None:
        tap.skip("chromium", "Debian's chromium is not installed "
                 "(scripts/install-deps.sh installs it)")
        return tap.done()
    hport, eport, rport = free_port(), free_port(), free_port()
    cport, crport, wsport = free_port(), free_port(), free_port()
    start([RILL, "http", "serve", "tcp://127.0.0.1:%d" % hport, PAGE_DIR])
    start([RILL, "echo", "tcp://127.0.0.1:%d" % eport])
    start([RILL, "relay", "ws+tcp://127.0.0.1:%d?path=/echo" % rport,
           "tcp://127.0.0.1:%d" % eport])
    ls = corrupting_echo(cport, 500000)
    start([RILL, "relay", "ws+tcp://127.0.0.1:%d?subprotocol=binary" % crport,
           "tcp://127.0.0.1:%d" % cport])
    for p in (hport, eport, rport, crport):
        wait_port(p)
    page = "http://127.0.0.1:%d/index.html" % hport
    r = browse(chromium, page + "?ws=ws://127.0.0.1:%d/echo" % rport)
    tap.ok(r.startswith("OK 1048576"),
           "chromium: 1 MiB through rill relay ws+tcp -> tcp echo", r)
    r = browse(chromium, page + "?ws=ws://127.0.0.1:%d/&proto=binary"
               % crport)
    tap.ok(r.startswith("FAIL byte 500000"),
           "chromium: a flipped byte behind the relay is caught "
           "(negative control)", r)
    # same origin: rill http serve --ws
    help_text = subprocess.run([RILL, "http", "serve", "--help"],
                               capture_output=True).stdout.decode()
    if "--ws" not in help_text:
        tap.skip("chromium: rill http serve --ws", "no --ws option")
    else:
        start([RILL, "http", "serve", "--ws", "/ws=tcp://127.0.0.1:%d" % eport,
               "tcp://127.0.0.1:%d" % wsport, PAGE_DIR])
        wait_port(wsport)
        r = browse(chromium, "http://127.0.0.1:%d/index.html" % wsport)
        tap.ok(r.startswith("OK 1048576"),
               "chromium: page and WebSocket on one port "
               "(rill http serve --ws)", r)
    ls.close()
    return tap.done()


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
    sys.exit(rc)
