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
/* Appends the stored bytes of e to b. */
void meter__event_encode(const meter_event_t *e, acc_buf *b);

#endif
