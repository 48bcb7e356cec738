/*
 * file.c: reading a whole file (file.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "file.h"

int acc_read_file(const char *path, size_t max_bytes, char **out, size_t *len, acc_err *err) {
    *out = NULL;
    if (len) *len = 0;
    int from_stdin = strcmp(path, "-") == 0;
    FILE *f = from_stdin ? stdin : fopen(path, "rb");
    if (!f) return acc_fail(err, ACC_EIO, "%s: %s", path, strerror(errno));
    acc_buf b = ACC_BUF_INIT;
    int rc = ACC_OK;
    for (;;) {
        char *p = acc_buf_reserve(&b, 1 << 16);
        if (!p) {
            rc = acc_fail(err, ACC_ENOMEM, "%s: out of memory", path);
            break;
        }
        size_t got = fread(p, 1, 1 << 16, f);
        acc_buf_commit(&b, got);
        if (b.len > max_bytes) {
            rc = acc_fail(err, ACC_ELIMIT, "%s: larger than %zu bytes", path, max_bytes);
            break;
        }
        if (got < (1 << 16)) {
            if (ferror(f)) rc = acc_fail(err, ACC_EIO, "%s: %s", path, strerror(errno));
            break;
        }
    }
    if (!from_stdin) fclose(f);
    if (rc != ACC_OK) {
        acc_buf_free(&b);
        return rc;
    }
    *out = acc_buf_take(&b, len);
    return *out ? ACC_OK : acc_fail(err, ACC_ENOMEM, "%s: out of memory", path);
}
