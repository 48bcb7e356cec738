"""test_api.py: the HTTP API through the real binary: the marketplace (list, search, tag, sort,
pages, one agent), deploying over HTTP with a signature made by `accrue sign`, models, datanets
(create, contribute a signed record, review, records, a metered query), accounts (create, top up,
revoke), balances, usage, who may call what, and the errors for bad requests.
"""
import json
import os
import sys

from eth_hash.auto import keccak

sys.path.insert(0, os.path.dirname(__file__))
from harness import Fail, Server, check, eq, run  # noqa: E402

import requests  # noqa: E402


def sign_digest(srv, key, digest):
    """An EIP-191 personal-message signature over a 32-byte digest, by `accrue sign`."""
    path = os.path.join(srv.dir, "digest.bin")
    with open(path, "wb") as f:
        f.write(digest)
    return srv.accrue("sign", "--key", key, "--message-file", path).stdout.strip().split()[-1]


def test_marketplace():
    with Server() as srv:
        srv.deploy("weather/bot", "return { on_message = function(s, t) return 'sunny' end }", models=[])
        r = srv.get("/v1/agents", key="")
        eq(r.status_code, 200, r.text)
        names = [a["name"] for a in r.json()["agents"]]
        check({"orchard-guide", "orchard-sources", "weather/bot"} <= set(names), names)
        guide = [a for a in r.json()["agents"] if a["name"] == "orchard-guide"][0]
        eq(guide["price"]["per_message"], 1000, "price")
        check("usage" in guide and "sessions_30d" in guide["usage"], guide)
        eq([a["name"] for a in srv.get("/v1/agents?search=WEATHER", key="").json()["agents"]], ["weather/bot"], "search")
        eq({a["name"] for a in srv.get("/v1/agents?tag=fruit", key="").json()["agents"]},
           {"orchard-guide", "orchard-sources"}, "tag")
        eq(len(srv.get("/v1/agents?limit=1", key="").json()["agents"]), 1, "limit")
        p1 = srv.get("/v1/agents?sort=new&limit=2", key="").json()["agents"]
        p2 = srv.get("/v1/agents?sort=new&limit=2&offset=2", key="").json()["agents"]
        eq(len({a["name"] for a in p1 + p2}), 3, "pages do not overlap")
        a = srv.get("/v1/agents/weather/bot", key="").json()
        eq((a["name"], a["version"], a["author"]), ("weather/bot", "1.0.0", srv.author), "one agent")
        eq([v["version"] for v in a["versions"]], ["1.0.0"], "versions")
        eq(srv.get("/v1/agents/weather/bot@1.0.0", key="").status_code, 200, "by version")
        eq(srv.get("/v1/agents/weather/bot@9.9.9", key="").status_code, 404, "no such version")
        eq(srv.get("/v1/agents/nobody", key="").status_code, 404, "no such agent")
        eq(srv.get("/v1/agents?sort=weird", key="").status_code, 400, "bad sort")
        eq(srv.get("/v1/agents?limit=0", key="").status_code, 400, "bad limit")
        eq(srv.get("/v1/agents", key="acc_bogus").status_code, 401, "a bad key is refused even where none is needed")


def test_deploy_over_http():
    with Server() as srv:
        key = os.path.join(srv.dir, "http-author.key")
        author = srv.accrue("keygen", "--out", key).stdout.split()[-1]
        script = os.path.join(srv.dir, "hello.lua")
        with open(script, "w") as f:
            f.write("return { on_message = function(s, t) return 'hello ' .. t end }")
        manifest = {"name": "hello", "version": "0.1.0", "author": author, "description": "says hello",
                    "tags": ["greeting"], "price_per_message": 7}
        mpath = os.path.join(srv.dir, "hello.json")
        with open(mpath, "w") as f:
            json.dump(manifest, f)
        digest = srv.accrue("deploy", script, "--manifest", mpath, "--print-digest").stdout.strip().split()[-1]
        sig = sign_digest(srv, key, bytes.fromhex(digest[2:]))
        body = {"manifest": manifest, "script": open(script).read(), "signature": sig}
        r = srv.post("/v1/agents", body)
        eq(r.status_code, 201, r.text)
        eq((r.json()["name"], r.json()["price"]["per_message"]), ("hello", 7), "deployed")
        r = srv.post("/v1/agents", body)
        eq(r.status_code, 409, "a version never changes")
        tampered = dict(body, script=body["script"].replace("hello", "HELLO"))
        r = srv.post("/v1/agents", dict(tampered, manifest=dict(manifest, version="0.2.0")))
        eq(r.status_code, 400, "a signature over something else")
        eq(r.json()["error"]["code"], "bad_signature", r.text)
        eq(srv.post("/v1/agents", {"manifest": 3, "script": "x", "signature": sig}).status_code, 400, "bad manifest")
        eq(srv.post("/v1/agents", body, key="").status_code, 401, "a key is needed")


