/*
 * datanets.c: datanets and their records: signed contributions, the owner's review, the owner's
 * bulk import, iteration in acceptance order, and full-text queries (registry.h).
 *
 * A record is written once and only its status changes (pending -> accepted | rejected). Accepting
 * one gives it the datanet's next seq (the datanet's version counts accepted records), puts it in
 * the FTS5 index and announces it to the hooks, all in the transaction that accepts it. Content is
 * identified by keccak256 of the exact text, unique per datanet, so a second copy is refused with
 * the id of the record that holds it, whatever that record's status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "meters/eth/keccak.h"
#include "meters/eth/keys.h"
#include "registry/store.h"
#include "runtime/base/buf.h"
#include "runtime/base/invariant.h"

#define INT64_MAX_U ((uint64_t)INT64_MAX)

const char *registry_record_status_name(registry_record_status_t s) {
    switch (s) {
    case REGISTRY_RECORD_PENDING: return "pending";
    case REGISTRY_RECORD_ACCEPTED: return "accepted";
    case REGISTRY_RECORD_REJECTED: return "rejected";
    }
    return "?";
}

static registry_record_status_t status_parse(const unsigned char *s) {
    if (s && s[0] == 'a') return REGISTRY_RECORD_ACCEPTED;
    if (s && s[0] == 'r') return REGISTRY_RECORD_REJECTED;
    return REGISTRY_RECORD_PENDING;
}

/* ------------------------------------------------------------------------------- datanets */

#define DATANET_COLUMNS \
    "id, name, owner, description, price_per_query, price_per_record, curation, version, pending, rejected, created_ms"

static const char sql_datanet_get[] = "SELECT " DATANET_COLUMNS " FROM datanets WHERE name = ?1";
static const char sql_datanet_list[] = "SELECT " DATANET_COLUMNS " FROM datanets ORDER BY name";
static const char sql_datanet_insert[] =
    "INSERT INTO datanets (name, owner, description, price_per_query, price_per_record, curation, version, pending, "
    "rejected, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0, 0, ?7)";
static const char sql_datanet_counts[] =
    "UPDATE datanets SET version = version + ?2, pending = pending + ?3, rejected = rejected + ?4 WHERE id = ?1";

static void read_datanet(sqlite3_stmt *st, registry_datanet_t *d) {
    d->id = sqlite3_column_int64(st, 0);
    store_column_text(st, 1, d->name, sizeof d->name);
    store_column_blob(st, 2, d->owner, 20);
    store_column_text(st, 3, d->description, sizeof d->description);
    d->price_per_query = (uint64_t)sqlite3_column_int64(st, 4);
    d->price_per_record = (uint64_t)sqlite3_column_int64(st, 5);
    const unsigned char *c = sqlite3_column_text(st, 6);
    d->curation = c && c[0] == 'r' ? REGISTRY_CURATION_REVIEW : REGISTRY_CURATION_AUTO;
    d->version = (uint64_t)sqlite3_column_int64(st, 7);
    d->pending = (uint64_t)sqlite3_column_int64(st, 8);
    d->rejected = (uint64_t)sqlite3_column_int64(st, 9);
    d->created_ms = sqlite3_column_int64(st, 10);
}

int registry_datanet_get(registry_t *reg, const char *name, registry_datanet_t *out, acc_err *err) {
    int rc = registry_name_check(name, "datanet", err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = store_stmt(reg, sql_datanet_get, &st, err))) return rc;
    store_bind_str(st, 1, name);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        if (out) read_datanet(st, out);
    } else if (src == SQLITE_DONE) {
        rc = acc_fail(err, ACC_ENOTFOUND, "datanet '%s': no such datanet", name);
    } else {
        rc = store_fail(reg, src, err, "datanet");
    }
    sqlite3_reset(st);
    return rc;
}

int registry_datanet_create(registry_t *reg, const registry_datanet_spec_t *spec, registry_datanet_t *out,
                            acc_err *err) {
    int rc = registry_name_check_new(spec->name, "datanet", err);
    if (rc == ACC_OK) rc = registry_description_check(spec->description, "description", err);
    if (rc) return rc;
    if (spec->price_per_query > INT64_MAX_U || spec->price_per_record > INT64_MAX_U)
        return acc_fail(err, ACC_EINVAL, "price: at most %lld", (long long)INT64_MAX);
    if (spec->curation != REGISTRY_CURATION_AUTO && spec->curation != REGISTRY_CURATION_REVIEW)
        return acc_fail(err, ACC_EINVAL, "curation: auto or review");
    if ((rc = store_tx_begin(reg, err))) return rc;
    if (registry_datanet_get(reg, spec->name, NULL, NULL) == ACC_OK) {
        rc = acc_fail(err, ACC_EEXIST, "datanet '%s' exists already", spec->name);
    } else {
        sqlite3_stmt *st;
        if ((rc = store_stmt(reg, sql_datanet_insert, &st, err)) == ACC_OK) {
            store_bind_str(st, 1, spec->name);
            store_bind_blob(st, 2, spec->owner, 20);
            store_bind_str(st, 3, spec->description ? spec->description : "");
            sqlite3_bind_int64(st, 4, (int64_t)spec->price_per_query);
            sqlite3_bind_int64(st, 5, (int64_t)spec->price_per_record);
            store_bind_str(st, 6, spec->curation == REGISTRY_CURATION_REVIEW ? "review" : "auto");
            sqlite3_bind_int64(st, 7, store_now(reg));
            rc = store_exec(reg, st, err, "datanet");
        }
        if (rc == ACC_OK) rc = store_fts_create(reg, sqlite3_last_insert_rowid(reg->db), false, err);
        if (rc == ACC_OK && out) rc = registry_datanet_get(reg, spec->name, out, err);
    }
    return store_tx_end(reg, rc, err);
}

