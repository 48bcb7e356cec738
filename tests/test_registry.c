/*
 * test_registry.c: the registry's store through registry.h: opening, refusing and upgrading
 * files; accounts and API keys; datanets, signed contributions, reviews, the owner's import (all or
 * nothing), iteration, hooks, FTS queries; models. Every refusal is checked to leave the database
 * exactly as it was, by comparing a dump of every table before and after.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meters/eth/keccak.h"
#include "meters/eth/keys.h"
#include "registry/registry.h"
#include "runtime/base/buf.h"
#include "registry/store.h"
#include "tests/check.h"
#include "tests/registry_test_util.h"

static char dir[256];

static void path_in_dir(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

/* ------------------------------------------------------------------------------ helpers */

static void sign(const eth_key *k, const uint8_t digest[32], uint8_t sig[65]) {
    uint8_t to_sign[32];
    registry_signed_digest(digest, to_sign);
    eth_key_sign_digest(k, to_sign, sig, NULL);
}

static void sign_contribution(const eth_key *k, const char *datanet, const char *text, uint8_t sig[65]) {
    uint8_t d[32];
    registry_contribution_digest(datanet, text, strlen(text), d);
    sign(k, d, sig);
}

static registry_t *open_fresh(const char *name, char *path, size_t n) {
    path_in_dir(path, n, name);
    registry_t *reg = NULL;
    acc_err err = {0};
    int rc = registry_open(path, REGISTRY_OPEN_CREATE, &reg, &err);
    CHECK_MSG(rc == ACC_OK, "%s", err.msg);
    return reg;
}

/* A datanet owned by owner_seed's key; auto or review. */
static void make_datanet(registry_t *reg, const char *name, uint8_t owner_seed, registry_curation_t curation) {
    registry_datanet_spec_t spec = {.name = name, .description = "test data", .price_per_query = 10,
                                    .price_per_record = 2, .curation = curation};
    eth_key_free(key_of(owner_seed, spec.owner));
    acc_err err = {0};
    int rc = registry_datanet_create(reg, &spec, NULL, &err);
    CHECK_MSG(rc == ACC_OK, "%s", err.msg);
}

static int add_signed(registry_t *reg, const char *datanet, uint8_t seed, const char *text, registry_added_t *out,
                      acc_err *err) {
    uint8_t addr[20], sig[65];
    eth_key *k = key_of(seed, addr);
    sign_contribution(k, datanet, text, sig);
    eth_key_free(k);
    return registry_record_add(reg, datanet, text, strlen(text), addr, sig, out, err);
}

/* ------------------------------------------------------------------------------ the store */

static void test_open_creates_wal_database(void) {
    char path[512];
    registry_t *reg = open_fresh("open.db", path, sizeof path);
    CHECK(registry_schema_version(reg) == registry_schema_latest());
    CHECK(registry_is_empty(reg));
    registry_close(reg);
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    CHECK(sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* Opening again changes nothing. */
    char *before = dump(path);
    acc_err err = {0};
    CHECK(registry_open(path, REGISTRY_OPEN_EXISTING, &reg, &err) == ACC_OK);
    registry_close(reg);
    char *after = dump(path);
    CHECK_STREQ(after, before);
    free(before);
    free(after);
}

static void test_open_existing_refuses_missing(void) {
    char path[512];
    path_in_dir(path, sizeof path, "missing.db");
    registry_t *reg = NULL;
    acc_err err = {0};
    CHECK(registry_open(path, REGISTRY_OPEN_EXISTING, &reg, &err) == ACC_ENOTFOUND);
    CHECK(reg == NULL);
    CHECK(strstr(err.msg, "missing.db") != NULL);
    CHECK(access(path, F_OK) != 0);
}

static void test_open_refuses_newer_and_foreign_files(void) {
    char path[512];
    registry_t *reg = open_fresh("newer.db", path, sizeof path);
    registry_close(reg);
    sqlite3 *db;
    sqlite3_open(path, &db);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", registry_schema_latest() + 1);
    sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    char *before = dump(path);
    acc_err err = {0};
    CHECK(registry_open(path, REGISTRY_OPEN_CREATE, &reg, &err) == ACC_EVERSION);
    CHECK_MSG(strstr(err.msg, "newer accrue") && strstr(err.msg, "newer.db"), "%s", err.msg);
    char *after = dump(path);
    CHECK_STREQ(after, before);
    free(before);
    free(after);

    /* Not SQLite at all. */
    path_in_dir(path, sizeof path, "garbage.db");
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 200; i++) fputs("this is not a database file. ", f);
    fclose(f);
    CHECK(registry_open(path, REGISTRY_OPEN_CREATE, &reg, &err) == ACC_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "not an accrue database"), "%s", err.msg);

    /* SQLite, but someone else's. */
    path_in_dir(path, sizeof path, "foreign.db");
    sqlite3_open(path, &db);
    sqlite3_exec(db, "CREATE TABLE t(x); PRAGMA user_version = 3", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK(registry_open(path, REGISTRY_OPEN_CREATE, &reg, &err) == ACC_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "not accrue's"), "%s", err.msg);
}

static void test_upgrade_from_older_schema(void) {
    char path[512];
    path_in_dir(path, sizeof path, "old.db");
    /* A file made by a build whose schema stopped at version 1 (accounts only), holding an account. */
    registry_t *reg = NULL;
    acc_err err = {0};
    CHECK(store_open_at(path, REGISTRY_OPEN_CREATE, 1, &reg, &err) == ACC_OK);
    CHECK(registry_schema_version(reg) == 1);
    char key[REGISTRY_API_KEY_TEXT_SIZE];
    CHECK(registry_account_create(reg, "alice", false, key, NULL, &err) == ACC_OK);
    registry_close(reg);

    /* This build upgrades it in place and keeps what it held. */
    CHECK(registry_open(path, REGISTRY_OPEN_EXISTING, &reg, &err) == ACC_OK);
    CHECK(registry_schema_version(reg) == registry_schema_latest());
    registry_account_t a;
    CHECK(registry_account_by_key(reg, key, strlen(key), &a, &err) == ACC_OK);
    CHECK_STREQ(a.name, "alice");
    make_datanet(reg, "notes", 1, REGISTRY_CURATION_AUTO);
    CHECK(add_signed(reg, "notes", 2, "the upgraded file takes records", NULL, &err) == ACC_OK);
    registry_close(reg);

    /* From version 2 (records but no models), with records in the full-text index. */
    path_in_dir(path, sizeof path, "old2.db");
    CHECK(store_open_at(path, REGISTRY_OPEN_CREATE, 2, &reg, &err) == ACC_OK);
    make_datanet(reg, "notes", 1, REGISTRY_CURATION_AUTO);
    CHECK(add_signed(reg, "notes", 2, "apples ripen in autumn", NULL, &err) == ACC_OK);
    registry_close(reg);
    CHECK(registry_open(path, REGISTRY_OPEN_CREATE, &reg, &err) == ACC_OK);
    registry_hits_t *hits = NULL;
    CHECK(registry_query(reg, "notes", "apple", 5, 5, &hits, &err) == ACC_OK);
    CHECK(hits && hits->n == 1);
    free(hits);
    registry_model_t m = {.name = "m", .kind = REGISTRY_MODEL_BUILTIN, .n_lineage = 1};
    strcpy(m.lineage[0], "notes");
    CHECK_MSG(registry_model_register(reg, &m, NULL, 0, NULL, &err) == ACC_OK, "%s", err.msg);
    registry_close(reg);
}

static void test_transactions_nest_and_roll_back(void) {
    char path[512];
    registry_t *reg = open_fresh("tx.db", path, sizeof path);
    char *before = dump(path);
    acc_err err = {0};
    char key[REGISTRY_API_KEY_TEXT_SIZE];
    CHECK(registry_begin(reg, &err) == ACC_OK);
    CHECK(registry_account_create(reg, "bob", false, key, NULL, &err) == ACC_OK);
    make_datanet(reg, "inner", 1, REGISTRY_CURATION_AUTO);
    /* A failing call inside undoes only itself. */
    CHECK(registry_account_create(reg, "bob", false, key, NULL, &err) == ACC_EEXIST);
    CHECK(registry_account_get(reg, "bob", NULL, &err) == ACC_OK);
    registry_rollback(reg);
    CHECK(registry_account_get(reg, "bob", NULL, &err) == ACC_ENOTFOUND);
    CHECK(registry_datanet_get(reg, "inner", NULL, &err) == ACC_ENOTFOUND);
    char *after = dump(path);
    CHECK_STREQ(after, before);
    free(before);
    free(after);
    CHECK(registry_begin(reg, &err) == ACC_OK);
    CHECK(registry_account_create(reg, "carol", false, key, NULL, &err) == ACC_OK);
    CHECK(registry_commit(reg, &err) == ACC_OK);
    CHECK(registry_account_get(reg, "carol", NULL, &err) == ACC_OK);
    registry_close(reg);
}

