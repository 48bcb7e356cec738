/*
 * provider.h: the host-call provider of `accrue run`: datasets.query answered by the registry's
 * full-text index, test/... names by the built-in test provider (runtime/test_provider.h).
 *
 * The registry is opened at the first call that needs it (a run that never queries a datanet
 * leaves no file behind) and, when it holds nothing yet, seeded with the demo registry unless
 * no_demo is set. When agent is set (a deployed agent runs), a call to a name its manifest does not
 * list is refused.
 *
 * Queries are bounded before any work: at most RT_REQUEST_MAX bytes of JSON; the text at
 * most REGISTRY_QUERY_TEXT_MAX bytes (its first REGISTRY_QUERY_TERMS_MAX distinct words are used);
 * opts.limit from 1 to REGISTRY_QUERY_LIMIT_MAX, 3 when left out. An answer:
 *   {"rows": [{"id": 12, "text": "...", "contributor": "0x...", "score": 3.2}, ...]}
 * (best first). Registered models are not called here yet: the meters wire them (issue 12).
 */
#ifndef ACCRUE_RUNTIME_PROVIDER_H
#define ACCRUE_RUNTIME_PROVIDER_H

#include <stdbool.h>

#include "registry/registry.h"
#include "sandbox/sandbox.h"

#define RT_REQUEST_MAX (64u << 10)
#define RT_QUERY_LIMIT_DEFAULT 3

typedef struct rt_provider {
    const char *db_path;            /* NULL: ./accrue.db */
    bool no_demo;                   /* do not seed the demo registry */
    const registry_agent_t *agent;  /* the deployed agent running, or NULL for a script file */
    registry_t *reg;                /* open once needed; rt_provider_close closes it */
    bool open_failed;
    acc_err open_err;
    void (*seeded)(void *ud, const char *path); /* told when the demo registry was made */
    void *seeded_ud;
} rt_provider_t;

/* A sandbox provider over p (which must outlive the sandbox); output stays NULL for the caller. */
sandbox_provider_t rt_provider(rt_provider_t *p);

/* The registry, opened now if it was not yet: with create, made and seeded when missing or empty;
 * without, only an existing one (ACC_ENOTFOUND otherwise). */
int rt_provider_registry(rt_provider_t *p, bool create, registry_t **reg, acc_err *err);

void rt_provider_close(rt_provider_t *p);

#endif
