/*
 * eip712.c: EIP-712 hashing of eth_signTypedData_v4 JSON, parsed with jansson.
 *
 * Parsing resolves every field's type once into a core kind plus its array dimensions, so hashing
 * a large array of structs never looks a type up by name. Values are checked while they are hashed;
 * the first error wins and names its path. Recursion follows the JSON value (so it is bounded by
 * the parser's depth limit); everything that walks the type graph is iterative.
 */
#include "meters/eth/eip712.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meters/eth/hex.h"
#include "meters/eth/keccak.h"
#include "meters/eth/keys.h"
#include "meters/eth/uint256.h"

enum kind { K_UINT, K_INT, K_ADDRESS, K_BOOL, K_BYTESN, K_BYTES, K_STRING, K_STRUCT };

#define MAX_DIMS 32

typedef struct ftype {
    enum kind kind;
    unsigned size;      /* bits of an integer, bytes of bytesN */
    size_t struct_idx;  /* K_STRUCT: index into doc->structs */
    unsigned ndims;     /* array dimensions, outermost last: "T[2][]" is dims {2, DYN} */
    long dims[MAX_DIMS];
} ftype;
#define DYN (-1L)

typedef struct field {
    const char *name;
    const char *type_text; /* as written, for encodeType */
    ftype type;
} field;

typedef struct stype {
    const char *name;
    field *fields;
    size_t nfields;
    int finite; /* a value of this type can be written down (see check_finite) */
    int have_hash;
    uint8_t type_hash[32];
} stype;

struct eip712_doc {
    json_t *root;
    stype *structs;
    size_t nstructs;
    size_t cap_structs; /* entries allocated (zeroed), freed whether or not they were filled in */
    int inferred_domain; /* EIP712Domain was not in types: the last struct is the inferred one */
    int primary_is_domain;
    uint8_t domain_sep[32];
    uint8_t message_hash[32];
    /* while parsing */
    acc_err *err;
    char path[512];
    size_t pathlen;
};

/* Records the error with the current path in front: "message.to.wallet: address value must be...".
 * A path too long for the message keeps its end, the part nearest the fault. */
static int vfail_code(eip712_doc *d, int code, const char *fmt, va_list ap) {
    if (!d->err) return code;
    char msg[ACC_ERR_MSG_SIZE];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (!d->pathlen) return acc_fail(d->err, code, "%s", msg);
    size_t room = sizeof msg - 1 - strlen(msg), plen = d->pathlen;
    const char *path = d->path, *cut = "";
    if (room > 16 && plen + 2 > room) { /* keep "...": and the tail of the path */
        path += plen - (room - 5);
        plen = room - 5;
        cut = "...";
    }
    return acc_fail(d->err, code, "%s%.*s: %s", cut, (int)plen, path, msg);
}

static int fail(eip712_doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(eip712_doc *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail_code(d, ACC_EINVAL, fmt, ap);
    va_end(ap);
    return rc;
}

static int fail_nomem(eip712_doc *d) {
    return acc_fail(d->err, ACC_ENOMEM, "out of memory");
}

/* Appends ".name" (or "name" at the start) or "[i]" to the path; returns the length to restore. */
static size_t path_push(eip712_doc *d, const char *name, long index) {
    size_t old = d->pathlen, room = sizeof d->path - d->pathlen;
    int n;
    if (name)
        n = snprintf(d->path + d->pathlen, room, "%s%s", d->pathlen ? "." : "", name);
    else
        n = snprintf(d->path + d->pathlen, room, "[%ld]", index);
    if (n < 0 || (size_t)n >= room) {
        d->pathlen = sizeof d->path - 1; /* truncated; still NUL-terminated */
    } else {
        d->pathlen += (size_t)n;
    }
    return old;
}

static void path_pop(eip712_doc *d, size_t old) {
    d->pathlen = old;
    d->path[old] = '\0';
}

static int is_ident(const char *s) {
    if (!s[0]) return 0;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok) return 0;
    }
    return 1;
}

/* "uint256" -> 256 when it is prefix followed by a number without leading zero, else 0. */
static unsigned suffix_number(const char *s, size_t len, const char *prefix) {
    size_t p = strlen(prefix);
    if (len <= p || strncmp(s, prefix, p) != 0 || s[p] == '0') return 0;
    unsigned v = 0;
    for (size_t i = p; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > 1000) return 0;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v;
}