int registry_datanets_list(registry_t *reg, int (*fn)(void *ud, const registry_datanet_t *d), void *ud,
                           acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_datanet_list, &st, err), src = SQLITE_DONE;
    if (rc) return rc;
    while (rc == ACC_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        registry_datanet_t d;
        read_datanet(st, &d);
        rc = fn(ud, &d);
    }
    if (rc == ACC_OK && src != SQLITE_DONE) rc = store_fail(reg, src, err, "datanets");
    sqlite3_reset(st);
    return rc;
}

/* -------------------------------------------------------------------------------- records */

#define RECORD_COLUMNS \
    "id, datanet_id, seq, contributor, content_hash, text, status, created_ms, status_ms, signature, provenance"

static const char sql_record_insert[] =
    "INSERT INTO records (datanet_id, seq, contributor, content_hash, text, status, created_ms, status_ms, signature, "
    "provenance) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)";
static const char sql_record_holder[] = "SELECT id, status FROM records WHERE datanet_id = ?1 AND content_hash = ?2";
static const char sql_record_get[] = "SELECT " RECORD_COLUMNS " FROM records WHERE id = ?1";
static const char sql_record_review[] =
    "UPDATE records SET status = ?2, seq = ?3, status_ms = ?4, review_signature = ?5 WHERE id = ?1 AND status = 'pending'";
/* Full text. Each datanet has an FTS5 table of its own, records_fts_<datanet id>, a record's rowid
 * there its seq (schema.c, version 7), so BM25's statistics (how many records, their mean length,
 * how many hold each word) are the datanet's own: with one table for every datanet, a datanet's
 * ranking moved when another datanet took records. The statements below name the table with "%s";
 * fts_stmt puts in the name made from the datanet's id (a number of ours, never outside text:
 * values are still bound) and keeps the last datanet's statement. */
static const char sql_fts_drop[] = "DROP TABLE IF EXISTS %s";
static const char sql_fts_create[] =
    "CREATE VIRTUAL TABLE %s USING fts5(text, content = '', tokenize = 'porter unicode61')";
static const char sql_fts_fill[] =
    "INSERT INTO %s (rowid, text) SELECT seq, text FROM records WHERE datanet_id = ?1 AND status = 'accepted' "
    "ORDER BY seq";
static const char sql_fts_insert[] = "INSERT INTO %s (rowid, text) VALUES (?1, ?2)";
/* Ranked inside FTS5 (bm25() in ORDER BY measured faster than the table's rank column, which goes
 * through a second cursor), then the few records fetched. */
static const char sql_query[] =
    "SELECT r.id, r.contributor, r.text, -f.score FROM "
    "(SELECT rowid AS k, bm25(%s) AS score FROM %s WHERE %s MATCH ?1 ORDER BY score LIMIT ?2) f "
    "JOIN records r ON r.datanet_id = ?3 AND r.seq = f.k ORDER BY f.score";

/* sql with the datanet's table name for each %s (three at most), in out. */
static void fts_sql(char out[512], const char *sql, int64_t datanet_id) {
    char table[48];
    snprintf(table, sizeof table, "records_fts_%lld", (long long)datanet_id);
    snprintf(out, 512, sql, table, table, table);
}

static int fts_exec(registry_t *reg, const char *sql, int64_t datanet_id, acc_err *err) {
    char text[512];
    sqlite3_stmt *st;
    fts_sql(text, sql, datanet_id);
    int src = sqlite3_prepare_v2(reg->db, text, -1, &st, NULL);
    if (src != SQLITE_OK) return store_fail(reg, src, err, "full-text index");
    if (strstr(sql, "?1")) sqlite3_bind_int64(st, 1, datanet_id);
    int rc = store_exec(reg, st, err, "full-text index");
    sqlite3_finalize(st);
    return rc;
}

int store_fts_create(registry_t *reg, int64_t datanet_id, bool replace, acc_err *err) {
    int rc = replace ? fts_exec(reg, sql_fts_drop, datanet_id, err) : ACC_OK;
    if (rc == ACC_OK) rc = fts_exec(reg, sql_fts_create, datanet_id, err);
    if (rc == ACC_OK) rc = fts_exec(reg, sql_fts_fill, datanet_id, err);
    return rc;
}

