/*
 * accounts.c: accounts of end users and apps, and their API keys (registry.h).
 *
 * A key is 32 bytes from getrandom, shown once as "acc_" + 64 hex digits; the store keeps only
 * keccak-256 of that text, under a UNIQUE index, so the lookup every request makes is one index
 * probe and a stolen database yields no key. Keys have full entropy, so a fast hash is enough (a
 * slow password hash protects guessable secrets, which these are not).
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "meters/eth/hex.h"
#include "meters/eth/keccak.h"
#include "registry/store.h"

#define KEY_PREFIX "acc_"
#define KEY_TEXT_LEN (REGISTRY_API_KEY_TEXT_SIZE - 1)

static int new_key(char key[REGISTRY_API_KEY_TEXT_SIZE], uint8_t hash[32], acc_err *err) {
    uint8_t secret[32];
    size_t got = 0;
    while (got < sizeof secret) {
        ssize_t n = getrandom(secret + got, sizeof secret - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return acc_fail(err, ACC_EIO, "API key: getrandom: %s", strerror(errno));
        got += (size_t)n;
    }
    char hex[2 * 32 + 3];
    hex_encode0x(secret, 32, hex);
    memset(secret, 0, sizeof secret);
    memcpy(key, KEY_PREFIX, 4);
    memcpy(key + 4, hex + 2, 65); /* 64 digits and the NUL */
    memset(hex, 0, sizeof hex);
    keccak256(key, KEY_TEXT_LEN, hash);
    return ACC_OK;
}

static void key_id(const uint8_t hash[32], char id[REGISTRY_KEY_ID_SIZE]) {
    char hex[2 * 32 + 3];
    hex_encode0x(hash, 32, hex);
    memcpy(id, "ak_", 3);
    memcpy(id + 3, hex + 2, 12);
    id[15] = '\0';
}

static const char sql_account_get[] =
    "SELECT a.id, a.name, a.admin, a.created_ms, "
    "(SELECT count(*) FROM api_keys k WHERE k.account_id = a.id AND k.revoked_ms IS NULL) "
    "FROM accounts a WHERE a.name = ?1";
static const char sql_account_list[] =
    "SELECT a.id, a.name, a.admin, a.created_ms, "
    "(SELECT count(*) FROM api_keys k WHERE k.account_id = a.id AND k.revoked_ms IS NULL) "
    "FROM accounts a ORDER BY a.name";
static const char sql_account_by_key[] =
    "SELECT a.id, a.name, a.admin, a.created_ms, 1 FROM api_keys k JOIN accounts a ON a.id = k.account_id "
    "WHERE k.hash = ?1 AND k.revoked_ms IS NULL";
static const char sql_account_insert[] = "INSERT INTO accounts (name, admin, created_ms) VALUES (?1, ?2, ?3)";
static const char sql_key_insert[] = "INSERT INTO api_keys (account_id, hash, created_ms) VALUES (?1, ?2, ?3)";
static const char sql_key_revoke[] = "UPDATE api_keys SET revoked_ms = ?2 WHERE account_id = ?1 AND revoked_ms IS NULL";
static const char sql_keys_list[] = "SELECT hash, created_ms, revoked_ms FROM api_keys WHERE account_id = ?1 ORDER BY id";

static void read_account(sqlite3_stmt *st, registry_account_t *a) {
    a->id = sqlite3_column_int64(st, 0);
    store_column_text(st, 1, a->name, sizeof a->name);
    a->admin = sqlite3_column_int(st, 2) != 0;
    a->created_ms = sqlite3_column_int64(st, 3);
    a->live_keys = (unsigned)sqlite3_column_int(st, 4);
}

int registry_account_get(registry_t *reg, const char *name, registry_account_t *out, acc_err *err) {
    int rc = registry_name_check(name, "account", err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = store_stmt(reg, sql_account_get, &st, err))) return rc;
    store_bind_str(st, 1, name);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        registry_account_t a;
        read_account(st, &a);
        if (out) *out = a;
        rc = ACC_OK;
    } else if (src == SQLITE_DONE) {
        rc = acc_fail(err, ACC_ENOTFOUND, "account '%s': no such account", name);
    } else {
        rc = store_fail(reg, src, err, "account");
    }
    sqlite3_reset(st);
    return rc;
}

static int insert_key(registry_t *reg, int64_t account_id, char key[REGISTRY_API_KEY_TEXT_SIZE], acc_err *err) {
    uint8_t hash[32];
    int rc = new_key(key, hash, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = store_stmt(reg, sql_key_insert, &st, err))) return rc;
    sqlite3_bind_int64(st, 1, account_id);
    store_bind_blob(st, 2, hash, 32);
    sqlite3_bind_int64(st, 3, store_now(reg));
    rc = store_exec(reg, st, err, "API key");
    if (rc) memset(key, 0, REGISTRY_API_KEY_TEXT_SIZE);
    return rc;
}

