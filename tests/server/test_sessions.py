"""test_sessions.py: WebSocket sessions at /v1/sessions, through the real binary.

Full sessions, streaming, cancel and disconnect mid-turn, resume, auth, bad and oversize frames,
invalid UTF-8, limits, many concurrent sessions, a slow agent beside fast ones, shutdown.
"""
import asyncio
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SCALE, Fail, Server, ask, check, check_seqs, eq, recv, recv_until, run, start_session  # noqa: E402

import websockets  # noqa: E402

AGENTS = {
    "echo": 'return { on_message = function(session, text) return text end }',
    # Streams each word, then asks a model: deltas, a host call, a reply.
    "stream": '''return { on_message = function(session, text)
        for w in text:gmatch("%S+") do session.send(w .. " ") end
        return models.call("test/upper", text).text
    end }''',
    # Streams one part, works for about ms milliseconds (CPU), streams another, replies.
    "slow": '''return { on_message = function(session, text)
        local ms = tonumber(text) or 500
        session.send("begin ")
        local t = os.clock()
        while (os.clock() - t) * 1000 < ms do end
        session.send("end ")
        return "done"
    end }''',
    # Parts spread over time: a part every 50 ms of CPU, n parts.
    "ticker": '''return { on_message = function(session, text)
        local n = tonumber(text) or 10
        for i = 1, n do
            local t = os.clock()
            while (os.clock() - t) < 0.05 do end
            session.send("tick" .. i .. " ")
        end
        return "ticked"
    end }''',
    "spin": 'return { on_message = function(session, text) while true do end end }',
    "broken": 'return { on_message = function(session, text) error("agent says no") end }',
    "bytes": '''return { on_message = function(session, text)
        session.send("caf\\xC3")        -- a character split across two parts
        session.send("\\xA9 ")
        session.send("bad\\xFF byte ")  -- an invalid byte: U+FFFD
        return "ok"
    end }''',
    # n parts, a little CPU apart (many loop passes): text=n.
    "chatty": '''return { on_message = function(session, text)
        for i = 1, tonumber(text) do
            local t = os.clock()
            while os.clock() - t < 0.0002 do end
            session.send("p" .. i .. " ")
        end
        return "said"
    end }''',
    "counter": '''local n = 0
    return { on_message = function(session, text) n = n + 1 return tostring(n) end }''',
}


def server(*args, **kw):
    return Server(args=list(args), agents=AGENTS, **kw)


async def t_full_session(srv):
    async with srv.connect() as ws:
        ready = await start_session(ws, "stream")
        eq(ready["type"], "session.ready", "first frame")
        eq(ready["reply_to"], "s1", "reply_to")
        eq((ready["agent"], ready["version"]), ("stream", "1.0.0"), "agent")
        check(len(ready["session"]) == 32, "session id")
        frames = await ask(ws, "hello big world")
        types = [f["type"] for f in frames]
        eq(types[0], "run.started", "run starts")
        check("delta" in types, f"streamed parts: {types}")
        eq(types[-3:], ["message", "usage", "run.done"], "run ends")
        msg = frames[-3]
        eq(msg["content"], "hello big world HELLO BIG WORLD", "final answer")
        eq(msg["reply_to"], "m1", "message reply_to")
        eq(frames[-1]["status"], "completed", "status")
        deltas = "".join(f["text"] for f in frames if f["type"] == "delta")
        eq(deltas, "hello big world ", "streamed text")
        usage = frames[-2]
        eq(len(usage["calls"]), 1, "one call")
        eq((usage["calls"][0]["resource"], usage["calls"][0]["name"]), ("model", "test/upper"), "resource")
        eq(usage["cost"], 0, "the test provider is free")
        check_seqs([ready] + frames, start=1)
        # A second message: the same sandbox (state kept), seq goes on.
        frames2 = await ask(ws, "again", "m2")
        check_seqs(frames + frames2)
        eq(frames2[0]["run"], "r2", "second run id")


