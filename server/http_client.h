/* An HTTP client for the upstream model servers the openai model talks to. The only
 * file that talks to libcurl: a maintained client with timeouts, redirects off and
 * nothing of its own to get wrong. */
#ifndef PYEXECD_HTTP_CLIENT_H
#define PYEXECD_HTTP_CLIENT_H

#include <stddef.h>

/* Once, before any thread uses the client. Returns 0 or -1 with err. */
int http_client_init(char *err, size_t errlen);

struct http_response {
    long status;           /* the HTTP status */
    char *body;            /* malloc'd, NUL-terminated (caller frees) */
    size_t len;
};

/* POSTs a JSON body to url (http or https) with Authorization: Bearer token when token
 * is not NULL. Connects within connect_ms and finishes within total_ms, and gives up
 * early once stop() returns nonzero. Returns 0 with *out (any status; the body at most
 * LIMIT_UPSTREAM_BODY_BYTES), -1 with why in err when nothing came back (refused,
 * unreachable, timed out, cut), or -2 when what came back was refused (a body past the
 * limit). Thread-safe. */
int http_post_json(const char *url, const char *token, const char *body, size_t len,
                   unsigned connect_ms, unsigned total_ms, int (*stop)(void),
                   struct http_response *out, char *err, size_t errlen);

#endif
