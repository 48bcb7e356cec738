"""test_run_http.py: `accrue run` calling `http` models, against a real upstream (a second
`accrue serve`, its built-in n-gram model), a closed port, a host name that does not resolve, an
upstream that accepts and never answers, one that answers an error status and one that answers
something that is not a chat completion. Each call is metered as in the server: reserved, sent,
counted from the upstream's usage, attributed, booked; each failure is an error the agent catches,
costs nothing, and the ledger checks afterwards.
"""
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BIN, SCALE, Fail, Server, check, eq, greedy_upstream, localhost_tls, run,  # noqa: E402
                     serve_in_thread)

import requests  # noqa: E402

OWNER = "0x" + "ab" * 20


class Local:
    """accrue run's side: a registry file of its own (the demo registry, seeded by a first run)."""

    def __init__(self, env=None):
        self.dir = tempfile.mkdtemp(prefix="accrue-run-http-")
        self.db = os.path.join(self.dir, "run.db")
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.script("seed.lua", 'return { on_message = function() return "seeded" end }')
        self.accrue("run", "seed.lua", "--db", self.db, "--input", "x")

    def accrue(self, *args, check=True):
        r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60 * SCALE, cwd=self.dir,
                           env=self.env)
        if check and r.returncode != 0:
            raise Fail(f"accrue {' '.join(args)}: exit {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}")
        return r

    def script(self, name, src):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(src)
        return path

    def register(self, name, url, upstream="x", *extra):
        self.accrue("model", "register", name, "--kind", "http", "--url", url, "--upstream", upstream,
                    "--owner", OWNER, "--price-per-call", "10", "--price-per-1k-in", "1000",
                    "--price-per-1k-out", "1000", *extra, "--db", self.db)

    def run_json(self, target, text, *extra):
        r = self.accrue("run", target, "--db", self.db, "--input", text, "--json", *extra, check=False)
        try:
            return r, json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise Fail(f"accrue run {target}: exit {r.returncode}, not JSON: {r.stdout!r} {r.stderr!r}")

    def available(self, account="demo"):
        return json.loads(self.accrue("balance", account, "--db", self.db, "--json").stdout)["available"]

    def ledger_checks(self):
        r = self.accrue("ledger", "check", "--db", self.db, check=False)
        eq(r.returncode, 0, f"ledger check: {r.stdout} {r.stderr}")


CATCHER = '''return { on_message = function(session, text)
    local ok, e = pcall(models.call, text, {prompt = "anything at all", max_tokens = 8})
    if ok then return "answered: " .. e.text end
    return "caught: " .. tostring(e)
end }'''


def test_run_calls_an_http_model():
    with Server() as up:
        local = Local(env={"UPSTREAM_KEY": up.key})
        local.register("remote/ngram", up.url + "/v1", "demo/orchard-ngram", "--api-key-env", "UPSTREAM_KEY",
                       "--lineage", "demo/orchard", "--owner-share-bps", "3000")
        prompt = "what grows on vines"
        # What the upstream itself answers to the same request (its model is deterministic).
        d = requests.post(up.url + "/v1/chat/completions", headers={"Authorization": "Bearer " + up.key},
                          json={"model": "demo/orchard-ngram", "max_tokens": 24,
                                "messages": [{"role": "user", "content": prompt}]}, timeout=30 * SCALE).json()
        want = d["choices"][0]["message"]["content"]
        check(len(want) > 20, f"the upstream answers: {d}")
        local.script("relay.lua", '''return { on_message = function(session, text)
            local a = models.call("remote/ngram", {messages = {{role = "user", content = text}}, max_tokens = 24})
            return a.text
        end }''')
        before = local.available()
        r, o = local.run_json("relay.lua", prompt)
        eq(r.returncode, 0, f"exit: {r.stderr}")
        eq(o["reply"], want, "the reply is the upstream's text")
        eq(len(o["calls"]), 1, f"one call: {o['calls']}")
        c = o["calls"][0]
        eq((c["name"], c["status"], c["resource"]), ("remote/ngram", "ok", "model"), "the call")
        u = d["usage"]
        eq((c["units_in"], c["units_out"]), (u["prompt_tokens"], u["completion_tokens"]), "the upstream's usage")
        eq(c["cost"], 10 + u["prompt_tokens"] + u["completion_tokens"], "priced: per call + per token")
        eq(sum(l["amount"] for l in c["lines"]), c["cost"], f"the lines add up: {c['lines']}")
        roles = {l["role"] for l in c["lines"]}
        check("owner" in roles, f"the owner is paid: {c['lines']}")
        check("span" in roles, f"copied spans pay the datanet's contributors: {c['lines']}")
        eq(o["cost"], c["cost"], "the run's cost")
        eq(local.available(), before - c["cost"], "the payer paid exactly the cost")
        eq(o["available"], before - c["cost"], "the receipt's balance")
        # The usage event, as accrue usage lists it and explains it.
        ev = json.loads(local.accrue("usage", "--call", c["call"], "--db", local.db, "--json").stdout)
        eq((ev["cost"], ev["state"], ev["resource"], ev["name"]), (c["cost"], "posted", "model", "remote/ngram"), f"the usage event: {ev}")
        listed = local.accrue("usage", "--db", local.db, "--limit", "5").stdout
        check(c["call"] in listed and "remote/ngram" in listed, listed)
        local.ledger_checks()
        # The text receipt names the call, its cost and its payees.
        r = local.accrue("run", "relay.lua", "--db", local.db, "--input", prompt)
        check(r.stdout.startswith(want + "\n"), r.stdout)
        check("--- usage: 1 metered call" in r.stdout and "remote/ngram" in r.stdout and OWNER.lower() in
              r.stdout.lower(), r.stdout)
        # A deployed agent whose manifest lists the model, run by name.
        key = os.path.join(local.dir, "author.key")
        addr = local.accrue("keygen", "--out", key).stdout.split()[-1]
        src = local.script("relayer.lua", '''return { on_message = function(session, text)
            return models.call("remote/ngram", text).text
        end }''')
        manifest = os.path.join(local.dir, "relayer.json")
        with open(manifest, "w") as f:
            json.dump({"name": "relayer", "version": "1.0.0", "author": addr, "models": ["remote/ngram"],
                       "datanets": [], "description": "relays to an http model"}, f)
        local.accrue("deploy", src, "--manifest", manifest, "--key", key, "--db", local.db)
        r, o = local.run_json("relayer", "grapes")
        eq(r.returncode, 0, f"exit: {r.stderr}")
        check(o["reply"] and o["calls"][0]["status"] == "ok", o)
        local.ledger_checks()
        # The upstream's own meter saw the calls too (its demo account paid it).
        check(up.get("/v1/balance").json()["available"] < 100_000_000, "the upstream charged its caller")


