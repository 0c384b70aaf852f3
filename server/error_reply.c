#include "error_reply.h"

#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* Result -> HTTP status and google.rpc.Code name. 405 and 413 have no gRPC code of their
 * own; the request is invalid as sent, so they carry INVALID_ARGUMENT. */
static const struct {
    enum px_result result;
    int http;
    const char *status;
} mapping[] = {
    {PX_OK, 200, "OK"},
    {PX_INVALID_ARGUMENT, 400, "INVALID_ARGUMENT"},
    {PX_TOO_LARGE, 400, "INVALID_ARGUMENT"},
    {PX_BODY_TOO_LARGE, 413, "INVALID_ARGUMENT"},
    {PX_NOT_FOUND, 404, "NOT_FOUND"},
    {PX_METHOD_NOT_ALLOWED, 405, "INVALID_ARGUMENT"},
    {PX_QUEUE_FULL, 429, "RESOURCE_EXHAUSTED"},
    {PX_BUSY, 409, "ABORTED"},
    {PX_UNAVAILABLE, 503, "UNAVAILABLE"},
    {PX_SHUTTING_DOWN, 503, "UNAVAILABLE"},
    {PX_INTERNAL, 500, "INTERNAL"},
    {PX_NOMEM, 500, "INTERNAL"},
    {PX_SYSTEM, 500, "INTERNAL"},
    {PX_PROTOCOL, 500, "INTERNAL"},
};

static size_t find(enum px_result r)
{
    size_t internal = 0;
    for (size_t i = 0; i < sizeof(mapping) / sizeof(mapping[0]); i++) {
        if (mapping[i].result == r)
            return i;
        if (mapping[i].result == PX_INTERNAL)
            internal = i;
    }
    return internal;
}

int result_http_status(enum px_result r)
{
    return mapping[find(r)].http;
}

void reply_error(struct http_exchange *ex, enum px_result r, const char *message,
                 const char *allow)
{
    size_t i = find(r);
    size_t len = 0;
    char *body = wire_encode_error(mapping[i].http, message ? message : px_result_str(r),
                                   mapping[i].status, &len);
    /* NULL body: the HTTP layer answers 500 "out of memory" from static storage. */
    http_exchange_reply(ex, mapping[i].http, body, body ? len : 0, allow);
}
