/* Confinement of one worker: the layers applied between fork and the first line of user
 * code, in order, seccomp last. */
#ifndef PYEXECD_CONFINE_H
#define PYEXECD_CONFINE_H

#include <stddef.h>
#include <sys/types.h>

#include "policy.h"
#include "seccomp_filter.h"

struct confine_config {
    uid_t uid;                       /* the worker's own unprivileged identity outside */
    gid_t gid;
    unsigned slot;                   /* its cgroup slot */
    unsigned want;                   /* layers to apply (enum isolation_layer bits) */
    int probing;                     /* 1: skip what fails and report; 0: all of `want` or fail */
    int in_new_pid_ns;               /* the zygote forked us as pid 1 of a new PID namespace */
    const char *fallback_dir;        /* work dir when there is no mount namespace */
    const char *const *hide;         /* the server's files and dirs to cover; NULL-terminated */
    const struct policy_limits *limits;       /* borrowed */
    const char (*exec)[256];         /* the programs the code may run (borrowed) */
    size_t nexec;
    const struct seccomp_program *seccomp;    /* borrowed */
};

/* Applies the layers in `want`, in this order: network, IPC and UTS namespaces; cgroups;
 * mount namespace (read-only system, minimal /dev, private tmpfs /root /tmp /var/tmp
 * /dev/shm, own /proc, the server's files covered); host name; rlimits; own uid; user
 * namespace mapping root inside to that uid, with no capabilities; no_new_privs;
 * Landlock; seccomp. When probing, a layer the kernel refuses is skipped; otherwise every
 * wanted layer must hold or this fails. Returns 0 with the layers applied in *applied, or
 * -1 with the reason in err (the worker must not run code then); when probing, *applied
 * is then the layer that failed half-way (the mount namespace), to probe again without. */
int confine_apply(const struct confine_config *c, unsigned *applied, char *err, size_t errlen);

#endif
