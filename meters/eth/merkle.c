/*
 * merkle.c: the OpenZeppelin StandardMerkleTree layout over keccak-256, built in parallel.
 *
 * Invariant of the flat array nodes[0 .. 2n-2]: node i (i < n-1) is hash_pair(node 2i+1, node 2i+2);
 * nodes n-1 .. 2n-2 are the leaves in descending sorted order (sorted leaf k at 2n-2-k). Every node
 * at depth d has its children at depth d+1, so the inner nodes are computed one depth at a time,
 * deepest first, and the nodes of one depth are independent of each other (split across the
 * pool's threads). ACC_INVARIANT checks the layout after every build in Debug builds.
 */
#include "meters/eth/merkle.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meters/eth/keccak.h"
#include "meters/eth/keys.h"
#include "meters/eth/uint256.h"
#include "runtime/base/invariant.h"

struct merkle_tree {
    size_t count;          /* n values */
    uint8_t (*nodes)[32];  /* 2n-1 nodes */
    size_t *tree_index;    /* input value i -> its leaf's node index */
};


void merkle_leaf_hash(const merkle_value *value, uint8_t out[32]) {
    uint8_t enc[64], inner[32];
    memset(enc, 0, 12);
    memcpy(enc + 12, value->address, 20);
    memcpy(enc + 32, value->amount, 32);
    keccak256(enc, 64, inner);
    keccak256(inner, 32, out);
}

void merkle_hash_pair(const uint8_t a[32], const uint8_t b[32], uint8_t out[32]) {
    uint8_t buf[64];
    if (memcmp(a, b, 32) <= 0) {
        memcpy(buf, a, 32);
        memcpy(buf + 32, b, 32);
    } else {
        memcpy(buf, b, 32);
        memcpy(buf + 32, a, 32);
    }
    keccak256(buf, 64, out);
}

/* ---- parallel for, on one pool of threads made once per process ----
 *
 * Settlement builds trees from inside a server, so a build must not start threads of its own: the
 * pool's threads are made on first use (one fewer than the cores, at most 15) and live as long as
 * the process, asleep on a condition variable between jobs. A job is a range [lo, hi) cut into
 * chunks that the caller and the workers take in turn from an atomic counter; the caller returns
 * when every worker has finished its part. One job at a time: a build that finds the pool busy
 * (another thread's build) does its range itself rather than wait. */

typedef void (*range_fn)(void *arg, size_t lo, size_t hi);

static struct {
    pthread_once_t once;
    pthread_mutex_t owner;      /* held by the build that uses the pool */
    pthread_mutex_t lock;       /* guards the job fields and the counts below */
    pthread_cond_t wake, done;
    unsigned threads;           /* workers started (0: everything runs in the caller) */
    uint64_t generation;        /* bumped for every job */
    unsigned unfinished;        /* workers still in the current job */
    range_fn fn;
    void *arg;
    size_t hi, chunk;
    _Atomic size_t next;        /* the start of the next chunk to take */
} pool = {.once = PTHREAD_ONCE_INIT,
          .owner = PTHREAD_MUTEX_INITIALIZER,
          .lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

/* Takes chunks of the current job until none is left. fn, arg, hi and chunk are read only between
 * the job's start and its end, which the lock orders. */
static void run_chunks(range_fn fn, void *arg, size_t hi, size_t chunk) {
    for (;;) {
        size_t lo = atomic_fetch_add_explicit(&pool.next, chunk, memory_order_relaxed);
        if (lo >= hi) return;
        fn(arg, lo, hi - lo < chunk ? hi : lo + chunk);
    }
}

static void *pool_worker(void *unused) {
    (void)unused;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.generation == seen) pthread_cond_wait(&pool.wake, &pool.lock);
        seen = pool.generation;
        range_fn fn = pool.fn;
        void *arg = pool.arg;
        size_t hi = pool.hi, chunk = pool.chunk;
        pthread_mutex_unlock(&pool.lock);
        run_chunks(fn, arg, hi, chunk);
        pthread_mutex_lock(&pool.lock);
        if (--pool.unfinished == 0) pthread_cond_signal(&pool.done);
    }
    return NULL;
}

static void pool_start(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned want = cores < 2 ? 0 : cores > 16 ? 15 : (unsigned)cores - 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (unsigned i = 0; i < want; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, pool_worker, NULL) != 0) break; /* fewer workers: still correct */
        pool.threads++;
    }
    pthread_attr_destroy(&attr);
}