/* ------------------------------------------------------------------------------ accounts */

static int count_account(void *ud, const registry_account_t *a) {
    (void)a;
    ++*(int *)ud;
    return 0;
}

static int collect_key(void *ud, const registry_api_key_t *k) {
    registry_api_key_t *keys = ud;
    for (int i = 0; i < 4; i++)
        if (!keys[i].id[0]) {
            keys[i] = *k;
            break;
        }
    return 0;
}

static void test_accounts_and_api_keys(void) {
    char path[512];
    registry_t *reg = open_fresh("accounts.db", path, sizeof path);
    acc_err err = {0};
    char key[REGISTRY_API_KEY_TEXT_SIZE], key2[REGISTRY_API_KEY_TEXT_SIZE];
    registry_account_t a, b;
    CHECK(registry_account_create(reg, "app-1", false, key, &a, &err) == ACC_OK);
    CHECK(strlen(key) == 68 && strncmp(key, "acc_", 4) == 0);
    CHECK(a.live_keys == 1 && !a.admin && a.id > 0);
    CHECK(registry_account_create(reg, "ops", true, key2, NULL, &err) == ACC_OK);
    CHECK(strcmp(key, key2) != 0);

    CHECK(registry_account_by_key(reg, key, strlen(key), &b, &err) == ACC_OK);
    CHECK(b.id == a.id && strcmp(b.name, "app-1") == 0);
    CHECK(registry_account_by_key(reg, key2, strlen(key2), &b, &err) == ACC_OK && b.admin);

    /* The key is not in the file: only its hash. */
    char *d = dump(path);
    char hex[200] = "";
    for (int i = 4; i < 20; i++) snprintf(hex + strlen(hex), sizeof hex - strlen(hex), "%02x", (unsigned char)key[i]);
    CHECK(strstr(d, hex) == NULL);
    free(d);

    /* One wrong character, the wrong prefix, upper-case hex, another length: one refusal. */
    char bad[REGISTRY_API_KEY_TEXT_SIZE];
    memcpy(bad, key, sizeof bad);
    bad[30] = bad[30] == '0' ? '1' : '0';
    CHECK(registry_account_by_key(reg, bad, strlen(bad), &b, &err) == ACC_EPERM);
    CHECK_STREQ(err.msg, "API key: unknown or revoked");
    CHECK(registry_account_by_key(reg, key, 40, &b, &err) == ACC_EPERM);
    CHECK(registry_account_by_key(reg, "", 0, &b, &err) == ACC_EPERM);

    /* Refusals change nothing. */
    char *before = dump(path);
    CHECK(registry_account_create(reg, "app-1", false, key2, NULL, &err) == ACC_EEXIST);
    CHECK(strstr(err.msg, "app-1") != NULL);
    CHECK(registry_account_create(reg, "App", false, key2, NULL, &err) == ACC_EINVAL);
    CHECK(registry_account_create(reg, "", false, key2, NULL, &err) == ACC_EINVAL);
    CHECK(registry_account_create(reg, "a b", false, key2, NULL, &err) == ACC_EINVAL);
    CHECK(registry_account_revoke(reg, "nobody", NULL, &err) == ACC_ENOTFOUND);
    CHECK(registry_account_new_key(reg, "nobody", key2, &err) == ACC_ENOTFOUND);
    char *after = dump(path);
    CHECK_STREQ(after, before);
    free(before);
    free(after);

    unsigned revoked = 0;
    CHECK(registry_account_revoke(reg, "app-1", &revoked, &err) == ACC_OK && revoked == 1);
    CHECK(registry_account_by_key(reg, key, strlen(key), &b, &err) == ACC_EPERM);
    CHECK(registry_account_revoke(reg, "app-1", &revoked, &err) == ACC_EMISUSE);
    CHECK(registry_account_new_key(reg, "app-1", key2, &err) == ACC_OK);
    CHECK(registry_account_by_key(reg, key2, strlen(key2), &b, &err) == ACC_OK && b.id == a.id);
    CHECK(registry_account_by_key(reg, key, strlen(key), &b, &err) == ACC_EPERM);

    registry_api_key_t keys[4] = {0};
    CHECK(registry_account_keys(reg, "app-1", collect_key, keys, &err) == ACC_OK);
    CHECK(keys[0].id[0] && keys[1].id[0] && !keys[2].id[0]);
    CHECK(strncmp(keys[0].id, "ak_", 3) == 0 && strlen(keys[0].id) == 15);
    CHECK(keys[0].revoked_ms > 0 && keys[1].revoked_ms == 0);
    int n = 0;
    CHECK(registry_accounts_list(reg, count_account, &n, &err) == ACC_OK && n == 2);
    registry_close(reg);
}

/* ------------------------------------------------------------------------------ datanets */

static void test_datanet_create_and_refusals(void) {
    char path[512];
    registry_t *reg = open_fresh("datanets.db", path, sizeof path);
    acc_err err = {0};
    registry_datanet_t d;
    make_datanet(reg, "fruit/orchards", 1, REGISTRY_CURATION_REVIEW);
    CHECK(registry_datanet_get(reg, "fruit/orchards", &d, &err) == ACC_OK);
    CHECK(d.curation == REGISTRY_CURATION_REVIEW && d.version == 0 && d.price_per_query == 10 &&
          d.price_per_record == 2 && strcmp(d.description, "test data") == 0);
    CHECK(!registry_is_empty(reg));

    char *before = dump(path);
    registry_datanet_spec_t spec = {.name = "fruit/orchards"};
    CHECK(registry_datanet_create(reg, &spec, NULL, &err) == ACC_EEXIST);
    const char *bad_names[] = {"test/words", "Fruit", "/a", "a/", "a//b", "-a", "a b", "ü",
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        spec.name = bad_names[i];
        CHECK_MSG(registry_datanet_create(reg, &spec, NULL, &err) == ACC_EINVAL, "%s", bad_names[i]);
    }
    spec.name = "ok";
    spec.price_per_query = (uint64_t)INT64_MAX + 1;
    CHECK(registry_datanet_create(reg, &spec, NULL, &err) == ACC_EINVAL);
    spec.price_per_query = 0;
    spec.description = "bell\a";
    CHECK(registry_datanet_create(reg, &spec, NULL, &err) == ACC_EINVAL);
    char *after = dump(path);
    CHECK_STREQ(after, before);
    free(before);
    free(after);
    registry_close(reg);
}

typedef struct hook_log {
    int accepted, committed, rolled_back;
    uint64_t last_seq;
    int fail_at; /* refuse the record_accepted call with this number (1-based); 0 never */
    bool in_tx_ok;
} hook_log_t;

static int on_accepted(void *ud, registry_t *reg, const registry_record_t *r, acc_err *err) {
    hook_log_t *h = ud;
    h->accepted++;
    /* In seq order, inside the transaction: the record is readable through reg already. */
    h->in_tx_ok = h->in_tx_ok && r->seq == h->last_seq + 1 && registry_record_get(reg, r->id, NULL, NULL, NULL) != ACC_ENOTFOUND;
    h->last_seq = r->seq;
    if (h->fail_at && h->accepted == h->fail_at) return acc_fail(err, ACC_EIO, "span index: disk full");
    return ACC_OK;
}
static void on_committed(void *ud, registry_t *reg) { ((hook_log_t *)ud)->committed++; }
static void on_rolled_back(void *ud, registry_t *reg) { ((hook_log_t *)ud)->rolled_back++; }


