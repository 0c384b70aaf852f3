#include "error_reply.h"

#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* A result the table below leaves out fails the build, in every configuration. */
#pragma GCC diagnostic error "-Wswitch-enum"

struct http_error {
    int http;
    const char *status;     /* the google.rpc.Code name */
};

/* Result -> HTTP status and google.rpc.Code name. 405 and 413 have no gRPC code of their
 * own; the request is invalid as sent, so they carry INVALID_ARGUMENT. */
static struct http_error http_error_of(enum px_result r)
{
    switch (r) {
    case PX_OK: return (struct http_error){200, "OK"};
    case PX_INVALID_ARGUMENT: return (struct http_error){400, "INVALID_ARGUMENT"};
    case PX_TOO_LARGE: return (struct http_error){400, "INVALID_ARGUMENT"};
    case PX_BODY_TOO_LARGE: return (struct http_error){413, "INVALID_ARGUMENT"};
    case PX_NOT_FOUND: return (struct http_error){404, "NOT_FOUND"};
    case PX_METHOD_NOT_ALLOWED: return (struct http_error){405, "INVALID_ARGUMENT"};
    case PX_QUEUE_FULL: return (struct http_error){429, "RESOURCE_EXHAUSTED"};
    case PX_SESSION_LIMIT: return (struct http_error){429, "RESOURCE_EXHAUSTED"};
    case PX_KEY_LIMIT: return (struct http_error){429, "RESOURCE_EXHAUSTED"};
    case PX_BUSY: return (struct http_error){409, "ABORTED"};
    case PX_UNAUTHENTICATED: return (struct http_error){401, "UNAUTHENTICATED"};
    case PX_PERMISSION_DENIED: return (struct http_error){403, "PERMISSION_DENIED"};
    case PX_UNAVAILABLE: return (struct http_error){503, "UNAVAILABLE"};
    case PX_SHUTTING_DOWN: return (struct http_error){503, "UNAVAILABLE"};
    case PX_INTERNAL: return (struct http_error){500, "INTERNAL"};
    case PX_NOMEM: return (struct http_error){500, "INTERNAL"};
    case PX_SYSTEM: return (struct http_error){500, "INTERNAL"};
    case PX_PROTOCOL: return (struct http_error){500, "INTERNAL"};
    }
    return (struct http_error){500, "INTERNAL"};   /* not a result at all: a bug */
}

int result_http_status(enum px_result r)
{
    return http_error_of(r).http;
}

char *error_body(int http, const char *status, const char *message, const char *retry_delay,
                 size_t *len)
{
    return wire_encode_error_details(http, message, status, retry_delay, len);
}

char *error_body_for(enum px_result r, const char *message, size_t *len)
{
    struct http_error e = http_error_of(r);
    return error_body(e.http, e.status, message ? message : px_result_str(r), NULL, len);
}

void reply_error(struct http_exchange *ex, enum px_result r, const char *message,
                 const char *allow)
{
    size_t len = 0;
    char *body = error_body_for(r, message, &len);
    /* NULL body: out of memory; the HTTP layer closes the connection. */
    http_exchange_reply(ex, http_error_of(r).http, body, body ? len : 0, allow);
}

void reply_google_error(struct http_exchange *ex, int http, const char *status,
                        const char *message, const char *retry_delay)
{
    size_t len = 0;
    char *body = error_body(http, status, message, retry_delay, &len);
    http_exchange_reply(ex, http, body, body ? len : 0, NULL);
}
