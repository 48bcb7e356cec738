/*
 * span.h: normalised-word tokens, suffix arrays over a datanet's records, and span attribution.
 *
 * This module answers, for a datanet's accepted records, "which records contain this run of
 * words" and "how long is the longest run of words, starting at each position of this text, that
 * some record contains" (the infini-gram idea: a suffix array over the records' tokens, tokens as
 * integer ids). On top of that it finds the spans of a model's output that were copied from
 * contributed records, with the evidence (where, which text, which records) and integer weights.
 * It holds no SQL and knows no money: the registry feeds it records and persists what it asks for,
 * the meters turn its weights into amounts.
 *
 * Four layers, each usable alone:
 *   tokens   span_tokenize: words, normalised (case-folded, accents and invisible characters
 *            dropped, punctuation and spacing as separators), each with its byte range in the
 *            original text, so a match can be shown as the writer's own text.
 *   vocab    span_vocab: normalised word <-> dense integer id (>= SPAN_FIRST_WORD), per datanet.
 *   corpus   span_corpus: one immutable suffix array over a list of records' token ids.
 *   index    span_index: a datanet's records as a few corpora of decreasing size (a log-structured
 *            merge: accepting a record builds a small corpus and merges it into the bigger ones
 *            only when it has grown comparable to them, so no record rebuilds the whole datanet).
 * and span_attribute over the indexes of a model's lineage.
 *
 * Threads: a vocab, corpus or index may be read by many threads at once (every query is a pure
 * read); changing one (intern, add, commit) needs the caller's exclusive lock.
 * Errors: runtime/base/status.h. Memory: malloc (the process's jemalloc); every _new/_build has
 * its _free.
 */
#ifndef ACCRUE_REGISTRY_SPAN_H
#define ACCRUE_REGISTRY_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/base/buf.h"
#include "runtime/base/status.h"

/* ---------------------------------------------------------------------------------------------
 * Tokens
 * -------------------------------------------------------------------------------------------*/

/* The longest text span_tokenize accepts (offsets are 32-bit). */
#define SPAN_MAX_TEXT ((size_t)UINT32_MAX)

typedef struct span_token {
    uint32_t start, end;    /* the word's bytes in the original text: [start, end) */
    uint32_t norm, norm_len; /* its normalised form: tokens->norm + norm, norm_len bytes */
} span_token;

/* A tokenized text. Zero it (SPAN_TOKENS_INIT) before the first span_tokenize; reuse it for
 * the next text (its memory is kept); span_tokens_free at the end. */
typedef struct span_tokens {
    span_token *v;
    size_t n, cap;
    char *norm; /* the normalised words, back to back (not NUL-separated) */
    size_t norm_len, norm_cap;
} span_tokens;

#define SPAN_TOKENS_INIT {0}

/*
 * Splits text (UTF-8; invalid bytes are separators) into normalised words:
 *   - a word is a run of letters and digits of any script; ASCII, Latin-1, Latin Extended-A,
 *     Greek, Cyrillic and fullwidth forms are case-folded, and Latin letters lose their accents
 *     ("Café" and "cafe" are one word, "Straße" is "strasse");
 *   - every other character (ASCII punctuation and space, Unicode punctuation, symbols, spaces,
 *     emoji) separates words, except: an apostrophe between two letters joins them ("don't" is
 *     "dont"), and combining marks, soft hyphens, zero-width characters and variation selectors
 *     inside a word are dropped (so invisible characters cannot split a copied word);
 *   - each CJK ideograph, hiragana or katakana character is a word of its own (those scripts put
 *     no spaces between words).
 * Replaces out's previous contents. ACC_ELIMIT when len > SPAN_MAX_TEXT, ACC_ENOMEM.
 */
int span_tokenize(const char *text, size_t len, span_tokens *out, acc_err *err);
void span_tokens_free(span_tokens *t);

/* ---------------------------------------------------------------------------------------------
 * Vocabulary
 * -------------------------------------------------------------------------------------------*/

