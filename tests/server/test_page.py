"""test_page.py: the web page (runtime/web/) in a real browser: Debian's chromium, headless, driven
by PyPI's selenium through Debian's chromedriver, against the real `accrue serve` on a fresh
database and a loopback port.

It does what a person would: searches the marketplace, opens the demo agent, pastes the demo key
(printed by serve), chats with the reply streaming in, reads the meter (each call with its payees,
the evidence behind the data shares), checks the balance against the ledger (`accrue balance
--json`), cancels a long run, sees errors (a refused key, an account that cannot pay), adds records
to a datanet (a signature made by `accrue sign` pasted, and a browser wallet's personal_sign),
opens a contributor's earnings (with the Merkle proof of a settlement batch cut by `accrue
settle`), uses the keyboard alone, and reads on a phone-sized screen. Every step leaves a
screenshot in a folder under the scratch directory (its path is printed; ACCRUE_PAGE_SHOTS names
another).

The browser never reaches the internet: the page fetches nothing from another site, and selenium is
given the driver's path so it fetches no driver either (ARCHITECTURE.md, "The page in a real
browser"). Missing chromium, chromedriver or selenium is a failure naming `ACCRUE_SETUP_TESTS=1 bash
tools/setup.sh`, not a skip.
"""
import json
import os
import re
import sys
import tempfile
import time

from eth_hash.auto import keccak

sys.path.insert(0, os.path.dirname(__file__))
from harness import SCALE, Fail, Server, check, eq, run  # noqa: E402

CHROMIUM = os.environ.get("ACCRUE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ACCRUE_CHROMEDRIVER", "/usr/bin/chromedriver")
SETUP = "run ACCRUE_SETUP_TESTS=1 bash tools/setup.sh"

# An agent that streams for a long time (it is cancelled long before it ends).
# Paced by the clock, not by a count of loop steps: a tick every 20 ms of CPU until its 60 s limit,
# however fast the build (a counted loop ended in 2-4 s under ASan, before a loaded browser clicked).
SLOW = """
return { on_message = function(s, t)
  for i = 1, 3000 do
    s.send("tick " .. i .. "\\n")
    local t0 = os.clock()
    while os.clock() - t0 < 0.02 do end
  end
  return "never reached"
end }
"""
# An agent whose answer comes from the demo's built-in model, trained on demo/orchard: its output
# copies contributors' sentences, so the meter shows span evidence.
SPANS = """
return { on_message = function(s, t)
  return models.call("demo/orchard-ngram", { messages = { { role = "user", content = t } }, max_tokens = 40 }).text
end }
"""

st = {}  # the suite's server, browser and scratch state, made by test_page_setup


def shot(name):
    path = os.path.join(st["shots"], f"{len(os.listdir(st['shots'])) + 1:02d}-{name}.png")
    st["driver"].save_screenshot(path)


def wait(cond, what, timeout=15):
    """Polls cond() until it returns something true; fails naming what (with a screenshot)."""
    deadline = time.time() + timeout * SCALE
    last = None
    while time.time() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - an element not there yet, a stale one: try again
            last = e
        time.sleep(0.05)
    shot("timeout-" + re.sub(r"[^a-z0-9]+", "-", what.lower())[:40])
    raise Fail(f"timed out waiting for {what}" + (f" (last error: {last!r})" if last else ""))


def js(script, *args):
    return st["driver"].execute_script(script, *args)


def q(sel):
    from selenium.webdriver.common.by import By
    return st["driver"].find_element(By.CSS_SELECTOR, sel)


def click(el, what):
    """Clicks el as a person would, once it is in view and nothing covers it: while a reply streams
    in, the page's layout moves under the pointer and a click can land on its neighbour."""
    from selenium.common.exceptions import ElementClickInterceptedException
    deadline = time.time() + 5 * SCALE
    while True:
        st["driver"].execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
        try:
            return el.click()
        except ElementClickInterceptedException:
            if time.time() > deadline:
                shot("covered-" + re.sub(r"[^a-z0-9]+", "-", what.lower())[:40])
                raise
            time.sleep(0.05)


