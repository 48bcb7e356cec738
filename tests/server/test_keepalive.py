"""test_keepalive.py: calls to `http` models on kept-alive connections (runtime/server/keepalive.c,
http1.c), over plain TCP and again over TLS (each test a second time with an https:// upstream
whose certificate names localhost), against an upstream of raw sockets that counts the TCP connections it accepts and the
requests it reads, and answers as each test tells it: Content-Length, chunked (with extensions,
trailers and bytes split across writes), read-to-close, `Connection: close`, HTTP/1.0, 1xx interim
responses, a streamed answer made slowly, malformed answers, idle connections closed by the
server, and requests taken and never answered. Sequential calls share one connection, through
/v1/chat/completions, an agent in a WebSocket session and `accrue run`; concurrent calls open
several and then reuse them; a kept-alive connection that died is replaced once, the call charged
once; a malformed answer is a clear error that costs nothing, and `accrue ledger check` holds.
"""
import asyncio
import contextlib
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SCALE, Fail, Server, ask, check, eq, localhost_tls, run, start_session  # noqa: E402
from test_openai import register  # noqa: E402
from test_run_http import Local  # noqa: E402

import openai  # noqa: E402
import requests  # noqa: E402

PRICE = 10  # per call: the upstream's token counts change nothing
TLS = {}  # while a test runs over TLS: "cert" (the CA file the client trusts) and "ctx" (the server's)
RELAY = '''return { on_message = function(session, text) return models.call("pool/model", text).text end }'''


