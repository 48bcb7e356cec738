"""test_output_limit.py: an `http` model whose upstream ignores max_tokens. The caller reserved for
max_tokens; whatever the path (the official `openai` client, streamed or not, an agent's
models.call in a WebSocket session, streamed or not), it gets at most max_tokens of output, the
answer says so (finish_reason "length"), and the usage it is shown is the charge: the usage event,
the balance's change, never above the reservation. A streamed answer is cut as it arrives, and the
upstream's stream is ended there. `accrue ledger check` holds afterwards.
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (SCALE, Server, ask, check, eq, greedy_upstream, run, start_session)  # noqa: E402

import openai  # noqa: E402

OWNER = "0x" + "ab" * 20
MAX = 20
WANT = " ".join(f"w{i}" for i in range(MAX))  # the first MAX words, cut after the last


def client(srv):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.key, max_retries=0, timeout=30 * SCALE)


def register(srv, name, port, upstream):
    # 10 a call, 1 per token in and out (1000 per 1k): a call's cost is 10 + prompt + completion
    r = srv.post("/v1/models", {"name": name, "kind": "http", "url": f"http://127.0.0.1:{port}/v1",
                                "upstream": upstream, "owner": OWNER, "price_per_call": 10,
                                "price_per_1k_in": 1000, "price_per_1k_out": 1000}, key=srv.admin_key)
    eq(r.status_code, 201, r.text)


def balance(srv):
    return srv.get("/v1/balance").json()["available"]


def charged_as_shown(srv, call, cost, units_in, units_out):
    """The usage event of `call` is what the caller was shown, and within its reservation."""
    ev = srv.get("/v1/usage/" + call).json()
    eq((ev["state"], ev["cost"], ev["units_in"], ev["units_out"]), ("posted", cost, units_in, units_out),
       f"usage event {ev}")
    check(ev["cost"] <= ev["reserved"], f"cost above the reservation: {ev}")
    eq(sum(l["amount"] for l in ev["lines"]), cost, "lines add up")


def ledger_checks(srv):
    r = srv.accrue("ledger", "check", "--db", srv.db, check=False)
    eq(r.returncode, 0, f"ledger check: {r.stdout} {r.stderr}")


def test_openai_client_gets_and_pays_for_max_tokens():
    up, full = greedy_upstream()
    try:
        with Server() as srv:
            register(srv, "greedy/talker", up.server_address[1], "greedy")
            register(srv, "greedy/silent", up.server_address[1], "greedy-silent")
            c = client(srv)
            msgs = [{"role": "user", "content": "say a great deal"}]  # 4 words by our count
            for model, prompt in (("greedy/talker", 7), ("greedy/silent", 4)):
                b0 = balance(srv)
                r = c.chat.completions.create(model=model, messages=msgs, max_tokens=MAX)
                eq(r.choices[0].message.content, WANT, f"{model}: the text is cut at max_tokens")
                eq(r.choices[0].finish_reason, "length", f"{model}: finish")
                eq((r.usage.prompt_tokens, r.usage.completion_tokens), (prompt, MAX), f"{model}: usage")
                cost = r.usage.model_extra["cost"]
                eq(cost, 10 + prompt + MAX, f"{model}: priced on what was passed on")
                eq(balance(srv), b0 - cost, f"{model}: the account paid exactly the usage's cost")
                charged_as_shown(srv, r.usage.model_extra["call"], cost, prompt, MAX)

            # Streamed: the deltas stop at the limit, the finish says why, the usage chunk is the charge.
            for model in ("greedy/talker", "greedy/silent"):
                b0 = balance(srv)
                n_streams = len(up.streams)
                chunks = list(c.chat.completions.create(model=model, messages=msgs, max_tokens=MAX, stream=True,
                                                         stream_options={"include_usage": True}))
                text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
                eq(text, WANT, f"{model}: streamed text cut at max_tokens")
                eq([ch.choices[0].finish_reason for ch in chunks if ch.choices][-1], "length", f"{model}: finish")
                u = chunks[-1].usage
                # the stream was ended at the cut, before the upstream's own usage: ours counts
                eq((u.prompt_tokens, u.completion_tokens), (4, MAX), f"{model}: streamed usage")
                eq(u.model_extra["cost"], 10 + 4 + MAX, f"{model}: streamed cost")
                eq(balance(srv), b0 - u.model_extra["cost"], f"{model}: the account paid the streamed usage")
                charged_as_shown(srv, u.model_extra["call"], u.model_extra["cost"], 4, MAX)
                # the upstream's stream was ended at the cut, not read to its end
                for _ in range(int(50 * SCALE)):
                    if len(up.streams) > n_streams:
                        break
                    time.sleep(0.1)
                eq(len(up.streams), n_streams + 1, "the upstream's stream ended")
                sent, total = up.streams[-1]
                check(sent < total // 2, f"the upstream kept streaming after the cut: {sent} of {total} deltas")

            # Within the limit nothing changes: the whole answer, as the upstream counted it.
            r = c.chat.completions.create(model="greedy/talker", messages=msgs, max_tokens=1000)
            eq((r.choices[0].message.content, r.choices[0].finish_reason), (full, "stop"), "whole answer")
            eq(r.usage.completion_tokens, 200, "upstream's usage")
            ledger_checks(srv)
    finally:
        up.shutdown()


AGENT = '''return { on_message = function(session, text)
    local a = models.call("greedy/talker", {prompt = "say a great deal", max_tokens = 20, stream = text == "stream"})
    return a.finish_reason .. " " .. a.usage.completion_tokens .. " " .. a.usage.cost .. "|" .. a.text
end }'''


def test_agent_in_a_session_gets_and_pays_for_max_tokens():
    up, _ = greedy_upstream()
    try:
        with Server() as srv:
            register(srv, "greedy/talker", up.server_address[1], "greedy")
            srv.deploy("greedy-relay", AGENT, models=["greedy/talker"])

            async def session():
                async with srv.connect() as ws:
                    await start_session(ws, "greedy-relay")
                    for i, how in enumerate(("plain", "stream")):
                        b0 = balance(srv)
                        frames = await ask(ws, how, f"m{i}")
                        deltas = "".join(f["text"] for f in frames if f["type"] == "delta")
                        eq(deltas, WANT if how == "stream" else "", f"{how}: deltas stop at max_tokens")
                        usage = frames[-2]
                        eq(usage["type"], "usage", "usage frame")
                        call = usage["calls"][0]
                        # streamed, the upstream's usage never came (its stream was ended at the cut)
                        prompt = 7 if how == "plain" else 4
                        eq((call["name"], call["status"], call["units_out"], call["cost"]),
                           ("greedy/talker", "ok", MAX, 10 + prompt + MAX), f"{how}: the call")
                        answer = [f["content"] for f in frames if f["type"] == "message"][0]
                        # (a streamed call's deltas are the agent's output too, ahead of its reply)
                        eq(answer, (WANT if how == "stream" else "") + f"length {MAX} {call['cost']}|{WANT}",
                           f"{how}: what the agent got")
                        eq(usage["balance"], b0 - call["cost"], f"{how}: the balance paid the call")
                        eq(balance(srv), b0 - call["cost"], f"{how}: balance from the API")
            asyncio.run(session())
            ledger_checks(srv)
    finally:
        up.shutdown()


if __name__ == "__main__":
    sys.exit(run("server_output_limit", [
        test_openai_client_gets_and_pays_for_max_tokens,
        test_agent_in_a_session_gets_and_pays_for_max_tokens,
    ]))
