/*
 * internal.h: what meter.c and event.c share (private to meters/).
 */
#ifndef ACCRUE_METERS_INTERNAL_H
#define ACCRUE_METERS_INTERNAL_H

#include "meters/meters.h"

/* The ledger code of a line's transfer. */
ledger_code_t meter__line_code(meter_resource_t resource, meter_role_t role);
/* The code of a usage posting of this resource. */
ledger_code_t meter__resource_code(meter_resource_t r);

/* Evidence as a call computes it: the data itself, stored compactly (event.c) and written out as
 * JSON only when an event is read back (meter_event_decode). */
typedef enum meter__ev_kind {
    METER__EV_NONE = 0,
    METER__EV_SPANS = 1,   /* the event's: a model output's spans */
    METER__EV_ROWS = 2,    /* the event's: a query's rows */
    METER__EV_RECORDS = 3, /* a line's: the records it was paid for */
    METER__EV_PRICE = 4,   /* a line's: an agent's message and session price */
} meter__ev_kind_t;

typedef struct meter__line_ev {
    meter__ev_kind_t kind;   /* NONE, RECORDS or PRICE */
    size_t off, n;           /* RECORDS: records[off .. off + n) */
    ledger_amount_t per_message, per_session; /* PRICE */
} meter__line_ev_t;

typedef struct meter__evidence {
    meter__ev_kind_t kind; /* NONE, SPANS or ROWS */
    uint64_t output_tokens, covered_tokens; /* SPANS */
    const char *output;
    size_t output_len, nspans;
    const meter_span_t *spans;
    size_t nrows; /* ROWS */
    const meter_row_t *rows;
    const meter__line_ev_t *lines; /* one per e->lines */
    const int64_t *records;
} meter__evidence_t;

/* A query row's rank score as the integer weight its money is split by. */
uint64_t meter__score_weight(double score);
/* Appends the stored bytes of e, with the evidence ev (e's own evidence strings are not read), to b. */
void meter__event_encode(const meter_event_t *e, const meter__evidence_t *ev, acc_buf *b);

#endif