def test_full_session():
    with server() as srv:
        asyncio.run(t_full_session(srv))


def test_sandbox_state_kept_between_messages():
    async def t(srv):
        async with srv.connect() as ws:
            await start_session(ws, "counter")
            for i in range(1, 4):
                frames = await ask(ws, "x", f"m{i}")
                eq(frames[-3]["content"], str(i), "counter")
    with server() as srv:
        asyncio.run(t(srv))


def test_streaming_arrives_during_the_turn():
    async def t(srv):
        async with srv.connect() as ws:
            await start_session(ws, "ticker")
            await ws.send(json.dumps({"type": "message", "id": "m", "content": "8"}))
            times = {}
            t0 = time.monotonic()
            while True:
                f = await recv(ws)
                if f["type"] == "delta" and "first" not in times:
                    times["first"] = time.monotonic() - t0
                if f["type"] == "run.done":
                    times["done"] = time.monotonic() - t0
                    break
            # 8 parts 50 ms apart: the first arrives long before the end.
            check(times["done"] - times["first"] > 0.2, f"first part not streamed early: {times}")
    with server() as srv:
        asyncio.run(t(srv))


def test_messages_queue_in_order():
    async def t(srv):
        async with srv.connect() as ws:
            await start_session(ws, "counter")
            for i in range(5):
                await ws.send(json.dumps({"type": "message", "id": f"m{i}", "content": "x"}))
            answers = []
            while len(answers) < 5:
                f = await recv(ws)
                if f["type"] == "message":
                    answers.append((f["reply_to"], f["content"]))
            eq(answers, [(f"m{i}", str(i + 1)) for i in range(5)], "answers in order")
    with server() as srv:
        asyncio.run(t(srv))


def test_cancel_mid_turn():
    async def t(srv):
        async with srv.connect() as ws:
            await start_session(ws, "spin")
            await ws.send(json.dumps({"type": "message", "id": "m", "content": "x"}))
            f = await recv(ws)
            eq(f["type"], "run.started", "started")
            t0 = time.monotonic()
            await ws.send(json.dumps({"type": "cancel", "id": "c", "run": f["run"]}))
            frames = await recv_until(ws, "run.done")
            eq(frames[-1]["status"], "cancelled", "status")
            check(time.monotonic() - t0 < 2 * SCALE, "cancel took too long")
            # The session still works.
            await ws.send(json.dumps({"type": "cancel", "id": "c2"}))
            err = await recv(ws)
            eq((err["type"], err["code"], err["id"]), ("error", "not_found", "c2"), "nothing to cancel")
    with server("--turn-time-limit", "20000") as srv:
        asyncio.run(t(srv))


def test_agent_errors_and_limits():
    async def t(srv):
        async with srv.connect() as ws:
            await start_session(ws, "broken")
            frames = await ask(ws, "x")
            err = [f for f in frames if f["type"] == "error"]
            eq(len(err), 1, "one error")
            eq(err[0]["code"], "agent_error", "code")
            check("agent says no" in err[0]["message"], err[0]["message"])
            eq(err[0]["id"], "m1", "error names the message")
            eq(frames[-1]["status"], "failed", "status")
        async with srv.connect() as ws:
            await start_session(ws, "spin")
            frames = await ask(ws, "x")
            err = [f for f in frames if f["type"] == "error"][0]
            eq(err["code"], "limit_exceeded", "code")
            check("limit" in err["message"], err["message"])
            eq(frames[-1]["status"], "failed", "status")
        async with srv.connect() as ws:
            f = await start_session(ws, "nosuchagent")
            eq((f["type"], f["code"]), ("error", "not_found"), "unknown agent")
    with server("--turn-time-limit", "300") as srv:
        asyncio.run(t(srv))


