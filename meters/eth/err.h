/*
 * err.h: how meters/ functions fill the caller's error buffer (SQLite-style messages the caller
 * can show). Never given a secret: messages name what is wrong, not the value.
 */
#ifndef ACCRUE_METERS_ETH_ERR_H
#define ACCRUE_METERS_ETH_ERR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Formats into err[0..errlen); does nothing when err is NULL or errlen is 0. */
static inline void meters_set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

#endif