/* The statement sql on datanet_id's table, from slot when it holds that datanet's (reset, its
 * bindings cleared), else prepared into it. */
static int fts_stmt(registry_t *reg, store_fts_stmt_t *slot, const char *sql, int64_t datanet_id,
                    sqlite3_stmt **out, acc_err *err) {
    if (slot->st && slot->datanet_id == datanet_id) {
        sqlite3_reset(slot->st);
        sqlite3_clear_bindings(slot->st);
        *out = slot->st;
        return ACC_OK;
    }
    sqlite3_finalize(slot->st);
    slot->st = NULL;
    slot->datanet_id = 0;
    char text[512];
    fts_sql(text, sql, datanet_id);
    int src = sqlite3_prepare_v3(reg->db, text, -1, SQLITE_PREPARE_PERSISTENT, &slot->st, NULL);
    if (src != SQLITE_OK) return store_fail(reg, src, err, "full-text index");
    slot->datanet_id = datanet_id;
    *out = slot->st;
    return ACC_OK;
}
static const char sql_records_accepted[] =
    "SELECT " RECORD_COLUMNS " FROM records WHERE datanet_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";
static const char sql_records_status[] =
    "SELECT " RECORD_COLUMNS " FROM records WHERE datanet_id = ?1 AND status = ?2 AND id > ?3 ORDER BY id LIMIT ?4";

static void read_record(sqlite3_stmt *st, registry_record_t *r) {
    r->id = sqlite3_column_int64(st, 0);
    r->datanet_id = sqlite3_column_int64(st, 1);
    r->seq = (uint64_t)sqlite3_column_int64(st, 2);
    store_column_blob(st, 3, r->contributor, 20);
    store_column_blob(st, 4, r->content_hash, 32);
    r->text = (const char *)sqlite3_column_text(st, 5);
    r->text_len = (size_t)sqlite3_column_bytes(st, 5);
    if (!r->text) r->text = "";
    r->status = status_parse(sqlite3_column_text(st, 6));
    r->created_ms = sqlite3_column_int64(st, 7);
    r->status_ms = sqlite3_column_int64(st, 8);
    r->is_signed = store_column_blob(st, 9, r->signature, 65);
    r->provenance = (const char *)sqlite3_column_text(st, 10);
    if (!r->provenance) r->provenance = "{}";
}

/* Steps st and hands each row to fn as a record. */
static int each_record(registry_t *reg, sqlite3_stmt *st, int (*fn)(void *ud, const registry_record_t *r), void *ud,
                       size_t *count, acc_err *err) {
    int rc = ACC_OK, src = SQLITE_DONE;
    size_t n = 0;
    while (rc == ACC_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        registry_record_t r;
        read_record(st, &r);
        n++;
        rc = fn ? fn(ud, &r) : ACC_OK;
    }
    if (rc == ACC_OK && src != SQLITE_DONE) rc = store_fail(reg, src, err, "records");
    sqlite3_reset(st);
    if (count) *count = n;
    return rc;
}

static int check_text(const char *text, size_t len, acc_err *err) {
    if (len == 0) return acc_fail(err, ACC_EINVAL, "text: empty");
    if (len > REGISTRY_TEXT_MAX) return acc_fail(err, ACC_EINVAL, "text: %zu bytes, over %d", len, REGISTRY_TEXT_MAX);
    if (memchr(text, 0, len)) return acc_fail(err, ACC_EINVAL, "text: holds a NUL byte");
    if (!registry_utf8_valid(text, len)) return acc_fail(err, ACC_EINVAL, "text: not UTF-8");
    return ACC_OK;
}

/* The message for content a datanet holds already; *holder gets the id of the record holding it. */
static int refuse_duplicate(registry_t *reg, int64_t datanet_id, const uint8_t hash[32], int64_t *holder,
                            acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_record_holder, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, datanet_id);
    store_bind_blob(st, 2, hash, 32);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *holder = sqlite3_column_int64(st, 0);
        rc = acc_fail(err, ACC_EEXIST, "identical content is record %lld (%s)", (long long)*holder,
                      sqlite3_column_text(st, 1));
    } else {
        rc = acc_fail(err, ACC_EEXIST, "identical content is held already");
    }
    sqlite3_reset(st);
    return rc;
}

/* Puts an accepted record in its datanet's FTS index and tells the hooks. */
static int index_accepted(registry_t *reg, const registry_record_t *r, acc_err *err) {
    sqlite3_stmt *st;
    int rc = fts_stmt(reg, &reg->fts_insert, sql_fts_insert, r->datanet_id, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, (int64_t)r->seq);
    store_bind_text(st, 2, r->text, r->text_len);
    if ((rc = store_exec(reg, st, err, "full-text index"))) return rc;
    return store_announce_accepted(reg, r, err);
}

/* Inserts r (id set on success; seq and status as given), indexes it when accepted. A duplicate is
 * ACC_EEXIST naming the holder, whose id goes into *holder. */