def test_disconnect_mid_turn_then_resume():
    async def t(srv):
        async with srv.connect() as ws:
            ready = await start_session(ws, "ticker")
            sid = ready["session"]
            await ws.send(json.dumps({"type": "message", "id": "m", "content": "10"}))
            started = await recv(ws)
            eq(started["type"], "run.started", "started")
            last = started["seq"]
        # Gone mid-turn; the run goes on. Come back later and ask for everything after `last`.
        await asyncio.sleep(0.8)
        async with srv.connect() as ws:
            await ws.send(json.dumps({"type": "session.resume", "id": "r", "session": sid, "last_seq": last}))
            frames = []
            while True:
                f = await recv(ws)
                frames.append(f)
                if f["type"] == "run.done":
                    break
            replayed = [f for f in frames if f["type"] != "session.resumed"]
            check_seqs(replayed, start=last + 1)
            eq(replayed[-1]["status"], "completed", "the run finished while nobody listened")
            text = "".join(f["text"] for f in replayed if f["type"] == "delta")
            eq(text, "".join(f"tick{i} " for i in range(1, 11)), "every part, once, in order")
            eq([f for f in replayed if f["type"] == "message"][0]["content"], text + "ticked", "answer")
            # The resumed session takes new messages.
            frames = await ask(ws, "1", "m2")
            eq(frames[-1]["status"], "completed", "after resume")
    with server() as srv:
        asyncio.run(t(srv))


def test_resume_errors():
    async def t(srv):
        async with srv.connect() as ws:
            await ws.send(json.dumps({"type": "session.resume", "id": "r", "session": "0" * 32, "last_seq": 0}))
            f = await recv(ws)
            eq((f["type"], f["code"], f["id"]), ("error", "not_found", "r"), "unknown session")
            eq(f["seq"], 0, "no session: seq 0")
            ready = await start_session(ws, "echo")
        async with srv.connect() as ws2:
            await ws2.send(json.dumps({"type": "session.resume", "id": "r", "session": ready["session"], "last_seq": 99}))
            f = await recv(ws2)
            eq((f["type"], f["code"]), ("error", "bad_request"), "last_seq ahead")
    with server() as srv:
        asyncio.run(t(srv))


def test_resume_after_the_log_wrapped():
    """The log keeps a session's last 512 written frames (in one buffer that is reused as it fills):
    a resume within them replays exactly the frames missed; one from before them is refused with
    resume_gap, naming the last_seq that accepts the gap."""
    kept = 512

    async def resume(ws, sid, last):
        await ws.send(json.dumps({"type": "session.resume", "id": "r", "session": sid, "last_seq": last}))
        return await recv(ws)

    async def t(srv):
        sent = {}
        async with srv.connect() as ws:
            ready = await start_session(ws, "echo")
            sid = ready["session"]
            sent[ready["seq"]] = ready
            for i in range(300):  # 4 frames a run: the log wraps more than twice
                for f in await ask(ws, f"message {i} " + "x" * (i % 97), f"m{i}"):
                    sent[f["seq"]] = f
        last = max(sent)
        eq(sorted(sent), list(range(1, last + 1)), "every seq once")
        check(last > 2 * kept, f"{last} frames")
        async with srv.connect() as ws:
            f = await resume(ws, sid, last - kept - 1)
            eq((f["type"], f["code"]), ("error", "resume_gap"), "before the window")
            eq(f["message"], f"frames {last - kept} to {last - kept} are no longer kept; resume with last_seq "
                             f"{last - kept} to accept the gap", "the gap named")
            for back in (10, kept):
                async with srv.connect() as ws2:
                    f = await resume(ws2, sid, last - back)
                    eq((f["type"], f["replayed"], f["last_seq"]), ("session.resumed", back, last), "resumed")
                    replayed = [await recv(ws2) for _ in range(back)]
                    eq(replayed, [sent[q] for q in range(last - back + 1, last + 1)], "exactly the frames missed")
                    frames = await ask(ws2, "after", "m-after")
                    eq(frames[0]["seq"], last + 1, "seq goes on")
                    eq(frames[-3]["content"], "after", "the session goes on")
                    for g in frames:
                        sent[g["seq"]] = g
                    last = max(sent)
            f = await resume(ws, sid, last)
            eq((f["type"], f["replayed"]), ("session.resumed", 0), "nothing missed")
    with server("--messages-per-second", "0") as srv:
        asyncio.run(t(srv))


