/*
 * factory_internal.h: the loaded model, shared by the factory's files.
 */
#ifndef ACCRUE_REGISTRY_FACTORY_INTERNAL_H
#define ACCRUE_REGISTRY_FACTORY_INTERNAL_H

#include "registry/factory/factory.h"
#include "registry/span/span.h"
#include "runtime/base/invariant.h"

typedef struct factory_sentence {
    uint32_t rec;          /* record index */
    uint32_t first, n;     /* corpus positions [first, first + n) */
    uint32_t bstart, bend; /* its text in the record, opening and closing punctuation included */
} factory_sentence;

typedef struct factory_posting {
    uint32_t sent, tf;
} factory_posting;

struct factory_model {
    uint32_t order;
    int64_t datanet;
    uint64_t seq;
    size_t nrec;
    int64_t *rec_id;
    char *text;          /* every record's text, back to back */
    size_t *rec_off;     /* nrec + 1 offsets into text */
    uint32_t *rec_first; /* each record's first corpus position */
    span_vocab *vocab;
    span_corpus *corpus;
    uint32_t *tstart, *tend; /* per corpus position: the word's bytes in its record's text */
    uint32_t *rank;          /* per corpus position of a word: its suffix's rank (the inverse suffix array) */
    uint8_t *lcp;            /* per rank r > 0: the tokens suffixes r - 1 and r share, at most order */
    uint32_t *unigram;       /* word ids, most frequent first (ties: smaller id) */
    size_t nuni;
    factory_sentence *sent;
    size_t nsent;
    uint32_t *post_off;      /* word w's postings: post[post_off[w - 2] .. post_off[w - 1]) */
    factory_posting *post;
    uint64_t avg_len_milli;  /* mean sentence length in words, x 1000 */
};

/* factory_continue from the prompt's words, tokenized already. */
int factory_continue_tokens(const factory_model *m, const span_tokens *prompt, uint32_t max_tokens, factory_output *out,
                            acc_err *err);

/* The record holding corpus position pos (its separator after it included). hint, when not
 * NULL, is the record of an earlier look-up (any value at first): a generated text mostly goes
 * on in the record of its last word, and each look-up is otherwise a binary search over the
 * records, a cache miss a step (0.3 us of a 16-word output in bench_meters). */
static inline uint32_t factory_record_of(const factory_model *m, uint32_t pos, uint32_t *hint) {
    if (hint && *hint < m->nrec && m->rec_first[*hint] <= pos && (*hint + 1 == m->nrec || pos < m->rec_first[*hint + 1]))
        return *hint;
    uint32_t r = span_corpus_record_at(m->corpus, pos, NULL);
    if (hint) *hint = r;
    return r;
}

/* Where the punctuation glued to the word at pos ends (the first space after it, or the next word),
 * and where the punctuation glued before it starts (after the last space, or the previous word).
 * hint: factory_record_of's. */
size_t factory_trailing_end(const factory_model *m, uint32_t pos, uint32_t *hint);
size_t factory_leading_start(const factory_model *m, uint32_t pos, uint32_t *hint);

/* The record text holding corpus position pos (hint: factory_record_of's). */
static inline const char *factory_text_at(const factory_model *m, uint32_t pos, uint32_t *hint) {
    return m->text + m->rec_off[factory_record_of(m, pos, hint)];
}

#endif
