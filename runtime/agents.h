/*
 * agents.h: what the runtime adds to the registry's agents, shared by the CLI and (later) the
 * server: the check that a deployed script loads (the registry runs no Lua), the usage figures the
 * marketplace sorts by, and NAME[@VERSION] references.
 */
#ifndef ACCRUE_RUNTIME_AGENTS_H
#define ACCRUE_RUNTIME_AGENTS_H

#include "registry/registry.h"

/* A registry_script_check_fn: loads the script in a fresh sandbox with the default limits (its
 * top-level code runs; host calls are refused) and wants back a table with on_message. ACC_OK, or
 * ACC_ESCRIPT with the script's error (chunk name "=NAME", so errors read "NAME:LINE: ..."). */
int rt_script_check(void *ud, const char *name, const char *script, size_t len, acc_err *err);

/* The usage figures of every agent, read from the ledger beside the registry at db (NULL:
 * ./accrue.db) in one pass over its last 30 days (meter_usage_by_agent). A file with no ledger yet
 * gives none. Freed with rt_usage_free. */
typedef struct rt_usage rt_usage_t;
int rt_usage_load(const char *db, rt_usage_t **out, acc_err *err);
void rt_usage_free(rt_usage_t *u);

/* A registry_usage_fn: an agent's sessions, messages and revenue over 7 and 30 days, from ud (an
 * rt_usage_t; NULL: every figure 0). */
int rt_agent_usage(void *ud, const char *agent, registry_agent_usage_t *out, acc_err *err);

/* Splits "NAME" or "NAME@VERSION" into name and version ("" when none), checking both. */
int rt_agent_ref(const char *ref, char name[REGISTRY_NAME_MAX + 1], char version[REGISTRY_VERSION_MAX + 1],
                 acc_err *err);

#endif
