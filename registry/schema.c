/*
 * schema.c: the registry's schema, as the list of migrations that builds it.
 *
 * A database at version N (PRAGMA user_version) is brought to the latest by running migrations
 * N+1, N+2, ... in one transaction (store.c), so an upgrade happens whole or not at all. Append
 * only: a migration that has landed on main is never edited, since files in the field were made by
 * it; change the schema with a new one (ALTER TABLE, or a new table and an INSERT ... SELECT).
 * Other parts of registry/ (the span index) add their tables the same way.
 *
 * Tables are STRICT (SQLite checks the declared types). Addresses are 20-byte blobs, hashes 32,
 * signatures 65; amounts are INTEGER (uint64 values up to INT64_MAX); times Unix milliseconds.
 * Nothing is deleted: a record is rejected, a key revoked, an agent unlisted.
 */
#include <stdlib.h>

#include "registry/store.h"

/* Version 7's step: a full-text table for each datanet, filled with its accepted records. */
static int fts_per_datanet(registry_t *reg, acc_err *err) {
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(reg->db, "SELECT id FROM datanets ORDER BY id", -1, &st, NULL);
    if (src != SQLITE_OK) return store_fail(reg, src, err, "datanets");
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = ACC_OK;
    while (rc == ACC_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            int64_t *bigger = realloc(ids, (cap = cap ? 2 * cap : 16) * sizeof *ids);
            if (!bigger) rc = acc_fail(err, ACC_ENOMEM, "out of memory");
            else ids = bigger;
        }
        if (rc == ACC_OK) ids[n++] = sqlite3_column_int64(st, 0);
    }
    if (rc == ACC_OK && src != SQLITE_DONE) rc = store_fail(reg, src, err, "datanets");
    sqlite3_finalize(st);
    for (size_t i = 0; rc == ACC_OK && i < n; i++) rc = store_fts_create(reg, ids[i], true, err);
    free(ids);
    return rc;
}

