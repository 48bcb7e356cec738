/*
 * openapi.c: GET /v1/openapi.json: the HTTP API as an OpenAPI 3.0 document, made from the table
 * below (one row per operation, its schemas by name), so it lists what api.c routes and nothing
 * else (a test compares the two). The WebSocket protocol at /v1/sessions, which OpenAPI cannot
 * describe, is in the document's description and under x-websocket.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/internal.h"

typedef struct op_desc {
    const char *method, *path, *tag, *summary;
    const char *access;   /* "public", "key", "admin" */
    const char *request;  /* schema name of the JSON body, or NULL */
    const char *response; /* schema name of the 2xx body, or NULL (text) */
    const char *query;    /* "name:type:description;..." */
} op_desc;

static const op_desc ops[] = {
    {"get", "/healthz", "server", "Liveness: status, uptime, sessions, connections, workers, signer, event loop", "public", NULL, "Health", NULL},
    {"get", "/metrics", "server", "Counters and gauges in the Prometheus text format (0.0.4)", "public", NULL, NULL, NULL},
    {"get", "/v1/openapi.json", "server", "This document", "public", NULL, NULL, NULL},
    {"get", "/v1/models", "models",
     "Models callers can name (OpenAI's list shape, with accrue's prices, lineage and shares; an http model's endpoint "
     "to the admin key only)",
     "key", NULL, "ModelList", NULL},
    {"post", "/v1/models", "models", "Register an http model (an OpenAI-compatible endpoint) or a lua model (its script, which must load)", "admin", "ModelRegistration",
     "Model", NULL},
    {"get", "/v1/models/{name}", "models", "One model (an http model's endpoint to the admin key only)", "public",
     NULL, "Model", NULL},
    {"post", "/v1/chat/completions", "openai",
     "OpenAI-compatible chat completion of any registered model, metered and attributed; stream: true answers as "
     "server-sent events; X-Request-Id is kept on the usage event",
     "key", "ChatCompletionRequest", "ChatCompletion", NULL},
    {"get", "/v1/agents", "agents", "The marketplace: listed agents, searched, filtered and sorted", "public", NULL,
     "AgentList",
     "search:string:case-insensitive text in the name, description or tags;tag:string:one tag exactly;"
     "sort:string:usage (default), revenue or new;limit:integer:1 to 200 (50);offset:integer:agents to skip"},
    {"post", "/v1/agents", "agents",
     "Deploy a version of an agent: the manifest, the script and the author's EIP-191 signature over "
     "keccak256(canonical manifest || keccak256(script)) (accrue deploy --print-digest)",
     "key", "Deploy", "Agent", NULL},
    {"get", "/v1/agents/{name}", "agents", "One agent (NAME or NAME@VERSION) with its versions and usage", "public", NULL,
     "Agent", NULL},
    {"get", "/v1/agents/{name}:usage", "agents", "An agent's sessions, messages and revenue per UTC day", "public", NULL,
     "Report", "days:integer:how many days back"},
    {"get", "/v1/datanets", "datanets", "Every datanet", "public", NULL, "DatanetList", NULL},
    {"post", "/v1/datanets", "datanets", "Create a datanet", "admin", "DatanetSpec", "Datanet", NULL},
    {"get", "/v1/datanets/{name}", "datanets", "One datanet", "public", NULL, "Datanet", NULL},
    {"post", "/v1/datanets/{name}:contribute", "datanets",
     "Contribute a record signed by its contributor (EIP-191 over keccak256(datanet || 0x00 || text))", "key",
     "Contribution", "RecordAdded", NULL},
    {"post", "/v1/datanets/{name}:review", "datanets", "The owner accepts or rejects a pending record (signed)", "key",
     "Review", "ReviewResult", NULL},
    {"post", "/v1/datanets/{name}:query", "datanets",
     "A full-text query, metered: the caller pays, the returned records' contributors earn", "key", "Query",
     "QueryResult", NULL},
    {"get", "/v1/datanets/{name}:records", "datanets", "A datanet's records, in id order", "public", NULL, "RecordList",
     "status:string:accepted (default), pending or rejected;after:integer:records with a larger id;"
     "limit:integer:1 to 500 (50)"},
    {"get", "/v1/datanets/{name}:contributors", "datanets",
     "Who contributed to a datanet: records by status, what each earned", "public", NULL, "Report", NULL},
    {"get", "/v1/records/{id}", "datanets", "One record, any datanet (what evidence cites)", "public", NULL, "Report",
     NULL},
    {"get", "/v1/earnings/{address}", "balances", "What earned an address: by source and role, by record", "public",
     NULL, "Report", "scan:integer:how many postings to read back at most"},
    {"get", "/v1/batches", "settlement", "Settlement batches, newest first (with an address: those owing it)", "public",
     NULL, "Report", "address:string:only batches with an entry for it;limit:integer:how many"},
    {"get", "/v1/batches/{seq}", "settlement",
     "One signed batch: entries, and the EIP-712 payload (eth_signTypedData_v4 shape) with digest, signature, signer",
     "public", NULL, "Report", NULL},
    {"get", "/v1/batches/{seq}/proofs/{address}", "settlement",
     "An entry's Merkle proof, as the claim contract's claim() takes it", "public", NULL, "Report", NULL},
    {"get", "/v1/accounts", "accounts", "Every account", "admin", NULL, "AccountList", NULL},
    {"post", "/v1/accounts", "accounts", "Create an account; its API key is in the answer, once", "admin",
     "AccountSpec", "AccountCreated", NULL},
    {"post", "/v1/accounts/{name}:topup", "accounts", "Credit an account (a top-up from \"external\")", "admin", "Topup",
     "TopupResult", NULL},
    {"post", "/v1/accounts/{name}:revoke", "accounts", "Revoke every live key of an account", "admin", NULL,
     "RevokeResult", NULL},
    {"post", "/v1/accounts/{name}:keys", "accounts", "Give an account a new API key (in the answer, once)", "admin", NULL,
     "KeyCreated", NULL},
    {"get", "/v1/balance", "balances", "The caller's account: available, pending and what it holds", "key", NULL,
     "Balance", NULL},
    {"get", "/v1/balance/{who}", "balances",
     "An address's balance (anyone: earned, accrued, settled) or an account's (its own key, or the admin's)",
     "public", NULL, "Balance", NULL},
    {"get", "/v1/usage", "usage", "The caller's metered calls (the admin's: everyone's), each with its attribution",
     "key", NULL, "UsageList",
     "agent:string:only this agent's calls;session:string:only this session's;payee:string:only calls that paid "
     "this address;since:integer:Unix ms;limit:integer:1 to 1000 (100);from_seq:integer:ledger order from this seq "
     "(else newest first)"},
    {"get", "/v1/usage/{call}", "usage", "One call: who was paid what, and why (spans and records)", "key", NULL,
     "UsageEvent", NULL},
};

