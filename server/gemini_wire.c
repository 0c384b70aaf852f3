#include "gemini_wire.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/limits.h"
#include "base64.h"
#include "input_types.h"
#include "utf8.h"
#include "wire_json.h"

/* What models.get and models.list advertise: Gemini's context window, and the version
 * of the server that serves them. */
#define MODEL_INPUT_TOKEN_LIMIT  1048576
#define MODEL_OUTPUT_TOKEN_LIMIT 65536
#ifndef PYEXECD_VERSION
#define PYEXECD_VERSION "0.1.0"
#endif

__attribute__((format(printf, 4, 5)))
static enum px_result fail(char *msg, size_t msglen, enum px_result r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    return r;
}

/* path + "." + field, for messages (cut to fit: a message, not a key). */
static void subpath(char *out, size_t size, const char *path, const char *field)
{
    int n = snprintf(out, size, "%s.%s", path, field);
    if (n < 0)
        out[0] = '\0';
}

/* A field name in lowerCamel: snake_case names ("mime_type") are proto3 JSON's other
 * spelling of the same field. */
static void camel_of(const char *name, char *out, size_t size)
{
    size_t o = 0;
    for (const char *p = name; *p && o + 1 < size; p++) {
        if (*p == '_' && p[1] && p != name) {
            out[o++] = (char)toupper((unsigned char)*++p);
            continue;
        }
        out[o++] = *p;
    }
    out[o] = '\0';
}

/* The members of obj, matched to names (lowerCamel) in either spelling. found[i] is
 * the member named names[i], or NULL when absent or null (proto3: null is the default).
 * Each field may appear once; a name not in the list is an error unless
 * ignore_unknown. path names obj in messages. */
static enum px_result fields(const cJSON *obj, const char *const *names, size_t n,
                             const cJSON **found, const char *path, int ignore_unknown,
                             char *msg, size_t msglen)
{
    unsigned char seen[32] = {0};
    for (size_t i = 0; i < n; i++)
        found[i] = NULL;
    for (const cJSON *c = obj->child; c; c = c->next) {
        char camel[64];
        camel_of(c->string, camel, sizeof(camel));
        size_t i = 0;
        while (i < n && strcmp(camel, names[i]) != 0)
            i++;
        if (i == n) {
            if (ignore_unknown)
                continue;
            /* At the top level the real API names no place. */
            if (!path[0])
                return fail(msg, msglen, PX_INVALID_ARGUMENT,
                            "Invalid JSON payload received. Unknown name \"%s\": Cannot find "
                            "field.", c->string);
            return fail(msg, msglen, PX_INVALID_ARGUMENT,
                        "Invalid JSON payload received. Unknown name \"%s\" at '%s': Cannot "
                        "find field.", c->string, path);
        }
        if (seen[i])
            return fail(msg, msglen, PX_INVALID_ARGUMENT,
                        "Invalid JSON payload received. Duplicate field \"%s\" at '%s'.",
                        c->string, path);
        seen[i] = 1;
        if (!cJSON_IsNull(c))
            found[i] = c;
    }
    return PX_OK;
}

