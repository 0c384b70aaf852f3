#include "request_record.h"

#include <string.h>

static const char *const route_names[ROUTE_COUNT] = {
    [ROUTE_OTHER] = "other",
    [ROUTE_EXECUTE] = "/v1/execute",
    [ROUTE_SESSIONS] = "/v1/sessions",
    [ROUTE_SESSION] = "/v1/sessions/{id}",
    [ROUTE_SESSION_EXECUTE] = "/v1/sessions/{id}:execute",
    [ROUTE_ENVIRONMENT] = "/v1/environment",
    [ROUTE_HEALTHZ] = "/healthz",
    [ROUTE_READYZ] = "/readyz",
    [ROUTE_METRICS] = "/metrics",
    [ROUTE_MODELS] = "/{version}/models",
    [ROUTE_MODEL] = "/{version}/models/{model}",
    [ROUTE_GENERATE] = "/{version}/models/{model}:generateContent",
    [ROUTE_STREAM_GENERATE] = "/{version}/models/{model}:streamGenerateContent",
    [ROUTE_COUNT_TOKENS] = "/{version}/models/{model}:countTokens",
    [ROUTE_MODEL_METHOD] = "/{version}/models/{model}:{method}",
};

const char *route_name(enum route_id r)
{
    return (unsigned)r < ROUTE_COUNT ? route_names[r] : route_names[ROUTE_OTHER];
}

static const char *const method_names[METHOD_COUNT] = {
    [METHOD_OTHER] = "other", [METHOD_GET] = "GET", [METHOD_HEAD] = "HEAD",
    [METHOD_POST] = "POST", [METHOD_PUT] = "PUT", [METHOD_DELETE] = "DELETE",
    [METHOD_PATCH] = "PATCH", [METHOD_OPTIONS] = "OPTIONS",
};

enum method_id method_id_of(const char *method)
{
    for (int m = 1; m < METHOD_COUNT; m++)
        if (strcmp(method, method_names[m]) == 0)
            return (enum method_id)m;
    return METHOD_OTHER;
}

const char *method_name(enum method_id m)
{
    return (unsigned)m < METHOD_COUNT ? method_names[m] : method_names[METHOD_OTHER];
}
