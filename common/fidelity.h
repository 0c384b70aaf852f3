/* Traceback profiles: which of the real service's eras a FAILED output reads like. The
 * server's default comes from --fidelity (or --runner-frame); a request may ask for
 * another with the X-Pyexecd-Fidelity header. The number travels in IPC_W_JOB. */
#ifndef PYEXECD_FIDELITY_H
#define PYEXECD_FIDELITY_H

#include <string.h>

enum fidelity {
    FIDELITY_DEFAULT = 0,   /* the server's configured profile */
    FIDELITY_CURRENT = 1,   /* str(exc), then the traceback from the runner frame
                             * /usr/bin/entry/named_interpreters/python/interpreter:98 */
    FIDELITY_2025 = 2,      /* the same from /usr/bin/entry/entry_point:117 */
    FIDELITY_PLAIN = 3,     /* a plain Python traceback: no runner frame, no str(exc) */
};
#define FIDELITY_COUNT 4

/* The profile named ("current", "2025", "plain"), or -1. */
static inline int fidelity_from_name(const char *s)
{
    static const char *const names[FIDELITY_COUNT] = {"default", "current", "2025", "plain"};
    for (int i = 1; s && i < FIDELITY_COUNT; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

#endif