def qa(sel):
    from selenium.webdriver.common.by import By
    return st["driver"].find_elements(By.CSS_SELECTOR, sel)


def go(hash_, view):
    """Opens #hash_ and waits until the view says it finished loading."""
    d = st["driver"]
    url = st["srv"].url + "/" + hash_
    js("var m = document.getElementById('main'); if (m) m.removeAttribute('data-ready')")
    if d.current_url == url:
        d.refresh()
    else:
        d.get(url)
    wait(lambda: q("#main").get_attribute("data-ready") == view, f"view {view} at {hash_}")


def cli_json(*args):
    return json.loads(st["srv"].accrue(*args, "--db", st["srv"].db, "--json").stdout)


def demo_balance():
    return cli_json("balance", "demo")


def page_units(sel):
    return int(q(sel).get_attribute("data-units"))


# ---- setup -------------------------------------------------------------------------------------


def test_page_setup():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        raise Fail(f"selenium is not installed ({e}): {SETUP}")
    for path in (CHROMIUM, CHROMEDRIVER):
        check(os.access(path, os.X_OK), f"{path} is missing: {SETUP}")
    st["shots"] = os.environ.get("ACCRUE_PAGE_SHOTS") or tempfile.mkdtemp(prefix="accrue-page-shots-")
    os.makedirs(st["shots"], exist_ok=True)
    for f in os.listdir(st["shots"]):
        if f.endswith(".png"):
            os.remove(os.path.join(st["shots"], f))
    print(f"# page: screenshots in {st['shots']}", flush=True)
    srv = Server()
    srv.start()
    st["srv"] = srv
    srv.deploy("slow-ticker", SLOW, models=[], limits={"time_ms": 60000, "instructions": 0})
    srv.deploy("span-quoter", SPANS, models=["demo/orchard-ngram"])
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
              "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"):
        o.add_argument(a)
    o.binary_location = CHROMIUM
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    st["driver"] = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    st["driver"].set_page_load_timeout(30 * SCALE)


# ---- the marketplace ---------------------------------------------------------------------------


def test_page_marketplace_search_and_agent():
    from selenium.webdriver.common.keys import Keys
    go("#/", "market")
    names = [c.get_attribute("data-agent") for c in qa("li.agent-card")]
    check({"orchard-guide", "orchard-sources", "slow-ticker", "span-quoter"} <= set(names), names)
    card = q('li.agent-card[data-agent="orchard-guide"]')
    check("0x77Ce32bB24975c5a10A7386da0e80e130931e848" in card.text, "the author's address on the card")
    check("0.001000" in card.text, "the price per message, in credits")
    for t in ("demo", "fruit", "gardening"):
        check(t in [a.text for a in card.find_elements("css selector", ".tag")], f"tag {t}")
    check("Sessions" in card.text and "Revenue" in card.text and "30 days" in card.text, "usage figures")
    shot("marketplace")
    box = q('input[name="search"]')
    box.send_keys("sources", Keys.ENTER)
    wait(lambda: [c.get_attribute("data-agent") for c in qa("li.agent-card")] == ["orchard-sources"], "search results")
    check("search=sources" in st["driver"].current_url, "the search is in the address")
    shot("marketplace-search")
    go("#/?tag=fruit", "market")
    eq(sorted(c.get_attribute("data-agent") for c in qa("li.agent-card")), ["orchard-guide", "orchard-sources"], "tag")
    go("#/?search=nothing-matches-this", "market")
    check("No agent" in q("#results").text, "an empty result says so")
    # Sorting: newest first puts this test's agents (deployed after the demo's) ahead.
    go("#/?sort=new", "market")
    first = qa("li.agent-card")[0].get_attribute("data-agent")
    check(first in ("slow-ticker", "span-quoter"), f"newest first: {first}")
    # The agent's page: versions, manifest, models and datanets, the usage chart.
    go("#/", "market")
    q('li.agent-card[data-agent="orchard-guide"] h3 a').click()
    wait(lambda: q("#main").get_attribute("data-ready") == "agent", "the agent page")
    eq(q("h1").text, "orchard-guide", "heading")
    eq([a.text for a in qa(".versions a")], ["1.0.0"], "versions")
    manifest = json.loads(q("pre.json").text)
    eq((manifest["datanets"], manifest["price_per_message"]), (["demo/orchard"], 1000), "manifest")
    check("demo/orchard-chat" in [li.get_attribute("data-model") for li in qa("li.model")], "models")
    wait(lambda: qa("#usage-chart svg.chart"), "the usage chart")
    eq(len(qa("#usage-chart svg rect.bar")), 30, "a bar per day")
    shot("agent-page")


