/*
 * names.c: the registry's rules for what it accepts, without SQL: names, descriptions, UTF-8,
 * semantic versions, and the digests that signatures are made over (registry.h's top comment).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meters/eth/hex.h"
#include "meters/eth/keccak.h"
#include "meters/eth/keys.h"
#include "registry/store.h"

/* ------------------------------------------------------------------------------------ names */

static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int registry_name_check(const char *name, const char *what, acc_err *err) {
    if (!name || !*name) return acc_fail(err, ACC_EINVAL, "%s: a name is needed", what);
    size_t n = strlen(name);
    if (n > REGISTRY_NAME_MAX)
        return acc_fail(err, ACC_EINVAL, "%s: '%.64s...' is longer than %d bytes", what, name, REGISTRY_NAME_MAX);
    bool part_start = true;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '/') {
            if (part_start || i + 1 == n)
                return acc_fail(err, ACC_EINVAL, "%s: '%s': '/' must join two non-empty parts", what, name);
            part_start = true;
            continue;
        }
        if (!name_char(c)) {
            if (c >= 'A' && c <= 'Z')
                return acc_fail(err, ACC_EINVAL, "%s: '%s': names are lower case", what, name);
            return acc_fail(err, ACC_EINVAL, "%s: '%s': names hold only a-z 0-9 . _ - and '/'", what, name);
        }
        if (part_start && !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return acc_fail(err, ACC_EINVAL, "%s: '%s': each part starts with a letter or digit", what, name);
        part_start = false;
    }
    return ACC_OK;
}

/* Names under test/ belong to the built-in test provider. */
int registry_name_check_new(const char *name, const char *what, acc_err *err) {
    int rc = registry_name_check(name, what, err);
    if (rc == ACC_OK && strncmp(name, "test/", 5) == 0)
        return acc_fail(err, ACC_EINVAL, "%s: '%s': names under test/ are the built-in test provider's", what, name);
    return rc;
}

/* ------------------------------------------------------------------------------ text checks */

bool registry_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef) n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4) n = 3, cp = c & 0x07;
        else return false;
        if ((size_t)(end - p) <= n) return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* overlong 3- and 4-byte forms, surrogates, past U+10FFFF */
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        p += n + 1;
    }
    return true;
}

int registry_description_check(const char *s, const char *what, acc_err *err) {
    size_t n = s ? strlen(s) : 0;
    if (n > REGISTRY_DESCRIPTION_MAX)
        return acc_fail(err, ACC_EINVAL, "%s: longer than %d bytes", what, REGISTRY_DESCRIPTION_MAX);
    if (!registry_utf8_valid(s, n)) return acc_fail(err, ACC_EINVAL, "%s: not UTF-8", what);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\t')
            return acc_fail(err, ACC_EINVAL, "%s: control character at byte %zu", what, i);
    return ACC_OK;
}

/* ---------------------------------------------------------------------- semantic versions */

/* semver.org 2.0.0: MAJOR.MINOR.PATCH, numbers without leading zeros, then optionally
 * -PRERELEASE (dot-separated identifiers of [0-9A-Za-z-], numeric ones without leading zeros) and
 * +BUILD (dot-separated identifiers of [0-9A-Za-z-]). */
static bool ident_char(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

/* Parses identifiers from s up to a character not allowed; returns the end, or NULL. */
static const char *parse_idents(const char *s, bool numeric_rule) {
    for (;;) {
        const char *start = s;
        bool all_digits = true;
        while (ident_char(*s)) all_digits &= (*s >= '0' && *s <= '9'), s++;
        if (s == start) return NULL;
        if (numeric_rule && all_digits && s - start > 1 && *start == '0') return NULL;
        if (*s != '.') return s;
        s++;
    }
}

static const char *parse_number(const char *s, unsigned long long *out) {
    if (*s < '0' || *s > '9') return NULL;
    if (*s == '0' && s[1] >= '0' && s[1] <= '9') return NULL;
    unsigned long long v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (~0ull - 9) / 10) return NULL;
        v = v * 10 + (unsigned)(*s - '0');
    }
    *out = v;
    return s;
}

typedef struct semver {
    unsigned long long part[3];
    const char *pre; /* after '-', up to '+' or the end; NULL when none */
    size_t pre_len;
} semver_t;

static bool semver_parse(const char *s, semver_t *v) {
    if (!s || strlen(s) > REGISTRY_VERSION_MAX) return false;
    for (int i = 0; i < 3; i++) {
        s = parse_number(s, &v->part[i]);
        if (!s || (i < 2 && *s++ != '.')) return false;
    }
    v->pre = NULL;
    v->pre_len = 0;
    if (*s == '-') {
        const char *end = parse_idents(s + 1, true);
        if (!end) return false;
        v->pre = s + 1;
        v->pre_len = (size_t)(end - v->pre);
        s = end;
    }
    if (*s == '+') {
        s = parse_idents(s + 1, false);
        if (!s) return false;
    }
    return *s == '\0';
}

