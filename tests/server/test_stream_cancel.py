"""test_stream_cancel.py: a streamed call to an `http` model that ends by cancellation after some of
its deltas were passed on. The client keeps what it received, so it pays for it: the prompt and the
delivered tokens (the same counts as any cut answer), posted within the reservation, the usage event
saying the call was cut short by cancellation; a call that passed nothing on is voided whole. The
paths: the official `openai` client closing its stream mid-answer, a raw client leaving before the
first delta, and a WebSocket agent's models.call(..., {stream = true}) whose turn is cancelled. A
session whose client disconnects mid-turn keeps running, and pays for the whole answer.
`accrue ledger check` holds afterwards.
"""
import asyncio
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (SCALE, Server, check, eq, greedy_upstream, recv, recv_until, run,  # noqa: E402
                     start_session)

from test_output_limit import balance, ledger_checks, register  # noqa: E402  (priced 10 + 1 a token)

import openai  # noqa: E402

# The upstream's pacing, stretched for slow runs but not as far as the time scale goes (50 under
# valgrind): four pauses must stay well inside the server's 60 s limit on an upstream call, or the
# call ends by that limit before the client leaves.
STRETCH = min(SCALE, 5)
PAUSE = 0.4 * STRETCH  # between the upstream's deltas: the client leaves well within one
MSGS = [{"role": "user", "content": "say a great deal"}]  # 4 words by our count


def tokens(text):
    return len(text.split())  # the upstream's words ("w12"), one token each, a split one too


def events(srv, request_id):
    """The usage events of request_id, once the call is settled (its hold gone from the balance)."""
    for _ in range(int(100 * SCALE)):
        evs = [e for e in srv.get("/v1/usage", params={"limit": 50}).json()["usage"]
               if e["request_id"] == request_id and e["resource"] == "model"]
        held = srv.get("/v1/balance").json()
        if evs and not held.get("pending", 0):
            return evs
        time.sleep(0.05)
    return evs


def settled_balance(srv, b0, want, seconds=5):
    for _ in range(int(seconds * 20 * SCALE)):
        if balance(srv) == want:
            break
        time.sleep(0.05)
    eq(balance(srv), want, f"balance (before {b0})")


def test_openai_client_leaving_mid_stream_pays_for_the_deltas_it_got():
    up, _ = greedy_upstream(pause=PAUSE)
    try:
        with Server() as srv:
            register(srv, "greedy/talker", up.server_address[1], "greedy")
            c = openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.key, max_retries=0, timeout=30 * SCALE)
            for k in (1, 4):
                b0 = balance(srv)
                rid = f"leave-after-{k}"
                stream = c.chat.completions.create(model="greedy/talker", messages=MSGS, max_tokens=100, stream=True,
                                                   extra_headers={"X-Request-Id": rid})
                got, n = "", 0
                for ch in stream:
                    d = ch.choices[0].delta.content if ch.choices else None
                    if d:
                        got += d
                        n += 1
                        if n == k:
                            break
                stream.close()  # mid-answer: the connection goes
                evs = events(srv, rid)
                eq(len(evs), 1, f"one usage event: {evs}")
                ev = evs[0]
                out = tokens(got)
                check(out > 0, "deltas were read")
                eq((ev["state"], ev["units_in"], ev["units_out"], ev["cost"]), ("posted", 4, out, 10 + 4 + out),
                   f"k={k}: charged for the prompt and the {out} tokens received ({got!r}): {ev}")
                eq(ev.get("error_code"), "cancelled", f"the event says the call was cut short: {ev}")
                check("the client disconnected" in ev.get("error", ""), f"and why: {ev}")
                check(ev["cost"] <= ev["reserved"], f"cost above the reservation: {ev}")
                eq(sum(line["amount"] for line in ev["lines"]), ev["cost"], "lines add up")
                settled_balance(srv, b0, b0 - ev["cost"])
                shown = srv.accrue("usage", "--db", srv.db, "--call", ev["id"], check=False)
                check("cut short: cancelled" in shown.stdout, f"accrue usage --call: {shown.stdout} {shown.stderr}")
            ledger_checks(srv)
    finally:
        up.shutdown()