def test_deltas_merged_while_detached_replay_whole():
    """A run streaming while its client is away: once 32 frames wait unwritten, more text is merged
    into the last waiting delta (in place, in the log's buffer). The resume replays every part, once,
    in order, in far fewer frames than parts."""
    parts = 3000

    async def t(srv):
        async with srv.connect() as ws:
            sid = (await start_session(ws, "chatty"))["session"]
            await ws.send(json.dumps({"type": "message", "id": "m", "content": str(parts)}))
            started = await recv(ws)
            eq(started["type"], "run.started", "started")
        await asyncio.sleep(2 * SCALE)
        async with srv.connect() as ws:
            await ws.send(json.dumps({"type": "session.resume", "session": sid, "last_seq": started["seq"]}))
            eq((await recv(ws))["type"], "session.resumed", "resumed")
            frames = await recv_until(ws, "run.done")
            check_seqs(frames, start=started["seq"] + 1)
            deltas = [f["text"] for f in frames if f["type"] == "delta"]
            want = "".join(f"p{i} " for i in range(1, parts + 1))
            eq("".join(deltas), want, "every part, once, in order")
            eq(frames[-3]["content"], want + "said", "the answer")
            check(max(d.count(" ") for d in deltas) >= 100, f"merged: {len(deltas)} delta frames")
    with server() as srv:
        asyncio.run(t(srv))


def test_resume_takes_over_a_live_connection():
    async def t(srv):
        async with srv.connect() as ws1:
            ready = await start_session(ws1, "echo")
            async with srv.connect() as ws2:
                await ws2.send(json.dumps({"type": "session.resume", "session": ready["session"], "last_seq": 1}))
                f = await recv(ws2)
                eq(f["type"], "session.resumed", "resumed")
                try:
                    await asyncio.wait_for(ws1.recv(), 5 * SCALE)
                    raise Fail("the old connection should be closed")
                except websockets.ConnectionClosed as e:
                    eq(e.rcvd.code if e.rcvd else None, 1000, "old connection closed normally")
                frames = await ask(ws2, "hi")
                eq(frames[-3]["content"], "hi", "answer on the new connection")
    with server() as srv:
        asyncio.run(t(srv))


def test_auth():
    import requests
    with server() as srv:
        def status(headers):
            r = requests.get(srv.ws_url.replace("ws://", "http://"), timeout=10, headers={
                "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", **headers})
            return r.status_code, r.headers.get("content-type"), r.text
        code, ctype, body = status({})
        eq(code, 401, "no key")
        eq(ctype, "application/json", "JSON error")
        eq(json.loads(body)["error"]["code"], "unauthorized", "code")
        eq(status({"Authorization": "Bearer acc_wrong"})[0], 401, "wrong key")
        eq(status({"Sec-WebSocket-Protocol": "accrue.v1, bearer.acc_wrong"})[0], 401, "wrong key as a subprotocol")

        async def t():
            # The browser way: the key among the offered subprotocols; accrue.v1 is chosen.
            async with websockets.connect(srv.ws_url, subprotocols=["accrue.v1", "bearer." + srv.key]) as ws:
                eq(ws.subprotocol, "accrue.v1", "chosen subprotocol")
                eq((await start_session(ws, "echo"))["type"], "session.ready", "works")
            try:
                async with websockets.connect(srv.ws_url.replace("/v1/sessions", "/v1/other"),
                                              additional_headers={"Authorization": "Bearer " + srv.key}):
                    raise Fail("upgrade on another path should be refused")
            except websockets.InvalidStatus as e:
                eq(e.response.status_code, 404, "wrong path")
        asyncio.run(t())


