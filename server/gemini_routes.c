#include "gemini_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/limits.h"
#include "error_reply.h"
#include "gemini_wire.h"
#include "models.h"
#include "routes.h"
#include "turns.h"

/* What a path names. */
struct target {
    char version[16];      /* "v1beta"; "" when the path had none */
    int vertex;            /* under publishers/google/ */
    char model[160];       /* "" for the collection */
    char method[40];       /* after ':'; "" for none */
};

static int is_version(const char *s, size_t n)
{
    static const char *const versions[] = {"v1", "v1beta", "v1alpha", "v1beta1"};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
        if (strlen(versions[i]) == n && memcmp(versions[i], s, n) == 0)
            return 1;
    return 0;
}

/* Splits path at '/' into at most max segments (pointers into it, with lengths). */
static size_t split(const char *path, const char **seg, size_t *len, size_t max)
{
    size_t n = 0;
    const char *p = path;
    while (*p && n < max) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, '/');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        seg[n] = p;
        len[n++] = l;
        p += l;
    }
    return *p ? max + 1 : n;   /* more segments than max: not ours */
}

static int seg_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(s, word, n) == 0;
}

/* Recognises .../[version/][projects/P/locations/L/][publishers/google/]models[/M[:x]]. */
static int parse_target(const char *path, struct target *t)
{
    const char *seg[32];
    size_t len[32];
    size_t n = split(path, seg, len, 32);
    memset(t, 0, sizeof(*t));
    if (n == 0 || n > 32)
        return 0;
    /* models is the last segment (the collection) or the one before the model's. */
    size_t k;
    if (seg_is(seg[n - 1], len[n - 1], "models"))
        k = n - 1;
    else if (n >= 2 && seg_is(seg[n - 2], len[n - 2], "models"))
        k = n - 2;
    else
        return 0;
    if (k + 1 < n) {
        const char *m = seg[k + 1];
        size_t ml = len[k + 1];
        const char *colon = memchr(m, ':', ml);
        size_t idl = colon ? (size_t)(colon - m) : ml;
        size_t mel = colon ? ml - idl - 1 : 0;
        if (idl == 0 || idl >= sizeof(t->model) || mel >= sizeof(t->method))
            return 0;
        memcpy(t->model, m, idl);
        if (colon)
            memcpy(t->method, colon + 1, mel);
    }
    size_t i = k;
    if (i >= 2 && seg_is(seg[i - 2], len[i - 2], "publishers") &&
        seg_is(seg[i - 1], len[i - 1], "google")) {
        t->vertex = 1;
        i -= 2;
        if (i >= 4 && seg_is(seg[i - 4], len[i - 4], "projects") &&
            seg_is(seg[i - 2], len[i - 2], "locations"))
            i -= 4;
    }
    if (i >= 1 && is_version(seg[i - 1], len[i - 1]))
        memcpy(t->version, seg[i - 1], len[i - 1]);
    else if (i != 0)
        return 0;   /* something else before models: not a path of this surface */
    return 1;
}

enum route_id gemini_route_id(const char *path)
{
    struct target t;
    if (!parse_target(path, &t))
        return ROUTE_OTHER;
    if (!t.model[0])
        return ROUTE_MODELS;
    if (!t.method[0])
        return ROUTE_MODEL;
    if (strcmp(t.method, "generateContent") == 0)
        return ROUTE_GENERATE;
    if (strcmp(t.method, "streamGenerateContent") == 0)
        return ROUTE_STREAM_GENERATE;
    if (strcmp(t.method, "countTokens") == 0)
        return ROUTE_COUNT_TOKENS;
    return ROUTE_MODEL_METHOD;
}

static const char *name_prefix(const struct target *t)
{
    return t->vertex ? "publishers/google/models/" : "models/";
}

/* The model the path names; when there is none, answers 404 as the real API words it,
 * naming the method asked for. */
static const struct model *find_model(struct http_exchange *ex, const struct target *t)
{
    const struct model *m = models_find(t->model);
    if (!m) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s%s is not found for API version %s, or is not "
                 "supported for %s. Call ListModels to see the list of available models "
                 "and their supported methods.", name_prefix(t), t->model,
                 t->version[0] ? t->version : "v1beta",
                 t->method[0] ? t->method : "generateContent");
        reply_error(ex, PX_NOT_FOUND, msg, NULL);
    }
    return m;
}

static struct gemini_model describe(const struct model *m)
{
    return (struct gemini_model){.id = m->name, .description = m->description};
}

/* A non-negative decimal, or -1. */
static long parse_count(const char *s, long max)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    long v = strtol(s, &end, 10);
    return *end || v > max ? -1 : v;
}