/* Small ranges run inline: waking the workers costs more than hashing a few thousand nodes. */
static void parallel_for(size_t lo, size_t hi, range_fn fn, void *arg) {
    if (hi - lo < 8192) {
        fn(arg, lo, hi);
        return;
    }
    pthread_once(&pool.once, pool_start);
    if (pool.threads == 0 || pthread_mutex_trylock(&pool.owner) != 0) {
        fn(arg, lo, hi);
        return;
    }
    /* About four chunks a thread, a multiple of 4 so that keccak256_x4 sees whole groups. */
    size_t chunk = ((hi - lo) / (4 * (pool.threads + 1)) + 3) & ~(size_t)3;
    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.arg = arg;
    pool.hi = hi;
    pool.chunk = chunk;
    atomic_store_explicit(&pool.next, lo, memory_order_relaxed);
    pool.unfinished = pool.threads;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    run_chunks(fn, arg, hi, chunk);
    pthread_mutex_lock(&pool.lock);
    while (pool.unfinished > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.owner);
}

typedef struct sort_item {
    uint64_t key; /* the first 8 bytes of the leaf hash, big-endian, so integer order = byte order */
    uint64_t idx; /* input position */
} sort_item;

typedef struct build_ctx {
    const merkle_value *values;
    uint8_t (*leaves)[32]; /* leaf hash of input value i */
    sort_item *items;
    uint8_t (*nodes)[32];
} build_ctx;

static void key_leaves(void *p, size_t lo, size_t hi);

static void hash_leaves(void *p, size_t lo, size_t hi) {
    build_ctx *b = p;
    size_t i = lo;
    /* Four at a time through the vectorised keccak: abi.encode(address, amount), then its hash. */
    for (; i + 4 <= hi; i += 4) {
        uint8_t enc[4][64];
        const uint8_t *in[4];
        uint8_t *out[4];
        for (int k = 0; k < 4; k++) {
            memset(enc[k], 0, 12);
            memcpy(enc[k] + 12, b->values[i + k].address, 20);
            memcpy(enc[k] + 32, b->values[i + k].amount, 32);
            in[k] = enc[k];
            out[k] = b->leaves[i + k];
        }
        keccak256_x4(in, 64, out);
        for (int k = 0; k < 4; k++) in[k] = b->leaves[i + k];
        keccak256_x4(in, 32, out);
    }
    for (; i < hi; i++) merkle_leaf_hash(&b->values[i], b->leaves[i]);
    key_leaves(p, lo, hi);
}

static void sorted_pair(const uint8_t a[32], const uint8_t b[32], uint8_t out[64]) {
    int a_first = memcmp(a, b, 32) <= 0;
    memcpy(out, a_first ? a : b, 32);
    memcpy(out + 32, a_first ? b : a, 32);
}

static void hash_inner(void *p, size_t lo, size_t hi) {
    build_ctx *b = p;
    size_t i = lo;
    for (; i + 4 <= hi; i += 4) {
        uint8_t pairs[4][64];
        const uint8_t *in[4];
        uint8_t *out[4];
        for (int k = 0; k < 4; k++) {
            sorted_pair(b->nodes[2 * (i + k) + 1], b->nodes[2 * (i + k) + 2], pairs[k]);
            in[k] = pairs[k];
            out[k] = b->nodes[i + k];
        }
        keccak256_x4(in, 64, out);
    }
    for (; i < hi; i++) merkle_hash_pair(b->nodes[2 * i + 1], b->nodes[2 * i + 2], b->nodes[i]);
}

/* Stable LSD radix sort on the 64-bit key (4 passes of 16 bits), then a stable insertion sort of
 * each run of equal keys by the full hash: the order of JavaScript's stable sort by hash bytes. */
static int sort_leaves(sort_item *items, size_t n, uint8_t (*leaves)[32]) {
    sort_item *tmp = malloc(n * sizeof *tmp);
    size_t *count = malloc(65536 * sizeof *count);
    if (!tmp || !count) {
        free(tmp);
        free(count);
        return -1;
    }
    sort_item *src = items, *dst = tmp;
    for (int pass = 0; pass < 4; pass++) {
        int shift = 16 * pass;
        memset(count, 0, 65536 * sizeof *count);
        for (size_t i = 0; i < n; i++) count[(src[i].key >> shift) & 0xffff]++;
        size_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) dst[count[(src[i].key >> shift) & 0xffff]++] = src[i];
        sort_item *t = src;
        src = dst;
        dst = t;
    }
    /* After an even number of passes the result is back in items. */
    free(tmp);
    free(count);
    for (size_t i = 1; i < n; i++) {
        if (items[i].key != items[i - 1].key) continue;
        sort_item cur = items[i];
        size_t j = i;
        while (j > 0 && items[j - 1].key == cur.key && memcmp(leaves[items[j - 1].idx], leaves[cur.idx], 32) > 0) {
            items[j] = items[j - 1];
            j--;
        }
        items[j] = cur;
    }
    return 0;
}

