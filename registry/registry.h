/*
 * registry.h: what agents call and what money is attributed to, kept in one store.
 *
 * The registry holds the accounts of users and apps (with their API keys), the datanets and their
 * contributed records (with an FTS5 index and, through hooks, the span index), the models (their
 * prices, owner share, lineage and fixed shares), and the agents of the marketplace (signed,
 * versioned, immutable). It checks every signature that gives authority (a contribution, a review,
 * a deploy, an unlisting) itself, so no caller can forget to. It never prices or splits money
 * (meters/ does), never runs Lua (a deploy takes the caller's script check as a function), and
 * never speaks HTTP.
 *
 * Store. One SQLite file (WAL, foreign keys on, synchronous=FULL), schema versioned with PRAGMA
 * user_version and upgraded in place by registry_open; a file from a newer accrue is refused
 * (ACC_EVERSION). Nothing outside registry/ sees SQL or SQLite: a PostgreSQL backend (several
 * hosts, one registry) can come behind this same header. PRAGMA user_version is the registry's;
 * another store sharing the file (the ledger) keeps its own version in a table of its own.
 *
 * Threads. A registry_t is one connection and belongs to one thread at a time; a server opens one
 * per worker (WAL lets readers run beside the one writer; a writer waits up to 5 s for another).
 *
 * Identities are Ethereum addresses (20 bytes here; text in any case on input, a mixed-case input
 * with a wrong EIP-55 checksum refused, EIP-55 on output: meters/eth/keys.h). Amounts are uint64_t
 * base units (1 unit = 10^-6 of the display currency), at most INT64_MAX (what SQLite stores).
 * Times are Unix milliseconds.
 *
 * Names (accounts, datanets, models, agents): 1 to 64 of [a-z0-9._-], in parts joined by single
 * '/' ("demo/fruit"), starting with a letter or digit. "test/..." is the built-in test provider's
 * (runtime/test_provider.h) and cannot be registered.
 *
 * What is signed (each digest is then signed as an EIP-191 personal message of its 32 bytes, which
 * is what ethers' signMessage(getBytes(digest)) and `accrue sign` do; registry_signed_digest):
 *   contribution  keccak256(datanet name || 0x00 || text)
 *   review        keccak256("accrue review" || 0x00 || datanet || 0x00 || record id || 0x00 ||
 *                           "accept" | "reject")      (the id in decimal)
 *   deploy        keccak256(canonical manifest || keccak256(script))
 *   listing       keccak256("accrue listing" || 0x00 || agent || 0x00 || version or "" || 0x00 ||
 *                           "list" | "unlist")
 * Names hold no NUL, no space and no '{', texts no NUL, and a canonical manifest starts with '{',
 * so no digest of one kind is a digest of another.
 *
 * Errors follow runtime/base/status.h: every fallible function returns ACC_OK or a negative ACC_E*
 * code and writes one line into err (NULL is fine) naming the field, flag, line or record at fault.
 * A failed call changes nothing: each writing function is one transaction (or one savepoint inside
 * the caller's registry_begin).
 *
 * Strings handed to a callback are valid during the call only; functions that return memory say
 * who frees it.
 */
#ifndef ACCRUE_REGISTRY_H
#define ACCRUE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/base/status.h"

typedef struct registry registry_t;

