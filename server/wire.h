/* The JSON wire format: Gemini's Part/Content shapes in, parts and Google error bodies
 * out. The only file that talks to cJSON. Knows nothing of HTTP or of how code runs. */
#ifndef PYEXECD_WIRE_H
#define PYEXECD_WIRE_H

#include <stddef.h>

#include "../common/result.h"
#include "health_report.h"
#include "execution.h"

/* A parsed execute request: the request's parts, normalised to camelCase, kept so the
 * reply can echo them in order. Opaque. */
struct wire_execute;

/* Parses an execute body: one Part holding executableCode, or a Content {"parts": [...]}
 * (role optional), camelCase or snake_case. body must be NUL-terminated at body[len];
 * its input files may total input_limit decoded bytes (the policy's input_file_bytes).
 * On success returns PX_OK, *out (caller frees with wire_execute_free) and *req filled
 * (caller releases with exec_request_release). On failure returns PX_INVALID_ARGUMENT or
 * PX_TOO_LARGE (or PX_NOMEM) with a message for the client in msg; nothing to free. */
enum px_result wire_parse_execute(const char *body, size_t len, size_t input_limit,
                                  struct wire_execute **out, struct exec_request *req,
                                  char *msg, size_t msglen);

void wire_execute_free(struct wire_execute *w);

/* Encodes the reply {"parts": [...]}: every request part in order, each code part followed
 * by its codeExecutionResult entries (with the code's id) and its images. Returns a
 * malloc'd NUL-terminated string (caller frees) or NULL when out of memory. */
char *wire_encode_execute(const struct wire_execute *w, const struct exec_result *res,
                          size_t *len);

/* {"error": {"code": N, "message": "...", "status": "..."}}. Caller frees; NULL: no memory. */
char *wire_encode_error(int code, const char *message, const char *status, size_t *len);

/* The same, with google.rpc.RetryInfo {"retryDelay": retry_delay} in "details" when
 * retry_delay is not NULL ("2s"). */
char *wire_encode_error_details(int code, const char *message, const char *status,
                                const char *retry_delay, size_t *len);

/* A session resource: {"name": "sessions/<id>", "state", "createTime", "lastUseTime",
 * "expireTime", "executions", "memoryBytes"}. Caller frees; NULL when out of memory. */
char *wire_encode_session(const struct session_info *s, size_t *len);

/* The body of a call that takes no fields: empty, or an empty JSON object. body must be
 * NUL-terminated at body[len]. Returns PX_OK or PX_INVALID_ARGUMENT with msg. */
enum px_result wire_parse_empty(const char *body, size_t len, char *msg, size_t msglen);

/* "{}" (google.protobuf.Empty). Caller frees. */
char *wire_encode_empty(size_t *len);

/* The /healthz document. Caller frees; NULL when out of memory. */
char *wire_encode_health(const struct health_report *h, size_t *len);

/* GET /v1/environment: the Python version, every library with its version (null when
 * missing) and the documented lists naming it, and per list what is present and what is
 * missing; policy is the name of the policy that runs. Caller frees; NULL: no memory. */
char *wire_encode_environment(const struct interpreter_info *in, const char *policy,
                              size_t *len);

#endif
