#!/usr/bin/env python3
"""TAP test of examples/vsock_proxy: a guest connection arrives on the
listening URI, is forwarded to a TCP echo target on 127.0.0.1, and the
half-close and the stats line come out right.

1. unix:DIR/p.sock -> tcp echo (the forwarding itself).
2. hybrid-vsock:DIR/v.sock:5000 -> tcp echo. The client plays the VMM
   (Firecracker, Cloud Hypervisor): for a guest's connection to host port
   5000 it connects to the Unix socket DIR/v.sock_5000 (Firecracker's
   vsock documentation: "uds_path_PORT"), with no handshake line.
3. tcp -> hybrid-vsock:DIR/h.sock:52, the other way round: a small fake
   VMM listens on DIR/h.sock, expects the host's "CONNECT 52\n", answers
   "OK 1073741824\n" and then echoes, as the guest's port 52 would.
4. unix -> a silent tcp target, the guest resets its connection: the
   proxy's linger (-l 300) ends the connection, "cut=linger", instead of
   waiting forever for the silent target.
Usage: test_vsock_proxy.py PROGRAM
"""
import os, socket, struct, subprocess, sys, tempfile, threading, time

prog = sys.argv[1]
print("1..4", flush=True)


def echo_server():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()

    def serve():
        c, _ = s.accept()
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)  # echo done: half-close back
        c.close()

    threading.Thread(target=serve, daemon=True).start()
    return s, s.getsockname()[1]


def fake_vmm(path):
    """Accepts one host connection on path: CONNECT line, OK, then echo."""
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen()

    def serve():
        c, _ = s.accept()
        line = b""
        while not line.endswith(b"\n"):
            d = c.recv(1)
            if not d:
                return
            line += d
        if line != b"CONNECT 52\n":
            c.sendall(b"FAILURE\n")
            c.close()
            return
        c.sendall(b"OK 1073741824\n")
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)
        c.close()

    threading.Thread(target=serve, daemon=True).start()
    return s


def run(n, listen_uri, sock_path, target=None, held=False):
    """held: the target cannot half-close (hybrid-vsock), so the guest's
    EOF is held back from it; the reply still arrives whole, and the
    proxy ends by its linger (-l 500), cut=linger."""
    srv = None
    if target is None:
        srv, port = echo_server()
        target = "tcp://127.0.0.1:%d" % port
    opts = ["-l", "500"] if held else []
    p = subprocess.Popen([prog, "-n", "1"] + opts + [listen_uri, target],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    first = p.stdout.readline()
    if not first.startswith("listening on"):
        rest = first + p.stdout.read()
        p.wait()
        if "unknown scheme" in rest:
            print("ok %d # SKIP %s: scheme not registered in this build: %s"
                  % (n, listen_uri, rest.strip()))
        else:
            print("not ok %d - %s: %s" % (n, listen_uri, rest.strip()))
        return
    payload = os.urandom(200000)
    if isinstance(sock_path, tuple):
        c = socket.socket()
    else:
        c = socket.socket(socket.AF_UNIX)
    c.settimeout(20)
    c.connect(sock_path)
    c.sendall(payload)
    c.shutdown(socket.SHUT_WR)  # half-close: the reply must still arrive
    got = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        got += d
    c.close()
    out, _ = p.communicate(timeout=20)
    want = "conn 1: up=%d down=%d status=0" % (len(payload), len(payload))
    if held:
        want = "conn 1: up=%d down=%d " % (len(payload), len(payload))
        ok = got == payload and want in out and "cut=linger" in out
    else:
        ok = got == payload and want in out and p.returncode == 0
    print("%s %d - %s: %d bytes echoed through, stats line" %
          ("ok" if ok else "not ok", n, listen_uri, len(got)))
    for line in (first + out).splitlines():
        print("# " + line)
    if srv is not None:
        srv.close()


def run_reset_silent(n, d):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    target = "tcp://127.0.0.1:%d" % silent.getsockname()[1]
    p = subprocess.Popen([prog, "-n", "1", "-l", "300",
                          "unix:%s/r.sock" % d, target],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    first = p.stdout.readline()
    c = socket.socket(socket.AF_UNIX)
    c.connect("%s/r.sock" % d)
    held, _ = silent.accept()  # never says a word, never closes
    c.sendall(b"request")
    # An abortive close (linger 0) of a Unix socket: the proxy reads
    # ECONNRESET or EOF; either way the guest side is over.
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    t0 = time.monotonic()
    c.close()
    try:
        out, _ = p.communicate(timeout=10)
        took = time.monotonic() - t0
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        took = None
    ok = took is not None and took < 5 and "cut=linger" in out
    print("%s %d - guest reset, silent target: ended by the linger in %s s" %
          ("ok" if ok else "not ok", n,
           "%.2f" % took if took is not None else "> 10"))
    for line in (first + out).splitlines():
        print("# " + line)
    held.close()
    silent.close()


with tempfile.TemporaryDirectory() as d:
    run(1, "unix:%s/p.sock" % d, "%s/p.sock" % d)
    run(2, "hybrid-vsock:%s/v.sock:5000" % d, "%s/v.sock_5000" % d)
    vmm = fake_vmm("%s/h.sock" % d)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    run(3, "tcp://127.0.0.1:%d" % port, ("127.0.0.1", port),
        "hybrid-vsock:%s/h.sock:52" % d, held=True)
    vmm.close()
    run_reset_silent(4, d)