# ---- chat, the meter and the balance -----------------------------------------------------------


def open_chat(agent, key):
    go("#/chat/" + agent, "chat")
    box = q('input[name="api_key"]')
    box.clear()
    box.send_keys(key)
    q("form.chat-setup button[type=submit]").click()


def agent_bubbles():
    return qa(".bubble.agent")


def test_page_chat_meter_and_balance():
    from selenium.webdriver.common.keys import Keys
    srv = st["srv"]
    before = demo_balance()
    open_chat("orchard-guide", srv.key)
    wait(lambda: "Session with" in q("#chat-status").text, "session.ready")
    # The key is in this tab's sessionStorage, and nowhere that outlives it.
    eq(js("return sessionStorage.getItem('accrue.api_key')"), srv.key, "key in sessionStorage")
    eq(js("return localStorage.length"), 0, "nothing in localStorage")
    eq(js("return document.cookie"), "", "no cookie")
    wait(lambda: page_units("#balance") == before["available"], "the balance before")
    shot("chat-ready")
    msg = q('textarea[name="message"]')
    msg.send_keys("what grows on vines", Keys.ENTER)
    wait(lambda: agent_bubbles() and agent_bubbles()[-1].get_attribute("data-status") == "completed", "the reply")
    reply = agent_bubbles()[-1].find_element("css selector", ".text").text
    check("Grapes grow in clusters on vines" in reply, reply)
    wait(lambda: qa("#meter .meter-run"), "the meter")
    run_ = q("#meter .meter-run")
    cost = int(run_.get_attribute("data-cost"))
    calls = {c.get_attribute("data-resource"): c for c in run_.find_elements("css selector", ".call")}
    check({"dataset", "message"} <= set(calls), f"calls: {list(calls)}")
    payees = [(r.get_attribute("data-role"), r.get_attribute("data-payee"))
              for r in calls["dataset"].find_elements("css selector", "tr.payee")]
    check(("retrieval", "0xa72a30c308ccF3F4cf2Ba0a7E24Ba27A5AAC137A") in payees, f"the records' contributor: {payees}")
    check(("author", "0x77Ce32bB24975c5a10A7386da0e80e130931e848") in [
        (r.get_attribute("data-role"), r.get_attribute("data-payee"))
        for r in calls["message"].find_elements("css selector", "tr.payee")], "the agent's author is paid its fee")
    # The evidence of the data share: the records the query returned.
    wait(lambda: calls["dataset"].find_elements("css selector", ".evidence a.record"), "evidence records")
    recs = {a.get_attribute("data-record") for a in calls["dataset"].find_elements("css selector", ".evidence a.record")}
    check("3" in recs, f"record 3 (the grapes note) is the evidence: {recs}")
    # The balance after the run: lower by what the meter booked, equal to the ledger's.
    after = demo_balance()
    eq(before["available"] - after["available"], cost, "the ledger's debit equals the meter's cost")
    wait(lambda: page_units("#balance") == after["available"], "the page's balance after the run")
    amounts = sum(int(a.get_attribute("data-units")) for c in calls.values()
                  for a in c.find_elements("css selector", "tr.payee .amount"))
    eq(amounts, cost, "the payees' amounts add up to the cost")
    st["guide_cost"] = cost
    shot("chat-reply-and-meter")
    # The evidence link opens the record.
    calls["dataset"].find_element("css selector", '.evidence a.record[data-record="3"]').click()
    wait(lambda: q("#main").get_attribute("data-ready") == "record", "the record page")
    check("Grapes grow in clusters" in q(".record-text").text, "the record's text")
    shot("evidence-record")


