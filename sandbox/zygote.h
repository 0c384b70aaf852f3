/* The zygote: a single-threaded process holding an initialised CPython with every
 * library imported and warmed, that forks sandboxed workers on the server's request. */
#ifndef PYEXECD_ZYGOTE_H
#define PYEXECD_ZYGOTE_H

#include <sys/types.h>

#include "../common/limits.h"
#include "confine.h"
#include "policy.h"
#include "pyembed.h"

struct zygote_options {
    int ctl_fd;                   /* SOCK_SEQPACKET to the server */
    pid_t server_pid;             /* our parent; we exit when it is gone */
    const char *state_dir;        /* fallback work dirs live in <state_dir>/work */
    const char *venv;             /* the sandbox's venv: bound into the minimal root */
    unsigned uid_base;            /* worker in slot s runs as uid_base + s */
    unsigned slots;               /* workers alive at once, at most */
    size_t prefault_bytes;        /* what a pooled worker copies while idle (prefault.h) */
    const struct policy *policy;  /* seccomp rules and limits (borrowed) */
    const char *const *hide;      /* the server's files workers must not see (borrowed) */
    struct pyembed_options py;
};

/* Worker slots (each a uid and a cgroup) a zygote needs: the pool, the running and the
 * session workers, as many again for workers killed but not yet reaped (their slot stays
 * taken until then), and LIMIT_ZYGOTE_SPARE_SLOTS. */
static inline unsigned zygote_slots(unsigned pool, unsigned workers, unsigned sessions)
{
    return 2 * (pool + workers + sessions) + LIMIT_ZYGOTE_SPARE_SLOTS;
}

/* Runs the zygote until the server goes away. Returns the process exit status. */
int zygote_serve(const struct zygote_options *opt);

#endif