class Upstream:
    """An OpenAI-compatible upstream on raw sockets. For each request it calls
    answer(up, sock, conn_no, req_no_on_conn, request_json), which writes what it wants and returns
    True to keep the connection for another request, False to close it."""

    def __init__(self, answer, rcvbuf=None):
        self.answer = answer
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:  # the accepted sockets inherit it
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.tls = TLS.get("ctx")
        self.host = "localhost" if self.tls else "127.0.0.1"  # the certificate's name
        self.url = f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/v1"
        self.lock = threading.Lock()
        self.conns = 0          # TCP connections accepted
        self.requests = 0       # requests read
        self.peer_closed = 0    # connections the client closed (EOF between requests)
        self.heads = []         # each request's head (request line and headers)
        self.open = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                n = self.conns
                self.open.append(c)
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def _serve(self, c, n):
        buf, k = b"", 0
        try:
            if self.tls:
                c = self.tls.wrap_socket(c, server_side=True)
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        with self.lock:
                            self.peer_closed += 1
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode().split("\r\n")
                headers = {a.strip().lower(): b.strip() for a, b in (l.split(":", 1) for l in lines[1:])}
                size = int(headers.get("content-length", "0"))
                while len(buf) < size:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                body, buf = buf[:size], buf[size:]
                k += 1
                with self.lock:
                    self.requests += 1
                    self.heads.append((lines[0], headers))
                if not self.answer(self, c, n, k, json.loads(body)):
                    return
        except OSError:
            pass
        finally:
            c.close()

    def counts(self):
        with self.lock:
            return self.conns, self.requests

    def close(self):
        self.sock.close()
        with self.lock:
            for c in self.open:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def chat(req, suffix=""):
    """The answer to a chat request: its last message upper-cased."""
    text = req["messages"][-1]["content"].upper() + suffix
    return json.dumps({"id": "chatcmpl-up", "object": "chat.completion",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()


def by_length(sock, body, extra=b"", status=b"HTTP/1.1 200 OK"):
    sock.sendall(status + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
                 b"\r\n" + extra + b"\r\n" + body)


def length_answer(up, sock, n, k, req):
    by_length(sock, chat(req))
    return True


def chunked_answer(up, sock, n, k, req):
    """Three chunks (one with an extension), trailers, each piece its own write."""
    body = chat(req)
    a, b = body[:10], body[10:]
    pieces = [b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: Chunked\r\n\r\n",
              b"%x;name=value\r\n" % len(a), a, b"\r\n", b"%X\r\n" % len(b), b[:5], b[5:], b"\r\n",
              b"0\r\nX-Trailer: one\r\n", b"\r\n"]
    for p in pieces:
        sock.sendall(p)
        time.sleep(0.002)
    return True


def close_delimited_answer(up, sock, n, k, req):
    """HTTP/1.1 with neither length nor chunks: the body ends with the connection."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + chat(req))
    return False


def connection_close_answer(up, sock, n, k, req):
    by_length(sock, chat(req), b"Connection: close\r\n")
    return False


def http10_answer(up, sock, n, k, req):
    by_length(sock, chat(req), status=b"HTTP/1.0 200 OK")
    return False


def http10_keep_alive_answer(up, sock, n, k, req):
    by_length(sock, chat(req), b"Connection: keep-alive\r\n", status=b"HTTP/1.0 200 OK")
    return True


def interim_answer(up, sock, n, k, req):
    sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
    by_length(sock, chat(req))
    return True


@contextlib.contextmanager
def serving(answer, rcvbuf=None, **kw):
    """An Upstream answering with answer, and an accrue serve whose pool/model calls it."""
    up = Upstream(answer, rcvbuf)
    if "cert" in TLS:
        kw["env"] = {**kw.get("env", {}), "SSL_CERT_FILE": TLS["cert"]}
    try:
        with Server(**kw) as srv:
            register(srv, "pool/model", up.url, "up", price_per_call=PRICE)
            yield up, srv
            if srv.proc:
                stopped(srv)
    finally:
        up.close()


def stopped(srv):
    """Stops the server: it exits 0 (under a sanitizer, a leak or an error report makes it fail)."""
    eq(srv.stop(), 0, "the server's exit status")


def balance(srv):
    return srv.get("/v1/balance").json()["available"]


def metric(srv, name):
    for line in srv.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise Fail(f"no metric {name}")


def complete(srv, text, model="pool/model"):
    r = srv.post("/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": text}]})
    return r


def ledger_holds(srv):
    r = srv.accrue("ledger", "check", "--db", srv.db, check=False)
    eq(r.returncode, 0, f"ledger check: {r.stdout} {r.stderr}")


def test_sequential_calls_share_one_connection():
    with serving(length_answer) as (up, srv):
        b0 = balance(srv)
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.key, max_retries=0, timeout=30 * SCALE)
        for i in range(5):
            r = c.chat.completions.create(model="pool/model", messages=[{"role": "user", "content": f"call {i}"}])
            eq(r.choices[0].message.content, f"CALL {i}", "answer")
        eq(up.counts(), (1, 5), "(connections, requests) after 5 calls through /v1/chat/completions")
        # The request as sent: HTTP/1.1, the Host with its port, keep-alive, the body's length.
        line, h = up.heads[0]
        eq(line, "POST /v1/chat/completions HTTP/1.1", "request line")
        eq((h["host"], h["connection"], h["content-type"]), (f"{up.host}:{up.port}", "keep-alive", "application/json"),
           "headers")
        srv.deploy("relay", RELAY, models=["pool/model"])

        async def session():
            async with srv.connect() as ws:
                await start_session(ws, "relay")
                for i in range(3):
                    frames = await ask(ws, f"agent {i}", id_=f"m{i}")
                    eq(frames[-1]["status"], "completed", "run")
                    eq([f["content"] for f in frames if f["type"] == "message"], [f"AGENT {i}"], "answer")
        asyncio.run(session())
        eq(up.counts(), (1, 8), "and 3 more from an agent in a session")
        eq(balance(srv), b0 - 8 * PRICE, "each call charged once")
        eq((metric(srv, "accrue_upstream_connections_total"), metric(srv, "accrue_upstream_retries_total")), (1, 0),
           "metrics")


def test_an_answer_written_in_two_pieces_is_not_held_back():
    """An upstream that writes its answer's head and body apart with Nagle on (as Python's
    http.server does) sends the body only once the head is acknowledged: on a kept-alive connection
    a delayed ACK held every call 44 ms. Each call must come back well within that."""
    def two_pieces(up, sock, n, k, req):
        body = chat(req)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        sock.sendall(body)
        return True
    with serving(two_pieces) as (up, srv):
        s = requests.Session()
        times = []
        for i in range(8):
            t0 = time.monotonic()
            r = s.post(srv.url + "/v1/chat/completions", headers=srv.auth(None),
                       json={"model": "pool/model", "messages": [{"role": "user", "content": f"p{i}"}]})
            times.append(time.monotonic() - t0)
            eq(r.json()["choices"][0]["message"]["content"], f"P{i}", "answer")
        eq(up.counts(), (1, 8), "(connections, requests)")
        later = sorted(times[1:])
        check(later[len(later) // 2] < 0.025 * SCALE, f"calls on the kept-alive connection took {later} s")


def test_accrue_run_shares_one_connection():
    up = Upstream(length_answer)
    try:
        local = Local(env={"SSL_CERT_FILE": TLS["cert"]} if "cert" in TLS else None)
        local.register("pool/model", up.url, "up")
        local.script("thrice.lua", '''return { on_message = function(session, text)
            local out = {}
            for i = 1, 3 do out[i] = models.call("pool/model", text .. i).text end
            return table.concat(out, " ")
        end }''')
        r, o = local.run_json("thrice.lua", "x")
        eq(r.returncode, 0, r.stderr)
        eq(o["reply"], "X1 X2 X3", "answers")
        eq(up.counts(), (1, 3), "(connections, requests)")
        local.ledger_checks()
    finally:
        up.close()


def test_concurrent_calls_open_several_then_reuse_them():
    def slow(up, sock, n, k, req):
        time.sleep(0.3)
        by_length(sock, chat(req))
        return True
    with serving(slow) as (up, srv):
        b0 = balance(srv)

        def batch(tag):
            out = [None] * 4

            def one(i):
                out[i] = complete(srv, f"{tag}{i}")
            ts = [threading.Thread(target=one, args=(i,)) for i in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            for i, r in enumerate(out):
                eq(r.status_code, 200, r.text)
                eq(r.json()["choices"][0]["message"]["content"], f"{tag}{i}".upper(), "answer")
        batch("a")
        eq(up.counts(), (4, 4), "four calls at once: four connections")
        batch("b")
        eq(up.counts(), (4, 8), "the next four reuse them")
        eq(balance(srv), b0 - 8 * PRICE, "charged")


def test_a_large_request_goes_out_whole():
    """A 6 MB prompt to an upstream with a small receive buffer is more than the socket takes at
    once (4 MB at most here): the rest goes as the upstream reads; the connection is reused after."""
    def sizes(up, sock, n, k, req):
        by_length(sock, chat({"messages": [{"content": f"got {len(req['messages'][-1]['content'])}"}]}))
        return True
    with serving(sizes, rcvbuf=8192, args=["--max-body", "8000000"]) as (up, srv):
        big = "word " * 1200000
        for i in range(2):
            r = complete(srv, big)
            eq(r.status_code, 200, r.text[:300])
            eq(r.json()["choices"][0]["message"]["content"], f"GOT {len(big)}", "the upstream read it all")
        eq(up.counts(), (1, 2), "(connections, requests)")


def test_each_framing_of_an_answer():
    """Each answer's framing gives the same answer; only framed answers that allow it keep their
    connection."""
    cases = [(chunked_answer, True), (interim_answer, True), (http10_keep_alive_answer, True),
             (close_delimited_answer, False), (connection_close_answer, False), (http10_answer, False)]
    for answer, kept in cases:
        with serving(answer) as (up, srv):
            b0 = balance(srv)
            for i in range(3):
                r = complete(srv, f"framed {i}")
                eq(r.status_code, 200, f"{answer.__name__}: {r.text}")
                eq(r.json()["choices"][0]["message"]["content"], f"FRAMED {i}", answer.__name__)
            eq(up.counts(), (1 if kept else 3, 3), f"{answer.__name__}: (connections, requests)")
            eq(balance(srv), b0 - 3 * PRICE, f"{answer.__name__}: charged")


def test_streamed_answer_forwarded_while_it_is_made():
    def stream(up, sock, n, k, req):
        check(req.get("stream") is True, f"asked to stream: {req}")
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(4):
            ev = b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": f"w{i} "}}]}).encode() + b"\n\n"
            sock.sendall(b"%x\r\n%s\r\n" % (len(ev), ev))
            time.sleep(0.3)
        ev = b"data: " + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                                     "usage": {"prompt_tokens": 1, "completion_tokens": 4}}).encode() + b"\n\ndata: [DONE]\n\n"
        sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(ev), ev))
        return True
    with serving(stream) as (up, srv):
        for round_ in range(2):
            t0 = time.monotonic()
            seen = []
            with requests.post(srv.url + "/v1/chat/completions", stream=True, timeout=30 * SCALE,
                               headers=srv.auth(None),
                               json={"model": "pool/model", "stream": True,
                                     "messages": [{"role": "user", "content": "x"}]}) as r:
                eq(r.status_code, 200, "status")
                for line in r.iter_lines():
                    if line.startswith(b"data: {"):
                        d = json.loads(line[6:])["choices"]
                        if d and d[0]["delta"].get("content"):
                            seen.append((d[0]["delta"]["content"], time.monotonic() - t0))
            eq("".join(s for s, _ in seen), "w0 w1 w2 w3 ", "the streamed text")
            total = time.monotonic() - t0
            check(seen[0][1] < total - 0.6, f"the first piece came at {seen[0][1]:.2f} s of {total:.2f} s")
        eq(up.counts(), (1, 2), "both streams on one connection")


def test_server_closes_an_idle_connection():
    """The upstream closes each connection 50 ms after answering: the pool drops it when it
    notices, and the next call connects anew, no retry needed."""
    def then_close(up, sock, n, k, req):
        by_length(sock, chat(req))
        time.sleep(0.05)
        return False
    with serving(then_close) as (up, srv):
        b0 = balance(srv)
        for i in range(3):
            eq(complete(srv, f"c{i}").status_code, 200, "answered")
            time.sleep(0.3 * SCALE)
        eq(up.counts(), (3, 3), "(connections, requests)")
        eq(metric(srv, "accrue_upstream_retries_total"), 0, "no retry")
        eq(balance(srv), b0 - 3 * PRICE, "charged once each")


def test_keep_alive_timeout_from_the_server():
    """Keep-Alive: timeout=2: the pool closes the idle connection a second before the server would."""
    def short(up, sock, n, k, req):
        by_length(sock, chat(req), b"Keep-Alive: timeout=2, max=100\r\n")
        return True
    with serving(short) as (up, srv):
        eq(complete(srv, "a").status_code, 200, "answered")
        eq(complete(srv, "b").status_code, 200, "answered")
        eq(up.counts(), (1, 2), "kept for the second call")
        time.sleep(1.6)
        eq(up.peer_closed, 1, "closed by us after a second idle")
        eq(complete(srv, "c").status_code, 200, "answered")
        eq(up.counts(), (2, 3), "a new connection")


def test_a_dead_kept_alive_connection_is_replaced_once():
    """The upstream reads the second request on a connection and closes it without answering (what
    a server that timed the connection out meanwhile does): the call goes again on a new
    connection, once, and is charged once. If that one fails too, the call fails: no second retry,
    and a fresh connection's failure is never retried."""
    def drop_second(up, sock, n, k, req):
        if k == 2:
            return False
        by_length(sock, chat(req))
        return True
    with serving(drop_second) as (up, srv):
        b0 = balance(srv)
        eq(complete(srv, "one").status_code, 200, "first")
        r = complete(srv, "two")
        eq((r.status_code, r.json()["choices"][0]["message"]["content"]), (200, "TWO"), "answered after a retry")
        eq(up.counts(), (2, 3), "(connections, requests): the second call sent twice")
        eq(metric(srv, "accrue_upstream_retries_total"), 1, "one retry")
        eq(balance(srv), b0 - 2 * PRICE, "charged once a call")
        ledger_holds(srv)

    def answer_first_only(up, sock, n, k, req):
        if n > 1 or k > 1:
            return False
        by_length(sock, chat(req))
        return True
    with serving(answer_first_only) as (up, srv):
        b0 = balance(srv)
        eq(complete(srv, "one").status_code, 200, "first")
        r = complete(srv, "two")
        eq(r.status_code, 502, r.text)
        check("closed the connection without answering" in r.json()["error"]["message"], r.text)
        eq(up.counts(), (2, 3), "the reused connection, then one retry, no more")
        r = complete(srv, "three")
        eq(r.status_code, 502, r.text)
        eq(up.counts(), (3, 4), "a fresh connection's failure is not retried")
        eq(balance(srv), b0 - PRICE, "the failed calls cost nothing")
        ledger_holds(srv)


def test_malformed_answers_fail_clearly_and_cost_nothing():
    def bad_status(up, sock, n, k, req):
        sock.sendall(b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}")
        return True

    def bad_chunk(up, sock, n, k, req):
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
        return True

    def huge_header(up, sock, n, k, req):
        sock.sendall(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 1000) for i in range(40)))
        time.sleep(0.5)
        return False

    def short_body(up, sock, n, k, req):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"choices\"")
        return False
    cases = [(bad_status, 'a malformed status line "HTTP/1.1 2OO OK"'), (bad_chunk, 'a bad chunk size "zz"'),
             (huge_header, "headers larger than 32 KiB"),
             (short_body, "closed the connection before the answer was complete (90 bytes of its body missing)")]
    for answer, why in cases:
        with serving(answer) as (up, srv):
            b0 = balance(srv)
            for i in range(2):
                r = complete(srv, "x")
                eq(r.status_code, 502, f"{answer.__name__}: {r.text}")
                msg = r.json()["error"]["message"]
                check(up.host in msg and why in msg, f"{answer.__name__}: {msg}")
            eq(up.counts(), (2, 2), f"{answer.__name__}: its connection was not reused")
            eq(balance(srv), b0, f"{answer.__name__}: nothing charged")
            stopped(srv)
            ledger_holds(srv)