/* Atomic or dynamic base types; returns 0 when name is one. */
static int atomic_type(const char *s, size_t len, ftype *t) {
    unsigned n;
    if (len == 7 && memcmp(s, "address", 7) == 0) { t->kind = K_ADDRESS; return 0; }
    if (len == 4 && memcmp(s, "bool", 4) == 0) { t->kind = K_BOOL; return 0; }
    if (len == 6 && memcmp(s, "string", 6) == 0) { t->kind = K_STRING; return 0; }
    if (len == 5 && memcmp(s, "bytes", 5) == 0) { t->kind = K_BYTES; return 0; }
    if ((n = suffix_number(s, len, "uint")) && n % 8 == 0 && n <= 256) { t->kind = K_UINT; t->size = n; return 0; }
    if ((n = suffix_number(s, len, "int")) && n % 8 == 0 && n <= 256) { t->kind = K_INT; t->size = n; return 0; }
    if ((n = suffix_number(s, len, "bytes")) && n <= 32) { t->kind = K_BYTESN; t->size = n; return 0; }
    return -1;
}

static long find_struct(const eip712_doc *d, const char *name, size_t len) {
    for (size_t i = 0; i < d->nstructs; i++)
        if (strlen(d->structs[i].name) == len && memcmp(d->structs[i].name, name, len) == 0) return (long)i;
    return -1;
}

/* Resolves a field's type text: base name, then "[]" / "[N]" suffixes. */
static int resolve_type(eip712_doc *d, const char *text, ftype *t) {
    memset(t, 0, sizeof *t);
    size_t len = strlen(text), base = 0;
    while (base < len && text[base] != '[') base++;
    size_t i = base;
    while (i < len) {
        if (text[i] != '[') return fail(d, "type '%s' is malformed", text);
        size_t j = i + 1;
        long n = 0;
        if (j < len && text[j] == ']') {
            n = DYN;
        } else {
            if (j >= len || text[j] < '1' || text[j] > '9')
                return fail(d, "type '%s' has a malformed array size (a positive integer or nothing)", text);
            while (j < len && text[j] >= '0' && text[j] <= '9') {
                n = n * 10 + (text[j] - '0');
                if (n > 1000000000L) return fail(d, "type '%s' has an array size that is too large", text);
                j++;
            }
            if (j >= len || text[j] != ']') return fail(d, "type '%s' is malformed", text);
        }
        if (t->ndims == MAX_DIMS) return fail(d, "type '%s' has more than %d array dimensions", text, MAX_DIMS);
        t->dims[t->ndims++] = n;
        i = j + 1;
    }
    if (atomic_type(text, base, t) == 0) return 0;
    long s = find_struct(d, text, base);
    if (s < 0) return fail(d, "unknown type '%.*s'", (int)base, text);
    t->kind = K_STRUCT;
    t->struct_idx = (size_t)s;
    return 0;
}

static int add_struct_fields(eip712_doc *d, stype *st, json_t *arr) {
    size_t n = json_array_size(arr);
    st->fields = calloc(n ? n : 1, sizeof *st->fields);
    if (!st->fields) return fail_nomem(d);
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_array_get(arr, i);
        size_t old = path_push(d, NULL, (long)i);
        json_t *fname = json_object_get(f, "name"), *ftype_j = json_object_get(f, "type");
        if (!json_is_object(f) || !json_is_string(fname) || !json_is_string(ftype_j))
            return fail(d, "a field is an object with string \"name\" and \"type\"");
        const char *name = json_string_value(fname);
        if (strlen(name) != json_string_length(fname) || !is_ident(name))
            return fail(d, "field name '%.64s' is not an identifier", name);
        for (size_t k = 0; k < st->nfields; k++)
            if (strcmp(st->fields[k].name, name) == 0) return fail(d, "field '%s' is declared twice", name);
        const char *tt = json_string_value(ftype_j);
        if (strlen(tt) != json_string_length(ftype_j)) return fail(d, "type of field '%s' holds a NUL", name);
        path_pop(d, old);
        old = path_push(d, name, 0);
        int rc = resolve_type(d, tt, &st->fields[st->nfields].type);
        if (rc) return rc;
        st->fields[st->nfields].name = name;
        st->fields[st->nfields].type_text = tt;
        st->nfields++;
        path_pop(d, old);
    }
    return 0;
}