def test_datanets_and_queries():
    with Server() as srv:
        owner_key = os.path.join(srv.dir, "owner.key")
        owner = srv.accrue("keygen", "--out", owner_key).stdout.split()[-1]
        contrib_key = os.path.join(srv.dir, "contrib.key")
        contributor = srv.accrue("keygen", "--out", contrib_key).stdout.split()[-1]
        spec = {"name": "test/cities", "owner": owner, "description": "cities", "price_per_query": 30,
                "price_per_record": 5, "curation": "review"}
        eq(srv.post("/v1/datanets", spec).status_code, 403, "creating a datanet is an admin call")
        eq(srv.post("/v1/datanets", dict(spec, name="cities"), key=srv.admin_key).status_code, 201, "created")
        eq(srv.post("/v1/datanets", dict(spec, name="cities"), key=srv.admin_key).status_code, 409, "taken")
        eq(srv.post("/v1/datanets", dict(spec, name="x", owner="0xnope"), key=srv.admin_key).status_code, 400, "bad owner")
        text = "Lisbon is built on seven hills above the Tagus river."
        # What a contributor signs (registry.h): keccak256(datanet || 0x00 || text), EIP-191.
        sig = sign_digest(srv, contrib_key, keccak(b"cities\x00" + text.encode()))
        r = srv.post("/v1/datanets/cities:contribute", {"text": text, "contributor": contributor, "signature": sig})
        eq(r.status_code, 201, r.text)
        rec = r.json()
        eq(rec["status"], "pending", "review curation holds it")
        r = srv.post("/v1/datanets/cities:contribute", {"text": text + "!", "contributor": contributor, "signature": sig})
        eq(r.json()["error"]["code"], "bad_signature", "a signature over other text")
        pending = srv.get("/v1/datanets/cities:records?status=pending", key="").json()["records"]
        eq([p["id"] for p in pending], [rec["id"]], "pending records")
        eq(srv.get("/v1/datanets/cities:records?status=maybe", key="").status_code, 400, "bad status")
        d = srv.get("/v1/datanets/cities", key="").json()
        eq((d["pending"], d["version"], d["curation"]), (1, 0, "review"), "datanet")
        eq(srv.get("/v1/datanets/demo/orchard", key="").json()["version"], 300, "the demo datanet")
        names = [x["name"] for x in srv.get("/v1/datanets", key="").json()["datanets"]]
        check("demo/orchard" in names and "cities" in names, names)
        # A metered query: the caller pays, the answer says what it cost.
        b0 = srv.get("/v1/balance").json()["available"]
        r = srv.post("/v1/datanets/demo/orchard:query", {"text": "grapes vines", "limit": 2})
        eq(r.status_code, 200, r.text)
        q = r.json()
        eq(len(q["rows"]), 2, "rows")
        eq(q["usage"]["cost"], 100 + 2 * 20, "cost")
        eq(srv.get("/v1/balance").json()["available"], b0 - q["usage"]["cost"], "paid")
        ev = srv.get("/v1/usage/" + q["usage"]["call"]).json()
        eq((ev["resource"], ev["cost"]), ("dataset", q["usage"]["cost"]), "its usage event")
        eq(srv.post("/v1/datanets/demo/orchard:query", {"text": 5}).status_code, 400, "bad query")
        eq(srv.post("/v1/datanets/nope:query", {"text": "x"}).status_code, 404, "no such datanet")
        eq(srv.post("/v1/datanets/demo/orchard:query", {"text": "x"}, key="").status_code, 401, "a query is paid")