def test_bad_frames():
    async def t(srv):
        async with srv.connect() as ws:
            async def err_for(payload):
                await ws.send(payload)
                f = await recv(ws)
                eq(f["type"], "error", f"error for {payload!r}")
                return f
            f = await err_for("not json")
            eq(f["code"], "bad_request", "code")
            check("not JSON" in f["message"], f["message"])
            check("bad_request" == (await err_for("[1,2]"))["code"], "array")
            f = await err_for(json.dumps({"id": "x"}))
            check("type" in f["message"] and f["id"] == "x", f)
            f = await err_for(json.dumps({"type": "dance", "id": 7}))
            check("dance" in f["message"] and f["id"] == 7, f)
            f = await err_for(json.dumps({"type": "message", "id": "m", "content": "x"}))
            check("session" in f["message"], f["message"])
            f = await err_for(json.dumps({"type": "session.start", "agent": 5}))
            check("agent" in f["message"], f["message"])
            f = await err_for(json.dumps({"type": "session.start", "agent": "echo", "budget": -1}))
            check("budget" in f["message"], f["message"])
            f = await err_for(json.dumps({"type": "message", "id": {"nested": 1}}))
            check("id" in f["message"], f["message"])
            await start_session(ws, "echo")
            f = await err_for(json.dumps({"type": "message", "id": "m", "content": 5}))
            check("content" in f["message"] and f["id"] == "m", f)
            f = await err_for(json.dumps({"type": "session.start", "agent": "echo"}))
            check("already" in f["message"], f["message"])
            # After all that, the session answers.
            frames = await ask(ws, "still here")
            eq(frames[-3]["content"], "still here", "answer")
            # A binary frame ends the connection (1003).
            await ws.send(b"\x00\x01")
            try:
                await asyncio.wait_for(ws.recv(), 5 * SCALE)
                raise Fail("binary frame accepted")
            except websockets.ConnectionClosed as e:
                eq(e.rcvd.code, 1003, "close code")
    with server() as srv:
        asyncio.run(t(srv))


def test_oversize_message_closes_1009():
    async def t(srv):
        async with srv.connect() as ws:
            await start_session(ws, "echo")
            frames = await ask(ws, "x" * 900)  # under the limit: fine
            eq(frames[-1]["status"], "completed", "small enough")
            await ws.send(json.dumps({"type": "message", "content": "x" * 5000}))
            try:
                await asyncio.wait_for(ws.recv(), 5 * SCALE)
                raise Fail("oversize message accepted")
            except websockets.ConnectionClosed as e:
                eq(e.rcvd.code, 1009, "close code")
        # In fragments: the total counts, not the fragment.
        async with srv.connect() as ws:
            await ws.send(["x" * 1000] * 5)
            try:
                await asyncio.wait_for(ws.recv(), 5 * SCALE)
                raise Fail("oversize fragmented message accepted")
            except websockets.ConnectionClosed as e:
                eq(e.rcvd.code, 1009, "close code (fragments)")
    with server("--max-frame", "4096") as srv:
        asyncio.run(t(srv))


def test_output_bytes_become_valid_utf8():
    async def t(srv):
        async with srv.connect() as ws:
            await start_session(ws, "bytes")
            frames = await ask(ws, "x")  # websockets itself refuses invalid UTF-8 in a text frame
            text = "".join(f["text"] for f in frames if f["type"] == "delta")
            eq(text, "café bad\ufffd byte ", "split character kept whole, bad byte replaced")
    with server() as srv:
        asyncio.run(t(srv))


