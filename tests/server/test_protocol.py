"""test_protocol.py: WebSocket protocol edge cases over a raw socket (what the Autobahn suite checks,
which cannot run here: it needs Python 2 or Docker). Each test handshakes by hand, sends crafted
frames and reads the server's frames and close code byte by byte.

Cases lws 4.1.6 cannot do (ARCHITECTURE.md): it accepts unmasked client frames (the check came in
lws 5.0), and ends a connection that sent an oversize ping, or a close reason that is not UTF-8,
without a close frame of its own. Those tests say so (skips, or accepting either outcome), and the
server must stay sound after each.
"""
import base64
import json
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import SCALE, Fail, Server, Skip, check, eq, run  # noqa: E402

AGENTS = {"echo": 'return { on_message = function(session, text) return text end }'}


class Raw:
    def __init__(self, srv, key=None):
        self.s = socket.create_connection(("127.0.0.1", srv.port), timeout=5 * SCALE)
        k = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {k}\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Bearer {key or srv.key}\r\n\r\n")
        self.s.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            b = self.s.recv(1)
            if not b:
                raise Fail("closed during the handshake: " + head.decode(errors="replace"))
            head += b
        check(head.startswith(b"HTTP/1.1 101"), head.decode(errors="replace"))
        self.buf = b""

    def send(self, opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload) if length is None else length
        hdr = bytes([b0])
        m = 0x80 if mask else 0
        if n < 126:
            hdr += bytes([m | n])
        elif n < 65536:
            hdr += bytes([m | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([m | 127]) + struct.pack(">Q", n)
        if mask:
            key = os.urandom(4)
            hdr += key
            payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        self.s.sendall(hdr + payload)

    def text(self, data, **kw):
        self.send(1, data.encode() if isinstance(data, str) else data, **kw)

    def _read(self, n):
        while len(self.buf) < n:
            b = self.s.recv(65536)
            if not b:
                raise EOFError
            self.buf += b
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        """(opcode, payload) of the next server frame; raises EOFError when the socket ends."""
        b0, b1 = self._read(2)
        check(not b1 & 0x80, "server frames are not masked")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read(8))[0]
        return b0 & 0x0F, self._read(n)

    def close_code(self):
        """Reads until the server's close frame; its code (None when the socket ends without one)."""
        try:
            while True:
                op, p = self.frame()
                if op == 8:
                    return struct.unpack(">H", p[:2])[0] if len(p) >= 2 else 1005
        except (EOFError, ConnectionResetError):
            return None

    def json(self):
        while True:
            op, p = self.frame()
            if op == 1:
                return json.loads(p)

    def close(self):
        self.s.close()


def with_server(fn):
    def t():
        with Server(agents=AGENTS) as srv:
            fn(srv)
            # Whatever the test did, the server still serves.
            r = Raw(srv)
            r.text(json.dumps({"type": "session.start", "agent": "echo"}))
            eq(r.json()["type"], "session.ready", "server still sound")
            r.close()
    t.__name__ = fn.__name__
    return t


@with_server
def test_invalid_utf8_closes_1007(srv):
    r = Raw(srv)
    r.text(b'{"type":"message","content":"\xff\xfe"}')
    eq(r.close_code(), 1007, "invalid UTF-8")
    # Split across fragments: an invalid continuation in the second fragment.
    r = Raw(srv)
    r.send(1, b'{"x":"\xe2\x82', fin=False)
    r.send(0, b'\x41"}')
    eq(r.close_code(), 1007, "invalid UTF-8 across fragments")
    # A valid character split across fragments is fine.
    r = Raw(srv)
    r.send(1, b'{"type":"session.start","agent":"ec', fin=False)
    r.send(0, b'ho","id":"\xe2\x82', fin=False)
    r.send(0, b'\xac"}')
    f = r.json()
    eq((f["type"], f["reply_to"]), ("session.ready", "\u20ac"), "reassembled message")
    r.close()


@with_server
def test_control_frame_rules(srv):
    r = Raw(srv)
    r.send(9, b"hello")
    op, p = r.frame()
    eq((op, p), (10, b"hello"), "pong echoes the ping")
    r.send(9, b"x", fin=False)
    eq(r.close_code(), 1002, "fragmented ping")
    r = Raw(srv)
    r.send(1, b'{"a":1}', rsv=4)
    eq(r.close_code(), 1002, "reserved bit without an extension")
    r = Raw(srv)
    r.send(3, b"?")
    eq(r.close_code(), 1002, "unknown opcode")
    r = Raw(srv)
    r.send(0, b"orphan")
    eq(r.close_code(), 1002, "continuation with nothing to continue")
    r = Raw(srv)
    r.send(1, b'{"a":', fin=False)
    r.send(1, b'1}')
    eq(r.close_code(), 1002, "a new message inside a fragmented one")


@with_server
def test_close_codes(srv):
    for payload, want, what in [(struct.pack(">H", 1000), 1000, "normal close echoed"),
                                (struct.pack(">H", 3001) + b"app reason", 3001, "application code echoed"),
                                (b"\x03", 1002, "one-byte close payload"),
                                (struct.pack(">H", 999), 1002, "code below 1000"),
                                (struct.pack(">H", 1005), 1002, "1005 may not be sent"),
                                (struct.pack(">H", 2999), 1002, "reserved range")]:
        r = Raw(srv)
        r.send(8, payload)
        eq(r.close_code(), want, what)
        r.close()
    # A close reason that is not UTF-8: the connection is failed. lws 4.1.6 drops it without a close
    # frame of its own (RFC 6455 7.1.7: it SHOULD send 1007 first); either is accepted.
    r = Raw(srv)
    r.send(8, struct.pack(">H", 1000) + b"\xff")
    check(r.close_code() in (1007, None), "reason not UTF-8: failed")


@with_server
def test_oversize_message_by_header(srv):
    r = Raw(srv)
    r.send(1, b"{", length=10 << 20)  # announces 10 MiB, sends one byte
    eq(r.close_code(), 1009, "refused from the header alone")


@with_server
def test_unmasked_client_frame(srv):
    r = Raw(srv)
    r.text(json.dumps({"type": "session.start", "agent": "echo"}), mask=False)
    try:
        op, p = r.frame()
    except EOFError:
        raise Fail("connection dropped without a close frame")
    if op == 8:
        eq(struct.unpack(">H", p[:2])[0], 1002, "close code")
        return
    eq(json.loads(p)["type"], "session.ready", "the frame was taken as it came")
    raise Skip("lws 4.1.6 accepts unmasked client frames (RFC 6455 wants 1002; the check came in lws 5.0)")


@with_server
def test_oversize_ping(srv):
    r = Raw(srv)
    r.send(9, b"p" * 126)
    r.text(json.dumps({"type": "session.start", "agent": "echo"}))
    try:
        op, p = r.frame()
    except (EOFError, ConnectionResetError):
        raise Skip("lws 4.1.6 drops the connection on a ping over 125 bytes without a close frame "
                   "(RFC 6455 wants close 1002)")
    if op == 8:
        eq(struct.unpack(">H", p[:2])[0], 1002, "closed as a protocol error")
        return
    # lws 4.1.6 drops it, answers nothing to it, and the connection carries on.
    eq(op, 1, "the next frame is the session's")
    eq(json.loads(p)["type"], "session.ready", "connection still works")
    raise Skip("lws 4.1.6 drops a ping over 125 bytes without closing (RFC 6455 wants 1002)")


@with_server
def test_garbage_and_half_requests(srv):
    for junk in [b"\x00\x01\x02\x03 not http\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A" * 9000 + b"\r\n\r\n",
                 b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\n\r\n{"]:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5 * SCALE)
        try:  # the server may close on the first bad byte: whatever it does, it must stay up
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
        except OSError:
            pass
        s.close()
    # Upgrade without the key or with a wrong version.
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5 * SCALE)
    s.sendall(b"GET /v1/sessions HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer " + srv.key.encode() + b"\r\n\r\n")
    resp = s.recv(4096)
    check(not resp.startswith(b"HTTP/1.1 101"), "upgrade without Sec-WebSocket-Key refused")
    s.close()


if __name__ == "__main__":
    sys.exit(run("server_protocol", [
        test_invalid_utf8_closes_1007,
        test_control_frame_rules,
        test_close_codes,
        test_oversize_message_by_header,
        test_unmasked_client_frame,
        test_oversize_ping,
        test_garbage_and_half_requests,
    ]))