def test_accounts_balances_usage():
    with Server() as srv:
        eq(srv.get("/v1/accounts").status_code, 403, "admin only")
        names = [a["name"] for a in srv.get("/v1/accounts", key=srv.admin_key).json()["accounts"]]
        check("demo" in names and "operator" in names, names)
        r = srv.post("/v1/accounts", {"name": "alice", "credit": 5000}, key=srv.admin_key)
        eq(r.status_code, 201, r.text)
        alice = r.json()["api_key"]
        eq(srv.get("/v1/balance", key=alice).json()["available"], 5000, "credited")
        eq(srv.post("/v1/accounts/alice:topup", {"amount": 250}, key=srv.admin_key).status_code, 200, "topup")
        eq(srv.get("/v1/balance", key=alice).json()["available"], 5250, "topped up")
        eq(srv.post("/v1/accounts/alice:topup", {"amount": 0}, key=srv.admin_key).status_code, 400, "zero")
        eq(srv.post("/v1/accounts/alice:topup", {"amount": "lots"}, key=srv.admin_key).status_code, 400, "type")
        eq(srv.post("/v1/accounts/nobody:topup", {"amount": 1}, key=srv.admin_key).status_code, 404, "no account")
        eq(srv.post("/v1/accounts/alice:topup", {"amount": 1}, key=alice).status_code, 403, "not admin")
        eq(srv.get("/v1/balance/alice", key=alice).status_code, 200, "own balance by name")
        eq(srv.get("/v1/balance/demo", key=alice).status_code, 403, "not another's")
        eq(srv.get("/v1/balance/0xzz", key="").status_code, 400, "bad address")
        eq(srv.get("/v1/usage", key=alice).json()["usage"], [], "no calls yet")
        r = srv.post("/v1/accounts/alice:keys", {}, key=srv.admin_key)
        eq(r.status_code, 201, r.text)
        second = r.json()["api_key"]
        eq(srv.get("/v1/balance", key=second).status_code, 200, "a second key")
        eq(srv.post("/v1/accounts/alice:revoke", {}, key=srv.admin_key).json()["revoked"], 2, "revoked")
        eq(srv.get("/v1/balance", key=alice).status_code, 401, "revoked keys stop")
        eq(srv.post("/v1/accounts", {"name": "alice"}, key=srv.admin_key).status_code, 409, "taken")
        eq(srv.post("/v1/accounts", {"name": "Bad Name!"}, key=srv.admin_key).status_code, 400, "bad name")


def test_models_api():
    with Server() as srv:
        r = srv.get("/v1/models/demo/orchard-chat", key="")
        eq(r.status_code, 200, r.text)
        eq((r.json()["kind"], r.json()["lineage"]), ("http", ["demo/orchard"]), "model")
        eq(srv.get("/v1/models/none", key="").status_code, 404, "no such model")
        body = {"name": "ext/gpt", "url": "https://api.example.invalid/v1", "upstream": "gpt", "owner": "0x" + "1" * 40,
                "price_per_call": 5, "lineage": ["demo/orchard"]}
        eq(srv.post("/v1/models", body).status_code, 403, "admin only")
        r = srv.post("/v1/models", body, key=srv.admin_key)
        eq(r.status_code, 201, r.text)
        eq(r.json()["price"]["per_call"], 5, "registered")
        eq(srv.post("/v1/models", dict(body, lineage=["nope"], name="ext/x"), key=srv.admin_key).status_code, 404,
           "unknown lineage")
        eq(srv.post("/v1/models", dict(body, kind="lua", name="ext/y"), key=srv.admin_key).status_code, 400, "kind")
        ids = [m["id"] for m in srv.get("/v1/models").json()["data"]]
        check("ext/gpt" in ids and "demo/orchard-chat" in ids and "test/echo" in ids, ids)


LUA_MODEL = """return { on_message = function(session, request)
    local r = json.decode(request)
    local text = r.prompt or r.messages[#r.messages].content
    return "lua says: " .. text
end }"""


