/*
 * embedded.h: files built into the binary (tools/embed.c writes the arrays at build time from the
 * list `demo_files` in build.zig): the demo registry's records, agent scripts and manifests.
 */
#ifndef ACCRUE_RUNTIME_EMBEDDED_H
#define ACCRUE_RUNTIME_EMBEDDED_H

#include <stddef.h>

typedef struct rt_embedded {
    const char *name; /* its repository path, "scripts/demo.lua" */
    const char *data; /* NUL-terminated */
    size_t len;
} rt_embedded_t;

/* The demo registry's files, ended by a {NULL, NULL, 0} entry. */
extern const rt_embedded_t rt_demo_files[];

/* The file of that name, or NULL. */
const rt_embedded_t *rt_embedded_find(const rt_embedded_t *files, const char *name);

#endif