/* A struct is finite when each of its fields can be written down: an atomic value, any array with
 * a dynamic dimension (it may be empty), or a finite struct, possibly in fixed arrays. Least fixed
 * point: start with none finite and add until nothing changes. */
static int check_finite(eip712_doc *d) {
    int changed = 1;
    while (changed) {
        changed = 0;
        for (size_t i = 0; i < d->nstructs; i++) {
            stype *st = &d->structs[i];
            if (st->finite) continue;
            int ok = 1;
            for (size_t f = 0; f < st->nfields && ok; f++) {
                const ftype *t = &st->fields[f].type;
                int dyn = 0;
                for (unsigned k = 0; k < t->ndims; k++) dyn |= t->dims[k] == DYN;
                if (!dyn && t->kind == K_STRUCT && !d->structs[t->struct_idx].finite) ok = 0;
            }
            if (ok) st->finite = changed = 1;
        }
    }
    for (size_t i = 0; i < d->nstructs; i++) {
        stype *st = &d->structs[i];
        if (st->finite) continue;
        for (size_t f = 0; f < st->nfields; f++) {
            const ftype *t = &st->fields[f].type;
            int dyn = 0;
            for (unsigned k = 0; k < t->ndims; k++) dyn |= t->dims[k] == DYN;
            if (!dyn && t->kind == K_STRUCT && !d->structs[t->struct_idx].finite)
                return fail(d, "types.%s.%s: type %s can never end: field '%s' (%s) always holds another %s",
                            st->name, st->fields[f].name, st->name, st->fields[f].name, st->fields[f].type_text,
                            d->structs[t->struct_idx].name);
        }
    }
    return 0;
}

