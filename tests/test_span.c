/*
 * test_span.c: the span module (registry/span/span.h).
 *
 * The tokenizer on light edits (case, punctuation, spacing, accents, invisible characters) and
 * the byte offsets it keeps; SA-IS against a naive sort on random and repetitive texts; a corpus
 * and an incrementally committed index against brute-force search on random corpora with heavy
 * repetition, empty and one-token records and text variants; attribution with copied spans
 * (exact and lightly edited), novel outputs, near misses shorter than k, spans shared among
 * records and across datanets, and every maximal span of random outputs against brute force.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "registry/span/span.h"
#include "registry/span/span_internal.h"
#include "tests/check.h"

static uint32_t below(uint32_t n) { return (uint32_t)(test_rand() % n); }

/* The normalised words of text, joined by single spaces, into buf. */
static const char *norm_words(const char *text, char *buf, size_t cap) {
    span_tokens t = SPAN_TOKENS_INIT;
    acc_err err = {0};
    size_t o = 0;
    buf[0] = 0;
    if (span_tokenize(text, strlen(text), &t, &err) == 0) {
        for (size_t i = 0; i < t.n && o + t.v[i].norm_len + 2 < cap; i++) {
            if (i) buf[o++] = ' ';
            memcpy(buf + o, t.norm + t.v[i].norm, t.v[i].norm_len);
            o += t.v[i].norm_len;
        }
        buf[o] = 0;
    }
    span_tokens_free(&t);
    return buf;
}

#define SAME_WORDS(a, b)                                                                      \
    do {                                                                                      \
        char ba_[512], bb_[512];                                                              \
        CHECK_STREQ(norm_words(a, ba_, sizeof ba_), norm_words(b, bb_, sizeof bb_));           \
    } while (0)

static void tokenizer_words_and_offsets(void) {
    const char *text = "Hello, World!  It's   a TEST.";
    span_tokens t = SPAN_TOKENS_INIT;
    CHECK(span_tokenize(text, strlen(text), &t, NULL) == 0);
    CHECK(t.n == 5);
    const char *want[] = {"hello", "world", "its", "a", "test"};
    const char *orig[] = {"Hello", "World", "It's", "a", "TEST"};
    for (size_t i = 0; i < t.n && i < 5; i++) {
        CHECK(t.v[i].norm_len == strlen(want[i]) && memcmp(t.norm + t.v[i].norm, want[i], t.v[i].norm_len) == 0);
        CHECK(t.v[i].end - t.v[i].start == strlen(orig[i]) && memcmp(text + t.v[i].start, orig[i], strlen(orig[i])) == 0);
    }
    const char *multi = "Caf\xc3\xa9 au lait";
    CHECK(span_tokenize(multi, strlen(multi), &t, NULL) == 0);
    CHECK(t.n == 3 && t.v[0].start == 0 && t.v[0].end == 5 && t.v[0].norm_len == 4 && memcmp(t.norm, "cafe", 4) == 0);
    CHECK(span_tokenize("", 0, &t, NULL) == 0 && t.n == 0);
    CHECK(span_tokenize("  ,,, -- !? ", 12, &t, NULL) == 0 && t.n == 0);
    CHECK(span_tokenize("x", 1, &t, NULL) == 0 && t.n == 1 && t.v[0].start == 0 && t.v[0].end == 1);
    span_tokens_free(&t);
}

static void tokenizer_ignores_light_edits(void) {
    char buf[512];
    SAME_WORDS("The quick brown fox", "the QUICK, brown... fox!");
    SAME_WORDS("The quick brown fox", "The\tquick\n\n brown   fox");
    SAME_WORDS("The quick brown fox", "(The) [quick] {brown} <fox>");
    SAME_WORDS("caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9\x65", "CAFE CREME BRULEE");                  /* accents */
    SAME_WORDS("cafe\xcc\x81 cre\xcc\x80me", "cafe creme");                                             /* combining */
    SAME_WORDS("Stra\xc3\x9f\x65 \xc3\x86sop", "strasse aesop");                                          /* ß, Æ */
    SAME_WORDS("don't won\xe2\x80\x99t", "dont wont");                                                   /* apostrophes */
    SAME_WORDS("co\xe2\x80\x8bpy pa\xc2\xadste jo\xe2\x80\x8din", "copy paste join");                     /* invisible */
    SAME_WORDS("\xe2\x80\x9cHello\xe2\x80\x9d \xe2\x80\x94 world", "\"hello\" - world");                 /* smart quotes, dash */
    SAME_WORDS("\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3\xef\xbc\x91\xef\xbc\x92", "abc12");                  /* fullwidth */
    SAME_WORDS("\xce\x9a\xce\x91\xce\x9b\xce\x97\xce\x9c\xce\x88\xce\xa1\xce\x91",
               "\xce\xba\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1");                          /* Greek */
    SAME_WORDS("\xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95\xd0\xa2 \xd0\x81\xd0\xbb\xd0\xba\xd0\xb0",
               "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xb5\xd0\xbb\xd0\xba\xd0\xb0");          /* Cyrillic */
    SAME_WORDS("one\xc2\xa0two\xe3\x80\x80three", "one two three");                                       /* NBSP, ideographic space */
    SAME_WORDS("emoji\xf0\x9f\x98\x80here", "emoji here");
    /* Each ideograph is a word; kana too. */
    CHECK_STREQ(norm_words("\xe6\x88\x91\xe7\x88\xb1\xe4\xbd\xa0", buf, sizeof buf), "\xe6\x88\x91 \xe7\x88\xb1 \xe4\xbd\xa0");
    CHECK_STREQ(norm_words("ab\xe6\x97\xa5\x63\x64", buf, sizeof buf), "ab \xe6\x97\xa5 cd");
    /* Invalid UTF-8 separates, never joins or crashes. */
    CHECK_STREQ(norm_words("ab\xff\xfe\x63\x64 \xe2\x82", buf, sizeof buf), "ab cd");
    CHECK_STREQ(norm_words("\xc0\xaf\xed\xa0\x80x", buf, sizeof buf), "x"); /* overlong, surrogate */
    /* Word boundaries a light edit does not cross: these stay different. */
    CHECK_STREQ(norm_words("well-known", buf, sizeof buf), "well known");
    CHECK_STREQ(norm_words("'quoted' rock 'n' roll", buf, sizeof buf), "quoted rock n roll");
    CHECK_STREQ(norm_words("3.14 1,000", buf, sizeof buf), "3 14 1 000");
}

