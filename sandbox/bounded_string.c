/*
 * bounded_string.c: string.find, match, gmatch, gsub, rep, format, sub, byte, upper, lower and
 * reverse that pay for their work.
 *
 * Why this file exists: the sandbox stops a script from a Lua hook, and a hook never runs inside
 * a C function. Lua's own pattern matcher backtracks without limit (`("a"):rep(200):find(
 * ".-.-.-.-.-b")` runs for minutes) and string.rep can copy gigabytes in one call, so either would
 * hold the CPU past every limit. Here the pattern matcher is our own, written from the Lua 5.4
 * manual (§6.4.1), with the same semantics and error messages as Lua's (its character classes are
 * the C locale's, whatever locale the host runs in); every matcher step (each
 * single-character test, each backtrack) and every 64 bytes copied are charged with sbx_charge,
 * which raises the sandbox's stop error when a limit is hit. The matcher's recursion is bounded
 * (MATCH_MAX_DEPTH, as Lua's MAXCCALLS) so no pattern can overflow the C stack.
 */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "sandbox/internal.h"

#define MATCH_MAX_CAPTURES 32 /* LUA_MAXCAPTURES */
#define MATCH_MAX_DEPTH 200   /* Lua's MAXCCALLS, its bound on matcher recursion */
#define CAP_OPEN (-1)         /* a capture whose ')' has not been reached yet */
#define CAP_POSITION (-2)     /* a position capture "()" */
#define ESC '%'
/* string.rep's cap on a result, as Lua 5.4's MAXSIZE (results must fit an int). */
#define REP_MAX_SIZE ((size_t)INT_MAX)

/* --- the pattern matcher --------------------------------------------------------------------- */

typedef struct matcher {
    sbx_meter_t meter;
    const char *subject;     /* start of the subject */
    const char *subject_end; /* one past its last byte */
    const char *pattern_end; /* one past the pattern's last byte */
    int depth_left;          /* recursion budget; "pattern too complex" at 0 */
    int level;               /* captures opened so far */
    struct {
        const char *start;
        ptrdiff_t len; /* a length, CAP_OPEN or CAP_POSITION */
    } capture[MATCH_MAX_CAPTURES];
} matcher_t;

static const char *match_here(matcher_t *m, const char *s, const char *p);

static void matcher_init(matcher_t *m, lua_State *L, const char *s, size_t ls, const char *p,
                         size_t lp) {
    m->meter.L = L;
    m->meter.pending = 0;
    m->meter.scanned = 0;
    m->subject = s;
    m->subject_end = s + ls;
    m->pattern_end = p + lp;
    m->depth_left = MATCH_MAX_DEPTH;
    m->level = 0;
}

/* Before each new attempt: no captures, full recursion budget. */
static void matcher_reset(matcher_t *m) {
    m->level = 0;
    m->depth_left = MATCH_MAX_DEPTH;
}

/* The classes of the C locale, by ASCII ranges: what stock Lua's isalpha & co. answer in the
 * locale every C program starts in, without a call into the C library per byte, and the same
 * whatever locale the host switches to. */
static inline int is_lower(int c) { return (unsigned)(c - 'a') < 26; }
static inline int is_upper(int c) { return (unsigned)(c - 'A') < 26; }
static inline int is_digit(int c) { return (unsigned)(c - '0') < 10; }
static inline int is_alpha(int c) { return is_lower(c | 0x20); }
static inline int is_alnum(int c) { return is_alpha(c) || is_digit(c); }
static inline int is_graph(int c) { return (unsigned)(c - 0x21) < 0x5E; }

/* Does byte c belong to the class letter cl (%a, %D, ...)? A non-letter stands for itself. */
static inline int class_has(int c, int cl) {
    int in;
    switch (cl | 0x20) { /* the lower-case letter; only letters land on one */
    case 'a': in = is_alpha(c); break;
    case 'c': in = c < 0x20 || c == 0x7F; break;
    case 'd': in = is_digit(c); break;
    case 'g': in = is_graph(c); break;
    case 'l': in = is_lower(c); break;
    case 'p': in = is_graph(c) && !is_alnum(c); break;
    case 's': in = c == ' ' || (unsigned)(c - '\t') < 5; break;
    case 'u': in = is_upper(c); break;
    case 'w': in = is_alnum(c); break;
    case 'x': in = is_digit(c) || (unsigned)((c | 0x20) - 'a') < 6; break;
    case 'z': in = c == 0; break; /* deprecated in 5.2 but still accepted by 5.4 */
    default: return cl == c;
    }
    return is_upper(cl) ? !in : in; /* upper-case letters are the complements */
}