/* Schemas, as JSON text, by name. */
static const char *const schemas[][2] = {
    {"Error", "{\"type\":\"object\",\"properties\":{\"error\":{\"type\":\"object\",\"properties\":{\"code\":{\"type\":"
              "\"string\",\"description\":\"stable: bad_request, unauthorized, forbidden, not_found, conflict, "
              "insufficient_funds, limit_exceeded, payload_too_large, method_not_allowed, upstream_error, timeout, "
              "unavailable, bad_signature, internal\"},\"message\":{\"type\":\"string\"}}}}}"},
    {"Health", "{\"type\":\"object\",\"properties\":{\"status\":{\"type\":\"string\"},\"uptime_s\":{\"type\":"
               "\"integer\"},\"sessions\":{\"type\":\"integer\"},\"connections\":{\"type\":\"integer\"},\"workers\":"
               "{\"type\":\"integer\"},\"signer\":{\"type\":\"string\"},\"event_loop\":{\"type\":\"string\","
               "\"enum\":[\"libuv\",\"poll\"],\"description\":\"poll: lws's libuv plugin is missing, and held connections "
               "slow the active ones\"}}}"},
    {"Price", "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"},\"description\":\"micro-credits\"}"},
    {"Share", "{\"type\":\"object\",\"required\":[\"address\",\"bps\"],\"description\":\"a declared fixed share of "
              "every call's cost, for data the model learned elsewhere\",\"properties\":{\"address\":{\"type\":"
              "\"string\"},\"bps\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10000}}}"},
    {"Model", "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},\"object\":{\"type\":\"string\"},"
              "\"created\":{\"type\":\"integer\"},\"owned_by\":{\"type\":\"string\"},\"kind\":{\"type\":\"string\","
              "\"enum\":[\"builtin\",\"http\",\"lua\",\"test\"]},\"price\":{\"$ref\":\"#/components/schemas/Price\"},"
              "\"owner_share_bps\":{\"type\":\"integer\"},\"span_k\":{\"type\":\"integer\"},\"lineage\":{\"type\":"
              "\"array\",\"items\":{\"type\":\"string\"}},\"shares\":{\"type\":\"array\",\"items\":{\"$ref\":"
              "\"#/components/schemas/Share\"}},\"url\":{\"type\":\"string\",\"description\":\"http, to the admin "
              "key only: the endpoint\"},\"upstream\":{\"type\":\"string\",\"description\":\"http, to the admin key "
              "only: the endpoint's model name\"},\"api_key_env\":{\"type\":\"string\",\"nullable\":true,"
              "\"description\":\"http, to the admin key only: the environment variable holding the endpoint's key\"},"
              "\"script_hash\":{\"type\":\"string\",\"description\":\"lua: keccak256 of the script, 0x and 64 hex "
              "digits\"}}}"},
    {"ModelList", "{\"type\":\"object\",\"properties\":{\"object\":{\"type\":\"string\"},\"data\":{\"type\":\"array\","
                  "\"items\":{\"$ref\":\"#/components/schemas/Model\"}}}}"},
    {"ModelRegistration",
     "{\"type\":\"object\",\"required\":[\"name\",\"owner\"],\"additionalProperties\":false,\"description\":\"kind "
     "http needs url and upstream (api_key_env optional) and takes no script; kind lua needs script (the Lua source, "
     "at most 1 MiB, which must load as a lua model: a table with on_message) and takes no url, upstream or "
     "api_key_env. The owner's share and the shares add up to at most 10000 bps.\",\"properties\":{\"name\":{\"type\":"
     "\"string\"},\"kind\":{\"type\":\"string\",\"enum\":[\"http\",\"lua\"],\"default\":\"http\"},\"owner\":{\"type\":"
     "\"string\"},\"url\":{\"type\":\"string\"},\"upstream\":{\"type\":\"string\"},\"api_key_env\":{\"type\":"
     "\"string\"},\"script\":{\"type\":\"string\"},\"price_per_call\":{\"type\":\"integer\"},"
     "\"price_per_1k_in\":{\"type\":\"integer\"},\"price_per_1k_out\":{\"type\":\"integer\"},\"owner_share_bps\":"
     "{\"type\":\"integer\",\"maximum\":10000},\"span_k\":{\"type\":\"integer\",\"maximum\":1024},\"lineage\":{\"type\":"
     "\"array\",\"items\":{\"type\":\"string\"}},\"shares\":{\"type\":\"array\",\"maxItems\":16,\"items\":{\"$ref\":"
     "\"#/components/schemas/Share\"}}}}"},
    {"ChatCompletionRequest", "{\"type\":\"object\",\"required\":[\"model\",\"messages\"],\"properties\":{\"model\":"
                              "{\"type\":\"string\"},\"messages\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
                              "\"required\":[\"role\",\"content\"],\"properties\":{\"role\":{\"type\":\"string\"},"
                              "\"content\":{\"type\":\"string\"}}}},\"max_tokens\":{\"type\":\"integer\"},\"stream\":"
                              "{\"type\":\"boolean\"},\"stream_options\":{\"type\":\"object\",\"properties\":"
                              "{\"include_usage\":{\"type\":\"boolean\"}}}}}"},
    {"ChatCompletion", "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},\"object\":{\"type\":\"string\"},"
                       "\"created\":{\"type\":\"integer\"},\"model\":{\"type\":\"string\"},\"choices\":{\"type\":\"array\","
                       "\"items\":{\"type\":\"object\"}},\"usage\":{\"type\":\"object\",\"properties\":{\"prompt_tokens\":"
                       "{\"type\":\"integer\"},\"completion_tokens\":{\"type\":\"integer\"},\"total_tokens\":{\"type\":"
                       "\"integer\"},\"cost\":{\"type\":\"integer\"},\"call\":{\"type\":\"string\"}}}}}"},
    {"Agent", "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},"
              "\"author\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"},\"tags\":{\"type\":\"array\","
              "\"items\":{\"type\":\"string\"}},\"price\":{\"$ref\":\"#/components/schemas/Price\"},\"markup_bps\":"
              "{\"type\":\"integer\"},\"limits\":{\"type\":\"object\"},\"models\":{\"type\":\"array\",\"items\":{\"type\":"
              "\"string\"}},\"datanets\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"listed\":{\"type\":"
              "\"boolean\"},\"usage\":{\"type\":\"object\"},\"versions\":{}}}"},
    {"AgentList", "{\"type\":\"object\",\"properties\":{\"agents\":{\"type\":\"array\",\"items\":{\"$ref\":"
                  "\"#/components/schemas/Agent\"}},\"offset\":{\"type\":\"integer\"},\"limit\":{\"type\":\"integer\"}}}"},
    {"Deploy", "{\"type\":\"object\",\"required\":[\"manifest\",\"script\",\"signature\"],\"properties\":{\"manifest\":"
               "{\"description\":\"the manifest: an object, or its JSON text\"},\"script\":{\"type\":\"string\"},"
               "\"signature\":{\"type\":\"string\"}}}"},
    {"Datanet", "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"owner\":{\"type\":\"string\"},"
                "\"description\":{\"type\":\"string\"},\"price\":{\"$ref\":\"#/components/schemas/Price\"},\"curation\":"
                "{\"type\":\"string\"},\"version\":{\"type\":\"integer\"},\"pending\":{\"type\":\"integer\"},\"rejected\":"
                "{\"type\":\"integer\"}}}"},
    {"DatanetList", "{\"type\":\"object\",\"properties\":{\"datanets\":{\"type\":\"array\",\"items\":{\"$ref\":"
                    "\"#/components/schemas/Datanet\"}}}}"},
    {"DatanetSpec", "{\"type\":\"object\",\"required\":[\"name\",\"owner\"],\"properties\":{\"name\":{\"type\":\"string\"},"
                    "\"owner\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"},\"price_per_query\":{\"type\":"
                    "\"integer\"},\"price_per_record\":{\"type\":\"integer\"},\"curation\":{\"type\":\"string\",\"enum\":"
                    "[\"auto\",\"review\"]}}}"},
    {"Contribution", "{\"type\":\"object\",\"required\":[\"text\",\"contributor\",\"signature\"],\"properties\":{\"text\":"
                     "{\"type\":\"string\"},\"contributor\":{\"type\":\"string\"},\"signature\":{\"type\":\"string\"}}}"},
    {"RecordAdded", "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"status\":{\"type\":\"string\"},"
                    "\"seq\":{\"type\":\"integer\"}}}"},
    {"Review", "{\"type\":\"object\",\"required\":[\"record\",\"accept\",\"signature\"],\"properties\":{\"record\":{\"type\":"
               "\"integer\"},\"accept\":{\"type\":\"boolean\"},\"signature\":{\"type\":\"string\"}}}"},
    {"ReviewResult", "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"status\":{\"type\":\"string\"}}}"},
    {"Query", "{\"type\":\"object\",\"required\":[\"text\"],\"properties\":{\"text\":{\"type\":\"string\"},\"limit\":"
              "{\"type\":\"integer\"}}}"},
    {"QueryResult", "{\"type\":\"object\",\"properties\":{\"rows\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},"
                    "\"usage\":{\"type\":\"object\"}}}"},
    {"RecordList", "{\"type\":\"object\",\"properties\":{\"records\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}}}}"},
    {"AccountList", "{\"type\":\"object\",\"properties\":{\"accounts\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}}}}"},
    {"AccountSpec", "{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\"},\"admin\":"
                    "{\"type\":\"boolean\"},\"credit\":{\"type\":\"integer\"}}}"},
    {"AccountCreated", "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"api_key\":{\"type\":\"string\"},"
                       "\"admin\":{\"type\":\"boolean\"},\"credit\":{\"type\":\"integer\"}}}"},
    {"Topup", "{\"type\":\"object\",\"required\":[\"amount\"],\"properties\":{\"amount\":{\"type\":\"integer\"}}}"},
    {"TopupResult", "{\"type\":\"object\",\"properties\":{\"account\":{\"type\":\"string\"},\"amount\":{\"type\":"
                    "\"integer\"},\"seq\":{\"type\":\"integer\"}}}"},
    {"RevokeResult", "{\"type\":\"object\",\"properties\":{\"account\":{\"type\":\"string\"},\"revoked\":{\"type\":"
                     "\"integer\"}}}"},
    {"KeyCreated", "{\"type\":\"object\",\"properties\":{\"account\":{\"type\":\"string\"},\"api_key\":{\"type\":\"string\"}}}"},
    {"Balance", "{\"type\":\"object\",\"properties\":{\"account\":{\"type\":\"string\"},\"kind\":{\"type\":\"string\"},"
                "\"unit\":{\"type\":\"string\"},\"available\":{\"type\":\"integer\"},\"pending\":{\"type\":\"integer\"},"
                "\"credits\":{\"type\":\"integer\"},\"debits\":{\"type\":\"integer\"},\"earned\":{\"type\":\"integer\"},"
                "\"accrued\":{\"type\":\"integer\"},\"settled\":{\"type\":\"integer\"}}}"},
    {"UsageEvent", "{\"type\":\"object\",\"description\":\"a metered call: its id, the request id the client knows, "
                   "session, agent, payer, resource, units, latency, reserved and charged amounts, state, and its "
                   "attribution lines (payee, role, weight, amount, evidence)\"}"},
    {"Report", "{\"type\":\"object\",\"description\":\"see the operation's summary\"}"},
    {"UsageList", "{\"type\":\"object\",\"properties\":{\"usage\":{\"type\":\"array\",\"items\":{\"$ref\":"
                  "\"#/components/schemas/UsageEvent\"}}}}"},
};