#define REGISTRY_NAME_MAX 64          /* bytes of a name */
#define REGISTRY_DESCRIPTION_MAX 1000 /* bytes of a description (UTF-8, no control characters but \n \t) */
#define REGISTRY_TEXT_MAX 65536       /* bytes of one record's text */
#define REGISTRY_QUERY_TEXT_MAX 4096  /* bytes of a query's text */
#define REGISTRY_QUERY_TERMS_MAX 32   /* distinct words of a query used for matching; the rest are ignored */
#define REGISTRY_QUERY_LIMIT_MAX 100  /* records one query returns at most */
#define REGISTRY_LIST_MAX 16          /* lineage datanets, fixed shares, an agent's models or datanets */
#define REGISTRY_TAGS_MAX 8
#define REGISTRY_TAG_MAX 32           /* bytes of a tag: [a-z0-9-] */
#define REGISTRY_VERSION_MAX 64       /* bytes of a semantic version */
#define REGISTRY_URL_MAX 512
#define REGISTRY_UPSTREAM_MAX 128
#define REGISTRY_ENV_MAX 128
#define REGISTRY_PARAMS_MAX 1024      /* bytes of a model's kind-specific parameters (a JSON object) */
#define REGISTRY_SCRIPT_MAX (1u << 20) /* bytes of an agent's or a Lua model's script */
#define REGISTRY_BPS_MAX 10000u       /* basis points in a whole */
#define REGISTRY_SPAN_K_DEFAULT 8     /* shortest span (normalised tokens) that earns attribution */

/* ------------------------------------------------------------------------------------ the store */

#define REGISTRY_DEFAULT_PATH "./accrue.db"

enum registry_open_flags {
    REGISTRY_OPEN_CREATE = 0,   /* make the file and the schema when missing; upgrade an older one */
    REGISTRY_OPEN_EXISTING = 1, /* refuse (ACC_ENOTFOUND) a path with no database yet */
};

/* Opens (and creates or upgrades, per flags) the registry at path. *out is closed with
 * registry_close. ACC_EVERSION for a file from a newer accrue, ACC_ECORRUPT for a file that is not
 * an accrue database, ACC_EIO when it cannot be opened. */
int registry_open(const char *path, unsigned flags, registry_t **out, acc_err *err);
void registry_close(registry_t *reg); /* NULL is fine */

/* The schema version this build writes (the last of registry/schema.c's migrations), and the one
 * the open file is at (the same, once open). */
int registry_schema_latest(void);
int registry_schema_version(registry_t *reg);

/* True when the registry holds no datanet, model or agent: `run` and `serve` seed the demo
 * registry then. */
bool registry_is_empty(registry_t *reg);

/* Groups several writing calls into one transaction (seeding the demo registry, a server's batch):
 * registry_begin, the calls, then registry_commit, or registry_rollback to undo them all. Calls
 * nest. A call that fails inside undoes only its own part. */
int registry_begin(registry_t *reg, acc_err *err);
int registry_commit(registry_t *reg, acc_err *err);
void registry_rollback(registry_t *reg);

/* The time the registry stamps on what it writes; registry_now_ms() is the wall clock. Tests set a
 * fixed clock (NULL restores the wall clock). */
int64_t registry_now_ms(void);
void registry_set_clock(registry_t *reg, int64_t (*now_ms)(void *ud), void *ud);

/* --------------------------------------------------------------------------------- signatures */

/* The digest an address signs for a contribution, review, deploy or listing change (the top comment
 * has the layouts). registry_deploy_digest refuses a manifest registry_agent_deploy would refuse. */
void registry_contribution_digest(const char *datanet, const char *text, size_t len, uint8_t digest[32]);
void registry_review_digest(const char *datanet, int64_t record_id, bool accept, uint8_t digest[32]);
int registry_deploy_digest(const char *manifest_json, size_t manifest_len, const char *script, size_t script_len,
                           uint8_t digest[32], acc_err *err);
void registry_listing_digest(const char *agent, const char *version, bool listed, uint8_t digest[32]);
/* The EIP-191 personal-message digest of a 32-byte digest above: what the key signs. */
void registry_signed_digest(const uint8_t digest[32], uint8_t to_sign[32]);

/* ----------------------------------------------------------------------------------- accounts */

/* An API key: "acc_" and 64 lower-case hex digits (32 random bytes from getrandom). The registry
 * keeps only keccak-256 of the text, so a key is shown once, when made. */
#define REGISTRY_API_KEY_TEXT_SIZE (4 + 64 + 1)
/* A key's public id, for listings and logs: "ak_" and the first 12 hex digits of its hash. */
#define REGISTRY_KEY_ID_SIZE (3 + 12 + 1)

