/*
 * factory.h: the model factory: small, deterministic models built from a datanet's records.
 *
 * A built-in model is trained on a datanet's accepted records and answers in two ways, both with
 * the contributors' own words, so that attributing its outputs (registry/span/span.h) is exact and
 * testable:
 *   continue  an n-gram language model with stupid back-off (Brants et al. 2007) over the records'
 *             normalised words, decoded greedily: at each step the next word is the one with the
 *             highest back-off score given the last order-1 words (ties to the smaller word id,
 *             then to the end of a record), and no n-gram the text already holds is produced
 *             twice (so decoding cannot loop). The counts come from a suffix array over the
 *             training records (the infini-gram idea: any order, no count tables), and every word
 *             is written as it stands in a record, with the record's own spacing and punctuation
 *             while the output keeps following that record.
 *   answer    extractive: the sentences of the records that best match a question (BM25 over
 *             sentences), best first, as written.
 * Same artifact, same request: same output, on any machine (no floating point decides a token;
 * BM25 scores are compared after rounding to fixed point).
 *
 * The artifact (what the registry stores for a builtin model) is the exact training set: the
 * records' ids and texts, the order, the datanet and its version when built. Loading it rebuilds
 * the model (tokenize, suffix array, sentences), so a model is identical wherever it is loaded and
 * never changes when its datanet grows.
 *
 * Threads: a loaded model is immutable; any number of threads may call it at once. The registry
 * glue (factory_build, factory_call) uses the caller's registry handle, and factory_call keeps
 * loaded models in a process-wide cache keyed by the artifact's hash (factory_cache_clear frees it).
 */
#ifndef ACCRUE_REGISTRY_FACTORY_H
#define ACCRUE_REGISTRY_FACTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/registry.h"
#include "runtime/base/buf.h"
#include "runtime/base/status.h"

#define FACTORY_DEFAULT_ORDER 5
#define FACTORY_MAX_ORDER 16
#define FACTORY_DEFAULT_MAX_TOKENS 64
#define FACTORY_MAX_TOKENS 4096      /* a request may ask for at most this many */
#define FACTORY_ANSWER_SENTENCES 3   /* the answerer returns at most this many sentences */

typedef struct factory_model factory_model;

typedef struct factory_record {
    int64_t id;
    const char *text;
    size_t len;
} factory_record;

/* The artifact of a model trained on records (in order) with the given n-gram order (1..16):
 * appended to out. datanet_id and seq (the datanet's version) are recorded for provenance. */
int factory_artifact_encode(const factory_record *records, size_t n, uint32_t order, int64_t datanet_id,
                            uint64_t seq, acc_buf *out, acc_err *err);
/* keccak-256 of an artifact, "0x" and lower-case hex (67 bytes with the NUL): what params name it by. */
void factory_artifact_hash(const void *artifact, size_t len, char hex[67]);

/* Loads (rebuilds) a model from its artifact. ACC_ECORRUPT for bytes that are not an artifact.
 * *out is freed with factory_model_free. */
int factory_model_load(const void *artifact, size_t len, factory_model **out, acc_err *err);
void factory_model_free(factory_model *m);

uint32_t factory_model_order(const factory_model *m);
size_t factory_model_records(const factory_model *m);
size_t factory_model_tokens(const factory_model *m);
size_t factory_model_sentences(const factory_model *m);
int64_t factory_model_datanet(const factory_model *m);
uint64_t factory_model_seq(const factory_model *m);

typedef enum factory_finish {
    FACTORY_FINISH_STOP,   /* the model ended its text (a record ended; no sentence left) */
    FACTORY_FINISH_LENGTH, /* max_tokens reached */
} factory_finish;

typedef struct factory_output {
    char *text; /* malloc'd, NUL-terminated; factory_output_free */
    size_t len;
    uint32_t prompt_tokens;     /* normalised words of the input */
    uint32_t completion_tokens; /* normalised words of text */
    factory_finish finish;
} factory_output;

