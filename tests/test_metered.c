/*
 * test_metered.c: agents' calls metered end to end (runtime/metered.h): a real registry (datanets
 * with contributors, models with lineage and shares), the span indexes built from it, the meters,
 * the ledger, and a real sandbox running agent scripts.
 *
 * The attribution test: an HTTP model whose upstream this test plays (so the output is exactly
 * what the test chooses) answers with outputs that copy a known contributor's record exactly, copy
 * one with light edits (case, punctuation, spacing), mix two contributors, copy a span two
 * contributors both hold, say something novel, and copy a near miss one token shorter than k.
 * The right contributors, and only they, receive the data share; novel text and near misses pay it
 * to the model's owner. Then a built-in model (the factory's) answering from its records, a
 * dataset query paying by rank, insufficient funds as an error the agent catches, agents refused a
 * model their manifest does not list, and the message fee of an agent's turn.
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meters/eth/keys.h"
#include "meters/ledger/ledger.h"
#include "meters/meters.h"
#include "registry/factory/factory.h"
#include "registry/registry.h"
#include "registry/spans.h"
#include "runtime/metered.h"
#include "tests/check.h"

static char dir[128];

#define OWNER "0x1000000000000000000000000000000000000001"
#define DNOWNER "0x1000000000000000000000000000000000000002"
#define SHARE "0x1000000000000000000000000000000000000003"
#define AUTHOR "0x1000000000000000000000000000000000000004"

/* Contributors: four addresses. */
static const char *const who[] = {
    "0xA000000000000000000000000000000000000001", /* alice */
    "0xA000000000000000000000000000000000000002", /* bob */
    "0xA000000000000000000000000000000000000003", /* carol */
    "0xA000000000000000000000000000000000000004", /* dave */
};
enum { ALICE, BOB, CAROL, DAVE };
static char addr[4][ETH_ADDRESS_TEXT_SIZE]; /* EIP-55 forms */

static const struct {
    int who;
    const char *text;
} records[] = {
    {ALICE, "Grapes grow in tight clusters on woody vines that climb toward the summer sun."},
    {BOB, "Figs are pollinated inside the fruit by tiny wasps that crawl through a narrow opening."},
    {CAROL, "Apple trees need a cold winter rest before they flower again in the spring orchard."},
    {DAVE, "Cherries ripen early and birds often eat them before the farmers can pick the harvest."},
    /* the same long span in two records by two contributors */
    {ALICE, "Old orchards keep heirloom varieties alive for the patient gardeners who tend them each year."},
    {DAVE, "Many say old orchards keep heirloom varieties alive for the patient gardeners who tend them."},
};

typedef struct world {
    registry_t *reg;
    ledger_t *ledger;
    meter_t *meter;
    rt_metered_t *metered;
    rt_queue_t *queue;
    rt_http_call_t *pending_http; /* the upstream call this test answers */
    char *http_request;
} world_t;

static int fake_start(void *ud, const registry_model_t *model, const char *json, size_t len, rt_http_call_t *call) {
    world_t *w = ud;
    (void)model;
    w->pending_http = call;
    free(w->http_request);
    w->http_request = strndup(json, len);
    return 0;
}

static void parse_addr(const char *text, uint8_t out[20]) {
    acc_err e = {0};
    CHECK_MSG(eth_address_parse(text, strlen(text), out, &e) == ACC_OK, "%s: %s", text, e.msg);
}