static int insert_record(registry_t *reg, registry_record_t *r, int64_t *holder, acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_record_insert, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, r->datanet_id);
    if (r->status == REGISTRY_RECORD_ACCEPTED) sqlite3_bind_int64(st, 2, (int64_t)r->seq);
    store_bind_blob(st, 3, r->contributor, 20);
    store_bind_blob(st, 4, r->content_hash, 32);
    store_bind_text(st, 5, r->text, r->text_len);
    store_bind_str(st, 6, registry_record_status_name(r->status));
    sqlite3_bind_int64(st, 7, r->created_ms);
    if (r->is_signed) store_bind_blob(st, 8, r->signature, 65);
    store_bind_str(st, 9, r->provenance);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src == SQLITE_CONSTRAINT_UNIQUE) return refuse_duplicate(reg, r->datanet_id, r->content_hash, holder, err);
    if (src != SQLITE_DONE) return store_fail(reg, src, err, "record");
    r->id = sqlite3_last_insert_rowid(reg->db);
    return r->status == REGISTRY_RECORD_ACCEPTED ? index_accepted(reg, r, err) : ACC_OK;
}

static int add_counts(registry_t *reg, int64_t datanet_id, int64_t accepted, int64_t pending, int64_t rejected,
                      acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_datanet_counts, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, datanet_id);
    sqlite3_bind_int64(st, 2, accepted);
    sqlite3_bind_int64(st, 3, pending);
    sqlite3_bind_int64(st, 4, rejected);
    return store_exec(reg, st, err, "datanet");
}

int registry_record_add(registry_t *reg, const char *datanet, const char *text, size_t len,
                        const uint8_t contributor[20], const uint8_t signature[65], registry_added_t *out,
                        acc_err *err) {
    registry_datanet_t d;
    int rc = registry_name_check(datanet, "datanet", err);
    if (rc == ACC_OK) rc = check_text(text, len, err);
    if (rc) return rc;
    uint8_t digest[32];
    registry_contribution_digest(datanet, text, len, digest);
    if ((rc = registry_verify_signer(digest, signature, contributor, "contribution", "contributor", err))) return rc;
    if ((rc = store_tx_begin(reg, err))) return rc;
    if ((rc = registry_datanet_get(reg, datanet, &d, err)) == ACC_OK) {
        char provenance[96], by[ETH_ADDRESS_TEXT_SIZE];
        eth_address_to_text(contributor, by);
        snprintf(provenance, sizeof provenance, "{\"kind\":\"contribution\",\"signed_by\":\"%s\"}", by);
        registry_record_t r = {
            .datanet_id = d.id,
            .text = text,
            .text_len = len,
            .status = d.curation == REGISTRY_CURATION_AUTO ? REGISTRY_RECORD_ACCEPTED : REGISTRY_RECORD_PENDING,
            .created_ms = store_now(reg),
            .is_signed = true,
            .provenance = provenance,
        };
        r.status_ms = r.created_ms;
        r.seq = r.status == REGISTRY_RECORD_ACCEPTED ? d.version + 1 : 0;
        memcpy(r.contributor, contributor, 20);
        memcpy(r.signature, signature, 65);
        keccak256(text, len, r.content_hash);
        int64_t holder = 0;
        rc = insert_record(reg, &r, &holder, err);
        if (rc == ACC_OK) rc = add_counts(reg, d.id, r.status == REGISTRY_RECORD_ACCEPTED, r.status == REGISTRY_RECORD_PENDING, 0, err);
        if (rc == ACC_OK && out) *out = (registry_added_t){.id = r.id, .status = r.status, .seq = r.seq};
        if (rc) acc_err_prefix(err, "datanet '%s'", datanet);
    }
    return store_tx_end(reg, rc, err);
}

/* Reads record id into a malloc'd copy the review needs (its text goes to the index). */
typedef struct record_copy {
    registry_record_t r;
    char *text, *provenance;
} record_copy_t;

static int copy_record(void *ud, const registry_record_t *r) {
    record_copy_t *c = ud;
    c->r = *r;
    c->text = malloc(r->text_len + 1);
    c->provenance = strdup(r->provenance);
    if (!c->text || !c->provenance) return ACC_ENOMEM;
    memcpy(c->text, r->text, r->text_len);
    c->text[r->text_len] = '\0';
    c->r.text = c->text;
    c->r.provenance = c->provenance;
    return ACC_OK;
}

int registry_record_get(registry_t *reg, int64_t id, int (*fn)(void *ud, const registry_record_t *r), void *ud,
                        acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_record_get, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, id);
    size_t n;
    rc = each_record(reg, st, fn, ud, &n, err);
    if (rc == ACC_ENOMEM) return acc_fail(err, rc, "record %lld: out of memory", (long long)id);
    if (rc == ACC_OK && n == 0) rc = acc_fail(err, ACC_ENOTFOUND, "record %lld: no such record", (long long)id);
    return rc;
}