static const char description[] =
    "accrue's HTTP API. Amounts are micro-credits (10^-6 of a credit), whole numbers. Names (agents, models, "
    "datanets) may hold '/', so a name is the rest of the path and an action on it is a ':verb' suffix. Errors: "
    "{\"error\": {\"code\", \"message\"}} with a stable code (OpenAI's shape on /v1/chat/completions).\n\n"
    "WebSocket sessions: ws(s)://HOST/v1/sessions with \"Authorization: Bearer KEY\" or the subprotocols "
    "\"accrue.v1, bearer.KEY\". JSON text frames; client frames may carry an \"id\" that answers and errors name. "
    "Client: session.start {agent: NAME[@VERSION], budget?}, message {content}, cancel {run?}, session.resume "
    "{session, last_seq}. Host, each with a growing seq: session.ready {session, agent, version, author, price, "
    "budget}, run.started {run}, delta {run, index, text}, call {run, resource, name, call, status, units_in, "
    "units_out, cost, payees} (each call as soon as it is booked or refused), message {run, content}, usage {run, "
    "calls: [{resource, name, call, status, units_in, units_out, cost, payees: [{role, payee, amount}]}], cost, "
    "balance} (the run's calls summed up), run.done "
    "{run, status: completed | cancelled | failed} (always a run's last frame), error {code, message, id, run?}. "
    "Frames outside a session (errors before one, session.resumed) carry seq 0.";