static void list_models(struct http_exchange *ex, const struct target *t)
{
    const char *size_arg = http_exchange_query(ex, "pageSize");
    const char *token = http_exchange_query(ex, "pageToken");
    long size = size_arg ? parse_count(size_arg, LIMIT_MODEL_PAGE_MAX) : LIMIT_MODEL_PAGE;
    long from = token && *token ? parse_count(token, LIMIT_MODELS + 1) : 0;
    if (size < 0 || from < 0) {
        reply_error(ex, PX_INVALID_ARGUMENT, size < 0 ? "Invalid pageSize: a number from 0 "
                    "to 1000." : "Invalid pageToken: pass the nextPageToken of the page "
                    "before.", NULL);
        return;
    }
    if (size == 0)
        size = LIMIT_MODEL_PAGE;
    struct gemini_model page[LIMIT_MODELS + 1];   /* the bindings, and echo */
    size_t n = 0, total = models_count();
    for (size_t i = (size_t)from; i < total && n < (size_t)size &&
                                  n < sizeof(page) / sizeof(page[0]); i++)
        page[n++] = describe(models_at(i));
    char next[24];
    int more = (size_t)from + n < total;
    snprintf(next, sizeof(next), "%zu", (size_t)from + n);
    size_t len;
    char *body = gemini_encode_model_list(name_prefix(t), page, n, more ? next : NULL, &len);
    http_exchange_reply(ex, 200, body, body ? len : 0, NULL);
}

static void get_model(struct http_exchange *ex, const struct target *t)
{
    const struct model *m = find_model(ex, t);
    if (!m)
        return;
    struct gemini_model d = describe(m);
    size_t len;
    char *body = gemini_encode_model(name_prefix(t), &d, &len);
    http_exchange_reply(ex, 200, body, body ? len : 0, NULL);
}

static void count_tokens(struct http_exchange *ex, const struct target *t, size_t input_limit)
{
    char msg[512];
    size_t len;
    const char *body = http_exchange_body(ex, &len);
    if (!find_model(ex, t))
        return;
    struct gen_request req;
    enum px_result r = gemini_parse_request(body, len, 1, input_limit, &req, msg, sizeof(msg));
    if (r != PX_OK) {
        reply_error(ex, r, msg, NULL);
        return;
    }
    char *out = gemini_encode_count_tokens(gen_tokens_of_request(&req), &len);
    gen_request_release(&req);
    http_exchange_reply(ex, 200, out, out ? len : 0, NULL);
}

static void generate(struct http_exchange *ex, const struct target *t, int stream,
                     size_t input_limit, struct api_key *key)
{
    char msg[512];
    size_t len;
    const char *body = http_exchange_body(ex, &len);
    const struct model *m = find_model(ex, t);
    if (!m)
        return;
    int fidelity = request_fidelity(ex);
    if (fidelity < 0)
        return;
    struct gen_request req;
    enum px_result r = gemini_parse_request(body, len, 0, input_limit, &req, msg, sizeof(msg));
    if (r != PX_OK) {
        reply_error(ex, r, msg, NULL);
        return;
    }
    req.fidelity = (unsigned)fidelity;
    const char *alt = http_exchange_query(ex, "alt");
    enum turn_mode mode = !stream ? TURN_UNARY
                        : alt && strcmp(alt, "sse") == 0 ? TURN_SSE : TURN_JSON_ARRAY;
    r = turns_submit(ex, m, &req, mode, key);
    if (r != PX_OK)
        reply_error(ex, r, r == PX_QUEUE_FULL ? "Every model turn runner is busy and the queue "
                    "is full; retry later." : NULL, NULL);
}

int gemini_route(struct http_exchange *ex, const char *path, const char *method,
                 size_t input_limit, struct api_key *key)
{
    struct target t;
    if (!parse_target(path, &t))
        return 0;
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (!t.model[0] || !t.method[0]) {
        if (!get) {
            reply_error(ex, PX_METHOD_NOT_ALLOWED, "Use GET to list or get models.", "GET");
            return 1;
        }
        if (t.model[0])
            get_model(ex, &t);
        else
            list_models(ex, &t);
        return 1;
    }
    int gen = strcmp(t.method, "generateContent") == 0;
    int stream = strcmp(t.method, "streamGenerateContent") == 0;
    int count = strcmp(t.method, "countTokens") == 0;
    if (!gen && !stream && !count) {
        char msg[160];
        snprintf(msg, sizeof(msg), "Method %.40s is not served here (generateContent, "
                 "streamGenerateContent, countTokens).", t.method);
        reply_error(ex, PX_NOT_FOUND, msg, NULL);
        return 1;
    }
    if (!post) {
        reply_error(ex, PX_METHOD_NOT_ALLOWED, "Use POST.", "POST");
        return 1;
    }
    if (count)
        count_tokens(ex, &t, input_limit);
    else
        generate(ex, &t, stream, input_limit, key);
    return 1;
}