typedef struct registry_account {
    int64_t id; /* stable; the ledger keys balances by it */
    char name[REGISTRY_NAME_MAX + 1];
    bool admin; /* the operator's: may make admin calls */
    int64_t created_ms;
    unsigned live_keys; /* keys not revoked */
} registry_account_t;

/* Makes an account with a fresh API key, written into key (shown once; never stored). ACC_EEXIST
 * when the name is taken. out may be NULL. */
int registry_account_create(registry_t *reg, const char *name, bool admin, char key[REGISTRY_API_KEY_TEXT_SIZE],
                            registry_account_t *out, acc_err *err);
/* Gives an existing account one more API key (after a revoke, say). */
int registry_account_new_key(registry_t *reg, const char *name, char key[REGISTRY_API_KEY_TEXT_SIZE],
                             acc_err *err);
/* Revokes every live key of the account; *revoked (may be NULL) says how many. The account stays. */
int registry_account_revoke(registry_t *reg, const char *name, unsigned *revoked, acc_err *err);
int registry_account_get(registry_t *reg, const char *name, registry_account_t *out, acc_err *err);
/* The account an API key belongs to: one indexed lookup of the key's hash, for every request.
 * ACC_EPERM for a key that is malformed, unknown or revoked (one message for all three). */
int registry_account_by_key(registry_t *reg, const char *key, size_t len, registry_account_t *out, acc_err *err);

typedef struct registry_api_key {
    char id[REGISTRY_KEY_ID_SIZE];
    int64_t created_ms;
    int64_t revoked_ms; /* 0 while live */
} registry_api_key_t;

/* Calls fn for every account in name order; a non-zero return from fn stops and is returned. */
int registry_accounts_list(registry_t *reg, int (*fn)(void *ud, const registry_account_t *a), void *ud,
                           acc_err *err);
/* Calls fn for every key of an account, oldest first. */
int registry_account_keys(registry_t *reg, const char *name, int (*fn)(void *ud, const registry_api_key_t *k),
                          void *ud, acc_err *err);

/* ----------------------------------------------------------------------------------- datanets */

typedef enum registry_curation {
    REGISTRY_CURATION_AUTO,   /* records are accepted as they come */
    REGISTRY_CURATION_REVIEW, /* held pending until the owner accepts or rejects each */
} registry_curation_t;

typedef struct registry_datanet_spec {
    const char *name;
    uint8_t owner[20];
    const char *description; /* NULL is "" */
    uint64_t price_per_query, price_per_record;
    registry_curation_t curation;
} registry_datanet_spec_t;

typedef struct registry_datanet {
    int64_t id;
    char name[REGISTRY_NAME_MAX + 1];
    uint8_t owner[20];
    char description[REGISTRY_DESCRIPTION_MAX + 1];
    uint64_t price_per_query, price_per_record;
    registry_curation_t curation;
    uint64_t version; /* grows by one with every accepted record: the number accepted */
    uint64_t pending, rejected;
    int64_t created_ms;
} registry_datanet_t;

int registry_datanet_create(registry_t *reg, const registry_datanet_spec_t *spec, registry_datanet_t *out,
                            acc_err *err);
int registry_datanet_get(registry_t *reg, const char *name, registry_datanet_t *out, acc_err *err);
/* Every datanet in name order. */
int registry_datanets_list(registry_t *reg, int (*fn)(void *ud, const registry_datanet_t *d), void *ud,
                           acc_err *err);

typedef enum registry_record_status {
    REGISTRY_RECORD_PENDING,
    REGISTRY_RECORD_ACCEPTED,
    REGISTRY_RECORD_REJECTED,
} registry_record_status_t;

/* "pending", "accepted", "rejected". Static. */
const char *registry_record_status_name(registry_record_status_t s);

