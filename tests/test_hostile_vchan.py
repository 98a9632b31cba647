#!/usr/bin/env python3
"""Hostile neighbours of vchan and Unix sockets (issue 23, Why 1, 2, 5
and 7; issue 29's stale sockets). TAP.

Usage: test_hostile_vchan.py RILL_BINARY

Each test replays an attack by another local user (uid 65534, through
setpriv) on a root-owned rill, and checks that the attacker gets nothing
while the honest user's flow still works (bytes checked by hash). The
whole test runs in a private mount namespace with its own tmpfs on /tmp,
so that /tmp/rill-vchan-0 (the default rendezvous directory of root)
can be squatted without touching the machine's /tmp (a build under /tmp
is copied out first, see keep_out_of_tmp). It needs root
(unshare, setpriv): otherwise every test is skipped with the reason.

The attacker's programs are this file run with --peer (by
/usr/bin/python3, which uid 65534 can run): a fake vchan server that
speaks the rendezvous (doc/vchan-rendezvous.md) and steals the client's
bytes, one that hands over a pipe where an eventfd belongs, and a crowd
of silent connectors.
"""
import fcntl
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

NOBODY = 65534
PY = "/usr/bin/python3"
SELF = os.path.abspath(__file__)
AS_NOBODY = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
             "--clear-groups"]


# ---------------------------------------------------------------------------
# The attacker's side (run as --peer MODE ...)

def rdv_header(kind):
    return b"RVCH" + struct.pack("<HH", 1, kind)


