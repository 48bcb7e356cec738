"""test_openai.py: the OpenAI-compatible endpoint with the official `openai` client, outbound calls
to `http` models (a second `accrue serve` as the upstream, over HTTP and over TLS with a name to
resolve), timeouts, and the HTTP API's errors for bad requests.
"""
import asyncio
import http.server
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (SCALE, Fail, Server, ask, check, eq, localhost_tls, recv, recv_until, run,  # noqa: E402
                     serve_in_thread, start_session)

import openai  # noqa: E402
import requests  # noqa: E402


def client(srv, key=None):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key or srv.key, max_retries=0, timeout=30 * SCALE)


def test_chat_completion_not_streamed():
    with Server() as srv:
        c = client(srv)
        r = c.chat.completions.create(model="test/upper", messages=[{"role": "user", "content": "hello there"}])
        eq(r.choices[0].message.content, "HELLO THERE", "content")
        eq(r.choices[0].message.role, "assistant", "role")
        eq(r.choices[0].finish_reason, "stop", "finish")
        eq(r.model, "test/upper", "model")
        check(r.id.startswith("chatcmpl-"), r.id)
        eq((r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens), (2, 2, 4), "usage")
        # The response id is the request id when the client gives none.
        raw = c.chat.completions.with_raw_response.create(model="test/echo", messages=[{"role": "user", "content": "x"}])
        eq(raw.headers["x-request-id"], raw.parse().id, "x-request-id")


def test_chat_completion_streamed_with_usage():
    with Server() as srv:
        c = client(srv)
        chunks = list(c.chat.completions.create(model="test/echo", stream=True,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "system", "content": "be brief"},
                                                           {"role": "user", "content": "one two three"}]))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        eq(text, "one two three", "streamed text")
        eq(chunks[-1].choices, [], "the usage chunk has no choices")
        eq(chunks[-1].usage.completion_tokens, 3, "usage in the last chunk")
        eq([ch.choices[0].finish_reason for ch in chunks if ch.choices][-1], "stop", "finish")
        eq(len({ch.id for ch in chunks}), 1, "one id")
        # Without include_usage, no usage chunk.
        chunks = list(c.chat.completions.create(model="test/echo", stream=True,
                                                 messages=[{"role": "user", "content": "hi"}]))
        check(all(ch.usage is None for ch in chunks), "no usage")


def test_request_id_kept():
    with Server() as srv:
        r = srv.post("/v1/chat/completions", {"model": "test/echo", "messages": [{"role": "user", "content": "x"}]},
                     headers={"X-Request-Id": "client-id-42"})
        eq(r.status_code, 200, r.text)
        eq(r.headers["x-request-id"], "client-id-42", "echoed")


def test_models_list():
    with Server() as srv:
        ids = [m.id for m in client(srv).models.list()]
        check("test/echo" in ids and "test/upper" in ids, ids)