def test_page_span_evidence():
    from selenium.webdriver.common.keys import Keys
    open_chat("span-quoter", st["srv"].key)
    wait(lambda: "Session with" in q("#chat-status").text, "session.ready")
    q('textarea[name="message"]').send_keys("how do grapes grow on vines", Keys.ENTER)
    wait(lambda: agent_bubbles() and agent_bubbles()[-1].get_attribute("data-status") == "completed", "the reply")
    model = wait(lambda: [c for c in qa("#meter .call") if c.get_attribute("data-resource") == "model"], "a model call")[0]
    spans = wait(lambda: model.find_elements("css selector", "blockquote.span"), "span evidence")
    text = spans[0].text
    check(text.startswith("“") and spans[0].find_elements("css selector", "a.record"), f"a span and its records: {text}")
    roles = {r.get_attribute("data-role") for r in model.find_elements("css selector", "tr.payee")}
    check({"span", "owner"} <= roles, f"span contributors and the model's owner are paid: {roles}")
    shot("span-evidence")


def test_page_cancel_long_run():
    from selenium.webdriver.common.keys import Keys
    open_chat("slow-ticker", st["srv"].key)
    wait(lambda: "Session with" in q("#chat-status").text, "session.ready")
    before = demo_balance()
    q('textarea[name="message"]').send_keys("go", Keys.ENTER)
    # Streamed: text is there while the run is still under way.
    wait(lambda: "tick 3" in agent_bubbles()[-1].text and agent_bubbles()[-1].get_attribute("aria-busy") == "true",
         "streamed ticks while running")
    check(q("button.danger").is_enabled(), "cancel is enabled during a run")
    shot("long-run-streaming")
    box = q(".log").rect
    click(q("button.danger"), "cancel run")
    eq(q(".log").rect, box, "the conversation keeps its size while a reply streams in (the buttons stay put)")
    # The click landed: the bubble says the cancel was asked, or already how the run ended.
    wait(lambda: "Cancelling…" in agent_bubbles()[-1].text or agent_bubbles()[-1].get_attribute("data-status"),
         "the cancel asked")
    check(not q("button.danger").is_enabled(), "cancel is spent once asked")
    try:
        wait(lambda: agent_bubbles()[-1].get_attribute("data-status") == "cancelled", "run.done cancelled")
    except Fail as e:  # seen twice under heavy load, not reproduced: say what the page had instead
        last = agent_bubbles()[-1]
        raise Fail(f"{e}; the bubble's data-status {last.get_attribute('data-status')!r}, aria-busy "
                   f"{last.get_attribute('aria-busy')!r}, ends {last.text[-200:]!r}; errors shown: "
                   f"{[x.text for x in st['driver'].find_elements('css selector', '.log .error')]}; the server's "
                   f"log ends {open(st['srv'].log, errors='replace').read()[-1500:]!r}") from None
    check("Cancelled." in agent_bubbles()[-1].text, "the bubble says so")
    check(not q("button.danger").is_enabled(), "cancel is disabled again")
    shown = agent_bubbles()[-1].find_element("css selector", ".text").text
    check("never reached" not in shown, "the run did not finish")
    eq(demo_balance()["available"], before["available"], "a cancelled run is not charged (its fee is voided)")
    shot("long-run-cancelled")