/* ---- suffix arrays ---- */

static int suffix_cmp(const uint32_t *t, uint32_t n, uint32_t a, uint32_t b) {
    while (a < n && b < n) {
        if (t[a] != t[b]) return t[a] < t[b] ? -1 : 1;
        a++, b++;
    }
    return a == n ? -1 : 1;
}

static int check_sa(const uint32_t *t, uint32_t n, uint32_t k) {
    uint32_t *sa = malloc(n * sizeof *sa);
    uint8_t *seen = calloc(n, 1);
    int ok = span_suffix_array(t, n, k, sa, NULL) == 0;
    for (uint32_t i = 0; ok && i < n; i++) {
        ok = sa[i] < n && !seen[sa[i]];
        if (ok) seen[sa[i]] = 1;
        if (ok && i) ok = suffix_cmp(t, n, sa[i - 1], sa[i]) < 0;
    }
    free(sa);
    free(seen);
    return ok;
}

static void suffix_array_against_naive_sort(void) {
    static const uint32_t alphabets[] = {2, 3, 4, 20, 1000};
    int trials = test_slow_tool() ? 100 : 400; /* under valgrind or a sanitizer: fewer */
    for (int trial = 0; trial < trials; trial++) {
        uint32_t n = 1 + below(trial < trials * 3 / 4 ? 64 : 3000), k = alphabets[trial % 5];
        uint32_t *t = malloc(n * sizeof *t);
        for (uint32_t i = 0; i + 1 < n; i++) t[i] = 1 + below(k - 1);
        t[n - 1] = 0;
        CHECK_MSG(check_sa(t, n, k), "random text n=%u k=%u", n, k);
        free(t);
    }
    /* Repetitive texts drive the recursion deep. */
    uint32_t n = 5000;
    uint32_t *t = malloc(n * sizeof *t);
    for (uint32_t i = 0; i < n; i++) t[i] = 1;
    t[n - 1] = 0;
    CHECK_MSG(check_sa(t, n, 2), "one symbol");
    for (uint32_t i = 0; i + 1 < n; i++) t[i] = 1 + (i & 1);
    CHECK_MSG(check_sa(t, n, 3), "abab");
    /* Fibonacci word: the classic worst case for repetition. */
    char *f = malloc(n + 2), *g = malloc(n + 2), *h = malloc(n + 2);
    strcpy(f, "a");
    strcpy(g, "ab");
    while (strlen(g) < n) {
        size_t lg = strlen(g), lf = strlen(f);
        if (lg + lf > n) break;
        memcpy(h, g, lg);
        memcpy(h + lg, f, lf + 1);
        strcpy(f, g);
        strcpy(g, h);
    }
    uint32_t fn = (uint32_t)strlen(g) + 1;
    for (uint32_t i = 0; i + 1 < fn; i++) t[i] = g[i] == 'a' ? 1 : 2;
    t[fn - 1] = 0;
    CHECK_MSG(check_sa(t, fn, 3), "fibonacci word of %u", fn);
    free(f), free(g), free(h);
    /* Bad texts are refused, not sorted. */
    uint32_t sa[4];
    acc_err err = {0};
    uint32_t no_sentinel[] = {1, 2, 1, 1};
    CHECK(span_suffix_array(no_sentinel, 4, 3, sa, &err) == ACC_EINVAL && strstr(err.msg, "sentinel"));
    uint32_t two_zeros[] = {1, 0, 1, 0};
    CHECK(span_suffix_array(two_zeros, 4, 3, sa, &err) == ACC_EINVAL);
    uint32_t too_big[] = {1, 7, 0};
    CHECK(span_suffix_array(too_big, 3, 3, sa, &err) == ACC_EINVAL);
    free(t);
}

/* ---- corpora and indexes against brute force ---- */

typedef struct brute {
    size_t n;
    int64_t id[400];
    uint32_t len[400];
    uint32_t *w[400];
} brute;

static int occurs_at(const brute *b, size_t r, uint32_t p, const uint32_t *q, size_t m) {
    if (p + m > b->len[r]) return 0;
    for (size_t j = 0; j < m; j++)
        if (b->w[r][p + j] != q[j]) return 0;
    return 1;
}

/* Occurrences of q in all records; *records distinct records; ids the first `cap` record ids in
 * ascending order. */
static uint64_t brute_find(const brute *b, const uint32_t *q, size_t m, uint64_t *records, int64_t *ids, size_t cap, size_t *nids) {
    uint64_t occ = 0;
    int64_t found[400];
    size_t nf = 0;
    for (size_t r = 0; r < b->n; r++) {
        int any = 0;
        for (uint32_t p = 0; p < b->len[r]; p++)
            if (occurs_at(b, r, p, q, m)) occ++, any = 1;
        if (any) found[nf++] = b->id[r];
    }
    /* sort, unique */
    for (size_t i = 1; i < nf; i++)
        for (size_t j = i; j > 0 && found[j - 1] > found[j]; j--) {
            int64_t x = found[j];
            found[j] = found[j - 1];
            found[j - 1] = x;
        }
    size_t d = 0;
    for (size_t i = 0; i < nf; i++)
        if (!d || found[d - 1] != found[i]) found[d++] = found[i];
    *records = d;
    *nids = d < cap ? d : cap;
    for (size_t i = 0; i < *nids; i++) ids[i] = found[i];
    return occ;
}