def test_openai_errors():
    with Server() as srv:
        c = client(srv)
        try:
            c.chat.completions.create(model="no/such-model", messages=[{"role": "user", "content": "x"}])
            raise Fail("unknown model accepted")
        except openai.NotFoundError as e:
            eq(e.code, "not_found", "code")
            eq(e.body["type"], "invalid_request_error", "type")
        try:
            client(srv, key="acc_nope").chat.completions.create(model="test/echo", messages=[{"role": "user", "content": "x"}])
            raise Fail("bad key accepted")
        except openai.AuthenticationError as e:
            eq(e.code, "unauthorized", "code")
        try:
            c.chat.completions.create(model="test/echo", messages=[])
            raise Fail("empty messages accepted")
        except openai.BadRequestError as e:
            eq(e.body["param"], "messages", "param")
        for body, param in [({"messages": [{"role": "user", "content": "x"}]}, "model"),
                            ({"model": 3, "messages": []}, "model"),
                            ({"model": "test/echo", "messages": [{"role": "wizard", "content": "x"}]}, "messages"),
                            ({"model": "test/echo", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
                            ({"model": "test/echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": -5}, "max_tokens"),
                            ({"model": "test/echo", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature")]:
            r = srv.post("/v1/chat/completions", body)
            eq(r.status_code, 400, f"{body}: {r.text}")
            eq(r.json()["error"]["param"], param, f"param for {body}")
        r = srv.post("/v1/chat/completions", raw=b'{"model": "test/echo", "messages": [', headers={"Content-Type": "application/json"})
        eq(r.status_code, 400, r.text)
        check("not JSON" in r.json()["error"]["message"], r.text)


def test_http_api_errors():
    with Server(["--max-body", "1000"]) as srv:
        r = srv.get("/v1/nope")
        eq((r.status_code, r.json()["error"]["code"]), (404, "not_found"), "unknown route")
        check("/v1/nope" in r.json()["error"]["message"], r.text)
        r = requests.delete(srv.url + "/v1/chat/completions", timeout=10)
        eq(r.status_code, 405, "wrong method")
        eq(r.headers["allow"], "POST", "allow")
        eq(r.json()["error"]["code"], "method_not_allowed", "code")
        r = srv.post("/v1/chat/completions", raw=b"x" * 5000)
        eq((r.status_code, r.json()["error"]["code"]), (413, "payload_too_large"), "oversize")
        r = srv.post("/v1/chat/completions", raw=b"[1]")
        eq(r.status_code, 400, "not an object")
        eq(srv.get("/healthz").json()["status"], "ok", "healthz")
        m = srv.get("/metrics")
        check(m.headers["content-type"].startswith("text/plain; version=0.0.4"), m.headers["content-type"])
        check("accrue_http_errors_total" in m.text and "accrue_worker_queue_depth" in m.text, m.text[:300])
        doc = srv.get("/v1/openapi.json").json()
        check(doc["openapi"].startswith("3."), doc.get("openapi"))
        eq(srv.get("/").status_code, 200, "the web page")
        eq(srv.get("/../etc/passwd").status_code, 404, "no escape from the web folder")
        # Nothing above hurt the server.
        eq(srv.get("/healthz").status_code, 200, "still up")


# ---- outbound: a second accrue serve as the upstream -------------------------------------------

OWNER = "0x" + "ab" * 20


def register(srv, name, url, upstream="bench", env=None, **prices):
    body = {"name": name, "kind": "http", "url": url, "upstream": upstream, "owner": OWNER, **prices}
    if env:
        body["api_key_env"] = env
    r = srv.post("/v1/models", body, key=srv.admin_key)
    eq(r.status_code, 201, f"register {name}: {r.text}")


def test_outbound_http_model():
    with Server() as up:
        down = Server(env={"UPSTREAM_KEY": up.key})
        with down:
            register(down, "remote/upper", up.url + "/v1", "test/upper", "UPSTREAM_KEY", price_per_call=10,
                     price_per_1k_in=1000, price_per_1k_out=1000)
            register(down, "remote/named", f"http://localhost:{up.port}/v1", "test/echo", "UPSTREAM_KEY")
            register(down, "remote/nokey", up.url + "/v1", "test/echo")
            down.deploy("relay", '''return { on_message = function(session, text)
                local a = models.call("remote/upper", {prompt = text, stream = true})
                return " (" .. a.usage.completion_tokens .. " tokens)"
            end }''', models=["remote/upper"])
            down.deploy("plain", '''return { on_message = function(session, text)
                return models.call("remote/upper", text).text
            end }''', models=["remote/upper"])
            c = client(down)
            before = down.get("/v1/balance").json()["available"]
            raw = c.chat.completions.with_raw_response.create(
                model="remote/upper", messages=[{"role": "user", "content": "over there"}],
                extra_headers={"X-Request-Id": "relay-check-1"})
            r = raw.parse()
            eq(r.choices[0].message.content, "OVER THERE", "relayed")
            eq((r.usage.prompt_tokens, r.usage.completion_tokens), (2, 2), "usage from the upstream")
            eq(r.usage.model_extra["cost"], 14, "priced: 10 + 2 + 2")
            eq(raw.headers["x-request-id"], "relay-check-1", "request id kept")
            eq(down.get("/v1/balance").json()["available"], before - 14, "the account paid")
            ev = down.get("/v1/usage/" + r.usage.model_extra["call"]).json()
            eq((ev["request_id"], ev["cost"], ev["state"]), ("relay-check-1", 14, "posted"), "usage event")
            check(sum(l["amount"] for l in ev["lines"]) == 14, f"lines add up: {ev['lines']}")
            chunks = list(c.chat.completions.create(model="remote/upper", stream=True,
                                                     stream_options={"include_usage": True},
                                                     messages=[{"role": "user", "content": "a b c"}]))
            eq("".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices), "A B C", "streamed")
            eq(chunks[-1].usage.completion_tokens, 3, "streamed usage")
            # A host name, resolved off the loop.
            r = c.chat.completions.create(model="remote/named", messages=[{"role": "user", "content": "by name"}])
            eq(r.choices[0].message.content, "by name", "by name")
            # The upstream refuses a call without its key: the error says so, nothing is charged.
            b0 = down.get("/v1/balance").json()["available"]
            try:
                c.chat.completions.create(model="remote/nokey", messages=[{"role": "user", "content": "x"}])
                raise Fail("upstream without key")
            except openai.APIStatusError as e:
                eq(e.status_code, 502, "bad gateway")
                check("401" in e.message, e.message)
            eq(down.get("/v1/balance").json()["available"], b0, "a failed call costs nothing")

            async def sessions():
                async with down.connect() as ws:
                    await start_session(ws, "relay")
                    frames = await ask(ws, "streamed words")
                    deltas = "".join(f["text"] for f in frames if f["type"] == "delta")
                    eq(deltas, "STREAMED WORDS", "model output streamed as deltas")
                    eq(frames[-3]["content"], "STREAMED WORDS (2 tokens)", "answer")
                    usage = frames[-2]
                    eq((usage["calls"][0]["name"], usage["calls"][0]["cost"]), ("remote/upper", 14), "usage")
                async with down.connect() as ws:
                    await start_session(ws, "plain")
                    frames = await ask(ws, "quiet")
                    eq(frames[-3]["content"], "QUIET", "answer")
                    check(not any(f["type"] == "delta" for f in frames), "no deltas without stream")
            asyncio.run(sessions())
            m = down.get("/metrics").text
            check("accrue_upstream_requests_total 0" not in m, "upstream requests counted")


class SlowHandler(http.server.BaseHTTPRequestHandler):
    """An upstream that answers after `delay` seconds (or streams slowly)."""
    delay = 5.0

    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(n))
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            for i in range(50):
                chunk = {"choices": [{"index": 0, "delta": {"content": f"w{i} "}}]}
                try:
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.1)
            self.wfile.write(b"data: [DONE]\n\n")
            return
        time.sleep(self.delay)
        out = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "late"}}],
                          "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()
        try:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        except OSError:
            pass

    def log_message(self, *a):
        pass


