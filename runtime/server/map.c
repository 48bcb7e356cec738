/*
 * map.c: a string-keyed hash table (open addressing, linear probing, tombstones) for the loop's
 * tables: sessions by id, live sessions per API key. Keys are copied; values are the caller's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/internal.h"

static char tomb[1]; /* marks a deleted slot */

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static rt_map_entry *find(const rt_map *m, const char *key) {
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
        rt_map_entry *e = &m->slots[i];
        if (!e->key) return NULL;
        if (e->key != tomb && strcmp(e->key, key) == 0) return e;
    }
}

static int grow(rt_map *m) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    if (m->count * 2 < m->cap) cap = m->cap; /* mostly tombstones: rehash in place */
    rt_map_entry *slots = calloc(cap, sizeof *slots);
    if (!slots) return ACC_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        rt_map_entry *e = &m->slots[i];
        if (!e->key || e->key == tomb) continue;
        size_t j = hash(e->key) & (cap - 1);
        while (slots[j].key) j = (j + 1) & (cap - 1);
        slots[j] = *e;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    m->tombs = 0;
    return ACC_OK;
}

void *rt_map_get(const rt_map *m, const char *key) {
    rt_map_entry *e = find(m, key);
    return e ? e->value : NULL;
}

int rt_map_put(rt_map *m, const char *key, void *value) {
    rt_map_entry *e = find(m, key);
    if (e) {
        e->value = value;
        return ACC_OK;
    }
    if ((m->count + m->tombs + 1) * 4 > m->cap * 3 && grow(m) != ACC_OK) return ACC_ENOMEM;
    char *k = strdup(key);
    if (!k) return ACC_ENOMEM;
    size_t mask = m->cap - 1, i = hash(key) & mask;
    while (m->slots[i].key && m->slots[i].key != tomb) i = (i + 1) & mask;
    if (m->slots[i].key == tomb) m->tombs--;
    m->slots[i].key = k;
    m->slots[i].value = value;
    m->count++;
    return ACC_OK;
}

void *rt_map_del(rt_map *m, const char *key) {
    rt_map_entry *e = find(m, key);
    if (!e) return NULL;
    void *v = e->value;
    free(e->key);
    e->key = tomb;
    e->value = NULL;
    m->count--;
    m->tombs++;
    return v;
}

bool rt_map_next(const rt_map *m, size_t *i, rt_map_entry **e) {
    while (*i < m->cap) {
        rt_map_entry *s = &m->slots[(*i)++];
        if (s->key && s->key != tomb) {
            *e = s;
            return true;
        }
    }
    return false;
}

void rt_map_free(rt_map *m) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != tomb) free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}
