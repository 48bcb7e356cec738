/*
 * test_base.c: runtime/base: status codes and messages, the growable buffer, the file reader.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/base/buf.h"
#include "runtime/base/file.h"
#include "runtime/base/status.h"
#include "tests/check.h"

static void test_fail_records_code_and_message(void) {
    acc_err err = {0};
    CHECK(acc_fail(&err, ACC_EINVAL, "amount: %s", "not a number") == ACC_EINVAL);
    CHECK(err.code == ACC_EINVAL);
    CHECK_STREQ(err.msg, "amount: not a number");
    CHECK(acc_err_prefix(&err, "line %d", 7) == ACC_EINVAL);
    CHECK_STREQ(err.msg, "line 7: amount: not a number");
    CHECK(acc_fail(NULL, ACC_EIO, "ignored") == ACC_EIO);
}

static void test_long_message_is_truncated_not_overrun(void) {
    acc_err err = {0};
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    acc_fail(&err, ACC_EINVAL, "%s", big);
    CHECK(strlen(err.msg) == ACC_ERR_MSG_SIZE - 1);
    acc_err_prefix(&err, "p");
    CHECK(strlen(err.msg) == ACC_ERR_MSG_SIZE - 1);
    CHECK(strncmp(err.msg, "p: xxx", 6) == 0);
}

static void test_json_string_escapes_and_repairs(void) {
    acc_buf b = ACC_BUF_INIT;
    acc_buf_json_string(&b, "a\"b\\c\n\t\x01", 8);
    CHECK_STREQ(b.data, "\"a\\\"b\\\\c\\n\\t\\u0001\"");
    acc_buf_reset(&b);
    acc_buf_json_string(&b, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14); /* valid UTF-8 passes */
    CHECK_STREQ(b.data, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    acc_buf_reset(&b);
    acc_buf_json_string(&b, "x\xff\xc0\xafy\xed\xa0\x80", 8); /* stray, overlong, surrogate */
    CHECK_STREQ(b.data, "\"x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    acc_buf_reset(&b);
    acc_buf_json_string(&b, "nul\0in", 6);
    CHECK_STREQ(b.data, "\"nul\\u0000in\"");
    CHECK(!acc_buf_failed(&b));
    acc_buf_free(&b);
}

static void test_numbers(void) {
    acc_buf b = ACC_BUF_INIT;
    acc_buf_put_u64(&b, 0);
    acc_buf_putc(&b, ' ');
    acc_buf_put_u64(&b, 18446744073709551615ULL);
    acc_buf_putc(&b, ' ');
    acc_buf_put_i64(&b, -9223372036854775807LL - 1);
    acc_buf_putc(&b, ' ');
    acc_buf_put_i64(&b, 42);
    CHECK_STREQ(b.data, "0 18446744073709551615 -9223372036854775808 42");
    acc_buf_free(&b);
}

static void test_status_names_are_distinct(void) {
    const int codes[] = {ACC_OK, ACC_EINVAL, ACC_ENOMEM, ACC_EIO, ACC_EPERM, ACC_EBADSIG, ACC_EMISMATCH,
                         ACC_ENOTFOUND, ACC_EEXIST, ACC_EMISUSE, ACC_ELIMIT, ACC_EFUNDS, ACC_ECORRUPT,
                         ACC_EBUSY, ACC_ESCRIPT, ACC_ECANCELLED, ACC_ETIMEOUT, ACC_EUPSTREAM, ACC_EVERSION};
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        CHECK(strcmp(acc_status_name(codes[i]), "unknown") != 0);
        for (size_t j = i + 1; j < n; j++) CHECK(strcmp(acc_status_name(codes[i]), acc_status_name(codes[j])) != 0);
    }
    CHECK_STREQ(acc_status_name(12345), "unknown");
}

static void test_buf_grows_and_stays_terminated(void) {
    acc_buf b = ACC_BUF_INIT;
    for (int i = 0; i < 10000; i++) acc_buf_printf(&b, "%d,", i);
    acc_buf_append(&b, "\0z", 2);
    CHECK(!acc_buf_failed(&b));
    CHECK(b.data[b.len] == '\0');
    CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
    CHECK(b.data[b.len - 1] == 'z' && b.data[b.len - 2] == '\0');
    size_t len;
    char *s = acc_buf_take(&b, &len);
    CHECK(s && len > 40000 && b.data == NULL && b.len == 0);
    free(s);
    acc_buf empty = ACC_BUF_INIT;
    s = acc_buf_take(&empty, &len);
    CHECK(s && len == 0 && s[0] == '\0');
    free(s);
}

static void test_buf_failure_is_sticky(void) {
    acc_buf b = ACC_BUF_INIT;
    acc_buf_puts(&b, "ok");
    CHECK(acc_buf_reserve(&b, SIZE_MAX - 1) == NULL);
    CHECK(acc_buf_failed(&b));
    acc_buf_puts(&b, "more");
    CHECK(b.len == 2);
    CHECK(acc_buf_take(&b, NULL) == NULL);
}

static void test_read_file(void) {
    char path[] = "/tmp/accrue-test-base-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    static char data[200000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (char)(i * 7);
    CHECK(write(fd, data, sizeof data) == (ssize_t)sizeof data);
    close(fd);
    char *got;
    size_t len;
    acc_err err = {0};
    CHECK(acc_read_file(path, 1 << 20, &got, &len, &err) == ACC_OK);
    CHECK(len == sizeof data && memcmp(got, data, len) == 0 && got[len] == '\0');
    free(got);
    CHECK(acc_read_file(path, 1000, &got, &len, &err) == ACC_ELIMIT);
    CHECK(got == NULL && strstr(err.msg, path) != NULL);
    unlink(path);
    CHECK(acc_read_file(path, 1000, &got, &len, &err) == ACC_EIO);
    CHECK(strstr(err.msg, "No such file") != NULL);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    RUN(test_fail_records_code_and_message);
    RUN(test_long_message_is_truncated_not_overrun);
    RUN(test_status_names_are_distinct);
    RUN(test_json_string_escapes_and_repairs);
    RUN(test_numbers);
    RUN(test_buf_grows_and_stays_terminated);
    RUN(test_buf_failure_is_sticky);
    RUN(test_read_file);
    return check_finish("base");
}