void factory_output_free(factory_output *o);

/* Continues prompt with at most max_tokens (1..FACTORY_MAX_TOKENS) words. */
int factory_continue(const factory_model *m, const char *prompt, size_t len, uint32_t max_tokens, factory_output *out,
                     acc_err *err);
/* The best-supported sentences for question, at most max_tokens words in all (a longer first
 * sentence is cut to max_tokens words). Empty text when no sentence shares a word with it. */
int factory_answer(const factory_model *m, const char *question, size_t len, uint32_t max_tokens, factory_output *out,
                   acc_err *err);

/*
 * Answers a request as models.call sends it (JSON):
 *   {"prompt": "..."}                      continue the prompt
 *   {"messages": [{"role": "user", "content": "..."}, ...]}   answer the last user message
 *   "max_tokens": 1..4096 (default 64), "mode": "continue" | "answer" (overrides the default)
 * with {"text": "...", "usage": {"prompt_tokens": N, "completion_tokens": M}, "finish_reason":
 * "stop" | "length", "mode": "..."} appended to out. ACC_EINVAL naming the field for a bad request.
 * prompt_tokens counts the words of the prompt, or of every message's content.
 */
int factory_respond(const factory_model *m, const char *request, size_t len, acc_buf *out, acc_err *err);

/* The same in steps, for a caller that must know the request before the model runs (the meters
 * reserve what it can cost) and wants the output as data, not JSON: parse (the same checks and
 * messages as factory_respond), then run. prompt_tokens is the request's own count, known before
 * running. The text points into the parsed request or into request itself: valid until
 * factory_request_free, and only while request is. */
typedef struct factory_request {
    const char *text;       /* the prompt, or the last user message */
    size_t text_len;
    uint32_t max_tokens;    /* the request's, or FACTORY_DEFAULT_MAX_TOKENS */
    uint32_t prompt_tokens; /* normalised words of the prompt, or of every message's content */
    bool answer;            /* answer (messages, or mode "answer") rather than continue */
    bool messages;
    void *root;             /* the parsed JSON (private) */
    void *tokens;           /* the prompt's words, counted once and continued from (private) */
} factory_request;
int factory_request_parse(const char *request, size_t len, factory_request *out, acc_err *err);
void factory_request_free(factory_request *r);
int factory_run(const factory_model *m, const factory_request *r, factory_output *out, acc_err *err);

/* ---------------------------------------------------------------------- with the registry */

/*
 * `accrue model build`: trains a model on the accepted records of datanet (all of them, in the
 * order accepted) and registers it as a builtin model whose lineage is that datanet, with the
 * artifact stored beside it, in one transaction. spec gives the name, owner, prices, owner share,
 * span_k and fixed shares (its kind, lineage and params are set here: params records the order,
 * the datanet, its version and the artifact's hash). A datanet with no accepted record is refused
 * (ACC_EMISUSE), as is a taken name (ACC_EEXIST), an unknown datanet (ACC_ENOTFOUND) and an order
 * outside 1..16 (ACC_EINVAL). out (may be NULL) gets the stored model.
 */
int factory_build(registry_t *reg, const registry_model_t *spec, const char *datanet, uint32_t order,
                  registry_model_t *out, acc_err *err);

/* Answers a request (factory_respond) for a builtin model of the registry, loading its artifact
 * the first time (or when it changed) into the process-wide cache. ACC_EINVAL for a model that is
 * not builtin. */
int factory_call(registry_t *reg, const registry_model_t *model, const char *request, size_t len, acc_buf *out,
                 acc_err *err);
/* The loaded model of a builtin registry model, from the process-wide cache (loaded now the first
 * time). It stays valid until factory_cache_clear. */
int factory_model_of(registry_t *reg, const registry_model_t *model, factory_model **out, acc_err *err);
/* Frees every cached model (tests, shutdown). Models in use by another thread must not be. */
void factory_cache_clear(void);

#endif
