/* The one place that turns a result code into an HTTP error reply. */
#ifndef PYEXECD_ERROR_REPLY_H
#define PYEXECD_ERROR_REPLY_H

#include "../common/result.h"
#include "http_server.h"

/* Replies with the HTTP status and Google error body ({"error": {code, message, status}})
 * for r. message is shown to the client (copied). allow: Allow header value or NULL. */
void reply_error(struct http_exchange *ex, enum px_result r, const char *message,
                 const char *allow);

/* Replies with a Google error body the caller spells out (an injected fault): HTTP
 * status, google.rpc.Code name, message, and RetryInfo's delay (NULL: none). */
void reply_google_error(struct http_exchange *ex, int http, const char *status,
                        const char *message, const char *retry_delay);

/* The error bodies alone, for an error sent inside a stream ({"error": ...} first).
 * Caller frees; NULL when out of memory. */
char *error_body_for(enum px_result r, const char *message, size_t *len);
char *error_body(int http, const char *status, const char *message, const char *retry_delay,
                 size_t *len);

/* The HTTP status for r (200 for PX_OK). */
int result_http_status(enum px_result r);

#endif