typedef struct registry_record {
    int64_t id; /* unique across datanets; what evidence and reviews cite */
    int64_t datanet_id;
    uint64_t seq; /* its place among the datanet's accepted records, from 1 (the datanet's version
                     when it was accepted); 0 unless accepted */
    uint8_t contributor[20];
    uint8_t content_hash[32]; /* keccak256(text) */
    const char *text;         /* UTF-8, no NUL; valid during the callback */
    size_t text_len;
    registry_record_status_t status;
    int64_t created_ms, status_ms;
    bool is_signed;          /* signed by the contributor, or imported by the owner unsigned */
    uint8_t signature[65];   /* when is_signed: over registry_contribution_digest */
    const char *provenance;  /* JSON object: how the record came (valid during the callback) */
} registry_record_t;

typedef struct registry_added {
    int64_t id;
    registry_record_status_t status; /* accepted (auto curation) or pending (review) */
    uint64_t seq;                    /* when accepted */
} registry_added_t;

/* Adds a record the contributor signed (registry_contribution_digest, EIP-191). ACC_EBADSIG unless
 * the signature recovers the contributor; ACC_EEXIST for content the datanet holds already (the
 * message names the record); ACC_EINVAL for empty text, text over REGISTRY_TEXT_MAX, with a NUL or
 * not UTF-8. */
int registry_record_add(registry_t *reg, const char *datanet, const char *text, size_t len,
                        const uint8_t contributor[20], const uint8_t signature[65], registry_added_t *out,
                        acc_err *err);

/* The owner accepts or rejects a pending record, signing registry_review_digest. ACC_EBADSIG unless
 * the signature recovers the datanet's owner; ACC_EMISUSE for a record not pending. */
int registry_record_review(registry_t *reg, const char *datanet, int64_t record_id, bool accept,
                           const uint8_t signature[65], acc_err *err);

typedef struct registry_import_result {
    size_t records; /* added, all accepted */
    size_t lines;   /* lines read, blank ones included */
    uint64_t version; /* the datanet's version after */
} registry_import_result_t;

/* The owner's bulk import: JSON Lines, one {"text": "...", "contributor": "0x..."} a line (blank
 * lines skipped, no other fields). All or nothing: a bad line (bad JSON, a missing or unknown field,
 * a bad address, bad text, content held already or repeated in the file) fails the import with a
 * message starting "line N: " and nothing is added. Records are accepted at once (the owner curates
 * them), unsigned, and their provenance says so and names source (a file name; may be NULL).
 * progress (may be NULL) is called now and then with the bytes parsed out of len. */
int registry_import_jsonl(registry_t *reg, const char *datanet, const char *data, size_t len, const char *source,
                          void (*progress)(void *ud, size_t done, size_t total), void *ud,
                          registry_import_result_t *out, acc_err *err);

/* A datanet's accepted records with seq > after_seq, in seq order (the order they were accepted),
 * at most limit (0: all). What the span index reads to build and to catch up. fn returning non-zero
 * stops and is returned. */
int registry_records_accepted(registry_t *reg, int64_t datanet_id, uint64_t after_seq, size_t limit,
                              int (*fn)(void *ud, const registry_record_t *r), void *ud, acc_err *err);
/* A datanet's records with the given status and id > after_id, in id order, at most limit (0: all). */
int registry_records_list(registry_t *reg, const char *datanet, registry_record_status_t status, int64_t after_id,
                          size_t limit, int (*fn)(void *ud, const registry_record_t *r), void *ud, acc_err *err);
/* A datanet's contributors: each address with a record in it, with its records counted by status,
 * most accepted records first (then by address), at most limit (0: all). fn returning non-zero
 * stops and is returned. ACC_ENOTFOUND for no such datanet. */
typedef struct registry_contributor {
    uint8_t address[20];
    uint64_t accepted, pending, rejected;
} registry_contributor_t;
int registry_datanet_contributors(registry_t *reg, const char *datanet, size_t limit,
                                  int (*fn)(void *ud, const registry_contributor_t *c), void *ud, acc_err *err);