def test_timeout_and_cancel_close_a_kept_alive_connection():
    """A call that times out, and a call cancelled from its session, each close their connection;
    the next call works on a new one."""
    def slow_third(up, sock, n, k, req):
        if req["messages"][-1]["content"].startswith("slow"):
            time.sleep(3 * SCALE)
            return False
        by_length(sock, chat(req))
        return True
    # The timeout scales with the test (a TLS handshake under valgrind takes longer than 800 ms).
    with serving(slow_third, args=["--upstream-timeout", str(int(800 * SCALE))]) as (up, srv):
        b0 = balance(srv)
        eq(complete(srv, "fast").status_code, 200, "first")
        t0 = time.monotonic()
        r = complete(srv, "slow")
        eq((r.status_code, r.json()["error"]["code"]), (504, "timeout"), r.text)
        check(time.monotonic() - t0 < 2.5 * SCALE, "timed out in time")
        eq(complete(srv, "fast again").status_code, 200, "after the timeout")
        eq(up.counts(), (2, 3), "the timed-out connection was closed, not reused")
        srv.deploy("relay", RELAY, models=["pool/model"])

        async def session():
            async with srv.connect() as ws:
                await start_session(ws, "relay")
                frames = await ask(ws, "warm", id_="m0")
                eq(frames[-1]["status"], "completed", "a call first")
                await ws.send(json.dumps({"type": "message", "id": "m1", "content": "slow one"}))
                started = json.loads(await asyncio.wait_for(ws.recv(), 10 * SCALE))
                eq(started["type"], "run.started", "started")
                await asyncio.sleep(0.2)
                await ws.send(json.dumps({"type": "cancel", "id": "c1"}))
                while True:
                    f = json.loads(await asyncio.wait_for(ws.recv(), 10 * SCALE))
                    if f["type"] == "run.done":
                        eq(f["status"], "cancelled", "cancelled")
                        break
                frames = await ask(ws, "after", id_="m2")
                eq([f["content"] for f in frames if f["type"] == "message"], ["AFTER"], "answered after the cancel")
        asyncio.run(session())
        conns, reqs = up.counts()
        eq((conns, reqs), (3, 6), "the cancelled call's connection was closed, not reused")
        eq(balance(srv), b0 - 4 * PRICE, "the timed-out and the cancelled call cost nothing")
        stopped(srv)
        ledger_holds(srv)


