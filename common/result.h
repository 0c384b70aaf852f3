/* The one result enum of pyexecd. Internal functions return these codes; the HTTP edge
 * (server/error_reply.c) turns them into a status and a Google error body, once.
 * Values are never renumbered: they appear in logs. */
#ifndef PYEXECD_RESULT_H
#define PYEXECD_RESULT_H

enum px_result {
    PX_OK = 0,
    PX_INVALID_ARGUMENT = 1,    /* the request is malformed or asks for something unsupported */
    PX_BODY_TOO_LARGE = 2,      /* the request body is over LIMIT_BODY_BYTES */
    PX_NOT_FOUND = 3,           /* no such path or session */
    PX_METHOD_NOT_ALLOWED = 4,  /* the path exists, the method does not */
    PX_QUEUE_FULL = 5,          /* every worker busy and the queue full */
    PX_UNAVAILABLE = 6,         /* the zygote is down or restarting */
    PX_INTERNAL = 7,            /* a bug or an unexpected system failure */
    PX_NOMEM = 8,               /* an allocation failed */
    PX_SYSTEM = 9,              /* a system call failed; errno tells which */
    PX_PROTOCOL = 10,           /* a malformed frame on an internal channel */
    PX_SHUTTING_DOWN = 11,      /* the server is stopping */
    PX_TOO_LARGE = 12,          /* a value inside the request is over its limit */
    PX_BUSY = 13,               /* the session is running another execution */
    PX_SESSION_LIMIT = 14,      /* the server holds its maximum of sessions */
    PX_UNAUTHENTICATED = 15,    /* keys are required and the request presented none */
    PX_PERMISSION_DENIED = 16,  /* the request's key is not one of the server's */
    PX_KEY_LIMIT = 17,          /* the request's key is at its own bound (executions at
                                 * once, or sessions alive) */
};

/* Short, stable description of a result, for logs. Never NULL. */
const char *px_result_str(enum px_result r);

#endif
