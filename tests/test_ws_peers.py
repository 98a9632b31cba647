#!/usr/bin/python3
"""The ws+ layer against WebSocket peers nobody here wrote, and hostile
input. Prints TAP. Usage: test_ws_peers.py BUILD_DIR

  python3-websockets  as a client of `rill echo ws+tcp://` and of
                      `rill relay ws+tcp:// tcp://`, and as the server of
                      `rill cat ws+tcp://`: binary and text messages,
                      fragmentation, pings, Close codes, subprotocols,
                      bytes checked by SHA-256
  node-ws             the same as client and server (NODE_PATH)
  websockify          as the server for `rill cat ws+tcp://`
  raw sockets         hostile frames (unmasked, oversized, invalid UTF-8,
                      reserved opcodes and bits, long or fragmented
                      control frames), each answered with the RFC's
                      Close code; bad handshakes answered 400/426/404;
                      a silent client dropped at the handshake deadline

Runs under Debian's /usr/bin/python3, which has python3-websockets.
"""
import asyncio
import base64
import hashlib
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap_lib import Tap, free_port, wait_port  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
RILL = os.path.join(BUILD, "rill")
tap = Tap()
procs = []

try:
    import websockets
except ImportError:
    websockets = None


def start(args, **kw):
    p = subprocess.Popen(args, stdout=kw.pop("stdout", subprocess.DEVNULL),
                         stderr=kw.pop("stderr", subprocess.PIPE), **kw)
    procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def sha(b):
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------------------
# python3-websockets as the client

async def py_client(uri, sub=None):
    """Binary, text and fragmented messages and a ping through an echo;
    returns (sent hash, received hash, pong ok, close code)."""
    import websockets as W
    rnd = os.urandom(300000)
    sent = bytearray()
    got = bytearray()
    kw = {"max_size": None}
    if sub:
        kw["subprotocols"] = [sub]
    async with W.connect(uri, **kw) as ws:
        chosen = ws.subprotocol
        msgs = [rnd[:1], rnd[1:70000], "h\u00e9llo w\u00f6rld \u2603".encode(),
                rnd[70000:]]
        for m in msgs[:2]:
            await ws.send(m)
            sent += m
        await ws.send(msgs[2].decode())  # a text message
        sent += msgs[2]
        # a fragmented message: three frames
        frags = [msgs[3][:1000], msgs[3][1000:50000], msgs[3][50000:]]
        await ws.send(iter(frags))
        sent += msgs[3]
        await asyncio.wait_for(await ws.ping(b"are you there"), 10)
        pong = True
        while len(got) < len(sent):
            m = await asyncio.wait_for(ws.recv(), 10)
            got += m if isinstance(m, bytes) else m.encode()
        await ws.close(code=1000)
        return sha(sent), sha(got), pong, ws.close_code, chosen


def run_py_client(name, uri, sub=None, want_sub=None):
    try:
        s, g, pong, code, chosen = asyncio.run(
            asyncio.wait_for(py_client(uri, sub), 30))
        tap.ok(s == g, name + ": echoed bytes match (sha256)",
               "%s != %s" % (s, g))
        tap.ok(pong, name + ": ping answered")
        tap.ok(code == 1000, name + ": Close 1000 answered", code)
        if sub:
            tap.ok(chosen == want_sub, name + ": subprotocol %r" % want_sub,
                   chosen)
    except Exception as e:  # noqa: BLE001
        tap.ok(False, name, repr(e))


# ---------------------------------------------------------------------------
# python3-websockets as the server for `rill cat`

