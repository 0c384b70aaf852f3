#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/config.h"
#include "../common/fidelity.h"
#include "api_keys.h"
#include "clock.h"
#include "error_reply.h"
#include "executor.h"
#include "gemini_routes.h"
#include "metrics.h"
#include "request_log.h"
#include "request_record.h"
#include "wire.h"

static struct routes_options options;

void routes_init(const struct routes_options *opt)
{
    options = *opt;
}

/* One POST /v1/execute in flight: everything its reply needs. */
struct execute_call {
    struct http_exchange *ex;
    struct wire_execute *w;
    struct exec_request req;
    struct exec_result *res;    /* once it ran */
};

static void execute_call_free(struct execute_call *call)
{
    wire_execute_free(call->w);
    exec_request_release(&call->req);
    exec_result_free(call->res);
    free(call);
}

/* http_produce_fn: encodes the reply on an HTTP thread (a reply can carry megabytes of
 * images, which the executor thread must not spend its time on), then frees the call. */
static char *produce_execute_reply(void *ctx, int *status, size_t *len)
{
    struct execute_call *call = ctx;
    int64_t t0 = monotonic_ns();
    char *body = wire_encode_execute(call->w, call->res, len);
    int64_t took = monotonic_ns() - t0;
    metrics_phase(PHASE_ENCODE, took);
    http_exchange_record(call->ex)->encode_ns += took;
    *status = 200;
    execute_call_free(call);
    return body;
}

/* exec_done_fn: runs on the executor thread; takes the results over. */
static void execute_done(void *ctx, struct exec_reply *reply)
{
    struct execute_call *call = ctx;
    if (reply->status != PX_OK) {
        reply_error(call->ex, reply->status, reply->message, NULL);
        execute_call_free(call);
        return;
    }
    call->res = reply->result;
    reply->result = NULL;
    http_exchange_reply_later(call->ex, produce_execute_reply, call);
}

int request_fidelity(struct http_exchange *ex)
{
    const char *h = http_exchange_header(ex, FIDELITY_HEADER);
    if (!h)
        return FIDELITY_DEFAULT;
    int f = fidelity_from_name(h);
    if (f < 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "Invalid %s header '%.40s': current, 2025 or plain.",
                 FIDELITY_HEADER, h);
        reply_error(ex, PX_INVALID_ARGUMENT, msg, NULL);
    }
    return f;
}

/* The 429 of a key at its own bound of `what`. */
static void key_refused(struct http_exchange *ex, struct api_key *key, enum key_place what)
{
    char msg[256];
    api_key_refusal(key, what, msg, sizeof(msg));
    reply_error(ex, PX_KEY_LIMIT, msg, NULL);
}

/* An execute body, in a new interpreter (session NULL) or in a session's, for key. */
static void run_execute(struct http_exchange *ex, const char *session, struct api_key *key)
{
    char msg[512];
    size_t len;
    const char *body = http_exchange_body(ex, &len);
    struct execute_call *call = calloc(1, sizeof(*call));
    if (!call) {
        reply_error(ex, PX_NOMEM, "Out of memory.", NULL);
        return;
    }
    call->ex = ex;
    int fidelity = request_fidelity(ex);
    if (fidelity < 0) {
        free(call);
        return;
    }
    enum px_result r = wire_parse_execute(body, len, options.input_file_bytes, &call->w,
                                          &call->req, msg, sizeof(msg));
    if (r != PX_OK) {
        reply_error(ex, r, msg, NULL);
        free(call);
        return;
    }
    call->req.fidelity = (unsigned)fidelity;
    call->req.stats = &http_exchange_record(ex)->exec;
    r = session ? executor_session_execute(key, 0, session, &call->req, execute_done, call)
                : executor_submit(key, &call->req, execute_done, call);
    if (r == PX_KEY_LIMIT) {
        key_refused(ex, key, KEY_EXECUTIONS);
        execute_call_free(call);
    } else if (r != PX_OK) {
        const char *why = r == PX_QUEUE_FULL
            ? "Every worker is busy and the queue is full; retry later."
            : r == PX_SHUTTING_DOWN ? "The server is shutting down." : NULL;
        reply_error(ex, r, why, NULL);
        execute_call_free(call);
    }
}

static void handle_execute(struct http_exchange *ex, struct api_key *key)
{
    run_execute(ex, NULL, key);
}