static void test_signed_contributions(void) {
    char path[512];
    registry_t *reg = open_fresh("contrib.db", path, sizeof path);
    acc_err err = {0};
    make_datanet(reg, "fruit", 1, REGISTRY_CURATION_AUTO);
    hook_log_t log = {.in_tx_ok = true};
    registry_hooks_t hooks = {.ud = &log, .record_accepted = on_accepted, .committed = on_committed,
                              .rolled_back = on_rolled_back};
    CHECK(registry_add_hooks(reg, &hooks, &err) == ACC_OK);

    registry_added_t added;
    CHECK_MSG(add_signed(reg, "fruit", 2, "Grapes grow in clusters on vines.", &added, &err) == ACC_OK, "%s", err.msg);
    CHECK(added.status == REGISTRY_RECORD_ACCEPTED && added.seq == 1);
    CHECK(log.accepted == 1 && log.committed == 1 && log.in_tx_ok);

    char *before = dump(path);
    /* Identical content is refused, naming the record. */
    CHECK(add_signed(reg, "fruit", 3, "Grapes grow in clusters on vines.", NULL, &err) == ACC_EEXIST);
    char want[64];
    snprintf(want, sizeof want, "record %lld", (long long)added.id);
    CHECK_MSG(strstr(err.msg, want) != NULL, "%s", err.msg);

    /* Wrong key: signed by key 3, claimed for key 2's address. */
    uint8_t addr2[20], addr3[20], sig[65];
    eth_key *k2 = key_of(2, addr2), *k3 = key_of(3, addr3);
    const char *text = "Figs are pollinated by tiny wasps.";
    sign_contribution(k3, "fruit", text, sig);
    CHECK(registry_record_add(reg, "fruit", text, strlen(text), addr2, sig, NULL, &err) == ACC_EBADSIG);
    char a3[ETH_ADDRESS_TEXT_SIZE];
    eth_address_to_text(addr3, a3);
    CHECK_MSG(strstr(err.msg, a3) && strstr(err.msg, "contributor"), "%s", err.msg);
    /* Tampered record: signed one text, sent another. */
    sign_contribution(k2, "fruit", text, sig);
    const char *tampered = "Figs are pollinated by tiny bees.";
    CHECK(registry_record_add(reg, "fruit", tampered, strlen(tampered), addr2, sig, NULL, &err) == ACC_EBADSIG);
    /* Signed for another datanet. */
    sign_contribution(k2, "vegetables", text, sig);
    CHECK(registry_record_add(reg, "fruit", text, strlen(text), addr2, sig, NULL, &err) == ACC_EBADSIG);
    /* A malformed signature (v = 29). */
    sign_contribution(k2, "fruit", text, sig);
    sig[64] = 29;
    CHECK(registry_record_add(reg, "fruit", text, strlen(text), addr2, sig, NULL, &err) == ACC_EBADSIG);
    /* Bad text: empty, NUL inside, not UTF-8, too long. */
    CHECK(add_signed(reg, "fruit", 2, "", NULL, &err) == ACC_EINVAL);
    sign_contribution(k2, "fruit", "a", sig);
    CHECK(registry_record_add(reg, "fruit", "a\0b", 3, addr2, sig, NULL, &err) == ACC_EINVAL);
    CHECK(add_signed(reg, "fruit", 2, "caf\xc3", NULL, &err) == ACC_EINVAL);
    CHECK(add_signed(reg, "fruit", 2, "\xed\xa0\x80 surrogate", NULL, &err) == ACC_EINVAL);
    char *big = malloc(REGISTRY_TEXT_MAX + 2);
    memset(big, 'a', REGISTRY_TEXT_MAX + 1);
    big[REGISTRY_TEXT_MAX + 1] = 0;
    CHECK(add_signed(reg, "fruit", 2, big, NULL, &err) == ACC_EINVAL);
    free(big);
    CHECK(add_signed(reg, "nowhere", 2, text, NULL, &err) == ACC_ENOTFOUND);
    /* A hook that fails undoes the contribution. */
    log.fail_at = log.accepted + 1;
    CHECK(add_signed(reg, "fruit", 2, text, NULL, &err) == ACC_EIO);
    CHECK_MSG(strstr(err.msg, "disk full"), "%s", err.msg);
    CHECK(log.rolled_back == 1);
    log.fail_at = 0;
    log.last_seq = 1;
    char *after = dump(path);
    CHECK_STREQ(after, before);
    free(before);
    free(after);

    CHECK(add_signed(reg, "fruit", 2, text, &added, &err) == ACC_OK && added.seq == 2);
    registry_datanet_t d;
    CHECK(registry_datanet_get(reg, "fruit", &d, &err) == ACC_OK && d.version == 2);
    CHECK(log.in_tx_ok);
    eth_key_free(k2);
    eth_key_free(k3);
    registry_close(reg);
}

typedef struct seen {
    int n;
    int64_t ids[16];
    uint64_t seqs[16];
    char texts[16][80];
    bool signed_[16];
    char provenance[16][200];
} seen_t;

static int collect(void *ud, const registry_record_t *r) {
    seen_t *s = ud;
    if (s->n < 16) {
        s->ids[s->n] = r->id;
        s->seqs[s->n] = r->seq;
        snprintf(s->texts[s->n], sizeof s->texts[0], "%.*s", (int)r->text_len, r->text);
        s->signed_[s->n] = r->is_signed;
        snprintf(s->provenance[s->n], sizeof s->provenance[0], "%s", r->provenance);
    }
    s->n++;
    return 0;
}

static void test_review_curation(void) {
    char path[512];
    registry_t *reg = open_fresh("review.db", path, sizeof path);
    acc_err err = {0};
    make_datanet(reg, "curated", 1, REGISTRY_CURATION_REVIEW);
    make_datanet(reg, "other", 1, REGISTRY_CURATION_REVIEW);
    registry_added_t a, b, c, o;
    CHECK(add_signed(reg, "curated", 2, "first pending record", &a, &err) == ACC_OK);
    CHECK(add_signed(reg, "curated", 3, "second pending record", &b, &err) == ACC_OK);
    CHECK(add_signed(reg, "curated", 3, "third pending record", &c, &err) == ACC_OK);
    CHECK(add_signed(reg, "other", 3, "elsewhere", &o, &err) == ACC_OK);
    CHECK(a.status == REGISTRY_RECORD_PENDING && a.seq == 0);
    registry_hits_t *hits;
    CHECK(registry_query(reg, "curated", "pending", 7, 10, &hits, &err) == ACC_OK && hits->n == 0);
    free(hits);

    uint8_t owner[20], digest[32], sig[65];
    eth_key *ok = key_of(1, owner), *other = key_of(9, NULL);
    char *before = dump(path);
    /* Not the owner. */
    registry_review_digest("curated", b.id, true, digest);
    sign(other, digest, sig);
    CHECK(registry_record_review(reg, "curated", b.id, true, sig, &err) == ACC_EBADSIG);
    CHECK_MSG(strstr(err.msg, "owner"), "%s", err.msg);
    /* The owner's signature over a reject, used to accept; over another record. */
    registry_review_digest("curated", b.id, false, digest);
    sign(ok, digest, sig);
    CHECK(registry_record_review(reg, "curated", b.id, true, sig, &err) == ACC_EBADSIG);
    registry_review_digest("curated", a.id, true, digest);
    sign(ok, digest, sig);
    CHECK(registry_record_review(reg, "curated", b.id, true, sig, &err) == ACC_EBADSIG);
    /* A record of another datanet, and none at all. */
    registry_review_digest("curated", o.id, true, digest);
    sign(ok, digest, sig);
    CHECK(registry_record_review(reg, "curated", o.id, true, sig, &err) == ACC_ENOTFOUND);
    registry_review_digest("curated", 999, true, digest);
    sign(ok, digest, sig);
    CHECK(registry_record_review(reg, "curated", 999, true, sig, &err) == ACC_ENOTFOUND);
    char *after = dump(path);
    CHECK_STREQ(after, before);
    free(before);
    free(after);

    /* Accept b first, then a; reject c. Seqs follow the order of acceptance. */
    registry_review_digest("curated", b.id, true, digest);
    sign(ok, digest, sig);
    CHECK_MSG(registry_record_review(reg, "curated", b.id, true, sig, &err) == ACC_OK, "%s", err.msg);
    CHECK(registry_record_review(reg, "curated", b.id, true, sig, &err) == ACC_EMISUSE);
    CHECK_MSG(strstr(err.msg, "accepted"), "%s", err.msg);
    registry_review_digest("curated", a.id, true, digest);
    sign(ok, digest, sig);
    CHECK(registry_record_review(reg, "curated", a.id, true, sig, &err) == ACC_OK);
    registry_review_digest("curated", c.id, false, digest);
    sign(ok, digest, sig);
    CHECK(registry_record_review(reg, "curated", c.id, false, sig, &err) == ACC_OK);
    registry_datanet_t d;
    CHECK(registry_datanet_get(reg, "curated", &d, &err) == ACC_OK);
    CHECK(d.version == 2 && d.pending == 0 && d.rejected == 1);

    seen_t s = {0};
    CHECK(registry_records_accepted(reg, d.id, 0, 0, collect, &s, &err) == ACC_OK);
    CHECK(s.n == 2 && s.ids[0] == b.id && s.seqs[0] == 1 && s.ids[1] == a.id && s.seqs[1] == 2);
    memset(&s, 0, sizeof s);
    CHECK(registry_records_accepted(reg, d.id, 1, 0, collect, &s, &err) == ACC_OK && s.n == 1 && s.ids[0] == a.id);
    memset(&s, 0, sizeof s);
    CHECK(registry_records_list(reg, "curated", REGISTRY_RECORD_REJECTED, 0, 0, collect, &s, &err) == ACC_OK);
    CHECK(s.n == 1 && s.ids[0] == c.id);
    CHECK(registry_query(reg, "curated", "pending record", 14, 10, &hits, &err) == ACC_OK && hits->n == 2);
    free(hits);
    /* Rejected content stays refused. */
    CHECK(add_signed(reg, "curated", 4, "third pending record", NULL, &err) == ACC_EEXIST);
    CHECK_MSG(strstr(err.msg, "rejected"), "%s", err.msg);
    eth_key_free(ok);
    eth_key_free(other);
    registry_close(reg);
}