/* Where the single-character class starting at p ends (one past it). Raises on a malformed one. */
static const char *class_end(matcher_t *m, const char *p) {
    char c = *p++;
    if (c == ESC) {
        if (p >= m->pattern_end) luaL_error(m->meter.L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        const char *set = p;
        if (p < m->pattern_end && *p == '^') p++;
        /* The first character of a set is never its closing ']' ("[]]" is a set of ']'). */
        do {
            if (p >= m->pattern_end) luaL_error(m->meter.L, "malformed pattern (missing ']')");
            c = *p++;
            if (c == ESC && p < m->pattern_end) p++; /* "%]" does not close the set */
        } while (p >= m->pattern_end || *p != ']');
        /* Scanned on every visit: a set of a million bytes must not be walked for free. */
        sbx_meter_scan(&m->meter, (size_t)(p - set));
        return p + 1;
    }
    return p;
}

/* Is byte c in the set [..] that spans set..set_close (set points at '[', set_close at ']')?
 * Each element looked at is one unit of work. */
static int set_has(matcher_t *m, int c, const char *set, const char *set_close) {
    int want = 1, found = 0;
    const char *p = set + 1;
    if (*p == '^') {
        want = 0;
        p++;
    }
    uint64_t looked = 0;
    for (; p < set_close; p++) {
        looked++;
        if (*p == ESC) {
            p++;
            if (class_has(c, (unsigned char)*p)) {
                found = 1;
                break;
            }
        } else if (p + 2 < set_close && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2]) {
                found = 1;
                break;
            }
            p += 2;
        } else if ((unsigned char)*p == c) {
            found = 1;
            break;
        }
    }
    sbx_meter_add(&m->meter, looked);
    return found ? want : !want;
}

/* Does the class p..class_stop match the subject byte at s? Its callers pay one unit per test. */
static inline int single_match(matcher_t *m, const char *s, const char *p, const char *class_stop) {
    if (s >= m->subject_end) return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case ESC: return class_has(c, (unsigned char)p[1]);
    case '[': return set_has(m, c, p, class_stop - 1);
    default: return (unsigned char)*p == c;
    }
}

/* %bxy at s: the shortest balanced run from x to its matching y. */
static const char *match_balance(matcher_t *m, const char *s, const char *p) {
    if (p + 1 >= m->pattern_end)
        luaL_error(m->meter.L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->subject_end || *s != p[0]) return NULL;
    char open = p[0], close = p[1];
    size_t depth = 1;
    const char *from = s;
    while (++s < m->subject_end) {
        if (s - from >= SBX_CHARGE_EVERY) { /* one unit a byte, paid a round at a time */
            sbx_meter_add(&m->meter, (uint64_t)(s - from));
            from = s;
        }
        if (*s == close) {
            if (--depth == 0) break;
        } else if (*s == open) {
            depth++;
        }
    }
    sbx_meter_add(&m->meter, (uint64_t)(s - from) + 1);
    return s < m->subject_end ? s + 1 : NULL;
}

/* Greedy repetition: take as many as possible, then give back one at a time. Each test is one
 * unit, paid SBX_CHARGE_EVERY tests at a time. */
static const char *expand_longest(matcher_t *m, const char *s, const char *p, const char *ep) {
    ptrdiff_t n = 0;
    for (;;) {
        ptrdiff_t from = n, stop = n + SBX_CHARGE_EVERY;
        while (n < stop && single_match(m, s + n, p, ep)) n++;
        sbx_meter_add(&m->meter, (uint64_t)(n - from) + 1);
        if (n < stop) break;
    }
    for (; n >= 0; n--) {
        const char *r = match_here(m, s + n, ep + 1);
        if (r) return r;
    }
    return NULL;
}

/* Lazy repetition: try the rest first, take one more only when the rest fails. */
static const char *expand_shortest(matcher_t *m, const char *s, const char *p, const char *ep) {
    for (;;) {
        const char *r = match_here(m, s, ep + 1);
        if (r) return r;
        sbx_meter_add(&m->meter, 1);
        if (!single_match(m, s, p, ep)) return NULL;
        s++;
    }
}

