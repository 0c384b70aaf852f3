/* The HTTP API: which path and method do what. Glue between the HTTP layer, the wire
 * codec and the executor, each of which knows nothing of the others. */
#ifndef PYEXECD_ROUTES_H
#define PYEXECD_ROUTES_H

#include <stddef.h>

#include "http_server.h"

struct routes_options {
    unsigned deadline_ms;       /* reported by /healthz */
    size_t output_bytes;
    size_t body_bytes;
    size_t input_file_bytes;    /* decoded input files per request */
    const char *policy_name;    /* reported by /healthz (borrowed for the server's life) */
    unsigned max_sessions;      /* for the message at the session limit */
    const char *replica_id;     /* this server's, "" for none: reported by /healthz, and
                                 * the prefix of the session ids it owns (borrowed) */
};

void routes_init(const struct routes_options *opt);

/* The request header that chooses a traceback profile (common/fidelity.h). */
#define FIDELITY_HEADER "X-Pyexecd-Fidelity"

/* The profile the request's FIDELITY_HEADER asks for (FIDELITY_DEFAULT without one), or
 * -1 when it names none: ex has then been answered 400. */
int request_fidelity(struct http_exchange *ex);

/* The http_handler_fn for every request. */
void routes_handle(struct http_exchange *ex);

/* The http_completed_fn: a request that is over goes to the metrics and the log. */
void routes_completed(struct request_record *rec);

#endif