def test_lua_model_over_api():
    """A lua model registered over the API, with a declared fixed share, called from an agent's
    session and through /v1/chat/completions with the official client: the script's answer,
    metered, the share paid."""
    import asyncio
    import openai
    from harness import SCALE, ask, start_session
    with Server() as srv:
        owner, payee = "0x" + "2" * 40, "0x" + "3" * 40
        body = {"name": "ext/luaecho", "kind": "lua", "script": LUA_MODEL, "owner": owner, "price_per_call": 100,
                "owner_share_bps": 5000, "shares": [{"address": payee, "bps": 2500}], "lineage": ["demo/orchard"]}
        eq(srv.post("/v1/models", body).status_code, 403, "a user's key cannot register")
        eq(srv.post("/v1/models", body, key="").status_code, 401, "no key")
        eq(srv.get("/v1/models/ext/luaecho", key="").status_code, 404, "nothing registered by refusals")
        r = srv.post("/v1/models", body, key=srv.admin_key)
        eq(r.status_code, 201, r.text)
        m = r.json()
        script_hash = "0x" + keccak(LUA_MODEL.encode()).hex()
        eq((m["id"], m["kind"], m["owned_by"], m["price"]["per_call"], m["owner_share_bps"]),
           ("ext/luaecho", "lua", owner, 100, 5000), "registered")
        eq(m["shares"], [{"address": payee, "bps": 2500}], "declared shares")
        eq(m["script_hash"], script_hash, "the script by its hash")
        check("script" not in m and "url" not in m, m)
        g = srv.get("/v1/models/ext/luaecho", key="").json()
        eq(g, m, "GET shows what registration answered")
        listed = [x for x in srv.get("/v1/models").json()["data"] if x["id"] == "ext/luaecho"]
        eq(listed, [m], "the list shows it the same way, without the script")
        eq(srv.post("/v1/models", body, key=srv.admin_key).status_code, 409, "a name is registered once")
        reg = srv.get("/v1/openapi.json", key="").json()["components"]["schemas"]["ModelRegistration"]
        check({"kind", "script", "shares", "owner_share_bps"} <= set(reg["properties"]), reg)
        eq(reg["properties"]["kind"]["enum"], ["http", "lua"], "the document's kinds")

        # Through the OpenAI endpoint with the official client.
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.key, max_retries=0, timeout=30 * SCALE)
        b0 = srv.get("/v1/balance").json()["available"]
        earned0 = srv.get(f"/v1/balance/{payee}", key="").json()["earned"]
        out = c.chat.completions.create(model="ext/luaecho", messages=[{"role": "user", "content": "hello lua"}])
        eq(out.choices[0].message.content, "lua says: hello lua", "the script's answer")
        eq(out.usage.model_extra["cost"], 100, "priced per call")
        eq(srv.get("/v1/balance").json()["available"], b0 - 100, "the caller paid")
        ev = srv.get("/v1/usage/" + out.usage.model_extra["call"]).json()
        eq((ev["resource"], ev["name"], ev["cost"], ev["state"]), ("model", "ext/luaecho", 100, "posted"), "usage event")
        shares = [(l["payee"].lower(), l["amount"]) for l in ev["lines"] if l["role"] == "share"]
        eq(shares, [(payee, 25)], f"the declared share is paid its 2500 bps: {ev['lines']}")
        # The owner: its 5000 bps, and the rest no span of the lineage claimed.
        owners = [(l["payee"].lower(), l["weight"], l["amount"]) for l in ev["lines"] if l["role"] == "owner"]
        eq(owners, [(owner, 5000, 75)], f"the owner's share: {ev['lines']}")
        eq(sum(l["amount"] for l in ev["lines"]), 100, "the lines add up")
        eq(srv.get(f"/v1/balance/{payee}", key="").json()["earned"], earned0 + 25, "the share's address earned")

        # From an agent's session.
        srv.deploy("lua-caller", """return { on_message = function(session, text)
            return models.call("ext/luaecho", {prompt = text}).text
        end }""", models=["ext/luaecho"])

        async def session():
            async with srv.connect() as ws:
                ready = await start_session(ws, "lua-caller")
                eq(ready["type"], "session.ready", ready)
                frames = await ask(ws, "from a session")
                eq(frames[-3]["content"], "lua says: from a session", f"the answer: {frames}")
                usage = frames[-2]
                eq(usage["type"], "usage", "usage frame")
                calls = [x for x in usage["calls"] if x["resource"] == "model"]
                eq([(x["name"], x["status"], x["cost"]) for x in calls], [("ext/luaecho", "ok", 100)], "metered")
                check(any(p["role"] == "share" and p["payee"].lower() == payee and p["amount"] == 25
                          for p in calls[0]["payees"]), f"share paid: {calls[0]['payees']}")
                return calls[0]["call"]

        b1 = srv.get("/v1/balance").json()["available"]
        call = asyncio.run(session())
        eq(srv.get("/v1/balance").json()["available"], b1 - 100, "the session's account paid")
        ev = srv.get("/v1/usage/" + call).json()
        eq((ev["name"], ev["cost"]), ("ext/luaecho", 100), "the session's usage event")