static void key_leaves(void *p, size_t lo, size_t hi) {
    build_ctx *b = p;
    for (size_t i = lo; i < hi; i++) {
        uint64_t k = 0;
        for (int j = 0; j < 8; j++) k = k << 8 | b->leaves[i][j];
        b->items[i].key = k;
        b->items[i].idx = i;
    }
}

/* The layout invariant (this file's header), checked whole: the leaves in descending order, each
 * input's tree_index at a leaf holding its hash and no leaf claimed twice, every inner node the
 * sorted-pair hash of its children. As costly as the build: Debug builds only. */
static void check_layout(const merkle_tree *t, const uint8_t (*leaves)[32]) {
    size_t n = t->count, first_leaf = n - 1, last = 2 * n - 2;
    for (size_t i = first_leaf; i < last; i++)
        ACC_INVARIANT(memcmp(t->nodes[i], t->nodes[i + 1], 32) >= 0, "leaves out of order at node %zu of %zu", i,
                      last + 1);
    unsigned char *claimed = calloc(n, 1);
    for (size_t v = 0; v < n; v++) {
        size_t at = t->tree_index[v];
        ACC_INVARIANT(at >= first_leaf && at <= last, "value %zu has tree index %zu, not a leaf", v, at);
        ACC_INVARIANT(memcmp(t->nodes[at], leaves[v], 32) == 0, "value %zu's leaf holds another hash", v);
        if (claimed) {
            ACC_INVARIANT(!claimed[at - first_leaf], "leaf %zu claimed by two values", at);
            claimed[at - first_leaf] = 1;
        }
    }
    free(claimed);
    for (size_t i = 0; i < first_leaf; i++) {
        uint8_t h[32];
        merkle_hash_pair(t->nodes[2 * i + 1], t->nodes[2 * i + 2], h);
        ACC_INVARIANT(memcmp(h, t->nodes[i], 32) == 0, "node %zu is not the hash of its children", i);
    }
}

/* Builds the tree over b->leaves (count hashes, in input order). Takes ownership of nothing. */
static int build_tree(build_ctx *b, size_t count, int leaves_hashed, merkle_tree **out, acc_err *err) {
    merkle_tree *t = calloc(1, sizeof *t);
    if (t) {
        t->count = count;
        t->nodes = malloc((2 * count - 1) * sizeof *t->nodes);
        t->tree_index = malloc(count * sizeof *t->tree_index);
    }
    b->items = malloc(count * sizeof *b->items);
    if (!t || !t->nodes || !t->tree_index || !b->items) goto nomem;
    b->nodes = t->nodes;

    parallel_for(0, count, leaves_hashed ? key_leaves : hash_leaves, b);
    if (sort_leaves(b->items, count, b->leaves) != 0) goto nomem;
    size_t last = 2 * count - 2;
    for (size_t k = 0; k < count; k++) {
        memcpy(t->nodes[last - k], b->leaves[b->items[k].idx], 32);
        t->tree_index[b->items[k].idx] = last - k;
    }
    free(b->items);
    b->items = NULL;

    if (count > 1) {
        size_t last_inner = count - 2;
        int depth = 0;
        while (((size_t)2 << depth) - 1 <= last_inner) depth++; /* depth of node last_inner */
        for (int d = depth; d >= 0; d--) {
            size_t lo = ((size_t)1 << d) - 1, hi = ((size_t)2 << d) - 1; /* [lo, hi) */
            if (hi > last_inner + 1) hi = last_inner + 1;
            parallel_for(lo, hi, hash_inner, b);
        }
    }
    if (ACC_INVARIANTS_ON) check_layout(t, (const uint8_t(*)[32])b->leaves);
    *out = t;
    return ACC_OK;

nomem:
    free(b->items);
    b->items = NULL;
    merkle_free(t);
    return acc_fail(err, ACC_ENOMEM, "out of memory building a tree of %zu values", count);
}

static int check_count(size_t count, acc_err *err) {
    if (count == 0) return acc_fail(err, ACC_EINVAL, "a Merkle tree needs at least one value");
    if (count > SIZE_MAX / 128) return acc_fail(err, ACC_EINVAL, "too many values (%zu)", count);
    return ACC_OK;
}

int merkle_build(const merkle_value *values, size_t count, merkle_tree **out, acc_err *err) {
    *out = NULL;
    int rc = check_count(count, err);
    if (rc != ACC_OK) return rc;
    build_ctx b = {.values = values};
    b.leaves = malloc(count * sizeof *b.leaves);
    if (!b.leaves) return acc_fail(err, ACC_ENOMEM, "out of memory building a tree of %zu values", count);
    rc = build_tree(&b, count, 0, out, err);
    free(b.leaves);
    return rc;
}