def test_page_errors_shown():
    from selenium.webdriver.common.keys import Keys
    srv = st["srv"]
    # A refused key: the API's own error, not a broken page.
    open_chat("orchard-guide", "acc_" + "0" * 64)
    box = wait(lambda: q(".log .error"), "the refused key's error")
    eq(box.get_attribute("data-code"), "unauthorized", box.text)
    shot("error-bad-key")
    # An account that cannot pay the agent's fee.
    poor = srv.account("poor", credit=10)
    open_chat("orchard-guide", poor)
    wait(lambda: "Session with" in q("#chat-status").text, "session.ready")
    q('textarea[name="message"]').send_keys("what grows on vines", Keys.ENTER)
    err = wait(lambda: q(".log .error[data-code='insufficient_funds']"), "insufficient_funds shown")
    check("cannot pay" in err.text, err.text)
    shot("error-insufficient-funds")
    # A malformed request to the API shows the server's message.
    go("#/contributor/0x1234", "contributor")
    check("not an address" in q(".error").text, "a bad address is named")
    go("#/agent/no-such-agent", "agent")
    eq(q(".error").get_attribute("data-code"), "not_found", "no such agent")


# ---- datanets: records, contributors, signed contributions ---------------------------------------


def sign_digest(digest):
    path = os.path.join(st["srv"].dir, "digest.bin")
    with open(path, "wb") as f:
        f.write(digest)
    return st["srv"].accrue("sign", "--key", st["contrib_key"], "--message-file", path).stdout.strip().split()[-1]


def test_page_datanet_contribute():
    srv = st["srv"]
    st["contrib_key"] = os.path.join(srv.dir, "contrib.key")
    st["contributor"] = srv.accrue("keygen", "--out", st["contrib_key"]).stdout.split()[-1]
    go("#/datanets", "datanets")
    q('li[data-datanet="demo/orchard"] h3 a').click()
    wait(lambda: q("#main").get_attribute("data-ready") == "datanet", "the datanet page")
    eq(len(qa("table.contributors tbody tr")), 5, "five contributors")
    eq(len(qa("table.records tbody tr")), 25, "a page of records")
    shot("datanet")
    # A signature made by `accrue sign`, pasted.
    text = "Fig trees fruit twice a year in warm climates: a small breba crop, then the main one."
    q('textarea[name="text"]').send_keys(text)
    digest = keccak(b"demo/orchard\x00" + text.encode())
    eq(q("#digest").text, "0x" + digest.hex(), "the page's digest is keccak256(name || 0x00 || text)")
    q('input[name="contributor"]').send_keys(st["contributor"])
    q('input[name="signature"]').send_keys(sign_digest(digest))
    key = q('form.contribute input[name="api_key"]')
    key.clear()
    key.send_keys(srv.key)
    q("form.contribute button[type=submit]").click()
    ok = wait(lambda: q("form.contribute .ok"), "the record added")
    rid = int(re.search(r"record #(\d+)", ok.text).group(1))
    eq(srv.get(f"/v1/records/{rid}", key="").json()["contributor"], st["contributor"], "stored with its contributor")
    shot("contribute-pasted-signature")
    # A signature over other text is refused with the server's message.
    q('textarea[name="text"]').send_keys(" Changed.")
    q("form.contribute button[type=submit]").click()
    err = wait(lambda: q("form.contribute .error"), "the refusal")
    eq(err.get_attribute("data-code"), "bad_signature", err.text)
    shot("contribute-refused")