/* "Invalid value at 'path' (TYPE), <the value>", as the real API words a wrong type. */
static enum px_result bad_type(const cJSON *v, const char *path, const char *type, char *msg,
                               size_t msglen)
{
    char *shown = cJSON_PrintUnformatted(v);
    enum px_result r = fail(msg, msglen, PX_INVALID_ARGUMENT,
                            "Invalid JSON payload received. Invalid value at '%s' (%s), %.60s",
                            path, type, shown ? shown : "?");
    free(shown);
    return r;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* A string member into *out (malloc'd) and *out_len; absent leaves them. */
static enum px_result take_string(const cJSON *v, const char *path, char **out,
                                  size_t *out_len, char *msg, size_t msglen)
{
    if (!v)
        return PX_OK;
    if (!cJSON_IsString(v))
        return bad_type(v, path, "TYPE_STRING", msg, msglen);
    size_t n = strlen(v->valuestring);
    *out = dup_n(v->valuestring, n);
    if (out_len)
        *out_len = n;
    return *out ? PX_OK : PX_NOMEM;
}

enum part_field {
    P_TEXT, P_INLINE_DATA, P_FILE_DATA, P_EXECUTABLE_CODE, P_CODE_EXECUTION_RESULT,
    P_FUNCTION_CALL, P_FUNCTION_RESPONSE, P_THOUGHT, P_THOUGHT_SIGNATURE, P_VIDEO_METADATA,
    P_PART_METADATA, P_MEDIA_RESOLUTION, P_COUNT
};
static const char *const part_names[P_COUNT] = {
    "text", "inlineData", "fileData", "executableCode", "codeExecutionResult",
    "functionCall", "functionResponse", "thought", "thoughtSignature", "videoMetadata",
    "partMetadata", "mediaResolution",
};

struct parse {
    size_t input_limit;
    size_t input_bytes;
    char *msg;
    size_t msglen;
};

static enum px_result parse_language(const cJSON *v, const char *path, struct parse *ps)
{
    if (!v || (cJSON_IsString(v) && strcmp(v->valuestring, "PYTHON") == 0) ||
        (cJSON_IsNumber(v) && v->valuedouble == 1))
        return PX_OK;
    return fail(ps->msg, ps->msglen, PX_INVALID_ARGUMENT,
                "Invalid value at '%s' (type.googleapis.com/google.ai.generativelanguage."
                "v1beta.ExecutableCode.Language): the only language is PYTHON.", path);
}

static enum px_result parse_outcome(const cJSON *v, const char *path, enum outcome *out,
                                    struct parse *ps)
{
    static const char *const names[] = {"OUTCOME_UNSPECIFIED", "OUTCOME_OK", "OUTCOME_FAILED",
                                        "OUTCOME_DEADLINE_EXCEEDED"};
    *out = OUTCOME_OK;
    if (!v)
        return PX_OK;
    for (int i = 0; i < 4; i++)
        if ((cJSON_IsString(v) && strcmp(v->valuestring, names[i]) == 0) ||
            (cJSON_IsNumber(v) && v->valuedouble == i)) {
            *out = i ? (enum outcome)i : OUTCOME_OK;
            return PX_OK;
        }
    return fail(ps->msg, ps->msglen, PX_INVALID_ARGUMENT,
                "Invalid JSON payload received. Invalid value at '%s' (type.googleapis.com/"
                "google.ai.generativelanguage.v1beta.CodeExecutionResult.Outcome)", path);
}

static enum px_result parse_code_part(const cJSON *v, const char *path, struct gpart *p,
                                      struct parse *ps)
{
    static const char *const names[] = {"language", "code", "id"};
    const cJSON *f[3];
    char sub[160];
    if (!cJSON_IsObject(v))
        return bad_type(v, path, "type.googleapis.com/google.ai.generativelanguage.v1beta."
                        "ExecutableCode", ps->msg, ps->msglen);
    enum px_result r = fields(v, names, 3, f, path, 0, ps->msg, ps->msglen);
    subpath(sub, sizeof(sub), path, "language");
    if (r == PX_OK)
        r = parse_language(f[0], sub, ps);
    subpath(sub, sizeof(sub), path, "code");
    if (r == PX_OK)
        r = take_string(f[1], sub, &p->text, &p->text_len, ps->msg, ps->msglen);
    subpath(sub, sizeof(sub), path, "id");
    if (r == PX_OK)
        r = take_string(f[2], sub, &p->id, NULL, ps->msg, ps->msglen);
    p->kind = GPART_CODE;
    if (r == PX_OK && !p->text && !(p->text = dup_n("", 0)))
        r = PX_NOMEM;
    return r;
}

static enum px_result parse_result_part(const cJSON *v, const char *path, struct gpart *p,
                                        struct parse *ps)
{
    static const char *const names[] = {"outcome", "output", "id"};
    const cJSON *f[3];
    char sub[160];
    if (!cJSON_IsObject(v))
        return bad_type(v, path, "type.googleapis.com/google.ai.generativelanguage.v1beta."
                        "CodeExecutionResult", ps->msg, ps->msglen);
    enum px_result r = fields(v, names, 3, f, path, 0, ps->msg, ps->msglen);
    subpath(sub, sizeof(sub), path, "outcome");
    if (r == PX_OK)
        r = parse_outcome(f[0], sub, &p->outcome, ps);
    subpath(sub, sizeof(sub), path, "output");
    if (r == PX_OK)
        r = take_string(f[1], sub, &p->text, &p->text_len, ps->msg, ps->msglen);
    subpath(sub, sizeof(sub), path, "id");
    if (r == PX_OK)
        r = take_string(f[2], sub, &p->id, NULL, ps->msg, ps->msglen);
    p->kind = GPART_RESULT;
    return r;
}

/* A MIME type: type "/" subtype, both non-empty. */
static int valid_mime(const char *m)
{
    const char *slash = strchr(m, '/');
    return slash && slash != m && slash[1] && !strchr(slash + 1, '/') && !strchr(m, ' ');
}

static enum px_result parse_inline_data(const cJSON *v, const char *path, struct gpart *p,
                                        struct parse *ps)
{
    static const char *const names[] = {"mimeType", "data", "displayName"};
    const cJSON *f[3];
    char sub[160];
    if (!cJSON_IsObject(v))
        return bad_type(v, path, "type.googleapis.com/google.ai.generativelanguage.v1beta.Blob",
                        ps->msg, ps->msglen);
    enum px_result r = fields(v, names, 3, f, path, 0, ps->msg, ps->msglen);
    if (r != PX_OK)
        return r;
    p->kind = GPART_INLINE_DATA;
    subpath(sub, sizeof(sub), path, "mime_type");
    if (!f[0] || !cJSON_IsString(f[0]) || !valid_mime(f[0]->valuestring))
        return fail(ps->msg, ps->msglen, PX_INVALID_ARGUMENT,
                    "Invalid value at '%s' (%s): a MIME type such as text/csv is required.",
                    sub, f[0] && cJSON_IsString(f[0]) ? f[0]->valuestring : "missing");
    if ((r = take_string(f[0], sub, &p->mime, NULL, ps->msg, ps->msglen)) != PX_OK)
        return r;
    subpath(sub, sizeof(sub), path, "data");
    if (f[1] && !cJSON_IsString(f[1]))
        return bad_type(f[1], sub, "TYPE_BYTES", ps->msg, ps->msglen);
    if (f[2] && !cJSON_IsString(f[2])) {
        subpath(sub, sizeof(sub), path, "display_name");
        return bad_type(f[2], sub, "TYPE_STRING", ps->msg, ps->msglen);
    }
    subpath(sub, sizeof(sub), path, "data");
    const char *data = f[1] ? f[1]->valuestring : "";
    p->data = base64_decode(data, strlen(data), &p->data_len);
    if (!p->data)
        return fail(ps->msg, ps->msglen, PX_INVALID_ARGUMENT,
                    "Invalid value at '%s' (TYPE_BYTES), Base64 decoding failed for \"%.20s"
                    "%s\"", sub, data, strlen(data) > 20 ? "..." : "");
    return PX_OK;
}

/* One Part at path ("contents[0].parts[1]"). */
static enum px_result parse_part(const cJSON *v, const char *path, struct gpart *p,
                                 struct parse *ps)
{
    const cJSON *f[P_COUNT];
    char sub[160];
    if (!cJSON_IsObject(v))
        return bad_type(v, path, "type.googleapis.com/google.ai.generativelanguage.v1beta.Part",
                        ps->msg, ps->msglen);
    enum px_result r = fields(v, part_names, P_COUNT, f, path, 0, ps->msg, ps->msglen);
    if (r != PX_OK)
        return r;
    static const enum part_field data_fields[] = {
        P_TEXT, P_INLINE_DATA, P_FILE_DATA, P_EXECUTABLE_CODE, P_CODE_EXECUTION_RESULT,
        P_FUNCTION_CALL, P_FUNCTION_RESPONSE,
    };
    int ndata = 0;
    for (size_t i = 0; i < sizeof(data_fields) / sizeof(data_fields[0]); i++)
        ndata += f[data_fields[i]] != NULL;
    if (ndata == 0)
        return fail(ps->msg, ps->msglen, PX_INVALID_ARGUMENT,
                    "* GenerateContentRequest.%s.data: required oneof field 'data' must have "
                    "one initialized field", path);
    if (ndata > 1)
        return fail(ps->msg, ps->msglen, PX_INVALID_ARGUMENT,
                    "Invalid JSON payload received. Invalid value at '%s': more than one of "
                    "the oneof field 'data' is set.", path);
    if (f[P_TEXT]) {
        subpath(sub, sizeof(sub), path, "text");
        p->kind = GPART_TEXT;
        r = take_string(f[P_TEXT], sub, &p->text, &p->text_len, ps->msg, ps->msglen);
    } else if (f[P_EXECUTABLE_CODE]) {
        subpath(sub, sizeof(sub), path, "executable_code");
        r = parse_code_part(f[P_EXECUTABLE_CODE], sub, p, ps);
    } else if (f[P_CODE_EXECUTION_RESULT]) {
        subpath(sub, sizeof(sub), path, "code_execution_result");
        r = parse_result_part(f[P_CODE_EXECUTION_RESULT], sub, p, ps);
    } else if (f[P_INLINE_DATA]) {
        subpath(sub, sizeof(sub), path, "inline_data");
        r = parse_inline_data(f[P_INLINE_DATA], sub, p, ps);
    } else {
        /* fileData, functionCall, functionResponse: context the backends do not read. */
        const enum part_field other = f[P_FILE_DATA] ? P_FILE_DATA
                                    : f[P_FUNCTION_CALL] ? P_FUNCTION_CALL : P_FUNCTION_RESPONSE;
        p->kind = GPART_OTHER;
        if (!cJSON_IsObject(f[other]))
            return bad_type(f[other], path, "TYPE_MESSAGE", ps->msg, ps->msglen);
    }
    if (r != PX_OK)
        return r;
    static const struct {
        enum part_field f;
        const char *snake;
    } messages[] = {{P_VIDEO_METADATA, "video_metadata"}, {P_PART_METADATA, "part_metadata"},
                    {P_MEDIA_RESOLUTION, "media_resolution"}};
    for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
        if (f[messages[i].f] && !cJSON_IsObject(f[messages[i].f])) {
            subpath(sub, sizeof(sub), path, messages[i].snake);
            return bad_type(f[messages[i].f], sub, "TYPE_MESSAGE", ps->msg, ps->msglen);
        }
    }
    if (f[P_THOUGHT]) {
        if (!cJSON_IsBool(f[P_THOUGHT])) {
            subpath(sub, sizeof(sub), path, "thought");
            return bad_type(f[P_THOUGHT], sub, "TYPE_BOOL", ps->msg, ps->msglen);
        }
        p->thought = cJSON_IsTrue(f[P_THOUGHT]);
    }
    if (f[P_THOUGHT_SIGNATURE]) {
        /* Accepted as sent (a bytes field: it must be base64, in either alphabet). */
        subpath(sub, sizeof(sub), path, "thought_signature");
        const cJSON *sig = f[P_THOUGHT_SIGNATURE];
        if (!cJSON_IsString(sig))
            return bad_type(sig, sub, "TYPE_BYTES", ps->msg, ps->msglen);
        size_t n;
        unsigned char *dec = base64_decode(sig->valuestring, strlen(sig->valuestring), &n);
        if (!dec)
            return fail(ps->msg, ps->msglen, PX_INVALID_ARGUMENT,
                        "Invalid value at '%s' (TYPE_BYTES), Base64 decoding failed.", sub);
        free(dec);
    }
    return PX_OK;
}

/* A Content at path: role and parts. */
static enum px_result parse_content(const cJSON *v, const char *path, struct gcontent *c,
                                    int system, struct parse *ps)
{
    static const char *const names[] = {"role", "parts"};
    const cJSON *f[2];
    char sub[160];
    if (!cJSON_IsObject(v))
        return bad_type(v, path, "type.googleapis.com/google.ai.generativelanguage.v1beta."
                        "Content", ps->msg, ps->msglen);
    enum px_result r = fields(v, names, 2, f, path, 0, ps->msg, ps->msglen);
    if (r != PX_OK)
        return r;
    if (f[0]) {
        if (!cJSON_IsString(f[0])) {
            subpath(sub, sizeof(sub), path, "role");
            return bad_type(f[0], sub, "TYPE_STRING", ps->msg, ps->msglen);
        }
        c->model = strcmp(f[0]->valuestring, "model") == 0;
    }
    subpath(sub, sizeof(sub), path, "parts");
    if (f[1] && !cJSON_IsArray(f[1]))
        return bad_type(f[1], sub, "TYPE_MESSAGE", ps->msg, ps->msglen);
    size_t n = f[1] ? (size_t)cJSON_GetArraySize(f[1]) : 0;
    if (n == 0 && !system)
        return fail(ps->msg, ps->msglen, PX_INVALID_ARGUMENT,
                    "* GenerateContentRequest.%s: contents.parts must not be empty.", sub);
    c->parts = n ? calloc(n, sizeof(*c->parts)) : NULL;
    if (n && !c->parts)
        return PX_NOMEM;
    size_t i = 0;
    for (const cJSON *p = f[1] ? f[1]->child : NULL; p; p = p->next, i++) {
        char ppath[160];
        snprintf(ppath, sizeof(ppath), "%s.parts[%zu]", path, i);
        c->nparts = i + 1;
        if ((r = parse_part(p, ppath, &c->parts[i], ps)) != PX_OK)
            return r;
    }
    return PX_OK;
}

/* The tools: codeExecution switches code execution on; the other kinds the API knows are
 * accepted and not used; anything else is an unknown field, as the real API says. */
static enum px_result parse_tools(const cJSON *v, int *code_tool, struct parse *ps)
{
    static const char *const names[] = {
        "codeExecution", "googleSearch", "googleSearchRetrieval", "functionDeclarations",
        "urlContext", "retrieval", "computerUse", "fileSearch", "googleMaps",
        "enterpriseWebSearch", "mcpServers",
    };
    if (!cJSON_IsArray(v))
        return bad_type(v, "tools", "TYPE_MESSAGE", ps->msg, ps->msglen);
    size_t i = 0;
    for (const cJSON *t = v->child; t; t = t->next, i++) {
        char path[32];
        const cJSON *f[sizeof(names) / sizeof(names[0])];
        snprintf(path, sizeof(path), "tools[%zu]", i);
        if (!cJSON_IsObject(t))
            return bad_type(t, path, "type.googleapis.com/google.ai.generativelanguage."
                            "v1beta.Tool", ps->msg, ps->msglen);
        enum px_result r = fields(t, names, sizeof(names) / sizeof(names[0]), f, path, 0,
                                  ps->msg, ps->msglen);
        if (r != PX_OK)
            return r;
        if (f[0]) {
            char sub[48];
            subpath(sub, sizeof(sub), path, "code_execution");
            if (!cJSON_IsObject(f[0]))
                return bad_type(f[0], sub, "TYPE_MESSAGE", ps->msg, ps->msglen);
            *code_tool = 1;
        }
    }
    return PX_OK;
}

/* systemInstruction: a Content (its text parts joined with newlines), or a bare string. */
static enum px_result parse_system(const cJSON *v, struct gen_request *out, struct parse *ps)
{
    if (cJSON_IsString(v)) {
        out->system_text = strdup(v->valuestring);
        return out->system_text ? PX_OK : PX_NOMEM;
    }
    struct gcontent c = {0};
    enum px_result r = parse_content(v, "system_instruction", &c, 1, ps);
    size_t total = 0;
    for (size_t i = 0; r == PX_OK && i < c.nparts; i++)
        if (c.parts[i].kind == GPART_TEXT)
            total += c.parts[i].text_len + 1;
    if (r == PX_OK && total) {
        out->system_text = malloc(total);
        if (!out->system_text)
            r = PX_NOMEM;
        size_t o = 0;
        for (size_t i = 0; r == PX_OK && i < c.nparts; i++) {
            if (c.parts[i].kind != GPART_TEXT)
                continue;
            if (o)
                out->system_text[o++] = '\n';
            memcpy(out->system_text + o, c.parts[i].text, c.parts[i].text_len);
            o += c.parts[i].text_len;
        }
        if (r == PX_OK)
            out->system_text[o] = '\0';
    }
    for (size_t i = 0; i < c.nparts; i++)
        gpart_release(&c.parts[i]);
    free(c.parts);
    return r;
}

/* generationConfig: accepted (no backend reads it), but only as the real API would: its
 * known fields (the Gemini API's and Vertex AI's), each of its type. Numbers may be JSON
 * numbers or numeric strings, as proto3 JSON allows. */
enum gc_type { GC_NUMBER, GC_BOOL, GC_STRING, GC_STRINGS, GC_OBJECT, GC_ANY };
static const struct {
    const char *camel;
    const char *snake;
    enum gc_type type;
} generation_config_fields[] = {
    {"stopSequences", "stop_sequences", GC_STRINGS},
    {"responseMimeType", "response_mime_type", GC_STRING},
    {"responseSchema", "response_schema", GC_OBJECT},
    {"responseJsonSchema", "response_json_schema", GC_ANY},
    {"responseModalities", "response_modalities", GC_STRINGS},
    {"candidateCount", "candidate_count", GC_NUMBER},
    {"maxOutputTokens", "max_output_tokens", GC_NUMBER},
    {"temperature", "temperature", GC_NUMBER},
    {"topP", "top_p", GC_NUMBER},
    {"topK", "top_k", GC_NUMBER},
    {"seed", "seed", GC_NUMBER},
    {"presencePenalty", "presence_penalty", GC_NUMBER},
    {"frequencyPenalty", "frequency_penalty", GC_NUMBER},
    {"responseLogprobs", "response_logprobs", GC_BOOL},
    {"logprobs", "logprobs", GC_NUMBER},
    {"enableEnhancedCivicAnswers", "enable_enhanced_civic_answers", GC_BOOL},
    {"speechConfig", "speech_config", GC_OBJECT},
    {"thinkingConfig", "thinking_config", GC_OBJECT},
    {"imageConfig", "image_config", GC_OBJECT},
    {"mediaResolution", "media_resolution", GC_STRING},
    {"routingConfig", "routing_config", GC_OBJECT},
    {"modelSelectionConfig", "model_selection_config", GC_OBJECT},
    {"audioTimestamp", "audio_timestamp", GC_BOOL},
    {"enableAffectiveDialog", "enable_affective_dialog", GC_BOOL},
};
#define GC_NFIELDS (sizeof(generation_config_fields) / sizeof(generation_config_fields[0]))

static int numeric(const cJSON *v)
{
    if (cJSON_IsNumber(v))
        return 1;
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return 0;
    char *end;
    strtod(v->valuestring, &end);
    return *end == '\0';
}

static enum px_result parse_generation_config(const cJSON *v, struct parse *ps)
{
    const char *names[GC_NFIELDS];
    const cJSON *f[GC_NFIELDS];
    char sub[160];
    for (size_t i = 0; i < GC_NFIELDS; i++)
        names[i] = generation_config_fields[i].camel;
    enum px_result r = fields(v, names, GC_NFIELDS, f, "generation_config", 0, ps->msg,
                              ps->msglen);
    if (r != PX_OK)
        return r;
    static const char *const type_names[] = {
        [GC_NUMBER] = "TYPE_FLOAT", [GC_BOOL] = "TYPE_BOOL", [GC_STRING] = "TYPE_STRING",
        [GC_STRINGS] = "TYPE_STRING", [GC_OBJECT] = "TYPE_MESSAGE", [GC_ANY] = "",
    };
    for (size_t i = 0; i < GC_NFIELDS; i++) {
        const cJSON *x = f[i];
        if (!x)
            continue;
        enum gc_type t = generation_config_fields[i].type;
        int ok = t == GC_NUMBER ? numeric(x) : t == GC_BOOL ? cJSON_IsBool(x)
               : t == GC_STRING ? cJSON_IsString(x) : t == GC_OBJECT ? cJSON_IsObject(x)
               : t == GC_ANY ? 1 : cJSON_IsArray(x);
        const cJSON *bad = x;
        if (ok && t == GC_STRINGS) {
            for (const cJSON *e = x->child; e; e = e->next)
                if (!cJSON_IsString(e)) {
                    ok = 0;
                    bad = e;
                    break;
                }
        }
        if (!ok) {
            snprintf(sub, sizeof(sub), "generation_config.%s",
                     generation_config_fields[i].snake);
            return bad_type(bad, sub, type_names[t], ps->msg, ps->msglen);
        }
    }
    return PX_OK;
}

/* safetySettings: a list of SafetySetting objects (not read further). */
static enum px_result parse_safety_settings(const cJSON *v, struct parse *ps)
{
    size_t i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsObject(e)) {
            char sub[48];
            snprintf(sub, sizeof(sub), "safety_settings[%zu]", i);
            return bad_type(e, sub, "type.googleapis.com/google.ai.generativelanguage.v1beta."
                            "SafetySetting", ps->msg, ps->msglen);
        }
    }
    return PX_OK;
}

