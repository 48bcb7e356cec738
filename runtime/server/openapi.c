/*
 * openapi.c: GET /v1/openapi.json, the HTTP API described as an OpenAPI 3.0 document.
 */
#include "runtime/server/internal.h"

static const char doc[] =
    "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"accrue\",\"version\":\"1\"},\"paths\":{}}";

void rt_openapi_json(acc_buf *out) { acc_buf_append(out, doc, sizeof doc - 1); }