#define SPAN_SENTINEL 0u        /* ends a corpus's token array; never a word */
#define SPAN_SEP 1u             /* ends every record in a corpus; never matches a word */
#define SPAN_FIRST_WORD 2u      /* the first word id; ids are dense from here */
#define SPAN_UNKNOWN UINT32_MAX /* a query word the vocabulary does not hold: matches nothing */

typedef struct span_vocab span_vocab;

/* NULL when out of memory. */
span_vocab *span_vocab_new(void);
void span_vocab_free(span_vocab *v);
/* The id of word (normalised bytes), adding it when new: ids are given in first-seen order, so
 * the same words interned in the same order get the same ids. 0 when out of memory. */
uint32_t span_vocab_intern(span_vocab *v, const char *word, size_t len);
/* The id of word, or SPAN_UNKNOWN. */
uint32_t span_vocab_find(const span_vocab *v, const char *word, size_t len);
/* The normalised bytes of id (not NUL-terminated; owned by v, valid until it changes), or NULL
 * for an id it does not hold. */
const char *span_vocab_word(const span_vocab *v, uint32_t id, size_t *len);
/* One past the highest id given: SPAN_FIRST_WORD + number of words. */
uint32_t span_vocab_limit(const span_vocab *v);

/* The ids of tokens' words (ids holds tokens->n entries): interned into v (ACC_ENOMEM, ACC_ELIMIT
 * for a word over 16 MiB), or looked up (SPAN_UNKNOWN for a word v does not hold). */
int span_vocab_intern_ids(span_vocab *v, const span_tokens *tokens, uint32_t *ids, acc_err *err);
void span_vocab_find_ids(const span_vocab *v, const span_tokens *tokens, uint32_t *ids);

/* ---------------------------------------------------------------------------------------------
 * Suffix arrays
 * -------------------------------------------------------------------------------------------*/

/* The suffix array of text[0..n), every text[i] < alphabet, text[n-1] the only 0 (a unique,
 * smallest sentinel): sa[r] is the start of the r-th smallest suffix. SA-IS (Nong, Zhang and Chan
 * 2009), linear time. n < 2^31. ACC_EINVAL when the text breaks the rules above, ACC_ENOMEM. */
int span_suffix_array(const uint32_t *text, uint32_t n, uint32_t alphabet, uint32_t *sa, acc_err *err);

/* ---------------------------------------------------------------------------------------------
 * Corpus: one immutable suffix array over records
 * -------------------------------------------------------------------------------------------*/

typedef struct span_corpus span_corpus;

/* A record's word ids (each >= SPAN_FIRST_WORD and < alphabet), as given to span_corpus_build. */
typedef struct span_record_tokens {
    int64_t record_id; /* the caller's id (the registry's record id); any value, repeats allowed */
    const uint32_t *ids;
    uint32_t n; /* 0 is fine: an empty record holds no span */
} span_record_tokens;

/* Builds the suffix array of the records, in the order given, each ended by SPAN_SEP. alphabet is
 * one past the highest word id (span_vocab_limit). At most 2^31 - 2 tokens and separators in all
 * (ACC_ELIMIT). *out is freed with span_corpus_free. */
int span_corpus_build(const span_record_tokens *records, size_t nrecords, uint32_t alphabet, span_corpus **out,
                      acc_err *err);
void span_corpus_free(span_corpus *c);

size_t span_corpus_records(const span_corpus *c);
/* Word tokens (separators not counted). */
size_t span_corpus_tokens(const span_corpus *c);
/* The token array's length: words, one SPAN_SEP per record, and the sentinel. */
uint32_t span_corpus_length(const span_corpus *c);
/* Token at position pos < span_corpus_length: a word id, SPAN_SEP or (last) SPAN_SENTINEL. */
uint32_t span_corpus_token(const span_corpus *c, uint32_t pos);
/* Number of suffixes in the suffix array (one per word token), and the position of the r-th. */
uint32_t span_corpus_suffixes(const span_corpus *c);
uint32_t span_corpus_suffix(const span_corpus *c, uint32_t rank);
/* The record holding position pos: its index in build order; *first its first position. */
uint32_t span_corpus_record_at(const span_corpus *c, uint32_t pos, uint32_t *first);
int64_t span_corpus_record_id(const span_corpus *c, uint32_t record_index);
/* Record record_index's ids: positions [first, first + n). */
void span_corpus_record_span(const span_corpus *c, uint32_t record_index, uint32_t *first, uint32_t *n);

