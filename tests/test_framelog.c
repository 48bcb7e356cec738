/*
 * test_framelog.c: runtime/server/framelog.c, a session's frames in one buffer. Random appends,
 * merges into the newest frame, writes and trims, checked at every step against a plain model (an
 * array of frames): the records kept, in order, with their text, and the counts the bounds use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/server/session.h"
#include "tests/check.h"

#define MODEL_MAX 20000

typedef struct model_frame {
    uint64_t seq;
    char *text;
    size_t len;
} model_frame;

static model_frame model[MODEL_MAX];
static size_t m_head, m_unsent, m_tail; /* indexes, as the log's offsets */

static uint64_t rnd_state = 20261204;
static uint64_t rnd(uint64_t n) {
    rnd_state = rnd_state * 6364136223846793005ull + 1442695040888963407ull;
    return (rnd_state >> 33) % n;
}

/* The log holds exactly the model's frames, and counts them alike. */
static bool same_as_model(const rt_flog *l) {
    size_t off = l->head, i = m_head, bytes = 0, unsent_bytes = 0;
    for (; i < m_tail; i++, off = rt_flog_next(l, off)) {
        if (off == l->tail) return false;
        const rt_flog_rec *r = rt_flog_at(l, off);
        if (r->seq != model[i].seq || r->len != model[i].len || memcmp(rt_flog_json(r), model[i].text, r->len) != 0)
            return false;
        if ((i == m_unsent) != (off == l->unsent)) return false;
        bytes += model[i].len + LWS_PRE;
        if (i >= m_unsent) unsent_bytes += model[i].len + LWS_PRE;
    }
    if (m_unsent == m_tail && l->unsent != l->tail) return false;
    return off == l->tail && l->frames == m_tail - m_head && l->unsent_frames == m_tail - m_unsent &&
           l->bytes == bytes && l->unsent_bytes == unsent_bytes;
}

static void test_random_use_matches_the_model(void) {
    rt_flog l = {0};
    char text[3000];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (char)('a' + i % 26);
    uint64_t seq = 0;
    size_t max_frames = 50, max_bytes = 20000, steps = 0, moved = 0, peak = 0;
    bool ok = true;
    while (m_tail < MODEL_MAX && ok) {
        uint64_t op = rnd(100);
        char *before = l.buf;
        if (op < 50) { /* a frame: mostly small, now and then large */
            size_t len = rnd(10) ? rnd(200) : rnd(sizeof text);
            CHECK(rt_flog_append(&l, ++seq, 1, true, text + rnd(sizeof text - len + 1), len));
            model[m_tail++] = (model_frame){.seq = seq, .text = NULL, .len = len};
            model[m_tail - 1].text = malloc(len + 1);
            memcpy(model[m_tail - 1].text, rt_flog_json(rt_flog_at(&l, l.last)), len);
        } else if (op < 70 && m_unsent < m_tail) { /* merge into the newest, still unwritten */
            model_frame *m = &model[m_tail - 1];
            size_t cut = rnd(m->len + 1 < 3 ? m->len + 1 : 3), n = rnd(rnd(5) ? 50 : 2000);
            CHECK(rt_flog_extend_last(&l, cut, text + 7, n));
            m->text = realloc(m->text, m->len - cut + n + 1);
            memcpy(m->text + m->len - cut, text + 7, n);
            m->len = m->len - cut + n;
        } else if (op < 95) { /* a write of a few frames, then the trim */
            for (uint64_t k = rnd(6); k && rt_flog_has_unsent(&l); k--) {
                rt_flog_take_unsent(&l);
                m_unsent++;
            }
            rt_flog_trim(&l, max_frames, max_bytes);
            while (m_head < m_unsent) {
                size_t b = 0;
                for (size_t i = m_head; i < m_unsent; i++) b += model[i].len + LWS_PRE;
                if (m_unsent - m_head <= max_frames && b <= max_bytes) break;
                m_head++;
            }
        } else { /* a resume: the unwritten part starts again from a kept frame */
            size_t back = m_tail > m_head ? rnd(m_tail - m_head + 1) : 0;
            size_t from = l.head;
            for (size_t i = m_head; i < m_tail - back; i++) from = rt_flog_next(&l, from);
            l.unsent = from;
            l.unsent_frames = back;
            l.unsent_bytes = 0;
            for (size_t o = from; o != l.tail; o = rt_flog_next(&l, o)) l.unsent_bytes += rt_flog_cost(rt_flog_at(&l, o));
            m_unsent = m_tail - back;
        }
        moved += l.buf != before;
        if (l.tail - l.head > peak) peak = l.tail - l.head;
        steps++;
        ok = same_as_model(&l);
        CHECK_MSG(ok, "step %zu (op %llu): the log differs from the model", steps, (unsigned long long)op);
    }
    printf("# framelog: %zu steps, %zu frames, buffer moved %zu times, %zu bytes of room for at most %zu live\n",
           steps, m_tail, moved, l.cap, peak);
    /* Room follows what is kept (at most twice what was live with the largest record, doubled by
     * rounding up to a power of two), not all the frames ever made. */
    CHECK_MSG(l.cap <= 4 * (peak + sizeof text + 64), "%zu bytes of room", l.cap);
    for (size_t i = 0; i < m_tail; i++) free(model[i].text);
    rt_flog_free(&l);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    RUN(test_random_use_matches_the_model);
    return check_finish("framelog");
}