/* exec_done_fn for create and get: the session resource. */
static void session_info_done(void *ctx, struct exec_reply *rep)
{
    struct http_exchange *ex = ctx;
    if (rep->status != PX_OK) {
        reply_error(ex, rep->status, rep->message, NULL);
        return;
    }
    size_t len;
    char *body = wire_encode_session(&rep->session, &len);
    http_exchange_reply(ex, 200, body, len, NULL);   /* NULL body: out of memory, 500 */
}

/* exec_done_fn for delete: an empty object. */
static void session_deleted(void *ctx, struct exec_reply *rep)
{
    struct http_exchange *ex = ctx;
    if (rep->status != PX_OK) {
        reply_error(ex, rep->status, rep->message, NULL);
        return;
    }
    size_t len;
    char *body = wire_encode_empty(&len);
    http_exchange_reply(ex, 200, body, len, NULL);
}

static void session_refused(struct http_exchange *ex, enum px_result r, struct api_key *key)
{
    char msg[160];
    const char *why = NULL;
    if (r == PX_KEY_LIMIT) {
        key_refused(ex, key, KEY_SESSIONS);
        return;
    }
    if (r == PX_SESSION_LIMIT) {
        snprintf(msg, sizeof(msg), "The server already holds its maximum of %u sessions; "
                 "delete one or retry later.", options.max_sessions);
        why = msg;
    } else if (r == PX_SHUTTING_DOWN) {
        why = "The server is shutting down.";
    }
    reply_error(ex, r, why, NULL);
}

static void handle_session_create(struct http_exchange *ex, struct api_key *key)
{
    char msg[256];
    size_t len;
    const char *body = http_exchange_body(ex, &len);
    enum px_result r = wire_parse_empty(body, len, msg, sizeof(msg));
    if (r != PX_OK) {
        reply_error(ex, r, msg, NULL);
        return;
    }
    r = executor_session_create(key, 0, NULL, session_info_done, ex);
    if (r != PX_OK)
        session_refused(ex, r, key);
}

/* A session id as servers make them: 32 lowercase hex digits, after the owner's replica
 * id and a dot when it has one. Returns the replica id's length (0: none), or -1 when
 * s[0..n) is not shaped so. */
