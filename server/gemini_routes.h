/* The generateContent surface's paths: .../models/{model}:generateContent,
 * :streamGenerateContent, :countTokens, GET .../models/{model} and GET .../models, under
 * any prefix ending in a version (v1, v1beta, v1alpha, v1beta1), Vertex's
 * publishers/google/ and projects/P/locations/L/publishers/google/ included. */
#ifndef PYEXECD_GEMINI_ROUTES_H
#define PYEXECD_GEMINI_ROUTES_H

#include <stddef.h>

#include "http_server.h"
#include "request_record.h"

/* The route template of a path of the surface (ROUTE_MODELS ... ROUTE_MODEL_METHOD), or
 * ROUTE_OTHER when it is not one. */
enum route_id gemini_route_id(const char *path);

struct api_key;

/* Answers the request if its path is one of the surface's; returns 0 when it is not.
 * input_limit: decoded inline-data bytes a request's last user turn may carry. key: the
 * request's API key (NULL: no key file), whose bound a turn that runs code counts against. */
int gemini_route(struct http_exchange *ex, const char *path, const char *method,
                 size_t input_limit, struct api_key *key);

#endif