/* One record by id (any datanet, any status). ACC_ENOTFOUND when there is none. */
int registry_record_get(registry_t *reg, int64_t id, int (*fn)(void *ud, const registry_record_t *r), void *ud,
                        acc_err *err);

/* Query: the datanet's accepted records that share words with text, best first (SQLite FTS5, BM25;
 * words are matched after case folding, diacritic removal and Porter stemming, any of them; common
 * English words are left out unless the text has nothing else, and so are words held by a tenth
 * of the datanet's records (at least 1,000) when the text has rarer words). Each datanet has an
 * index of its own, so BM25's statistics (record count, mean length, how many records hold a
 * word) are the datanet's: records in another datanet never change a query's order or scores.
 * The cost grows with the number of the datanet's records that match the words kept: BM25 ranks
 * all of them. */
typedef struct registry_hit {
    int64_t id;
    uint8_t contributor[20];
    const char *text; /* inside the hits block */
    size_t text_len;
    double score; /* BM25, higher is better, > 0 */
} registry_hit_t;

typedef struct registry_hits {
    size_t n;
    registry_hit_t hit[]; /* n of them, then their texts */
} registry_hits_t;

/* At most limit (1..REGISTRY_QUERY_LIMIT_MAX) hits; text over REGISTRY_QUERY_TEXT_MAX bytes or not
 * UTF-8 is ACC_EINVAL; text with no word gives no hits. *out is one block the caller free()s. */
int registry_query(registry_t *reg, const char *datanet, const char *text, size_t len, size_t limit,
                   registry_hits_t **out, acc_err *err);

/* ------------------------------------------------------------------------------------- hooks */

/* What another part of the registry (the span index) learns as records are accepted. Each function
 * may be NULL. record_accepted runs inside the transaction that accepts the record, in seq order,
 * and may use reg (read, or write tables of its own); a non-zero return fails that transaction, so
 * the caller's command changes nothing. committed and rolled_back run after the outermost
 * transaction ends, when records were accepted in it. */
typedef struct registry_hooks {
    void *ud;
    int (*record_accepted)(void *ud, registry_t *reg, const registry_record_t *r, acc_err *err);
    void (*committed)(void *ud, registry_t *reg);
    void (*rolled_back)(void *ud, registry_t *reg);
} registry_hooks_t;

#define REGISTRY_HOOKS_MAX 4
/* Adds a set of hooks (copied) for the life of this handle. ACC_ELIMIT past REGISTRY_HOOKS_MAX. */
int registry_add_hooks(registry_t *reg, const registry_hooks_t *hooks, acc_err *err);

/* -------------------------------------------------------------------------------------- models */

typedef enum registry_model_kind {
    REGISTRY_MODEL_BUILTIN, /* made by the model factory from a datanet (an artifact blob) */
    REGISTRY_MODEL_HTTP,    /* an OpenAI-compatible chat-completions endpoint */
    REGISTRY_MODEL_LUA,     /* a sandboxed Lua script */
} registry_model_kind_t;

/* "builtin", "http", "lua"; registry_model_kind_parse: 0 or ACC_EINVAL. */
const char *registry_model_kind_name(registry_model_kind_t k);
int registry_model_kind_parse(const char *s, registry_model_kind_t *out);

typedef struct registry_share {
    uint8_t address[20];
    uint32_t bps;
} registry_share_t;

typedef struct registry_model {
    int64_t id;
    char name[REGISTRY_NAME_MAX + 1];
    registry_model_kind_t kind;
    uint8_t owner[20];
    uint64_t price_per_call, price_per_1k_in, price_per_1k_out;
    uint32_t owner_share_bps;
    uint32_t span_k; /* spans shorter than this many tokens never pay (meters) */
    size_t n_lineage;
    char lineage[REGISTRY_LIST_MAX][REGISTRY_NAME_MAX + 1]; /* datanets its outputs are attributed against */
    int64_t lineage_id[REGISTRY_LIST_MAX];
    size_t n_shares;
    registry_share_t shares[REGISTRY_LIST_MAX]; /* declared fixed shares */
    /* http */
    char url[REGISTRY_URL_MAX + 1];             /* base URL, e.g. http://127.0.0.1:8081/v1 */
    char upstream[REGISTRY_UPSTREAM_MAX + 1];   /* the endpoint's model name */
    char api_key_env[REGISTRY_ENV_MAX + 1];     /* environment variable holding its key, or "" */
    /* lua */
    uint8_t script_hash[32];                    /* keccak256(script); registry_model_script has it */
    /* any kind: kind-specific settings (the factory's n-gram order...), a JSON object */
    char params[REGISTRY_PARAMS_MAX + 1];
    int64_t created_ms;
} registry_model_t;

