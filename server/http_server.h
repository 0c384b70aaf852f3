/* The HTTP front: accepts connections, collects request bodies (bounded), hands each
 * request to one handler, and sends the reply whenever and from whichever thread the
 * handler produces it. The only file that talks to libmicrohttpd. Knows no routes and
 * no JSON. */
#ifndef PYEXECD_HTTP_SERVER_H
#define PYEXECD_HTTP_SERVER_H

#include <stddef.h>

struct http_exchange;   /* one request and its reply; owned by the HTTP layer */

/* Called once per request, on an HTTP thread, after the whole body arrived (or at once,
 * before any of it is read, when its framing is ambiguous, its declared length is over
 * the limit, or it does not fit in what LIMIT_BODIES_IN_FLIGHT has free; a chunked body
 * that grows past the limit, or a body whose bytes would take all the bodies held past
 * LIMIT_BODIES_IN_FLIGHT, closes the connection instead). Must lead to exactly one
 * http_exchange_reply, now or later from any thread; until then the connection waits
 * without holding a thread. */
typedef void (*http_handler_fn)(struct http_exchange *ex);

struct request_record;

/* Called once per request, when it is over (its reply sent, or its connection closed;
 * a streamed reply once its producer has ended it too), with its record filled: the
 * last use of it. From whichever thread let go last. */
typedef void (*http_completed_fn)(struct request_record *rec);

/* The header a request's id comes in and goes back out in, on every reply. */
#define HTTP_REQUEST_ID_HEADER "X-Request-Id"

struct http_server_options {
    int listen_fd;             /* bound, listening socket; the server takes it over */
    unsigned threads;          /* HTTP threads */
    size_t max_body;           /* larger bodies are refused (the handler sees too_large) */
    unsigned connection_limit;
    unsigned idle_timeout_s;   /* for connections not waiting on an execution */
    http_handler_fn handler;
    http_completed_fn completed;   /* may be NULL */
    const char *replica_id;    /* sent as HTTP_REPLICA_HEADER on every reply ("" or NULL:
                                * not sent; borrowed) */
};

/* The response header that names the replica that answered. */
#define HTTP_REPLICA_HEADER "X-Pyexecd-Replica"

/* Starts serving. Returns 0, or -1 with a message in err. */
int http_server_start(const struct http_server_options *opt, char *err, size_t errlen);

/* Begins a drain: the listening socket stops listening (new connections are refused),
 * and from now on every reply closes its connection. Requests already taken go on. */
void http_server_drain(void);

/* Nonzero once http_server_drain has been called. Thread-safe. */
int http_server_draining(void);

/* Exchanges begun and not completed: requests being read, waiting for their reply, or
 * having it sent. Idle keep-alive connections are not counted. Thread-safe. */
unsigned http_server_open_exchanges(void);

/* Request body bytes held by all connections now (at most LIMIT_BODIES_IN_FLIGHT).
 * Thread-safe. */
unsigned long long http_server_bodies_in_flight(void);

/* Stops the server. Every exchange must have been replied to. */
void http_server_stop(void);

/* The request's record (server/request_record.h), which the handler and whoever answers
 * fill: owned by the HTTP layer, valid until the exchange is answered (a stream: until
 * it ends). The HTTP layer fills its own fields; X-Request-Id is the client's when sane
 * (request_id_ok), else a new one, and goes back on every reply. */
struct request_record *http_exchange_record(struct http_exchange *ex);
const char *http_exchange_request_id(const struct http_exchange *ex);

const char *http_exchange_method(const struct http_exchange *ex);
const char *http_exchange_path(const struct http_exchange *ex);
/* The body, NUL-terminated at body[*len] (empty when none). */
const char *http_exchange_body(const struct http_exchange *ex, size_t *len);
/* Nonzero when the body was over max_body (and was not kept). */
int http_exchange_body_too_large(const struct http_exchange *ex);

/* Nonzero when the body was refused unread because its declared length is more than
 * LIMIT_BODIES_IN_FLIGHT less the body bytes all connections hold now (the handler
 * answers 503). */
int http_exchange_overloaded(const struct http_exchange *ex);

/* Why the request was refused unread for ambiguous body framing (Content-Length more than
 * once, or with Transfer-Encoding), or NULL. The handler answers 400 with this message;
 * the connection is closed after the reply, so what follows is never read as a request. */
const char *http_exchange_framing_error(const struct http_exchange *ex);

/* Sends the reply: status, a JSON body (malloc'd; ownership passes to the HTTP layer,
 * which frees it), and an Allow header when allow is not NULL. A NULL body means the
 * reply could not be built (out of memory): the connection is closed. Call exactly once
 * per exchange (this or http_exchange_reply_later), from any thread. */
void http_exchange_reply(struct http_exchange *ex, int status, char *body, size_t len,
                         const char *allow);

/* Like http_exchange_reply, for a body that is not JSON: content_type names it. */
void http_exchange_reply_typed(struct http_exchange *ex, int status, char *body, size_t len,
                               const char *content_type);

/* Builds a reply: returns a malloc'd JSON body (ownership passes to the HTTP layer; NULL:
 * out of memory, the connection is closed) and sets *status and *len. */
typedef char *(*http_produce_fn)(void *ctx, int *status, size_t *len);

/* Like http_exchange_reply, for a reply too costly to build on the calling thread (a
 * large execution result): `produce` is called once, later, on an HTTP thread, with ctx
 * (which it then owns and frees); also when the client has gone by then, the body then
 * discarded, so that ctx is always freed. */
void http_exchange_reply_later(struct http_exchange *ex, http_produce_fn produce, void *ctx);

/* A query-string argument (?alt=sse) or a request header, by name (headers: any case).
 * NULL when absent. Valid only inside the handler call, on its thread. */
const char *http_exchange_query(const struct http_exchange *ex, const char *name);
const char *http_exchange_header(const struct http_exchange *ex, const char *name);

/* A reply sent while it is produced: status 200, chunked, written from any thread. */
struct http_stream;

/* Starts a streamed reply with the given Content-Type (copied) instead of
 * http_exchange_reply: call exactly once per exchange, from any thread. Returns the
 * producer's handle, or NULL when out of memory (the connection is then closed). The
 * producer writes with http_stream_write and must end with http_stream_end. */
struct http_stream *http_exchange_stream(struct http_exchange *ex, const char *content_type);

/* Appends len bytes (copied) to the stream; they are sent as the client reads. Returns
 * 0, or -1 once the client has gone (writing more is pointless, ending is still due). */
int http_stream_write(struct http_stream *s, const void *data, size_t len);

/* Ends the stream and releases the producer's handle: abort 0 ends the chunked body
 * normally once everything written is sent; abort 1 closes the connection after it
 * without ending the body (a client then sees a cut stream). */
void http_stream_end(struct http_stream *s, int abort);

#endif