/* ------------------------------------------------------------------------------ import */

static const char *addr_text(uint8_t seed, char out[ETH_ADDRESS_TEXT_SIZE]) {
    uint8_t a[20];
    eth_key_free(key_of(seed, a));
    eth_address_to_text(a, out);
    return out;
}

static int import_text(registry_t *reg, const char *datanet, const char *jsonl, registry_import_result_t *res,
                       acc_err *err) {
    return registry_import_jsonl(reg, datanet, jsonl, strlen(jsonl), "test.jsonl", NULL, NULL, res, err);
}

static void test_import_all_or_nothing(void) {
    char path[512];
    registry_t *reg = open_fresh("import.db", path, sizeof path);
    acc_err err = {0};
    make_datanet(reg, "bulk", 1, REGISTRY_CURATION_REVIEW);
    char a2[ETH_ADDRESS_TEXT_SIZE], a3[ETH_ADDRESS_TEXT_SIZE];
    addr_text(2, a2);
    addr_text(3, a3);
    CHECK(add_signed(reg, "bulk", 2, "already here", NULL, &err) == ACC_OK);

    char good[1024];
    snprintf(good, sizeof good,
             "{\"text\": \"Plums like heavy soil.\", \"contributor\": \"%s\"}\n"
             "\n"
             "{\"contributor\": \"%s\", \"text\": \"Pears ripen off the tree.\"}\r\n"
             "{\"text\": \"Quinces smell of honey.\", \"contributor\": \"%s\"}",
             a2, a3, a2);
    /* Each bad file is refused naming its line, and leaves the database as it was. */
    char bad[8][1024];
    const char *want[8] = {"line 3: bad JSON", "line 2: text: missing", "line 1: contributor: ",
                           "line 3: identical to line 1", "line 2: identical content is record",
                           "line 1: unknown field 'source'", "line 2: text: not a string", "line 1: not a JSON object"};
    char lower_bad[ETH_ADDRESS_TEXT_SIZE];
    snprintf(lower_bad, sizeof lower_bad, "%s", a2);
    /* flip the case of one checksummed letter */
    for (char *p = lower_bad + 2; *p; p++)
        if (*p >= 'a' && *p <= 'f') {
            *p = (char)(*p - 32);
            break;
        } else if (*p >= 'A' && *p <= 'F') {
            *p = (char)(*p + 32);
            break;
        }
    snprintf(bad[0], sizeof bad[0], "{\"text\":\"a\",\"contributor\":\"%s\"}\n{\"text\":\"b\",\"contributor\":\"%s\"}\n{\"text\": \"c\", ", a2, a2);
    snprintf(bad[1], sizeof bad[1], "{\"text\":\"a\",\"contributor\":\"%s\"}\n{\"contributor\":\"%s\"}\n", a2, a2);
    snprintf(bad[2], sizeof bad[2], "{\"text\":\"a\",\"contributor\":\"%s\"}\n", lower_bad);
    snprintf(bad[3], sizeof bad[3], "{\"text\":\"same\",\"contributor\":\"%s\"}\n{\"text\":\"b\",\"contributor\":\"%s\"}\n{\"text\":\"same\",\"contributor\":\"%s\"}\n", a2, a2, a3);
    snprintf(bad[4], sizeof bad[4], "{\"text\":\"new\",\"contributor\":\"%s\"}\n{\"text\":\"already here\",\"contributor\":\"%s\"}\n", a2, a3);
    snprintf(bad[5], sizeof bad[5], "{\"text\":\"a\",\"contributor\":\"%s\",\"source\":\"x\"}\n", a2);
    snprintf(bad[6], sizeof bad[6], "{\"text\":\"a\",\"contributor\":\"%s\"}\n{\"text\":5,\"contributor\":\"%s\"}\n", a2, a2);
    snprintf(bad[7], sizeof bad[7], "[\"a\"]\n");
    char *before = dump(path);
    for (int i = 0; i < 8; i++) {
        CHECK_MSG(import_text(reg, "bulk", bad[i], NULL, &err) != ACC_OK, "bad file %d accepted", i);
        CHECK_MSG(strncmp(err.msg, want[i], strlen(want[i])) == 0, "file %d: got '%s', want '%s...'", i, err.msg, want[i]);
    }
    CHECK(import_text(reg, "bulk", "\n\n", NULL, &err) == ACC_EINVAL);
    CHECK(import_text(reg, "none", good, NULL, &err) == ACC_ENOTFOUND);
    char *after = dump(path);
    CHECK_STREQ(after, before);
    free(before);
    free(after);

    registry_import_result_t res;
    CHECK_MSG(import_text(reg, "bulk", good, &res, &err) == ACC_OK, "%s", err.msg);
    CHECK(res.records == 3 && res.lines == 4 && res.version == 3);
    registry_datanet_t d;
    CHECK(registry_datanet_get(reg, "bulk", &d, &err) == ACC_OK && d.version == 3 && d.pending == 1);
    seen_t s = {0};
    CHECK(registry_records_accepted(reg, d.id, 0, 2, collect, &s, &err) == ACC_OK);
    CHECK(s.n == 2 && s.seqs[0] == 1 && s.seqs[1] == 2);
    CHECK_STREQ(s.texts[0], "Plums like heavy soil.");
    CHECK_STREQ(s.texts[1], "Pears ripen off the tree.");
    CHECK(!s.signed_[0]);
    CHECK_MSG(strstr(s.provenance[1], "\"owner_import\"") && strstr(s.provenance[1], "\"signed\":false") &&
                  strstr(s.provenance[1], "\"line\":3") && strstr(s.provenance[1], "test.jsonl"),
              "%s", s.provenance[1]);
    registry_close(reg);
}

/* ------------------------------------------------------------------------------ query */

static void test_query_ranks_and_filters(void) {
    char path[512];
    registry_t *reg = open_fresh("query.db", path, sizeof path);
    acc_err err = {0};
    make_datanet(reg, "fruit", 1, REGISTRY_CURATION_AUTO);
    make_datanet(reg, "other", 1, REGISTRY_CURATION_AUTO);
    const char *texts[] = {
        "Grapes grow in clusters on vines.",
        "Honeydew melons grow on trailing vines.",
        "Apples grow on trees in temperate orchards.",
        "Cherries ripen early in the summer.",
        "Kiwifruit vines need a male plant nearby.",
        "Café owners sell dried figs.",
    };
    int64_t ids[6];
    for (int i = 0; i < 6; i++) {
        registry_added_t a;
        CHECK(add_signed(reg, "fruit", (uint8_t)(2 + i % 3), texts[i], &a, &err) == ACC_OK);
        ids[i] = a.id;
    }
    CHECK(add_signed(reg, "other", 2, "Vines vines vines everywhere on vines.", NULL, &err) == ACC_OK);

    registry_hits_t *h = NULL;
    CHECK_MSG(registry_query(reg, "fruit", "what grows on VINES?", 20, 10, &h, &err) == ACC_OK, "%s", err.msg);
    /* Only this datanet's records; the ones with vines and grow first. */
    CHECK(h && h->n == 4);
    if (h && h->n == 4) {
        CHECK(h->hit[0].id == ids[0] || h->hit[0].id == ids[1]);
        CHECK(h->hit[2].id == ids[4] || h->hit[2].id == ids[2]);
        for (size_t i = 0; i < h->n; i++) CHECK(h->hit[i].score > 0 && (i == 0 || h->hit[i].score <= h->hit[i - 1].score));
        bool found = false;
        for (size_t i = 0; i < h->n; i++) found |= strcmp(h->hit[i].text, texts[0]) == 0 && h->hit[i].text_len == strlen(texts[0]);
        CHECK(found);
        uint8_t want[20];
        eth_key_free(key_of(2, want));
        for (size_t i = 0; i < h->n; i++)
            if (h->hit[i].id == ids[0]) CHECK(memcmp(h->hit[i].contributor, want, 20) == 0);
    }
    free(h);
    CHECK(registry_query(reg, "fruit", "vines", 5, 1, &h, &err) == ACC_OK && h->n == 1);
    free(h);
    /* Diacritics folded, stems matched. */
    CHECK(registry_query(reg, "fruit", "cafe", 4, 5, &h, &err) == ACC_OK && h->n == 1 && h->hit[0].id == ids[5]);
    free(h);
    CHECK(registry_query(reg, "fruit", "ripening cherry", 15, 5, &h, &err) == ACC_OK && h->n == 1 && h->hit[0].id == ids[3]);
    free(h);
    /* Common words count only when there is nothing else. */
    CHECK(registry_query(reg, "fruit", "how do the cherries", 19, 10, &h, &err) == ACC_OK && h->n == 1 && h->hit[0].id == ids[3]);
    free(h);
    CHECK(registry_query(reg, "fruit", "in the", 6, 10, &h, &err) == ACC_OK && h->n == 3);
    free(h);
    /* FTS5 syntax in the text is only words. */
    const char *hostile = "\"vines\" OR NOT dn : d2 * ^ NEAR( ) {text} -- ; '";
    CHECK_MSG(registry_query(reg, "fruit", hostile, strlen(hostile), 10, &h, &err) == ACC_OK, "%s", err.msg);
    CHECK(h->n >= 3);
    for (size_t i = 0; i < h->n; i++) CHECK(strstr(h->hit[i].text, "everywhere") == NULL);
    free(h);
    /* No words, no hits; bad input refused. */
    CHECK(registry_query(reg, "fruit", "?! ...", 6, 5, &h, &err) == ACC_OK && h->n == 0);
    free(h);
    CHECK(registry_query(reg, "fruit", "zebra", 5, 5, &h, &err) == ACC_OK && h->n == 0);
    free(h);
    CHECK(registry_query(reg, "fruit", "vines", 5, 0, &h, &err) == ACC_EINVAL && h == NULL);
    CHECK(registry_query(reg, "fruit", "vines", 5, REGISTRY_QUERY_LIMIT_MAX + 1, &h, &err) == ACC_EINVAL);
    CHECK(registry_query(reg, "fruit", "vi\xffnes", 6, 5, &h, &err) == ACC_EINVAL);
    CHECK(registry_query(reg, "nothing", "vines", 5, 5, &h, &err) == ACC_ENOTFOUND);
    char *big = malloc(REGISTRY_QUERY_TEXT_MAX + 1);
    memset(big, 'a', REGISTRY_QUERY_TEXT_MAX + 1);
    CHECK(registry_query(reg, "fruit", big, REGISTRY_QUERY_TEXT_MAX + 1, 5, &h, &err) == ACC_EINVAL);
    /* Many words: only the first REGISTRY_QUERY_TERMS_MAX distinct ones count, and it stays quick. */
    for (int i = 0; i < REGISTRY_QUERY_TEXT_MAX; i += 2) big[i] = (char)('a' + i % 26), big[i + 1] = ' ';
    CHECK(registry_query(reg, "fruit", big, REGISTRY_QUERY_TEXT_MAX, 5, &h, &err) == ACC_OK);
    free(h);
    free(big);
    /* Punctuation-only non-ASCII words. */
    const char *dashes = "\xe2\x80\x94 vines \xe2\x80\x94";
    CHECK_MSG(registry_query(reg, "fruit", dashes, strlen(dashes), 5, &h, &err) == ACC_OK, "%s", err.msg);
    CHECK(h && h->n == 3);
    free(h);
    registry_close(reg);
}

