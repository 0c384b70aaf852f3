/* Model turns: one generateContent call, run on a turn runner thread of its own (a model
 * backend may wait seconds for an upstream model, and every code block for its
 * execution: neither may hold an HTTP thread or the executor's). A turn owns one
 * interpreter for all the code it runs (a turn's interpreter: an internal session,
 * opened at its first code block and ended with the turn), and answers its exchange
 * once: a whole GenerateContentResponse, or a stream of them.
 *
 * The backends (server/model_*.c) produce the turn's parts through turn_text and
 * turn_code, and may end it early with turn_fail. */
#ifndef PYEXECD_TURNS_H
#define PYEXECD_TURNS_H

#include <stddef.h>

#include "../common/result.h"
#include "genai.h"
#include "http_server.h"

struct model;
struct api_key;

enum turn_mode {
    TURN_UNARY,        /* one GenerateContentResponse */
    TURN_SSE,          /* ?alt=sse: data: <json>\r\n\r\n events */
    TURN_JSON_ARRAY,   /* streamGenerateContent without alt=sse: a JSON array of them */
};

/* Starts the turn runners: `threads` of them, and up to `queue` turns waiting. Returns 0
 * or -1 with err. */
int turns_start(unsigned threads, unsigned queue, char *err, size_t errlen);

/* Runs a model turn of model (borrowed for the server's life) on req (taken over: it is
 * released when the turn ends, also on failure), answering ex. Returns PX_OK (ex will be
 * answered), or at once PX_QUEUE_FULL, PX_SHUTTING_DOWN or PX_NOMEM (the caller answers
 * ex). key (NULL: no key file): a turn that runs code holds one of its executions from
 * its first code block to its end; at the key's bound that block is answered 429 (the
 * turn fails: an HTTP error, or a stream's final error event). Thread-safe. */
enum px_result turns_submit(struct http_exchange *ex, const struct model *model,
                            struct gen_request *req, enum turn_mode mode,
                            struct api_key *key);

/* Stops taking turns: queued ones are answered 503, running ones end at their next step
 * (executor_stop, called after this, fails their pending executions; upstream calls see
 * turns_stopping). */
void turns_stop(void);

/* Waits for every runner to end. After turns_stop and executor_stop. */
void turns_join(void);

/* Nonzero once the server is stopping: a backend waiting on an upstream gives up. */
int turns_stopping(void);

struct turn;

/* Appends a text part (copied). */
void turn_text(struct turn *t, const char *text, size_t len);

/* What one code block did, as a backend reads it (borrowed until the next call). */
struct turn_code_result {
    enum outcome outcome;         /* of the block's last result */
    const char *output;           /* its results' outputs joined; "" when none */
    size_t output_len;
    unsigned images;
};

/* Runs one code block (UTF-8, copied) in the turn's interpreter and appends its
 * executableCode part, its result(s) and its images. Returns PX_OK with *out filled; any
 * other result means the turn has already been answered with that error (the
 * interpreter could not be had, the client left, the stream was cut): the backend must
 * stop. */
enum px_result turn_code(struct turn *t, const char *code, size_t len,
                         struct turn_code_result *out);

/* Ends the turn with an error: an HTTP error before anything was sent, a final
 * {"error": ...} event after. */
void turn_fail(struct turn *t, enum px_result r, const char *message);

/* The same with a Google error the caller spells out (the script backend's faults):
 * HTTP status, google.rpc.Code name, message, and a RetryInfo delay or NULL. */
void turn_fail_as(struct turn *t, int http, const char *status, const char *message,
                  const char *retry_delay);

/* Each later code block runs under a deadline of ms (the script's forced deadline). */
void turn_set_block_deadline(struct turn *t, unsigned ms);

/* A stream is cut (the connection closed, the body not ended) once it has sent n
 * events; a unary reply is not sent at all (the connection closes). */
void turn_cut_after(struct turn *t, unsigned events);

/* The model name the request asked for (what modelVersion reports). */
const char *turn_model_name(const struct turn *t);

#endif