static uint32_t brute_longest(const brute *b, const uint32_t *q, size_t m) {
    uint32_t best = 0;
    for (size_t r = 0; r < b->n; r++)
        for (uint32_t p = 0; p < b->len[r]; p++) {
            uint32_t d = 0;
            while (d < m && p + d < b->len[r] && b->w[r][p + d] == q[d]) d++;
            if (d > best) best = d;
        }
    return best;
}

static void brute_free(brute *b) {
    for (size_t r = 0; r < b->n; r++) free(b->w[r]);
    b->n = 0;
}

/* A random query: a piece of a record (often), random words (sometimes unknown ones). */
static size_t random_query(const brute *b, uint32_t vocab, uint32_t *q, size_t maxm) {
    size_t m = 1 + below((uint32_t)maxm);
    if (b->n && below(3)) {
        size_t r = below((uint32_t)b->n);
        if (b->len[r]) {
            uint32_t p = below(b->len[r]);
            size_t i = 0;
            for (; i < m && p + i < b->len[r]; i++) q[i] = b->w[r][p + i];
            if (i < m && below(2)) m = i; /* sometimes run past the record's end */
            for (; i < m; i++) q[i] = SPAN_FIRST_WORD + below(vocab);
            if (below(4) == 0) q[below((uint32_t)m)] = SPAN_FIRST_WORD + below(vocab); /* a near miss */
            return m;
        }
    }
    for (size_t i = 0; i < m; i++) q[i] = below(10) ? SPAN_FIRST_WORD + below(vocab) : SPAN_UNKNOWN;
    return m;
}

static int compare_find(const span_index *x, const brute *b, const uint32_t *q, size_t m) {
    span_hits h;
    uint64_t records;
    int64_t ids[400];
    size_t nids, cap = 1 + below(5);
    uint64_t occ = brute_find(b, q, m, &records, ids, cap, &nids);
    if (span_index_find(x, q, m, cap, &h, NULL)) return 0;
    int ok = h.occurrences == occ && h.records == records && h.nids == nids;
    for (size_t i = 0; ok && i < nids; i++) ok = h.ids[i] == ids[i];
    free(h.ids);
    return ok;
}

static int compare_longest(const span_index *x, const brute *b, const uint32_t *q, size_t m) {
    uint32_t ms[64];
    span_index_longest(x, q, m, ms);
    for (size_t i = 0; i < m; i++)
        if (ms[i] != brute_longest(b, q + i, m - i)) return 0;
    return 1;
}

static void corpus_against_brute_force(void) {
    for (int trial = 0; trial < (test_slow_tool() ? 60 : 300); trial++) {
        brute b = {0};
        uint32_t vocab = 1 + below(trial % 3 == 0 ? 3 : 12);
        b.n = below(30);
        span_record_tokens recs[400];
        for (size_t r = 0; r < b.n; r++) {
            uint32_t len = below(5) == 0 ? below(2) : below(40); /* empty and one-token records often */
            b.id[r] = 1000 + (int64_t)below(50);                 /* ids repeat: the index does not care */
            b.len[r] = len;
            b.w[r] = malloc((len + 1) * sizeof(uint32_t));
            for (uint32_t i = 0; i < len; i++) b.w[r][i] = SPAN_FIRST_WORD + below(vocab);
            if (len > 8 && below(2)) memcpy(b.w[r] + len / 2, b.w[r], len / 2 * sizeof(uint32_t) - sizeof(uint32_t)); /* repeats */
            recs[r] = (span_record_tokens){.record_id = b.id[r], .ids = b.w[r], .n = len};
        }
        span_index *x = span_index_new(); /* ids must be in its vocabulary: intern the words first */
        for (uint32_t w = 0; w < vocab; w++) {
            char word[16];
            snprintf(word, sizeof word, "w%u", w);
            CHECK(span_vocab_intern(span_index_vocab(x), word, strlen(word)) == SPAN_FIRST_WORD + w);
        }
        for (size_t r = 0; r < b.n; r++) {
            acc_err e = {0};
            CHECK_MSG(span_index_add_ids(x, recs[r].record_id, recs[r].ids, recs[r].n, &e) == ACC_OK, "%s", e.msg);
        }
        CHECK(span_index_commit(x, NULL) == ACC_OK);
        CHECK(span_index_records(x) == b.n);
        for (int qn = 0; qn < 40; qn++) {
            uint32_t q[64];
            size_t m = random_query(&b, vocab, q, 12);
            CHECK_MSG(compare_find(x, &b, q, m), "trial %d query %d (m=%zu)", trial, qn, m);
            CHECK_MSG(compare_longest(x, &b, q, m), "trial %d query %d (m=%zu)", trial, qn, m);
        }
        span_index_free(x);
        brute_free(&b);
    }
}

/* span_corpus_find's one pass narrows the upper bound's search with what the lower one compared,
 * common prefixes included: on texts of two or three words in long repeated runs (common
 * prefixes of dozens of tokens), every range is checked against a scan of the text, and the
 * ranks just outside it. */
