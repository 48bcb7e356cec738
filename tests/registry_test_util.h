/*
 * registry_test_util.h: what the registry's store and command-line tests share: a dump of every
 * table of a database (to check that a refused call or command changed nothing) and test keys.
 */
#ifndef ACCRUE_TESTS_REGISTRY_TEST_UTIL_H
#define ACCRUE_TESTS_REGISTRY_TEST_UTIL_H

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meters/eth/keys.h"
#include "runtime/base/buf.h"

/* Every table's rows (virtual tables left out: their shadow tables are dumped) and the schema
 * version, as text, read through a connection of our own; tables whose name starts with skip (NULL:
 * none) left out too. malloc'd. */
static inline char *dump_except(const char *path, const char *skip) {
    sqlite3 *db;
    acc_buf b = ACC_BUF_INIT;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return strdup("(cannot open)");
    }
    sqlite3_stmt *tables, *rows;
    sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
                       -1, &tables, NULL);
    while (sqlite3_step(tables) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(tables, 0);
        if (skip && strncmp(name, skip, strlen(skip)) == 0) continue;
        acc_buf_printf(&b, "[%s]\n", name);
        char sql[300];
        snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", name);
        if (sqlite3_prepare_v2(db, sql, -1, &rows, NULL) != SQLITE_OK) continue;
        while (sqlite3_step(rows) == SQLITE_ROW) {
            for (int i = 0; i < sqlite3_column_count(rows); i++) {
                const unsigned char *p = sqlite3_column_blob(rows, i);
                int n = sqlite3_column_bytes(rows, i);
                acc_buf_putc(&b, '|');
                for (int k = 0; k < n; k++) acc_buf_printf(&b, "%02x", p[k]);
            }
            acc_buf_putc(&b, '\n');
        }
        sqlite3_finalize(rows);
    }
    sqlite3_finalize(tables);
    sqlite3_stmt *v;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &v, NULL);
    if (sqlite3_step(v) == SQLITE_ROW) acc_buf_printf(&b, "version %d\n", sqlite3_column_int(v, 0));
    sqlite3_finalize(v);
    sqlite3_close(db);
    return acc_buf_take(&b, NULL);
}

static inline char *dump(const char *path) { return dump_except(path, NULL); }

/* A test key from a one-byte seed, and its address. */
static inline eth_key *key_of(uint8_t seed, uint8_t address[20]) {
    uint8_t secret[32] = {0};
    secret[31] = seed;
    secret[0] = 0x42;
    eth_key *k = NULL;
    eth_key_from_secret(&k, secret, NULL);
    if (address) eth_key_address(k, address);
    return k;
}

#endif