def peer_offer_fds(mode):
    """The memfd (orders 10/11: one page) and the two fds to hand over."""
    mfd = os.memfd_create("rill-vchan", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(mfd, 4096)
    fcntl.fcntl(mfd, fcntl.F_ADD_SEALS,
                fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
    import mmap
    m = mmap.mmap(mfd, 4096)
    # Indices 0, orders 10 (left, client -> server) and 11, srv_live 1,
    # cli_live 2 (server waiting), notify bytes 0.
    m[0:24] = struct.pack("<IIIIHHBBBB", 0, 0, 0, 0, 10, 11, 2, 1, 0, 0)
    if mode == "badfd":
        r, w = os.pipe()
        return m, [mfd, r, w]
    e1 = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    e2 = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    return m, [mfd, e1, e2]


def peer_fakeserver(path, mode, out):
    """Serves one rendezvous on path; writes what it learnt to out:
    steal: the bytes the client wrote into the ring; badfd: READY or
    NOREADY."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o777)
    s.listen(8)
    with open(out + ".up", "w"):
        pass
    s.settimeout(20)
    got = b""
    try:
        c, _ = s.accept()
        c.settimeout(5)
        hello = c.recv(8)
        if hello != rdv_header(1):
            got = b"NOHELLO"
            raise OSError("no hello")
        m, fds = peer_offer_fds(mode)
        offer = rdv_header(2) + struct.pack("<QHHI", 4096, 10, 11, 3) + \
            bytes(8)
        socket.send_fds(c, [offer], fds)
        try:
            ready = c.recv(8)
        except OSError:
            ready = b""
        if mode == "badfd":
            got = b"READY" if ready == rdv_header(3) else b"NOREADY"
        elif ready == rdv_header(3):
            # Read the left ring (order 10 at offset 1024) for 3 s.
            cons = 0
            t0 = time.time()
            while time.time() - t0 < 3:
                prod = struct.unpack_from("<I", m, 4)[0]
                while cons != prod and len(got) < 65536:
                    got += bytes([m[1024 + (cons & 1023)]])
                    cons = (cons + 1) & 0xFFFFFFFF
                struct.pack_into("<I", m, 0, cons)
                time.sleep(0.02)
        c.close()
    except OSError:
        pass
    with open(out, "wb") as f:
        f.write(got)


def peer_silent(path, n, secs):
    conns = []
    for _ in range(n):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        conns.append(c)
    print("connected %d" % len(conns), flush=True)
    time.sleep(secs)


def peer_main(argv):
    mode = argv[0]
    if mode in ("steal", "badfd"):
        peer_fakeserver(argv[1], mode, argv[2])
    elif mode == "silent":
        peer_silent(argv[1], int(argv[2]), float(argv[3]))
    return 0


# ---------------------------------------------------------------------------
# The test driver (root, in its own mount namespace)

from tap_lib import Tap  # noqa: E402

RILL = None
T = Tap()


def root_env(**extra):
    env = dict(os.environ)
    env.pop("RILL_VCHAN_DIR", None)
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(extra)
    return env


def wait_file(path, secs=10.0):
    t0 = time.time()
    while time.time() - t0 < secs:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def wait_socket(path, secs=10.0):
    t0 = time.time()
    while time.time() - t0 < secs:
        try:
            if os.path.exists(path) and \
                    (os.lstat(path).st_mode & 0o170000) == 0o140000:
                return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


def start(cmd, env=None, nobody=False):
    if nobody:
        cmd = AS_NOBODY + cmd
    return subprocess.Popen(cmd, env=env or root_env(),
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stop(p):
    if p.poll() is None:
        p.kill()
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        out, err = b"", b""
    return out.decode(errors="replace") + err.decode(errors="replace")


def run(cmd, data=b"", env=None, timeout=20, nobody=False):
    if nobody:
        cmd = AS_NOBODY + cmd
    try:
        p = subprocess.run(cmd, input=data, env=env or root_env(),
                           capture_output=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or b"", (e.stderr or b"").decode(
            errors="replace") + "\n(timed out)"


def mkdir(path, mode, uid=0):
    os.mkdir(path)
    os.chown(path, uid, uid)
    os.chmod(path, mode)


def attacker_dir(path, mode=0o777):
    """A directory made by the attacker, as the attacker."""
    subprocess.run(AS_NOBODY + ["mkdir", "-m", "%o" % mode, path],
                   check=True)


def fake_server(mode, path, out, nobody=True):
    p = start([PY, SELF, "--peer", mode, path, out], nobody=nobody)
    if not wait_file(out + ".up"):
        return p, False
    return p, True


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def digest(b):
    return hashlib.sha256(b).hexdigest()


def test_squat_client():
    """Why 1: nobody squats /tmp/rill-vchan-0 and plays the server; root's
    rill cat vchan:agent must not send it a byte."""
    attacker_dir("/tmp/rill-vchan-0")
    out = "/tmp/rill-vchan-0/stolen"
    p, up = fake_server("steal", "/tmp/rill-vchan-0/agent", out)
    rc, _, err = run([RILL, "cat", "vchan:agent"], b"secret", timeout=15)
    stop(p)
    stolen = open(out, "rb").read() if os.path.exists(out) else b""
    T.ok(up and rc not in (0, None) and b"secret" not in stolen and
         "/tmp/rill-vchan-0" in err,
         "squatted /tmp/rill-vchan-0: root's client refuses it, no byte "
         "stolen", "rc=%s stolen=%r\n%s" % (rc, stolen, err))


def test_squat_server():
    """Why 1, the server's side: root's server refuses the squatted
    directory with a message naming it, instead of listening in it."""
    p = start([RILL, "echo", "vchan:agent2"])
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    text = stop(p)
    T.ok(p.returncode not in (0, None) and
         "/tmp/rill-vchan-0" in text and "owned by uid 65534" in text,
         "root's server refuses a directory owned by another uid", text)


def test_peer_uid_client():
    """A server path the client chose (no directory check) where nobody
    listens: the client refuses by SO_PEERCRED."""
    attacker_dir("/tmp/att")
    out = "/tmp/att/stolen"
    p, up = fake_server("steal", "/tmp/att/agent", out)
    rc, _, err = run([RILL, "cat", "vchan:/tmp/att/agent"], b"secret2",
                     timeout=15)
    stop(p)
    stolen = open(out, "rb").read() if os.path.exists(out) else b""
    T.ok(up and rc not in (0, None) and b"secret2" not in stolen and
         "uid 65534" in err,
         "client refuses a server of another uid (SO_PEERCRED)",
         "rc=%s stolen=%r\n%s" % (rc, stolen, err))


def test_peer_uid_server():
    """A root server whose socket anyone can open (as with umask 0):
    a client of another uid is refused by SO_PEERCRED."""
    mkdir("/tmp/pub", 0o755)
    srv = start([RILL, "echo", "vchan:/tmp/pub/svc"])
    ok = wait_socket("/tmp/pub/svc")
    if ok:
        os.chmod("/tmp/pub/svc", 0o777)
    rc, out, err = run([RILL, "cat", "vchan:/tmp/pub/svc"], b"hello",
                       timeout=15, nobody=True)
    log = stop(srv)
    T.ok(ok and rc not in (0, None) and out == b"" and "uid 65534" in log,
         "server refuses a client of another uid (SO_PEERCRED)",
         "rc=%s out=%r\n%s\n%s" % (rc, out, err, log))


def test_allow_uid():
    """allow_uid=65534 lets that uid in: the honest cross-uid flow."""
    data = os.urandom(1 << 20)
    srv = start([RILL, "echo", "vchan:/tmp/pub/svc2?allow_uid=65534"])
    ok = wait_socket("/tmp/pub/svc2")
    rc, out, err = run([RILL, "cat", "vchan:/tmp/pub/svc2"], data,
                       timeout=30, nobody=True)
    log = stop(srv)
    T.ok(ok and rc == 0 and digest(out) == digest(data),
         "allow_uid=65534: that uid's client is served, bytes by hash",
         "rc=%s len=%d\n%s\n%s" % (rc, len(out), err, log))


def test_unlink_file():
    """Why 2: a regular file where the socket would go is not deleted."""
    mkdir("/tmp/rootdir", 0o700)
    with open("/tmp/rootdir/victim", "w") as f:
        f.write("precious")
    p = start([RILL, "echo", "vchan:victim"],
              env=root_env(RILL_VCHAN_DIR="/tmp/rootdir"))
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    text = stop(p)
    intact = os.path.isfile("/tmp/rootdir/victim") and \
        open("/tmp/rootdir/victim").read() == "precious"
    T.ok(intact and p.returncode not in (0, None) and
         "not a socket" in text,
         "a regular file named like the port is left alone", text)


def test_unlink_symlink():
    """Why 2 through Why 1: a symlinked domain in the squatted directory
    points into a directory nobody cannot write; nothing is deleted."""
    mkdir("/tmp/protected", 0o755)
    with open("/tmp/protected/victim", "w") as f:
        f.write("precious")
    subprocess.run(AS_NOBODY + ["ln", "-s", "/tmp/protected",
                                "/tmp/rill-vchan-0/dom"], check=True)
    p = start([RILL, "echo", "vchan:dom/victim"])
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    text = stop(p)
    intact = os.path.isfile("/tmp/protected/victim")
    T.ok(intact and p.returncode not in (0, None),
         "a symlinked domain directory: the file behind it survives", text)


def test_silent_connectors():
    """Why 5: 200 silent connectors do not keep an honest client out, and
    the server's descriptors come back to their baseline after the
    handshake deadline. The connectors run as root: they must pass the
    credential check to reach the rendezvous at all (another uid is
    dropped at accept, test_peer_uid_server)."""
    mkdir("/tmp/own2", 0o700)
    srv = start([RILL, "echo", "vchan:/tmp/own2/busy"])
    ok = wait_socket("/tmp/own2/busy")
    time.sleep(0.3)
    base = fd_count(srv.pid)
    crowd = start([PY, SELF, "--peer", "silent", "/tmp/own2/busy", "200",
                   "12"])
    line = crowd.stdout.readline().decode()
    time.sleep(0.3)
    data = os.urandom(256 << 10)
    t0 = time.time()
    rc, out, err = run([RILL, "cat", "vchan:/tmp/own2/busy"], data,
                       timeout=20)
    dt = time.time() - t0
    # The deadline is 5 s from each accept; give the loop a margin.
    deadline = time.time() + 9
    fds = fd_count(srv.pid)
    while time.time() < deadline and fds > base:
        time.sleep(0.2)
        fds = fd_count(srv.pid)
    crowd_alive = crowd.poll() is None
    stop(crowd)
    log = stop(srv)
    T.ok(ok and line.startswith("connected 200") and rc == 0 and
         digest(out) == digest(data) and dt < 1.0,
         "200 silent connectors: the honest client served in %.2f s" % dt,
         "rc=%s crowd=%r\n%s\n%s" % (rc, line, err, log[-2000:]))
    T.ok(ok and crowd_alive and fds <= base,
         "descriptors back to baseline (%d) after the deadline: %d" %
         (base, fds), log[-2000:])


def test_bad_eventfd():
    """Why 7: a server that hands over a pipe where an eventfd belongs
    is refused before READY."""
    mkdir("/tmp/own", 0o700)
    out = "/tmp/own/ready"
    p, up = fake_server("badfd", "/tmp/own/agent", out, nobody=False)
    rc, _, err = run([RILL, "cat", "vchan:/tmp/own/agent"], b"x",
                     timeout=15)
    stop(p)
    seen = open(out, "rb").read() if os.path.exists(out) else b""
    T.ok(up and rc not in (0, None) and seen == b"NOREADY" and
         "eventfd" in err,
         "a pipe in place of an eventfd is refused before READY",
         "rc=%s server saw %r\n%s" % (rc, seen, err))


def test_honest_same_uid():
    """The honest flow in the same namespace: root's own default
    directory, made by rill (0700), bytes by hash."""
    shutil.rmtree("/tmp/rill-vchan-0", ignore_errors=True)
    data = os.urandom(2 << 20)
    srv = start([RILL, "echo", "vchan:honest"])
    ok = wait_socket("/tmp/rill-vchan-0/honest")
    rc, out, err = run([RILL, "cat", "vchan:honest"], data, timeout=30)
    log = stop(srv)
    st = os.lstat("/tmp/rill-vchan-0")
    T.ok(ok and rc == 0 and digest(out) == digest(data) and
         (st.st_mode & 0o777) == 0o700,
         "same-uid vchan in a fresh default directory (0700), bytes by "
         "hash", "rc=%s\n%s\n%s" % (rc, err, log))


# Unix sockets: stale files (issue 29) under the same rules.

def echo_unix(path):
    return start([RILL, "echo", "unix:" + path])


def unix_roundtrip(path, data=b"ping"):
    rc, out, _ = run([RILL, "cat", "unix:" + path], data, timeout=10)
    return rc == 0 and out == data


def test_unix_stale():
    mkdir("/tmp/u", 0o755)
    path = "/tmp/u/s"
    a = echo_unix(path)
    ok1 = wait_socket(path) and unix_roundtrip(path)
    a.kill()
    a.wait()
    b = echo_unix(path)
    time.sleep(0.5)
    ok2 = b.poll() is None and unix_roundtrip(path)
    T.ok(ok1 and ok2, "kill -9'd rill echo unix: restarts on its path",
         stop(b))
    c = echo_unix(path)
    t0 = time.time()
    while not unix_roundtrip(path) and time.time() - t0 < 10:
        time.sleep(0.1)
    b2 = echo_unix(path)
    try:
        b2.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    text = stop(b2)
    alive = unix_roundtrip(path)
    T.ok(b2.returncode not in (0, None) and "listening there" in text and
         alive, "a live server keeps its path; the second says why", text)
    stop(c)


def test_unix_not_ours():
    mkdir("/tmp/u2", 0o1777)
    with open("/tmp/u2/file", "w") as f:
        f.write("keep")
    p = echo_unix("/tmp/u2/file")
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    text = stop(p)
    T.ok(p.returncode not in (0, None) and "not a socket" in text and
         open("/tmp/u2/file").read() == "keep",
         "a regular file at a unix: path is left alone", text)
    # A dead socket of another user, in a sticky directory.
    n = start([RILL, "echo", "unix:/tmp/u2/theirs"], nobody=True)
    wait_socket("/tmp/u2/theirs")
    n.kill()
    n.wait()
    p = echo_unix("/tmp/u2/theirs")
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    text = stop(p)
    st = os.lstat("/tmp/u2/theirs")
    T.ok(p.returncode not in (0, None) and st.st_uid == NOBODY and
         "another user" in text,
         "another user's stale socket is left alone", text)


def test_relay_http_stale():
    """rill relay and rill http serve replace a stale socket too."""
    mkdir("/tmp/u3", 0o700)
    res = []
    for name, cmd in (("relay", [RILL, "relay", "unix:/tmp/u3/r",
                                 "unix:/tmp/u3/nowhere"]),
                      ("http serve", [RILL, "http", "serve", "-q",
                                      "unix:/tmp/u3/h", "/tmp/u3"])):
        path = cmd[-2] if name == "relay" else cmd[-2]
        path = path[len("unix:"):]
        a = start(cmd)
        up = wait_socket(path)
        a.kill()
        a.wait()
        b = start(cmd)
        time.sleep(0.7)
        alive = b.poll() is None
        res.append((name, up and alive, stop(b)))
    T.ok(all(r[1] for r in res),
         "rill relay and rill http serve restart on a stale unix: path",
         "\n".join("%s: %s %s" % r for r in res))


TESTS = [test_squat_client, test_squat_server, test_peer_uid_client,
         test_peer_uid_server, test_allow_uid, test_unlink_file,
         test_unlink_symlink, test_silent_connectors, test_bad_eventfd,
         test_honest_same_uid, test_unix_stale, test_unix_not_ours,
         test_relay_http_stale]


def keep_out_of_tmp():
    """The tmpfs below hides the host's /tmp: a checkout or build there
    (a clone in /tmp/x, many CI work trees) would vanish with it. Such
    programs are copied first to a folder of their own in /run (readable
    by the attacker's uid, which runs this script as a peer), removed at
    the end. Returns that folder, or None."""
    global RILL, SELF
    if not (RILL.startswith("/tmp/") or SELF.startswith("/tmp/")):
        return None
    keep = tempfile.mkdtemp(prefix="rill-hostile-", dir="/run")
    os.chmod(keep, 0o755)
    for src in (RILL, SELF, os.path.join(os.path.dirname(SELF), "tap_lib.py")):
        shutil.copy2(src, keep)
    RILL = os.path.join(keep, os.path.basename(RILL))
    SELF = os.path.join(keep, os.path.basename(SELF))
    return keep


def in_namespace():
    keep = keep_out_of_tmp()
    # A fresh /tmp for this namespace only: the squatting happens here.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777,size=64m",
                    "hostile", "/tmp"], check=True)
    os.environ["TMPDIR"] = "/tmp"
    try:
        for t in TESTS:
            try:
                t()
            except Exception as e:  # a broken test is a failed test
                T.ok(False, t.__name__, repr(e))
    finally:
        if keep is not None:
            shutil.rmtree(keep, ignore_errors=True)
    return T.done()


def main():
    global RILL
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        return peer_main(sys.argv[2:])
    RILL = os.path.abspath(sys.argv[1])
    if os.environ.get("HOSTILE_NS") == "1":
        return in_namespace()
    why = None
    if os.geteuid() != 0:
        why = "needs root (unshare, setpriv)"
    elif not all(shutil.which(x) for x in ("unshare", "setpriv", "mount")):
        why = "needs unshare, setpriv and mount (util-linux)"
    elif not os.path.exists(PY):
        why = "needs %s for the attacker's side" % PY
    elif subprocess.run(["unshare", "--mount", "true"]).returncode != 0:
        why = "cannot make a mount namespace here"
    if why is not None:
        for t in TESTS:
            T.skip(t.__name__, why)
        return T.done()
    env = dict(os.environ, HOSTILE_NS="1")
    p = subprocess.run(["unshare", "--mount", "--propagation", "private",
                        PY, SELF, RILL], env=env)
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