def test_client_leaving_before_any_delta_pays_nothing():
    up, _ = greedy_upstream(pause=PAUSE, first_pause=1.5 * STRETCH)
    try:
        with Server() as srv:
            register(srv, "greedy/talker", up.server_address[1], "greedy")
            b0 = balance(srv)
            body = json.dumps({"model": "greedy/talker", "messages": MSGS, "max_tokens": 100, "stream": True}).encode()
            host, port = srv.url.split("//")[1].split(":")
            s = socket.create_connection((host, int(port)))
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + srv.key.encode() +
                      b"\r\nX-Request-Id: leave-early\r\nContent-Type: application/json\r\nContent-Length: " +
                      str(len(body)).encode() + b"\r\n\r\n" + body)
            time.sleep(0.5 * STRETCH)  # the upstream has answered its headers, no delta yet
            s.settimeout(0.01)
            try:
                early = s.recv(65536)
            except socket.timeout:
                early = b""
            eq(early, b"", "nothing reached the client")
            s.close()
            time.sleep(1.5 * STRETCH)  # past the upstream's first delta
            evs = events(srv, "leave-early")
            check(all(e["state"] == "voided" and e["cost"] == 0 for e in evs), f"voided whole: {evs}")
            settled_balance(srv, b0, b0)
            ledger_checks(srv)
    finally:
        up.shutdown()


AGENT = '''return { on_message = function(session, text)
    local a = models.call("greedy/talker", {prompt = "say a great deal", max_tokens = 100, stream = true})
    return "got " .. #a.text
end }'''


def test_agent_cancelled_mid_stream_pays_for_the_deltas_its_client_got():
    up, _ = greedy_upstream(words=12, pause=PAUSE)
    # The whole answer takes 12 pauses (about 5 s, 96 s under TSan's time scale): the turn's and the
    # upstream call's time limits scale with it, or the last run is cut by them, not left to finish.
    limit = str(min(3600000, int(60000 * SCALE)))
    try:
        with Server(args=["--turn-time-limit", limit, "--upstream-timeout", limit]) as srv:
            register(srv, "greedy/talker", up.server_address[1], "greedy")
            srv.deploy("greedy-relay", AGENT, models=["greedy/talker"], limits={"time_ms": int(limit)})

            async def session():
                async with srv.connect() as ws:
                    await start_session(ws, "greedy-relay")
                    b0 = balance(srv)
                    await ws.send(json.dumps({"type": "message", "id": "m1", "content": "go"}))
                    got, frames = "", []
                    while tokens(got) < 3:
                        f = await recv(ws)
                        frames.append(f)
                        if f["type"] == "delta":
                            got += f["text"]
                    await ws.send(json.dumps({"type": "cancel"}))
                    frames += await recv_until(ws, "run.done")
                    eq(frames[-1]["status"], "cancelled", "cancelled")
                    got = "".join(f["text"] for f in frames if f["type"] == "delta")
                    usage = [f for f in frames if f["type"] == "usage"][0]
                    calls = [c for c in usage["calls"] if c["resource"] == "model"]
                    eq(len(calls), 1, f"the call: {usage}")
                    call, out = calls[0], tokens(got)
                    eq((call["status"], call.get("cut"), call["units_in"], call["units_out"], call["cost"]),
                       ("ok", "cancelled", 4, out, 10 + 4 + out), f"charged for the deltas received ({got!r}): {call}")
                    eq(usage["cost"], call["cost"], "the turn's cost")
                    ev = srv.get("/v1/usage/" + call["call"]).json()
                    eq((ev["state"], ev["cost"], ev.get("error_code")), ("posted", call["cost"], "cancelled"),
                       f"usage event {ev}")
                    check("the turn was cancelled" in ev["error"], f"why: {ev}")
                    eq(balance(srv), b0 - call["cost"], "the balance paid the deltas")

                    # A client that leaves mid-turn: the run goes on, and its whole answer is paid.
                    b1 = balance(srv)
                    await ws.send(json.dumps({"type": "message", "id": "m2", "content": "go"}))
                    while True:
                        f = await recv(ws)
                        if f["type"] == "delta":
                            break
                await asyncio.sleep(0.2)
                return b1

            b1 = asyncio.run(session())
            whole = 10 + 7 + 12  # as the upstream reported it at its stream's end (7 in, 12 out)
            settled_balance(srv, b1, b1 - whole, seconds=30)  # about 5 s of deltas
            ledger_checks(srv)
    finally:
        up.shutdown()


if __name__ == "__main__":
    sys.exit(run("server_stream_cancel", [
        test_openai_client_leaving_mid_stream_pays_for_the_deltas_it_got,
        test_client_leaving_before_any_delta_pays_nothing,
        test_agent_cancelled_mid_stream_pays_for_the_deltas_its_client_got,
    ]))