/* The suffix-array ranks [*lo, *hi) of the suffixes that start with q[0..m) (m >= 1): the
 * occurrences of q. Empty (lo == hi) when there are none. */
void span_corpus_find(const span_corpus *c, const uint32_t *q, size_t m, uint32_t *lo, uint32_t *hi);
/* The same ranks for q = the first m words (m >= 1, no separator among them) of the suffix at rank
 * r, found from r outwards (galloping, then bisection): cheaper than span_corpus_find when the
 * range is small and the caller knows an occurrence's rank. */
void span_corpus_find_around(const span_corpus *c, uint32_t r, uint32_t m, uint32_t *lo, uint32_t *hi);
/* Matching statistics: ms[i] = the length of the longest prefix of q[i..m) that occurs in some
 * record (0 when q[i] occurs nowhere). */
void span_corpus_longest(const span_corpus *c, const uint32_t *q, size_t m, uint32_t *ms);

/* ---------------------------------------------------------------------------------------------
 * Index: a datanet's records, current as records are accepted
 * -------------------------------------------------------------------------------------------*/

typedef struct span_index span_index;

/* An empty index with a vocabulary of its own. NULL when out of memory. */
span_index *span_index_new(void);
void span_index_free(span_index *x);

/* Tokenizes a record and queues it; it is searched after the next span_index_commit. Records are
 * kept in the order added. On failure nothing was queued (words it interned stay in the vocabulary,
 * harmlessly). */
int span_index_add(span_index *x, int64_t record_id, const char *text, size_t len, acc_err *err);
/* Same, from word ids of this index's vocabulary (a persisted record restored). */
int span_index_add_ids(span_index *x, int64_t record_id, const uint32_t *ids, uint32_t n, acc_err *err);
/* Makes the queued records searchable: builds one corpus of them, then merges the newest corpora
 * while the older of the last two is less than twice as big as the newer (so sizes at least
 * double going back, there are at most log2 of them, and a token is rebuilt O(log n) times over
 * the index's life). On failure the queue is kept and the index answers as before. */
int span_index_commit(span_index *x, acc_err *err);
/* Merges everything into one corpus (before persisting, or for a frozen snapshot). */
int span_index_compact(span_index *x, acc_err *err);

span_vocab *span_index_vocab(span_index *x);
const span_vocab *span_index_vocab_const(const span_index *x);
size_t span_index_records(const span_index *x); /* committed */
size_t span_index_tokens(const span_index *x);  /* committed word tokens */
size_t span_index_pending(const span_index *x); /* queued records */
size_t span_index_corpora(const span_index *x);
const span_corpus *span_index_corpus(const span_index *x, size_t i); /* oldest first */

/* The committed index as bytes (appended to out), and an index made from them: the same words with
 * the same ids, the same corpora, answering the same. ACC_EMISUSE when records are queued;
 * span_index_load: ACC_ECORRUPT (naming what) for bytes that are not a saved index. */
int span_index_save(const span_index *x, acc_buf *out, acc_err *err);
int span_index_load(const void *data, size_t len, span_index **out, acc_err *err);

/* Matching statistics over every committed record: ms[i] = the longest prefix of q[i..m) that
 * some record contains. q are ids of this index's vocabulary (SPAN_UNKNOWN for other words). */
void span_index_longest(const span_index *x, const uint32_t *q, size_t m, uint32_t *ms);

