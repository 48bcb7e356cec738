/*
 * framelog.c: a session's host frames in one buffer (rt_flog, session.h): the bounded log that
 * session.resume replays from, whose tail is what the connection has yet to write.
 *
 * Why one buffer: the log used to be a list of frames, each its own allocation grown by appends,
 * and trimming it freed the oldest, a frame written 512 frames ago, cold in cache. With four
 * frames a round trip, the allocations, their frees and the trimming walk were a tenth of an echo
 * agent's turn in the server. Here a frame is a record appended at the end of the buffer, and
 * dropping the oldest is moving an offset.
 *
 * Layout: [head, tail) holds the records kept, oldest first; [unsent, tail) those not yet written.
 * A record is a header (seq, run, length, delta flag) and the frame's JSON, padded to 8 bytes. The
 * dead room before head is reclaimed when the buffer would grow: the live records move to the
 * front when they fill at most half of it, else the buffer doubles. Each byte is moved about once
 * on average, and a session keeps at most about twice its live records' size.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/server/session.h"

#define FLOG_MIN_CAP 512u
#define FLOG_ALIGN 8u

static size_t rec_size(size_t len) {
    return (sizeof(rt_flog_rec) + len + FLOG_ALIGN - 1) & ~(size_t)(FLOG_ALIGN - 1);
}

rt_flog_rec *rt_flog_at(const rt_flog *l, size_t off) { return (rt_flog_rec *)(void *)(l->buf + off); }

size_t rt_flog_next(const rt_flog *l, size_t off) { return off + rec_size(rt_flog_at(l, off)->len); }


/* What a frame counts against the log's byte bounds (LOG_BYTES, UNSENT_MAX_BYTES): its text and
 * LWS_PRE, as when each frame was a buffer with lws's headroom, so the bounds mean what they did. */
static size_t frame_cost(size_t len) { return len + LWS_PRE; }
size_t rt_flog_cost(const rt_flog_rec *r) { return frame_cost(r->len); }

/* Room for n more bytes at the tail: the live records moved to the front, or a new buffer. */
static bool make_room(rt_flog *l, size_t n) {
    if (l->cap - l->tail >= n) return true;
    size_t live = l->tail - l->head;
    if (live + n <= l->cap / 2 && l->head) { /* enough dead room before head */
        memmove(l->buf, l->buf + l->head, live);
    } else {
        size_t cap = l->cap ? l->cap : FLOG_MIN_CAP;
        while (cap < 2 * (live + n)) cap *= 2;
        char *b = malloc(cap);
        if (!b) return false;
        if (live) memcpy(b, l->buf + l->head, live);
        free(l->buf);
        l->buf = b;
        l->cap = cap;
    }
    l->unsent -= l->head;
    l->last -= l->head;
    l->tail = live;
    l->head = 0;
    return true;
}

bool rt_flog_append(rt_flog *l, uint64_t seq, uint64_t run, bool is_delta, const char *json, size_t len) {
    if (len > UINT32_MAX) return false;
    size_t size = rec_size(len);
    if (!make_room(l, size)) return false;
    rt_flog_rec *r = rt_flog_at(l, l->tail);
    r->seq = seq;
    r->run = run;
    r->len = (uint32_t)len;
    r->is_delta = is_delta;
    memcpy(r + 1, json, len);
    l->last = l->tail;
    l->tail += size;
    l->frames++;
    l->bytes += frame_cost(len);
    l->unsent_frames++;
    l->unsent_bytes += frame_cost(len);
    return true;
}

bool rt_flog_extend_last(rt_flog *l, size_t cut, const char *more, size_t n) {
    rt_flog_rec *r = rt_flog_at(l, l->last);
    size_t len = r->len - cut + n, before = rec_size(r->len), after = rec_size(len);
    if (len > UINT32_MAX) return false;
    if (after > before) {
        if (!make_room(l, after - before)) return false;
        r = rt_flog_at(l, l->last); /* it may have moved */
    }
    memcpy((char *)(r + 1) + r->len - cut, more, n);
    l->bytes += len - r->len; /* may wrap below zero and back: size_t arithmetic is modular */
    l->unsent_bytes += len - r->len;
    r->len = (uint32_t)len;
    l->tail = l->last + after;
    return true;
}

void rt_flog_trim(rt_flog *l, size_t max_frames, size_t max_bytes) {
    while (l->head != l->unsent &&
           (l->frames - l->unsent_frames > max_frames || l->bytes - l->unsent_bytes > max_bytes)) {
        const rt_flog_rec *r = rt_flog_at(l, l->head);
        l->bytes -= rt_flog_cost(r);
        l->head += rec_size(r->len);
        l->frames--;
    }
    if (l->head == l->tail) l->head = l->unsent = l->tail = 0; /* empty: start again at the front */
}

void rt_flog_free(rt_flog *l) {
    free(l->buf);
    *l = (rt_flog){0};
}

rt_flog_rec *rt_flog_take_unsent(rt_flog *l) {
    rt_flog_rec *r = rt_flog_at(l, l->unsent);
    l->unsent = rt_flog_next(l, l->unsent);
    l->unsent_frames--;
    l->unsent_bytes -= rt_flog_cost(r);
    r->is_delta = false; /* handed over: no more merging into it */
    return r;
}

/* The trim that follows a write reads the headers of the oldest records, written hundreds of frames
 * ago and long out of cache: a miss each, ~2% of an echo round trip. Asked for before the write
 * (a system call), they are in cache by the trim. (__builtin_prefetch: a hint, clang and gcc.) */
void rt_flog_prefetch_oldest(const rt_flog *l, size_t bytes) {
    size_t end = l->head + (bytes < 4096 ? bytes : 4096);
    if (end > l->unsent) end = l->unsent;
    for (size_t o = l->head; o < end; o += 64) __builtin_prefetch(l->buf + o);
}
