"""harness.py: what the server's integration suites share.

A suite is a Python file of `test_*` functions run in order by run(): each prints
"ok NAME (ms)", "not ok NAME (ms)" or "skip NAME: why" on stdout (the format of tests/check.h), and
the suite ends with "# SUITE: N passed, N failed, N skipped", which tests/run.sh adds up. A
failure's details go to stderr. ACCRUE_TEST_FILTER=a,b runs only the tests whose names contain a
word of it.

Server starts the real binary (ACCRUE_BIN; under ACCRUE_SERVE_WRAPPER, a tool such as valgrind, when
set) on a fresh database in a scratch directory, on a loopback port the kernel picks (--listen
127.0.0.1:0), and reads the port and the demo and admin API keys from its banner. Everything then
speaks real HTTP (requests) and real WebSocket (websockets).
"""
import asyncio
import json
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
import traceback

import requests
import websockets

BIN = os.path.abspath(os.environ.get("ACCRUE_BIN", "zig-out/bin/accrue"))
SCALE = float(os.environ.get("ACCRUE_TIME_SCALE", "1") or "1")


class Fail(Exception):
    pass


def check(cond, msg="check failed"):
    if not cond:
        raise Fail(msg)


def eq(got, want, what="value"):
    if got != want:
        raise Fail(f"{what}: got {got!r}, want {want!r}")


class Skip(Exception):
    pass


LIVE = []  # the servers of the test running now, for their logs when it fails


