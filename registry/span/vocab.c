/*
 * vocab.c: normalised word <-> dense integer id.
 *
 * Suffix arrays compare integers, not strings, and a word's id is also its bucket in the suffix
 * array's first-token table, so ids are dense, in first-seen order (the same records added in the
 * same order always give the same ids: a rebuilt index or model is identical to the old one).
 * Open addressing over a power-of-two table, words back to back in one arena. A slot holds the
 * word's id and the top half of its hash, so a probe that meets another word is settled without
 * reading that word (interning a 10M-token datanet is mostly these lookups, mostly cache misses).
 */
#include <stdlib.h>
#include <string.h>

#include "registry/span/span_internal.h"

struct span_vocab {
    char *arena; /* every word's bytes, back to back */
    size_t arena_len, arena_cap;
    uint64_t *words; /* per id - SPAN_FIRST_WORD: offset << 24 | length (words are < 16 MiB) */
    size_t nwords, words_cap;
    uint64_t *table; /* hash >> 32 << 32 | id; 0 = empty slot */
    size_t mask;     /* table size - 1 */
};

#define MAX_WORD_LEN ((1u << 24) - 1)

static uint64_t hash_bytes(const char *p, size_t n) {
    /* FNV-1a, then a final mix (the table index takes the low bits). */
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 0x100000001b3u;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93u;
    h ^= h >> 32;
    return h;
}

span_vocab *span_vocab_new(void) {
    span_vocab *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->mask = 1023;
    v->table = calloc(v->mask + 1, sizeof *v->table);
    if (!v->table) {
        free(v);
        return NULL;
    }
    return v;
}

void span_vocab_free(span_vocab *v) {
    if (!v) return;
    free(v->arena);
    free(v->words);
    free(v->table);
    free(v);
}

static const char *word_bytes(const span_vocab *v, size_t i, size_t *len) {
    *len = (size_t)(v->words[i] & MAX_WORD_LEN);
    return v->arena + (v->words[i] >> 24);
}

/* The slot holding word, or the empty slot where it goes. */
static size_t slot_of(const span_vocab *v, const char *w, size_t n, uint64_t h) {
    size_t s = (size_t)h & v->mask;
    uint64_t tag = h >> 32 << 32;
    for (;;) {
        uint64_t e = v->table[s];
        if (!e) return s;
        if ((e >> 32 << 32) == tag) {
            size_t len;
            const char *p = word_bytes(v, (uint32_t)e - SPAN_FIRST_WORD, &len);
            if (len == n && memcmp(p, w, n) == 0) return s;
        }
        s = (s + 1) & v->mask;
    }
}

uint32_t span_vocab_find(const span_vocab *v, const char *word, size_t len) {
    if (len > MAX_WORD_LEN) return SPAN_UNKNOWN;
    uint64_t e = v->table[slot_of(v, word, len, hash_bytes(word, len))];
    return e ? (uint32_t)e : SPAN_UNKNOWN;
}

static int rehash(span_vocab *v) {
    size_t size = (v->mask + 1) * 2;
    uint64_t *t = calloc(size, sizeof *t);
    if (!t) return -1;
    free(v->table);
    v->table = t;
    v->mask = size - 1;
    for (size_t i = 0; i < v->nwords; i++) {
        size_t len;
        const char *p = word_bytes(v, i, &len);
        uint64_t h = hash_bytes(p, len);
        v->table[slot_of(v, p, len, h)] = h >> 32 << 32 | (uint32_t)(i + SPAN_FIRST_WORD);
    }
    return 0;
}

uint32_t span_vocab_intern(span_vocab *v, const char *word, size_t len) {
    if (len > MAX_WORD_LEN) return 0;
    uint64_t h = hash_bytes(word, len);
    size_t s = slot_of(v, word, len, h);
    if (v->table[s]) return (uint32_t)v->table[s];
    if (v->nwords >= (size_t)UINT32_MAX - SPAN_FIRST_WORD - 1) return 0;
    if ((v->nwords + 1) * 2 > v->mask + 1) { /* keep the table at most half full */
        if (rehash(v)) return 0;
        s = slot_of(v, word, len, h);
    }
    if (span_grow((void **)&v->arena, &v->arena_cap, v->arena_len + len, 1) ||
        span_grow((void **)&v->words, &v->words_cap, v->nwords + 1, sizeof *v->words))
        return 0;
    if (len) memcpy(v->arena + v->arena_len, word, len);
    v->words[v->nwords] = (uint64_t)v->arena_len << 24 | len;
    v->arena_len += len;
    uint32_t id = (uint32_t)(v->nwords++ + SPAN_FIRST_WORD);
    v->table[s] = h >> 32 << 32 | id;
    return id;
}

const char *span_vocab_word(const span_vocab *v, uint32_t id, size_t *len) {
    if (id < SPAN_FIRST_WORD || id - SPAN_FIRST_WORD >= v->nwords) return NULL;
    return word_bytes(v, id - SPAN_FIRST_WORD, len);
}

uint32_t span_vocab_limit(const span_vocab *v) { return (uint32_t)(v->nwords + SPAN_FIRST_WORD); }

int span_vocab_intern_ids(span_vocab *v, const span_tokens *tokens, uint32_t *ids, acc_err *err) {
    for (size_t i = 0; i < tokens->n; i++) {
        size_t n = tokens->v[i].norm_len;
        if (n > MAX_WORD_LEN) return acc_fail(err, ACC_ELIMIT, "a word of %zu bytes: at most %u", n, MAX_WORD_LEN);
        ids[i] = span_vocab_intern(v, tokens->norm + tokens->v[i].norm, n);
        if (!ids[i]) return acc_fail(err, ACC_ENOMEM, "vocabulary: out of memory");
    }
    return ACC_OK;
}

void span_vocab_find_ids(const span_vocab *v, const span_tokens *tokens, uint32_t *ids) {
    for (size_t i = 0; i < tokens->n; i++) ids[i] = span_vocab_find(v, tokens->norm + tokens->v[i].norm, tokens->v[i].norm_len);
}