int registry_record_review(registry_t *reg, const char *datanet, int64_t record_id, bool accept,
                           const uint8_t signature[65], acc_err *err) {
    registry_datanet_t d;
    record_copy_t c = {0};
    int rc = store_tx_begin(reg, err);
    if (rc) return rc;
    if ((rc = registry_datanet_get(reg, datanet, &d, err))) goto done;
    uint8_t digest[32];
    registry_review_digest(datanet, record_id, accept, digest);
    if ((rc = registry_verify_signer(digest, signature, d.owner, accept ? "accept" : "reject", "datanet's owner", err)))
        goto done;
    if ((rc = registry_record_get(reg, record_id, copy_record, &c, err))) goto done;
    if (c.r.datanet_id != d.id) {
        rc = acc_fail(err, ACC_ENOTFOUND, "record %lld is not in datanet '%s'", (long long)record_id, datanet);
        goto done;
    }
    if (c.r.status != REGISTRY_RECORD_PENDING) {
        rc = acc_fail(err, ACC_EMISUSE, "record %lld is %s, not pending", (long long)record_id,
                      registry_record_status_name(c.r.status));
        goto done;
    }
    c.r.status = accept ? REGISTRY_RECORD_ACCEPTED : REGISTRY_RECORD_REJECTED;
    c.r.seq = accept ? d.version + 1 : 0;
    c.r.status_ms = store_now(reg);
    sqlite3_stmt *st;
    if ((rc = store_stmt(reg, sql_record_review, &st, err))) goto done;
    sqlite3_bind_int64(st, 1, record_id);
    store_bind_str(st, 2, registry_record_status_name(c.r.status));
    if (accept) sqlite3_bind_int64(st, 3, (int64_t)c.r.seq);
    sqlite3_bind_int64(st, 4, c.r.status_ms);
    store_bind_blob(st, 5, signature, 65);
    if ((rc = store_exec(reg, st, err, "review"))) goto done;
    rc = add_counts(reg, d.id, accept, -1, !accept, err);
    if (rc == ACC_OK && accept) rc = index_accepted(reg, &c.r, err);
done:
    free(c.text);
    free(c.provenance);
    return store_tx_end(reg, rc, err);
}

int registry_records_accepted(registry_t *reg, int64_t datanet_id, uint64_t after_seq, size_t limit,
                              int (*fn)(void *ud, const registry_record_t *r), void *ud, acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_records_accepted, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, datanet_id);
    sqlite3_bind_int64(st, 2, after_seq > INT64_MAX_U ? INT64_MAX : (int64_t)after_seq);
    sqlite3_bind_int64(st, 3, limit == 0 || limit > INT64_MAX_U ? -1 : (int64_t)limit);
    return each_record(reg, st, fn, ud, NULL, err);
}

int registry_records_list(registry_t *reg, const char *datanet, registry_record_status_t status, int64_t after_id,
                          size_t limit, int (*fn)(void *ud, const registry_record_t *r), void *ud, acc_err *err) {
    registry_datanet_t d;
    int rc = registry_datanet_get(reg, datanet, &d, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = store_stmt(reg, sql_records_status, &st, err))) return rc;
    sqlite3_bind_int64(st, 1, d.id);
    store_bind_str(st, 2, registry_record_status_name(status));
    sqlite3_bind_int64(st, 3, after_id);
    sqlite3_bind_int64(st, 4, limit == 0 || limit > INT64_MAX_U ? -1 : (int64_t)limit);
    return each_record(reg, st, fn, ud, NULL, err);
}

static const char sql_contributors[] =
    "SELECT contributor, sum(status = 'accepted'), sum(status = 'pending'), sum(status = 'rejected') FROM records "
    "WHERE datanet_id = ?1 GROUP BY contributor ORDER BY 2 DESC, contributor LIMIT ?2";

int registry_datanet_contributors(registry_t *reg, const char *datanet, size_t limit,
                                  int (*fn)(void *ud, const registry_contributor_t *c), void *ud, acc_err *err) {
    registry_datanet_t d;
    int rc = registry_datanet_get(reg, datanet, &d, err), src = SQLITE_DONE;
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = store_stmt(reg, sql_contributors, &st, err))) return rc;
    sqlite3_bind_int64(st, 1, d.id);
    sqlite3_bind_int64(st, 2, limit == 0 || limit > INT64_MAX_U ? -1 : (int64_t)limit);
    while (rc == ACC_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        registry_contributor_t c = {.accepted = (uint64_t)sqlite3_column_int64(st, 1),
                                    .pending = (uint64_t)sqlite3_column_int64(st, 2),
                                    .rejected = (uint64_t)sqlite3_column_int64(st, 3)};
        const void *a = sqlite3_column_blob(st, 0);
        ACC_INVARIANT(a && sqlite3_column_bytes(st, 0) == 20, "records.contributor is 20 bytes (the schema checks it)");
        memcpy(c.address, a, 20);
        rc = fn(ud, &c);
    }
    if (rc == ACC_OK && src != SQLITE_DONE) rc = store_fail(reg, src, err, "contributors");
    sqlite3_reset(st);
    return rc;
}

