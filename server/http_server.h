/* The HTTP front: accepts connections, collects request bodies (bounded), hands each
 * request to one handler, and sends the reply whenever and from whichever thread the
 * handler produces it. The only file that talks to libmicrohttpd. Knows no routes and
 * no JSON. */
#ifndef PYEXECD_HTTP_SERVER_H
#define PYEXECD_HTTP_SERVER_H

#include <stddef.h>

struct http_exchange;   /* one request and its reply; owned by the HTTP layer */

/* Called once per request, on an HTTP thread, after the whole body arrived (or at once
 * when it is over the limit). Must lead to exactly one http_exchange_reply, now or later
 * from any thread; until then the connection waits without holding a thread. */
typedef void (*http_handler_fn)(struct http_exchange *ex);

struct http_server_options {
    int listen_fd;             /* bound, listening socket; the server takes it over */
    unsigned threads;          /* HTTP threads */
    size_t max_body;           /* larger bodies are refused (the handler sees too_large) */
    unsigned connection_limit;
    unsigned idle_timeout_s;   /* for connections not waiting on an execution */
    http_handler_fn handler;
};

/* Starts serving. Returns 0, or -1 with a message in err. */
int http_server_start(const struct http_server_options *opt, char *err, size_t errlen);

/* Stops accepting new connections (the in-flight ones still finish). */
void http_server_quiesce(void);

/* Stops the server. Every exchange must have been replied to. */
void http_server_stop(void);

const char *http_exchange_method(const struct http_exchange *ex);
const char *http_exchange_path(const struct http_exchange *ex);
/* The body, NUL-terminated at body[*len] (empty when none). */
const char *http_exchange_body(const struct http_exchange *ex, size_t *len);
/* Nonzero when the body was over max_body (and was not kept). */
int http_exchange_body_too_large(const struct http_exchange *ex);

/* Sends the reply: status, a JSON body (malloc'd; ownership passes to the HTTP layer,
 * which frees it), and an Allow header when allow is not NULL. A NULL body stands for
 * "out of memory" and is answered with a static 500. Call exactly once per exchange,
 * from any thread. */
void http_exchange_reply(struct http_exchange *ex, int status, char *body, size_t len,
                         const char *allow);

#endif
