/* Confinement of one worker: the layers applied between fork and the first line of user
 * code, in order, seccomp last. */
#ifndef PYEXECD_CONFINE_H
#define PYEXECD_CONFINE_H

#include <stddef.h>
#include <sys/types.h>

#include "seccomp_filter.h"

struct confine_config {
    uid_t uid;                       /* the worker's own unprivileged identity */
    gid_t gid;
    const char *fallback_dir;        /* work dir when no mount namespace; made by the zygote */
    unsigned long long workdir_bytes;
    unsigned workdir_inodes;
    unsigned long long as_headroom;  /* address space on top of what is mapped now */
    unsigned cpu_seconds;
    unsigned long long file_bytes;
    unsigned open_files;
    unsigned threads;
    const struct seccomp_program *seccomp;   /* borrowed */
};

/* Applies every layer the kernel grants, in this order: network, IPC and UTS namespaces;
 * mount namespace with private tmpfs work dir; host name; rlimits; unprivileged uid;
 * no_new_privs; seccomp. A namespace or the uid change refused by the kernel is skipped
 * (and left out of *applied); a failure of a step that must hold (the work dir,
 * rlimits, no_new_privs, seccomp) returns -1 with the reason in err. */
int confine_apply(const struct confine_config *c, unsigned *applied, char *err, size_t errlen);

#endif
