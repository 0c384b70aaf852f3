/* Launching the zygote from the multi-threaded server: posix_spawn of our own binary in
 * zygote mode, nothing else between fork and exec. */
#ifndef PYEXECD_ZYGOTE_SPAWN_H
#define PYEXECD_ZYGOTE_SPAWN_H

#include <sys/types.h>

struct zygote_process {
    pid_t pid;      /* 0 when none */
    int ctl_fd;     /* SOCK_SEQPACKET to the zygote; -1 when none */
    int pidfd;      /* readable when the zygote exits; -1 when none */
};

/* Starts argv[0] with argv (which must ask for zygote mode) and exactly envp as its
 * environment, the control socket on ZYGOTE_CTL_FD, policy_fd (borrowed) on
 * ZYGOTE_POLICY_FD, signals at their defaults. Returns 0 or -1 with a message in err. */
int zygote_spawn(struct zygote_process *z, char *const argv[], char *const envp[],
                 int policy_fd, char *err, size_t errlen);

/* Kills the zygote if it runs, reaps it, closes the descriptors. *status gets the wait
 * status when status is not NULL. Safe on a stopped zygote. */
void zygote_end(struct zygote_process *z, int kill_it, int *status);

/* Stops the zygote the polite way: closing its control socket tells it to end its workers
 * and remove their cgroups; after grace_ms it is killed all the same. Then as
 * zygote_end. */
void zygote_stop(struct zygote_process *z, int grace_ms);

#endif