class Server:
    """One `accrue serve` process on a scratch database."""

    def __init__(self, args=(), agents=None, env=None, workdir=None, db=None):
        LIVE.append(self)
        self.dir = workdir or tempfile.mkdtemp(prefix="accrue-serve-")
        self.own_dir = workdir is None
        self.db = db or os.path.join(self.dir, "accrue.db")
        self.agents = dict(agents or {})
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.log = os.path.join(self.dir, "serve.log")
        self.author_key = None

    def accrue(self, *args, check=True, input=None):
        """Runs the accrue binary (a CLI command) against this server's database."""
        r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60 * SCALE, cwd=self.dir,
                           input=input, env=self.env)
        if check and r.returncode != 0:
            raise Fail(f"accrue {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def deploy(self, name, src, models=("test/echo", "test/upper"), datanets=(), version="1.0.0", limits=None,
               price_per_message=0, price_per_session=0):
        """Deploys an agent with `accrue deploy`, signed by this server's test author key."""
        if not self.author_key:
            self.author_key = os.path.join(self.dir, "author.key")
            self.author = self.accrue("keygen", "--out", self.author_key).stdout.split()[-1]
        script = os.path.join(self.dir, f"{name.replace('/', '_')}-{version}.lua")
        manifest = script[:-4] + ".json"
        with open(script, "w") as f:
            f.write(src)
        m = {"name": name, "version": version, "author": self.author, "models": list(models),
             "datanets": list(datanets), "price_per_message": price_per_message,
             "price_per_session": price_per_session, "description": f"test agent {name}"}
        if limits:
            m["limits"] = limits
        with open(manifest, "w") as f:
            json.dump(m, f)
        self.accrue("deploy", script, "--manifest", manifest, "--key", self.author_key, "--db", self.db)

    def start(self, timeout=10):
        self.logf = open(self.log, "ab")
        web = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runtime", "web")
        cmd = [BIN, "serve", "--listen", "127.0.0.1:0", "--db", self.db, "--web", web] + self.args
        # ACCRUE_SERVE_WRAPPER="valgrind -q --error-exitcode=99": the server under a tool.
        cmd = os.environ.get("ACCRUE_SERVE_WRAPPER", "").split() + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.logf, env=self.env, cwd=self.dir)
        self.banner = []
        deadline = time.time() + timeout * SCALE
        old = (self.__dict__.get("key"), self.__dict__.get("admin_key"))
        self.port = self.key = self.admin_key = None
        while time.time() < deadline and (self.port is None or self.key is None or self.admin_key is None):
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            self.banner.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            m = re.search(r"demo API key: (\S+)", line)
            if m:
                self.key = m.group(1)
            m = re.search(r"admin API key: (\S+)", line)
            if m:
                self.admin_key = m.group(1)
            if "API keys are shown once" in line:  # an old database: the keys from before
                self.key = self.key or old[0] or ""
                self.admin_key = self.admin_key or old[1] or ""
        if self.port is None or self.key is None:
            self.stop()
            raise Fail("server did not start: " + "".join(self.banner) + self.read_log())
        self.banner_text = "".join(self.banner)
        # The rest of stdout is drained by a thread-free trick: hand it to a file.
        self._drain = subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=self.logf)
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/sessions"
        for name, src in self.agents.items():
            self.deploy(name, src)
        return self

    def account(self, name, credit=0):
        """A new account (through the admin API) and its key."""
        r = self.post("/v1/accounts", {"name": name, "credit": credit}, key=self.admin_key)
        if r.status_code != 201:
            raise Fail(f"account {name}: {r.status_code} {r.text}")
        return r.json()["api_key"]

    def read_log(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stops the server with sig and returns its exit status."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout * SCALE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise Fail(f"server did not stop within {timeout} s after signal {sig}")
        finally:
            if getattr(self, "_drain", None):
                self._drain.wait()
            self.logf.close()
        self.proc = None
        return rc

    def close(self):
        self.last_log = self.read_log()
        if self.proc:
            try:
                self.stop(signal.SIGKILL)
            except Fail:
                pass
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.close()

    # HTTP
    def get(self, path, key=None, **kw):
        return requests.get(self.url + path, headers=self.auth(key), timeout=30 * SCALE, **kw)

    def post(self, path, body=None, key=None, raw=None, headers=None, **kw):
        h = self.auth(key)
        h.update(headers or {})
        if raw is not None:
            return requests.post(self.url + path, data=raw, headers=h, timeout=30 * SCALE, **kw)
        return requests.post(self.url + path, json=body, headers=h, timeout=30 * SCALE, **kw)

    def auth(self, key):
        k = self.key if key is None else key
        return {"Authorization": "Bearer " + k} if k else {}

    # WebSocket
    def connect(self, key=None, **kw):
        k = self.key if key is None else key
        headers = {"Authorization": "Bearer " + k} if k else {}
        return websockets.connect(self.ws_url, additional_headers=headers, max_size=None, open_timeout=10 * SCALE,
                                  **kw)


async def recv(ws, timeout=10):
    raw = await asyncio.wait_for(ws.recv(), timeout * SCALE)
    return json.loads(raw)


async def recv_until(ws, type_, timeout=10):
    """Frames up to and including the first of type_."""
    frames = []
    while True:
        f = await recv(ws, timeout)
        frames.append(f)
        if f.get("type") == type_:
            return frames


async def start_session(ws, agent, id_="s1", **extra):
    await ws.send(json.dumps({"type": "session.start", "id": id_, "agent": agent, **extra}))
    f = await recv(ws)
    return f


async def ask(ws, content, id_="m1"):
    """Sends a message and returns every frame of its run, through run.done."""
    await ws.send(json.dumps({"type": "message", "id": id_, "content": content}))
    return await recv_until(ws, "run.done")


def check_seqs(frames, start=None):
    seqs = [f["seq"] for f in frames]
    check(all(b == a + 1 for a, b in zip(seqs, seqs[1:])), f"seqs not consecutive: {seqs}")
    if start is not None:
        eq(seqs[0], start, "first seq")


def run(suite, tests):
    filt = [w for w in os.environ.get("ACCRUE_TEST_FILTER", "").split(",") if w]
    passed = failed = skipped = 0
    for fn in tests:
        name = fn.__name__
        if filt and not any(w in name for w in filt):
            continue
        t0 = time.monotonic()
        LIVE.clear()
        try:
            r = fn()
            if asyncio.iscoroutine(r):
                asyncio.run(r)
            ms = (time.monotonic() - t0) * 1000
            print(f"ok {name} ({ms:.1f} ms)", flush=True)
            passed += 1
        except Skip as e:
            print(f"skip {name}: {e}", flush=True)
            skipped += 1
        except BaseException as e:  # noqa: B902 - a test's failure of any kind is reported
            ms = (time.monotonic() - t0) * 1000
            sys.stderr.write(f"  FAIL {name}: {e!r}\n")
            if not isinstance(e, Fail):
                traceback.print_exc(file=sys.stderr)
            for srv in LIVE:  # what the servers said
                log = getattr(srv, "last_log", None) or srv.read_log()
                lines = log.splitlines()
                at = next((i for i, l in enumerate(lines) if "Sanitizer" in l or "runtime error" in l), None)
                tail = "\n".join(lines[at:at + 40] if at is not None else lines[-25:])
                if tail:
                    sys.stderr.write(f"  --- {srv.log} (last lines)\n{tail}\n")
            sys.stderr.flush()
            print(f"not ok {name} ({ms:.1f} ms)", flush=True)
            failed += 1
    print(f"# {suite}: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 0 if failed == 0 else 1


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def localhost_tls():
    """A self-signed certificate for the name localhost (not for 127.0.0.1): its path (what a
    client trusts through SSL_CERT_FILE) and a server-side ssl.SSLContext holding it."""
    import ssl
    d = tempfile.mkdtemp(prefix="accrue-tls-")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return cert, ctx


def serve_in_thread(handler, tls_context=None):
    """A Python HTTP server (TLS with tls_context) on a loopback port, serving from a thread."""
    import http.server
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls_context:
        httpd.socket = tls_context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def greedy_upstream(words=200, pause=0.005, first_pause=0):
    """An OpenAI-compatible upstream that ignores max_tokens: every answer is `words` words, "w0 w1
    ...". It reports usage (completion_tokens = words; prompt_tokens = 7), except for the upstream
    model named "greedy-silent". Streamed, it sends a word or two a delta, some split inside a word,
    `pause` s apart (the first after `first_pause` s), and counts in .streams the deltas each
    stream wrote before its reader left.
    Returns the running server (its .server_address, .shutdown()) and the full answer's text."""
    import http.server
    text = " ".join(f"w{i}" for i in range(words))

    class Greedy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            n = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(n))
            usage = None if body.get("model") == "greedy-silent" else {
                "prompt_tokens": 7, "completion_tokens": words, "total_tokens": words + 7}
            if not body.get("stream"):
                out = {"id": "x", "object": "chat.completion", "model": body.get("model"),
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}]}
                if usage:
                    out["usage"] = usage
                raw = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            self.end_headers()
            # pieces: "w0 ", "w1 w2 ", "w", "3 ", ... (a word split across deltas now and then)
            pieces, i = [], 0
            rest = text + ""
            while rest:
                k = (3, 6, 1, 4)[i % 4]
                pieces.append(rest[:k])
                rest = rest[k:]
                i += 1
            sent = 0
            try:
                self.wfile.flush()
                time.sleep(first_pause)
                for p in pieces:
                    chunk = {"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    self.wfile.flush()
                    sent += 1
                    time.sleep(pause)
                last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(b"data: " + json.dumps(last).encode() + b"\n\n")
                if usage and (body.get("stream_options") or {}).get("include_usage"):
                    self.wfile.write(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                sent = len(pieces)
            except OSError:
                pass
            self.server.streams.append((sent, len(pieces)))
            self.close_connection = True

        def log_message(self, *a):
            pass

    httpd = serve_in_thread(Greedy)
    httpd.streams = []
    return httpd, text
