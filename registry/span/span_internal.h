/*
 * span_internal.h: what the span module's files share and nobody else needs.
 */
#ifndef ACCRUE_REGISTRY_SPAN_INTERNAL_H
#define ACCRUE_REGISTRY_SPAN_INTERNAL_H

#include "registry/span/span.h"
#include "runtime/base/invariant.h"

/* The most tokens, separators and sentinel of one corpus (SA-IS runs on 32-bit indices < 2^31). */
#define SPAN_CORPUS_MAX ((1u << 31) - 2)

/* Grows *p (an array of *cap items of size bytes) to hold at least need items, doubling. 0 or -1
 * (out of memory: *p and *cap unchanged). */
int span_grow(void **p, size_t *cap, size_t need, size_t size);

/* The longest prefix of q[0..m) (words only) that occurs in c. */
uint32_t span_corpus_longest_at(const span_corpus *c, const uint32_t *q, uint32_t m);
/* ms[i] = max(ms[i], longest match at i in c). */
void span_corpus_longest_max(const span_corpus *c, const uint32_t *q, size_t m, uint32_t *ms);
/* Decodes one strict UTF-8 code point at s[0..n) (n >= 1, s[0] >= 0x80): its length, or 0 for an
 * invalid sequence (overlong, surrogate, beyond U+10FFFF, truncated). */
size_t span_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* The token array (span_corpus_length entries) and the suffix array (span_corpus_suffixes). */
const uint32_t *span_corpus_tokens_of(const span_corpus *c);
const uint32_t *span_corpus_sa_of(const span_corpus *c);

/* A corpus over arrays already built (a saved index loaded): takes tok (len tokens) and sa (nsuf
 * suffixes) on success; records' ids point into tok. The caller checked them. */
int span_corpus_adopt(const span_record_tokens *records, uint32_t nrecords, uint32_t alphabet, uint32_t *tok,
                      uint32_t len, uint32_t *sa, uint32_t nsuf, span_corpus **out, acc_err *err);
/* Appends a corpus (newest) to an index, which then owns it. */
int span_index_push_corpus(span_index *x, span_corpus *c, acc_err *err);

#endif