static const char *open_capture(matcher_t *m, const char *s, const char *p, ptrdiff_t kind) {
    if (m->level >= MATCH_MAX_CAPTURES) luaL_error(m->meter.L, "too many captures");
    m->capture[m->level].start = s;
    m->capture[m->level].len = kind;
    m->level++;
    const char *r = match_here(m, s, p);
    if (!r) m->level--; /* the capture did not happen after all */
    return r;
}

static const char *close_capture(matcher_t *m, const char *s, const char *p) {
    int l = m->level - 1;
    while (l >= 0 && m->capture[l].len != CAP_OPEN) l--;
    if (l < 0) luaL_error(m->meter.L, "invalid pattern capture");
    m->capture[l].len = s - m->capture[l].start;
    const char *r = match_here(m, s, p);
    if (!r) m->capture[l].len = CAP_OPEN; /* undo: the match is retried from elsewhere */
    return r;
}

/* %1..%9 in a pattern: the text of an earlier, closed capture. */
static const char *match_backref(matcher_t *m, const char *s, int digit) {
    int l = digit - '1';
    if (l < 0 || l >= m->level || m->capture[l].len == CAP_OPEN)
        luaL_error(m->meter.L, "invalid capture index %%%d", l + 1);
    size_t len = (size_t)m->capture[l].len; /* a position capture has no text: compares as huge */
    sbx_meter_copy(&m->meter, m->capture[l].len > 0 ? len : 0);
    if ((size_t)(m->subject_end - s) >= len && memcmp(m->capture[l].start, s, len) == 0)
        return s + len;
    return NULL;
}

/*
 * Matches pattern p against the subject at s; returns where the match ends or NULL. Straight runs
 * of the pattern are walked in the loop; only quantifiers and captures recurse, and each level
 * draws from depth_left, so the C stack is bounded whatever the pattern.
 */