static int session_id_replica(const char *s, size_t n)
{
    if (n < 32 || n == 33 || n >= LIMIT_SESSION_ID_BYTES)
        return -1;
    const char *hex = s + n - 32;
    for (size_t i = 0; i < 32; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return -1;
    if (n == 32)
        return 0;
    size_t r = n - 33;
    return s[r] == '.' && config_valid_replica_id(s, r) ? (int)r : -1;
}

/* /v1/sessions/<id> (GET, DELETE) and /v1/sessions/<id>:execute (POST), for key's
 * sessions only. Returns 0 when the path is not one of these. */
static int route_session(struct http_exchange *ex, const char *path, const char *method,
                         struct api_key *key)
{
    static const char prefix[] = "/v1/sessions/";
    if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
        return 0;
    const char *id = path + sizeof(prefix) - 1;
    const char *colon = strchr(id, ':');
    size_t idlen = colon ? (size_t)(colon - id) : strlen(id);
    char idbuf[LIMIT_SESSION_ID_BYTES];
    if (colon && strcmp(colon, ":execute") != 0)
        return 0;
    int replica = session_id_replica(id, idlen);
    if (replica < 0) {
        reply_error(ex, PX_NOT_FOUND, "No such session: a session name is sessions/ and 32 "
                    "hexadecimal digits, after the id of the replica that made it and a dot "
                    "(sessions/r1.<32 hex>).", NULL);
        return 1;
    }
    memcpy(idbuf, id, idlen);
    idbuf[idlen] = '\0';
    /* Another server's session: say whose, so that a misrouted request is plain. */
    const char *mine = options.replica_id ? options.replica_id : "";
    if (replica > 0 && ((size_t)replica != strlen(mine) ||
                        memcmp(id, mine, (size_t)replica) != 0)) {
        char msg[320];
        snprintf(msg, sizeof(msg), "Session sessions/%s belongs to replica %.*s, not to this "
                 "one (%s); route it there.", idbuf, replica, id, mine[0] ? mine : "none");
        reply_error(ex, PX_NOT_FOUND, msg, NULL);
        return 1;
    }
    enum px_result r;
    if (colon) {
        if (strcmp(method, "POST") != 0) {
            reply_error(ex, PX_METHOD_NOT_ALLOWED, "Use POST to execute in a session.", "POST");
            return 1;
        }
        run_execute(ex, idbuf, key);
        return 1;
    }
    if (strcmp(method, "GET") == 0)
        r = executor_session_get(key, idbuf, session_info_done, ex);
    else if (strcmp(method, "DELETE") == 0)
        r = executor_session_delete(key, 0, idbuf, session_deleted, ex);
    else {
        reply_error(ex, PX_METHOD_NOT_ALLOWED, "A session allows GET and DELETE.",
                    "GET, DELETE");
        return 1;
    }
    if (r != PX_OK)
        session_refused(ex, r, key);
    return 1;
}

static void handle_health(struct http_exchange *ex, struct api_key *key)
{
    (void)key;
    struct health_report h;
    executor_snapshot(&h);
    h.deadline_ms = options.deadline_ms;
    h.output_bytes = options.output_bytes;
    h.body_bytes = options.body_bytes;
    h.input_file_bytes = options.input_file_bytes;
    h.policy_name = options.policy_name;
    h.replica_id = options.replica_id;
    size_t len;
    char *body = wire_encode_health(&h, &len);
    if (!body) {
        reply_error(ex, PX_NOMEM, "Out of memory.", NULL);
        return;
    }
    /* Liveness: 200 whenever the server answers HTTP, the zygote starting, restarting or
     * not (the body says which); whether to send it work is /readyz's to say. */
    http_exchange_reply(ex, 200, body, len, NULL);
}

/* GET /readyz: 200 while the server takes work; 503 while its zygote is not ready (it
 * starts or restarts) and once it drains, so that a load balancer sends nothing then.
 * /healthz, the liveness check with the figures, stays 200 all along. */
static void handle_ready(struct http_exchange *ex, struct api_key *key)
{
    (void)key;
    struct health_report h;
    executor_snapshot(&h);
    if (http_server_draining()) {
        reply_error(ex, PX_SHUTTING_DOWN, "The server is shutting down.", NULL);
        return;
    }
    if (h.zygote_state != ZYGOTE_READY) {
        reply_error(ex, PX_UNAVAILABLE, "The execution environment is starting (its zygote "
                    "process is not ready yet).", NULL);
        return;
    }
    static const char ready[] = "{\"status\": \"ready\"}";
    char *body = strdup(ready);
    http_exchange_reply(ex, body ? 200 : 500, body, body ? sizeof(ready) - 1 : 0, NULL);
}

/* GET /v1/environment: what the sandbox's interpreter holds, against the real service's
 * documented lists. */
static void handle_environment(struct http_exchange *ex, struct api_key *key)
{
    (void)key;
    struct health_report h;
    executor_snapshot(&h);
    if (!h.interpreter.python[0]) {
        reply_error(ex, PX_UNAVAILABLE, "The execution environment is starting; retry "
                    "shortly.", NULL);
        return;
    }
    size_t len;
    char *body = wire_encode_environment(&h.interpreter, options.policy_name, &len);
    http_exchange_reply(ex, body ? 200 : 500, body, body ? len : 0, NULL);
}

/* GET /metrics: the Prometheus exposition (server/metrics.c), the gauges from the same
 * snapshot /healthz shows. Like every route but the probes, it needs a key when the
 * server has keys: it tells anyone who reads it how busy the server is. */
static void handle_metrics(struct http_exchange *ex, struct api_key *key)
{
    (void)key;
    struct health_report h;
    executor_snapshot(&h);
    struct metrics_gauges g = {.health = &h,
                               .body_bytes_in_flight = http_server_bodies_in_flight(),
                               .requests_in_flight = http_server_open_exchanges()};
    size_t len = 0;
    char *body = metrics_render(&g, &len);
    if (!body) {
        reply_error(ex, PX_NOMEM, "Out of memory.", NULL);
        return;
    }
    http_exchange_reply_typed(ex, 200, body, len, METRICS_CONTENT_TYPE);
}

static const struct route {
    const char *path;
    const char *method;
    const char *allow;          /* the Allow header of a 405 */
    void (*handle)(struct http_exchange *ex, struct api_key *key);
} routes[] = {
    {"/v1/execute", "POST", "POST", handle_execute},
    {"/v1/sessions", "POST", "POST", handle_session_create},
    {"/v1/environment", "GET", "GET", handle_environment},
    {"/healthz", "GET", "GET, HEAD", handle_health},
    {"/healthz", "HEAD", "GET, HEAD", handle_health},
    {"/readyz", "GET", "GET, HEAD", handle_ready},
    {"/readyz", "HEAD", "GET, HEAD", handle_ready},
    {"/metrics", "GET", "GET", handle_metrics},
};

/* The key a request presents, as the SDKs and curl send it: the x-goog-api-key header,
 * ?key=, or Authorization: Bearer. Returns 1 when it may go on (with its key in *found,
 * NULL without a key file); else ex is answered 401 (none) or 403 (not one of ours). */
static int check_key(struct http_exchange *ex, struct api_key **found)
{
    const char *key = http_exchange_header(ex, "x-goog-api-key");
    if (!key || !*key)
        key = http_exchange_query(ex, "key");
    const char *auth = http_exchange_header(ex, "Authorization");
    if ((!key || !*key) && auth && strncasecmp(auth, "Bearer ", 7) == 0)
        key = auth + 7 + strspn(auth + 7, " ");
    enum px_result r = api_keys_check(key, found);
    http_exchange_record(ex)->key_id = r == PX_OK && *found ? api_key_id(*found) : NULL;
    if (r == PX_UNAUTHENTICATED)
        reply_error(ex, r, "Method doesn't allow unregistered callers (callers without "
                    "established identity). Please use API Key or other form of API "
                    "consumer identity to call this API.", NULL);
    else if (r != PX_OK)
        reply_error(ex, r, "API key not valid. Please pass a valid API key.", NULL);
    return r == PX_OK;
}

/* The route template a path falls under, whatever then answers it (a 401 or a 405
 * included): the label of its metrics and its log line. */
static enum route_id route_of(const char *path)
{
    static const struct {
        const char *path;
        enum route_id id;
    } fixed[] = {
        {"/v1/execute", ROUTE_EXECUTE}, {"/v1/sessions", ROUTE_SESSIONS},
        {"/v1/environment", ROUTE_ENVIRONMENT}, {"/healthz", ROUTE_HEALTHZ},
        {"/readyz", ROUTE_READYZ}, {"/metrics", ROUTE_METRICS},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (strcmp(path, fixed[i].path) == 0)
            return fixed[i].id;
    static const char prefix[] = "/v1/sessions/";
    if (strncmp(path, prefix, sizeof(prefix) - 1) == 0) {
        const char *colon = strchr(path + sizeof(prefix) - 1, ':');
        if (!colon)
            return ROUTE_SESSION;
        if (strcmp(colon, ":execute") == 0)
            return ROUTE_SESSION_EXECUTE;
    }
    return gemini_route_id(path);
}

void routes_completed(struct request_record *rec)
{
    metrics_request(rec);
    request_log_write(rec);
}

void routes_handle(struct http_exchange *ex)
{
    const char *path = http_exchange_path(ex);
    const char *method = http_exchange_method(ex);
    const struct route *path_match = NULL;
    http_exchange_record(ex)->route = route_of(path);

    const char *framing = http_exchange_framing_error(ex);
    if (framing) {
        reply_error(ex, PX_INVALID_ARGUMENT, framing, NULL);
        return;
    }
    if (http_exchange_body_too_large(ex)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "The request body is larger than %zu bytes.",
                 options.body_bytes);
        reply_error(ex, PX_BODY_TOO_LARGE, msg, NULL);
        return;
    }
    if (http_exchange_overloaded(ex)) {
        reply_error(ex, PX_UNAVAILABLE, "The server is holding too many request bodies; "
                    "retry shortly.", NULL);
        return;
    }
    /* The probes answer anyone; everything else needs a key when the server has keys. */
    int probe = strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0;
    struct api_key *key = NULL;
    if (!probe && !check_key(ex, &key))
        return;
    /* Draining: what was taken runs on, nothing new is (the probes still answer). */
    if (http_server_draining() && !probe) {
        reply_error(ex, PX_SHUTTING_DOWN, "The server is shutting down; send the request to "
                    "another server or retry shortly.", NULL);
        return;
    }
    if (route_session(ex, path, method, key))
        return;
    if (gemini_route(ex, path, method, options.input_file_bytes, key))
        return;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        path_match = &routes[i];
        if (strcmp(routes[i].method, method) == 0) {
            routes[i].handle(ex, key);
            return;
        }
    }
    char msg[256];
    if (path_match) {
        snprintf(msg, sizeof(msg), "Method %.32s is not allowed on %.64s (allowed: %s).",
                 method, path, path_match->allow);
        reply_error(ex, PX_METHOD_NOT_ALLOWED, msg, path_match->allow);
    } else {
        snprintf(msg, sizeof(msg), "No such resource: %.128s", path);
        reply_error(ex, PX_NOT_FOUND, msg, NULL);
    }
}
