#include "result.h"

/* A result without a text here fails the build, in every configuration. */
#pragma GCC diagnostic error "-Wswitch-enum"

const char *px_result_str(enum px_result r)
{
    switch (r) {
    case PX_OK: return "ok";
    case PX_INVALID_ARGUMENT: return "invalid argument";
    case PX_BODY_TOO_LARGE: return "request body too large";
    case PX_NOT_FOUND: return "not found";
    case PX_METHOD_NOT_ALLOWED: return "method not allowed";
    case PX_QUEUE_FULL: return "queue full";
    case PX_UNAVAILABLE: return "unavailable";
    case PX_INTERNAL: return "internal error";
    case PX_NOMEM: return "out of memory";
    case PX_SYSTEM: return "system call failed";
    case PX_PROTOCOL: return "protocol error";
    case PX_SHUTTING_DOWN: return "shutting down";
    case PX_TOO_LARGE: return "value too large";
    case PX_BUSY: return "busy";
    case PX_SESSION_LIMIT: return "session limit reached";
    case PX_UNAUTHENTICATED: return "no API key";
    case PX_PERMISSION_DENIED: return "API key not valid";
    case PX_KEY_LIMIT: return "API key at its limit";
    }
    return "unknown result";
}
