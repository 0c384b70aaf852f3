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

/* Reaps the server's children that have exited, except the zygote z (zygote_end reaps it,
 * by pid, for its status). The server's only child is the zygote, but as PID 1 of a
 * container (or as a child subreaper) it is also the parent of every process orphaned in
 * its PID namespace: the workers of a zygote that died (their parent-death signal kills
 * them). Nobody else waits for those: unreaped, each would stay a zombie for the server's
 * life. Never blocks; stops early while z itself waits to be reaped (call again once it
 * is). Returns how many it reaped. */
unsigned zygote_reap_orphans(const struct zygote_process *z);

#endif
