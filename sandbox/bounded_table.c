/*
 * bounded_table.c: table.sort, concat, move, unpack, insert and remove that pay for their work.
 *
 * Why this file exists: the sandbox stops a script from a Lua hook, and a hook never runs inside
 * a C function. Lua's table functions loop in C over ranges the script chooses: table.move with a
 * huge range, insert/remove on a table whose __len says 2^50, a sort whose comparator drives
 * quicksort to O(n^2). Each version here has the semantics and error messages of Lua 5.4's
 * (elements read and written through lua_geti/lua_seti, so metamethods are respected) and charges
 * sbx_charge per element moved, per comparison and per 64 bytes copied, so a limit stops it.
 *
 * sort is an introsort: Lua's median-of-three quicksort partition (which also catches most invalid
 * order functions, as Lua does), falling back to heapsort past 2*log2(n) levels, so no input and
 * no comparator can force more than O(n log n) comparisons, and no index outside 1..n is touched.
 */
#include <limits.h>
#include <stddef.h>

#include "sandbox/internal.h"


/* Which capabilities a non-table must offer through its metatable to be used as a table. */
#define TAB_READ 1
#define TAB_WRITE 2
#define TAB_LENGTH 4


static int metatable_has(lua_State *L, const char *key, int n) {
    lua_pushstring(L, key);
    return lua_rawget(L, -n) != LUA_TNIL;
}

/* As Lua 5.4: a table, or a value whose metatable has the metamethods `what` needs. */
static void check_table_like(lua_State *L, int arg, int what) {
    if (lua_type(L, arg) == LUA_TTABLE) return;
    int n = 1;
    if (lua_getmetatable(L, arg) && (!(what & TAB_READ) || metatable_has(L, "__index", ++n)) &&
        (!(what & TAB_WRITE) || metatable_has(L, "__newindex", ++n)) &&
        (!(what & TAB_LENGTH) || metatable_has(L, "__len", ++n))) {
        lua_pop(L, n);
    } else {
        luaL_checktype(L, arg, LUA_TTABLE); /* raises the usual "table expected" */
    }
}

static lua_Integer checked_length(lua_State *L, int arg, int what) {
    check_table_like(L, arg, what | TAB_LENGTH);
    return luaL_len(L, arg);
}

/* --- insert, remove -------------------------------------------------------------------------- */

/* Both shift elements one by one; with a __len that lies, the shift is as long as it says. */
static int bounded_insert(lua_State *L) {
    lua_Integer end = checked_length(L, 1, TAB_READ | TAB_WRITE);
    lua_Integer pos;
    end = (lua_Integer)((lua_Unsigned)end + 1u); /* first empty slot, wrapping as Lua's intop */
    switch (lua_gettop(L)) {
    case 2:
        pos = end;
        break;
    case 3: {
        sbx_meter_t m = {.L = L};
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)end, 2, "position out of bounds");
        for (lua_Integer i = end; i > pos; i--) {
            sbx_meter_add(&m, 1);
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        sbx_meter_flush(&m);
        break;
    }
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

static int bounded_remove(lua_State *L) {
    lua_Integer size = checked_length(L, 1, TAB_READ | TAB_WRITE);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    /* Argument #1, not #2, in the message: that is what Lua 5.4.4 says (later fixed upstream). */
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 1,
                      "position out of bounds");
    sbx_meter_t m = {.L = L};
    lua_geti(L, 1, pos);
    for (; pos < size; pos++) {
        sbx_meter_add(&m, 1);
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    sbx_meter_flush(&m);
    return 1;
}

/* --- move, unpack, concat -------------------------------------------------------------------- */

static int bounded_move(lua_State *L) {
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int dest = !lua_isnoneornil(L, 5) ? 5 : 1;
    check_table_like(L, 1, TAB_READ);
    check_table_like(L, dest, TAB_WRITE);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer n = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        sbx_meter_t m = {.L = L};
        /* Copy forwards unless the ranges overlap with the destination ahead of the source. */
        if (t > e || t <= f || (dest != 1 && !lua_compare(L, 1, dest, LUA_OPEQ))) {
            for (lua_Integer i = 0; i < n; i++) {
                sbx_meter_add(&m, 1);
                lua_geti(L, 1, f + i);
                lua_seti(L, dest, t + i);
            }
        } else {
            for (lua_Integer i = n - 1; i >= 0; i--) {
                sbx_meter_add(&m, 1);
                lua_geti(L, 1, f + i);
                lua_seti(L, dest, t + i);
            }
        }
        sbx_meter_flush(&m);
    }
    lua_pushvalue(L, dest);
    return 1;
}

