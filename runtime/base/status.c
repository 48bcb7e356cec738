/*
 * status.c: messages and names of the status codes (status.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "status.h"

int acc_fail(acc_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int acc_err_prefix(acc_err *err, const char *fmt, ...) {
    if (!err) return ACC_OK;
    char prefix[ACC_ERR_MSG_SIZE], rest[ACC_ERR_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(rest, err->msg, sizeof rest);
    rest[sizeof rest - 1] = '\0';
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, rest);
    return err->code;
}

const char *acc_status_name(int code) {
    switch (code) {
    case ACC_OK: return "ok";
    case ACC_EINVAL: return "invalid";
    case ACC_ENOMEM: return "out_of_memory";
    case ACC_EIO: return "io";
    case ACC_EPERM: return "permission";
    case ACC_EBADSIG: return "bad_signature";
    case ACC_EMISMATCH: return "mismatch";
    case ACC_ENOTFOUND: return "not_found";
    case ACC_EEXIST: return "exists";
    case ACC_EMISUSE: return "misuse";
    case ACC_ELIMIT: return "limit_exceeded";
    case ACC_EFUNDS: return "insufficient_funds";
    case ACC_ECORRUPT: return "corrupt";
    case ACC_EBUSY: return "busy";
    case ACC_ESCRIPT: return "script_error";
    case ACC_ECANCELLED: return "cancelled";
    case ACC_ETIMEOUT: return "timeout";
    case ACC_EUPSTREAM: return "upstream";
    case ACC_EVERSION: return "version";
    }
    return "unknown";
}