def test_message_rate_limit():
    async def t(srv):
        async with srv.connect() as ws:
            await start_session(ws, "echo")
            for i in range(30):
                await ws.send(json.dumps({"type": "message", "id": f"m{i}", "content": "x"}))
            limited = 0
            done = 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < 5 * SCALE and limited + done < 29:
                f = await recv(ws)
                if f["type"] == "error" and f["code"] == "limit_exceeded":
                    limited += 1
                if f["type"] == "run.done":
                    done += 1
            # 5 a second with a burst of 10: about 10 get in, the rest are refused.
            check(limited >= 15, f"only {limited} refused, {done} done")
            check(done >= 8, f"only {done} done")
    with server("--messages-per-second", "5") as srv:
        asyncio.run(t(srv))


def test_sessions_per_key_limit():
    async def t(srv):
        conns = [await srv.connect().__aenter__() for _ in range(4)]
        try:
            for i, ws in enumerate(conns[:3]):
                eq((await start_session(ws, "echo"))["type"], "session.ready", f"session {i}")
            f = await start_session(conns[3], "echo")
            eq((f["type"], f["code"]), ("error", "limit_exceeded"), "fourth session")
        finally:
            for ws in conns:
                await ws.close()
    with server("--sessions-per-key", "3") as srv:
        asyncio.run(t(srv))


def test_many_concurrent_sessions():
    n = 200

    async def one(srv, i):
        async with srv.connect() as ws:
            ready = await start_session(ws, "stream")
            eq(ready["type"], "session.ready", "ready")
            frames = await ask(ws, f"hello {i}")
            eq(frames[-3]["content"], f"hello {i} HELLO {i}", "answer")
            return ready["session"]

    async def t(srv):
        ids = await asyncio.gather(*(one(srv, i) for i in range(n)))
        eq(len(set(ids)), n, "distinct sessions")

    with server("--sessions-per-key", "1000") as srv:
        asyncio.run(t(srv))
        m = srv.get("/metrics").text
        check(f"accrue_sessions_opened_total {n}" in m, "metrics count the sessions")


# A metered call a message (the demo's n-gram model): each turn waits for its answer.
METERED = '''return { on_message = function(session, text)
    return models.call("demo/orchard-ngram", {prompt = text, max_tokens = 4}).text
end }'''


def test_many_sessions_waiting_on_metered_calls():
    """Many turns waiting for their answers at once: a worker takes the next ready turn ahead of the
    one it runs (pool.c) and loads its sandbox; with one worker and with two."""
    n, rounds = 60, 3

    async def one(srv, i):
        async with srv.connect() as ws:
            eq((await start_session(ws, "metered"))["type"], "session.ready", "ready")
            for r in range(rounds):
                frames = await ask(ws, f"plums {i} {r}", f"m{r}")
                eq(frames[-1]["status"], "completed", f"session {i} round {r}: {frames}")
                check(any(f["type"] == "message" and f["content"] for f in frames), f"an answer: {frames}")

    async def t(srv):
        await asyncio.gather(*(one(srv, i) for i in range(n)))

    for workers in ("1", "2"):
        with server("--workers", workers, "--sessions-per-key", "1000", "--messages-per-second", "0") as srv:
            srv.deploy("metered", METERED, models=["demo/orchard-ngram"])
            asyncio.run(t(srv))
            m = srv.get("/metrics").text
            check(f"accrue_sessions_opened_total {n}" in m, "metrics count the sessions")


def test_slow_agent_does_not_stall_others():
    async def t(srv):
        async with srv.connect() as slow, srv.connect() as fast:
            await start_session(slow, "slow")
            await start_session(fast, "echo")
            await slow.send(json.dumps({"type": "message", "id": "s", "content": "800"}))
            eq((await recv(slow))["type"], "run.started", "slow started")
            await asyncio.sleep(0.1)
            lat = []
            for i in range(5):
                t0 = time.monotonic()
                await ask(fast, "ping", f"p{i}")
                lat.append(time.monotonic() - t0)
            # One worker: the busy agent is paused every 10 ms slice so the echo gets its turn.
            check(max(lat) < 0.5 * SCALE, f"fast session stalled: {lat}")
            frames = await recv_until(slow, "run.done", timeout=20)
            eq(frames[-1]["status"], "completed", "slow finished")
    with server("--workers", "1", "--turn-time-limit", "20000") as srv:
        asyncio.run(t(srv))