def test_model_registration_refusals():
    """Bad lua scripts and wrong combinations: a 4xx JSON error naming the field, nothing registered."""
    with Server() as srv:
        owner = "0x" + "2" * 40
        lua = {"name": "ext/m", "kind": "lua", "script": LUA_MODEL, "owner": owner}
        http = {"name": "ext/m", "url": "http://127.0.0.1:9/v1", "upstream": "x", "owner": owner}
        share = {"address": "0x" + "3" * 40, "bps": 100}
        cases = [
            (dict(lua, script="return { on_message = function(s, r) return 'x' end "), 400, ["script", "ext/m:1:"]),
            (dict(lua, script="return { call = function(r) return 'x' end }"), 400, ["script", "on_message"]),
            (dict(lua, script="local t = {} while true do t[#t + 1] = ('x'):rep(4096) end"), 400,
             ["script", "memory limit"]),
            (dict(lua, script=""), 400, ["script"]),
            (dict(lua, script=5), 400, ["script"]),
            ({k: v for k, v in lua.items() if k != "script"}, 400, ["script"]),
            (dict(lua, url="http://127.0.0.1:9/v1"), 400, ["url"]),
            (dict(lua, upstream="x"), 400, ["upstream"]),
            (dict(lua, api_key_env="KEY"), 400, ["api_key_env"]),
            (dict(http, script=LUA_MODEL), 400, ["script"]),
            (dict(http, kind="lua"), 400, ["url"]),
            ({k: v for k, v in http.items() if k != "url"}, 400, ["url"]),
            (dict(http, kind="gguf"), 400, ["kind", "gguf"]),
            (dict(http, kind="builtin"), 400, ["kind", "model build"]),
            (dict(http, kind=3), 400, ["kind"]),
            (dict(http, scripts="x"), 400, ["scripts"]),
            (dict(lua, shares=[dict(share, address="0xnope")]), 400, ['"shares"[0].address']),
            (dict(lua, shares=[share, dict(share, address="0x" + "4" * 39)]), 400, ['"shares"[1].address']),
            (dict(lua, shares=[dict(share, bps=0)]), 400, ["share 1", "bps"]),
            (dict(lua, shares=[dict(share, bps=10001)]), 400, ["share 1", "bps"]),
            (dict(lua, shares=[dict(share, bps="50")]), 400, ['"shares"[0]']),
            (dict(lua, shares=[dict(share, bps=1 << 40)]), 400, ['"shares"[0]']),
            (dict(lua, shares=share), 400, ["shares"]),
            (dict(lua, shares=["0x" + "3" * 40 + ":100"]), 400, ['"shares"[0]']),
            (dict(lua, shares=[share] * 17), 400, ["shares", "16"]),
            (dict(lua, owner_share_bps=9000, shares=[dict(share, bps=1001)]), 400, ["shares", "10001"]),
            (dict(lua, owner_share_bps=10001), 400, ["owner_share_bps"]),
            (dict(lua, span_k=1 << 33), 400, ["span_k"]),
            (dict(lua, owner="0x12"), 400, ["owner"]),
            (dict(lua, name="x" * 65), 400, ["name"]),
            (dict(http, url="http://" + "a" * 600), 400, ["url"]),
            (dict(lua, lineage=["nope"]), 404, ["lineage"]),
        ]
        for body, status, words in cases:
            r = srv.post("/v1/models", body, key=srv.admin_key)
            eq(r.status_code, status, f"{body}: {r.text}")
            msg = r.json()["error"]["message"]
            for w in words:
                check(w in msg, f"{body}: '{w}' not in '{msg}'")
            eq(srv.get("/v1/models/" + body["name"], key="").status_code, 404, f"nothing registered: {body}")
        # The same bodies, corrected, register.
        eq(srv.post("/v1/models", dict(lua, shares=[share]), key=srv.admin_key).status_code, 201, "lua")
        r = srv.post("/v1/models", dict(http, name="ext/h", shares=[share], api_key_env="KEY"), key=srv.admin_key)
        eq(r.status_code, 201, r.text)
        h = srv.get("/v1/models/ext/h", key=srv.admin_key).json()
        eq((h["shares"], h["url"], h["api_key_env"]), ([share], http["url"], "KEY"), "an http model's shares")
        check("script_hash" not in h, h)