def test_page_wallet_personal_sign():
    """A browser wallet (window.ethereum, EIP-1193): the page asks it for an account and for
    personal_sign over the digest it computed. The stand-in wallet signs only that exact digest,
    with a signature made beforehand by `accrue sign` (what a real wallet would return)."""
    srv = st["srv"]
    d = st["driver"]
    text = "Blueberries need acid soil, pH 4.5 to 5.5, and another variety nearby for a good crop."
    digest = "0x" + keccak(b"demo/orchard\x00" + text.encode()).hex()
    sig = sign_digest(bytes.fromhex(digest[2:]))
    wallet = """
      window.ethereum = { calls: [], request: async function (req) {
        this.calls.push(req);
        if (req.method === 'eth_requestAccounts') return [%s];
        if (req.method === 'personal_sign' && req.params[0] === %s && req.params[1] === %s) return %s;
        throw new Error('the test wallet refuses ' + JSON.stringify(req));
      } };""" % (json.dumps(st["contributor"]), json.dumps(digest), json.dumps(st["contributor"]), json.dumps(sig))
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": wallet})
    d.get(srv.url + "/#/datanet/demo/orchard")
    d.refresh()
    wait(lambda: q("#main").get_attribute("data-ready") == "datanet", "the datanet page")
    button = q("#wallet-sign")
    check(button.is_displayed(), "the wallet button shows when window.ethereum exists")
    q('textarea[name="text"]').send_keys(text)
    button.click()
    ok = wait(lambda: q("form.contribute .ok"), "the wallet-signed record added")
    check("accepted" in ok.text, ok.text)
    calls = js("return window.ethereum.calls.map(c => c.method)")
    eq(calls, ["eth_requestAccounts", "personal_sign"], "what the page asked the wallet")
    shot("contribute-wallet")


# ---- contributors: earnings, batches and proofs ------------------------------------------------------


def test_page_contributor_earnings():
    srv = st["srv"]
    addr = "0xa72a30c308ccF3F4cf2Ba0a7E24Ba27A5AAC137A"
    go("#/contributor", "contributor")
    box = q('input[name="address"]')
    box.send_keys(addr)
    q("form.filters button[type=submit]").click()
    wait(lambda: q("#main").get_attribute("data-ready") == "contributor" and qa("#contributor"), "the contributor page")
    bal = cli_json("balance", addr)
    wait(lambda: q('dd[data-field="earned"] .amount'), "the balance")
    check(bal["earned"] > 0, f"the demo's contributor earned from the chats above: {bal}")
    for f in ("earned", "accrued", "settled"):
        eq(int(q(f'dd[data-field="{f}"] .amount').get_attribute("data-units")), bal[f], f)
    row = wait(lambda: q('table.earnings tr[data-name="demo/orchard"][data-role="retrieval"]'), "earnings by source")
    span = q('table.earnings tr[data-name="demo/orchard-ngram"][data-role="span"]')
    total = sum(int(a.get_attribute("data-units")) for a in qa("table.earnings .amount"))
    eq(total, bal["earned"], "the sources add up to what the address earned")
    check(row.is_displayed() and span.is_displayed(), "retrieval and span earnings")
    check(qa('ul.records li[data-record="3"]'), "record 3 earned")
    shot("contributor-earnings")