int registry_semver_check(const char *s, acc_err *err) {
    semver_t v;
    if (!semver_parse(s, &v))
        return acc_fail(err, ACC_EINVAL, "version: '%.80s' is not a semantic version (MAJOR.MINOR.PATCH, as 1.2.0 or 1.0.0-beta.1)",
                        s ? s : "");
    return ACC_OK;
}

static int cmp_ull(unsigned long long a, unsigned long long b) { return a < b ? -1 : a > b; }

/* Pre-release precedence: identifiers left to right; numeric ones numerically and below
 * alphanumeric ones; a longer list wins a tie. */
static int cmp_pre(const char *a, size_t an, const char *b, size_t bn) {
    while (an && bn) {
        size_t al = 0, bl = 0;
        while (al < an && a[al] != '.') al++;
        while (bl < bn && b[bl] != '.') bl++;
        bool ad = true, bd = true;
        for (size_t i = 0; i < al; i++) ad &= a[i] >= '0' && a[i] <= '9';
        for (size_t i = 0; i < bl; i++) bd &= b[i] >= '0' && b[i] <= '9';
        int c;
        if (ad && bd) c = al != bl ? cmp_ull(al, bl) : memcmp(a, b, al); /* no leading zeros */
        else if (ad != bd) c = ad ? -1 : 1;
        else {
            c = memcmp(a, b, al < bl ? al : bl);
            if (c == 0) c = cmp_ull(al, bl);
        }
        if (c) return c < 0 ? -1 : 1;
        a += al, an -= al, b += bl, bn -= bl;
        if (an) a++, an--;
        if (bn) b++, bn--;
    }
    return cmp_ull(an, bn);
}

int registry_semver_compare(const char *as, const char *bs) {
    semver_t a, b;
    bool ao = semver_parse(as, &a), bo = semver_parse(bs, &b);
    if (!ao || !bo) return ao - bo;
    for (int i = 0; i < 3; i++) {
        int c = cmp_ull(a.part[i], b.part[i]);
        if (c) return c;
    }
    if (!a.pre || !b.pre) return (a.pre == NULL) - (b.pre == NULL); /* a release outranks its pre-releases */
    return cmp_pre(a.pre, a.pre_len, b.pre, b.pre_len);
}

bool registry_semver_is_prerelease(const char *s) {
    semver_t v;
    return semver_parse(s, &v) && v.pre != NULL;
}

/* ---------------------------------------------------------------------------------- digests */

/* keccak256 of the parts joined by single NUL bytes. */
static void digest_parts(const char *const *parts, size_t n, uint8_t digest[32]) {
    keccak256_ctx c;
    keccak256_init(&c);
    for (size_t i = 0; i < n; i++) {
        if (i) keccak256_update(&c, "", 1);
        keccak256_update(&c, parts[i], strlen(parts[i]));
    }
    keccak256_final(&c, digest);
}

void registry_contribution_digest(const char *datanet, const char *text, size_t len, uint8_t digest[32]) {
    keccak256_ctx c;
    keccak256_init(&c);
    keccak256_update(&c, datanet, strlen(datanet));
    keccak256_update(&c, "", 1);
    keccak256_update(&c, text, len);
    keccak256_final(&c, digest);
}

void registry_review_digest(const char *datanet, int64_t record_id, bool accept, uint8_t digest[32]) {
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)record_id);
    const char *parts[] = {"accrue review", datanet, id, accept ? "accept" : "reject"};
    digest_parts(parts, 4, digest);
}

void registry_listing_digest(const char *agent, const char *version, bool listed, uint8_t digest[32]) {
    const char *parts[] = {"accrue listing", agent, version ? version : "", listed ? "list" : "unlist"};
    digest_parts(parts, 4, digest);
}

void registry_signed_digest(const uint8_t digest[32], uint8_t to_sign[32]) { eth_personal_digest(digest, 32, to_sign); }

int registry_verify_signer(const uint8_t digest[32], const uint8_t sig[65], const uint8_t want[20], const char *what,
                           const char *who, acc_err *err) {
    uint8_t to_sign[32], got[20];
    acc_err why = {0};
    registry_signed_digest(digest, to_sign);
    if (eth_recover(to_sign, sig, got, &why) != ACC_OK)
        return acc_fail(err, ACC_EBADSIG, "%s: signature: %s", what, why.msg);
    if (memcmp(got, want, 20) != 0) {
        char got_text[ETH_ADDRESS_TEXT_SIZE], want_text[ETH_ADDRESS_TEXT_SIZE];
        eth_address_to_text(got, got_text);
        eth_address_to_text(want, want_text);
        return acc_fail(err, ACC_EBADSIG, "%s: the signature recovers %s, not the %s %s", what, got_text, who, want_text);
    }
    return ACC_OK;
}