def test_sigterm_cancels_running_turns_and_exits_0():
    async def t(srv):
        ws = await srv.connect().__aenter__()
        await start_session(ws, "spin")
        await ws.send(json.dumps({"type": "message", "id": "m", "content": "x"}))
        eq((await recv(ws))["type"], "run.started", "started")
        srv.proc.send_signal(signal.SIGTERM)
        frames = []
        try:
            while True:
                frames.append(await recv(ws))
        except websockets.ConnectionClosed as e:
            eq(e.rcvd.code if e.rcvd else None, 1001, "going away")
        check(any(f["type"] == "run.done" and f["status"] == "cancelled" for f in frames), f"frames: {frames}")
    srv = server("--turn-time-limit", "60000").start()
    try:
        asyncio.run(t(srv))
        rc = srv.proc.wait(timeout=10 * SCALE)
        eq(rc, 0, "exit status")
    finally:
        srv.close()


def test_chat_command():
    import subprocess
    from harness import BIN
    with server() as srv:
        url = f"ws://127.0.0.1:{srv.port}"
        r = subprocess.run([BIN, "chat", "--url", url, "--key", srv.key, "stream", "one two", "three"],
                           capture_output=True, text=True, timeout=30 * SCALE)
        eq(r.returncode, 0, r.stderr)
        eq(r.stdout, "one two ONE TWO\nthree THREE\n", "replies, streamed parts once")
        check("[r1: 1 call, cost 0, balance 100000000]" in r.stderr and "[r2:" in r.stderr, r.stderr)
        r = subprocess.run([BIN, "chat", "--url", url, "--key", srv.key, "echo"], input="a b\n\nc\n",
                           capture_output=True, text=True, timeout=30 * SCALE)
        eq((r.returncode, r.stdout), (0, "a b\n\nc\n"), "lines of stdin")
        r = subprocess.run([BIN, "chat", "--url", url, "--key", "acc_bad", "echo", "x"], capture_output=True,
                           text=True, timeout=30 * SCALE)
        eq(r.returncode, 1, "bad key")
        r = subprocess.run([BIN, "chat", "--url", url, "--key", srv.key, "broken", "x"], capture_output=True,
                           text=True, timeout=30 * SCALE)
        eq(r.returncode, 1, "failed run")
        check("agent_error" in r.stderr, r.stderr)
        r = subprocess.run([BIN, "chat", "--key", srv.key], capture_output=True, text=True, timeout=30 * SCALE)
        eq(r.returncode, 2, "usage error")


if __name__ == "__main__":
    sys.exit(run("server_sessions", [
        test_full_session,
        test_sandbox_state_kept_between_messages,
        test_streaming_arrives_during_the_turn,
        test_messages_queue_in_order,
        test_cancel_mid_turn,
        test_agent_errors_and_limits,
        test_disconnect_mid_turn_then_resume,
        test_resume_errors,
        test_resume_after_the_log_wrapped,
        test_deltas_merged_while_detached_replay_whole,
        test_resume_takes_over_a_live_connection,
        test_auth,
        test_bad_frames,
        test_oversize_message_closes_1009,
        test_output_bytes_become_valid_utf8,
        test_message_rate_limit,
        test_sessions_per_key_limit,
        test_many_concurrent_sessions,
        test_many_sessions_waiting_on_metered_calls,
        test_slow_agent_does_not_stall_others,
        test_sigterm_cancels_running_turns_and_exits_0,
        test_chat_command,
    ]))