static void setup_with(world_t *w, const char *name, uint32_t busy_timeout_ms) {
    memset(w, 0, sizeof *w);
    char path[256];
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    acc_err err = {0};
    CHECK_MSG(registry_open(path, REGISTRY_OPEN_CREATE, &w->reg, &err) == ACC_OK, "%s", err.msg);
    registry_datanet_spec_t spec = {.name = "t/fruit", .price_per_query = 10, .price_per_record = 20};
    parse_addr(DNOWNER, spec.owner);
    CHECK_MSG(registry_datanet_create(w->reg, &spec, NULL, &err) == ACC_OK, "%s", err.msg);
    acc_buf jl = ACC_BUF_INIT;
    for (size_t i = 0; i < sizeof records / sizeof records[0]; i++)
        acc_buf_printf(&jl, "{\"text\":\"%s\",\"contributor\":\"%s\"}\n", records[i].text, who[records[i].who]);
    CHECK_MSG(registry_import_jsonl(w->reg, "t/fruit", jl.data, jl.len, "test", NULL, NULL, NULL, &err) == ACC_OK, "%s",
              err.msg);
    acc_buf_free(&jl);
    registry_model_t m = {.name = "t/chat", .kind = REGISTRY_MODEL_HTTP, .price_per_call = 1000,
                          .price_per_1k_in = 1000, .price_per_1k_out = 2000, .owner_share_bps = 2000, .n_lineage = 1,
                          .n_shares = 1, .span_k = 8};
    parse_addr(OWNER, m.owner);
    strcpy(m.lineage[0], "t/fruit");
    parse_addr(SHARE, m.shares[0].address);
    m.shares[0].bps = 1000;
    strcpy(m.url, "http://127.0.0.1:1/v1");
    strcpy(m.upstream, "upstream-chat");
    CHECK_MSG(registry_model_register(w->reg, &m, NULL, 0, NULL, &err) == ACC_OK, "%s", err.msg);
    registry_model_t b = {.name = "t/gen", .price_per_call = 500, .price_per_1k_out = 1000, .owner_share_bps = 3000,
                          .span_k = 8};
    parse_addr(OWNER, b.owner);
    CHECK_MSG(factory_build(w->reg, &b, "t/fruit", 4, NULL, &err) == ACC_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    CHECK_MSG(ledger_open(path, &(ledger_opts_t){.no_sync = true, .busy_timeout_ms = busy_timeout_ms}, &w->ledger, &err) ==
                  ACC_OK,
              "%s", err.msg);
    meter_config_t mc = meter_config_default();
    mc.operator_fee_bps = 0;
    CHECK(meter_open(w->ledger, &mc, &w->meter, &err) == ACC_OK);
    rt_metered_config_t cfg = {.meter = w->meter, .http = {.ud = w, .start = fake_start}};
    CHECK(rt_metered_open(&cfg, &w->metered, &err) == ACC_OK);
    w->queue = rt_queue_new();
    ledger_account_t *demo;
    ledger_account(w->ledger, LEDGER_ACCOUNT_USER, "demo", &demo, NULL);
    ledger_transfer_t t = {ledger_system(w->ledger, LEDGER_SYSTEM_EXTERNAL), demo, 10000000, LEDGER_CODE_TOPUP};
    ledger_posting_t p = {.state = LEDGER_POSTED, .code = LEDGER_CODE_TOPUP, .transfers = &t, .ntransfers = 1};
    ledger_id_new(&p.id);
    ledger_result_t r;
    CHECK(ledger_submit_wait(w->ledger, &p, &r, NULL) == ACC_OK);
}

static void setup(world_t *w, const char *name) { setup_with(w, name, 0); }

static void teardown(world_t *w) {
    rt_queue_free(w->queue);
    rt_metered_close(w->metered);
    acc_err err = {0};
    CHECK_MSG(ledger_check(w->ledger, meter_check_event, w->ledger, NULL, &err) == ACC_OK, "check: %s", err.msg);
    meter_close(w->meter);
    ledger_close(w->ledger);
    registry_close(w->reg);
    free(w->http_request);
}

/* A sandbox running script with a session of the world's; the caller closes both. */
static sandbox_t *agent(world_t *w, const char *script, const meter_agent_t *ag, const char *const *models,
                        size_t nmodels, rt_session_t **s) {
    rt_session_config_t sc = {.reg = w->reg, .payer = "demo", .session = "t-session", .agent = ag,
                              .models = models, .nmodels = nmodels, .poster = rt_queue_poster(w->queue)};
    acc_err err = {0};
    CHECK(rt_session_open(w->metered, &sc, s, &err) == ACC_OK);
    sandbox_provider_t p = rt_session_provider(*s);
    sandbox_t *sb = sandbox_open(NULL, &p, NULL);
    CHECK(sandbox_start_load(sb, "=t", script, strlen(script), NULL) == ACC_OK);
    CHECK(rt_run_turn(sb, s, w->queue) == SANDBOX_DONE);
    return sb;
}

static const char chat_script[] =
    "return { on_message = function(session, text)\n"
    "  return models.call('t/chat', { prompt = text, max_tokens = 200 }).text\n"
    "end }\n";

/* One message to a sandbox running chat_script, the upstream answering `output`. Returns the
 * turn's receipt (the session's last). */
static const rt_receipt_t *chat(world_t *w, sandbox_t *sb, rt_session_t *s, const char *output) {
    rt_session_clear_receipts(s);
    CHECK(sandbox_start_message(sb, "tell me about fruit", 19, NULL) == ACC_OK);
    sandbox_status_t st = sandbox_run(sb);
    CHECK(st == SANDBOX_WAITING && w->pending_http);
    if (w->pending_http) {
        acc_buf resp = ACC_BUF_INIT;
        acc_buf_puts(&resp, "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":");
        acc_buf_json_string(&resp, output, strlen(output));
        acc_buf_puts(&resp, "},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":30}}");
        rt_http_call_t *hc = w->pending_http;
        w->pending_http = NULL;
        rt_http_done(hc, 1, resp.data, resp.len);
        acc_buf_free(&resp);
    }
    CHECK(rt_run_turn(sb, &s, w->queue) == SANDBOX_DONE);
    size_t len;
    const char *reply = sandbox_reply(sb, &len);
    CHECK_MSG(reply && strcmp(reply, output) == 0, "reply: %s", reply ? reply : sandbox_errmsg(sb));
    return rt_session_receipts(s);
}

static ledger_amount_t paid(const rt_receipt_t *r, meter_role_t role, const char *payee) {
    ledger_amount_t sum = 0;
    for (size_t i = 0; r && i < r->nlines; i++)
        if (r->lines[i].role == role && (!payee || strcmp(r->lines[i].payee, payee) == 0)) sum += r->lines[i].amount;
    return sum;
}

static void test_attribution_pays_the_right_contributors_and_only_them(void) {
    world_t w;
    setup(&w, "attr");
    rt_session_t *s;
    sandbox_t *sb = agent(&w, chat_script, NULL, NULL, 0, &s);
    /* Each costs 1000 + ceil((5*1000 + 30*2000)/1000) = 1065, split by [2000, 1000, 7000] bps into
     * 213, 106.5 and 745.5: the one unit left goes to the tie's lower index, the declared share. */

    /* 1. an exact copy of Alice's record: the whole data share is hers */
    const rt_receipt_t *r = chat(&w, sb, s, records[0].text);
    CHECK(r && r->status == ACC_OK && r->cost == 1065);
    ledger_amount_t data = r ? r->cost - paid(r, METER_ROLE_OWNER, NULL) - paid(r, METER_ROLE_SHARE, NULL) : 0;
    CHECK_EQ(paid(r, METER_ROLE_SPAN, addr[ALICE]), data);
    CHECK_EQ(paid(r, METER_ROLE_SPAN, NULL), data);
    CHECK(data > 700);
    CHECK_EQ(paid(r, METER_ROLE_SHARE, SHARE), 107);

    /* 2. lightly edited: case, punctuation and spacing changed, still Bob's */
    r = chat(&w, sb, s, "FIGS are pollinated -- inside the fruit, by tiny WASPS that crawl through   a narrow opening!");
    CHECK(paid(r, METER_ROLE_SPAN, addr[BOB]) > 700);
    CHECK_EQ(paid(r, METER_ROLE_SPAN, NULL), paid(r, METER_ROLE_SPAN, addr[BOB]));

    /* 3. novel text: no data share to anyone but the owner */
    r = chat(&w, sb, s, "Bananas are berries while strawberries are not, botanically speaking, which surprises people.");
    CHECK_EQ(paid(r, METER_ROLE_SPAN, NULL), 0);
    CHECK(r && paid(r, METER_ROLE_OWNER, OWNER) == r->cost - paid(r, METER_ROLE_SHARE, NULL));

    /* 4. a near miss: seven tokens of Carol's record (k = 8) inside novel text pay nothing */
    r = chat(&w, sb, s, "Honestly, apple trees need a cold winter rest, said nobody at the market today.");
    CHECK_EQ(paid(r, METER_ROLE_SPAN, NULL), 0);
    /* ...and eight of them do */
    r = chat(&w, sb, s, "Honestly, apple trees need a cold winter rest before, said nobody at the market today.");
    CHECK(paid(r, METER_ROLE_SPAN, addr[CAROL]) > 0);
    CHECK_EQ(paid(r, METER_ROLE_SPAN, NULL), paid(r, METER_ROLE_SPAN, addr[CAROL]));

    /* 5. half Alice, half Dave: both, by span length, and the uncovered rest to the owner */
    r = chat(&w, sb, s, "Grapes grow in tight clusters on woody vines that climb. Then: cherries ripen early and "
                        "birds often eat them before the farmers can pick the harvest.");
    ledger_amount_t a = paid(r, METER_ROLE_SPAN, addr[ALICE]), d = paid(r, METER_ROLE_SPAN, addr[DAVE]);
    CHECK(a > 0 && d > 0 && d > a); /* Dave's span is longer */
    CHECK_EQ(paid(r, METER_ROLE_SPAN, NULL), a + d);

    /* 6. a span both Alice and Dave hold: shared between them */
    r = chat(&w, sb, s, "old orchards keep heirloom varieties alive for the patient gardeners who tend them");
    a = paid(r, METER_ROLE_SPAN, addr[ALICE]), d = paid(r, METER_ROLE_SPAN, addr[DAVE]);
    CHECK(a > 0 && d > 0 && (a > d ? a - d : d - a) <= 1);
    CHECK_EQ(paid(r, METER_ROLE_SPAN, addr[BOB]) + paid(r, METER_ROLE_SPAN, addr[CAROL]), 0);

    /* the upstream got an OpenAI request for its own model name, with max_tokens */
    CHECK(w.http_request && strstr(w.http_request, "\"model\":\"upstream-chat\"") &&
          strstr(w.http_request, "\"max_tokens\":200"));
    sandbox_close(sb);
    rt_session_close(s);
    teardown(&w);
}

static void test_builtin_model_and_dataset_query_are_metered(void) {
    world_t w;
    setup(&w, "builtin");
    rt_session_t *s;
    const char *script =
        "return { on_message = function(session, text)\n"
        "  local g = models.call('t/gen', { prompt = 'figs are pollinated', max_tokens = 12 })\n"
        "  local q = datasets.query('t/fruit', 'figs grapes', { limit = 2 })\n"
        "  return g.text .. ' | ' .. #q.rows .. ' | ' .. g.usage.cost\n"
        "end }\n";
    sandbox_t *sb = agent(&w, script, NULL, NULL, 0, &s);
    CHECK(sandbox_start_message(sb, "go", 2, NULL) == ACC_OK);
    CHECK(rt_run_turn(sb, &s, w.queue) == SANDBOX_DONE);
    size_t len;
    const char *reply = sandbox_reply(sb, &len);
    CHECK_MSG(reply && strstr(reply, "inside the fruit") && strstr(reply, " | 2 | "), "reply: %s",
              reply ? reply : sandbox_errmsg(sb));
    const rt_receipt_t *g = rt_session_receipts(s), *q = g ? g->next : NULL;
    CHECK(g && g->resource == METER_MODEL && g->status == ACC_OK && g->units_out <= 12);
    /* the factory's continuation copies Bob's record: the data share is his */
    CHECK(paid(g, METER_ROLE_SPAN, addr[BOB]) > 0);
    CHECK(q && q->resource == METER_DATASET && q->cost == 10 + 2 * 20);
    CHECK(paid(q, METER_ROLE_RETRIEVAL, addr[BOB]) > 0 && paid(q, METER_ROLE_RETRIEVAL, addr[ALICE]) > 0);
    CHECK(q && paid(q, METER_ROLE_RETRIEVAL, NULL) == q->cost);
    sandbox_close(sb);
    rt_session_close(s);
    teardown(&w);
}

static void test_insufficient_funds_is_an_error_the_agent_catches(void) {
    world_t w;
    setup(&w, "funds");
    rt_session_config_t sc = {.reg = w.reg, .payer = "broke", .poster = rt_queue_poster(w.queue)};
    rt_session_t *s;
    CHECK(rt_session_open(w.metered, &sc, &s, NULL) == ACC_OK);
    sandbox_provider_t p = rt_session_provider(s);
    sandbox_t *sb = sandbox_open(NULL, &p, NULL);
    const char *script = "return { on_message = function(session, text)\n"
                         "  local ok, err = pcall(models.call, 't/gen', { prompt = 'figs' })\n"
                         "  return tostring(ok) .. ' ' .. tostring(err)\n"
                         "end }\n";
    CHECK(sandbox_start_load(sb, "=t", script, strlen(script), NULL) == ACC_OK && rt_run_turn(sb, &s, w.queue) == SANDBOX_DONE);
    CHECK(sandbox_start_message(sb, "x", 1, NULL) == ACC_OK && rt_run_turn(sb, &s, w.queue) == SANDBOX_DONE);
    const char *reply = sandbox_reply(sb, NULL);
    CHECK_MSG(reply && strstr(reply, "false models.call: insufficient_funds: account broke has 0 micro-credits available") &&
                  strstr(reply, "needed"),
              "reply: %s", reply ? reply : "");
    CHECK(rt_session_receipts(s) == NULL); /* refused before it reserved: not a call of the receipt */
    uint64_t last;
    ledger_last_seq(w.ledger, &last, NULL);
    CHECK_EQ(last, 1); /* the top-up only: nothing ran, nothing was written */
    sandbox_close(sb);
    rt_session_close(s);
    teardown(&w);
}

static void test_agent_manifest_and_message_fee(void) {
    world_t w;
    setup(&w, "agent");
    meter_agent_t ag = {.name = "fruit-bot", .version = "1.0.0", .price_per_message = 300, .price_per_session = 1000,
                        .markup_bps = 1000};
    snprintf(ag.author, sizeof ag.author, "%s", AUTHOR);
    const char *const models[] = {"t/gen"};
    const char *script = "return { on_message = function(session, text)\n"
                         "  local ok, err = pcall(models.call, 't/chat', { prompt = 'x' })\n"
                         "  local g = models.call('t/gen', { prompt = 'grapes grow', max_tokens = 5 })\n"
                         "  return tostring(ok) .. ' ' .. tostring(err)\n"
                         "end }\n";
    rt_session_t *s;
    sandbox_t *sb = agent(&w, script, &ag, models, 1, &s);
    acc_err err = {0};
    for (int turn = 0; turn < 2; turn++) {
        rt_session_clear_receipts(s);
        rt_session_set_request_id(s, turn ? "msg-2" : "msg-1");
        CHECK(rt_session_begin_message(s, &err) == ACC_OK);
        CHECK(sandbox_start_message(sb, "x", 1, NULL) == ACC_OK);
        sandbox_status_t st = rt_run_turn(sb, &s, w.queue);
        CHECK(st == SANDBOX_DONE);
        CHECK(rt_session_end_message(s, st == SANDBOX_DONE, &err) == ACC_OK);
        while (rt_session_in_flight(s)) {
            rt_answer_t *a = rt_queue_take(w.queue, -1);
            while (a) {
                rt_answer_t *n = a->next;
                rt_answer_deliver(a);
                a = n;
            }
        }
        const char *reply = sandbox_reply(sb, NULL);
        CHECK_MSG(reply && strstr(reply, "false models.call: permission: agent fruit-bot may not call model 't/chat'"), "%s",
                  reply ? reply : "");
        const rt_receipt_t *r = rt_session_receipts(s);
        const rt_receipt_t *gen = NULL, *msg = NULL;
        for (; r; r = r->next) {
            if (r->resource == METER_MODEL && r->status == ACC_OK) gen = r;
            if (r->resource == METER_MESSAGE) msg = r;
        }
        CHECK(gen && paid(gen, METER_ROLE_AUTHOR, AUTHOR) > 0); /* markup */
        CHECK(msg && msg->cost == (turn == 0 ? 1300u : 300u));
    }
    sandbox_close(sb);
    rt_session_close(s);
    teardown(&w);
}


/* --- lua models --- */

static void register_lua(world_t *w, const char *name, const char *script) {
    registry_model_t m = {.kind = REGISTRY_MODEL_LUA, .price_per_call = 100, .price_per_1k_in = 1000,
                          .price_per_1k_out = 2000, .owner_share_bps = 2000, .n_lineage = 1, .span_k = 8};
    snprintf(m.name, sizeof m.name, "%s", name);
    parse_addr(OWNER, m.owner);
    strcpy(m.lineage[0], "t/fruit");
    acc_err err = {0};
    CHECK_MSG(registry_model_register(w->reg, &m, script, strlen(script), NULL, &err) == ACC_OK, "%s", err.msg);
}

static ledger_amount_t demo_available(world_t *w) {
    ledger_account_t *demo;
    ledger_balance_t bal = {0};
    CHECK(ledger_account(w->ledger, LEDGER_ACCOUNT_USER, "demo", &demo, NULL) == ACC_OK &&
          ledger_balance(w->ledger, demo, false, &bal, NULL) == ACC_OK);
    return bal.available;
}

/* Calls whose posting fails at the commit (another connection holds the database's write lock past
 * the ledger's busy timeout): each agent gets the error, nothing is charged, and each receipt says
 * why, with the lines the call would have paid. */
static void test_a_commit_that_fails_answers_the_error_and_charges_nothing(void) {
    world_t w;
    setup_with(&w, "unbooked", 50);
    rt_session_t *s;
    const char *script =
        "return { on_message = function(session, text)\n"
        "  local ok, err = pcall(models.call, 't/gen', { prompt = 'figs are pollinated', max_tokens = 12 })\n"
        "  local ok2, err2 = pcall(datasets.query, 't/fruit', 'figs grapes', { limit = 2 })\n"
        "  return tostring(ok) .. ' ' .. tostring(err) .. ' | ' .. tostring(ok2) .. ' ' .. tostring(err2)\n"
        "end }\n";
    sandbox_t *sb = agent(&w, script, NULL, NULL, 0, &s);
    ledger_amount_t before = demo_available(&w);
    char path[256];
    snprintf(path, sizeof path, "%s/unbooked.db", dir);
    sqlite3 *other;
    CHECK(sqlite3_open(path, &other) == SQLITE_OK);
    CHECK(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(sandbox_start_message(sb, "go", 2, NULL) == ACC_OK);
    CHECK(rt_run_turn(sb, &s, w.queue) == SANDBOX_DONE);
    CHECK(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(other);
    const char *reply = sandbox_reply(sb, NULL);
    CHECK_MSG(reply && strstr(reply, "false models.call: ") && strstr(reply, "the call could not be booked: ") &&
                  strstr(reply, " | false datasets.query: "),
              "reply: %s", reply ? reply : sandbox_errmsg(sb));
    const rt_receipt_t *g = rt_session_receipts(s), *q = g ? g->next : NULL;
    CHECK(g && g->resource == METER_MODEL && g->status != ACC_OK && g->cost == 0 && g->cut == 0 && g->units_out > 0);
    CHECK(g && g->nlines > 0 && paid(g, METER_ROLE_SPAN, addr[BOB]) > 0 && g->error[0] && strcmp(g->name, "t/gen") == 0);
    CHECK(q && q->resource == METER_DATASET && q->status != ACC_OK && q->cost == 0 && q->nlines > 0 && q->error[0]);
    CHECK(!q || !q->next);
    CHECK_EQ(demo_available(&w), before);
    sandbox_close(sb);
    rt_session_close(s);
    teardown(&w);
}

/* One message to an agent that calls `model` with prompt and returns what it got (or, the call
 * failing, "ERR " and the error it caught). The reply; the caller frees it. */
static char *ask_lua(world_t *w, sandbox_t *sb, rt_session_t *s, const char *prompt) {
    rt_session_clear_receipts(s);
    CHECK(sandbox_start_message(sb, prompt, strlen(prompt), NULL) == ACC_OK);
    CHECK_MSG(rt_run_turn(sb, &s, w->queue) == SANDBOX_DONE, "%s", sandbox_errmsg(sb));
    const char *reply = sandbox_reply(sb, NULL);
    return strdup(reply ? reply : "");
}

static const char lua_caller[] =
    "return { on_message = function(session, text)\n"
    "  local model, prompt = text:match('^(%S+) (.*)$')\n"
    "  local ok, r = pcall(models.call, model, { prompt = prompt, max_tokens = 12 })\n"
    "  if not ok then return 'ERR ' .. tostring(r) end\n"
    "  return r.text .. ' |' .. r.finish_reason .. ' ' .. r.usage.prompt_tokens .. ' ' .. r.usage.completion_tokens ..\n"
    "    ' ' .. r.usage.cost\n"
    "end }\n";

static void test_lua_model_answers_is_charged_and_attributed(void) {
    world_t w;
    setup(&w, "lua");
    /* echoes the prompt: streamed in two parts, then the rest returned */
    register_lua(&w, "t/echo",
                 "local calls = 0\n"
                 "return { on_message = function(session, req)\n"
                 "  calls = calls + 1\n"
                 "  local r = json.decode(req)\n"
                 "  local p = r.prompt or r.messages[#r.messages].content .. ' ' .. r.max_tokens\n"
                 "  session.send(p:sub(1, 10))\n"
                 "  return p:sub(11) .. (calls > 1 and ' (state kept)' or '')\n"
                 "end }\n");
    rt_session_t *s;
    sandbox_t *sb = agent(&w, lua_caller, NULL, NULL, 0, &s);
    ledger_amount_t before = demo_available(&w);

    /* Bob's record, 11 words in and out: 100 + ceil((11*1000 + 11*2000)/1000) = 133 */
    char *reply = ask_lua(&w, sb, s, "t/echo Figs are pollinated inside the fruit by tiny wasps that crawl");
    CHECK_STREQ(reply, "Figs are pollinated inside the fruit by tiny wasps that crawl |stop 11 11 133");
    free(reply);
    const rt_receipt_t *r = rt_session_receipts(s);
    CHECK(r && r->resource == METER_MODEL && r->status == ACC_OK && r->cost == 133 && r->units_in == 11 &&
          r->units_out == 11);
    /* the owner's 2000 bps (26.6, rounded up as the larger remainder); the other 106 is data: an
     * 11-word copy of Bob's record, k = 8 */
    CHECK_EQ(paid(r, METER_ROLE_OWNER, NULL), 27);
    CHECK_EQ(paid(r, METER_ROLE_SPAN, addr[BOB]), 106);
    CHECK_EQ(paid(r, METER_ROLE_SPAN, NULL), 106);
    CHECK_EQ(demo_available(&w), before - 133);

    /* a fresh sandbox per call: no state carried from the last caller */
    reply = ask_lua(&w, sb, s, "t/echo novel words here");
    CHECK_STREQ(reply, "novel words here |stop 3 3 109");
    free(reply);

    /* output past max_tokens (12) is cut there */
    reply = ask_lua(&w, sb, s, "t/echo one two three four five six seven eight nine ten eleven twelve thirteen fourteen");
    CHECK_STREQ(reply, "one two three four five six seven eight nine ten eleven twelve |length 14 12 138");
    free(reply);
    r = rt_session_receipts(s);
    CHECK(r && r->status == ACC_OK && r->units_out == 12 && paid(r, METER_ROLE_SPAN, NULL) == 0);

    /* the OpenAI endpoint's way: a call for no sandbox, answered through the poster */
    rt_session_clear_receipts(s);
    const char req[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"Grapes grow in tight clusters on woody vines\"}]}";
    sandbox_call_t call = {.id = 7, .kind = SANDBOX_CALL_MODEL, .name = "t/echo", .name_len = 6, .json = req,
                           .json_len = sizeof req - 1};
    CHECK(rt_session_call(s, &call) == 0);
    rt_answer_t *a = rt_queue_take(w.queue, 5000);
    CHECK(a && a->ok && a->call_id == 7 && !a->next);
    /* the script got the messages as sent, and max_tokens (the default, 1024) */
    CHECK_MSG(a && strstr(a->text, "{\"text\":\"Grapes grow in tight clusters on woody vines 1024\",\"model\":\"t/echo\"") &&
                  strstr(a->text, "\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":9,\"cost\":"),
              "%.*s", a ? (int)a->len : 0, a ? a->text : "");
    if (a) rt_answer_deliver(a);
    r = rt_session_receipts(s);
    CHECK(r && r->status == ACC_OK && paid(r, METER_ROLE_SPAN, addr[ALICE]) > 0);
    sandbox_close(sb);
    rt_session_close(s);
    teardown(&w);
}


/* --- output past max_tokens --- */

/* The cut made as a text arrives in pieces passes on exactly what the cut of the whole text passes
 * on, wherever the pieces split it (inside a word, a UTF-8 character, an apostrophe's join) and
 * whatever the limit; it never takes back what it passed on. */
static void test_output_limit_cuts_a_streamed_text_as_the_whole(void) {
    static const char *const texts[] = {
        "one two three four five six seven eight nine ten",
        "  Don't stop: it's the cafe\xcc\x81's \"best\" (CAF\xc3\x89) -- really!  ",
        "co\xe2\x80\x8bpy words, then \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e and 42.5 numbers...",
        "x", "", "...,,,   ", "a'b'c d' 'e",
    };
    static const size_t steps[] = {1, 2, 3, 5, 7, 1000};
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++) {
        const char *text = texts[t];
        size_t len = strlen(text);
        for (uint64_t max = 0; max <= 14; max++) {
            size_t whole = rt_output_cut(text, len, max);
            for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
                rt_output_limit_t l = {.max = max};
                size_t passed = 0;
                for (size_t at = 0; at < len;) {
                    at = at + steps[k] < len ? at + steps[k] : len;
                    size_t keep = rt_output_limit_feed(&l, text, at);
                    CHECK_MSG(keep >= passed && keep <= at, "text %zu max %" PRIu64 " step %zu: %zu then %zu of %zu",
                              t, max, steps[k], passed, keep, at);
                    passed = keep;
                }
                if (!l.reached) passed = len; /* the end: what waited goes too */
                CHECK_MSG(passed == whole && l.reached == (whole < len),
                          "text %zu max %" PRIu64 " step %zu: passed %zu, the whole cut %zu (reached %d)", t, max,
                          steps[k], passed, whole, l.reached);
            }
        }
    }
    CHECK_EQ(rt_output_cut("one two three", 13, 2), 7);
    CHECK_EQ(rt_output_cut("one two three", 13, 3), 13);
    CHECK_EQ(rt_output_cut("one two three", 13, 0), 13);
}

/* The upstream plays an http model that ignores max_tokens (5 here). */
static const char limited_script[] =
    "return { on_message = function(session, text)\n"
    "  local r = models.call('t/chat', { prompt = 'fruit', max_tokens = 5 })\n"
    "  return r.text .. ' |' .. r.finish_reason .. ' ' .. r.usage.prompt_tokens .. ' ' .. r.usage.completion_tokens ..\n"
    "    ' ' .. r.usage.cost\n"
    "end }\n";

/* One message to a sandbox running limited_script, the upstream answering content with usage (a
 * JSON object, or NULL for none). The reply; the caller frees it. */
static char *ask_limited(world_t *w, sandbox_t *sb, rt_session_t *s, const char *content, const char *usage) {
    rt_session_clear_receipts(s);
    CHECK(sandbox_start_message(sb, "go", 2, NULL) == ACC_OK);
    CHECK(sandbox_run(sb) == SANDBOX_WAITING && w->pending_http);
    if (w->pending_http) {
        acc_buf resp = ACC_BUF_INIT;
        acc_buf_puts(&resp, "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":");
        acc_buf_json_string(&resp, content, strlen(content));
        acc_buf_puts(&resp, "},\"finish_reason\":\"stop\"}]");
        if (usage) acc_buf_printf(&resp, ",\"usage\":%s", usage);
        acc_buf_putc(&resp, '}');
        rt_http_call_t *hc = w->pending_http;
        w->pending_http = NULL;
        rt_http_done(hc, 1, resp.data, resp.len);
        acc_buf_free(&resp);
    }
    CHECK_MSG(rt_run_turn(sb, &s, w->queue) == SANDBOX_DONE, "%s", sandbox_errmsg(sb));
    const char *reply = sandbox_reply(sb, NULL);
    return strdup(reply ? reply : "");
}

/* An http model's answer past max_tokens is cut there, as a lua model's is: the caller gets at most
 * max_tokens and pays for what it got, never above what was reserved. Priced 1000 a call, 1000 and
 * 2000 per 1k tokens in and out: 5 in and 5 out cost 1000 + 5 + 10. */
static void test_http_model_past_max_tokens_is_cut_and_charged_as_passed_on(void) {
    world_t w;
    setup(&w, "limit");
    rt_session_t *s;
    sandbox_t *sb = agent(&w, limited_script, NULL, NULL, 0, &s);
    ledger_amount_t before = demo_available(&w);
    const char *many = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20";

    /* it says it wrote 20 tokens: 5 are passed on and charged */
    char *reply = ask_limited(&w, sb, s, many, "{\"prompt_tokens\":5,\"completion_tokens\":20}");
    CHECK_STREQ(reply, "w1 w2 w3 w4 w5 |length 5 5 1015");
    free(reply);
    const rt_receipt_t *r = rt_session_receipts(s);
    CHECK(r && r->status == ACC_OK && r->units_out == 5 && r->cost == 1015);
    CHECK_EQ(demo_available(&w), before - 1015);

    /* it reports nothing: our count of what is passed on (and of the prompt, 1 word) */
    reply = ask_limited(&w, sb, s, many, NULL);
    CHECK_STREQ(reply, "w1 w2 w3 w4 w5 |length 1 5 1011");
    free(reply);
    r = rt_session_receipts(s);
    CHECK(r && r->units_out == 5 && r->cost == 1011);

    /* it says it wrote 9 tokens, which are 3 of our words: those are passed on, and the 5 tokens
     * the caller could be charged for are charged (its finish says the limit was reached) */
    reply = ask_limited(&w, sb, s, "unbelievably, antidisestablishmentarianism!", "{\"prompt_tokens\":5,\"completion_tokens\":9}");
    CHECK_STREQ(reply, "unbelievably, antidisestablishmentarianism! |length 5 5 1015");
    free(reply);

    /* within the limit: as it said */
    reply = ask_limited(&w, sb, s, "w1 w2 w3", "{\"prompt_tokens\":5,\"completion_tokens\":3}");
    CHECK_STREQ(reply, "w1 w2 w3 |stop 5 3 1011");
    free(reply);
    CHECK_EQ(demo_available(&w), before - 1015 - 1011 - 1015 - 1011);
    sandbox_close(sb);
    rt_session_close(s);
    teardown(&w); /* the ledger checks */
}

/* ledger_find's callback: the posting's usage event, decoded (the caller frees it). */
typedef struct found_event {
    meter_event_t ev;
    bool found;
} found_event_t;
static int take_event(void *ud, const ledger_entry_t *en) {
    found_event_t *f = ud;
    acc_err err = {0};
    CHECK_MSG(meter_event_decode(en->event, en->event_len, &f->ev, &err) == ACC_OK, "%s", err.msg);
    f->found = true;
    return ACC_OK;
}

/* A streamed call cancelled (its client left) or timed out after some of its deltas were passed on
 * is charged for those: the prompt and their tokens, never above the reservation, its event posted
 * and saying how it ended. One that passed nothing on is voided whole. limited_script: max_tokens
 * 5, prompt 'fruit' (1 word); 1000 a call, 1 per token in, 2 per token out. */
static void test_http_call_cut_short_is_charged_for_what_was_passed_on(void) {
    world_t w;
    setup(&w, "cut");
    rt_session_t *s;
    sandbox_t *sb = agent(&w, limited_script, NULL, NULL, 0, &s);
    ledger_amount_t before = demo_available(&w);
    static const struct {
        int code;
        const char *passed, *reply;
        uint64_t out;
        ledger_amount_t cost;
    } cases[] = {
        {ACC_ECANCELLED, "w1 w2 w", "w1 w2 w |cancelled 1 3 1007", 3, 1007},
        {ACC_ETIMEOUT, "w1 ", "w1  |timeout 1 1 1003", 1, 1003},
        /* more than max_tokens handed over (a broken host): what is passed on is cut, 5 charged */
        {ACC_ECANCELLED, "w1 w2 w3 w4 w5 w6 w7", "w1 w2 w3 w4 w5 |cancelled 1 5 1011", 5, 1011},
    };
    ledger_amount_t paid = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rt_session_clear_receipts(s);
        CHECK(sandbox_start_message(sb, "go", 2, NULL) == ACC_OK);
        CHECK(sandbox_run(sb) == SANDBOX_WAITING && w.pending_http);
        rt_http_call_t *hc = w.pending_http;
        w.pending_http = NULL;
        if (hc) rt_http_cut(hc, cases[i].code, "the client disconnected", cases[i].passed, strlen(cases[i].passed));
        CHECK_MSG(rt_run_turn(sb, &s, w.queue) == SANDBOX_DONE, "%s", sandbox_errmsg(sb));
        CHECK_STREQ(sandbox_reply(sb, NULL), cases[i].reply);
        const rt_receipt_t *r = rt_session_receipts(s);
        CHECK(r && r->status == ACC_OK && r->cut == cases[i].code && r->units_in == 1 && r->units_out == cases[i].out &&
              r->cost == cases[i].cost);
        CHECK_MSG(r && strstr(r->error, "the client disconnected"), "%s", r ? r->error : "");
        paid += cases[i].cost;
        CHECK_EQ(demo_available(&w), before - paid);
        found_event_t f = {0};
        acc_err err = {0};
        CHECK(r && ledger_find(w.ledger, &r->id, take_event, &f, &err) == ACC_OK && f.found);
        CHECK(f.ev.state == LEDGER_POSTED && f.ev.error_code == cases[i].code && f.ev.cost == cases[i].cost &&
              f.ev.cost <= f.ev.reserved && f.ev.units_out == cases[i].out);
        CHECK_MSG(strstr(f.ev.error, "charged for the ") && strstr(f.ev.error, "the client disconnected"), "%s",
                  f.ev.error);
        meter_event_free(&f.ev);
    }
    /* nothing passed on: voided whole, as any failure */
    rt_session_clear_receipts(s);
    CHECK(sandbox_start_message(sb, "go", 2, NULL) == ACC_OK);
    CHECK(sandbox_run(sb) == SANDBOX_WAITING && w.pending_http);
    if (w.pending_http) rt_http_cut(w.pending_http, ACC_ECANCELLED, "the client disconnected", "", 0);
    w.pending_http = NULL;
    rt_run_turn(sb, &s, w.queue);
    const rt_receipt_t *r = rt_session_receipts(s);
    CHECK(r && r->status == ACC_EUPSTREAM && r->cost == 0 && !r->cut);
    CHECK_EQ(demo_available(&w), before - paid);
    sandbox_close(sb);
    rt_session_close(s);
    teardown(&w); /* the ledger checks */
}

/* Hostile or broken lua models: each call fails with the cause, nothing is charged, no sandbox
 * state leaks, and the ledger still checks (teardown). */
static void test_hostile_lua_models_fail_cleanly_and_charge_nothing(void) {
    world_t w;
    setup(&w, "lua-hostile");
    static const struct {
        const char *name, *script, *error;
    } cases[] = {
        /* the instruction limit, or on a slow build (a sanitizer) the time limit (1000 ms) first */
        {"t/loop", "return { on_message = function(s, r) while true do end end }",
         "ERR models.call: limit_exceeded: model 't/loop': the script hit the "},
        /* C work (string.rep) is counted too */
        {"t/rep", "return { on_message = function(s, r) local x = 0 while true do x = #string.rep('x', 100000) end end }",
         "ERR models.call: limit_exceeded: model 't/rep': the script hit the "},
        {"t/bomb", "return { on_message = function(s, r) local t = {} while true do t[#t + 1] = ('x'):rep(65536) .. #t end end }",
         "ERR models.call: limit_exceeded: model 't/bomb': the script hit the memory limit (16 MiB)"},
        {"t/boom", "return { on_message = function(s, r) error('boom') end }",
         "ERR models.call: script_error: model 't/boom': script error: t/boom:1: boom"},
        {"t/table", "return { on_message = function(s, r) return { text = 'x' } end }",
         "ERR models.call: script_error: model 't/table': script error: on_message must return a string or nil (it returned a table)"},
        {"t/nil", "return { on_message = function(s, r) end }",
         "ERR models.call: script_error: model 't/nil': script error: on_message returned nil and sent nothing"},
        {"t/flood", "return { on_message = function(s, r) for i = 1, 100 do s.send(('x'):rep(10000)) end end }",
         "ERR models.call: limit_exceeded: model 't/flood': the script hit the output limit (256 KiB)"},
        /* no host calls: a lua model cannot spend its caller's money */
        {"t/spend", "return { on_message = function(s, r) return models.call('t/gen', 'figs').text end }",
         "ERR models.call: script_error: model 't/spend': script error: t/spend:1: models.call: a lua model cannot call models or datasets"},
    };
    size_t n = sizeof cases / sizeof *cases;
    for (size_t i = 0; i < n; i++) register_lua(&w, cases[i].name, cases[i].script);
    rt_session_t *s;
    sandbox_t *sb = agent(&w, lua_caller, NULL, NULL, 0, &s);
    ledger_amount_t before = demo_available(&w);
    for (size_t i = 0; i < n; i++) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s figs are pollinated", cases[i].name);
        char *reply = ask_lua(&w, sb, s, msg);
        CHECK_MSG(strncmp(reply, cases[i].error, strlen(cases[i].error)) == 0, "%s: got '%s'", cases[i].name, reply);
        free(reply);
        const rt_receipt_t *r = rt_session_receipts(s);
        CHECK_MSG(r && r->status != ACC_OK && r->cost == 0 && r->nlines == 0 && !r->next, "%s", cases[i].name);
        if (i == 0)
            CHECK_MSG(r && (strstr(r->error, "the instruction limit (20000000)") || strstr(r->error, "the time limit (1000 ms)")),
                      "%s", r ? r->error : "");
    }
    /* nothing charged: every reservation was voided (and recorded as a voided usage event) */
    CHECK_EQ(demo_available(&w), before);
    /* and the agent's sandbox is fine: a good model still answers */
    register_lua(&w, "t/ok", "return { on_message = function(s, r) return 'fine' end }");
    char *reply = ask_lua(&w, sb, s, "t/ok x");
    CHECK_STREQ(reply, "fine |stop 1 1 103");
    free(reply);
    sandbox_close(sb);
    rt_session_close(s);
    teardown(&w);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    if (test_scratch_dir(dir, sizeof dir, "metered") != 0) return 1;
    for (int i = 0; i < 4; i++) {
        uint8_t a[20];
        parse_addr(who[i], a);
        eth_address_to_text(a, addr[i]);
    }
    RUN(test_attribution_pays_the_right_contributors_and_only_them);
    RUN(test_builtin_model_and_dataset_query_are_metered);
    RUN(test_insufficient_funds_is_an_error_the_agent_catches);
    RUN(test_agent_manifest_and_message_fee);
    RUN(test_a_commit_that_fails_answers_the_error_and_charges_nothing);
    RUN(test_lua_model_answers_is_charged_and_attributed);
    RUN(test_hostile_lua_models_fail_cleanly_and_charge_nothing);
    RUN(test_output_limit_cuts_a_streamed_text_as_the_whole);
    RUN(test_http_model_past_max_tokens_is_cut_and_charged_as_passed_on);
    RUN(test_http_call_cut_short_is_charged_for_what_was_passed_on);
    factory_cache_clear();
    registry_spans_clear();
    test_remove_dir(dir);
    return check_finish("metered");
}