static const char *match_here(matcher_t *m, const char *s, const char *p) {
    if (m->depth_left-- == 0) luaL_error(m->meter.L, "pattern too complex");
    for (;;) {
        sbx_meter_add(&m->meter, 2); /* this step, and the one-character test it may make */
        if (p >= m->pattern_end) break;
        if (*p == '(') {
            if (p + 1 < m->pattern_end && p[1] == ')')
                s = open_capture(m, s, p + 2, CAP_POSITION);
            else
                s = open_capture(m, s, p + 1, CAP_OPEN);
            break;
        }
        if (*p == ')') {
            s = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->pattern_end) {
            if (s != m->subject_end) s = NULL;
            break;
        }
        if (*p == ESC && p + 1 < m->pattern_end) {
            if (p[1] == 'b') {
                s = match_balance(m, s, p + 2);
                if (!s) break;
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                p += 2;
                if (p >= m->pattern_end || *p != '[')
                    luaL_error(m->meter.L, "missing '[' after '%%f' in pattern");
                const char *ep = class_end(m, p);
                int before = (s == m->subject) ? '\0' : (unsigned char)s[-1];
                int here = (s < m->subject_end) ? (unsigned char)*s : '\0';
                if (!set_has(m, before, p, ep - 1) && set_has(m, here, p, ep - 1)) {
                    p = ep;
                    continue;
                }
                s = NULL;
                break;
            }
            if (is_digit((unsigned char)p[1])) {
                s = match_backref(m, s, (unsigned char)p[1]);
                if (!s) break;
                p += 2;
                continue;
            }
        }
        /* A single-character class, maybe followed by a quantifier. */
        const char *ep = class_end(m, p);
        char q = ep < m->pattern_end ? *ep : '\0';
        if (!single_match(m, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') { /* zero repetitions are fine */
                p = ep + 1;
                continue;
            }
            s = NULL;
            break;
        }
        if (q == '?') {
            const char *r = match_here(m, s + 1, ep + 1);
            if (r) {
                s = r;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (q == '+') {
            s = expand_longest(m, s + 1, p, ep);
            break;
        }
        if (q == '*') {
            s = expand_longest(m, s, p, ep);
            break;
        }
        if (q == '-') {
            s = expand_shortest(m, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    m->depth_left++;
    return s;
}

/* Capture i (or the whole match s..e when there are none and i is 0): its text in *text and its
 * length, or CAP_POSITION for a position capture. */
static ptrdiff_t get_capture(matcher_t *m, int i, const char *s, const char *e, const char **text) {
    if (i >= m->level) {
        if (i != 0) luaL_error(m->meter.L, "invalid capture index %%%d", i + 1);
        *text = s;
        return e - s;
    }
    ptrdiff_t len = m->capture[i].len;
    if (len == CAP_OPEN) luaL_error(m->meter.L, "unfinished capture");
    *text = m->capture[i].start;
    return len;
}

/* Pushes capture i, as get_capture finds it; a position capture as an integer. */
static void push_capture(matcher_t *m, int i, const char *s, const char *e) {
    const char *text;
    ptrdiff_t len = get_capture(m, i, s, e, &text);
    if (len == CAP_POSITION) lua_pushinteger(m->meter.L, (lua_Integer)(text - m->subject) + 1);
    else lua_pushlstring(m->meter.L, text, (size_t)len);
}

/* Pushes every capture; with none, the whole match (unless s is NULL, as find wants). */
static int push_captures(matcher_t *m, const char *s, const char *e) {
    int n = (m->level == 0 && s) ? 1 : m->level;
    luaL_checkstack(m->meter.L, n, "too many captures");
    for (int i = 0; i < n; i++) push_capture(m, i, s, e);
    return n;
}

/* --- find, match, gmatch --------------------------------------------------------------------- */

/* Lua 5.4's reading of an init argument: negative counts from the end, 0 and too-negative are 1. */
static size_t start_offset(lua_Integer pos, size_t len) {
    if (pos > 0) return (size_t)pos - 1;
    if (pos == 0) return 0;
    if (pos < -(lua_Integer)len) return 0;
    return (size_t)((lua_Integer)len + pos);
}

/* True when the pattern has none of Lua's magic characters (embedded zeros allowed). */
static int pattern_is_plain(const char *p, size_t lp) {
    for (size_t i = 0; i < lp; i++)
        if (strchr("^$*+?.([%-", p[i]) && p[i] != '\0') return 0;
    return 1;
}

/*
 * Where the text p (lp bytes) first occurs in s (ls bytes), or NULL. This is stock Lua's
 * lmemfind (memchr for the first byte, memcmp for the rest), the fastest on everyday text, with
 * every byte it reads paid for. On a subject like "aaa...a" and a pattern "aa...ab" it would
 * compare lp bytes at every position, so once its comparisons have read twice the subject it
 * hands the rest to memmem, which is linear: the work stays O(ls + lp) and paid for.
 */
static const char *find_text(sbx_meter_t *meter, const char *s, size_t ls, const char *p, size_t lp) {
    if (lp == 0) return s;
    if (lp > ls) return NULL;
    const char *end = s + (ls - lp) + 1; /* a match starts before end */
    size_t compared = 0;
    for (const char *at = s; at < end;) {
        const char *hit = memchr(at, (unsigned char)p[0], (size_t)(end - at));
        sbx_meter_copy(meter, (size_t)((hit ? hit + 1 : end) - at));
        if (!hit) return NULL;
        if (memcmp(hit + 1, p + 1, lp - 1) == 0) return hit;
        sbx_meter_copy(meter, lp - 1);
        at = hit + 1;
        compared += lp - 1;
        if (compared > 2 * ls) {
            sbx_meter_copy(meter, (size_t)(s + ls - at));
            return memmem(at, (size_t)(s + ls - at), p, lp);
        }
    }
    return NULL;
}

static int find_or_match(lua_State *L, int find) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || pattern_is_plain(p, lp))) {
        sbx_meter_t meter = {.L = L};
        sbx_meter_copy(&meter, lp); /* reading the pattern */
        const char *hit = find_text(&meter, s + init, ls - init, p, lp);
        sbx_meter_flush(&meter);
        if (hit) {
            lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
            lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    matcher_t m;
    int anchored = lp > 0 && *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    matcher_init(&m, L, s, ls, p, lp);
    sbx_meter_copy(&m.meter, lp); /* reading the pattern, once per call */
    const char *from = s + init;
    do {
        matcher_reset(&m);
        const char *e = match_here(&m, from, p);
        if (e) {
            sbx_meter_flush(&m.meter);
            if (find) {
                lua_pushinteger(L, (lua_Integer)(from - s) + 1);
                lua_pushinteger(L, (lua_Integer)(e - s));
                return push_captures(&m, NULL, NULL) + 2;
            }
            return push_captures(&m, from, e);
        }
    } while (from++ < m.subject_end && !anchored);
    sbx_meter_flush(&m.meter);
    luaL_pushfail(L);
    return 1;
}

static int bounded_find(lua_State *L) {
    return find_or_match(L, 1);
}

static int bounded_match(lua_State *L) {
    return find_or_match(L, 0);
}

/* The iterator's state, a userdata upvalue; the subject and pattern are upvalues 1 and 2 so
 * their bytes stay alive (Lua 5.4 strings never move, so the pointers here stay good). */
typedef struct gmatch_state {
    const char *s, *p;
    size_t ls, lp;
    size_t next;       /* where the next search starts; len + 1 when done */
    size_t last_end;   /* end of the last match, so an empty match there is skipped */
    int have_last;
} gmatch_state_t;

static int gmatch_step(lua_State *L) {
    gmatch_state_t *st = lua_touserdata(L, lua_upvalueindex(3));
    const char *s = st->s, *p = st->p;
    size_t ls = st->ls;
    matcher_t m;
    matcher_init(&m, L, s, ls, p, st->lp);
    for (size_t at = st->next; at <= ls; at++) {
        matcher_reset(&m);
        const char *e = match_here(&m, s + at, p);
        if (e && !(st->have_last && (size_t)(e - s) == st->last_end)) {
            st->next = st->last_end = (size_t)(e - s);
            st->have_last = 1;
            sbx_meter_flush(&m.meter);
            return push_captures(&m, s + at, e);
        }
    }
    st->next = ls + 1;
    sbx_meter_flush(&m.meter);
    return 0;
}

static int bounded_gmatch(lua_State *L) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    lua_settop(L, 2);
    gmatch_state_t *st = lua_newuserdatauv(L, sizeof *st, 0);
    st->s = s;
    st->p = p;
    st->ls = ls;
    st->lp = lp;
    st->next = init > ls ? ls + 1 : init;
    st->last_end = 0;
    st->have_last = 0;
    lua_pushcclosure(L, gmatch_step, 3);
    return 1;
}

/* --- gsub ------------------------------------------------------------------------------------ */

/* Appends the replacement string (argument 3) for the match s..e, expanding %0-%9 and %%. */
static void add_replacement_string(matcher_t *m, luaL_Buffer *b, const char *s, const char *e, const char *r,
                                   size_t lr) {
    lua_State *L = m->meter.L;
    const char *r_end = r + lr;
    while (r < r_end) {
        const char *pct = memchr(r, ESC, (size_t)(r_end - r));
        if (!pct) {
            sbx_buffer_add(&m->meter, b, r, (size_t)(r_end - r));
            break;
        }
        sbx_buffer_add(&m->meter, b, r, (size_t)(pct - r));
        r = pct + 1;
        char c = r < r_end ? *r : '\0';
        if (c == ESC) {
            luaL_addchar(b, ESC);
        } else if (c == '0') {
            sbx_buffer_add(&m->meter, b, s, (size_t)(e - s));
        } else if (is_digit((unsigned char)c)) {
            const char *text;
            ptrdiff_t len = get_capture(m, c - '1', s, e, &text);
            if (len == CAP_POSITION) { /* its decimal text */
                lua_pushinteger(L, (lua_Integer)(text - m->subject) + 1);
                sbx_meter_copy(&m->meter, 24);
                luaL_addvalue(b);
            } else {
                sbx_buffer_add(&m->meter, b, text, (size_t)len);
            }
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", ESC);
        }
        r++;
    }
}

/* Appends the replacement for the match s..e; returns whether the text changed. r..r+lr is the
 * replacement string when kind is a string or a number. */
static int add_replacement(matcher_t *m, luaL_Buffer *b, const char *s, const char *e, int kind, const char *r,
                           size_t lr) {
    lua_State *L = m->meter.L;
    if (kind == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        sbx_meter_flush(&m->meter); /* the callback may run long; settle our debt first */
        lua_call(L, n, 1);
    } else if (kind == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_replacement_string(m, b, s, e, r, lr);
        return 1;
    }
    if (!lua_toboolean(L, -1)) { /* false or nil keeps the original text */
        lua_pop(L, 1);
        sbx_buffer_add(&m->meter, b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    size_t len;
    lua_tolstring(L, -1, &len);
    sbx_meter_copy(&m->meter, len);
    luaL_addvalue(b);
    return 1;
}

static int bounded_gsub(lua_State *L) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L, kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION ||
                            kind == LUA_TTABLE,
                     3, "string/function/table");
    size_t lr = 0;
    const char *r = kind == LUA_TNUMBER || kind == LUA_TSTRING ? lua_tolstring(L, 3, &lr) : NULL;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int anchored = lp > 0 && *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    matcher_t m;
    matcher_init(&m, L, s, ls, p, lp);
    const char *src = s, *last_end = NULL;
    lua_Integer n = 0;
    int changed = 0;
    while (n < max_n) {
        matcher_reset(&m);
        const char *e = match_here(&m, src, p);
        if (e && e != last_end) { /* an empty match right after the last match does not count */
            n++;
            changed |= add_replacement(&m, &b, src, e, kind, r, lr);
            src = last_end = e;
        } else if (src < m.subject_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchored) break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        sbx_buffer_add(&m.meter, &b, src, (size_t)(m.subject_end - src));
        luaL_pushresult(&b);
    }
    sbx_meter_flush(&m.meter);
    lua_pushinteger(L, n);
    return 2;
}

/* --- rep, format ----------------------------------------------------------------------------- */

static int bounded_rep(lua_State *L) {
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    if (l + lsep < l || l + lsep > REP_MAX_SIZE / (lua_Unsigned)n)
        return luaL_error(L, "resulting string too large");
    size_t total = (size_t)n * l + (size_t)(n - 1) * lsep;
    sbx_meter_t m = {.L = L};
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, total);
    /*
     * The result is the period s..sep repeated and cut to `total`. Write one period, then double
     * what is written by copying it onto its own end: the copied length is always a whole number of
     * periods (or the last piece), so the result stays periodic, and a one-byte s costs log2(n)
     * memcpy calls rather than n.
     */
    size_t done = l < total ? l : total;
    sbx_copy(&m, out, s, done);
    if (done < total) {
        size_t k = lsep < total - done ? lsep : total - done;
        sbx_copy(&m, out + done, sep, k);
        done += k;
    }
    while (done < total) {
        size_t k = done < total - done ? done : total - done;
        sbx_copy(&m, out + done, out, k);
        done += k;
    }
    luaL_pushresultsize(&b, total);
    sbx_meter_flush(&m);
    return 1;
}

/*
 * Lua's format is linear in its output, but one call can produce a lot: pay for it after. The
 * original is called as a plain C function inside our own call frame, not through lua_call, so
 * its argument errors name 'format' and carry the caller's line exactly as before.
 */
static _Atomic(lua_CFunction) lua_format;

static int bounded_format(lua_State *L) {
    int nargs = lua_gettop(L);
    int nresults = atomic_load_explicit(&lua_format, memory_order_relaxed)(L);
    size_t len = 0;
    lua_tolstring(L, -1, &len);
    sbx_charge(L, sbx_copy_units(len) + (uint64_t)nargs - 1);
    return nresults;
}

/* --- sub, byte, upper, lower, reverse ------------------------------------------------------
 *
 * Lua 5.4's own (lstrlib.c) written again, with the same arguments, results and errors. Each pays
 * before it works, what the generic wrapper of stdlib.c charges the other linear functions (a unit
 * per 64 bytes read and written, sub reading only what it returns; one per result; one per call):
 * that wrapper's upvalue lookups and second look at the arguments cost more than these functions
 * themselves on short strings. */

/* Lua's posrelatI: a start position, negative counting from the end, clamped to 1.. */
static size_t start_position(lua_Integer pos, size_t len) {
    if (pos > 0) return (size_t)pos;
    if (pos == 0) return 1;
    if (pos < -(lua_Integer)len) return 1;
    return len + (size_t)pos + 1;
}

/* Lua's getendpos: argument arg as an end position (default def), clamped to 0..len. */
static size_t end_position(lua_State *L, int arg, lua_Integer def, size_t len) {
    lua_Integer pos = luaL_optinteger(L, arg, def);
    if (pos > (lua_Integer)len) return len;
    if (pos >= 0) return (size_t)pos;
    if (pos < -(lua_Integer)len) return 0;
    return len + (size_t)pos + 1;
}

static int bounded_sub(lua_State *L) {
    size_t l;
    const char *s = luaL_checklstring(L, 1, &l);
    size_t start = start_position(luaL_checkinteger(L, 2), l);
    size_t end = end_position(L, 3, -1, l);
    if (end > l) end = l;
    size_t n = start <= end ? end - start + 1 : 0;
    sbx_charge(L, sbx_copy_units(n) + 1); /* the bytes, the result */
    lua_pushlstring(L, n ? s + start - 1 : "", n);
    return 1;
}

static int bounded_byte(lua_State *L) {
    size_t l;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer pi = luaL_optinteger(L, 2, 1);
    size_t pose = end_position(L, 3, pi, l);
    size_t posi = start_position(pi, l);
    if (posi > pose) return 0; /* an empty interval: no values */
    if (pose - posi >= (size_t)INT_MAX) return luaL_error(L, "string slice too long");
    int n = (int)(pose - posi) + 1;
    luaL_checkstack(L, n, "string slice too long");
    sbx_charge(L, (uint64_t)n + 1);
    for (int i = 0; i < n; i++) lua_pushinteger(L, (unsigned char)s[posi + (size_t)i - 1]);
    return n;
}

/* upper, lower and reverse: l bytes read, l written. Ours, so that they pay first and check their
 * argument once; upper and lower change ASCII letters, as toupper and tolower do in the C locale
 * (the matcher's classes are the C locale's too). */
enum transform { TO_UPPER, TO_LOWER, REVERSED };

/* Copies n bytes, flipping the case bit (0x20) of the bytes in lo..lo+25 ('a' for upper, 'A' for
 * lower): eight at a time, so that a megabyte is quick even in a Debug build. In each byte's low
 * seven bits h, h + (0x80 - lo) reaches 0x80 exactly when h >= lo, and h + (0x80 - lo - 26) when
 * h > lo + 25, without a carry into the next byte; bytes with the high bit set are left alone. */
static void change_case(char *dst, const char *src, size_t n, unsigned lo) {
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        uint64_t h = w & ~high;
        uint64_t from_lo = h + ones * (0x80 - lo), past_hi = h + ones * (0x80 - lo - 26);
        w ^= (from_lo & ~past_hi & ~w & high) >> 2;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (char)(c - lo < 26 ? c ^ 0x20 : c);
    }
}

static int transform(lua_State *L, enum transform how) {
    size_t l;
    const char *s = luaL_checklstring(L, 1, &l);
    sbx_charge(L, sbx_copy_units(2 * l) + 1); /* read and written, the result */
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, l);
    if (how == REVERSED) {
        for (size_t i = 0; i < l; i++) p[i] = s[l - i - 1];
    } else {
        change_case(p, s, l, how == TO_UPPER ? 'a' : 'A');
    }
    luaL_pushresultsize(&b, l);
    return 1;
}

