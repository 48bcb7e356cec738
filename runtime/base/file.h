/*
 * file.h: the one file reader and the one careful file writer.
 */
#ifndef ACCRUE_BASE_FILE_H
#define ACCRUE_BASE_FILE_H

#include <stddef.h>

#include "status.h"

/* Reads the whole file at path (at most max_bytes; a bigger file is ACC_ELIMIT) into a malloc'd,
 * NUL-terminated buffer the caller frees. path "-" reads standard input. Messages name the path. */
int acc_read_file(const char *path, size_t max_bytes, char **out, size_t *len, acc_err *err);

#endif