/* The records that contain q[0..m) (m >= 1). */
typedef struct span_hits {
    uint64_t occurrences;  /* how many times it occurs, in all records */
    uint64_t records;      /* in how many distinct records */
    size_t nids;           /* min(records, cap) record ids, smallest first (the earliest records) */
    int64_t *ids;          /* malloc'd, caller frees (NULL when nids is 0) */
} span_hits;
int span_index_find(const span_index *x, const uint32_t *q, size_t m, size_t cap, span_hits *out, acc_err *err);

/* ---------------------------------------------------------------------------------------------
 * Attribution
 * -------------------------------------------------------------------------------------------*/

#define SPAN_DEFAULT_MIN_TOKENS 8
#define SPAN_DEFAULT_RECORD_CAP 32
/* A span's weight is its length in tokens; among its records it is shared as length x this
 * (lcm(1..16)), so a span found in up to 16 records is shared exactly, more by largest remainder. */
#define SPAN_SHARE_SCALE UINT64_C(720720)

typedef struct span_attr_options {
    uint32_t min_tokens; /* k: the shortest span that counts; 0 = SPAN_DEFAULT_MIN_TOKENS */
    uint32_t record_cap; /* records credited per span; 0 = SPAN_DEFAULT_RECORD_CAP */
} span_attr_options;

typedef struct span_source {
    uint32_t index;    /* which of the indexes given (lineage order) */
    int64_t record_id;
} span_source;

typedef struct span_match {
    uint32_t token;           /* first token of the span in the output (index into its tokens) */
    uint32_t ntokens;         /* its length in normalised tokens (>= min_tokens); also its weight */
    uint32_t byte_start;      /* the span as written in the output: text[byte_start, byte_end) */
    uint32_t byte_end;
    uint64_t occurrences;     /* times it occurs, all indexes */
    uint64_t records;         /* distinct records containing it, all indexes */
    size_t nsources;          /* the records credited: min(records, record_cap) */
    span_source *sources;     /* the earliest records first: (record_id, index) order; owned by the attribution */
} span_match;

typedef struct span_credit {
    span_source source;
    uint64_t weight;          /* sum over its spans of ntokens x SPAN_SHARE_SCALE shares */
    uint32_t spans;           /* how many spans credit it */
} span_credit;

typedef struct span_attribution {
    size_t ntokens;           /* normalised tokens in the output */
    size_t nspans;
    span_match *spans;        /* by position in the output */
    size_t ncredits;
    span_credit *credits;     /* one per credited record, in (record_id, index) order */
    uint64_t total_weight;    /* sum of credits' weights = sum of spans' ntokens x SPAN_SHARE_SCALE */
    uint64_t span_tokens;     /* sum of spans' ntokens (overlaps counted twice) */
    uint64_t covered_tokens;  /* output tokens inside at least one span (<= ntokens) */
    span_source *source_block; /* every span's sources back to back (what spans[i].sources point into) */
} span_attribution;

/*
 * Finds the spans of text copied from the indexes' records: each maximal run of at least
 * min_tokens normalised tokens that occurs in some record (maximal: it cannot be extended by a
 * token on either side and still occur), with the records it occurs in. Spans may overlap where
 * the output moves from one record to another through shared words; each counts in full. Text
 * with no such span gets nspans = 0 and no credits. Deterministic: the same text and indexes
 * give the same result. *out is freed with span_attribution_free.
 */
int span_attribute(const span_index *const *indexes, size_t nindexes, const char *text, size_t len,
                   const span_attr_options *opts, span_attribution *out, acc_err *err);
void span_attribution_free(span_attribution *a);

/* The attribution as JSON (the evidence a usage event stores): {"tokens":N,"min_tokens":K,
 * "spans":[{"token":I,"ntokens":L,"start":B,"end":E,"text":"...","occurrences":O,"records":R,
 * "sources":[{"index":X,"record":ID},...]}],"credits":[{"index":X,"record":ID,"weight":W}]}.
 * Appends to out (check acc_buf_failed). */
void span_attribution_json(const span_attribution *a, const char *text, uint32_t min_tokens, acc_buf *out);

#endif
