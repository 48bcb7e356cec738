/*
 * answer.c: the extractive answerer: the records' sentences that best match a question.
 *
 * BM25 (Robertson and Zaragoza; k1 = 1.2, b = 0.75) over sentences rather than whole records, so
 * the answer is the contributor's sentence that says it, not their whole record. Scores are
 * integers: each word's idf is rounded to 2^-20 once, and the term-frequency part is an exact
 * integer fraction of it, so the ranking cannot depend on floating-point contraction or the order
 * of additions; ties go to the earlier sentence. A sentence whose words are exactly those of one
 * already chosen (the same sentence in two records) is not repeated.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "registry/factory/factory_internal.h"

typedef struct part {
    uint32_t sent;
    uint64_t score;
} part;

static int cmp_part_sent(const void *a, const void *b) {
    const part *x = a, *y = b;
    return (x->sent > y->sent) - (x->sent < y->sent);
}

static int cmp_part_rank(const void *a, const void *b) {
    const part *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->sent > y->sent) - (x->sent < y->sent);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

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
    part *parts = NULL;
    size_t nparts = 0, cap = 0;
    acc_buf b = ACC_BUF_INIT;
    if (!q) goto nomem;
    span_vocab_find_ids(m->vocab, &tk, q);
    qsort(q, tk.n, sizeof *q, cmp_u32);

    /* Every (sentence, word score) of the question's distinct known words. */
    const uint64_t A = m->avg_len_milli ? m->avg_len_milli : 1;
    const double N = (double)m->nsent;
    for (size_t i = 0; i < tk.n; i++) {
        uint32_t w = q[i];
        if (w == SPAN_UNKNOWN || (i && q[i - 1] == w)) continue;
        uint32_t a = m->post_off[w - SPAN_FIRST_WORD], e = m->post_off[w - SPAN_FIRST_WORD + 1];
        double df = (double)(e - a);
        uint64_t idf = (uint64_t)(log(1.0 + (N - df + 0.5) / (df + 0.5)) * 1048576.0);
        if (!idf) continue;
        if (nparts + (e - a) > cap) {
            size_t c = cap ? cap : 256;
            while (c < nparts + (e - a)) c *= 2;
            part *p = realloc(parts, c * sizeof *p);
            if (!p) goto nomem;
            parts = p;
            cap = c;
        }
        for (uint32_t j = a; j < e; j++) {
            const factory_posting *ps = &m->post[j];
            uint64_t tf = ps->tf, dl = m->sent[ps->sent].n;
            /* idf x tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)), with avgdl = A / 1000:
             * = idf x 22 A tf / (10 A tf + 3 A + 9000 dl) */
            unsigned __int128 num = (unsigned __int128)idf * 22 * A * tf;
            unsigned __int128 den = (unsigned __int128)10 * A * tf + (unsigned __int128)3 * A + (unsigned __int128)9000 * dl;
            parts[nparts++] = (part){.sent = ps->sent, .score = (uint64_t)(num / den)};
        }
    }
    span_tokens_free(&tk);
    /* Sum per sentence, then rank. */
    if (nparts) {
        qsort(parts, nparts, sizeof *parts, cmp_part_sent);
        size_t d = 0;
        for (size_t i = 0; i < nparts; i++) {
            if (d && parts[d - 1].sent == parts[i].sent) parts[d - 1].score += parts[i].score;
            else parts[d++] = parts[i];
        }
        nparts = d;
        qsort(parts, nparts, sizeof *parts, cmp_part_rank);
    }
    const factory_sentence *chosen[FACTORY_ANSWER_SENTENCES];
    size_t nchosen = 0;
    out->finish = FACTORY_FINISH_STOP;
    for (size_t i = 0; i < nparts && nchosen < FACTORY_ANSWER_SENTENCES; i++) {
        const factory_sentence *s = &m->sent[parts[i].sent];
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
    free(parts);
    out->text = acc_buf_take(&b, &out->len);
    if (!out->text) return acc_fail(err, ACC_ENOMEM, "model: out of memory");
    return ACC_OK;
nomem:
    span_tokens_free(&tk);
    free(q);
    free(parts);
    acc_buf_free(&b);
    return acc_fail(err, ACC_ENOMEM, "model: out of memory");
}