def test_outbound_timeouts_and_failures():
    slow = serve_in_thread(SlowHandler)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there
    try:
        srv = Server(["--upstream-connect-timeout", "700", "--upstream-timeout", "1500"])
        with srv:
            register(srv, "slow/model", f"http://127.0.0.1:{slow.server_address[1]}/v1")
            register(srv, "dead/model", f"http://127.0.0.1:{dead_port}/v1")
            register(srv, "nowhere/model", "http://nonexistent.invalid/v1")
            c = client(srv)
            t0 = time.monotonic()
            try:
                c.chat.completions.create(model="slow/model", messages=[{"role": "user", "content": "x"}])
                raise Fail("slow upstream answered")
            except openai.APIStatusError as e:
                eq((e.status_code, e.code), (504, "timeout"), "timeout")
            check(time.monotonic() - t0 < 3 * SCALE, "timed out in time")
            for model in ("dead/model", "nowhere/model"):
                try:
                    c.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
                    raise Fail(f"{model} answered")
                except openai.APIStatusError as e:
                    eq((e.status_code, e.code), (502, "upstream_error"), model)
            # A client that leaves mid-stream: the upstream call is cancelled, the server is fine.
            with requests.post(srv.url + "/v1/chat/completions", stream=True, timeout=10,
                               headers=srv.auth(None),
                               json={"model": "slow/model", "stream": True,
                                     "messages": [{"role": "user", "content": "x"}]}) as r:
                for line in r.iter_lines():
                    if line.startswith(b"data:") and b"w2" in line:
                        break
            eq(srv.get("/healthz").status_code, 200, "up after the client left")
    finally:
        slow.shutdown()


class SlowerHandler(SlowHandler):
    delay = 0.6


def test_run_waiting_on_an_upstream_is_announced_at_once():
    """A run's first frame waits for company while its only wait is a ledger commit, but a call to
    an http model may take seconds: run.started goes out when that call starts, not with the
    answer or at the server's next tick (every 250 ms)."""
    slow = serve_in_thread(SlowerHandler)
    try:
        with Server() as srv:
            register(srv, "slow/model", f"http://127.0.0.1:{slow.server_address[1]}/v1")
            srv.deploy("waiter", """return { on_message = function(session, text)
                return models.call("slow/model", {prompt = text}).text end }""", models=["slow/model"])

            async def t():
                async with srv.connect() as ws:
                    await start_session(ws, "waiter")
                    for i in range(3):
                        t0 = time.monotonic()
                        await ws.send(json.dumps({"type": "message", "id": f"m{i}", "content": "x"}))
                        first = await recv(ws)
                        eq(first["type"], "run.started", "first frame")
                        waited = time.monotonic() - t0
                        check(waited < 0.1 * SCALE, f"run.started came {waited:.3f} s after the message")
                        frames = await recv_until(ws, "run.done", timeout=10 * SCALE)
                        eq(frames[-1]["status"], "completed", "done")
                        eq([f["content"] for f in frames if f["type"] == "message"], ["late"], "the answer")
                        check(time.monotonic() - t0 >= 0.55, "the answer took the upstream's time")
            asyncio.run(t())
    finally:
        slow.shutdown()


