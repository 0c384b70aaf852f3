/* The zygote: a single-threaded process holding an initialised CPython with every
 * library imported and warmed, that forks sandboxed workers on the server's request. */
#ifndef PYEXECD_ZYGOTE_H
#define PYEXECD_ZYGOTE_H

#include <sys/types.h>

#include "confine.h"
#include "policy.h"
#include "pyembed.h"

struct zygote_options {
    int ctl_fd;                   /* SOCK_SEQPACKET to the server */
    pid_t server_pid;             /* our parent; we exit when it is gone */
    const char *state_dir;        /* fallback work dirs live in <state_dir>/work */
    unsigned uid_base;            /* worker in slot s runs as uid_base + s */
    unsigned slots;               /* workers alive at once, at most */
    const struct policy *policy;  /* seccomp rules and limits (borrowed) */
    const char *const *hide;      /* the server's files workers must not see (borrowed) */
    struct pyembed_options py;
};

/* Runs the zygote until the server goes away. Returns the process exit status. */
int zygote_main(const struct zygote_options *opt);

#endif