enum req_field {
    R_CONTENTS, R_TOOLS, R_TOOL_CONFIG, R_SYSTEM, R_GENERATION_CONFIG, R_SAFETY,
    R_CACHED_CONTENT, R_LABELS, R_MODEL, R_GENERATE_CONTENT_REQUEST, R_COUNT
};
static const char *const request_names[R_COUNT] = {
    "contents", "tools", "toolConfig", "systemInstruction", "generationConfig",
    "safetySettings", "cachedContent", "labels", "model", "generateContentRequest",
};

/* The fields of a GenerateContentRequest object (the body, or countTokens'
 * generateContentRequest). */
static enum px_result parse_request_object(const cJSON *root, int count_tokens,
                                           struct gen_request *out, struct parse *ps)
{
    const cJSON *f[R_COUNT];
    enum px_result r = fields(root, request_names, R_COUNT, f, "", 0, ps->msg, ps->msglen);
    if (r != PX_OK)
        return r;
    if (f[R_GENERATE_CONTENT_REQUEST]) {
        /* countTokens may wrap the whole request. */
        if (!count_tokens || f[R_CONTENTS] || !cJSON_IsObject(f[R_GENERATE_CONTENT_REQUEST]))
            return fail(ps->msg, ps->msglen, PX_INVALID_ARGUMENT,
                        "Invalid JSON payload received. Unknown name "
                        "\"generateContentRequest\" at '': Cannot find field.");
        return parse_request_object(f[R_GENERATE_CONTENT_REQUEST], 0, out, ps);
    }
    static const struct {
        enum req_field f;
        int object;   /* 1: an object, 2: an array, 3: a string */
        const char *path;
    } shapes[] = {
        {R_TOOL_CONFIG, 1, "tool_config"}, {R_GENERATION_CONFIG, 1, "generation_config"},
        {R_SAFETY, 2, "safety_settings"}, {R_CACHED_CONTENT, 3, "cached_content"},
        {R_LABELS, 1, "labels"}, {R_MODEL, 3, "model"},
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        const cJSON *v = f[shapes[i].f];
        if (v && !(shapes[i].object == 1 ? cJSON_IsObject(v)
                   : shapes[i].object == 2 ? cJSON_IsArray(v) : cJSON_IsString(v)))
            return bad_type(v, shapes[i].path,
                            shapes[i].object == 3 ? "TYPE_STRING" : "TYPE_MESSAGE", ps->msg,
                            ps->msglen);
    }
    if (f[R_GENERATION_CONFIG] &&
        (r = parse_generation_config(f[R_GENERATION_CONFIG], ps)) != PX_OK)
        return r;
    if (f[R_SAFETY] && (r = parse_safety_settings(f[R_SAFETY], ps)) != PX_OK)
        return r;
    if (f[R_TOOLS] && (r = parse_tools(f[R_TOOLS], &out->code_tool, ps)) != PX_OK)
        return r;
    if (f[R_SYSTEM] && (r = parse_system(f[R_SYSTEM], out, ps)) != PX_OK)
        return r;
    const cJSON *contents = f[R_CONTENTS];
    if (contents && !cJSON_IsArray(contents))
        return bad_type(contents, "contents", "TYPE_MESSAGE", ps->msg, ps->msglen);
    size_t n = contents ? (size_t)cJSON_GetArraySize(contents) : 0;
    if (n == 0)
        return fail(ps->msg, ps->msglen, PX_INVALID_ARGUMENT,
                    "* GenerateContentRequest.contents: contents is not specified");
    out->contents = calloc(n, sizeof(*out->contents));
    if (!out->contents)
        return PX_NOMEM;
    size_t i = 0;
    for (const cJSON *c = contents->child; c; c = c->next, i++) {
        char path[32];
        snprintf(path, sizeof(path), "contents[%zu]", i);
        out->ncontents = i + 1;
        if ((r = parse_content(c, path, &out->contents[i], 0, ps)) != PX_OK)
            return r;
    }
    /* The files the turn's code gets: the last user content's inline data. */
    const struct gcontent *last = gen_request_last_user(out);
    for (size_t k = 0; last && k < last->nparts; k++) {
        if (last->parts[k].kind != GPART_INLINE_DATA)
            continue;
        ps->input_bytes += last->parts[k].data_len;
        if (ps->input_bytes > ps->input_limit)
            return fail(ps->msg, ps->msglen, PX_TOO_LARGE,
                        "The inline data of the last user turn totals more than %zu bytes.",
                        ps->input_limit);
    }
    return PX_OK;
}