def test_https_refusals_name_the_certificate():
    """A certificate for another name, and one nobody trusts: refused before a byte of the request
    goes, with the reason, at no charge; the refused connection is never kept."""
    with serving(length_answer) as (up, srv):
        b0 = balance(srv)
        register(srv, "pool/byip", f"https://127.0.0.1:{up.port}/v1", "up", price_per_call=PRICE)
        r = complete(srv, "x", model="pool/byip")
        eq(r.status_code, 502, r.text)
        msg = r.json()["error"]["message"]
        check("certificate of 127.0.0.1 is not accepted" in msg and "mismatch" in msg, msg)
        eq(complete(srv, "y").status_code, 200, "the right name still works")
        eq(up.counts()[1], 1, "the refused call sent no request")
        eq(balance(srv), b0 - PRICE, "the refusal cost nothing")
    saved = dict(TLS)
    TLS.pop("cert")  # the server trusts the system's store only: the self-signed certificate is unknown
    try:
        with serving(length_answer) as (up, srv):
            r = complete(srv, "x")
            eq(r.status_code, 502, r.text)
            msg = r.json()["error"]["message"]
            check("certificate of localhost is not accepted (self-signed certificate)" in msg, msg)
    finally:
        TLS.update(saved)


def over_tls(test):
    """test, with every upstream served over TLS and the server trusting its certificate."""
    def t():
        if not TLS.get("made"):
            TLS["made"] = localhost_tls()
        TLS["cert"], TLS["ctx"] = TLS["made"]
        try:
            test()
        finally:
            TLS.pop("cert", None)
            TLS.pop("ctx", None)
    t.__name__ = test.__name__ + "_over_tls"
    return t


if __name__ == "__main__":
    tests = [
        test_sequential_calls_share_one_connection,
        test_an_answer_written_in_two_pieces_is_not_held_back,
        test_accrue_run_shares_one_connection,
        test_concurrent_calls_open_several_then_reuse_them,
        test_a_large_request_goes_out_whole,
        test_each_framing_of_an_answer,
        test_streamed_answer_forwarded_while_it_is_made,
        test_server_closes_an_idle_connection,
        test_keep_alive_timeout_from_the_server,
        test_a_dead_kept_alive_connection_is_replaced_once,
        test_malformed_answers_fail_clearly_and_cost_nothing,
        test_timeout_and_cancel_close_a_kept_alive_connection,
    ]
    sys.exit(run("server_keepalive", tests + [over_tls(t) for t in tests + [test_https_refusals_name_the_certificate]]))