/* ------------------------------------------------------------------------------ models */

/* "id:score id:score" of a query's hits, scores to the bit. */
static char *hits_text(registry_t *reg, const char *datanet, const char *q) {
    registry_hits_t *h = NULL;
    acc_err err = {0};
    acc_buf b = ACC_BUF_INIT;
    CHECK_MSG(registry_query(reg, datanet, q, strlen(q), 10, &h, &err) == ACC_OK, "%s", err.msg);
    for (size_t i = 0; h && i < h->n; i++) acc_buf_printf(&b, "%lld:%a ", (long long)h->hit[i].id, h->hit[i].score);
    free(h);
    return acc_buf_take(&b, NULL);
}

/* BM25 weighs a word by how few records hold it and a record by its length against the mean: a
 * datanet's figures, not the registry's. Records added to another datanet, full of one of the
 * query's words, change neither the order nor the scores of this one's hits. */
static void test_query_ranking_is_the_datanets_own(void) {
    char path[512];
    registry_t *reg = open_fresh("bm25.db", path, sizeof path);
    acc_err err = {0};
    make_datanet(reg, "orchard", 1, REGISTRY_CURATION_AUTO);
    make_datanet(reg, "cider", 1, REGISTRY_CURATION_AUTO);
    const char *texts[] = {"Apples grow on trees in the orchard.", "Pears ripen late in the autumn.",
                           "Plums and cherries are stone fruit.", "Grapes grow on vines."};
    for (int i = 0; i < 4; i++) CHECK(add_signed(reg, "orchard", 2, texts[i], NULL, &err) == ACC_OK);
    char *before = hits_text(reg, "orchard", "apples pears");
    CHECK(registry_begin(reg, &err) == ACC_OK);
    for (int i = 0; i < 300; i++) {
        char t[80];
        snprintf(t, sizeof t, "Apples pressed for cider, batch %d, a long note about the apples and the press.", i);
        CHECK(add_signed(reg, "cider", 3, t, NULL, &err) == ACC_OK);
    }
    CHECK(registry_commit(reg, &err) == ACC_OK);
    char *after = hits_text(reg, "orchard", "apples pears");
    CHECK_STREQ(after, before);
    free(before);
    free(after);
    registry_close(reg);
}

/* A word held by a tenth of a big datanet's records is left out of a query that has rarer words
 * (as the stop words are), and kept when the query has nothing rarer. */
static void test_query_leaves_out_a_datanets_common_words(void) {
    char path[512];
    registry_t *reg = open_fresh("common.db", path, sizeof path);
    acc_err err = {0};
    make_datanet(reg, "log", 1, REGISTRY_CURATION_AUTO);
    acc_buf j = ACC_BUF_INIT;
    uint8_t who[20];
    eth_key_free(key_of(2, who));
    char addr[ETH_ADDRESS_TEXT_SIZE];
    eth_address_to_text(who, addr);
    /* 12,000 records: "widget" in every one, "gizmo" in 3,000, "sprocket" in 3. */
    for (int i = 0; i < 12000; i++)
        acc_buf_printf(&j, "{\"text\": \"widget entry %d%s%s\", \"contributor\": \"%s\"}\n", i,
                       i % 4 == 0 ? " gizmo" : "", i % 4000 == 1 ? " sprocket" : "", addr);
    registry_import_result_t res;
    CHECK_MSG(registry_import_jsonl(reg, "log", j.data, j.len, "t.jsonl", NULL, NULL, &res, &err) == ACC_OK, "%s", err.msg);
    acc_buf_free(&j);
    registry_hits_t *h = NULL;
    /* "widget" and "gizmo" are common here: only the sprocket records. */
    CHECK(registry_query(reg, "log", "widget gizmo sprocket", 21, 10, &h, &err) == ACC_OK);
    CHECK_MSG(h && h->n == 3, "%zu hits", h ? h->n : 0);
    for (size_t i = 0; h && i < h->n; i++) CHECK(strstr(h->hit[i].text, "sprocket"));
    free(h);
    /* Nothing rarer: the common words count. */
    CHECK(registry_query(reg, "log", "widget gizmo", 12, 10, &h, &err) == ACC_OK && h && h->n == 10);
    for (size_t i = 0; h && i < h->n; i++) CHECK(strstr(h->hit[i].text, "gizmo"));
    free(h);
    CHECK(registry_query(reg, "log", "gizmo", 5, 10, &h, &err) == ACC_OK && h && h->n == 10);
    free(h);
    registry_close(reg);
}