const store_migration_t store_migrations[] = {
    {1, "accounts and API keys",
     "CREATE TABLE meta (\n"
     "  key TEXT PRIMARY KEY,\n"
     "  value TEXT NOT NULL\n"
     ") STRICT;\n"
     "CREATE TABLE accounts (\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  name TEXT NOT NULL UNIQUE,\n"
     "  admin INTEGER NOT NULL CHECK (admin IN (0, 1)),\n"
     "  created_ms INTEGER NOT NULL\n"
     ") STRICT;\n"
     "CREATE TABLE api_keys (\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  account_id INTEGER NOT NULL REFERENCES accounts(id),\n"
     "  hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),\n"
     "  created_ms INTEGER NOT NULL,\n"
     "  revoked_ms INTEGER\n"
     ") STRICT;\n"
     "CREATE INDEX api_keys_account ON api_keys(account_id);\n", NULL},

    {2, "datanets, records and their full-text index",
     "CREATE TABLE datanets (\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  name TEXT NOT NULL UNIQUE,\n"
     "  owner BLOB NOT NULL CHECK (length(owner) = 20),\n"
     "  description TEXT NOT NULL,\n"
     "  price_per_query INTEGER NOT NULL CHECK (price_per_query >= 0),\n"
     "  price_per_record INTEGER NOT NULL CHECK (price_per_record >= 0),\n"
     "  curation TEXT NOT NULL CHECK (curation IN ('auto', 'review')),\n"
     "  version INTEGER NOT NULL CHECK (version >= 0),\n"
     "  pending INTEGER NOT NULL CHECK (pending >= 0),\n"
     "  rejected INTEGER NOT NULL CHECK (rejected >= 0),\n"
     "  created_ms INTEGER NOT NULL\n"
     ") STRICT;\n"
     /* seq: the record's place among its datanet's accepted records (NULL unless accepted). */
     "CREATE TABLE records (\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  datanet_id INTEGER NOT NULL REFERENCES datanets(id),\n"
     "  seq INTEGER CHECK ((seq IS NULL) = (status <> 'accepted')),\n"
     "  contributor BLOB NOT NULL CHECK (length(contributor) = 20),\n"
     "  content_hash BLOB NOT NULL CHECK (length(content_hash) = 32),\n"
     "  text TEXT NOT NULL,\n"
     "  status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),\n"
     "  created_ms INTEGER NOT NULL,\n"
     "  status_ms INTEGER NOT NULL,\n"
     "  signature BLOB CHECK (signature IS NULL OR length(signature) = 65),\n"
     "  provenance TEXT NOT NULL,\n"
     "  review_signature BLOB CHECK (review_signature IS NULL OR length(review_signature) = 65),\n"
     "  UNIQUE (datanet_id, content_hash),\n"
     "  UNIQUE (datanet_id, seq)\n"
     ") STRICT;\n"
     "CREATE INDEX records_pending ON records(datanet_id, id) WHERE status = 'pending';\n"
     /* Accepted records only, rowid = records.id. Contentless: the text is in records already. The
      * dn column holds "d<datanet id>", so a query is filtered to its datanet inside FTS5; its
      * weight in the ranking is 0. */
     "CREATE VIRTUAL TABLE records_fts USING fts5(text, dn, content = '', tokenize = 'porter unicode61');\n"
     "INSERT INTO records_fts(records_fts, rank) VALUES ('rank', 'bm25(1.0, 0.0)');\n", NULL},

    {3, "models, their lineage, fixed shares and artifacts",
     "CREATE TABLE models (\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  name TEXT NOT NULL UNIQUE,\n"
     "  kind TEXT NOT NULL CHECK (kind IN ('builtin', 'http', 'lua')),\n"
     "  owner BLOB NOT NULL CHECK (length(owner) = 20),\n"
     "  price_per_call INTEGER NOT NULL CHECK (price_per_call >= 0),\n"
     "  price_per_1k_in INTEGER NOT NULL CHECK (price_per_1k_in >= 0),\n"
     "  price_per_1k_out INTEGER NOT NULL CHECK (price_per_1k_out >= 0),\n"
     "  owner_share_bps INTEGER NOT NULL CHECK (owner_share_bps BETWEEN 0 AND 10000),\n"
     "  span_k INTEGER NOT NULL CHECK (span_k >= 1),\n"
     "  url TEXT NOT NULL,\n"
     "  upstream TEXT NOT NULL,\n"
     "  api_key_env TEXT NOT NULL,\n"
     "  script TEXT,\n"
     "  script_hash BLOB CHECK (script_hash IS NULL OR length(script_hash) = 32),\n"
     "  params TEXT NOT NULL,\n"
     "  created_ms INTEGER NOT NULL\n"
     ") STRICT;\n"
     "CREATE TABLE model_lineage (\n"
     "  model_id INTEGER NOT NULL REFERENCES models(id),\n"
     "  position INTEGER NOT NULL,\n"
     "  datanet_id INTEGER NOT NULL REFERENCES datanets(id),\n"
     "  PRIMARY KEY (model_id, position),\n"
     "  UNIQUE (model_id, datanet_id)\n"
     ") STRICT;\n"
     "CREATE TABLE model_shares (\n"
     "  model_id INTEGER NOT NULL REFERENCES models(id),\n"
     "  position INTEGER NOT NULL,\n"
     "  address BLOB NOT NULL CHECK (length(address) = 20),\n"
     "  bps INTEGER NOT NULL CHECK (bps BETWEEN 1 AND 10000),\n"
     "  PRIMARY KEY (model_id, position)\n"
     ") STRICT;\n"
     "CREATE TABLE model_artifacts (\n"
     "  model_id INTEGER PRIMARY KEY REFERENCES models(id),\n"
     "  data BLOB NOT NULL,\n"
     "  updated_ms INTEGER NOT NULL\n"
     ") STRICT;\n", NULL},

    {4, "agents and their versions",
     "CREATE TABLE agents (\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  name TEXT NOT NULL UNIQUE,\n"
     "  author BLOB NOT NULL CHECK (length(author) = 20),\n"
     "  created_ms INTEGER NOT NULL\n"
     ") STRICT;\n"
     /* manifest: the canonical text that was signed; the columns beside it are parsed from it. */
     "CREATE TABLE agent_versions (\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  agent_id INTEGER NOT NULL REFERENCES agents(id),\n"
     "  version TEXT NOT NULL,\n"
     "  description TEXT NOT NULL,\n"
     "  price_per_message INTEGER NOT NULL CHECK (price_per_message >= 0),\n"
     "  price_per_session INTEGER NOT NULL CHECK (price_per_session >= 0),\n"
     "  markup_bps INTEGER NOT NULL CHECK (markup_bps >= 0),\n"
     "  manifest TEXT NOT NULL,\n"
     "  script TEXT NOT NULL,\n"
     "  script_hash BLOB NOT NULL CHECK (length(script_hash) = 32),\n"
     "  signature BLOB NOT NULL CHECK (length(signature) = 65),\n"
     "  listed INTEGER NOT NULL CHECK (listed IN (0, 1)),\n"
     "  created_ms INTEGER NOT NULL,\n"
     "  UNIQUE (agent_id, version)\n"
     ") STRICT;\n"
     "CREATE TABLE agent_tags (\n"
     "  version_id INTEGER NOT NULL REFERENCES agent_versions(id),\n"
     "  tag TEXT NOT NULL,\n"
     "  PRIMARY KEY (version_id, tag)\n"
     ") STRICT;\n"
     "CREATE INDEX agent_tags_tag ON agent_tags(tag);\n", NULL},

    /* Snapshots of the span indexes (registry/spans.c): derived data, a cache of what the records
     * hold, so unlike every other table a snapshot is replaced whole (its parts deleted and
     * written again) as its datanet grows. seq and the record at it (id and content hash) say
     * which records it covers; parts are blobs of at most 32 MiB, in order. */
    {5, "span index snapshots",
     "CREATE TABLE span_snapshots (\n"
     "  datanet_id INTEGER PRIMARY KEY REFERENCES datanets(id),\n"
     "  seq INTEGER NOT NULL CHECK (seq >= 1),\n"
     "  last_record_id INTEGER NOT NULL REFERENCES records(id),\n"
     "  last_hash BLOB NOT NULL CHECK (length(last_hash) = 32),\n"
     "  tokens INTEGER NOT NULL CHECK (tokens >= 0),\n"
     "  parts INTEGER NOT NULL CHECK (parts >= 1),\n"
     "  bytes INTEGER NOT NULL CHECK (bytes >= 0),\n"
     "  updated_ms INTEGER NOT NULL\n"
     ") STRICT;\n"
     "CREATE TABLE span_snapshot_parts (\n"
     "  datanet_id INTEGER NOT NULL REFERENCES datanets(id),\n"
     "  part INTEGER NOT NULL CHECK (part >= 0),\n"
     "  data BLOB NOT NULL,\n"
     "  PRIMARY KEY (datanet_id, part)\n"
     ") STRICT;\n", NULL},

    {6, "full-text index keyed by datanet and seq (a query seeks its datanet's range)",
     /* Version 2 kept one index for every datanet with a "d<id>" column that a query ANDed with its
      * words, which made every query walk its datanet's whole posting list (4x slower, measured).
      * Now a record's rowid in the index is datanet id << 40 | seq, so a query is a rowid range. */
     "DROP TABLE records_fts;\n"
     "CREATE VIRTUAL TABLE records_fts USING fts5(text, content = '', tokenize = 'porter unicode61');\n"
     "INSERT INTO records_fts(rowid, text)\n"
     "  SELECT (datanet_id << 40) | seq, text FROM records WHERE status = 'accepted' ORDER BY datanet_id, seq;\n", NULL},

    {7, "a full-text index per datanet (BM25's statistics the datanet's own)",
     /* Version 6's one index for every datanet gave BM25 registry-wide statistics (the number of
      * records, their mean length, how many hold each word), so one datanet's ranking moved when
      * another took records. Each datanet now has records_fts_<id>, rowid = seq (datanets.c). */
     "DROP TABLE records_fts;\n", fts_per_datanet},
};

const size_t store_n_migrations = sizeof store_migrations / sizeof store_migrations[0];