def test_model_endpoint_is_the_admins_only():
    """Anyone sees what a caller chooses a model by (name, kind, owner, prices, owner's share, shares,
    lineage); where an http model is served from (url, upstream name) and which environment variable
    holds its key are shown to the admin key only: in GET /v1/models/NAME, in the list (the
    official client's models.list too), and in the registration's answer."""
    import openai
    from harness import SCALE
    with Server() as srv:
        owner, payee = "0x" + "2" * 40, "0x" + "3" * 40
        body = {"name": "ext/secret", "url": "http://10.0.0.7:8000/v1", "upstream": "llama-70b-internal",
                "api_key_env": "ACCRUE_UPSTREAM_SECRET_KEY", "owner": owner, "price_per_call": 7,
                "price_per_1k_out": 9, "owner_share_bps": 4000, "shares": [{"address": payee, "bps": 1000}],
                "lineage": ["demo/orchard"]}
        r = srv.post("/v1/models", body, key=srv.admin_key)
        eq(r.status_code, 201, r.text)
        endpoint = {"url": body["url"], "upstream": body["upstream"], "api_key_env": body["api_key_env"]}
        admin_view = r.json()
        eq({k: admin_view.get(k) for k in endpoint}, endpoint, "the registration's answer, to the admin")
        public = {"id": "ext/secret", "object": "model", "kind": "http", "owned_by": owner,
                  "price": {"per_call": 7, "per_1k_in": 0, "per_1k_out": 9}, "owner_share_bps": 4000,
                  "shares": [{"address": payee, "bps": 1000}], "lineage": ["demo/orchard"]}

        def listed(key):
            return [m for m in srv.get("/v1/models", key=key).json()["data"] if m["id"] == "ext/secret"][0]

        c = openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.key, max_retries=0, timeout=30 * SCALE)
        sdk = [m.model_dump() for m in c.models.list() if m.id == "ext/secret"][0]
        for who, m in (("no key", srv.get("/v1/models/ext/secret", key="").json()),
                       ("a user's key", srv.get("/v1/models/ext/secret").json()),
                       ("the list, a user's key", listed(srv.key)),
                       ("the openai client's list", sdk)):
            eq({k: m.get(k) for k in public}, public, f"{who}: what a caller chooses by")
            for k in endpoint:
                check(k not in m, f"{who}: {k} shown: {m}")
            check(not any(v in json.dumps(m) for v in endpoint.values()), f"{who}: endpoint leaked: {m}")
        for who, m in (("admin", srv.get("/v1/models/ext/secret", key=srv.admin_key).json()),
                       ("the list, admin", listed(srv.admin_key))):
            eq({k: m.get(k) for k in public}, public, f"{who}: the public fields")
            eq({k: m.get(k) for k in endpoint}, endpoint, f"{who}: the endpoint")
        eq(srv.get("/v1/models/ext/secret", key=srv.admin_key).json(), admin_view, "the admin's GET is the answer")
        # The demo's own http model is no exception, and the document says who sees what.
        demo = srv.get("/v1/models/demo/orchard-chat", key="").json()
        check("url" not in demo and "api_key_env" not in demo and "upstream" not in demo, demo)
        schema = srv.get("/v1/openapi.json", key="").json()["components"]["schemas"]["Model"]["properties"]
        for k in endpoint:
            check("admin" in schema[k]["description"], f"{k}: {schema[k]}")


def test_bad_requests_never_hurt():
    with Server(["--max-body", "2000"]) as srv:
        bad = [("POST", "/v1/accounts", b"{", 400), ("POST", "/v1/accounts", b"[]", 400),
               ("POST", "/v1/accounts", b'{"name": 5}', 400), ("POST", "/v1/accounts", b"x" * 3000, 413),
               ("PUT", "/v1/accounts", b"{}", 405), ("DELETE", "/v1/agents", b"", 405),
               ("GET", "/v1/unknown/route", b"", 404), ("POST", "/v1/datanets/a:explode", b"{}", 404),
               ("POST", "/v1/chat/completions", b'{"model": "test/echo", "messages": "hi"}', 400)]
        for method, path, body, want in bad:
            r = requests.request(method, srv.url + path, data=body, timeout=10,
                                 headers={"Authorization": "Bearer " + srv.admin_key})
            eq(r.status_code, want, f"{method} {path}: {r.text}")
            err = r.json()["error"]
            check(err["message"] and (err.get("code") or err.get("type")), r.text)
        eq(srv.get("/healthz").json()["status"], "ok", "still up")