static int bounded_upper(lua_State *L) { return transform(L, TO_UPPER); }
static int bounded_lower(lua_State *L) { return transform(L, TO_LOWER); }
static int bounded_reverse(lua_State *L) { return transform(L, REVERSED); }

/* Keeps t[name] (t at the top of the stack) in *slot when it is a plain C function; returns
 * whether it is. */
static bool keep_original(lua_State *L, const char *name, _Atomic(lua_CFunction) *slot) {
    int top = lua_gettop(L);
    lua_getfield(L, -1, name);
    lua_CFunction f = lua_tocfunction(L, -1);
    bool plain = f != NULL && lua_getupvalue(L, -1, 1) == NULL;
    lua_settop(L, top);
    if (plain) atomic_store_explicit(slot, f, memory_order_relaxed);
    return plain;
}

void sbx_open_bounded_string(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"find", bounded_find}, {"match", bounded_match}, {"gmatch", bounded_gmatch},
        {"gsub", bounded_gsub}, {"rep", bounded_rep},     {"sub", bounded_sub},
        {"byte", bounded_byte}, {"upper", bounded_upper}, {"lower", bounded_lower},
        {"reverse", bounded_reverse}, {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
    /* Our format calls Lua's own directly, which is only right for a plain C function without
     * upvalues, as Lua 5.4's is. */
    if (!keep_original(L, "format", &lua_format)) luaL_error(L, "string.format is not Lua 5.4's own");
    lua_pushcfunction(L, bounded_format);
    lua_setfield(L, -2, "format");
}
