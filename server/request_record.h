/* What is known about one HTTP request by the time it is over: filled along the way by
 * the HTTP layer (method, status, bytes, request id, times), the routes (route template,
 * key id, encode time) and the executor (each execution's outcome, limit and phases,
 * through exec_request.stats), and consumed once at its end by the metrics
 * (server/metrics.c) and the log line (server/request_log.c). Plain data: no HTTP, no
 * JSON. */
#ifndef PYEXECD_REQUEST_RECORD_H
#define PYEXECD_REQUEST_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "../common/limits.h"
#include "execution.h"

/* The routes, by template: a label never holds a raw path (a session id, a model name),
 * so the metrics' series stay bounded. */
enum route_id {
    ROUTE_OTHER,                 /* no route: 404, or refused before routing */
    ROUTE_EXECUTE,               /* /v1/execute */
    ROUTE_SESSIONS,              /* /v1/sessions */
    ROUTE_SESSION,               /* /v1/sessions/{id} */
    ROUTE_SESSION_EXECUTE,       /* /v1/sessions/{id}:execute */
    ROUTE_ENVIRONMENT,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_METRICS,
    ROUTE_MODELS,                /* {prefix}/models */
    ROUTE_MODEL,                 /* {prefix}/models/{model} */
    ROUTE_GENERATE,              /* ...:generateContent */
    ROUTE_STREAM_GENERATE,       /* ...:streamGenerateContent */
    ROUTE_COUNT_TOKENS,          /* ...:countTokens */
    ROUTE_MODEL_METHOD,          /* ...:{method}, one not served */
    ROUTE_COUNT
};

/* The label of a route ("/v1/sessions/{id}:execute"). */
const char *route_name(enum route_id r);

/* HTTP methods as labels: the usual ones, anything else "other". */
enum method_id { METHOD_OTHER, METHOD_GET, METHOD_HEAD, METHOD_POST, METHOD_PUT, METHOD_DELETE,
                 METHOD_PATCH, METHOD_OPTIONS, METHOD_COUNT };
enum method_id method_id_of(const char *method);
const char *method_name(enum method_id m);

struct request_record {
    /* The HTTP layer's. */
    char request_id[LIMIT_REQUEST_ID_BYTES + 1];
    char method[16];             /* as sent, cut to fit */
    enum method_id method_id;
    int status;                  /* the reply's; 0 when none was sent (connection closed) */
    int aborted;                 /* the reply was not sent whole (client gone, cut stream) */
    unsigned long long bytes_in, bytes_out;   /* body bytes received, reply body sent */
    int64_t start_ns, end_ns;    /* monotonic: request's first byte seen, reply done */

    /* The routes'. */
    enum route_id route;
    const char *key_id;          /* the API key's id (never the key), or NULL; borrowed */
    int64_t encode_ns;           /* building the execute reply's JSON */

    /* The executor's, summed over the request's executions (a model turn runs several). */
    struct exec_stats exec;
};

#endif