/* Registers a model. In spec, name, kind, owner, prices, owner_share_bps, span_k (0 = default),
 * lineage names (n_lineage; each must be a datanet), shares, the kind's fields and params ("" = {})
 * are read; script (kind lua) is passed apart. Refused: a taken name (ACC_EEXIST), an unknown
 * lineage datanet (ACC_ENOTFOUND), bps over 10000 or owner share + fixed shares over 10000, an http
 * model without url or upstream, a lua model without script. out (may be NULL) gets the stored
 * model. */
int registry_model_register(registry_t *reg, const registry_model_t *spec, const char *script, size_t script_len,
                            registry_model_t *out, acc_err *err);
/* What registry_model_register checks of spec and script without the database (all but a taken
 * name and unknown lineage datanets): ACC_OK or ACC_EINVAL naming the field. For callers that check
 * more (a lua model's script loads: runtime/luamodel.h) before they touch the registry. */
int registry_model_check(const registry_model_t *spec, const char *script, size_t script_len, acc_err *err);
/* A model by name, with its prices and lineage: what the meters read per call. */
int registry_model_get(registry_t *reg, const char *name, registry_model_t *out, acc_err *err);
/* Every model in name order. */
int registry_models_list(registry_t *reg, int (*fn)(void *ud, const registry_model_t *m), void *ud, acc_err *err);
/* A lua model's script: malloc'd, NUL-terminated, the caller frees. */
int registry_model_script(registry_t *reg, const char *name, char **script, size_t *len, acc_err *err);
/* A builtin model's artifact (what the factory built), replaced whole; and read back (malloc'd, the
 * caller frees; ACC_ENOTFOUND when none was stored). */
int registry_model_set_artifact(registry_t *reg, const char *name, const void *data, size_t len, acc_err *err);
int registry_model_artifact(registry_t *reg, const char *name, void **data, size_t *len, acc_err *err);

/* ------------------------------------------------------------------------------ agents, market */

typedef struct registry_agent_limits {
    uint64_t memory_bytes, instructions, time_ms, output_bytes; /* 0: the host's default */
} registry_agent_limits_t;

typedef struct registry_agent {
    int64_t id; /* of this version */
    char name[REGISTRY_NAME_MAX + 1];
    char version[REGISTRY_VERSION_MAX + 1];
    uint8_t author[20];
    char description[REGISTRY_DESCRIPTION_MAX + 1];
    size_t n_tags;
    char tags[REGISTRY_TAGS_MAX][REGISTRY_TAG_MAX + 1];
    uint64_t price_per_message, price_per_session;
    uint32_t markup_bps; /* on model and data costs */
    registry_agent_limits_t limits;
    size_t n_models, n_datanets; /* what it may call */
    char models[REGISTRY_LIST_MAX][REGISTRY_NAME_MAX + 1];
    char datanets[REGISTRY_LIST_MAX][REGISTRY_NAME_MAX + 1];
    uint8_t script_hash[32];
    uint8_t signature[65]; /* the author's, over registry_deploy_digest */
    bool listed;
    int64_t created_ms;
    size_t n_versions; /* listed versions of this agent (in listings) */
} registry_agent_t;

/* Checks that a script loads (the runtime runs it in a sandbox); ACC_OK, or a code and message. */
typedef int (*registry_script_check_fn)(void *ud, const char *name, const char *script, size_t len, acc_err *err);