static void test_models(void) {
    char path[512];
    registry_t *reg = open_fresh("models.db", path, sizeof path);
    acc_err err = {0};
    make_datanet(reg, "fruit", 1, REGISTRY_CURATION_AUTO);
    make_datanet(reg, "veg", 1, REGISTRY_CURATION_AUTO);
    registry_model_t m = {.name = "chat/local", .kind = REGISTRY_MODEL_HTTP, .price_per_call = 5,
                          .price_per_1k_in = 100, .price_per_1k_out = 300, .owner_share_bps = 7000, .n_lineage = 2,
                          .n_shares = 1};
    eth_key_free(key_of(5, m.owner));
    strcpy(m.lineage[0], "veg");
    strcpy(m.lineage[1], "fruit");
    eth_key_free(key_of(6, m.shares[0].address));
    m.shares[0].bps = 1500;
    strcpy(m.url, "http://127.0.0.1:8081/v1");
    strcpy(m.upstream, "demo/fruit-ngram");
    strcpy(m.api_key_env, "UPSTREAM_KEY");
    registry_model_t got;
    CHECK_MSG(registry_model_register(reg, &m, NULL, 0, &got, &err) == ACC_OK, "%s", err.msg);
    CHECK(got.id > 0 && got.kind == REGISTRY_MODEL_HTTP && got.price_per_1k_out == 300 && got.owner_share_bps == 7000);
    CHECK(got.span_k == REGISTRY_SPAN_K_DEFAULT);
    CHECK(got.n_lineage == 2 && strcmp(got.lineage[0], "veg") == 0 && strcmp(got.lineage[1], "fruit") == 0);
    CHECK(got.n_shares == 1 && got.shares[0].bps == 1500 && memcmp(got.shares[0].address, m.shares[0].address, 20) == 0);
    CHECK_STREQ(got.url, "http://127.0.0.1:8081/v1");
    CHECK_STREQ(got.params, "{}");

    registry_model_t lua = {.name = "tools/upper", .kind = REGISTRY_MODEL_LUA, .span_k = 12};
    const char *script = "return { call = function(req) return { text = req.prompt:upper() } end }";
    CHECK(registry_model_register(reg, &lua, script, strlen(script), &got, &err) == ACC_OK);
    CHECK(got.span_k == 12);
    char *s = NULL;
    size_t len = 0;
    CHECK(registry_model_script(reg, "tools/upper", &s, &len, &err) == ACC_OK && len == strlen(script) && strcmp(s, script) == 0);
    free(s);
    CHECK(registry_model_script(reg, "chat/local", &s, &len, &err) == ACC_ENOTFOUND);

    registry_model_t b = {.name = "fruit/ngram", .kind = REGISTRY_MODEL_BUILTIN, .n_lineage = 1};
    strcpy(b.lineage[0], "fruit");
    strcpy(b.params, "{\"order\":3}");
    CHECK(registry_model_register(reg, &b, NULL, 0, NULL, &err) == ACC_OK);
    void *art = NULL;
    CHECK(registry_model_artifact(reg, "fruit/ngram", &art, &len, &err) == ACC_ENOTFOUND);
    CHECK(registry_model_set_artifact(reg, "fruit/ngram", "\x01\x00\x02", 3, &err) == ACC_OK);
    CHECK(registry_model_set_artifact(reg, "fruit/ngram", "\x01\x00\x03\x04", 4, &err) == ACC_OK);
    CHECK(registry_model_artifact(reg, "fruit/ngram", &art, &len, &err) == ACC_OK && len == 4 &&
          memcmp(art, "\x01\x00\x03\x04", 4) == 0);
    free(art);

    char *before = dump(path);
    CHECK(registry_model_set_artifact(reg, "chat/local", "x", 1, &err) == ACC_EINVAL);
    CHECK(registry_model_register(reg, &m, NULL, 0, NULL, &err) == ACC_EEXIST);
    registry_model_t bad = m;
    strcpy(bad.name, "bad");
    strcpy(bad.lineage[1], "nowhere");
    CHECK(registry_model_register(reg, &bad, NULL, 0, NULL, &err) == ACC_ENOTFOUND);
    CHECK_MSG(strstr(err.msg, "nowhere"), "%s", err.msg);
    bad = m;
    strcpy(bad.name, "bad");
    bad.shares[0].bps = 3001;
    CHECK(registry_model_register(reg, &bad, NULL, 0, NULL, &err) == ACC_EINVAL);
    CHECK_MSG(strstr(err.msg, "10001"), "%s", err.msg);
    bad.shares[0].bps = 0;
    CHECK(registry_model_register(reg, &bad, NULL, 0, NULL, &err) == ACC_EINVAL);
    bad = m;
    strcpy(bad.name, "bad");
    bad.url[0] = 0;
    CHECK(registry_model_register(reg, &bad, NULL, 0, NULL, &err) == ACC_EINVAL);
    strcpy(bad.url, "ftp://x");
    CHECK(registry_model_register(reg, &bad, NULL, 0, NULL, &err) == ACC_EINVAL);
    strcpy(bad.url, "http://x/v1");
    strcpy(bad.api_key_env, "lower");
    CHECK(registry_model_register(reg, &bad, NULL, 0, NULL, &err) == ACC_EINVAL);
    bad = m;
    strcpy(bad.name, "bad");
    strcpy(bad.lineage[1], "veg");
    CHECK(registry_model_register(reg, &bad, NULL, 0, NULL, &err) == ACC_EINVAL);
    bad = lua;
    strcpy(bad.name, "bad");
    CHECK(registry_model_register(reg, &bad, NULL, 0, NULL, &err) == ACC_EINVAL);
    bad.kind = REGISTRY_MODEL_BUILTIN;
    CHECK(registry_model_register(reg, &bad, NULL, 0, NULL, &err) == ACC_EINVAL);
    bad = b;
    strcpy(bad.name, "test/echo");
    CHECK(registry_model_register(reg, &bad, NULL, 0, NULL, &err) == ACC_EINVAL);
    strcpy(bad.name, "bad");
    strcpy(bad.params, "[1]");
    CHECK(registry_model_register(reg, &bad, NULL, 0, NULL, &err) == ACC_EINVAL);
    char *after = dump(path);
    CHECK_STREQ(after, before);
    free(before);
    free(after);

    int n = 0;
    CHECK(registry_models_list(reg, (int (*)(void *, const registry_model_t *))count_account, &n, &err) == ACC_OK);
    CHECK(n == 3);
    CHECK(registry_model_get(reg, "nope", &got, &err) == ACC_ENOTFOUND);
    registry_close(reg);
}

/* ------------------------------------------------------------------------------ agents */

typedef struct checker {
    int calls;
    int fail; /* refuse with this code */
} checker_t;

static int check_script(void *ud, const char *name, const char *script, size_t len, acc_err *err) {
    checker_t *c = ud;
    c->calls++;
    if (c->fail) return acc_fail(err, c->fail, "%s:1: unexpected symbol", name);
    return ACC_OK;
}

static void sign_deploy(const eth_key *k, const char *manifest, const char *script, uint8_t sig[65]) {
    uint8_t d[32];
    acc_err err = {0};
    int rc = registry_deploy_digest(manifest, strlen(manifest), script, strlen(script), d, &err);
    CHECK_MSG(rc == ACC_OK, "%s", err.msg);
    sign(k, d, sig);
}

static int deploy(registry_t *reg, uint8_t seed, const char *manifest, const char *script, checker_t *c,
                  registry_agent_t *out, acc_err *err) {
    uint8_t sig[65];
    eth_key *k = key_of(seed, NULL);
    sign_deploy(k, manifest, script, sig);
    eth_key_free(k);
    return registry_agent_deploy(reg, manifest, strlen(manifest), script, strlen(script), sig, check_script, c, out, err);
}

/* A manifest for an agent by seed's address. */
static void manifest_of(char *out, size_t n, const char *name, const char *version, uint8_t seed, const char *extra) {
    char author[ETH_ADDRESS_TEXT_SIZE];
    addr_text(seed, author);
    snprintf(out, n, "{\"name\": \"%s\", \"version\": \"%s\", \"author\": \"%s\"%s%s}", name, version, author,
             extra && *extra ? ", " : "", extra ? extra : "");
}

static const char script_v1[] = "return { on_message = function(s, t) return t end }";