int registry_account_create(registry_t *reg, const char *name, bool admin, char key[REGISTRY_API_KEY_TEXT_SIZE],
                            registry_account_t *out, acc_err *err) {
    int rc = registry_name_check(name, "account", err);
    if (rc) return rc;
    rc = store_tx_begin(reg, err);
    if (rc) return rc;
    if (registry_account_get(reg, name, NULL, NULL) == ACC_OK) {
        rc = acc_fail(err, ACC_EEXIST, "account '%s' exists already", name);
    } else {
        sqlite3_stmt *st;
        rc = store_stmt(reg, sql_account_insert, &st, err);
        if (rc == ACC_OK) {
            store_bind_str(st, 1, name);
            sqlite3_bind_int(st, 2, admin);
            sqlite3_bind_int64(st, 3, store_now(reg));
            rc = store_exec(reg, st, err, "account");
        }
        if (rc == ACC_OK) rc = insert_key(reg, sqlite3_last_insert_rowid(reg->db), key, err);
        if (rc == ACC_OK && out) rc = registry_account_get(reg, name, out, err);
    }
    rc = store_tx_end(reg, rc, err);
    if (rc) memset(key, 0, REGISTRY_API_KEY_TEXT_SIZE);
    return rc;
}

int registry_account_new_key(registry_t *reg, const char *name, char key[REGISTRY_API_KEY_TEXT_SIZE], acc_err *err) {
    int rc = store_tx_begin(reg, err);
    if (rc) return rc;
    registry_account_t a;
    rc = registry_account_get(reg, name, &a, err);
    if (rc == ACC_OK) rc = insert_key(reg, a.id, key, err);
    rc = store_tx_end(reg, rc, err);
    if (rc) memset(key, 0, REGISTRY_API_KEY_TEXT_SIZE);
    return rc;
}

int registry_account_revoke(registry_t *reg, const char *name, unsigned *revoked, acc_err *err) {
    if (revoked) *revoked = 0;
    int rc = store_tx_begin(reg, err);
    if (rc) return rc;
    registry_account_t a;
    rc = registry_account_get(reg, name, &a, err);
    if (rc == ACC_OK && a.live_keys == 0) rc = acc_fail(err, ACC_EMISUSE, "account '%s' has no live API key", name);
    if (rc == ACC_OK) {
        sqlite3_stmt *st;
        rc = store_stmt(reg, sql_key_revoke, &st, err);
        if (rc == ACC_OK) {
            sqlite3_bind_int64(st, 1, a.id);
            sqlite3_bind_int64(st, 2, store_now(reg));
            rc = store_exec(reg, st, err, "revoke");
        }
        if (rc == ACC_OK && revoked) *revoked = (unsigned)sqlite3_changes(reg->db);
    }
    return store_tx_end(reg, rc, err);
}

int registry_account_by_key(registry_t *reg, const char *key, size_t len, registry_account_t *out, acc_err *err) {
    static const char refused[] = "API key: unknown or revoked";
    if (!key || len != KEY_TEXT_LEN || memcmp(key, KEY_PREFIX, 4) != 0) return acc_fail(err, ACC_EPERM, refused);
    for (size_t i = 4; i < len; i++)
        if (hex_digit((unsigned char)key[i]) < 0 || (key[i] >= 'A' && key[i] <= 'F')) return acc_fail(err, ACC_EPERM, refused);
    uint8_t hash[32];
    keccak256(key, len, hash);
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_account_by_key, &st, err);
    if (rc) return rc;
    store_bind_blob(st, 1, hash, 32);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        registry_account_t a;
        read_account(st, &a);
        a.live_keys = 0; /* not counted on this path; registry_account_get has it */
        if (out) *out = a;
        rc = ACC_OK;
    } else {
        rc = src == SQLITE_DONE ? acc_fail(err, ACC_EPERM, refused) : store_fail(reg, src, err, "API key");
    }
    sqlite3_reset(st);
    return rc;
}

int registry_accounts_list(registry_t *reg, int (*fn)(void *ud, const registry_account_t *a), void *ud,
                           acc_err *err) {
    sqlite3_stmt *st;
    int rc = store_stmt(reg, sql_account_list, &st, err), src = SQLITE_DONE;
    if (rc) return rc;
    while (rc == ACC_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        registry_account_t a;
        read_account(st, &a);
        rc = fn(ud, &a);
    }
    if (rc == ACC_OK && src != SQLITE_DONE) rc = store_fail(reg, src, err, "accounts");
    sqlite3_reset(st);
    return rc;
}

int registry_account_keys(registry_t *reg, const char *name, int (*fn)(void *ud, const registry_api_key_t *k),
                          void *ud, acc_err *err) {
    registry_account_t a;
    int rc = registry_account_get(reg, name, &a, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = store_stmt(reg, sql_keys_list, &st, err))) return rc;
    sqlite3_bind_int64(st, 1, a.id);
    int src = SQLITE_DONE;
    while (rc == ACC_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        registry_api_key_t k;
        uint8_t hash[32];
        store_column_blob(st, 0, hash, 32);
        key_id(hash, k.id);
        k.created_ms = sqlite3_column_int64(st, 1);
        k.revoked_ms = sqlite3_column_int64(st, 2);
        rc = fn(ud, &k);
    }
    if (rc == ACC_OK && src != SQLITE_DONE) rc = store_fail(reg, src, err, "API keys");
    sqlite3_reset(st);
    return rc;
}
