/*
 * status.h: the one error convention of every accrue module.
 *
 * A function that can fail returns an int: ACC_OK (0), or one of the negative ACC_E* codes below,
 * and, when the caller passes an acc_err, writes there a one-line message a person can act on
 * ("--price-per-call: needs a whole number", "line 7: contributor: bad EIP-55 checksum"). The code
 * is for programs (the server maps it to an HTTP status and a stable error name), the message for
 * people. A handle whose errors outlive the call (a sandbox's failed turn) keeps its message on
 * the handle instead (sandbox_errmsg), the way sqlite3_errmsg does; its functions still return
 * these codes. Functions that return a pointer return NULL on failure and say in their comment
 * how the reason is reported.
 *
 * Messages never contain a secret: they name what is wrong (a flag, a field, a line), not the
 * secret value. The codes never change meaning; new ones are added at the end.
 *
 * This is runtime/base: the bottom layer every module may use (status codes, invariants, a
 * growable buffer, a file reader). It depends on libc only.
 */
#ifndef ACCRUE_BASE_STATUS_H
#define ACCRUE_BASE_STATUS_H

#include <stddef.h>

enum acc_status {
    ACC_OK = 0,
    ACC_EINVAL = -1,     /* malformed or out-of-range input: bad JSON, a bad address, a bad flag */
    ACC_ENOMEM = -2,     /* out of memory */
    ACC_EIO = -3,        /* a file, socket or the database could not be read or written */
    ACC_EPERM = -4,      /* refused: a key file others can read, a wrong API key, not the owner */
    ACC_EBADSIG = -5,    /* a signature that does not recover to the claimed signer */
    ACC_EMISMATCH = -6,  /* a proof, digest, chain link or re-derivation that does not hold */
    ACC_ENOTFOUND = -7,  /* no such agent, model, datanet, record, account, batch */
    ACC_EEXIST = -8,     /* it exists already (a name, a version, identical content) */
    ACC_EMISUSE = -9,    /* called in a state that does not allow it (a turn already under way) */
    ACC_ELIMIT = -10,    /* a limit was hit: memory, instructions, time, output, size, rate */
    ACC_EFUNDS = -11,    /* insufficient funds */
    ACC_ECORRUPT = -12,  /* stored data that breaks an invariant */
    ACC_EBUSY = -13,     /* try again later: a full queue, a locked database */
    ACC_ESCRIPT = -14,   /* an agent script raised an error (or failed to compile) */
    ACC_ECANCELLED = -15,/* cancelled by the host or the client */
    ACC_ETIMEOUT = -16,  /* a deadline passed */
    ACC_EUPSTREAM = -17, /* a remote model endpoint failed or answered nonsense */
    ACC_EVERSION = -18,  /* a database or file written by a newer accrue */
};

#define ACC_ERR_MSG_SIZE 320

/* Where a failing function writes its message. Zero it (or declare it `= {0}`) before use; after
 * a failure, code is the status returned and msg a NUL-terminated line. */
typedef struct acc_err {
    int code;
    char msg[ACC_ERR_MSG_SIZE];
} acc_err;

/* Records code and a printf-formatted message in err (NULL is fine) and returns code, so that a
 * failure reads `return acc_fail(err, ACC_EINVAL, "amount: not a number");`. */
int acc_fail(acc_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes err's message with "PREFIX: " (context from a caller: a file name, a line number). Returns
 * err->code (ACC_OK when err is NULL). */
int acc_err_prefix(acc_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A short stable name of a code, for logs and JSON ("invalid", "not_found", ...). Static. */
const char *acc_status_name(int code);

#endif
