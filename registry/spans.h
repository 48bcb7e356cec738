/*
 * spans.h: every datanet's span index, kept current with its accepted records, and the attribution
 * of a model's output against the datanets of its lineage.
 *
 * The indexes are derived data (registry/span/span.h builds them from the records), held once per
 * process for each database file and datanet, and brought up to date when used: a use reads the
 * datanet's version and the record at that version (one indexed lookup each), and adds the records
 * accepted since (by this process or any other) before answering. A record accepted is therefore
 * always seen by the next attribution, whoever accepted it. A database replaced under the same path
 * is noticed the same way (the last indexed record is not the same record any more) and its index
 * rebuilt.
 *
 * An index the size of a large datanet takes seconds to build (tokenizing, then a suffix array)
 * and well under a second to read back, so once a datanet's index reaches SPANS_SNAPSHOT_MIN_TOKENS
 * it is saved in the registry's file (tables span_snapshots and span_snapshot_parts, schema.c), and
 * saved again whenever the records indexed since have grown by a quarter of it (so saving costs
 * O(1) per token over a datanet's life). A new process loads the snapshot and adds only the records
 * accepted after it. The snapshot is a cache: a damaged or stale one is ignored and rebuilt.
 *
 * Threads: any number of threads may attribute at once, each with its own registry handle; the
 * indexes are shared (read-locked while in use, write-locked while records are added). Memory: an
 * index costs about 9 bytes per token; the cache holds every index used until registry_spans_clear.
 */
#ifndef ACCRUE_REGISTRY_SPANS_H
#define ACCRUE_REGISTRY_SPANS_H

#include "registry/registry.h"
#include "registry/span/span.h"

#define SPANS_SNAPSHOT_MIN_TOKENS 65536

/* A record credited by the attribution, with what the meters pay by. */
typedef struct registry_span_credit {
    int64_t record_id;
    int64_t datanet_id;
    uint8_t contributor[20];
    uint64_t weight; /* the record's share of span weight (span/span.h: length x SPAN_SHARE_SCALE, shared) */
    uint32_t spans;  /* how many spans credit it */
} registry_span_credit_t;

typedef struct registry_attribution {
    uint32_t min_tokens; /* k: the model's span_k */
    span_attribution spans; /* the evidence: spans (position, text range, records), per-record weights,
                               totals, covered_tokens; a source's index is its datanet's position in
                               the model's lineage */
    registry_span_credit_t *credits; /* spans.ncredits of them, in spans.credits' order */
} registry_attribution_t;

/*
 * Attributes text (a model's output, whatever model made it) against the span indexes of the
 * model's lineage datanets, with k = the model's span_k. A model with no lineage gets no spans.
 * ACC_ENOTFOUND when a lineage datanet is gone. *out is freed with registry_attribution_free (also
 * after a failure).
 */
int registry_attribute(registry_t *reg, const registry_model_t *model, const char *text, size_t len,
                       registry_attribution_t *out, acc_err *err);
/* The same, trusting an index found current less than max_age_ms ago: checking costs a read
 * transaction (more than attributing a short output), so a caller on a hot path (the meters, for
 * every call) takes records accepted in the last max_age_ms into account from its next call after
 * that. max_age_ms 0 is registry_attribute. */
int registry_attribute_within(registry_t *reg, const registry_model_t *model, const char *text, size_t len,
                              uint32_t max_age_ms, registry_attribution_t *out, acc_err *err);
void registry_attribution_free(registry_attribution_t *a);

/* The records of datanet that hold the words of text as one run ("which records contain this
 * span"): occurrences, distinct records, and the earliest cap record ids (span_hits; free out->ids). */
int registry_span_find(registry_t *reg, const char *datanet, const char *text, size_t len, size_t cap, span_hits *out,
                       acc_err *err);

typedef struct registry_span_stats {
    uint64_t seq;           /* records 1..seq are indexed (the datanet's version) */
    uint64_t records, tokens;
    size_t corpora;
    uint64_t snapshot_seq;  /* what the saved snapshot covers (0: none) */
    uint64_t added;         /* records this call added to the index in memory */
    bool from_snapshot;     /* this call loaded the snapshot instead of building */
} registry_span_stats_t;

/* Brings datanet's index up to date now (building or loading it if this process has none) and
 * reports it; save = true saves a snapshot whatever its size. */
int registry_span_refresh(registry_t *reg, const char *datanet, bool save, registry_span_stats_t *out, acc_err *err);

/* Frees every index this process holds (tests, shutdown). No attribution may be running. */
void registry_spans_clear(void);

#endif