static void test_manifest_canonical_text(void) {
    /* Keys sorted, no spaces, strings escaped only where JSON needs, UTF-8 kept, integers plain. */
    const char *m = "{ \"version\":\"1.0.0\", \"name\":\"helper\", \"author\":\"0x0000000000000000000000000000000000000001\",\n"
                    "  \"description\": \"Says \\\"hi\\\"\\n\\u00e9t\\u00e9\\u0009/\\\\\", \"tags\": [\"b\", \"a\"],\n"
                    "  \"limits\": {\"time_ms\": 100, \"memory_bytes\": 1048576}, \"price_per_message\": 0 }";
    const char *want = "{\"author\":\"0x0000000000000000000000000000000000000001\",\"description\":\"Says \\\"hi\\\"\\n\xc3\xa9t\xc3\xa9\\t/\\\\\","
                       "\"limits\":{\"memory_bytes\":1048576,\"time_ms\":100},\"name\":\"helper\",\"price_per_message\":0,"
                       "\"tags\":[\"b\",\"a\"],\"version\":\"1.0.0\"}";
    uint8_t d1[32], d2[32], want_digest[32], script_hash[32];
    acc_err err = {0};
    CHECK_MSG(registry_deploy_digest(m, strlen(m), "x", 1, d1, &err) == ACC_OK, "%s", err.msg);
    keccak256("x", 1, script_hash);
    keccak256_ctx c;
    keccak256_init(&c);
    keccak256_update(&c, want, strlen(want));
    keccak256_update(&c, script_hash, 32);
    keccak256_final(&c, want_digest);
    CHECK(memcmp(d1, want_digest, 32) == 0);
    /* Another layout of the same manifest signs the same. */
    CHECK(registry_deploy_digest(want, strlen(want), "x", 1, d2, &err) == ACC_OK && memcmp(d1, d2, 32) == 0);
    CHECK(registry_deploy_digest(want, strlen(want), "y", 1, d2, &err) == ACC_OK && memcmp(d1, d2, 32) != 0);

    const char *bad[] = {
        "[]", "{", "{\"version\":\"1.0.0\",\"author\":\"0x0000000000000000000000000000000000000001\"}",
        "{\"name\":\"a\",\"author\":\"0x0000000000000000000000000000000000000001\"}",
        "{\"name\":\"a\",\"version\":\"1.0.0\"}",
        "{\"name\":\"a\",\"version\":\"1.0\",\"author\":\"0x0000000000000000000000000000000000000001\"}",
        "{\"name\":\"A\",\"version\":\"1.0.0\",\"author\":\"0x0000000000000000000000000000000000000001\"}",
        "{\"name\":\"a\",\"version\":\"1.0.0\",\"author\":\"0x00000000000000000000000000000000000001\"}",
        "{\"name\":\"a\",\"version\":\"1.0.0\",\"author\":\"0x0000000000000000000000000000000000000001\",\"price_per_message\":1.5}",
        "{\"name\":\"a\",\"version\":\"1.0.0\",\"author\":\"0x0000000000000000000000000000000000000001\",\"price_per_message\":-1}",
        "{\"name\":\"a\",\"version\":\"1.0.0\",\"author\":\"0x0000000000000000000000000000000000000001\",\"price_per_message\":9007199254740992}",
        "{\"name\":\"a\",\"version\":\"1.0.0\",\"author\":\"0x0000000000000000000000000000000000000001\",\"tags\":[\"Big\"]}",
        "{\"name\":\"a\",\"version\":\"1.0.0\",\"author\":\"0x0000000000000000000000000000000000000001\",\"tags\":[\"a\",\"a\"]}",
        "{\"name\":\"a\",\"version\":\"1.0.0\",\"author\":\"0x0000000000000000000000000000000000000001\",\"limits\":{\"cpu\":1}}",
        "{\"name\":\"a\",\"version\":\"1.0.0\",\"author\":\"0x0000000000000000000000000000000000000001\",\"models\":\"x\"}",
        "{\"name\":\"a\",\"version\":\"1.0.0\",\"author\":\"0x0000000000000000000000000000000000000001\",\"price\":1}",
        "{\"name\":\"a\",\"name\":\"b\",\"version\":\"1.0.0\",\"author\":\"0x0000000000000000000000000000000000000001\"}",
        "{\"name\":\"test/x\",\"version\":\"1.0.0\",\"author\":\"0x0000000000000000000000000000000000000001\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_MSG(registry_deploy_digest(bad[i], strlen(bad[i]), "x", 1, d1, &err) == ACC_EINVAL, "accepted %s", bad[i]);
        CHECK_MSG(strncmp(err.msg, "manifest: ", 10) == 0, "%s", err.msg);
    }
}

static int64_t clock_now;
static int64_t test_clock(void *ud) { return clock_now; }

static void test_deploy_signed_and_immutable(void) {
    char path[512];
    registry_t *reg = open_fresh("agents.db", path, sizeof path);
    acc_err err = {0};
    make_datanet(reg, "fruit", 1, REGISTRY_CURATION_AUTO);
    registry_model_t b = {.name = "fruit/ngram", .kind = REGISTRY_MODEL_BUILTIN, .n_lineage = 1};
    strcpy(b.lineage[0], "fruit");
    CHECK(registry_model_register(reg, &b, NULL, 0, NULL, &err) == ACC_OK);

    char m[1024];
    manifest_of(m, sizeof m, "helper", "1.0.0", 7,
                "\"description\": \"Answers fruit questions\", \"tags\": [\"fruit\", \"demo\"], "
                "\"price_per_message\": 100, \"price_per_session\": 5, \"markup_bps\": 1500, "
                "\"limits\": {\"time_ms\": 2000}, \"models\": [\"fruit/ngram\", \"test/echo\"], \"datanets\": [\"fruit\"]");
    checker_t c = {0};
    registry_agent_t a;
    CHECK_MSG(deploy(reg, 7, m, script_v1, &c, &a, &err) == ACC_OK, "%s", err.msg);
    CHECK(c.calls == 1);
    uint8_t author[20];
    eth_key_free(key_of(7, author));
    CHECK(memcmp(a.author, author, 20) == 0 && strcmp(a.version, "1.0.0") == 0 && a.listed);
    CHECK(a.price_per_message == 100 && a.price_per_session == 5 && a.markup_bps == 1500 && a.limits.time_ms == 2000);
    CHECK(a.n_tags == 2 && a.n_models == 2 && a.n_datanets == 1 && strcmp(a.models[0], "fruit/ngram") == 0);
    uint8_t h[32];
    keccak256(script_v1, strlen(script_v1), h);
    CHECK(memcmp(a.script_hash, h, 32) == 0);
    char *script = NULL;
    size_t len = 0;
    CHECK(registry_agent_script(reg, "helper", NULL, &script, &len, &err) == ACC_OK && strcmp(script, script_v1) == 0);
    free(script);

    char *before = dump(path);
    /* Wrong key: signed by key 8 for author 7. The script is never checked. */
    c.calls = 0;
    char m2[1024];
    manifest_of(m2, sizeof m2, "helper", "1.1.0", 7, NULL);
    CHECK(deploy(reg, 8, m2, script_v1, &c, NULL, &err) == ACC_EBADSIG);
    CHECK_MSG(strstr(err.msg, "author"), "%s", err.msg);
    CHECK(c.calls == 0);
    /* Tampered script and tampered manifest. */
    uint8_t sig[65];
    eth_key *k7 = key_of(7, NULL);
    sign_deploy(k7, m2, script_v1, sig);
    const char *evil = "return { on_message = function(s, t) return 'pwned' end }";
    CHECK(registry_agent_deploy(reg, m2, strlen(m2), evil, strlen(evil), sig, check_script, &c, NULL, &err) == ACC_EBADSIG);
    char m2b[1024];
    manifest_of(m2b, sizeof m2b, "helper", "1.1.0", 7, "\"price_per_message\": 1000000");
    CHECK(registry_agent_deploy(reg, m2b, strlen(m2b), script_v1, strlen(script_v1), sig, check_script, &c, NULL, &err) == ACC_EBADSIG);
    /* The same version again, even signed properly, and even identical. */
    CHECK(deploy(reg, 7, m, script_v1, &c, NULL, &err) == ACC_EEXIST);
    CHECK_MSG(strstr(err.msg, "helper@1.0.0") && strstr(err.msg, "never changes"), "%s", err.msg);
    /* Another author cannot add versions to the name. */
    char m3[1024];
    manifest_of(m3, sizeof m3, "helper", "9.0.0", 8, NULL);
    CHECK(deploy(reg, 8, m3, script_v1, &c, NULL, &err) == ACC_EPERM);
    /* What it may call must exist. */
    manifest_of(m3, sizeof m3, "other", "1.0.0", 7, "\"models\": [\"nope\"]");
    CHECK(deploy(reg, 7, m3, script_v1, &c, NULL, &err) == ACC_ENOTFOUND);
    CHECK_MSG(strstr(err.msg, "nope"), "%s", err.msg);
    manifest_of(m3, sizeof m3, "other", "1.0.0", 7, "\"datanets\": [\"fruit\", \"veg\"]");
    CHECK(deploy(reg, 7, m3, script_v1, &c, NULL, &err) == ACC_ENOTFOUND);
    /* A script that does not load. */
    c.fail = ACC_ESCRIPT;
    c.calls = 0;
    manifest_of(m3, sizeof m3, "other", "1.0.0", 7, NULL);
    CHECK(deploy(reg, 7, m3, "return {", &c, NULL, &err) == ACC_ESCRIPT);
    CHECK(c.calls == 1);
    CHECK_MSG(strncmp(err.msg, "script: ", 8) == 0, "%s", err.msg);
    c.fail = 0;
    CHECK(registry_agent_deploy(reg, m3, strlen(m3), script_v1, strlen(script_v1), sig, NULL, NULL, NULL, &err) == ACC_EMISUSE);
    CHECK(deploy(reg, 7, m3, "", &c, NULL, &err) == ACC_EINVAL);
    char *after = dump(path);
    CHECK_STREQ(after, before);
    free(before);
    free(after);

    /* Versions: the latest listed is the highest release. */
    manifest_of(m3, sizeof m3, "helper", "1.2.0-beta.1", 7, NULL);
    CHECK(deploy(reg, 7, m3, script_v1, &c, NULL, &err) == ACC_OK);
    manifest_of(m3, sizeof m3, "helper", "1.1.0", 7, "\"description\": \"newer\"");
    CHECK(deploy(reg, 7, m3, "return { on_message = function() return 'v1.1' end }", &c, NULL, &err) == ACC_OK);
    CHECK(registry_agent_get(reg, "helper", NULL, &a, &err) == ACC_OK && strcmp(a.version, "1.1.0") == 0);
    CHECK(a.n_versions == 3 && strcmp(a.description, "newer") == 0);
    CHECK(registry_agent_get(reg, "helper", "1.2.0-beta.1", &a, &err) == ACC_OK);
    CHECK(registry_agent_get(reg, "helper", "3.0.0", &a, &err) == ACC_ENOTFOUND);
    CHECK(registry_agent_get(reg, "nobody", NULL, &a, &err) == ACC_ENOTFOUND);

    /* Unlisting needs the author's signature over exactly that change. */
    uint8_t d[32];
    eth_key *k8 = key_of(8, NULL);
    registry_listing_digest("helper", "1.1.0", false, d);
    sign(k8, d, sig);
    CHECK(registry_agent_set_listed(reg, "helper", "1.1.0", false, sig, &err) == ACC_EBADSIG);
    sign(k7, d, sig);
    CHECK(registry_agent_set_listed(reg, "helper", "1.0.0", false, sig, &err) == ACC_EBADSIG);
    CHECK(registry_agent_set_listed(reg, "helper", "1.1.0", false, sig, &err) == ACC_OK);
    CHECK(registry_agent_get(reg, "helper", NULL, &a, &err) == ACC_OK && strcmp(a.version, "1.0.0") == 0 && a.n_versions == 2);
    registry_listing_digest("helper", "", false, d);
    sign(k7, d, sig);
    CHECK(registry_agent_set_listed(reg, "helper", NULL, false, sig, &err) == ACC_OK);
    CHECK(registry_agent_get(reg, "helper", NULL, &a, &err) == ACC_ENOTFOUND);
    CHECK_MSG(strstr(err.msg, "unlisted"), "%s", err.msg);
    CHECK(registry_agent_get(reg, "helper", "1.0.0", &a, &err) == ACC_OK && !a.listed);
    registry_listing_digest("helper", "1.0.0", true, d);
    sign(k7, d, sig);
    CHECK(registry_agent_set_listed(reg, "helper", "1.0.0", true, sig, &err) == ACC_OK);
    CHECK(registry_agent_get(reg, "helper", NULL, &a, &err) == ACC_OK && strcmp(a.version, "1.0.0") == 0);
    registry_listing_digest("helper", "7.0.0", true, d);
    sign(k7, d, sig);
    CHECK(registry_agent_set_listed(reg, "helper", "7.0.0", true, sig, &err) == ACC_ENOTFOUND);
    eth_key_free(k7);
    eth_key_free(k8);
    registry_close(reg);
}