static json_t *parameters(const char *path, const char *query) {
    json_t *a = json_array();
    for (const char *p = path; (p = strchr(p, '{'));) {
        const char *e = strchr(p, '}');
        json_array_append_new(a, json_pack("{s:s%,s:s,s:b,s:{s:s},s:s}", "name", p + 1, (size_t)(e - p - 1), "in",
                                           "path", "required", 1, "schema", "type", "string", "description",
                                           "a name (it may hold '/')"));
        p = e;
    }
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", query ? query : "");
    char *save = NULL;
    for (char *q = strtok_r(buf, ";", &save); q; q = strtok_r(NULL, ";", &save)) {
        char *t = strchr(q, ':'), *d = t ? strchr(t + 1, ':') : NULL;
        if (!t || !d) continue;
        *t = *d = 0;
        json_array_append_new(a, json_pack("{s:s,s:s,s:{s:s},s:s}", "name", q, "in", "query", "schema", "type", t + 1,
                                           "description", d + 1));
    }
    return a;
}

static json_t *ref(const char *name) {
    char r[128];
    snprintf(r, sizeof r, "#/components/schemas/%s", name);
    return json_pack("{s:s}", "$ref", r);
}

void rt_openapi_json(acc_buf *out) {
    json_t *paths = json_object();
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        const op_desc *o = &ops[i];
        json_t *item = json_object_get(paths, o->path);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, o->path, item);
        }
        json_t *responses = json_object();
        const char *ok = !strcmp(o->method, "post") && o->request && strcmp(o->path, "/v1/chat/completions") &&
                                 !strstr(o->path, ":query") && !strstr(o->path, ":review") && !strstr(o->path, ":topup")
                             ? "201"
                             : "200";
        json_t *content = o->response ? json_pack("{s:{s:o}}", "application/json", "schema", ref(o->response))
                                      : json_pack("{s:{s:{s:s}}}", "text/plain", "schema", "type", "string");
        json_object_set_new(responses, ok, json_pack("{s:s,s:o}", "description", "success", "content", content));
        json_object_set_new(responses, "default",
                            json_pack("{s:s,s:{s:{s:o}}}", "description", "an error naming the problem", "content",
                                      "application/json", "schema", ref("Error")));
        json_t *op = json_pack("{s:[s],s:s,s:o,s:o}", "tags", o->tag, "summary", o->summary, "parameters",
                               parameters(o->path, o->query), "responses", responses);
        if (strcmp(o->access, "public") != 0) {
            json_object_set_new(op, "security", json_pack("[{s:[]}]", "bearer"));
            if (!strcmp(o->access, "admin")) json_object_set_new(op, "x-admin", json_true());
        }
        if (o->request)
            json_object_set_new(op, "requestBody",
                                json_pack("{s:b,s:{s:{s:o}}}", "required", 1, "content", "application/json", "schema",
                                          ref(o->request)));
        json_object_set_new(item, o->method, op);
    }
    json_t *schemas_obj = json_object();
    for (size_t i = 0; i < sizeof schemas / sizeof schemas[0]; i++)
        json_object_set_new(schemas_obj, schemas[i][0], json_loads(schemas[i][1], 0, NULL));
    json_t *doc = json_pack(
        "{s:s,s:{s:s,s:s,s:s},s:o,s:{s:o,s:{s:{s:s,s:s,s:s}}},s:{s:s,s:s}}", "openapi", "3.0.3", "info", "title",
        "accrue", "version", "1", "description", description, "paths", paths, "components", "schemas", schemas_obj,
        "securitySchemes", "bearer", "type", "http", "scheme", "bearer", "description", "an accrue API key",
        "x-websocket", "path", "/v1/sessions", "subprotocol", "accrue.v1");
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (s) acc_buf_puts(out, s);
    else acc_buf_puts(out, "{}");
    free(s);
}
