/*
 * test_provider.h: the host-call provider `accrue run` uses until the registry and meters exist.
 *
 * It is named for what it is: its models and datasets are called "test/..." and answer from
 * fixed, documented rules, so scripts and tests can exercise models.call and datasets.query end
 * to end without a network or a registry:
 *   test/echo     {prompt} or {messages}  -> {text = the prompt (or last message), usage = {...}}
 *   test/upper    likewise, the text upper-cased
 *   test/words    datasets.query: rows of a fixed 8-record list, ranked by how many of the query's
 *                 words each contains (case-insensitive; score = that share), at most opts.limit
 *                 (default 3); records with none are left out
 * Unknown names are refused with an error the agent sees.
 */
#ifndef ACCRUE_RUNTIME_TEST_PROVIDER_H
#define ACCRUE_RUNTIME_TEST_PROVIDER_H

#include "runtime/base/buf.h"
#include "sandbox/sandbox.h"

/* A provider answering at once (synchronously) from the rules above. */
sandbox_provider_t test_provider(void);

/* The same answers as a function: writes the answer's JSON text (returns 1) or an error message
 * (returns 0) into out. Any thread. */
int test_provider_answer(sandbox_call_kind_t kind, const char *name, size_t name_len, const char *json,
                         size_t json_len, acc_buf *out);

#endif
