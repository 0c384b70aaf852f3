/* The one place that turns a result code into an HTTP error reply. */
#ifndef PYEXECD_ERROR_REPLY_H
#define PYEXECD_ERROR_REPLY_H

#include "../common/result.h"
#include "http_server.h"

/* Replies with the HTTP status and Google error body ({"error": {code, message, status}})
 * for r. message is shown to the client (copied). allow: Allow header value or NULL. */
void reply_error(struct http_exchange *ex, enum px_result r, const char *message,
                 const char *allow);

/* The HTTP status for r (200 for PX_OK). */
int result_http_status(enum px_result r);

#endif