static void corpus_find_on_long_repeats(void) {
    for (int trial = 0; trial < (test_slow_tool() ? 40 : 200); trial++) {
        uint32_t vocab = 1 + below(3), nrec = 1 + below(6);
        span_record_tokens recs[6];
        uint32_t *w[6];
        for (uint32_t r = 0; r < nrec; r++) {
            uint32_t len = below(200), period = 1 + below(7);
            w[r] = malloc((len + 1) * sizeof *w[r]);
            for (uint32_t i = 0; i < len; i++)
                w[r][i] = i >= period && below(20) ? w[r][i - period] : SPAN_FIRST_WORD + below(vocab);
            recs[r] = (span_record_tokens){.record_id = r, .ids = w[r], .n = len};
        }
        span_corpus *c;
        CHECK(span_corpus_build(recs, nrec, SPAN_FIRST_WORD + vocab, &c, NULL) == ACC_OK);
        uint32_t len = span_corpus_length(c);
        for (int qn = 0; qn < 50; qn++) {
            uint32_t q[48], m = 1 + below(40), r = below(nrec);
            for (uint32_t i = 0; i < m; i++) /* mostly a piece of a record, sometimes past its end */
                q[i] = recs[r].n && i < recs[r].n ? w[r][(recs[r].n - 1 - below(recs[r].n) / 2 + i) % recs[r].n]
                                                  : SPAN_FIRST_WORD + below(vocab);
            if (below(3) == 0) q[below(m)] = SPAN_FIRST_WORD + below(vocab);
            uint32_t lo, hi, occ = 0;
            span_corpus_find(c, q, m, &lo, &hi);
            for (uint32_t p = 0; p + m <= len; p++) {
                uint32_t i = 0;
                while (i < m && span_corpus_token(c, p + i) == q[i]) i++;
                occ += i == m;
            }
            CHECK_MSG(hi - lo == occ, "trial %d query %d (m=%u): [%u, %u) for %u occurrences", trial, qn, m, lo, hi, occ);
            for (uint32_t k = lo; k < hi; k++) {
                uint32_t p = span_corpus_suffix(c, k), i = 0;
                while (i < m && span_corpus_token(c, p + i) == q[i]) i++;
                CHECK_MSG(i == m, "trial %d query %d: rank %u does not start with the query", trial, qn, k);
                if (k != lo && k + 1 != hi && k != lo + (hi - lo) / 2 && (k * 2654435761u) >> 29) continue; /* not below(): later tests' draws stay as they were */
                uint32_t alo, ahi; /* the same range found around its ends, middle and some other ranks */
                span_corpus_find_around(c, k, m, &alo, &ahi);
                CHECK_MSG(alo == lo && ahi == hi, "trial %d query %d: around rank %u [%u, %u), found [%u, %u)", trial, qn,
                          k, alo, ahi, lo, hi);
            }
        }
        span_corpus_free(c);
        for (uint32_t r = 0; r < nrec; r++) free(w[r]);
    }
}