/* The body as a JSON object, checked before and by cJSON. Returns NULL with msg. */
static cJSON *parse_body(const char *body, size_t len, size_t max_values, char *msg,
                         size_t msglen)
{
    const char *why = wire_precheck_body(body, len, max_values);
    if (why) {
        fail(msg, msglen, PX_INVALID_ARGUMENT, "Invalid JSON payload received. %s", why);
        return NULL;
    }
    if (utf8_valid_prefix((const unsigned char *)body, len) != len) {
        fail(msg, msglen, PX_INVALID_ARGUMENT,
             "Invalid JSON payload received. The body is not valid UTF-8.");
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLengthOpts(body, len + 1, NULL, 1);
    if (!root || !cJSON_IsObject(root)) {
        fail(msg, msglen, PX_INVALID_ARGUMENT, len ? "Invalid JSON payload received. Expected "
             "a JSON object." : "Invalid JSON payload received. The body is empty.");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

enum px_result gemini_parse_request(const char *body, size_t len, int count_tokens,
                                    size_t input_limit, struct gen_request *out, char *msg,
                                    size_t msglen)
{
    memset(out, 0, sizeof(*out));
    cJSON *root = parse_body(body, len, LIMIT_GEN_JSON_VALUES, msg, msglen);
    if (!root)
        return PX_INVALID_ARGUMENT;
    struct parse ps = {.input_limit = input_limit, .msg = msg, .msglen = msglen};
    enum px_result r = parse_request_object(root, count_tokens, out, &ps);
    cJSON_Delete(root);
    if (r == PX_NOMEM)
        snprintf(msg, msglen, "Out of memory while reading the request.");
    if (r != PX_OK)
        gen_request_release(out);
    return r;
}

/* The google.rpc.Code name an HTTP error status stands for (docs/gemini-wire.md). */
static const char *status_of_http(int code)
{
    static const struct {
        int http;
        const char *status;
    } codes[] = {
        {400, "INVALID_ARGUMENT"}, {401, "UNAUTHENTICATED"}, {403, "PERMISSION_DENIED"},
        {404, "NOT_FOUND"}, {409, "ABORTED"}, {429, "RESOURCE_EXHAUSTED"},
        {499, "CANCELLED"}, {500, "INTERNAL"}, {501, "UNIMPLEMENTED"},
        {503, "UNAVAILABLE"}, {504, "DEADLINE_EXCEEDED"},
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i].http == code)
            return codes[i].status;
    return code >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
}

/* Copies src into dst (size n), cut to fit at a character's start: the fault's strings
 * go into error bodies, which must stay valid UTF-8. */
static void copy_cut(char *dst, size_t n, const char *src)
{
    size_t len = utf8_cut((const unsigned char *)src, strnlen(src, n - 1));
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* A script line's "fault" object. */
static enum px_result parse_fault(const cJSON *v, struct script_fault *f, char *msg,
                                  size_t msglen)
{
    static const char *const names[] = {"error", "delayMs", "cutAfterEvents", "deadlineMs"};
    const cJSON *x[4];
    if (!cJSON_IsObject(v))
        return fail(msg, msglen, PX_INVALID_ARGUMENT, "\"fault\" must be an object");
    enum px_result r = fields(v, names, 4, x, "fault", 0, msg, msglen);
    if (r != PX_OK)
        return r;
    if (x[0]) {
        static const char *const enames[] = {"code", "status", "message", "retryDelay"};
        const cJSON *e[4];
        if (!cJSON_IsObject(x[0]) ||
            (r = fields(x[0], enames, 4, e, "fault.error", 0, msg, msglen)) != PX_OK)
            return r != PX_OK ? r : fail(msg, msglen, PX_INVALID_ARGUMENT,
                                         "\"fault.error\" must be an object");
        if (!cJSON_IsNumber(e[0]) || e[0]->valuedouble < 400 || e[0]->valuedouble > 599)
            return fail(msg, msglen, PX_INVALID_ARGUMENT,
                        "\"fault.error.code\" must be an HTTP error status (400-599)");
        f->error_code = (int)e[0]->valuedouble;
        copy_cut(f->error_status, sizeof(f->error_status),
                 cJSON_IsString(e[1]) ? e[1]->valuestring : status_of_http(f->error_code));
        copy_cut(f->error_message, sizeof(f->error_message),
                 cJSON_IsString(e[2]) ? e[2]->valuestring : "Injected by the script.");
        if (cJSON_IsString(e[3]))
            copy_cut(f->retry_delay, sizeof(f->retry_delay), e[3]->valuestring);
    }
    unsigned *dst[] = {&f->delay_ms, &f->cut_after_events, &f->deadline_ms};
    for (int i = 0; i < 3; i++) {
        if (!x[i + 1])
            continue;
        if (!cJSON_IsNumber(x[i + 1]) || x[i + 1]->valuedouble < 0 ||
            x[i + 1]->valuedouble > LIMIT_SCRIPT_FAULT_VALUE_MAX)
            return fail(msg, msglen, PX_INVALID_ARGUMENT,
                        "\"fault.%s\" must be a number from 0 to %u", names[i + 1],
                        LIMIT_SCRIPT_FAULT_VALUE_MAX);
        *dst[i] = (unsigned)x[i + 1]->valuedouble;
    }
    return PX_OK;
}

enum px_result gemini_parse_script_line(const char *line, size_t len, struct script_turn *out,
                                        char *msg, size_t msglen)
{
    static const char *const names[] = {"parts", "fault", "times"};
    const cJSON *f[3];
    memset(out, 0, sizeof(*out));
    out->fault.times = 1;
    cJSON *root = parse_body(line, len, LIMIT_GEN_JSON_VALUES, msg, msglen);
    if (!root)
        return PX_INVALID_ARGUMENT;
    enum px_result r = fields(root, names, 3, f, "", 0, msg, msglen);
    struct parse ps = {.msg = msg, .msglen = msglen};
    if (r == PX_OK && f[1]) {
        out->has_fault = 1;
        r = parse_fault(f[1], &out->fault, msg, msglen);
    }
    if (r == PX_OK && f[2]) {
        if (!cJSON_IsNumber(f[2]) || f[2]->valuedouble < 1 ||
            f[2]->valuedouble > LIMIT_SCRIPT_FAULT_VALUE_MAX)
            r = fail(msg, msglen, PX_INVALID_ARGUMENT, "\"times\" must be a number >= 1");
        else
            out->fault.times = (unsigned)f[2]->valuedouble;
    }
    if (r == PX_OK && (!f[0] || !cJSON_IsArray(f[0]) || !f[0]->child) && !out->has_fault)
        r = fail(msg, msglen, PX_INVALID_ARGUMENT,
                 "a line needs \"parts\": a non-empty array of text and executableCode parts");
    size_t n = r == PX_OK && f[0] && cJSON_IsArray(f[0]) ? (size_t)cJSON_GetArraySize(f[0]) : 0;
    if (n && !(out->parts = calloc(n, sizeof(*out->parts))))
        r = PX_NOMEM;
    size_t i = 0;
    for (const cJSON *p = n ? f[0]->child : NULL; r == PX_OK && p; p = p->next, i++) {
        char path[32];
        snprintf(path, sizeof(path), "parts[%zu]", i);
        out->nparts = i + 1;
        r = parse_part(p, path, &out->parts[i], &ps);
        if (r == PX_OK && out->parts[i].kind != GPART_TEXT && out->parts[i].kind != GPART_CODE)
            r = fail(msg, msglen, PX_INVALID_ARGUMENT,
                     "%s: a script's model turn holds text and executableCode parts only "
                     "(results and images come from running the code)", path);
    }
    cJSON_Delete(root);
    if (r != PX_OK)
        script_turn_release(out);
    return r;
}

/* Appends one part to a parts array; 0 or -1 when out of memory. */
static int add_part(cJSON *arr, const struct gpart *p)
{
    cJSON *part = cJSON_CreateObject();
    if (!part || !cJSON_AddItemToArray(arr, part)) {
        cJSON_Delete(part);
        return -1;
    }
    switch (p->kind) {
    case GPART_TEXT:
        if (!wire_add_text(part, "text", p->text ? p->text : "", p->text ? p->text_len : 0))
            return -1;
        if (p->thought && !cJSON_AddBoolToObject(part, "thought", 1))
            return -1;
        return 0;
    case GPART_CODE: {
        cJSON *c = cJSON_AddObjectToObject(part, "executableCode");
        if (!c || !cJSON_AddStringToObject(c, "language", "PYTHON") ||
            !wire_add_text(c, "code", p->text ? p->text : "", p->text ? p->text_len : 0) ||
            (p->id && !cJSON_AddStringToObject(c, "id", p->id)))
            return -1;
        return 0;
    }
    case GPART_RESULT: {
        cJSON *c = cJSON_AddObjectToObject(part, "codeExecutionResult");
        if (!c || !cJSON_AddStringToObject(c, "outcome", wire_outcome_name(p->outcome)) ||
            (p->text && !wire_add_text(c, "output", p->text, p->text_len)) ||
            (p->id && !cJSON_AddStringToObject(c, "id", p->id)))
            return -1;
        return 0;
    }
    case GPART_INLINE_DATA: {
        char *b64 = base64_encode(p->data, p->data_len, NULL);
        cJSON *c = cJSON_AddObjectToObject(part, "inlineData");
        int ok = b64 && c && cJSON_AddStringToObject(c, "mimeType", p->mime) &&
                 cJSON_AddStringToObject(c, "data", b64);
        free(b64);
        return ok ? 0 : -1;
    }
    case GPART_OTHER:
        return 0;
    }
    return -1;
}

/* The compact text of root (freed), its length in *len. */
static char *print(cJSON *root, size_t *len)
{
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (text && len)
        *len = strlen(text);
    return text;
}

char *gemini_encode_response(const struct gpart *parts, size_t nparts,
                             const char *finish_reason, const struct gemini_meta *meta,
                             size_t *len)
{
    char created[40];
    cJSON *root = cJSON_CreateObject();
    cJSON *cands = root ? cJSON_AddArrayToObject(root, "candidates") : NULL;
    cJSON *cand = cJSON_CreateObject();
    if (!cands || !cand || !cJSON_AddItemToArray(cands, cand)) {
        cJSON_Delete(cand);
        cJSON_Delete(root);
        return NULL;
    }
    cJSON *content = cJSON_AddObjectToObject(cand, "content");
    cJSON *arr = content ? cJSON_AddArrayToObject(content, "parts") : NULL;
    int ok = arr && cJSON_AddStringToObject(content, "role", "model");
    for (size_t i = 0; ok && i < nparts; i++)
        ok = add_part(arr, &parts[i]) == 0;
    if (ok && finish_reason)
        ok = !!cJSON_AddStringToObject(cand, "finishReason", finish_reason);
    ok = ok && cJSON_AddNumberToObject(cand, "index", 0);
    cJSON *usage = ok ? cJSON_AddObjectToObject(root, "usageMetadata") : NULL;
    unsigned long long total = meta->prompt_tokens + meta->candidates_tokens + meta->tool_tokens;
    ok = usage && cJSON_AddNumberToObject(usage, "promptTokenCount", (double)meta->prompt_tokens) &&
         cJSON_AddNumberToObject(usage, "candidatesTokenCount", (double)meta->candidates_tokens) &&
         cJSON_AddNumberToObject(usage, "totalTokenCount", (double)total) &&
         (!meta->tool_tokens ||
          cJSON_AddNumberToObject(usage, "toolUsePromptTokenCount", (double)meta->tool_tokens));
    wire_rfc3339(meta->create_time_ms, created, sizeof(created));
    ok = ok && cJSON_AddStringToObject(root, "modelVersion", meta->model_version) &&
         cJSON_AddStringToObject(root, "responseId", meta->response_id) &&
         cJSON_AddStringToObject(root, "createTime", created);
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return print(root, len);
}

char *gemini_encode_count_tokens(unsigned long long total, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    if (root && !cJSON_AddNumberToObject(root, "totalTokens", (double)total)) {
        cJSON_Delete(root);
        return NULL;
    }
    return print(root, len);
}

static cJSON *model_object(const char *prefix, const struct gemini_model *m)
{
    char name[256], display[160];
    snprintf(name, sizeof(name), "%s%s", prefix, m->id);
    snprintf(display, sizeof(display), "%s (pyexecd)", m->id);
    cJSON *o = cJSON_CreateObject();
    cJSON *methods = o ? cJSON_AddArrayToObject(o, "supportedGenerationMethods") : NULL;
    static const char *const supported[] = {"generateContent", "streamGenerateContent",
                                            "countTokens"};
    int ok = methods && cJSON_AddStringToObject(o, "name", name) &&
             cJSON_AddStringToObject(o, "baseModelId", m->id) &&
             cJSON_AddStringToObject(o, "version", "pyexecd-" PYEXECD_VERSION) &&
             cJSON_AddStringToObject(o, "displayName", display) &&
             cJSON_AddStringToObject(o, "description", m->description) &&
             cJSON_AddNumberToObject(o, "inputTokenLimit", MODEL_INPUT_TOKEN_LIMIT) &&
             cJSON_AddNumberToObject(o, "outputTokenLimit", MODEL_OUTPUT_TOKEN_LIMIT);
    for (size_t i = 0; ok && i < sizeof(supported) / sizeof(supported[0]); i++) {
        cJSON *s = cJSON_CreateString(supported[i]);
        ok = s && cJSON_AddItemToArray(methods, s);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

char *gemini_encode_model(const char *prefix, const struct gemini_model *m, size_t *len)
{
    return print(model_object(prefix, m), len);
}

char *gemini_encode_model_list(const char *prefix, const struct gemini_model *models,
                               size_t n, const char *next_page_token, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "models") : NULL;
    int ok = !!arr;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *m = model_object(prefix, &models[i]);
        ok = m && cJSON_AddItemToArray(arr, m);
        if (!ok)
            cJSON_Delete(m);
    }
    if (ok && next_page_token)
        ok = !!cJSON_AddStringToObject(root, "nextPageToken", next_page_token);
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return print(root, len);
}