def test_openapi_matches_the_routes():
    with Server() as srv:
        doc = srv.get("/v1/openapi.json", key="").json()
        eq(doc["openapi"], "3.0.3", "version")
        schemas = doc["components"]["schemas"]
        text = json.dumps(doc)
        import re
        for ref in set(re.findall(r'"#/components/schemas/([A-Za-z]+)"', text)):
            check(ref in schemas and schemas[ref] is not None, f"schema {ref} missing or not JSON")
        ops = [(m, p) for p, item in doc["paths"].items() for m in item]
        check(len(ops) >= 33, f"{len(ops)} operations")
        for method, path in ops:
            url = re.sub(r"\{[a-z]+\}", "1", path)
            r = requests.request(method.upper(), srv.url + url, data=b"{}", timeout=10,
                                 headers={"Authorization": "Bearer " + srv.admin_key})
            check(r.status_code != 405, f"{method} {path}: 405")
            if r.status_code == 404:
                check("no route" not in r.text, f"{method} {path} is documented but not routed")


def test_serve_command_line_and_host_key():
    import stat
    import subprocess
    from harness import BIN
    def serve(*args, **kw):
        return subprocess.run([BIN, "serve", *args], capture_output=True, text=True, timeout=30, **kw)
    for args, what in [(["--workers", "0"], "--workers"), (["--listen", "nohost"], "--listen"),
                       (["--bogus"], "--bogus"), (["--max-frame", "x"], "--max-frame"), (["extra"], "extra")]:
        r = serve(*args)
        eq(r.returncode, 2, f"{args}: {r.stderr}")
        eq(len(r.stderr.strip().splitlines()), 1, "one line")
        check(what in r.stderr, r.stderr)
    with Server() as srv:
        # The host key was made beside the database, mode 0600, and named in the banner.
        key = srv.db[:-3] + ".host.key"
        eq(stat.S_IMODE(os.stat(key).st_mode), 0o600, "host key mode")
        check(key in srv.banner_text and "made now" in srv.banner_text, srv.banner_text)
        health = srv.get("/healthz").json()
        eq(health["signer"], srv.accrue("address", "--key", key).stdout.strip(), "the signer is the host key's address")
        # tools/setup.sh installs lws's libuv plugin: the server runs on it, not on lws's poll() loop
        eq(health["event_loop"], "libuv", "event loop")
        check("poll()" not in open(srv.log).read(), "no fallback warning")
        # The address in use: a clear refusal, exit 1.
        r = serve("--listen", f"127.0.0.1:{srv.port}", "--db", os.path.join(srv.dir, "other.db"))
        eq(r.returncode, 1, r.stderr)
        check("listen" in r.stderr, r.stderr)
        eq(len(r.stderr.strip().splitlines()), 1, f"one line: {r.stderr}")
    d = Server()
    try:
        r = serve("--listen", "127.0.0.1:0", "--db", d.db, "--key", os.path.join(d.dir, "missing.key"))
        eq(r.returncode, 1, "a --key file that does not exist")
        loose = os.path.join(d.dir, "loose.key")
        d.accrue("keygen", "--out", loose)
        os.chmod(loose, 0o644)
        r = serve("--listen", "127.0.0.1:0", "--db", d.db, "--key", loose)
        eq(r.returncode, 1, "a key file others can read")
        check("loose.key" in r.stderr, r.stderr)
    finally:
        d.close()


if __name__ == "__main__":
    sys.exit(run("server_api", [
        test_marketplace,
        test_deploy_over_http,
        test_datanets_and_queries,
        test_accounts_balances_usage,
        test_models_api,
        test_lua_model_over_api,
        test_model_registration_refusals,
        test_model_endpoint_is_the_admins_only,
        test_bad_requests_never_hurt,
        test_openapi_matches_the_routes,
        test_serve_command_line_and_host_key,
    ]))