async def py_server_case(port, close_code, text, frag, sub, ping):
    import websockets as W
    payload = os.urandom(200000)
    res = {}

    async def handler(ws, path=None):
        res["path"] = path if path is not None else ws.path
        res["sub"] = ws.subprotocol
        got = bytearray()
        # what rill cat sends from its stdin, until its Close
        if ping:
            await asyncio.wait_for(await ws.ping(b"x"), 10)
            res["pong"] = True
        if text:
            await ws.send(payload.hex()[:100000])  # text
        elif frag:
            await ws.send(iter([payload[:10], payload[10:150000],
                                payload[150000:]]))
        else:
            await ws.send(payload)
        if close_code != 1000:
            # closing first, with a status of its own
            await asyncio.sleep(0.2)
            await ws.close(close_code)
            res["early"] = True
            return
        try:
            async for m in ws:
                got += m if isinstance(m, bytes) else m.encode()
        except W.ConnectionClosed:
            pass
        res["got"] = bytes(got)
        res["code"] = ws.close_code
        await ws.close(close_code)

    kw = {"max_size": None}
    if sub:
        kw["subprotocols"] = [sub]
    stdin = os.urandom(100000)
    async with W.serve(handler, "127.0.0.1", port, **kw):
        uri = "ws+tcp://127.0.0.1:%d?path=/in" % port
        if sub:
            uri += "&subprotocol=" + sub
        p = await asyncio.create_subprocess_exec(
            RILL, "cat", "--idle-timeout", "1", uri,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        want = payload.hex()[:100000].encode() if text else payload

        async def feed():
            # stdin only once the server's message arrived, so the
            # Close that ends stdin cannot cut it short
            await asyncio.sleep(0.5 if close_code == 1000 else 2)
            try:
                p.stdin.write(stdin)
                await p.stdin.drain()
                p.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass
        feeder = asyncio.ensure_future(feed())
        out, err = await asyncio.wait_for(p.communicate(), 20)
        await feeder
        await asyncio.sleep(0.2)
        return (out, want, res, stdin, p.returncode, err.decode())


def run_py_server(name, close_code=1000, text=False, frag=False, sub=None,
                  ping=False):
    port = free_port()
    try:
        out, want, res, stdin, rc, err = asyncio.run(
            py_server_case(port, close_code, text, frag, sub, ping))
        tap.ok(sha(out) == sha(want), name + ": bytes from the server",
               "%d bytes, wanted %d; %s" % (len(out), len(want), err))
        if not res.get("early"):
            tap.ok(sha(res.get("got", b"")) == sha(stdin),
                   name + ": bytes to the server",
                   "%d bytes" % len(res.get("got", b"")))
            tap.ok(res.get("code") == 1000, name + ": rill sent Close 1000",
                   res.get("code"))
        tap.ok(res.get("path") == "/in", name + ": request path",
               res.get("path"))
        if sub:
            tap.ok(res.get("sub") == sub, name + ": subprotocol", res)
        if ping:
            tap.ok(res.get("pong"), name + ": rill answered the ping")
        return rc, err
    except Exception as e:  # noqa: BLE001
        tap.ok(False, name, repr(e))
        return None, ""


# ---------------------------------------------------------------------------
# Raw sockets: handshakes and hostile frames

def raw_connect(port, path="/", extra=b"", key=None, version=b"13",
                rcvbuf=None):
    s = socket.socket()
    if rcvbuf is not None:  # before connect, or the window is already set
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    key = key if key is not None else base64.b64encode(os.urandom(16))
    req = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
           b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: " + key + b"\r\n"
           b"Sec-WebSocket-Version: " + version + b"\r\n" + extra + b"\r\n")
    s.sendall(req)
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        if not c:
            break
        head += c
    return s, head, key


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("connection ended after %d bytes" % len(b))
        b += c
    return b


def read_frame(s):
    h = recv_exact(s, 2)
    op = h[0] & 0x0F
    ln = h[1] & 0x7F
    if ln == 126:
        ln = struct.unpack("!H", recv_exact(s, 2))[0]
    elif ln == 127:
        ln = struct.unpack("!Q", recv_exact(s, 8))[0]
    mask = recv_exact(s, 4) if h[1] & 0x80 else None
    data = recv_exact(s, ln)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return h[0], op, data


