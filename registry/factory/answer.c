/*
 * answer.c: the extractive answerer: the records' sentences that best match a question.
 *
 * BM25 (Robertson and Zaragoza; k1 = 1.2, b = 0.75) over sentences rather than whole records, so
 * the answer is the contributor's sentence that says it, not their whole record. Scores are
 * integers: each word's idf is rounded to 2^-20 once, and the term-frequency part is an exact
 * integer fraction of it, so the ranking cannot depend on floating-point contraction or the order
 * of additions; ties go to the earlier sentence. A sentence whose words are exactly those of one
 * already chosen (the same sentence in two records) is not repeated.
 *
 * Each word's postings are in sentence order, so the scores are summed by a k-way merge of the
 * question's words (a heap of cursors) while a short list keeps the best few: no array of every
 * matching sentence is built or sorted.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "registry/factory/factory_internal.h"

/* One query word's postings, walked in sentence order (a k-way merge sums them per sentence). */
typedef struct cursor {
    const factory_posting *p, *end;
    uint64_t idf; /* idf x 2^20 */
} cursor;

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Restores the min-heap on the cursors' current sentence from slot i down. */
static void sift(cursor *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].p->sent < h[m].p->sent) m = l;
        if (r < n && h[r].p->sent < h[m].p->sent) m = r;
        if (m == i) return;
        cursor t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* The best-scoring sentences kept while scanning: more than are returned, so that duplicates can
 * be passed over. */
#define CANDIDATES (FACTORY_ANSWER_SENTENCES * 4)

typedef struct scored {
    uint32_t sent;
    uint64_t score;
} scored;

static bool same_words(const factory_model *m, const factory_sentence *a, const factory_sentence *b) {
    if (a->n != b->n) return false;
    for (uint32_t i = 0; i < a->n; i++)
        if (span_corpus_token(m->corpus, a->first + i) != span_corpus_token(m->corpus, b->first + i)) return false;
    return true;
}

int factory_answer(const factory_model *m, const char *question, size_t len, uint32_t max_tokens, factory_output *out,
                   acc_err *err) {
    memset(out, 0, sizeof *out);
    if (max_tokens < 1 || max_tokens > FACTORY_MAX_TOKENS)
        return acc_fail(err, ACC_EINVAL, "max_tokens: %u is not 1..%d", max_tokens, FACTORY_MAX_TOKENS);
    span_tokens tk = SPAN_TOKENS_INIT;
    int rc = span_tokenize(question, len, &tk, err);
    if (rc) return rc;
    out->prompt_tokens = (uint32_t)tk.n;
    uint32_t *q = malloc((tk.n + 1) * sizeof *q);
    cursor *heap = malloc((tk.n + 1) * sizeof *heap);
    acc_buf b = ACC_BUF_INIT;
    if (!q || !heap) goto nomem;
    span_vocab_find_ids(m->vocab, &tk, q);
    qsort(q, tk.n, sizeof *q, cmp_u32);

    /* A cursor per distinct known word of the question. */
    const uint64_t A = m->avg_len_milli ? m->avg_len_milli : 1;
    const double N = (double)m->nsent;
    size_t nc = 0;
    for (size_t i = 0; i < tk.n; i++) {
        uint32_t w = q[i];
        if (w == SPAN_UNKNOWN || (i && q[i - 1] == w)) continue;
        uint32_t a = m->post_off[w - SPAN_FIRST_WORD], e = m->post_off[w - SPAN_FIRST_WORD + 1];
        double df = (double)(e - a);
        uint64_t idf = (uint64_t)(log(1.0 + (N - df + 0.5) / (df + 0.5)) * 1048576.0);
        if (idf && a < e) heap[nc++] = (cursor){.p = m->post + a, .end = m->post + e, .idf = idf};
    }
    span_tokens_free(&tk);
    for (size_t i = nc; i-- > 0;) sift(heap, nc, i);
    /* Merge: each sentence's score summed as it comes, in sentence order; keep the best few. */
    scored best[CANDIDATES];
    size_t nbest = 0;
    while (nc) {
        uint32_t sent = heap[0].p->sent;
        uint64_t score = 0, dl = m->sent[sent].n;
        while (nc && heap[0].p->sent == sent) {
            uint64_t tf = heap[0].p->tf;
            /* idf x tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)), with avgdl = A / 1000:
             * = idf x 22 A tf / (10 A tf + 3 A + 9000 dl) */
            unsigned __int128 num = (unsigned __int128)heap[0].idf * 22 * A * tf;
            unsigned __int128 den = (unsigned __int128)10 * A * tf + (unsigned __int128)3 * A + (unsigned __int128)9000 * dl;
            score += (uint64_t)(num / den);
            if (++heap[0].p == heap[0].end) heap[0] = heap[--nc];
            sift(heap, nc, 0);
        }
        /* Insert by (score desc, sentence asc); sentences come ascending, so a tie ranks after. */
        size_t at = nbest;
        while (at > 0 && best[at - 1].score < score) at--;
        if (at == CANDIDATES) continue;
        if (nbest < CANDIDATES) nbest++;
        memmove(best + at + 1, best + at, (nbest - 1 - at) * sizeof *best);
        best[at] = (scored){.sent = sent, .score = score};
    }
    const factory_sentence *chosen[FACTORY_ANSWER_SENTENCES];
    size_t nchosen = 0;
    out->finish = FACTORY_FINISH_STOP;
    for (size_t i = 0; i < nbest && nchosen < FACTORY_ANSWER_SENTENCES; i++) {
        const factory_sentence *s = &m->sent[best[i].sent];
        bool dup = false;
        for (size_t j = 0; j < nchosen && !dup; j++) dup = same_words(m, chosen[j], s);
        if (dup) continue;
        const char *t = m->text + m->rec_off[s->rec];
        if (out->completion_tokens + s->n > max_tokens) {
            if (nchosen == 0) { /* the best sentence alone is too long: its first max_tokens words */
                acc_buf_append(&b, t + s->bstart, m->tend[s->first + max_tokens - 1] - s->bstart);
                out->completion_tokens = max_tokens;
                out->finish = FACTORY_FINISH_LENGTH;
            }
            break;
        }
        if (nchosen) acc_buf_putc(&b, ' ');
        acc_buf_append(&b, t + s->bstart, s->bend - s->bstart);
        out->completion_tokens += s->n;
        chosen[nchosen++] = s;
    }
    free(q);
    free(heap);
    out->text = acc_buf_take(&b, &out->len);
    if (!out->text) return acc_fail(err, ACC_ENOMEM, "model: out of memory");
    return ACC_OK;
nomem:
    span_tokens_free(&tk);
    free(q);
    free(heap);
    acc_buf_free(&b);
    return acc_fail(err, ACC_ENOMEM, "model: out of memory");
}