/* Deploys one version of an agent. The manifest is a JSON object:
 *   name, version (semver), description, tags [..], author "0x..", price_per_message,
 *   price_per_session, markup_bps, limits {memory_bytes, instructions, time_ms, output_bytes},
 *   models [..], datanets [..]
 * (name, version and author required; the rest default to empty or 0; unknown keys refused). The
 * signature must recover the manifest's author over registry_deploy_digest; an agent's later versions
 * must come from its first author; a version, once deployed, never changes (ACC_EEXIST); the models
 * and datanets named must exist (or be test/...). check (required) is called after the signature
 * holds and before anything is written. out may be NULL. */
int registry_agent_deploy(registry_t *reg, const char *manifest_json, size_t manifest_len, const char *script,
                          size_t script_len, const uint8_t signature[65], registry_script_check_fn check,
                          void *check_ud, registry_agent_t *out, acc_err *err);

/* One version: version NULL or "" is the latest listed one (highest precedence, releases before
 * pre-releases). An unlisted version is found only when named, with listed false. */
int registry_agent_get(registry_t *reg, const char *name, const char *version, registry_agent_t *out, acc_err *err);
/* That version's script: malloc'd, NUL-terminated, the caller frees. */
int registry_agent_script(registry_t *reg, const char *name, const char *version, char **script, size_t *len,
                          acc_err *err);
/* Every version of an agent, listed or not, highest precedence first. */
int registry_agent_versions(registry_t *reg, const char *name, int (*fn)(void *ud, const registry_agent_t *a),
                            void *ud, acc_err *err);
/* The author lists or unlists one version (version given) or the whole agent (NULL or ""), signing
 * registry_listing_digest. ACC_EBADSIG unless it recovers the author. */
int registry_agent_set_listed(registry_t *reg, const char *name, const char *version, bool listed,
                              const uint8_t signature[65], acc_err *err);

/* Usage figures of an agent. The ledger has them (meters/); until it is wired in, callers pass
 * registry_usage_none, which reports zeros. */
typedef struct registry_agent_usage {
    uint64_t sessions_7d, sessions_30d, messages_7d, messages_30d, revenue_7d, revenue_30d;
} registry_agent_usage_t;
typedef int (*registry_usage_fn)(void *ud, const char *agent, registry_agent_usage_t *out, acc_err *err);
int registry_usage_none(void *ud, const char *agent, registry_agent_usage_t *out, acc_err *err);

typedef enum registry_agent_sort {
    REGISTRY_SORT_USAGE,   /* sessions over 30 days, then messages, then newest */
    REGISTRY_SORT_REVENUE, /* revenue over 30 days, then newest */
    REGISTRY_SORT_NEW,     /* latest listed version's deploy time, newest first */
} registry_agent_sort_t;

typedef struct registry_agent_query {
    const char *search; /* case-insensitive substring of name, description or a tag; NULL: any */
    const char *tag;    /* exact tag; NULL: any */
    registry_agent_sort_t sort;
    size_t limit; /* 0: all */
    registry_usage_fn usage; /* NULL: registry_usage_none */
    void *usage_ud;
} registry_agent_query_t;

/* The marketplace: each listed agent once (its latest listed version, n_versions set), filtered and
 * sorted per q, with its usage. */
int registry_agents_list(registry_t *reg, const registry_agent_query_t *q,
                         int (*fn)(void *ud, const registry_agent_t *a, const registry_agent_usage_t *u), void *ud,
                         acc_err *err);

/* Semantic versions (semver.org 2.0.0): 0 when s is one; registry_semver_compare orders two valid
 * ones by precedence (<0, 0, >0; build metadata ignored). */
int registry_semver_check(const char *s, acc_err *err);
int registry_semver_compare(const char *a, const char *b);

/* Names: ACC_OK or ACC_EINVAL with what is wrong (what says which name: "datanet", "--owner"...). */
int registry_name_check(const char *name, const char *what, acc_err *err);

#endif