static int bounded_unpack(lua_State *L) {
    lua_Integer i = luaL_optinteger(L, 2, 1);
    lua_Integer e = luaL_opt(L, luaL_checkinteger, 3, luaL_len(L, 1));
    if (i > e) return 0;
    lua_Unsigned n = (lua_Unsigned)e - (lua_Unsigned)i; /* count minus one, cannot overflow */
    if (n >= (unsigned int)INT_MAX || !lua_checkstack(L, (int)(++n)))
        return luaL_error(L, "too many results to unpack");
    /* Charged up front: the count is already bounded by the stack limit, this makes it paid. */
    sbx_charge(L, n);
    for (; i < e; i++) lua_geti(L, 1, i);
    lua_geti(L, 1, e);
    return (int)n;
}

/* concat's meter: one unit a field (and its separator's share) as it is added; the bytes copied,
 * which memory already bounds, whenever the meter flushes and at the end: the bytes the buffer
 * grew by since they were last paid (luaL_addvalue converts a number itself). */
typedef struct concat_meter {
    sbx_meter_t m;
    size_t paid; /* buffer length whose bytes are charged */
} concat_meter_t;

static inline void concat_pay_bytes(concat_meter_t *c, luaL_Buffer *b) {
    size_t len = luaL_bufflen(b);
    c->m.pending += (len - c->paid) / SBX_COPY_BYTES;
    c->paid = len;
    sbx_meter_flush(&c->m);
}

static inline void concat_add_field(concat_meter_t *c, luaL_Buffer *b, lua_Integer i, uint64_t extra) {
    lua_State *L = c->m.L;
    lua_geti(L, 1, i);
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid value (%s) at index %I in table for 'concat'", luaL_typename(L, -1),
                   (LUAI_UACINT)i);
    luaL_addvalue(b);
    c->m.pending += 1 + extra;
    if (c->m.pending >= SBX_CHARGE_EVERY) concat_pay_bytes(c, b);
}

static int bounded_concat(lua_State *L) {
    lua_Integer last = checked_length(L, 1, TAB_READ);
    size_t lsep;
    const char *sep = luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    last = luaL_optinteger(L, 4, last);
    concat_meter_t c = {.m = {.L = L}};
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (; i < last; i++) {
        if (lsep <= SBX_COPY_PIECE) { /* a short separator: its bytes paid with the field's */
            concat_add_field(&c, &b, i, 0);
            luaL_addlstring(&b, sep, lsep);
        } else {
            concat_add_field(&c, &b, i, 0);
            concat_pay_bytes(&c, &b);
            c.paid += lsep; /* sbx_buffer_add pays for these itself, piece by piece */
            sbx_buffer_add(&c.m, &b, sep, lsep);
        }
    }
    if (i == last) concat_add_field(&c, &b, i, 0);
    concat_pay_bytes(&c, &b);
    luaL_pushresult(&b);
    return 1;
}

/* --- sort ------------------------------------------------------------------------------------ */

/*
 * Stack layout while sorting: 1 the table, 2 the comparator or nil. Every helper leaves the stack
 * as it found it, except where it says otherwise. The shape is Lua 5.4's auxsort: values fetched
 * for a comparison are written back from the stack when they must be swapped, not fetched again.
 */
typedef struct sorter {
    sbx_meter_t meter;
    bool by_lt; /* no comparator: the < operator */
} sorter_t;

/* Is the value at stack index a less than the one at b? Both relative (negative) indices. */
static int sort_less(sorter_t *so, int a, int b) {
    lua_State *L = so->meter.L;
    sbx_meter_add(&so->meter, 2);
    if (so->by_lt) return lua_compare(L, a, b, LUA_OPLT);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, a - 1); /* -1 to compensate for the function */
    lua_pushvalue(L, b - 2); /* -2: the function and a */
    lua_call(L, 2, 1);
    int r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
}

/* t[i] = the value at the top, t[j] = the one below it; pops both (Lua's set2). */
static void sort_set2(sorter_t *so, lua_Integer i, lua_Integer j) {
    lua_State *L = so->meter.L;
    sbx_meter_add(&so->meter, 1);
    lua_seti(L, 1, i);
    lua_seti(L, 1, j);
}

/* Is t[i] < t[j]? */
static int sort_less_at(sorter_t *so, lua_Integer i, lua_Integer j) {
    lua_State *L = so->meter.L;
    lua_geti(L, 1, i);
    lua_geti(L, 1, j);
    int r = sort_less(so, -2, -1);
    lua_pop(L, 2);
    return r;
}

static void sort_swap(sorter_t *so, lua_Integer i, lua_Integer j) {
    lua_geti(so->meter.L, 1, i);
    lua_geti(so->meter.L, 1, j);
    sort_set2(so, i, j); /* t[i] = old t[j], t[j] = old t[i] */
}

static void sort_invalid(lua_State *L) {
    luaL_error(L, "invalid order function for sorting");
}

