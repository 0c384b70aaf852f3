#define _GNU_SOURCE
#include "zygote_spawn.h"

#include "../common/fds.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int zygote_spawn(struct zygote_process *z, char *const argv[], char *const envp[],
                 int policy_fd, char *err, size_t errlen)
{
    int sv[2] = {-1, -1};
    int child_end = -1;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    int rc = -1;

    z->pid = 0;
    z->ctl_fd = z->pidfd = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return -1;
    }
    /* dup2 onto a fixed number clears close-on-exec, unless the descriptor already has
     * that number: keep both above the fixed ones first. */
    child_end = fcntl(sv[1], F_DUPFD_CLOEXEC, ZYGOTE_POLICY_FD + 1);
    int policy_copy = fcntl(policy_fd, F_DUPFD_CLOEXEC, ZYGOTE_POLICY_FD + 1);
    close(sv[1]);
    if (child_end < 0 || policy_copy < 0) {
        snprintf(err, errlen, "fcntl: %s", strerror(errno));
        close(sv[0]);
        if (child_end >= 0)
            close(child_end);
        if (policy_copy >= 0)
            close(policy_copy);
        return -1;
    }

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, child_end, ZYGOTE_CTL_FD);
    posix_spawn_file_actions_adddup2(&fa, policy_copy, ZYGOTE_POLICY_FD);
    /* Whatever the server inherited without close-on-exec stays with the server. */
    posix_spawn_file_actions_addclosefrom_np(&fa, ZYGOTE_POLICY_FD + 1);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    pid_t pid;
    int e = posix_spawn(&pid, argv[0], &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(child_end);
    close(policy_copy);
    if (e != 0) {
        snprintf(err, errlen, "starting the zygote (%s): %s", argv[0], strerror(e));
        close(sv[0]);
        return -1;
    }
    z->pid = pid;
    z->ctl_fd = sv[0];
    /* We are its parent and have not reaped it: the pid cannot have been reused. */
    z->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (z->pidfd < 0) {
        snprintf(err, errlen, "pidfd_open: %s", strerror(errno));
        zygote_end(z, 1, NULL);
        return -1;
    }
    rc = 0;
    return rc;
}

void zygote_end(struct zygote_process *z, int kill_it, int *status)
{
    int st = 0;
    if (z->pid > 0) {
        if (kill_it)
            kill(z->pid, SIGKILL);
        while (waitpid(z->pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
    if (status)
        *status = st;
    if (z->ctl_fd >= 0)
        close(z->ctl_fd);
    if (z->pidfd >= 0)
        close(z->pidfd);
    z->pid = 0;
    z->ctl_fd = z->pidfd = -1;
}

unsigned zygote_reap_orphans(const struct zygote_process *z)
{
    unsigned n = 0;
    for (;;) {
        siginfo_t si;
        si.si_pid = 0;
        /* Look first (WNOWAIT): the zygote's status is zygote_end's to take. */
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0 ||
            si.si_pid == z->pid)
            return n;
        if (waitpid(si.si_pid, NULL, WNOHANG) == si.si_pid)
            n++;
    }
}

void zygote_stop(struct zygote_process *z, int grace_ms)
{
    if (z->ctl_fd >= 0) {
        close(z->ctl_fd);
        z->ctl_fd = -1;
    }
    if (z->pidfd >= 0) {
        struct pollfd pf = {.fd = z->pidfd, .events = POLLIN};
        while (poll(&pf, 1, grace_ms) < 0 && errno == EINTR)
            ;
    }
    zygote_end(z, 1, NULL);
}