static void index_incremental_against_brute_force(void) {
    for (int trial = 0; trial < (test_slow_tool() ? 4 : 16); trial++) {
        brute b = {0};
        uint32_t vocab = 2 + below(6);
        span_index *x = span_index_new();
        size_t total = 60 + below(240);
        uint64_t len_sum = 0;
        while (b.n < total) {
            size_t batch = 1 + (below(4) == 0 ? below(40) : below(3));
            for (size_t j = 0; j < batch && b.n < total; j++) {
                size_t r = b.n++;
                uint32_t len = below(6) == 0 ? below(2) : below(25);
                b.id[r] = (int64_t)r + 1;
                b.len[r] = len;
                b.w[r] = malloc((len + 1) * sizeof(uint32_t));
                /* Written as text with random case and punctuation: the index tokenizes it. */
                char text[1024];
                size_t o = 0;
                for (uint32_t i = 0; i < len; i++) {
                    uint32_t w = below(vocab);
                    static const char *seps[] = {" ", ", ", "  ", "\n", " -- ", "! ", "; ", " (", ") "};
                    static const char *forms[][3] = {{"alpha", "Alpha", "ALPHA"}, {"beta", "Beta", "BETA"},
                                                     {"gamma", "Gamma", "GAMMA"}, {"delta", "Delta", "DELTA"},
                                                     {"eps", "Eps", "EPS"}, {"zeta", "Zeta", "ZETA"},
                                                     {"eta", "Eta", "ETA"}, {"theta", "Theta", "THETA"}};
                    o += (size_t)snprintf(text + o, sizeof text - o, "%s%s", i ? seps[below(9)] : "", forms[w][below(3)]);
                    b.w[r][i] = w; /* vocabulary ids are fixed below by interning in this order */
                }
                CHECK(span_index_add(x, b.id[r], text, o, NULL) == ACC_OK);
                len_sum += len + 1;
            }
            if (below(3) || b.n == total) {
                CHECK(span_index_commit(x, NULL) == ACC_OK);
                /* Sizes at least double going back, so few corpora. */
                size_t nc = span_index_corpora(x);
                for (size_t i = 1; i < nc; i++)
                    CHECK(span_corpus_length(span_index_corpus(x, i - 1)) >= 2 * span_corpus_length(span_index_corpus(x, i)));
                CHECK(nc <= 1 + 64 - (size_t)__builtin_clzll(len_sum + 1));
            }
            if (span_index_pending(x) == 0) {
                /* Map brute-force word numbers to the index's ids (first-seen order). */
                brute mapped = b;
                uint32_t idmap[8];
                for (uint32_t w = 0; w < 8; w++) {
                    static const char *names[] = {"alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"};
                    idmap[w] = span_vocab_find(span_index_vocab(x), names[w], strlen(names[w]));
                }
                for (size_t r = 0; r < b.n; r++) {
                    mapped.w[r] = malloc((b.len[r] + 1) * sizeof(uint32_t));
                    for (uint32_t i = 0; i < b.len[r]; i++) mapped.w[r][i] = idmap[b.w[r][i]];
                }
                for (int qn = 0; qn < 12; qn++) {
                    uint32_t q[64];
                    size_t m = random_query(&mapped, span_vocab_limit(span_index_vocab(x)) - SPAN_FIRST_WORD + 1, q, 10);
                    CHECK_MSG(compare_find(x, &mapped, q, m), "trial %d after %zu records", trial, b.n);
                    CHECK_MSG(compare_longest(x, &mapped, q, m), "trial %d after %zu records", trial, b.n);
                }
                for (size_t r = 0; r < b.n; r++) free(mapped.w[r]);
            }
        }
        CHECK(span_index_records(x) == total);
        CHECK(span_index_compact(x, NULL) == ACC_OK && span_index_corpora(x) == 1 && span_index_records(x) == total);
        span_index_free(x);
        brute_free(&b);
    }
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

/* Rewrites the checksum of saved bytes after a deliberate change. */
static void reseal(acc_buf *b) {
    uint64_t h = fnv1a((const uint8_t *)b->data, b->len - 8);
    for (int i = 0; i < 8; i++) b->data[b->len - 8 + i] = (char)(h >> (8 * i));
}

static void index_saved_and_loaded(void) {
    span_index *x = span_index_new();
    static const char *words[] = {"red", "green", "blue", "Cyan", "magenta", "yellow", "black", "white"};
    char text[512];
    for (int r = 0; r < 300; r++) {
        size_t o = 0, n = below(30);
        for (size_t i = 0; i < n; i++) o += (size_t)snprintf(text + o, sizeof text - o, "%s%s", i ? ", " : "", words[below(8)]);
        CHECK(span_index_add(x, 10 + r, text, o, NULL) == ACC_OK);
        if (below(10) == 0) CHECK(span_index_commit(x, NULL) == ACC_OK);
    }
    acc_buf b = ACC_BUF_INIT;
    acc_err err = {0};
    CHECK(span_index_save(x, &b, &err) == ACC_EMISUSE); /* queued records: commit first */
    CHECK(span_index_commit(x, NULL) == ACC_OK);
    acc_buf_reset(&b);
    CHECK(span_index_save(x, &b, &err) == ACC_OK);
    span_index *y = NULL;
    CHECK_MSG(span_index_load(b.data, b.len, &y, &err) == ACC_OK, "%s", err.msg);
    CHECK(y && span_index_records(y) == span_index_records(x) && span_index_tokens(y) == span_index_tokens(x) &&
          span_index_corpora(y) == span_index_corpora(x));
    for (int qn = 0; y && qn < 200; qn++) {
        uint32_t q[12], msx[12], msy[12];
        size_t m = 1 + below(12);
        for (size_t i = 0; i < m; i++) q[i] = SPAN_FIRST_WORD + below(9);
        span_index_longest(x, q, m, msx);
        span_index_longest(y, q, m, msy);
        CHECK(memcmp(msx, msy, m * sizeof *msx) == 0);
        span_hits hx, hy;
        size_t fm = 1 + below((uint32_t)m);
        CHECK(span_index_find(x, q, fm, 5, &hx, NULL) == ACC_OK && span_index_find(y, q, fm, 5, &hy, NULL) == ACC_OK);
        CHECK(hx.occurrences == hy.occurrences && hx.records == hy.records && hx.nids == hy.nids &&
              (hx.nids == 0 || memcmp(hx.ids, hy.ids, hx.nids * sizeof *hx.ids) == 0));
        free(hx.ids);
        free(hy.ids);
    }
    /* It goes on growing like the original. */
    CHECK(y && span_index_add(y, 99999, "red green blue", 14, NULL) == ACC_OK && span_index_commit(y, NULL) == ACC_OK);
    CHECK(y && span_index_records(y) == span_index_records(x) + 1);
    span_index_free(y);
    /* Damage: a flipped byte fails the checksum; resealed nonsense fails the structure checks. */
    acc_buf c = ACC_BUF_INIT;
    acc_buf_append(&c, b.data, b.len);
    c.data[c.len / 2] ^= 0x40;
    CHECK(span_index_load(c.data, c.len, &y, &err) == ACC_ECORRUPT && strstr(err.msg, "checksum") && y == NULL);
    reseal(&c);
    int rc = span_index_load(c.data, c.len, &y, &err);
    CHECK_MSG(rc == ACC_ECORRUPT || rc == ACC_OK, "rc %d", rc); /* a flipped byte in a token may still be a valid word */
    span_index_free(y);
    for (int trial = 0; trial < 300; trial++) { /* random damage, resealed: never a crash */
        acc_buf_reset(&c);
        acc_buf_append(&c, b.data, b.len);
        size_t at = 8 + below((uint32_t)(c.len - 16));
        c.data[at] = (char)test_rand();
        reseal(&c);
        y = NULL;
        rc = span_index_load(c.data, c.len, &y, NULL);
        CHECK(rc == ACC_ECORRUPT || rc == ACC_OK);
        if (y) { /* whatever loaded answers queries inside its arrays */
            uint32_t q[3] = {SPAN_FIRST_WORD, SPAN_FIRST_WORD + 1, SPAN_FIRST_WORD + 2}, ms[3];
            span_index_longest(y, q, 3, ms);
        }
        span_index_free(y);
    }
    CHECK(span_index_load(b.data, b.len - 1, &y, &err) == ACC_ECORRUPT);
    CHECK(span_index_load("ACCSPAN", 7, &y, &err) == ACC_ECORRUPT);
    acc_buf_free(&c);
    acc_buf_free(&b);
    span_index_free(x);
}

/* ---- attribution ---- */

static span_index *index_of(const int64_t *ids, const char *const *texts, size_t n) {
    span_index *x = span_index_new();
    for (size_t i = 0; i < n; i++) CHECK(span_index_add(x, ids[i], texts[i], strlen(texts[i]), NULL) == ACC_OK);
    CHECK(span_index_commit(x, NULL) == ACC_OK);
    return x;
}

static const char *const fruit[] = {
    "Apples grow on trees in temperate orchards across the northern hemisphere every year.",
    "Bananas are berries, botanically speaking, while strawberries are not berries at all.",
    "Cherries ripen early in the summer and must be picked by hand within a few days.",
    "Dates grow on palm trees in hot and dry climates of the Middle East and North Africa.",
    "",
    "Figs",
};
static const int64_t fruit_ids[] = {101, 102, 103, 104, 105, 106};

static int attribute1(const span_index *x, const char *out, uint32_t k, span_attribution *a) {
    const span_index *xs[1] = {x};
    span_attr_options o = {.min_tokens = k};
    return span_attribute(xs, 1, out, strlen(out), &o, a, NULL);
}

static void attribution_exact_copy(void) {
    span_index *x = index_of(fruit_ids, fruit, 6);
    const char *out = "Here is a fact. Apples grow on trees in temperate orchards across the northern hemisphere. Enjoy!";
    span_attribution a;
    CHECK(attribute1(x, out, 8, &a) == ACC_OK);
    CHECK(a.nspans == 1);
    if (a.nspans == 1) {
        const span_match *m = &a.spans[0];
        CHECK(m->ntokens == 11 && m->token == 4);
        const char *want = "Apples grow on trees in temperate orchards across the northern hemisphere";
        CHECK(m->byte_end - m->byte_start == strlen(want) && memcmp(out + m->byte_start, want, strlen(want)) == 0);
        CHECK(m->nsources == 1 && m->sources[0].record_id == 101 && m->sources[0].index == 0);
        CHECK(m->occurrences == 1 && m->records == 1);
    }
    CHECK(a.ncredits == 1 && a.credits[0].source.record_id == 101 && a.credits[0].weight == 11 * SPAN_SHARE_SCALE);
    CHECK(a.total_weight == 11 * SPAN_SHARE_SCALE && a.span_tokens == 11);
    span_attribution_free(&a);
    span_index_free(x);
}

static void attribution_light_edits(void) {
    span_index *x = index_of(fruit_ids, fruit, 6);
    const char *edited[] = {
        "APPLES grow on  trees, in temperate-orchards across THE northern hemisphere!",
        "apples\tgrow\non trees in Temperate Orchards... across the Northern Hemisphere every year",
        "\xe2\x80\x9c\x41pples grow on tr\xe2\x80\x8b\x65\x65s in t\xc3\xa9mperate orchards across the northern hemisphere\xe2\x80\x9d",
    };
    const uint32_t want_len[] = {11, 13, 11};
    for (int i = 0; i < 3; i++) {
        span_attribution a;
        CHECK(attribute1(x, edited[i], 8, &a) == ACC_OK);
        CHECK_MSG(a.nspans == 1 && a.spans[0].ntokens == want_len[i] && a.ncredits == 1 &&
                      a.credits[0].source.record_id == 101,
                  "edit %d: %zu spans", i, a.nspans);
        /* The evidence is the output's own text, from its first copied word to its last. */
        if (a.nspans == 1) CHECK(a.spans[0].byte_start <= 3 && edited[i][a.spans[0].byte_end - 1] != ' ');
        span_attribution_free(&a);
    }
    span_index_free(x);
}

static void attribution_novel_and_near_miss(void) {
    span_index *x = index_of(fruit_ids, fruit, 6);
    span_attribution a;
    CHECK(attribute1(x, "Nothing in this sentence was copied from any record at all, truly.", 8, &a) == ACC_OK);
    CHECK(a.nspans == 0 && a.ncredits == 0 && a.total_weight == 0 && a.ntokens == 12);
    span_attribution_free(&a);
    /* Common words everywhere, in an order no record has. */
    CHECK(attribute1(x, "the trees are in the summer and the days are on the hand", 8, &a) == ACC_OK);
    CHECK(a.nspans == 0);
    span_attribution_free(&a);
    /* Seven copied tokens, then a change: below k = 8 nothing counts; at k = 7 it does. */
    const char *near = "Bananas are berries, botanically speaking, while strawberries grow wild.";
    CHECK(attribute1(x, near, 8, &a) == ACC_OK && a.nspans == 0 && a.ncredits == 0);
    span_attribution_free(&a);
    CHECK(attribute1(x, near, 7, &a) == ACC_OK && a.nspans == 1 && a.spans[0].ntokens == 7);
    span_attribution_free(&a);
    /* Two runs of 7 separated by one changed word: still nothing at k = 8. */
    CHECK(attribute1(x, "Cherries ripen early in the summer and MUST be picked by hand within a few", 8, &a) == ACC_OK);
    CHECK(a.nspans == 1 && a.spans[0].ntokens == 15); /* a case change is no change */
    span_attribution_free(&a);
    CHECK(attribute1(x, "Cherries ripen early in the summer and might be picked by hand within a", 8, &a) == ACC_OK);
    CHECK(a.nspans == 0);
    span_attribution_free(&a);
    /* Empty output, and an output shorter than k. */
    CHECK(attribute1(x, "", 8, &a) == ACC_OK && a.nspans == 0 && a.ntokens == 0);
    span_attribution_free(&a);
    CHECK(attribute1(x, "Apples grow on trees", 8, &a) == ACC_OK && a.nspans == 0);
    span_attribution_free(&a);
    span_index_free(x);
}

static void attribution_shared_and_across_datanets(void) {
    const char *recs[] = {
        "Preface. The committee approved the budget for the next fiscal year without debate. Done.",
        "Minutes: the committee approved the budget for the next fiscal year without debate, then left.",
        "Minutes: THE COMMITTEE APPROVED THE BUDGET FOR THE NEXT FISCAL YEAR WITHOUT DEBATE again.",
    };
    const int64_t ids[] = {7, 3, 5};
    span_index *x = index_of(ids, recs, 3);
    const char *other[] = {"Weather: rain is expected over the northern hills on Tuesday and Wednesday evening."};
    const int64_t other_ids[] = {9};
    span_index *y = index_of(other_ids, other, 1);
    const char *out = "The committee approved the budget for the next fiscal year without debate; "
                      "rain is expected over the northern hills on Tuesday.";
    const span_index *xs[2] = {x, y};
    span_attribution a;
    CHECK(span_attribute(xs, 2, out, strlen(out), NULL, &a, NULL) == ACC_OK);
    CHECK(a.nspans == 2);
    if (a.nspans == 2) {
        /* 12 tokens in three records: 12 x SCALE split three ways, exactly. */
        CHECK(a.spans[0].ntokens == 12 && a.spans[0].records == 3 && a.spans[0].nsources == 3);
        CHECK(a.spans[0].sources[0].record_id == 3 && a.spans[0].sources[1].record_id == 5 && a.spans[0].sources[2].record_id == 7);
        CHECK(a.spans[1].ntokens == 9 && a.spans[1].nsources == 1 && a.spans[1].sources[0].index == 1 &&
              a.spans[1].sources[0].record_id == 9);
    }
    CHECK(a.ncredits == 4);
    uint64_t sum = 0;
    for (size_t i = 0; i < a.ncredits; i++) sum += a.credits[i].weight;
    CHECK(sum == a.total_weight && a.total_weight == 21 * SPAN_SHARE_SCALE);
    CHECK(a.covered_tokens == 21 && a.span_tokens == 21 && a.ntokens == 21);
    if (a.ncredits == 4) {
        CHECK(a.credits[0].source.record_id == 3 && a.credits[0].weight == 4 * SPAN_SHARE_SCALE);
        CHECK(a.credits[3].source.record_id == 9 && a.credits[3].weight == 9 * SPAN_SHARE_SCALE);
    }
    span_attribution_free(&a);
    /* With a cap of two records per span, the two earliest get it all. */
    span_attr_options o = {.record_cap = 2};
    CHECK(span_attribute(xs, 1, out, strlen(out), &o, &a, NULL) == ACC_OK);
    CHECK(a.nspans == 1 && a.spans[0].records == 3 && a.spans[0].nsources == 2 && a.ncredits == 2);
    if (a.ncredits == 2) CHECK(a.credits[0].source.record_id == 3 && a.credits[1].source.record_id == 5 &&
                               a.credits[0].weight == 6 * SPAN_SHARE_SCALE);
    span_attribution_free(&a);
    /* Up to 16 ways a span's weight divides exactly (SCALE = lcm(1..16)); 17 ways leaves a
     * remainder, given one unit each to the earliest records. */
    const char *same = "alpha beta gamma delta epsilon zeta eta theta";
    span_index *z = span_index_new();
    for (int i = 0; i < 17; i++) {
        char r[128];
        snprintf(r, sizeof r, "record %d: %s.", i, same);
        CHECK(span_index_add(z, 100 + i, r, strlen(r), NULL) == ACC_OK);
    }
    CHECK(span_index_commit(z, NULL) == ACC_OK);
    const span_index *zs[1] = {z};
    o.record_cap = 100;
    CHECK(span_attribute(zs, 1, same, strlen(same), &o, &a, NULL) == ACC_OK);
    CHECK(a.nspans == 1 && a.ncredits == 17);
    uint64_t w = 8 * SPAN_SHARE_SCALE, each = w / 17, rem = w % 17;
    sum = 0;
    for (size_t i = 0; i < a.ncredits; i++) {
        CHECK(a.credits[i].weight == each + (i < rem));
        sum += a.credits[i].weight;
    }
    CHECK(rem != 0 && sum == w);
    span_attribution_free(&a);
    span_index_free(x);
    span_index_free(y);
    span_index_free(z);
}

static void attribution_json_evidence(void) {
    span_index *x = index_of(fruit_ids, fruit, 6);
    const char *out = "\xe2\x80\x9c\x44\x61tes grow on palm trees in hot and dry climates\xe2\x80\x9d, she said.";
    span_attribution a;
    CHECK(attribute1(x, out, 8, &a) == ACC_OK && a.nspans == 1);
    acc_buf b = ACC_BUF_INIT;
    span_attribution_json(&a, out, 8, &b);
    CHECK(!acc_buf_failed(&b));
    json_t *j = json_loads(b.data ? b.data : "", 0, NULL);
    CHECK(j != NULL);
    json_t *span = json_array_get(json_object_get(j, "spans"), 0);
    CHECK_STREQ(json_string_value(json_object_get(span, "text")), "Dates grow on palm trees in hot and dry climates");
    CHECK(json_integer_value(json_object_get(span, "ntokens")) == 10);
    CHECK(json_integer_value(json_object_get(json_array_get(json_object_get(span, "sources"), 0), "record")) == 104);
    json_decref(j);
    acc_buf_free(&b);
    span_attribution_free(&a);
    span_index_free(x);
}

/* Random corpora, outputs spliced from record pieces with light edits and novel words: every
 * maximal span of >= k tokens found, and only those, with the right records. */
static void attribution_against_brute_force(void) {
    static const char *words[] = {"ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay"};
    for (int trial = 0; trial < 60; trial++) {
        uint32_t vocab = 3 + below(8), k = 2 + below(6);
        size_t nidx = 1 + below(2);
        span_index *xs[2];
        brute bs[2] = {{0}, {0}};
        for (size_t d = 0; d < nidx; d++) {
            xs[d] = span_index_new();
            bs[d].n = 1 + below(20);
            for (size_t r = 0; r < bs[d].n; r++) {
                uint32_t len = below(30);
                bs[d].id[r] = (int64_t)(d * 1000 + below(900));
                bs[d].len[r] = len;
                bs[d].w[r] = malloc((len + 1) * sizeof(uint32_t));
                char text[512];
                size_t o = 0;
                for (uint32_t i = 0; i < len; i++) {
                    bs[d].w[r][i] = below(vocab);
                    o += (size_t)snprintf(text + o, sizeof text - o, "%s%s", i ? " " : "", words[bs[d].w[r][i]]);
                }
                CHECK(span_index_add(xs[d], bs[d].id[r], text, o, NULL) == ACC_OK);
                if (below(4) == 0) CHECK(span_index_commit(xs[d], NULL) == ACC_OK);
            }
            CHECK(span_index_commit(xs[d], NULL) == ACC_OK);
        }
        /* The output: pieces of records and random words, written with edits. */
        uint32_t q[200];
        size_t m = 0;
        while (m < 60) {
            size_t d = below((uint32_t)nidx), r = below((uint32_t)bs[d].n);
            if (below(3) && bs[d].len[r]) {
                uint32_t p = below(bs[d].len[r]), l = 1 + below(12);
                for (uint32_t i = 0; i < l && p + i < bs[d].len[r] && m < 200; i++) q[m++] = bs[d].w[r][p + i];
            } else {
                q[m++] = below(10);
            }
        }
        char out[4096];
        size_t o = 0;
        for (size_t i = 0; i < m; i++) {
            static const char *seps[] = {" ", ", ", ". ", "\n", " - "};
            const char *w = words[q[i]];
            o += (size_t)snprintf(out + o, sizeof out - o, "%s", i ? seps[below(5)] : "");
            if (below(4) == 0) o += (size_t)snprintf(out + o, sizeof out - o, "%c%s", w[0] - 32, w + 1);
            else o += (size_t)snprintf(out + o, sizeof out - o, "%s", w);
        }
        span_attr_options opts = {.min_tokens = k, .record_cap = 1 + below(4)};
        span_attribution a;
        const span_index *cx[2] = {xs[0], nidx > 1 ? xs[1] : NULL};
        CHECK(span_attribute(cx, nidx, out, o, &opts, &a, NULL) == ACC_OK);
        CHECK(a.ntokens == m);
        /* Brute force: the longest match at each position, in any index. */
        uint32_t ms[200];
        for (size_t i = 0; i < m; i++) {
            ms[i] = 0;
            for (size_t d = 0; d < nidx; d++) {
                uint32_t l = brute_longest(&bs[d], q + i, m - i);
                if (l > ms[i]) ms[i] = l;
            }
        }
        size_t s = 0;
        uint64_t sum = 0, covered = 0;
        uint8_t cov[200] = {0};
        for (size_t i = 0; i < m; i++) {
            if (ms[i] < k || (i > 0 && ms[i - 1] > ms[i])) continue;
            for (uint32_t j = 0; j < ms[i]; j++) cov[i + j] = 1;
            /* Maximal by definition: check it cannot grow left within any record. */
            CHECK_MSG(s < a.nspans && a.spans[s].token == i && a.spans[s].ntokens == ms[i], "trial %d: span at %zu", trial, i);
            if (s < a.nspans && a.spans[s].token == i) {
                int64_t all[1000];
                size_t nall = 0;
                uint64_t recs = 0;
                for (size_t d = 0; d < nidx; d++) {
                    uint64_t rc;
                    int64_t ids[400];
                    size_t nids;
                    brute_find(&bs[d], q + i, ms[i], &rc, ids, 400, &nids);
                    recs += rc;
                    for (size_t j = 0; j < nids; j++) all[nall++] = ids[j];
                }
                CHECK(a.spans[s].records == recs);
                /* all holds each index's ids ascending; the credited ones are the smallest overall */
                for (size_t x1 = 1; x1 < nall; x1++)
                    for (size_t x2 = x1; x2 > 0 && all[x2 - 1] > all[x2]; x2--) {
                        int64_t t = all[x2];
                        all[x2] = all[x2 - 1];
                        all[x2 - 1] = t;
                    }
                size_t want = nall < opts.record_cap ? nall : opts.record_cap;
                CHECK(a.spans[s].nsources == want);
                for (size_t j = 0; j < want && j < a.spans[s].nsources; j++) CHECK(a.spans[s].sources[j].record_id == all[j]);
                sum += (uint64_t)ms[i] * SPAN_SHARE_SCALE;
            }
            s++;
        }
        CHECK_MSG(s == a.nspans, "trial %d: %zu spans, brute force %zu", trial, a.nspans, s);
        for (size_t i = 0; i < m; i++) covered += cov[i];
        CHECK(a.covered_tokens == covered);
        uint64_t csum = 0;
        for (size_t c = 0; c < a.ncredits; c++) csum += a.credits[c].weight;
        CHECK(csum == sum && a.total_weight == sum);
        /* Deterministic. */
        span_attribution a2;
        CHECK(span_attribute(cx, nidx, out, o, &opts, &a2, NULL) == ACC_OK);
        acc_buf j1 = ACC_BUF_INIT, j2 = ACC_BUF_INIT;
        span_attribution_json(&a, out, k, &j1);
        span_attribution_json(&a2, out, k, &j2);
        CHECK(j1.len == j2.len && memcmp(j1.data, j2.data, j1.len) == 0);
        acc_buf_free(&j1);
        acc_buf_free(&j2);
        span_attribution_free(&a2);
        span_attribution_free(&a);
        for (size_t d = 0; d < nidx; d++) {
            span_index_free(xs[d]);
            brute_free(&bs[d]);
        }
    }
}

int main(void) {
    RUN(tokenizer_words_and_offsets);
    RUN(tokenizer_ignores_light_edits);
    RUN(suffix_array_against_naive_sort);
    RUN(corpus_against_brute_force);
    RUN(corpus_find_on_long_repeats);
    RUN(index_incremental_against_brute_force);
    RUN(index_saved_and_loaded);
    RUN(attribution_exact_copy);
    RUN(attribution_light_edits);
    RUN(attribution_novel_and_near_miss);
    RUN(attribution_shared_and_across_datanets);
    RUN(attribution_json_evidence);
    RUN(attribution_against_brute_force);
    return check_finish("span");
}