typedef struct market {
    int n;
    char names[8][REGISTRY_NAME_MAX + 1];
} market_t;

static int collect_market(void *ud, const registry_agent_t *a, const registry_agent_usage_t *u) {
    market_t *m = ud;
    if (m->n < 8) strcpy(m->names[m->n], a->name);
    m->n++;
    return 0;
}

/* Usage figures for the test: the agent named "busy" has the most sessions, "rich" the most revenue. */
static int fake_usage(void *ud, const char *agent, registry_agent_usage_t *out, acc_err *err) {
    memset(out, 0, sizeof *out);
    if (strcmp(agent, "busy") == 0) out->sessions_30d = 50, out->revenue_30d = 10;
    if (strcmp(agent, "rich") == 0) out->sessions_30d = 5, out->revenue_30d = 9000;
    return ACC_OK;
}

static void test_marketplace_listing(void) {
    char path[512];
    registry_t *reg = open_fresh("market.db", path, sizeof path);
    registry_set_clock(reg, test_clock, NULL);
    acc_err err = {0};
    checker_t c = {0};
    const char *names[] = {"busy", "rich", "quiet", "newest"};
    const char *extras[] = {"\"tags\": [\"fruit\"], \"description\": \"Orchard helper\"",
                            "\"tags\": [\"finance\"], \"description\": \"Prices\"",
                            "\"tags\": [\"fruit\", \"quiet\"], \"description\": \"Says little about FRUIT\"",
                            "\"description\": \"The latest\""};
    for (int i = 0; i < 4; i++) {
        clock_now = 1000 * (i + 1);
        char m[512];
        manifest_of(m, sizeof m, names[i], "1.0.0", 7, extras[i]);
        CHECK_MSG(deploy(reg, 7, m, script_v1, &c, NULL, &err) == ACC_OK, "%s", err.msg);
    }
    market_t got = {0};
    registry_agent_query_t q = {.sort = REGISTRY_SORT_NEW};
    CHECK(registry_agents_list(reg, &q, collect_market, &got, &err) == ACC_OK);
    CHECK(got.n == 4 && strcmp(got.names[0], "newest") == 0 && strcmp(got.names[3], "busy") == 0);
    memset(&got, 0, sizeof got);
    q = (registry_agent_query_t){.sort = REGISTRY_SORT_USAGE, .usage = fake_usage};
    CHECK(registry_agents_list(reg, &q, collect_market, &got, &err) == ACC_OK);
    CHECK(got.n == 4 && strcmp(got.names[0], "busy") == 0 && strcmp(got.names[1], "rich") == 0 &&
          strcmp(got.names[2], "newest") == 0);
    memset(&got, 0, sizeof got);
    q.sort = REGISTRY_SORT_REVENUE;
    q.limit = 1;
    CHECK(registry_agents_list(reg, &q, collect_market, &got, &err) == ACC_OK && got.n == 1 && strcmp(got.names[0], "rich") == 0);
    memset(&got, 0, sizeof got);
    q = (registry_agent_query_t){.sort = REGISTRY_SORT_NEW, .search = "fruit"};
    CHECK(registry_agents_list(reg, &q, collect_market, &got, &err) == ACC_OK);
    CHECK(got.n == 2 && strcmp(got.names[0], "quiet") == 0 && strcmp(got.names[1], "busy") == 0);
    memset(&got, 0, sizeof got);
    q = (registry_agent_query_t){.sort = REGISTRY_SORT_NEW, .tag = "quiet"};
    CHECK(registry_agents_list(reg, &q, collect_market, &got, &err) == ACC_OK && got.n == 1);
    memset(&got, 0, sizeof got);
    q = (registry_agent_query_t){.search = "nothing like it"};
    CHECK(registry_agents_list(reg, &q, collect_market, &got, &err) == ACC_OK && got.n == 0);
    /* Unlisted agents leave the marketplace. */
    uint8_t d[32], sig[65];
    eth_key *k7 = key_of(7, NULL);
    registry_listing_digest("busy", NULL, false, d);
    sign(k7, d, sig);
    CHECK(registry_agent_set_listed(reg, "busy", NULL, false, sig, &err) == ACC_OK);
    eth_key_free(k7);
    memset(&got, 0, sizeof got);
    q = (registry_agent_query_t){.sort = REGISTRY_SORT_NEW};
    CHECK(registry_agents_list(reg, &q, collect_market, &got, &err) == ACC_OK && got.n == 3);
    registry_close(reg);
}

/* ------------------------------------------------------------------------------ names */

static void test_semver(void) {
    const char *good[] = {"0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7",
                          "1.0.0-x.7.z.92", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85"};
    const char *bad[] = {"", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "1.2.3-", "1.2.3-01", "1.2.3+",
                         "v1.2.3", "1.2.3-a..b", " 1.2.3", "1.2.3 ", "99999999999999999999999.0.0"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) CHECK_MSG(registry_semver_check(good[i], NULL) == ACC_OK, "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECK_MSG(registry_semver_check(bad[i], NULL) == ACC_EINVAL, "%s", bad[i]);
    /* semver.org's precedence example, in order. */
    const char *order[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                           "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0"};
    size_t n = sizeof order / sizeof *order;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int c = registry_semver_compare(order[i], order[j]);
            CHECK_MSG((i < j && c < 0) || (i == j && c == 0) || (i > j && c > 0), "%s vs %s: %d", order[i], order[j], c);
        }
    CHECK(registry_semver_compare("1.0.0+a", "1.0.0+b") == 0);
}

int main(void) {
    if (test_scratch_dir(dir, sizeof dir, "registry") != 0) return 1;
    RUN(test_open_creates_wal_database);
    RUN(test_open_existing_refuses_missing);
    RUN(test_open_refuses_newer_and_foreign_files);
    RUN(test_upgrade_from_older_schema);
    RUN(test_transactions_nest_and_roll_back);
    RUN(test_accounts_and_api_keys);
    RUN(test_datanet_create_and_refusals);
    RUN(test_signed_contributions);
    RUN(test_review_curation);
    RUN(test_import_all_or_nothing);
    RUN(test_query_ranks_and_filters);
    RUN(test_query_ranking_is_the_datanets_own);
    RUN(test_query_leaves_out_a_datanets_common_words);
    RUN(test_models);
    RUN(test_manifest_canonical_text);
    RUN(test_deploy_signed_and_immutable);
    RUN(test_marketplace_listing);
    RUN(test_semver);
    test_remove_dir(dir);
    return check_finish("registry");
}
