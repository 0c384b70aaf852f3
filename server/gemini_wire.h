/* The JSON of the generateContent surface: GenerateContentRequest and countTokens bodies
 * in, GenerateContentResponse, Model, ListModels and CountTokens bodies out, and the
 * script backend's lines. A file that owns cJSON (see the include rule): the backends
 * see only the C types of server/genai.h. */
#ifndef PYEXECD_GEMINI_WIRE_H
#define PYEXECD_GEMINI_WIRE_H

#include <stddef.h>

#include "../common/result.h"
#include "genai.h"

/* Parses a generateContent (count_tokens 0) or countTokens (1) body, lowerCamel or
 * snake_case at every depth, base64 in either alphabet. body must be NUL-terminated at
 * body[len]. The inline data of the last user content may total input_limit decoded
 * bytes. On success returns PX_OK with *out filled (release with gen_request_release);
 * otherwise PX_INVALID_ARGUMENT or PX_TOO_LARGE with the message the real API would give
 * in msg, and nothing to release. */
enum px_result gemini_parse_request(const char *body, size_t len, int count_tokens,
                                    size_t input_limit, struct gen_request *out, char *msg,
                                    size_t msglen);

/* Parses one line of a script file: {"parts": [...], "fault": {...}, "times": N}. The
 * line must be NUL-terminated at line[len]. Returns PX_OK with *out filled (release with
 * script_turn_release), or PX_INVALID_ARGUMENT with the reason in msg. */
enum px_result gemini_parse_script_line(const char *line, size_t len, struct script_turn *out,
                                        char *msg, size_t msglen);

/* What every response of a turn carries besides its parts. */
struct gemini_meta {
    const char *model_version;
    const char *response_id;
    long long create_time_ms;
    unsigned long long prompt_tokens, candidates_tokens, tool_tokens;
};

/* A GenerateContentResponse holding parts (camelCase, standard base64) as candidate 0's
 * content with role "model"; with finishReason when finish_reason is not NULL. Returns
 * a malloc'd compact one-line JSON text (caller frees), or NULL when out of memory. */
char *gemini_encode_response(const struct gpart *parts, size_t nparts,
                             const char *finish_reason, const struct gemini_meta *meta,
                             size_t *len);

/* {"totalTokens": N}. Caller frees. */
char *gemini_encode_count_tokens(unsigned long long total, size_t *len);

/* A model as models.get and models.list show it. */
struct gemini_model {
    const char *id;           /* "echo", "gemini-2.5-flash" */
    const char *description;  /* what serves it */
};

/* A Model resource named prefix + id ("models/" or "publishers/google/models/"). */
char *gemini_encode_model(const char *prefix, const struct gemini_model *m, size_t *len);

/* {"models": [...], "nextPageToken"?}: next_page_token NULL on the last page (never an
 * empty token: a client would then ask again for ever). */
char *gemini_encode_model_list(const char *prefix, const struct gemini_model *models,
                               size_t n, const char *next_page_token, size_t *len);

#endif