static int cmp_names(const void *a, const void *b) {
    const stype *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static void append_def(char **buf, size_t *len, size_t *cap, const stype *st, int *oom) {
    size_t need = strlen(st->name) + 3;
    for (size_t f = 0; f < st->nfields; f++) need += strlen(st->fields[f].type_text) + strlen(st->fields[f].name) + 2;
    if (*len + need + 1 > *cap) {
        size_t nc = (*cap + need + 1) * 2;
        char *nb = realloc(*buf, nc);
        if (!nb) {
            *oom = 1;
            return;
        }
        *buf = nb;
        *cap = nc;
    }
    *len += (size_t)sprintf(*buf + *len, "%s(", st->name);
    for (size_t f = 0; f < st->nfields; f++)
        *len += (size_t)sprintf(*buf + *len, "%s%s %s", f ? "," : "", st->fields[f].type_text, st->fields[f].name);
    *len += (size_t)sprintf(*buf + *len, ")");
}

/* encodeType: the struct, then its dependencies (every struct reachable from it) sorted by name. */
static char *encode_type_idx(const eip712_doc *d, size_t idx) {
    char *seen = calloc(d->nstructs, 1);
    size_t *stack = malloc(d->nstructs * sizeof *stack);
    const stype **deps = malloc(d->nstructs * sizeof *deps);
    char *buf = NULL;
    size_t len = 0, cap = 0, sp = 0, ndeps = 0;
    int oom = !seen || !stack || !deps;
    if (!oom) {
        seen[idx] = 1;
        stack[sp++] = idx;
        while (sp > 0) {
            const stype *st = &d->structs[stack[--sp]];
            for (size_t f = 0; f < st->nfields; f++) {
                const ftype *t = &st->fields[f].type;
                if (t->kind != K_STRUCT || seen[t->struct_idx]) continue;
                seen[t->struct_idx] = 1;
                stack[sp++] = t->struct_idx;
                deps[ndeps++] = &d->structs[t->struct_idx];
            }
        }
        qsort(deps, ndeps, sizeof *deps, cmp_names);
        append_def(&buf, &len, &cap, &d->structs[idx], &oom);
        for (size_t i = 0; i < ndeps && !oom; i++) append_def(&buf, &len, &cap, deps[i], &oom);
    }
    free(seen);
    free(stack);
    free(deps);
    if (oom) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int type_hash(eip712_doc *d, size_t idx, uint8_t out[32]) {
    stype *st = &d->structs[idx];
    if (!st->have_hash) {
        char *enc = encode_type_idx(d, idx);
        if (!enc) return fail_nomem(d);
        keccak256(enc, strlen(enc), st->type_hash);
        free(enc);
        st->have_hash = 1;
    }
    memcpy(out, st->type_hash, 32);
    return 0;
}

static int hash_struct(eip712_doc *d, size_t idx, json_t *value, uint8_t out[32]);

static const char *kind_name(const ftype *t, char *buf, size_t n, const eip712_doc *d) {
    switch (t->kind) {
    case K_UINT: snprintf(buf, n, "uint%u", t->size); break;
    case K_INT: snprintf(buf, n, "int%u", t->size); break;
    case K_ADDRESS: return "address";
    case K_BOOL: return "bool";
    case K_BYTESN: snprintf(buf, n, "bytes%u", t->size); break;
    case K_BYTES: return "bytes";
    case K_STRING: return "string";
    case K_STRUCT: return d->structs[t->struct_idx].name;
    }
    return buf;
}

static int encode_integer(eip712_doc *d, const ftype *t, json_t *v, uint8_t out[32]) {
    char tn[16];
    kind_name(t, tn, sizeof tn, d);
    int neg = 0;
    uint8_t mag[32];
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        uint64_t m = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
        neg = x < 0;
        memset(mag, 0, 32);
        for (int b = 0; b < 8; b++) mag[31 - b] = (uint8_t)(m >> (8 * b));
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len > 0 && s[0] == '-') {
            neg = 1;
            s++;
            len--;
        }
        acc_err why = {0};
        int rc = (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? uint256_from_hex(s, len, mag, &why)
                                                                          : uint256_from_decimal(s, len, mag, &why);
        if (rc != ACC_OK)
            return fail(d, "%s value is not an integer (decimal or 0x-hex, at most 256 bits): %s", tn, why.msg);
    } else {
        return fail(d, "%s value must be an integer or a string holding one", tn);
    }
    unsigned bits = uint256_bit_length(mag);
    if (t->kind == K_UINT) {
        if (neg && bits > 0) return fail(d, "%s value is negative", tn);
        if (bits > t->size) return fail(d, "%s value is out of range (more than %u bits)", tn, t->size);
    } else {
        /* -2^(N-1) <= v < 2^(N-1): a magnitude of at most N-1 bits, or exactly 2^(N-1) when negative. */
        int fits = bits < t->size;
        if (!fits && neg && bits == t->size) {
            uint8_t rest[32];
            memcpy(rest, mag, 32);
            unsigned top = t->size - 1;
            rest[31 - top / 8] &= (uint8_t)~(1u << (top % 8));
            fits = uint256_bit_length(rest) == 0;
        }
        if (!fits) return fail(d, "%s value is out of range", tn);
        if (neg) uint256_negate(mag);
    }
    memcpy(out, mag, 32);
    return 0;
}

/* Encodes one value of type t with its first ndims dimensions into a 32-byte word. */
static int encode_value(eip712_doc *d, const ftype *t, unsigned ndims, json_t *v, uint8_t out[32]) {
    char tn[16];
    if (!v || json_is_null(v)) return fail(d, "missing value");
    if (ndims > 0) {
        long want = t->dims[ndims - 1];
        if (!json_is_array(v)) return fail(d, "expected an array");
        size_t n = json_array_size(v);
        if (want != DYN && (size_t)want != n)
            return fail(d, "wrong length: the array has %zu elements, its type %ld", n, want);
        keccak256_ctx k;
        keccak256_init(&k);
        for (size_t i = 0; i < n; i++) {
            uint8_t word[32];
            size_t old = path_push(d, NULL, (long)i);
            int rc = encode_value(d, t, ndims - 1, json_array_get(v, i), word);
            if (rc) return rc;
            path_pop(d, old);
            keccak256_update(&k, word, 32);
        }
        keccak256_final(&k, out);
        return 0;
    }
    switch (t->kind) {
    case K_UINT:
    case K_INT:
        return encode_integer(d, t, v, out);
    case K_ADDRESS: {
        acc_err why = {0};
        memset(out, 0, 12);
        if (!json_is_string(v)) return fail(d, "address value must be a 0x-hex string");
        if (eth_address_parse(json_string_value(v), json_string_length(v), out + 12, &why) != ACC_OK)
            return fail(d, "%s", why.msg);
        return 0;
    }
    case K_BOOL:
        if (!json_is_boolean(v)) return fail(d, "bool value must be true or false");
        memset(out, 0, 32);
        out[31] = json_is_true(v) ? 1 : 0;
        return 0;
    case K_BYTESN:
        memset(out, 0, 32);
        if (!json_is_string(v)) return fail(d, "%s value must be a 0x-hex string", kind_name(t, tn, sizeof tn, d));
        {
            acc_err why = {0};
            if (hex_parse0x(json_string_value(v), json_string_length(v), out, t->size, &why) != ACC_OK)
                return fail(d, "%s value: %s", kind_name(t, tn, sizeof tn, d), why.msg);
        }
        return 0;
    case K_BYTES: {
        if (!json_is_string(v)) return fail(d, "bytes value must be a 0x-hex string");
        uint8_t *buf;
        size_t n;
        acc_err why = {0};
        int rc = hex_parse0x_alloc(json_string_value(v), json_string_length(v), &buf, &n, &why);
        if (rc == ACC_ENOMEM) return fail_nomem(d);
        if (rc != ACC_OK) return fail(d, "bytes value: %s", why.msg);
        keccak256(buf, n, out);
        free(buf);
        return 0;
    }
    case K_STRING:
        if (!json_is_string(v)) return fail(d, "string value must be a JSON string");
        keccak256(json_string_value(v), json_string_length(v), out);
        return 0;
    case K_STRUCT:
        return hash_struct(d, t->struct_idx, v, out);
    }
    return fail(d, "internal error: unknown kind");
}

static int hash_struct(eip712_doc *d, size_t idx, json_t *value, uint8_t out[32]) {
    const stype *st = &d->structs[idx];
    if (!json_is_object(value)) return fail(d, "expected an object of type %s", st->name);
    keccak256_ctx k;
    uint8_t word[32];
    int rc = type_hash(d, idx, word);
    if (rc) return rc;
    keccak256_init(&k);
    keccak256_update(&k, word, 32);
    for (size_t f = 0; f < st->nfields; f++) {
        const field *fl = &st->fields[f];
        size_t old = path_push(d, fl->name, 0);
        json_t *v = json_object_get(value, fl->name);
        if (!v) return fail(d, "missing field of type %s", fl->type_text);
        rc = encode_value(d, &fl->type, fl->type.ndims, v, word);
        if (rc) return rc;
        path_pop(d, old);
        keccak256_update(&k, word, 32);
    }
    keccak256_final(&k, out);
    return 0;
}

static const char *const domain_fields[5][2] = {
    {"name", "string"}, {"version", "string"}, {"chainId", "uint256"}, {"verifyingContract", "address"},
    {"salt", "bytes32"}};

static int build_types(eip712_doc *d, json_t *types, json_t *domain) {
    size_t n = json_object_size(types);
    int has_domain = json_object_get(types, "EIP712Domain") != NULL;
    d->structs = calloc(n + 1, sizeof *d->structs);
    if (!d->structs) return fail_nomem(d);
    d->cap_structs = n + 1;
    const char *name;
    json_t *def;
    /* Names first, so that fields can refer to any struct. */
    json_object_foreach(types, name, def) {
        size_t old = path_push(d, "types", 0);
        path_push(d, name, 0);
        if (!is_ident(name) || strlen(name) != json_object_iter_key_len(json_object_key_to_iter(name)))
            return fail(d, "'%.64s' is not a valid struct name", name);
        ftype probe;
        if (atomic_type(name, strlen(name), &probe) == 0)
            return fail(d, "'%s' is an atomic type, not a struct name", name);
        if (!json_is_array(def)) return fail(d, "a type is an array of {name, type} fields");
        d->structs[d->nstructs++].name = name;
        path_pop(d, old);
    }
    if (!has_domain) {
        /* Inferred from the domain's keys, canonical order (as ethers does). */
        stype *st = &d->structs[d->nstructs];
        st->name = "EIP712Domain";
        st->fields = calloc(5, sizeof *st->fields);
        if (!st->fields) return fail_nomem(d);
        if (!json_is_object(domain)) return fail(d, "domain must be an object");
        const char *key;
        json_t *val;
        json_object_foreach(domain, key, val) {
            int known = 0;
            for (int i = 0; i < 5; i++) known |= strcmp(key, domain_fields[i][0]) == 0;
            known &= strlen(key) == json_object_iter_key_len(json_object_key_to_iter(key));
            if (!known) {
                size_t old = path_push(d, "domain", 0);
                path_push(d, key, 0);
                int rc = fail(d, "not an EIP712Domain field (and types has no EIP712Domain)");
                path_pop(d, old);
                return rc;
            }
        }
        for (int i = 0; i < 5; i++) {
            if (!json_object_get(domain, domain_fields[i][0])) continue;
            field *f = &st->fields[st->nfields++];
            f->name = domain_fields[i][0];
            f->type_text = domain_fields[i][1];
            int rc = resolve_type(d, f->type_text, &f->type);
            if (rc != ACC_OK) return rc;
        }
        d->nstructs++;
        d->inferred_domain = 1;
    }
    size_t i = 0;
    json_object_foreach(types, name, def) {
        size_t old = path_push(d, "types", 0);
        path_push(d, name, 0);
        int rc = add_struct_fields(d, &d->structs[i++], def);
        if (rc) return rc;
        path_pop(d, old);
    }
    return check_finite(d);
}

int eip712_parse(const char *json, size_t len, eip712_doc **out, acc_err *err) {
    *out = NULL;
    eip712_doc *d = calloc(1, sizeof *d);
    if (!d) return acc_fail(err, ACC_ENOMEM, "out of memory");
    d->err = err;
    json_error_t jerr;
    /* Strings may hold U+0000 (wallets hash them); names are checked to hold none. */
    d->root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    int rc;
    if (!d->root) {
        rc = fail(d, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        goto done;
    }
    json_t *types = json_object_get(d->root, "types"), *primary = json_object_get(d->root, "primaryType");
    json_t *domain = json_object_get(d->root, "domain"), *message = json_object_get(d->root, "message");
    if (!json_is_object(d->root)) {
        rc = fail(d, "typed data must be a JSON object with types, primaryType, domain and message");
        goto done;
    }
    if (!json_is_object(types)) { rc = fail(d, "types: missing or not an object"); goto done; }
    if (!json_is_string(primary)) { rc = fail(d, "primaryType: missing or not a string"); goto done; }
    if (!json_is_object(domain)) { rc = fail(d, "domain: missing or not an object"); goto done; }
    if ((rc = build_types(d, types, domain)) != 0) goto done;
    long dom = find_struct(d, "EIP712Domain", 12);
    long prim = find_struct(d, json_string_value(primary), json_string_length(primary));
    if (prim < 0) {
        rc = fail(d, "primaryType: '%.64s' is not a struct in types", json_string_value(primary));
        goto done;
    }
    size_t old = path_push(d, "domain", 0);
    if ((rc = hash_struct(d, (size_t)dom, domain, d->domain_sep)) != 0) goto done;
    path_pop(d, old);
    d->primary_is_domain = prim == dom;
    if (!d->primary_is_domain) {
        if (!json_is_object(message)) { rc = fail(d, "message: missing or not an object"); goto done; }
        old = path_push(d, "message", 0);
        if ((rc = hash_struct(d, (size_t)prim, message, d->message_hash)) != 0) goto done;
        path_pop(d, old);
    }
    rc = ACC_OK;
done:
    d->err = NULL;
    if (rc != ACC_OK) {
        eip712_free(d);
        return rc;
    }
    *out = d;
    return ACC_OK;
}

void eip712_free(eip712_doc *doc) {
    if (!doc) return;
    if (doc->structs)
        for (size_t i = 0; i < doc->cap_structs; i++) free(doc->structs[i].fields);
    free(doc->structs);
    json_decref(doc->root);
    free(doc);
}

void eip712_domain_separator(const eip712_doc *doc, uint8_t out[32]) {
    memcpy(out, doc->domain_sep, 32);
}

void eip712_message_hash(const eip712_doc *doc, uint8_t out[32]) {
    memcpy(out, doc->message_hash, 32);
}

void eip712_digest(const eip712_doc *doc, uint8_t digest[32]) {
    keccak256_ctx k;
    keccak256_init(&k);
    keccak256_update(&k, "\x19\x01", 2);
    keccak256_update(&k, doc->domain_sep, 32);
    if (!doc->primary_is_domain) keccak256_update(&k, doc->message_hash, 32);
    keccak256_final(&k, digest);
}

char *eip712_encode_type(const eip712_doc *doc, const char *type_name) {
    long idx = find_struct(doc, type_name, strlen(type_name));
    if (idx < 0) return NULL;
    return encode_type_idx(doc, (size_t)idx);
}

int eip712_digest_json(const char *json, size_t len, uint8_t digest[32], acc_err *err) {
    eip712_doc *d;
    int rc = eip712_parse(json, len, &d, err);
    if (rc != ACC_OK) return rc;
    eip712_digest(d, digest);
    eip712_free(d);
    return ACC_OK;
}