def test_outbound_tls_with_a_name():
    cert, ctx = localhost_tls()

    class Fast(SlowHandler):
        delay = 0

    tls = serve_in_thread(Fast, ctx)
    try:
        port = tls.server_address[1]
        srv = Server(env={"SSL_CERT_FILE": cert})
        with srv:
            register(srv, "tls/model", f"https://localhost:{port}/v1")
            register(srv, "tls/byip", f"https://127.0.0.1:{port}/v1")
            c = client(srv)
            r = c.chat.completions.create(model="tls/model", messages=[{"role": "user", "content": "x"}])
            eq(r.choices[0].message.content, "late", "answer over TLS")
            # The certificate names localhost, not 127.0.0.1: verification refuses it.
            try:
                c.chat.completions.create(model="tls/byip", messages=[{"role": "user", "content": "x"}])
                raise Fail("certificate for another name accepted")
            except openai.APIStatusError as e:
                eq(e.status_code, 502, "refused")
        # Without the CA the same call fails: the certificate is really checked.
        srv = Server()
        with srv:
            register(srv, "tls/model", f"https://localhost:{port}/v1")
            try:
                client(srv).chat.completions.create(model="tls/model", messages=[{"role": "user", "content": "x"}])
                raise Fail("untrusted certificate accepted")
            except openai.APIStatusError as e:
                eq(e.status_code, 502, "refused")
    finally:
        tls.shutdown()


def test_lua_model():
    """A lua model answers on the OpenAI endpoint and to an agent in a session, each call charged;
    one that fails (its script runs past its instruction limit) costs nothing."""
    with Server() as srv:
        scripts = {
            "lua/shout": """return { on_message = function(session, req)
                local r = json.decode(req)
                return r.messages[#r.messages].content:upper()
            end }""",
            "lua/spin": "return { on_message = function(session, req) while true do end end }",
        }
        for name, src in scripts.items():
            path = os.path.join(srv.dir, name.replace("/", "_") + ".lua")
            with open(path, "w") as f:
                f.write(src)
            srv.accrue("model", "register", name, "--kind", "lua", "--script", path, "--owner", OWNER,
                       "--price-per-call", "10", "--price-per-1k-in", "1000", "--price-per-1k-out", "1000",
                       "--db", srv.db)
        c = client(srv)
        before = srv.get("/v1/balance").json()["available"]
        r = c.chat.completions.create(model="lua/shout", messages=[{"role": "user", "content": "over there"}])
        eq(r.choices[0].message.content, "OVER THERE", "answered")
        eq((r.usage.prompt_tokens, r.usage.completion_tokens), (2, 2), "usage")
        eq(r.usage.model_extra["cost"], 14, "priced: 10 + 2 + 2")
        eq(srv.get("/v1/balance").json()["available"], before - 14, "the account paid")
        try:
            c.chat.completions.create(model="lua/spin", messages=[{"role": "user", "content": "x"}])
            raise Fail("a script that never ends answered")
        except openai.APIStatusError as e:
            # the instruction limit; under a sanitizer the time limit may come first
            check("model 'lua/spin': the script hit the instruction limit" in e.message
                  or "model 'lua/spin': the script hit the time limit" in e.message, e.message)
        eq(srv.get("/v1/balance").json()["available"], before - 14, "a failed call costs nothing")
        srv.deploy("shouter", """return { on_message = function(session, text)
            return models.call("lua/shout", { messages = { { role = "user", content = text } } }).text
        end }""", models=["lua/shout"])

        async def sessions():
            async with srv.connect() as ws:
                await start_session(ws, "shouter")
                frames = await ask(ws, "quiet words")
                eq(frames[-3]["content"], "QUIET WORDS", "answer")
        asyncio.run(sessions())
        eq(srv.get("/v1/balance").json()["available"], before - 28, "the agent's call paid too")


if __name__ == "__main__":
    sys.exit(run("server_openai", [
        test_chat_completion_not_streamed,
        test_chat_completion_streamed_with_usage,
        test_request_id_kept,
        test_models_list,
        test_openai_errors,
        test_http_api_errors,
        test_outbound_http_model,
        test_outbound_timeouts_and_failures,
        test_run_waiting_on_an_upstream_is_announced_at_once,
        test_outbound_tls_with_a_name,
        test_lua_model,
    ]))