/* Heapsort of t[lo..up]: O(n log n) comparisons whatever the comparator answers. */
static void heap_sift_down(sorter_t *so, lua_Integer lo, lua_Integer root, lua_Integer last) {
    for (;;) {
        lua_Integer child = lo + 2 * (root - lo) + 1;
        if (child > last) return;
        if (child < last && sort_less_at(so, child, child + 1)) child++;
        if (!sort_less_at(so, root, child)) return;
        sort_swap(so, root, child);
        root = child;
    }
}

static void heap_sort(sorter_t *so, lua_Integer lo, lua_Integer up) {
    lua_Integer n = up - lo + 1;
    for (lua_Integer start = lo + n / 2 - 1; start >= lo; start--)
        heap_sift_down(so, lo, start, up);
    for (lua_Integer last = up; last > lo; last--) {
        sort_swap(so, lo, last);
        heap_sift_down(so, lo, lo, last - 1);
    }
}

/*
 * Partitions t[lo..up] around the pivot P, which is at the stack top and also in t[up-1]; t[lo] <=
 * P <= t[up] already. Returns the pivot's final place; P is popped. The two scans only stop on elements the
 * neighbours guarantee under a valid order; when the comparator breaks that guarantee they would
 * run off the range, and that is reported as Lua does instead of read past it.
 */
static lua_Integer sort_partition(sorter_t *so, lua_Integer lo, lua_Integer up) {
    lua_State *L = so->meter.L;
    lua_Integer i = lo, j = up - 1;
    for (;;) {
        /* Invariant: t[lo..i] <= P, t[j..up] >= P. Stack: P, then t[i], then t[j]. */
        while (lua_geti(L, 1, ++i), sort_less(so, -1, -2)) {
            if (i == up - 1) sort_invalid(L); /* t[i] < P, but t[up-1] == P */
            lua_pop(L, 1);
        }
        while (lua_geti(L, 1, --j), sort_less(so, -3, -1)) {
            if (j < i) sort_invalid(L); /* would pass elements already known <= P */
            lua_pop(L, 1);
        }
        if (j < i) {
            lua_pop(L, 1);          /* t[j] */
            sort_set2(so, up - 1, i); /* t[up-1] = t[i], t[i] = P */
            return i;
        }
        sort_set2(so, i, j); /* t[i] = old t[j], t[j] = old t[i] */
    }
}

static void intro_sort(sorter_t *so, lua_Integer lo, lua_Integer up, int depth_left) {
    lua_State *L = so->meter.L;
    while (lo < up) {
        if (depth_left-- <= 0) { /* quicksort is being driven quadratic: finish with heapsort */
            heap_sort(so, lo, up);
            return;
        }
        lua_geti(L, 1, lo);
        lua_geti(L, 1, up);
        if (sort_less(so, -1, -2)) sort_set2(so, lo, up); /* t[up] < t[lo]: swap them */
        else lua_pop(L, 2);
        if (up - lo == 1) return;
        lua_Integer mid = lo + (up - lo) / 2;
        lua_geti(L, 1, mid);
        lua_geti(L, 1, lo);
        if (sort_less(so, -2, -1)) { /* t[mid] < t[lo] */
            sort_set2(so, mid, lo);
        } else {
            lua_pop(L, 1);
            lua_geti(L, 1, up);
            if (sort_less(so, -1, -2)) sort_set2(so, mid, up); /* t[up] < t[mid] */
            else lua_pop(L, 2);
        }
        if (up - lo == 2) return;
        lua_geti(L, 1, mid); /* the pivot stays on the stack during the partition */
        lua_pushvalue(L, -1);
        lua_geti(L, 1, up - 1);
        sort_set2(so, mid, up - 1); /* t[mid] = t[up-1], t[up-1] = P */
        lua_Integer p = sort_partition(so, lo, up); /* takes P off the stack */
        /* Recurse into the smaller side, loop on the larger: C depth stays under log2(n). */
        if (p - lo < up - p) {
            intro_sort(so, lo, p - 1, depth_left);
            lo = p + 1;
        } else {
            intro_sort(so, p + 1, up, depth_left);
            up = p - 1;
        }
    }
}

static int bounded_sort(lua_State *L) {
    lua_Integer n = checked_length(L, 1, TAB_READ | TAB_WRITE);
    if (n > 1) {
        luaL_argcheck(L, n < INT_MAX, 1, "array too big");
        if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
        lua_settop(L, 2);
        int depth = 0;
        for (lua_Integer k = n; k > 1; k >>= 1) depth += 2;
        sorter_t so = {{.L = L}, lua_isnil(L, 2)};
        intro_sort(&so, 1, n, depth);
        sbx_meter_flush(&so.meter);
    }
    return 0;
}

void sbx_open_bounded_table(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"sort", bounded_sort},     {"concat", bounded_concat}, {"move", bounded_move},
        {"unpack", bounded_unpack}, {"insert", bounded_insert}, {"remove", bounded_remove},
        {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
}