def test_page_contributor_proof():
    srv = st["srv"]
    addr = "0xa72a30c308ccF3F4cf2Ba0a7E24Ba27A5AAC137A"
    host_key = os.path.join(srv.dir, "accrue.host.key")
    srv.accrue("settle", "--key", host_key, "--db", srv.db, "--chain-id", "31337",
               "--contract", "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    proof = json.loads(srv.accrue("proof", "1", addr, "--db", srv.db, "--json").stdout)
    batch = json.loads(srv.accrue("batch", "1", "--db", srv.db, "--json").stdout)
    # The same through the API, as a program would fetch them.
    eq(srv.get("/v1/batches/1", key="").json(), batch, "GET /v1/batches/1 is `accrue batch 1 --json`")
    eq(srv.get(f"/v1/batches/1/proofs/{addr}", key="").json(), proof, "GET .../proofs/ADDR is `accrue proof`")
    listed = srv.get(f"/v1/batches?address={addr}", key="").json()["batches"]
    eq([(b["sequence"], b["amount"]) for b in listed], [(1, proof["amount"])], "the batches that owe it")
    nobody = "0x" + "11" * 20
    eq(srv.get(f"/v1/batches?address={nobody}", key="").json()["batches"], [], "none owe a stranger")
    cli_list = json.loads(srv.accrue("batches", "--db", srv.db, "--json", "--address", addr).stdout)
    eq(listed, cli_list, "GET /v1/batches?address= is `accrue batches --address --json`")
    eq(srv.get("/v1/batches?limit=1&before=2", key="").json()["batches"],
       json.loads(srv.accrue("batches", "--db", srv.db, "--json").stdout), "a page below batch 2")
    eq(srv.get("/v1/batches?before=1", key="").json()["batches"], [], "nothing below batch 1")
    for path, status in (("/v1/batches/0", 400), ("/v1/batches/2", 404), (f"/v1/batches/1/proofs/{nobody}", 404),
                         ("/v1/batches/1/proofs/0x12", 400), ("/v1/batches?address=0xzz", 400),
                         ("/v1/batches?limit=0", 400), ("/v1/batches?before=0", 400)):
        r = srv.get(path, key="")
        eq(r.status_code, status, f"{path}: {r.text}")
    go("#/contributor/" + addr, "contributor")
    bal = cli_json("balance", addr)
    check(bal["settled"] > 0, "the batch settled what it earned")
    wait(lambda: int(q('dd[data-field="settled"] .amount').get_attribute("data-units")) == bal["settled"], "settled")
    pre = wait(lambda: q('li.batch[data-sequence="1"] pre.proof'), "the proof of batch 1")
    eq(json.loads(pre.text), proof, "the page's proof is `accrue proof 1 ADDRESS --json`")
    shot("contributor-proof")


def test_page_api_reports():
    """The routes the page reads beyond the core API, called as a program would."""
    srv = st["srv"]
    u = srv.get("/v1/agents/orchard-guide:usage?days=7", key="").json()
    eq(len(u["days"]), 7, "seven days")
    eq(u["days"][-1]["day"], time.strftime("%Y-%m-%d", time.gmtime()), "the last is today (UTC)")
    eq((sum(d["messages"] for d in u["days"]), sum(d["sessions"] for d in u["days"])), (1, 1),
       "one message in one paid session (the refused one booked nothing)")
    eq(sum(d["revenue"] for d in u["days"]), st["guide_cost"], "revenue is what the chat cost")
    eq(srv.get("/v1/agents/orchard-guide@1.0.0:usage", key="").status_code, 200, "by version too")
    for path, status in (("/v1/agents/nobody:usage", 404), ("/v1/agents/orchard-guide:usage?days=0", 400),
                         ("/v1/agents/orchard-guide:usage?days=91", 400), ("/v1/records/0", 400),
                         ("/v1/records/x1", 400), ("/v1/records/999999", 404), ("/v1/earnings/0x12", 400),
                         ("/v1/datanets/nothing:contributors", 404), ("/v1/earnings/0xA72A30C308CCF3F4CF2BA0A7E24BA27A5AAC137a", 400),
                         ("/v1/earnings/0xa72a30c308ccF3F4cf2Ba0a7E24Ba27A5AAC137A?scan=0", 400)):
        r = srv.get(path, key="")
        eq(r.status_code, status, f"{path}: {r.text}")
        check(r.json()["error"]["message"], f"{path} names the problem")
    c = srv.get("/v1/datanets/demo/orchard:contributors?limit=2", key="").json()["contributors"]
    eq(len(c), 2, "limit")
    rec = srv.get("/v1/records/3", key="").json()
    eq((rec["datanet"], rec["id"], rec["status"]), ("demo/orchard", 3, "accepted"), "one record")
    e = srv.get("/v1/earnings/0xa72a30c308ccf3f4cf2ba0a7e24ba27a5aac137a?scan=1", key="").json()
    check(e["truncated"] and e["scanned"] == 1, f"a short scan says so: {e}")


# ---- keyboard and phone --------------------------------------------------------------------------------


def test_page_keyboard_only():
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    d = st["driver"]
    d.get("about:blank")  # a fresh load: sequential focus starts at the top of the document
    go("#/", "market")
    tab = ActionChains(d)
    seen = []
    for _ in range(12):
        tab.send_keys(Keys.TAB).perform()
        el = d.switch_to.active_element
        seen.append((el.tag_name, el.get_attribute("name") or el.text))
        outline = js("return getComputedStyle(document.activeElement).outlineStyle")
        check(outline not in ("none", ""), f"visible focus on {seen[-1]}: outline {outline}")
        if el.get_attribute("name") == "search":
            break
    check(seen[0] == ("a", "Skip to content"), f"the skip link comes first: {seen}")
    check(d.switch_to.active_element.get_attribute("name") == "search", f"the search box is reached: {seen}")
    ActionChains(d).send_keys("guide", Keys.ENTER).perform()
    wait(lambda: [c.get_attribute("data-agent") for c in qa("li.agent-card")] == ["orchard-guide"], "keyboard search")
    shot("keyboard-search")
    # Every form control has a label.
    for view, hash_ in (("market", "#/"), ("chat", "#/chat/orchard-guide"), ("datanet", "#/datanet/demo/orchard")):
        go(hash_, view)
        unlabelled = js("""return [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map(e => e.name)""")
        eq(unlabelled, [], f"unlabelled controls on {view}")
    check(q(".log").get_attribute("aria-live") == "polite" if qa(".log") else True, "the conversation is a live region")


def test_page_phone():
    d = st["driver"]
    d.set_window_size(390, 844)
    try:
        for view, hash_ in (("market", "#/"), ("agent", "#/agent/orchard-guide"), ("chat", "#/chat/orchard-guide"),
                            ("datanet", "#/datanet/demo/orchard"),
                            ("contributor", "#/contributor/0xa72a30c308ccF3F4cf2Ba0a7E24Ba27A5AAC137A")):
            go(hash_, view)
            time.sleep(0.3)
            w = js("return [document.documentElement.scrollWidth, window.innerWidth]")
            check(w[0] <= w[1], f"{view}: no sideways scrolling on a phone ({w[0]} > {w[1]})")
            shot("phone-" + view)
    finally:
        d.set_window_size(1280, 1000)


def test_page_no_console_errors():
    """What the browser logged: only the API's own 4xx answers the tests provoked, nothing else
    (no script error, no request to another site)."""
    logs = st["driver"].get_log("browser")
    bad = [entry["message"] for entry in logs if entry["level"] == "SEVERE"
           and not re.search(r"127\.0\.0\.1:\d+/v1/\S+ - Failed to load resource: the server responded with a status of 4\d\d",
                             entry["message"])]
    eq(bad, [], "browser errors")
    hosts = js("return [...new Set(performance.getEntriesByType('resource').map(e => new URL(e.name).host))]")
    check(all(h == f"127.0.0.1:{st['srv'].port}" for h in hosts), f"requests to other hosts: {hosts}")


def teardown():
    if st.get("driver"):
        st["driver"].quit()
    if st.get("srv"):
        st["srv"].close()


if __name__ == "__main__":
    try:
        rc = run("page", [
            test_page_setup,
            test_page_marketplace_search_and_agent,
            test_page_chat_meter_and_balance,
            test_page_span_evidence,
            test_page_cancel_long_run,
            test_page_errors_shown,
            test_page_datanet_contribute,
            test_page_wallet_personal_sign,
            test_page_contributor_earnings,
            test_page_contributor_proof,
            test_page_api_reports,
            test_page_keyboard_only,
            test_page_phone,
            test_page_no_console_errors,
        ])
    finally:
        teardown()
    sys.exit(rc)