/* --------------------------------------------------------------------------------- import */

/* Parses one line into r's text and contributor; the text points into *json (the caller frees it). */
static int parse_line(const char *line, size_t len, json_t **json, registry_record_t *r, acc_err *err) {
    json_error_t jerr;
    *json = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*json) return acc_fail(err, ACC_EINVAL, "bad JSON at column %d: %s", jerr.column, jerr.text);
    if (!json_is_object(*json)) return acc_fail(err, ACC_EINVAL, "not a JSON object");
    const char *key;
    json_t *v;
    json_t *text = NULL, *contributor = NULL;
    json_object_foreach(*json, key, v) {
        if (strcmp(key, "text") == 0) text = v;
        else if (strcmp(key, "contributor") == 0) contributor = v;
        else return acc_fail(err, ACC_EINVAL, "unknown field '%.40s' (a line holds text and contributor)", key);
    }
    if (!text) return acc_fail(err, ACC_EINVAL, "text: missing");
    if (!json_is_string(text)) return acc_fail(err, ACC_EINVAL, "text: not a string");
    if (!contributor) return acc_fail(err, ACC_EINVAL, "contributor: missing");
    if (!json_is_string(contributor)) return acc_fail(err, ACC_EINVAL, "contributor: not a string");
    r->text = json_string_value(text);
    r->text_len = json_string_length(text);
    int rc = check_text(r->text, r->text_len, err);
    if (rc) return rc;
    acc_err why = {0};
    if (eth_address_parse(json_string_value(contributor), json_string_length(contributor), r->contributor, &why) !=
        ACC_OK)
        return acc_fail(err, ACC_EINVAL, "contributor: %s", why.msg);
    return ACC_OK;
}

/* The JSON text of s (a string), or "null"; malloc'd. */
static char *json_quote(const char *s) {
    json_t *v = s ? json_string(s) : json_null();
    char *out = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return out;
}

int registry_import_jsonl(registry_t *reg, const char *datanet, const char *data, size_t len, const char *source,
                          void (*progress)(void *ud, size_t done, size_t total), void *ud,
                          registry_import_result_t *out, acc_err *err) {
    registry_datanet_t d;
    int rc = store_tx_begin(reg, err);
    if (rc) return rc;
    if ((rc = registry_datanet_get(reg, datanet, &d, err))) return store_tx_end(reg, rc, err);
    char owner[ETH_ADDRESS_TEXT_SIZE];
    eth_address_to_text(d.owner, owner);
    char *quoted_source = json_quote(source);
    size_t provenance_size = 128 + (quoted_source ? strlen(quoted_source) : 0);
    char *provenance = malloc(provenance_size);
    if (!quoted_source || !provenance) rc = acc_fail(err, ACC_ENOMEM, "import: out of memory");

    int64_t now = store_now(reg), first_id = 0, last_id = 0;
    size_t line_no = 0, added = 0, *line_of = NULL, line_of_cap = 0; /* line of each added record */
    size_t next_report = 0;
    for (size_t pos = 0; rc == ACC_OK && pos < len;) {
        const char *line = data + pos, *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - line) : len - pos;
        pos += line_len + (nl != NULL);
        line_no++;
        if (line_len && line[line_len - 1] == '\r') line_len--;
        size_t blank = 0;
        while (blank < line_len && (line[blank] == ' ' || line[blank] == '\t')) blank++;
        if (blank == line_len) continue;

        json_t *json = NULL;
        int64_t holder = 0;
        registry_record_t r = {.datanet_id = d.id, .status = REGISTRY_RECORD_ACCEPTED, .created_ms = now};
        rc = parse_line(line, line_len, &json, &r, err);
        if (rc == ACC_OK) {
            r.status_ms = now;
            r.seq = d.version + added + 1;
            keccak256(r.text, r.text_len, r.content_hash);
            snprintf(provenance, provenance_size,
                     "{\"kind\":\"owner_import\",\"by\":\"%s\",\"signed\":false,\"source\":%s,\"line\":%zu}", owner,
                     quoted_source, line_no);
            r.provenance = provenance;
            rc = insert_record(reg, &r, &holder, err);
        }
        json_decref(json);
        /* The holder may be an earlier line of this file: name that line. */
        if (rc == ACC_EEXIST && added && holder >= first_id && (size_t)(holder - first_id) < added)
            acc_fail(err, ACC_EEXIST, "identical to line %zu", line_of[holder - first_id]);
        if (rc) {
            acc_err_prefix(err, "line %zu", line_no);
            break;
        }
        if (added == 0) first_id = r.id;
        last_id = r.id;
        if (added == line_of_cap) {
            line_of_cap = line_of_cap ? 2 * line_of_cap : 1024;
            size_t *bigger = realloc(line_of, line_of_cap * sizeof *line_of);
            if (!bigger) {
                rc = acc_fail(err, ACC_ENOMEM, "import: out of memory");
                break;
            }
            line_of = bigger;
        }
        line_of[added++] = line_no;
        if (progress && pos >= next_report) {
            progress(ud, pos, len);
            next_report = pos + len / 200 + 1;
        }
    }
    /* Ids are consecutive within one transaction (nothing else writes meanwhile), which line_of relies on. */
    ACC_INVARIANT(rc != ACC_OK || added == 0 || last_id == first_id + (int64_t)added - 1, "import ids are consecutive");
    if (rc == ACC_OK && added == 0) rc = acc_fail(err, ACC_EINVAL, "no records in the file");
    if (rc == ACC_OK) rc = add_counts(reg, d.id, (int64_t)added, 0, 0, err);
    if (rc == ACC_OK && progress) progress(ud, len, len);
    if (rc == ACC_OK && out) *out = (registry_import_result_t){.records = added, .lines = line_no, .version = d.version + added};
    free(line_of);
    free(provenance);
    free(quoted_source);
    return store_tx_end(reg, rc, err);
}