int merkle_build_from_leaves(const uint8_t (*leaves)[32], size_t count, merkle_tree **out, acc_err *err) {
    *out = NULL;
    int rc = check_count(count, err);
    if (rc != ACC_OK) return rc;
    build_ctx b = {.leaves = (uint8_t(*)[32])(uintptr_t)leaves}; /* read only when leaves_hashed */
    return build_tree(&b, count, 1, out, err);
}

void merkle_free(merkle_tree *tree) {
    if (!tree) return;
    free(tree->nodes);
    free(tree->tree_index);
    free(tree);
}

void merkle_root(const merkle_tree *tree, uint8_t root[32]) {
    memcpy(root, tree->nodes[0], 32);
}

size_t merkle_count(const merkle_tree *tree) {
    return tree->count;
}

size_t merkle_max_proof_len(const merkle_tree *tree) {
    size_t h = 0;
    for (size_t i = 2 * tree->count - 2; i > 0; i = (i - 1) / 2) h++;
    return h;
}

size_t merkle_tree_index(const merkle_tree *tree, size_t value_index) {
    return tree->tree_index[value_index];
}

const uint8_t *merkle_node(const merkle_tree *tree, size_t node_index) {
    return tree->nodes[node_index];
}

size_t merkle_proof(const merkle_tree *tree, size_t value_index, uint8_t (*proof)[32]) {
    size_t n = 0;
    for (size_t i = tree->tree_index[value_index]; i > 0; i = (i - 1) / 2) {
        size_t sibling = (i & 1) ? i + 1 : i - 1;
        memcpy(proof[n++], tree->nodes[sibling], 32);
    }
    return n;
}

int merkle_verify(const uint8_t root[32], const uint8_t leaf[32], const uint8_t (*proof)[32], size_t proof_len,
                  acc_err *err) {
    uint8_t h[32];
    memcpy(h, leaf, 32);
    for (size_t i = 0; i < proof_len; i++) merkle_hash_pair(h, proof[i], h);
    if (memcmp(h, root, 32) != 0) return acc_fail(err, ACC_EMISMATCH, "the proof does not lead to the root");
    return ACC_OK;
}

int merkle_values_parse_json(const char *json, size_t len, merkle_value **out, size_t *count, acc_err *err) {
    *out = NULL;
    *count = 0;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return acc_fail(err, ACC_EINVAL, "values: invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                        jerr.text);
    int rc;
    merkle_value *vals = NULL;
    if (!json_is_array(root)) {
        rc = acc_fail(err, ACC_EINVAL, "values: expected a JSON array of [address, amount] pairs");
        goto done;
    }
    size_t n = json_array_size(root);
    if (n == 0) {
        rc = acc_fail(err, ACC_EINVAL, "values: the array is empty (a Merkle tree needs at least one value)");
        goto done;
    }
    vals = malloc(n * sizeof *vals);
    if (!vals) {
        rc = acc_fail(err, ACC_ENOMEM, "values: out of memory for %zu values", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *pair = json_array_get(root, i);
        if (!json_is_array(pair) || json_array_size(pair) != 2) {
            rc = acc_fail(err, ACC_EINVAL, "values[%zu]: expected an [address, amount] pair", i);
            goto done;
        }
        json_t *a = json_array_get(pair, 0), *m = json_array_get(pair, 1);
        if (!json_is_string(a)) {
            rc = acc_fail(err, ACC_EINVAL, "values[%zu][0]: the address must be a string", i);
            goto done;
        }
        if ((rc = eth_address_parse(json_string_value(a), json_string_length(a), vals[i].address, err)) != ACC_OK) {
            acc_err_prefix(err, "values[%zu][0]", i);
            goto done;
        }
        if (json_is_string(m)) {
            if ((rc = uint256_from_decimal(json_string_value(m), json_string_length(m), vals[i].amount, err)) != ACC_OK) {
                acc_err_prefix(err, "values[%zu][1]: amount", i);
                goto done;
            }
        } else if (json_is_integer(m) && json_integer_value(m) >= 0) {
            uint64_t v = (uint64_t)json_integer_value(m);
            memset(vals[i].amount, 0, 32);
            for (int b = 0; b < 8; b++) vals[i].amount[31 - b] = (uint8_t)(v >> (8 * b));
        } else {
            rc = acc_fail(err, ACC_EINVAL, "values[%zu][1]: the amount must be a non-negative decimal string", i);
            goto done;
        }
    }
    *out = vals;
    *count = n;
    vals = NULL;
    rc = ACC_OK;
done:
    free(vals);
    json_decref(root);
    return rc;
}
