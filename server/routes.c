#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error_reply.h"
#include "executor.h"
#include "wire.h"

static struct routes_options options;

void routes_init(const struct routes_options *opt)
{
    options = *opt;
    wire_set_input_file_limit(opt->input_file_bytes);
}

/* One POST /v1/execute in flight: everything its reply needs. */
struct execute_call {
    struct http_exchange *ex;
    struct wire_execute *w;
    struct exec_request req;
};

static void execute_call_free(struct execute_call *call)
{
    wire_execute_free(call->w);
    exec_request_release(&call->req);
    free(call);
}

/* exec_done_fn: runs on the executor thread; encodes and sends the reply. */
static void execute_done(void *ctx, struct exec_result *res)
{
    struct execute_call *call = ctx;
    if (!res) {
        reply_error(call->ex, PX_NOMEM, "Out of memory while building the reply.", NULL);
    } else if (res->status != PX_OK) {
        reply_error(call->ex, res->status, res->status_message, NULL);
    } else {
        size_t len;
        char *body = wire_encode_execute(call->w, res, &len);
        if (body)
            http_exchange_reply(call->ex, 200, body, len, NULL);
        else
            reply_error(call->ex, PX_NOMEM, "Out of memory while encoding the reply.", NULL);
    }
    exec_result_free(res);
    execute_call_free(call);
}

static void handle_execute(struct http_exchange *ex)
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
    enum px_result r = wire_parse_execute(body, len, &call->w, &call->req, msg, sizeof(msg));
    if (r != PX_OK) {
        reply_error(ex, r, msg, NULL);
        free(call);
        return;
    }
    r = executor_submit(&call->req, execute_done, call);
    if (r != PX_OK) {
        const char *why = r == PX_QUEUE_FULL
            ? "Every worker is busy and the queue is full; retry later."
            : r == PX_SHUTTING_DOWN ? "The server is shutting down." : NULL;
        reply_error(ex, r, why, NULL);
        execute_call_free(call);
    }
}

static void handle_health(struct http_exchange *ex)
{
    struct health_report h = {0};
    char *info = NULL;
    executor_snapshot(&h, &info);
    h.info_json = info;
    h.deadline_ms = options.deadline_ms;
    h.output_bytes = options.output_bytes;
    h.body_bytes = options.body_bytes;
    h.input_file_bytes = options.input_file_bytes;
    h.policy_name = options.policy_name;
    size_t len;
    char *body = wire_encode_health(&h, &len);
    free(info);
    if (!body) {
        reply_error(ex, PX_NOMEM, "Out of memory.", NULL);
        return;
    }
    /* 503 until the zygote is ready, so a load balancer sends no traffic before then. */
    http_exchange_reply(ex, h.zygote_state == ZYGOTE_READY ? 200 : 503, body, len, NULL);
}

static const struct route {
    const char *path;
    const char *method;
    const char *allow;          /* the Allow header of a 405 */
    void (*handle)(struct http_exchange *ex);
} routes[] = {
    {"/v1/execute", "POST", "POST", handle_execute},
    {"/healthz", "GET", "GET, HEAD", handle_health},
    {"/healthz", "HEAD", "GET, HEAD", handle_health},
};

void routes_handle(struct http_exchange *ex)
{
    const char *path = http_exchange_path(ex);
    const char *method = http_exchange_method(ex);
    const struct route *path_match = NULL;

    if (http_exchange_body_too_large(ex)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "The request body is larger than %zu bytes.",
                 options.body_bytes);
        reply_error(ex, PX_BODY_TOO_LARGE, msg, NULL);
        return;
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        path_match = &routes[i];
        if (strcmp(routes[i].method, method) == 0) {
            routes[i].handle(ex);
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