/* ---------------------------------------------------------------------------------- query */


static bool word_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/* English words too common to say what a question is about ("how do I store apples"): BM25 gives
 * them little weight, but a record that happens to hold several of them can still outrank one about
 * apples. They are left out of a query that has other words. Sorted, lower case. */
static const char *const stop_words[] = {
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "both",
    "but", "by", "can", "could", "did", "do", "does", "each", "few", "for", "from", "get", "had", "has",
    "have", "he", "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me", "more",
    "most", "my", "no", "not", "of", "on", "only", "or", "other", "our", "out", "over", "own", "same", "she",
    "should", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they",
    "this", "those", "to", "up", "us", "very", "was", "we", "were", "what", "when", "where", "which", "while",
    "who", "whom", "why", "will", "with", "would", "you", "your",
};

static bool stop_word(const char *w, size_t n) {
    char lower[8];
    if (n >= sizeof lower) return false;
    for (size_t i = 0; i < n; i++) lower[i] = (char)(w[i] >= 'A' && w[i] <= 'Z' ? w[i] + 32 : w[i]);
    lower[n] = '\0';
    size_t lo = 0, hi = sizeof stop_words / sizeof *stop_words;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(stop_words[mid], lower);
        if (c == 0) return true;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

/* A query's words: the runs of letters, digits and non-ASCII characters (which the tokenizer
 * splits further as it does the records), each once, at most REGISTRY_QUERY_TERMS_MAX; stop words
 * only when the text has nothing else. */
typedef struct query_words {
    const char *word[REGISTRY_QUERY_TERMS_MAX];
    size_t len[REGISTRY_QUERY_TERMS_MAX];
    bool common[REGISTRY_QUERY_TERMS_MAX]; /* left out of the expression */
    size_t n;
} query_words_t;

static void query_words(const char *text, size_t len, query_words_t *w) {
    bool stop[REGISTRY_QUERY_TERMS_MAX];
    size_t words = 0, content = 0;
    const char *word[REGISTRY_QUERY_TERMS_MAX];
    size_t word_len[REGISTRY_QUERY_TERMS_MAX];
    for (size_t i = 0; i < len && words < REGISTRY_QUERY_TERMS_MAX;) {
        while (i < len && !word_byte((unsigned char)text[i])) i++;
        size_t start = i;
        while (i < len && word_byte((unsigned char)text[i])) i++;
        if (i == start) break;
        bool dup = false;
        for (size_t k = 0; k < words && !dup; k++)
            dup = word_len[k] == i - start && strncasecmp(word[k], text + start, i - start) == 0;
        if (dup) continue;
        word[words] = text + start;
        word_len[words] = i - start;
        stop[words] = stop_word(text + start, i - start);
        content += !stop[words];
        words++;
    }
    w->n = 0;
    for (size_t k = 0; k < words; k++) {
        if (content && stop[k]) continue;
        w->word[w->n] = word[k];
        w->len[w->n] = word_len[k];
        w->common[w->n++] = false;
    }
}

/* The FTS5 expression: any of the words not left out. Each word is quoted, so no operator or
 * column name in the text is read as one. Returns the number of words in it. */
static size_t build_match(const query_words_t *w, acc_buf *q) {
    size_t used = 0;
    for (size_t k = 0; k < w->n; k++) {
        if (w->common[k]) continue;
        if (used++) acc_buf_puts(q, " OR ");
        acc_buf_putc(q, '"');
        acc_buf_append(q, w->word[k], w->len[k]);
        acc_buf_putc(q, '"');
    }
    return used;
}

/* Words held by this many of a datanet's records (a tenth of them, and at least COMMON_MIN) are
 * left out of a query that has rarer words, as the stop words are: BM25 gives such a word little
 * weight (idf about log 10 against log 1000 for a word in 0.1% of records) but scores every record
 * that holds it, which made a query with one of them tens of milliseconds at 100k records. A word's
 * count is probed up to the threshold only (a walk of that many postings, no scoring). */
#define COMMON_MIN 1000
#define COMMON_SHARE 10
static const char sql_fts_probe[] = "SELECT count(*) FROM (SELECT 1 FROM %s WHERE %s MATCH ?1 LIMIT ?2)";

static int mark_common(registry_t *reg, const registry_datanet_t *d, query_words_t *w, acc_err *err) {
    uint64_t threshold = d->version / COMMON_SHARE;
    if (w->n < 2 || threshold < COMMON_MIN) return ACC_OK;
    size_t rare = 0;
    for (size_t k = 0; k < w->n; k++) {
        sqlite3_stmt *st;
        int rc = fts_stmt(reg, &reg->fts_probe, sql_fts_probe, d->id, &st, err);
        if (rc) return rc;
        char quoted[REGISTRY_QUERY_TEXT_MAX + 3];
        int qn = snprintf(quoted, sizeof quoted, "\"%.*s\"", (int)w->len[k], w->word[k]);
        store_bind_text(st, 1, quoted, (size_t)qn);
        sqlite3_bind_int64(st, 2, (int64_t)threshold);
        int src = sqlite3_step(st);
        int64_t held = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_reset(st);
        if (src != SQLITE_ROW) return store_fail(reg, src, err, "query");
        w->common[k] = (uint64_t)held >= threshold;
        rare += !w->common[k];
    }
    if (rare == 0) /* nothing rarer: every word counts */
        for (size_t k = 0; k < w->n; k++) w->common[k] = false;
    return ACC_OK;
}

int registry_query(registry_t *reg, const char *datanet, const char *text, size_t len, size_t limit,
                   registry_hits_t **out, acc_err *err) {
    *out = NULL;
    if (limit < 1 || limit > REGISTRY_QUERY_LIMIT_MAX)
        return acc_fail(err, ACC_EINVAL, "limit: from 1 to %d", REGISTRY_QUERY_LIMIT_MAX);
    if (len > REGISTRY_QUERY_TEXT_MAX)
        return acc_fail(err, ACC_EINVAL, "query: %zu bytes, over %d", len, REGISTRY_QUERY_TEXT_MAX);
    if (!registry_utf8_valid(text, len) || memchr(text, 0, len)) return acc_fail(err, ACC_EINVAL, "query: not UTF-8 text");
    registry_datanet_t d;
    int rc = registry_datanet_get(reg, datanet, &d, err);
    if (rc) return rc;
    acc_buf q = ACC_BUF_INIT, texts = ACC_BUF_INIT;
    query_words_t w;
    query_words(text, len, &w);
    if ((rc = mark_common(reg, &d, &w, err))) return rc;
    size_t words = build_match(&w, &q);
    registry_hit_t hits[REGISTRY_QUERY_LIMIT_MAX];
    size_t n = 0;
    if (acc_buf_failed(&q)) {
        rc = acc_fail(err, ACC_ENOMEM, "query: out of memory");
    } else if (words > 0) {
        sqlite3_stmt *st;
        if ((rc = fts_stmt(reg, &reg->fts_query, sql_query, d.id, &st, err)) == ACC_OK) {
            store_bind_text(st, 1, q.data, q.len);
            sqlite3_bind_int64(st, 2, (int64_t)limit);
            sqlite3_bind_int64(st, 3, d.id);
            int src;
            while ((src = sqlite3_step(st)) == SQLITE_ROW && n < limit) {
                registry_hit_t *h = &hits[n++];
                h->id = sqlite3_column_int64(st, 0);
                store_column_blob(st, 1, h->contributor, 20);
                h->text_len = (size_t)sqlite3_column_bytes(st, 2);
                h->text = (const char *)(uintptr_t)texts.len; /* an offset until the block exists */
                acc_buf_append(&texts, sqlite3_column_text(st, 2), h->text_len);
                acc_buf_putc(&texts, '\0');
                h->score = sqlite3_column_double(st, 3);
            }
            if (src != SQLITE_DONE && src != SQLITE_ROW) rc = store_fail(reg, src, err, "query");
            sqlite3_reset(st);
        }
    }
    if (rc == ACC_OK && acc_buf_failed(&texts)) rc = acc_fail(err, ACC_ENOMEM, "query: out of memory");
    if (rc == ACC_OK) {
        size_t head = sizeof(registry_hits_t) + n * sizeof(registry_hit_t);
        registry_hits_t *block = malloc(head + texts.len + 1);
        if (!block) {
            rc = acc_fail(err, ACC_ENOMEM, "query: out of memory");
        } else {
            char *base = (char *)block + head;
            if (texts.len) memcpy(base, texts.data, texts.len);
            base[texts.len] = '\0';
            block->n = n;
            for (size_t i = 0; i < n; i++) {
                block->hit[i] = hits[i];
                block->hit[i].text = base + (uintptr_t)hits[i].text;
            }
            *out = block;
        }
    }
    acc_buf_free(&q);
    acc_buf_free(&texts);
    return rc;
}
