/* Killing a process of another uid without CAP_KILL: the kernel lets a process signal
 * the processes of its own uid, so a short-lived child takes the target's uid (which
 * needs CAP_SETUID, which the server and the zygote keep for making workers) and sends
 * SIGKILL from there. For when the plain kill was refused (EPERM: a container that
 * dropped CAP_KILL). The child makes raw system calls only, so it is safe to fork from a
 * threaded process. */
#ifndef PYEXECD_KILL_AS_H
#define PYEXECD_KILL_AS_H

#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* SIGKILL to the process behind pidfd (when >= 0: no pid-reuse race) or pid, sent as
 * uid. Returns 0 when it was sent, -1 when it could not be (errno: the fork's, or EPERM
 * when the child could not take the uid or was refused all the same). */
static inline int kill_as_uid(int pidfd, pid_t pid, uid_t uid)
{
    pid_t child = fork();
    if (child < 0)
        return -1;
    if (child == 0) {
        /* Nothing of the parent's but the pidfd while it has the target's uid. */
        if (pidfd > 3)
            syscall(SYS_close_range, 3u, (unsigned)pidfd - 1, 0u);
        syscall(SYS_close_range, (unsigned)(pidfd >= 3 ? pidfd + 1 : 3), ~0u, 0u);
        if (syscall(SYS_setresuid, uid, uid, uid) != 0)
            _exit(2);
        long r = pidfd >= 0 ? syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0)
                            : syscall(SYS_kill, pid, SIGKILL);
        _exit(r == 0 || errno == ESRCH ? 0 : 1);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    errno = EPERM;
    return -1;
}

#endif