def frame(op, payload, fin=True, mask=True, rsv=0, length=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    if n < 126:
        h = bytes([b0, m | n])
    elif n < 65536:
        h = bytes([b0, m | 126]) + struct.pack("!H", n)
    else:
        h = bytes([b0, m | 127]) + struct.pack("!Q", n)
    if mask:
        k = os.urandom(4)
        return h + k + bytes(b ^ k[i % 4] for i, b in enumerate(payload))
    return h + payload


def close_code_after(port, data):
    """Sends data after a good handshake; returns the Close code got."""
    s, head, _ = raw_connect(port, "/e")
    if b" 101 " not in head:
        return "no 101: %r" % head[:80]
    s.sendall(data)
    try:
        while True:
            b0, op, payload = read_frame(s)
            if op == 8:
                return struct.unpack("!H", payload[:2])[0] if payload else 1005
    except (EOFError, OSError) as e:
        return "no Close: %r" % e
    finally:
        s.close()


def hostile_tests(port):
    cases = [
        ("unmasked client frame", frame(2, b"abc", mask=False), 1002),
        ("reserved opcode 0x3", frame(3, b"abc"), 1002),
        ("reserved opcode 0xB", frame(0xB, b""), 1002),
        ("RSV1 bit", frame(2, b"abc", rsv=4), 1002),
        ("RSV3 bit", frame(2, b"abc", rsv=1), 1002),
        ("ping over 125 bytes", frame(9, b"p" * 126), 1002),
        ("fragmented ping", frame(9, b"p", fin=False), 1002),
        ("invalid UTF-8 in text", frame(1, b"ok \xc3\x28 bad"), 1007),
        ("UTF-8 cut at the message end", frame(1, b"\xe2\x82"), 1007),
        ("oversized length (2^40)", frame(2, b"", length=1 << 40)[:10]
         + os.urandom(4), 1009),
        ("message over max_message in fragments",
         frame(2, b"a" * 40000, fin=False) + frame(0, b"b" * 40000), 1009),
        ("continuation without a start", frame(0, b"abc"), 1002),
        ("new message inside a fragmented one",
         frame(2, b"a", fin=False) + frame(2, b"b"), 1002),
        ("Close with invalid code 999", frame(8, struct.pack("!H", 999)), 1002),
    ]
    for name, data, want in cases:
        got = close_code_after(port, data)
        tap.ok(got == want, "hostile: %s -> Close %d" % (name, want), got)
    # a peer's Close with a status is echoed, and the echo still serves
    got = close_code_after(port, frame(8, struct.pack("!H", 4001) + b"bye"))
    tap.ok(got == 4001, "Close 4001 from the peer is answered with 4001", got)


def handshake_tests(port):
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(b"GET /e HTTP/1.1\r\nHost: x\r\n\r\n")
    r = s.recv(4096)
    s.close()
    tap.ok(r.startswith(b"HTTP/1.1 426 "), "plain HTTP GET -> 426", r[:60])
    s, head, _ = raw_connect(port, "/e", version=b"8")
    s.close()
    tap.ok(head.startswith(b"HTTP/1.1 426 ") and
           b"Sec-WebSocket-Version: 13" in head,
           "version 8 -> 426 with Sec-WebSocket-Version: 13", head[:80])
    s, head, _ = raw_connect(port, "/e", key=b"short")
    s.close()
    tap.ok(head.startswith(b"HTTP/1.1 400 "), "bad key -> 400", head[:60])
    s, head, _ = raw_connect(port, "/elsewhere")
    s.close()
    tap.ok(head.startswith(b"HTTP/1.1 404 "), "other path -> 404", head[:60])
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(b"GET /e HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 9000 + b"\r\n\r\n")
    try:
        r = s.recv(4096)
    except OSError:
        r = b""
    s.close()
    tap.ok(r.startswith(b"HTTP/1.1 431 "), "9 KB head -> 431", r[:60])
    s, head, key = raw_connect(port, "/e")
    want = base64.b64encode(hashlib.sha1(
        key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    tap.ok(b"Sec-WebSocket-Accept: " + want in head,
           "Sec-WebSocket-Accept is right (RFC 6455 4.2.2)", head)
    s.close()


def silent_client_test(port, deadline):
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.settimeout(deadline + 5)
    t0 = time.time()
    try:
        r = s.recv(100)
    except OSError as e:
        r = repr(e).encode()
    dt = time.time() - t0
    s.close()
    tap.ok(r == b"" and dt < deadline + 4,
           "silent client dropped at the handshake deadline (%.1f s)" % dt, r)


def hand_made_server(query, after=b""):
    """A WebSocket server written here from RFC 6455 4.2.2: accepts
    `rill cat ws+tcp://...QUERY`, answers its handshake, then sends
    `after`. Returns the listening socket, the connection and rill."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    p = start([RILL, "cat", "ws+tcp://127.0.0.1:%d%s" % (port, query)],
              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    ls.settimeout(10)
    c, _ = ls.accept()
    c.settimeout(10)
    head = b""
    while b"\r\n\r\n" not in head:
        head += c.recv(4096)
    key = [ln.split(b": ")[1] for ln in head.split(b"\r\n")
           if ln.lower().startswith(b"sec-websocket-key")][0]
    acc = base64.b64encode(hashlib.sha1(
        key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc +
              b"\r\n\r\n" + after)
    return ls, c, p


def masked_server_frame_test():
    """A server that masks its frames: rill's client fails it with 1002."""
    ls, c, p = hand_made_server("", frame(2, b"masked!", mask=True))
    try:
        while True:
            b0, op, payload = read_frame(c)
            if op == 8:
                break
        code = struct.unpack("!H", payload[:2])[0]
    except Exception as e:  # noqa: BLE001
        code = repr(e)
    tap.ok(code == 1002, "client: masked server frame -> Close 1002", code)
    c.close()
    ls.close()
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    tap.ok(p.returncode != 0 and b"WebSocket" in err,
           "client: rill cat fails with a WebSocket error", err)


def ping_timeout_test():
    """A server that completes the handshake, then never answers: rill's
    client pings every second (ping=1) and fails without an answer."""
    ls, c, p = hand_made_server("?ping=1")
    t0 = time.time()
    try:
        b0, op, payload = read_frame(c)
    except Exception as e:  # noqa: BLE001
        op = repr(e)
    tap.ok(op == 9, "client: ping=1 sends a ping", op)
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    dt = time.time() - t0
    tap.ok(p.returncode == 1 and b"ping" in err and dt < 5,
           "client: no answer to the ping fails the flow (%.1f s)" % dt, err)
    c.close()
    ls.close()


# ---------------------------------------------------------------------------
# node-ws and websockify

NODE_PATH = "/usr/share/nodejs"

NODE_CLIENT = r"""
const WebSocket = require('ws');
const crypto = require('crypto');
const ws = new WebSocket(process.argv[1], ['binary']);
const data = crypto.randomBytes(500000);
const text = 'na\u00efve \u2603 text';
let got = [];
let total = 0;
const want = data.length + Buffer.byteLength(text);
ws.on('open', () => {
  ws.send(data.subarray(0, 200000));
  ws.send(text);
  ws.send(data.subarray(200000, 300000), {fin: false});
  ws.send(data.subarray(300000), {fin: true});
  ws.ping('p');
});
let pong = false;
ws.on('pong', () => { pong = true; });
ws.on('message', (m) => {
  got.push(Buffer.from(m)); total += m.length;
  if (total >= want) ws.close(1000);
});
ws.on('close', (code) => {
  const all = Buffer.concat([data.subarray(0, 200000), Buffer.from(text),
                             data.subarray(200000)]);
  const h = (b) => crypto.createHash('sha256').update(b).digest('hex');
  console.log(JSON.stringify({same: h(all) === h(Buffer.concat(got)),
    pong, code, proto: ws.protocol}));
});
ws.on('error', (e) => { console.log(JSON.stringify({error: String(e)})); });
"""

NODE_SERVER = r"""
const WebSocket = require('ws');
const crypto = require('crypto');
const wss = new WebSocket.Server({host: '127.0.0.1', port: +process.argv[1]});
const data = crypto.randomBytes(300000);
wss.on('listening', () => console.log('listening'));
wss.on('connection', (ws, req) => {
  let got = [];
  ws.send(data.subarray(0, 100000));
  ws.send(data.subarray(100000, 200000), {fin: false});
  ws.send(data.subarray(200000), {fin: true});
  ws.ping();
  let pong = false;
  ws.on('pong', () => { pong = true; });
  ws.on('message', (m) => got.push(Buffer.from(m)));
  ws.on('close', (code) => {
    const h = (b) => crypto.createHash('sha256').update(b).digest('hex');
    console.log(JSON.stringify({sent: h(data), got: h(Buffer.concat(got)),
      n: Buffer.concat(got).length, code, pong, url: req.url}));
    wss.close();
  });
});
"""


def node_tests(echo_port):
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None or not os.path.isdir(os.path.join(NODE_PATH, "ws")):
        tap.skip("node-ws", "node or node-ws missing (scripts/install-deps.sh)")
        return
    env = dict(os.environ, NODE_PATH=NODE_PATH)
    import json
    r = subprocess.run([node, "-e", NODE_CLIENT,
                        "ws://127.0.0.1:%d/e" % echo_port],
                       capture_output=True, env=env, timeout=30)
    try:
        res = json.loads(r.stdout.decode().strip().splitlines()[-1])
    except Exception:  # noqa: BLE001
        res = {"error": r.stdout.decode() + r.stderr.decode()}
    tap.ok(res.get("same"), "node-ws client: echoed bytes match", res)
    tap.ok(res.get("pong"), "node-ws client: ping answered", res)
    tap.ok(res.get("code") == 1000, "node-ws client: Close 1000", res)
    tap.ok(res.get("proto") == "binary", "node-ws client: subprotocol", res)
    # node-ws as the server of rill cat
    port = free_port()
    srv = start([node, "-e", NODE_SERVER, str(port)], env=env,
                stdout=subprocess.PIPE)
    if not wait_port(port):
        tap.ok(False, "node-ws server started")
        return
    stdin = os.urandom(150000)
    # ws+ cannot half-close (a Close ends both ways): rill cat keeps the
    # connection open after stdin and ends once it is quiet.
    p = subprocess.Popen([RILL, "cat", "--idle-timeout", "1",
                          "ws+tcp://127.0.0.1:%d?path=/n" % port],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    time.sleep(0.5)
    out, err = p.communicate(stdin, timeout=20)
    try:
        sout, _ = srv.communicate(timeout=10)
        res = json.loads(sout.decode().strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001
        res = {"error": repr(e)}
    tap.ok(len(out) == 300000 and res.get("sent") == sha(out),
           "node-ws server: its bytes reach rill cat", (len(out), err))
    tap.ok(res.get("got") == sha(stdin), "node-ws server: rill cat's bytes",
           res)
    tap.ok(res.get("code") == 1000 and res.get("url") == "/n",
           "node-ws server: Close 1000, path /n", res)
    tap.ok(res.get("pong"), "node-ws server: rill answered the ping", res)


def websockify_tests():
    wsf = shutil.which("websockify")
    if wsf is None:
        tap.skip("websockify", "websockify missing (scripts/install-deps.sh)")
        return
    # websockify in front of a plain TCP echo (rill echo)
    eport, wport = free_port(), free_port()
    start([RILL, "echo", "tcp://127.0.0.1:%d" % eport])
    wait_port(eport)
    start(["/usr/bin/python3", wsf, "127.0.0.1:%d" % wport,
           "127.0.0.1:%d" % eport])
    if not wait_port(wport):
        tap.ok(False, "websockify started")
        return
    data = os.urandom(400000)
    # the reply is read while sending; stdin ends once all came back
    p = subprocess.Popen([RILL, "cat", "--idle-timeout", "1",
                          "ws+tcp://127.0.0.1:%d?subprotocol=binary"
                          % wport], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import threading
    out = bytearray()

    def reader():
        while len(out) < len(data):
            c = p.stdout.read1(65536)
            if not c:
                break
            out.extend(c)
    t = threading.Thread(target=reader)
    t.start()
    p.stdin.write(data)
    p.stdin.flush()
    t.join(30)
    p.stdin.close()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
    tap.ok(sha(bytes(out)) == sha(data),
           "websockify server: 400 KB echoed through it to rill cat",
           "%d bytes" % len(out))


def burst_test(port):
    """Many frames in one burst, so that they share the server's reads:
    small and large binary frames, fragmented messages with pings between
    their fragments, text whose UTF-8 characters straddle fragments, empty
    frames. The echo must return exactly the payload bytes, in order
    (rill unmasks received payload in place in the socket's read buffer
    and moves it over the headers between frames)."""
    rnd = random.Random(6455)
    s, head, _ = raw_connect(port, "/e")
    if b" 101 " not in head:
        tap.ok(False, "burst: handshake", head[:80])
        s.close()
        return
    out, want = [], []
    for i in range(400):
        kind = rnd.randrange(5)
        if kind == 0:
            n = rnd.choice([0, 1, 7, 8, 9, 125, 126, 3000, 70000])
            p = rnd.randbytes(n)
            out.append(frame(2, p))
            want.append(p)
        elif kind == 1:
            parts = [rnd.randbytes(rnd.randrange(0, 2000)) for _ in range(3)]
            out.append(frame(2, parts[0], fin=False))
            out.append(frame(9, b"ping %d" % i))
            out.append(frame(0, parts[1], fin=False))
            out.append(frame(10, b"unsolicited pong"))
            out.append(frame(0, parts[2]))
            want.extend(parts)
        elif kind == 2:
            t = ("\u00e9t\u00e9 \u20ac \U0001f600 " * rnd.randrange(1, 40)
                 ).encode()
            cut = sorted(rnd.sample(range(1, len(t)), 2))
            out.append(frame(1, t[:cut[0]], fin=False))
            out.append(frame(0, t[cut[0]:cut[1]], fin=False))
            out.append(frame(0, t[cut[1]:]))
            want.append(t)
        elif kind == 3:
            out.append(frame(9, rnd.randbytes(rnd.randrange(0, 126))))
        else:
            p = rnd.randbytes(rnd.randrange(1, 300))
            out.append(frame(2, p))
            want.append(p)
    want = b"".join(want)
    got = bytearray()
    err = []

    def reader():
        try:
            while len(got) < len(want):
                b0, op, payload = read_frame(s)
                if op in (0, 1, 2):
                    got.extend(payload)
                elif op == 8:
                    break
        except (EOFError, OSError) as e:
            err.append(e)

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(b"".join(out))
    t.join(30)
    s.close()
    tap.ok(bytes(got) == want,
           "burst of %d frames in shared reads: payload echoed exactly "
           "(%d bytes)" % (len(out), len(want)),
           "got %d bytes, %s" % (len(got), err or "different bytes"))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def ping_flood_test(port, proc):
    """An attacker's client: pings as fast as it can and never reads.
    Every ping asks for a pong, so a server that parses on while its
    pongs cannot leave queues them without limit (it grew by gigabytes
    before). The server must stop reading (the client's send blocks
    within a few megabytes), stay small, and, once the client reads,
    answer every ping and still carry data: nothing lost."""
    s, head, _ = raw_connect(port, "/r", rcvbuf=4096)
    if b" 101 " not in head:
        tap.ok(False, "ping flood: handshake", head[:80])
        s.close()
        return
    ping = frame(9, b"p" * 125)
    blob = ping * 4096
    r0 = rss_kb(proc.pid)
    s.settimeout(2)
    sent, limit, blocked = 0, 256 << 20, False
    while sent < limit:
        try:
            sent += s.send(blob[sent % len(blob) // len(ping) * len(ping):])
        except socket.timeout:
            blocked = True
            break
    grew = rss_kb(proc.pid) - r0
    # (48 MB: an ASan build's quarantine keeps the freed pongs' memory;
    # the release build grows under 1 MB, the unbounded queue by 440 MB)
    tap.ok(blocked and sent < 64 << 20 and grew < 48 << 10,
           "ping flood, client never reads: rill stops reading "
           "(the send %s after %.1f MB) and grows %d kB"
           % ("blocked" if blocked else "never blocked", sent / 1e6, grew))
    # Read now, while the last ping is finished and data sent behind
    # it: every ping gets its pong, and the data still flows.
    s.settimeout(20)
    rest = -sent % len(ping)
    pings = (sent + rest) // len(ping)
    data = os.urandom(1000)
    res = {"pongs": 0, "got": b""}

    def reader():
        try:
            while res["pongs"] < pings or len(res["got"]) < len(data):
                b0, op, payload = read_frame(s)
                if op == 10:
                    res["pongs"] += payload == b"p" * 125
                elif op in (0, 2):
                    res["got"] += payload
                elif op == 8:
                    break
        except (EOFError, OSError) as e:
            res["got"] += repr(e).encode()

    t = threading.Thread(target=reader)
    t.start()
    try:
        s.sendall((ping[len(ping) - rest:] if rest else b"") +
                  frame(2, data))
    except OSError:
        pass
    t.join(30)
    pongs, got = res["pongs"], res["got"]
    s.close()
    tap.ok(pongs == pings and got == data,
           "ping flood: all %d pings answered, then data echoed" % pings,
           "%d pongs, data %s" % (pongs, "ok" if got == data else got[:80]))


def serve_ws_limit_test(tport):
    """rill http serve --ws: an upgraded connection leaves the HTTP
    server (and its count), but its relay holds a --max-conns slot until
    it ends. Before, every WebSocket past the limit was upgraded and
    relayed too (100 clients on --max-conns 8: 100 relays, 200 fds)."""
    sport = free_port()
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ws_browser")
    start([RILL, "http", "serve", "-q", "--threads", "1", "--max-conns", "4",
           "--ws", "/s=tcp://127.0.0.1:%d" % tport,
           "tcp://127.0.0.1:%d" % sport, d])
    wait_port(sport)

    def upgrade(tries):
        # retried while wait_port's probe, or a relay closed just
        # before, may still hold its slot
        for _ in range(tries):
            try:
                s, head, _ = raw_connect(sport, "/s")
            except OSError:
                head, s = b"", None
            if b" 101 " in head:
                s.sendall(frame(2, b"hi"))
                try:
                    if read_frame(s)[2] == b"hi":
                        return s
                except (EOFError, OSError):
                    pass
            if s is not None:
                s.close()
            time.sleep(0.2)
        return None
    held = [upgrade(25) for _ in range(4)]
    tap.ok(all(held), "http serve --ws --max-conns 4: 4 WebSockets relayed",
           held)
    extra = 0
    for _ in range(20):
        try:
            s, head, _ = raw_connect(sport, "/s")
            extra += b" 101 " in head
            s.close()
        except OSError:
            pass
    tap.ok(extra == 0, "http serve --ws: 20 more while 4 are relayed: "
           "%d upgraded (max-conns holds)" % extra)
    held[0].close()
    again = upgrade(25)
    tap.ok(again is not None,
           "http serve --ws: a relay that ended gives its slot back")
    for s in held[1:] + [again]:
        if s is not None:
            s.close()


def trickle_idle_test(tport):
    """A peer that sends only what carries no payload (pings; a frame
    header a byte at a time) moves no bytes: rill relay --idle-timeout
    still ends it (the layer has no idle deadline of its own; its close
    drain is bounded by 2 s)."""
    rport = free_port()
    start([RILL, "relay", "--quiet", "--idle-timeout", "1",
           "ws+tcp://127.0.0.1:%d" % rport, "tcp://127.0.0.1:%d" % tport])
    wait_port(rport)
    for kind in ("pings", "a frame header"):
        s, head, _ = raw_connect(rport)
        s.settimeout(0.25)
        trickle = (frame(9, b"keep me") * 40 if kind == "pings"
                   else frame(2, b"x" * 200)[:6])
        step = len(frame(9, b"keep me")) if kind == "pings" else 1
        t0, off, dt = time.time(), 0, None
        try:
            while time.time() - t0 < 12:
                if off < len(trickle):
                    s.send(trickle[off:off + step])
                    off += step
                try:
                    if s.recv(4096) == b"":
                        break
                except socket.timeout:
                    pass
        except OSError:
            pass
        dt = time.time() - t0
        s.close()
        tap.ok(b" 101 " in head and dt < 8,
               "a peer trickling %s is ended by --idle-timeout 1 (%.1f s)"
               % (kind, dt))


def main():
    if not os.path.exists(RILL):
        tap.skip("all", "no rill binary in " + BUILD)
        return tap.done()
    # rill echo as a WebSocket server; another with a small max_message
    port, hport = free_port(), free_port()
    echo = start([RILL, "echo", "ws+tcp://127.0.0.1:%d?path=/e"
                  "&subprotocol=binary" % port])
    wait_port(port)
    hecho = start([RILL, "echo", "ws+tcp://127.0.0.1:%d?path=/e"
                   "&max_message=65536" % hport])
    wait_port(hport)
    # rill relay ws+tcp -> rill echo over plain tcp (websockify's job)
    tport, rport = free_port(), free_port()
    start([RILL, "echo", "tcp://127.0.0.1:%d" % tport])
    wait_port(tport)
    relay = start([RILL, "relay", "ws+tcp://127.0.0.1:%d?path=/r" % rport,
                   "tcp://127.0.0.1:%d" % tport])
    wait_port(rport)
    if websockets is None:
        tap.skip("python3-websockets", "not installed for /usr/bin/python3")
    else:
        run_py_client("websockets -> rill echo ws+tcp",
                      "ws://127.0.0.1:%d/e" % port, "binary", "binary")
        run_py_client("websockets -> rill relay ws+tcp -> tcp echo",
                      "ws://127.0.0.1:%d/r" % rport)
        run_py_server("rill cat -> websockets server (binary)")
        run_py_server("rill cat -> websockets server (text)", text=True)
        run_py_server("rill cat -> websockets server (fragmented, ping)",
                      frag=True, ping=True)
        run_py_server("rill cat -> websockets server (subprotocol)",
                      sub="binary")
        rc, err = run_py_server("rill cat -> websockets server closing 4003",
                                close_code=4003)
        tap.ok(rc == 1 and "4003" in err,
               "rill cat reports the peer's Close 4003 and fails", (rc, err))
    # rill http serve --ws: files and a WebSocket relay on one port
    sport = free_port()
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ws_browser")
    start([RILL, "http", "serve", "--ws", "/sock=tcp://127.0.0.1:%d" % tport,
           "tcp://127.0.0.1:%d" % sport, d])
    wait_port(sport)
    s = socket.create_connection(("127.0.0.1", sport), 5)
    s.sendall(b"GET /sock HTTP/1.1\r\nHost: x\r\n\r\n")
    r = s.recv(4096)
    s.close()
    tap.ok(r.startswith(b"HTTP/1.1 426 ") and b"Upgrade: websocket" in r,
           "http serve --ws: a plain GET of the path gets 426", r[:80])
    s = socket.create_connection(("127.0.0.1", sport), 5)
    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    r = s.recv(4096)
    s.close()
    tap.ok(r.startswith(b"HTTP/1.1 200 "), "http serve --ws: files still served",
           r[:60])
    if websockets is not None:
        run_py_client("websockets -> rill http serve --ws -> tcp echo",
                      "ws://127.0.0.1:%d/sock" % sport)
    serve_ws_limit_test(tport)
    trickle_idle_test(tport)
    burst_test(port)
    ping_flood_test(rport, relay)
    hostile_tests(hport)
    handshake_tests(hport)
    masked_server_frame_test()
    ping_timeout_test()
    node_tests(port)
    websockify_tests()
    tap.ok(echo.poll() is None and relay.poll() is None and
           hecho.poll() is None,
           "rill echo and rill relay survived everything")
    # the listener's handshake deadline (rill echo: the default 10 s)
    silent_client_test(hport, 10)
    for p in procs:
        stop(p)
    return tap.done()


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    sys.exit(rc)