def reply(handler, status, body):
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class Silent(http.server.BaseHTTPRequestHandler):
    """Reads the request and never answers (until the test ends)."""
    hold = threading.Event()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.hold.wait(20)

    def log_message(self, *a):
        pass


class NotChat(http.server.BaseHTTPRequestHandler):
    """Answers 200 with a body that is not a chat completion, or 503 for /bad/."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        status, body = (503, b'{"error":{"message":"overloaded"}}') if self.path.startswith("/busy/") \
            else (200, b"this is { not json")
        reply(self, status, body)

    def log_message(self, *a):
        pass


def test_run_http_failures_cost_nothing():
    silent, notchat = serve_in_thread(Silent), serve_in_thread(NotChat)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    try:
        local = Local()
        local.register("dead/model", f"http://127.0.0.1:{closed_port}/v1")
        local.register("slow/model", f"http://127.0.0.1:{silent.server_address[1]}/v1")
        local.register("nowhere/model", "http://nonexistent.invalid/v1")
        local.register("garbled/model", f"http://127.0.0.1:{notchat.server_address[1]}/v1")
        local.register("busy/model", f"http://127.0.0.1:{notchat.server_address[1]}/busy/v1")
        local.script("catch.lua", CATCHER)
        before = local.available()
        want = {
            "dead/model": "cannot reach 127.0.0.1",
            "slow/model": "timeout: 127.0.0.1 did not finish within the time limit",
            "nowhere/model": "cannot resolve nonexistent.invalid",
            "garbled/model": "answered without choices[0].message.content",
            "busy/model": "its endpoint answered 503: overloaded",
        }
        for model, cause in want.items():
            t0 = time.monotonic()
            r, o = local.run_json("catch.lua", model, "--upstream-timeout", "700")
            took = time.monotonic() - t0
            eq(r.returncode, 0, f"{model}: the agent caught it: {r.stderr}")
            check(o["reply"].startswith(f"caught: models.call: upstream: model '{model}'") and cause in o["reply"],
                  f"{model}: {o['reply']!r}")
            c = o["calls"][0]
            eq((c["status"], c["cost"], o["cost"]), ("upstream", 0, 0), f"{model}: not charged")
            check(cause in c["error"], f"{model}: the receipt says why: {c}")
            check(took < 5 * SCALE, f"{model}: took {took:.1f} s")
            if model == "slow/model":
                check(took >= 0.6, f"the timeout was waited for: {took:.2f} s")
        eq(local.available(), before, "nothing was charged")
        pending = json.loads(local.accrue("balance", "demo", "--db", local.db, "--json").stdout)["pending"]
        eq(pending, 0, "no reservation left pending")
        local.ledger_checks()
        # The turn's own time limit bounds a call too: the turn fails, nothing is charged.
        r = local.accrue("run", "catch.lua", "--db", local.db, "--input", "slow/model", "--time-limit", "500",
                         check=False)
        eq(r.returncode, 1, f"the turn failed: {r.stdout} {r.stderr}")
        check("time limit exceeded" in r.stderr, r.stderr)
        eq(local.available(), before, "nothing was charged")
        local.ledger_checks()
        r = local.accrue("run", "catch.lua", "--db", local.db, "--input", "slow/model", "--upstream-timeout", "0",
                         check=False)
        eq(r.returncode, 2, "a zero timeout is a usage error")
    finally:
        Silent.hold.set()
        silent.shutdown()
        notchat.shutdown()


def test_run_https_with_a_name():
    """Over TLS: a host name resolved and its certificate checked against the name."""
    cert, ctx = localhost_tls()

    class Chat(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            req = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            text = req["messages"][-1]["content"][::-1]
            out = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                           "finish_reason": "stop"}]}).encode()  # no usage: we count
            reply(self, 200, out)

        def log_message(self, *a):
            pass

    tls = serve_in_thread(Chat, ctx)
    try:
        port = tls.server_address[1]
        local = Local(env={"SSL_CERT_FILE": cert})
        local.register("tls/model", f"https://localhost:{port}/v1")
        local.register("tls/byip", f"https://127.0.0.1:{port}/v1")
        local.script("catch.lua", CATCHER)
        before = local.available()
        r, o = local.run_json("catch.lua", "tls/model")
        eq(o["reply"], "answered: " + "anything at all"[::-1], f"over TLS: {r.stderr}")
        c = o["calls"][0]
        # No usage reported: our tokenizer counts the output (3 words), the prompt bound stands in.
        eq((c["status"], c["units_out"]), ("ok", 3), f"counted by us: {c}")
        eq(c["cost"], 10 + c["units_in"] + c["units_out"], f"priced: {c}")
        eq(local.available(), before - c["cost"], "paid")
        # The certificate names localhost, not 127.0.0.1: refused, and free.
        r, o = local.run_json("catch.lua", "tls/byip")
        check(o["reply"].startswith("caught: models.call: upstream: model 'tls/byip'"), o["reply"])
        eq(o["cost"], 0, "a refused certificate costs nothing")
        # Without the CA the certificate is not trusted.
        local.env.pop("SSL_CERT_FILE")
        r, o = local.run_json("catch.lua", "tls/model")
        check(o["reply"].startswith("caught: models.call: upstream: model 'tls/model'"), o["reply"])
        eq(local.available(), before - c["cost"], "nothing more was charged")
        local.ledger_checks()
    finally:
        tls.shutdown()


def test_run_gets_and_pays_for_max_tokens_only():
    """An upstream that ignores max_tokens: the agent gets max_tokens of its answer (finish
    "length") and pays for that, as the receipt, the usage event and the balance say."""
    up, _ = greedy_upstream()
    try:
        local = Local()
        port = up.server_address[1]
        local.register("greedy/talker", f"http://127.0.0.1:{port}/v1", "greedy")
        local.register("greedy/silent", f"http://127.0.0.1:{port}/v1", "greedy-silent")
        local.script("greedy.lua", '''return { on_message = function(session, text)
            local a = models.call(text, {prompt = "say a great deal", max_tokens = 20})
            return a.finish_reason .. " " .. a.usage.completion_tokens .. "|" .. a.text
        end }''')
        want = " ".join(f"w{i}" for i in range(20))
        for model, prompt in (("greedy/talker", 7), ("greedy/silent", 4)):
            before = local.available()
            r, o = local.run_json("greedy.lua", model)
            eq(r.returncode, 0, f"{model}: exit: {r.stderr}")
            eq(o["reply"], "length 20|" + want, f"{model}: cut at max_tokens")
            c = o["calls"][0]
            eq((c["status"], c["units_in"], c["units_out"], c["cost"]), ("ok", prompt, 20, 10 + prompt + 20),
               f"{model}: charged for what was passed on: {c}")
            eq(local.available(), before - c["cost"], f"{model}: paid")
            ev = json.loads(local.accrue("usage", "--call", c["call"], "--db", local.db, "--json").stdout)
            eq((ev["cost"], ev["units_out"]), (c["cost"], 20), f"{model}: the usage event: {ev}")
            check(ev["cost"] <= ev["reserved"], f"within the reservation: {ev}")
        local.ledger_checks()
    finally:
        up.shutdown()


if __name__ == "__main__":
    sys.exit(run("server_run_http", [
        test_run_calls_an_http_model,
        test_run_http_failures_cost_nothing,
        test_run_https_with_a_name,
        test_run_gets_and_pays_for_max_tokens_only,
    ]))
