#define _GNU_SOURCE
#include "seccomp_filter.h"

#include <errno.h>
#include <linux/filter.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* What happens to a call. Everything not listed fails with EPERM, so the code gets a
 * readable PermissionError instead of dying with its output lost. */
enum rule_action {
    ALLOW,
    ENOSYS_,     /* clone3: glibc then falls back to clone, which we can inspect */
    KILL,        /* only useful to an exploit: end the worker at once */
};

enum rule_arg {
    ANY_ARGS,
    UNIX_DOMAIN_ONLY,   /* socket/socketpair: AF_UNIX only (asyncio, multiprocessing) */
    THREADS_ONLY,       /* clone: new threads, never processes or namespaces */
};

struct rule {
    const char *name;
    enum rule_action action;
    enum rule_arg arg;
};

static const struct rule rules[] = {
    /* files and descriptors */
    {"read", ALLOW, ANY_ARGS}, {"write", ALLOW, ANY_ARGS}, {"readv", ALLOW, ANY_ARGS},
    {"writev", ALLOW, ANY_ARGS}, {"pread64", ALLOW, ANY_ARGS}, {"pwrite64", ALLOW, ANY_ARGS},
    {"preadv", ALLOW, ANY_ARGS}, {"pwritev", ALLOW, ANY_ARGS}, {"preadv2", ALLOW, ANY_ARGS},
    {"pwritev2", ALLOW, ANY_ARGS}, {"open", ALLOW, ANY_ARGS}, {"openat", ALLOW, ANY_ARGS},
    {"creat", ALLOW, ANY_ARGS}, {"close", ALLOW, ANY_ARGS}, {"close_range", ALLOW, ANY_ARGS},
    {"stat", ALLOW, ANY_ARGS}, {"fstat", ALLOW, ANY_ARGS}, {"lstat", ALLOW, ANY_ARGS},
    {"newfstatat", ALLOW, ANY_ARGS}, {"statx", ALLOW, ANY_ARGS}, {"statfs", ALLOW, ANY_ARGS},
    {"fstatfs", ALLOW, ANY_ARGS}, {"lseek", ALLOW, ANY_ARGS}, {"access", ALLOW, ANY_ARGS},
    {"faccessat", ALLOW, ANY_ARGS}, {"faccessat2", ALLOW, ANY_ARGS}, {"dup", ALLOW, ANY_ARGS},
    {"dup2", ALLOW, ANY_ARGS}, {"dup3", ALLOW, ANY_ARGS}, {"fcntl", ALLOW, ANY_ARGS},
    {"flock", ALLOW, ANY_ARGS}, {"fsync", ALLOW, ANY_ARGS}, {"fdatasync", ALLOW, ANY_ARGS},
    {"truncate", ALLOW, ANY_ARGS}, {"ftruncate", ALLOW, ANY_ARGS},
    {"fallocate", ALLOW, ANY_ARGS}, {"fadvise64", ALLOW, ANY_ARGS},
    {"readahead", ALLOW, ANY_ARGS}, {"getdents", ALLOW, ANY_ARGS},
    {"getdents64", ALLOW, ANY_ARGS}, {"getcwd", ALLOW, ANY_ARGS}, {"chdir", ALLOW, ANY_ARGS},
    {"fchdir", ALLOW, ANY_ARGS}, {"rename", ALLOW, ANY_ARGS}, {"renameat", ALLOW, ANY_ARGS},
    {"renameat2", ALLOW, ANY_ARGS}, {"mkdir", ALLOW, ANY_ARGS}, {"mkdirat", ALLOW, ANY_ARGS},
    {"rmdir", ALLOW, ANY_ARGS}, {"link", ALLOW, ANY_ARGS}, {"linkat", ALLOW, ANY_ARGS},
    {"unlink", ALLOW, ANY_ARGS}, {"unlinkat", ALLOW, ANY_ARGS}, {"symlink", ALLOW, ANY_ARGS},
    {"symlinkat", ALLOW, ANY_ARGS}, {"readlink", ALLOW, ANY_ARGS},
    {"readlinkat", ALLOW, ANY_ARGS}, {"chmod", ALLOW, ANY_ARGS}, {"fchmod", ALLOW, ANY_ARGS},
    {"fchmodat", ALLOW, ANY_ARGS}, {"chown", ALLOW, ANY_ARGS}, {"fchown", ALLOW, ANY_ARGS},
    {"lchown", ALLOW, ANY_ARGS}, {"fchownat", ALLOW, ANY_ARGS}, {"umask", ALLOW, ANY_ARGS},
    {"utime", ALLOW, ANY_ARGS}, {"utimes", ALLOW, ANY_ARGS}, {"utimensat", ALLOW, ANY_ARGS},
    {"futimesat", ALLOW, ANY_ARGS}, {"sendfile", ALLOW, ANY_ARGS},
    {"copy_file_range", ALLOW, ANY_ARGS}, {"splice", ALLOW, ANY_ARGS},
    {"tee", ALLOW, ANY_ARGS}, {"sync_file_range", ALLOW, ANY_ARGS},
    {"ioctl", ALLOW, ANY_ARGS}, {"pipe", ALLOW, ANY_ARGS}, {"pipe2", ALLOW, ANY_ARGS},
    {"memfd_create", ALLOW, ANY_ARGS},
    /* waiting and events */
    {"poll", ALLOW, ANY_ARGS}, {"ppoll", ALLOW, ANY_ARGS}, {"select", ALLOW, ANY_ARGS},
    {"pselect6", ALLOW, ANY_ARGS}, {"epoll_create", ALLOW, ANY_ARGS},
    {"epoll_create1", ALLOW, ANY_ARGS}, {"epoll_ctl", ALLOW, ANY_ARGS},
    {"epoll_wait", ALLOW, ANY_ARGS}, {"epoll_pwait", ALLOW, ANY_ARGS},
    {"epoll_pwait2", ALLOW, ANY_ARGS}, {"eventfd", ALLOW, ANY_ARGS},
    {"eventfd2", ALLOW, ANY_ARGS}, {"timerfd_create", ALLOW, ANY_ARGS},
    {"timerfd_settime", ALLOW, ANY_ARGS}, {"timerfd_gettime", ALLOW, ANY_ARGS},
    {"signalfd", ALLOW, ANY_ARGS}, {"signalfd4", ALLOW, ANY_ARGS},
    {"futex", ALLOW, ANY_ARGS}, {"futex_waitv", ALLOW, ANY_ARGS},
    {"nanosleep", ALLOW, ANY_ARGS}, {"clock_nanosleep", ALLOW, ANY_ARGS},
    {"pause", ALLOW, ANY_ARGS}, {"restart_syscall", ALLOW, ANY_ARGS},
    /* memory: OpenBLAS calls mbind and the NUMA policy calls in every worker */
    {"mmap", ALLOW, ANY_ARGS}, {"mprotect", ALLOW, ANY_ARGS}, {"munmap", ALLOW, ANY_ARGS},
    {"mremap", ALLOW, ANY_ARGS}, {"msync", ALLOW, ANY_ARGS}, {"mincore", ALLOW, ANY_ARGS},
    {"madvise", ALLOW, ANY_ARGS}, {"brk", ALLOW, ANY_ARGS}, {"mbind", ALLOW, ANY_ARGS},
    {"get_mempolicy", ALLOW, ANY_ARGS}, {"set_mempolicy", ALLOW, ANY_ARGS},
    {"membarrier", ALLOW, ANY_ARGS},
    /* signals: delivery across uids is refused by the kernel (each worker has its own) */
    {"rt_sigaction", ALLOW, ANY_ARGS}, {"rt_sigprocmask", ALLOW, ANY_ARGS},
    {"rt_sigreturn", ALLOW, ANY_ARGS}, {"rt_sigpending", ALLOW, ANY_ARGS},
    {"rt_sigtimedwait", ALLOW, ANY_ARGS}, {"rt_sigsuspend", ALLOW, ANY_ARGS},
    {"sigaltstack", ALLOW, ANY_ARGS}, {"kill", ALLOW, ANY_ARGS}, {"tgkill", ALLOW, ANY_ARGS},
    {"tkill", ALLOW, ANY_ARGS}, {"alarm", ALLOW, ANY_ARGS}, {"getitimer", ALLOW, ANY_ARGS},
    {"setitimer", ALLOW, ANY_ARGS},
    /* time and identity */
    {"clock_gettime", ALLOW, ANY_ARGS}, {"clock_getres", ALLOW, ANY_ARGS},
    {"gettimeofday", ALLOW, ANY_ARGS}, {"time", ALLOW, ANY_ARGS}, {"times", ALLOW, ANY_ARGS},
    {"getpid", ALLOW, ANY_ARGS}, {"getppid", ALLOW, ANY_ARGS}, {"gettid", ALLOW, ANY_ARGS},
    {"getuid", ALLOW, ANY_ARGS}, {"geteuid", ALLOW, ANY_ARGS}, {"getgid", ALLOW, ANY_ARGS},
    {"getegid", ALLOW, ANY_ARGS}, {"getresuid", ALLOW, ANY_ARGS},
    {"getresgid", ALLOW, ANY_ARGS}, {"getgroups", ALLOW, ANY_ARGS},
    {"getpgrp", ALLOW, ANY_ARGS}, {"getpgid", ALLOW, ANY_ARGS}, {"getsid", ALLOW, ANY_ARGS},
    {"setsid", ALLOW, ANY_ARGS}, {"setpgid", ALLOW, ANY_ARGS}, {"uname", ALLOW, ANY_ARGS},
    {"sysinfo", ALLOW, ANY_ARGS}, {"getrusage", ALLOW, ANY_ARGS},
    {"getrlimit", ALLOW, ANY_ARGS}, {"setrlimit", ALLOW, ANY_ARGS},
    {"prlimit64", ALLOW, ANY_ARGS}, {"getcpu", ALLOW, ANY_ARGS}, {"capget", ALLOW, ANY_ARGS},
    {"getrandom", ALLOW, ANY_ARGS}, {"getpriority", ALLOW, ANY_ARGS},
    /* threads and scheduling */
    {"clone", ALLOW, THREADS_ONLY}, {"clone3", ENOSYS_, ANY_ARGS},
    {"set_robust_list", ALLOW, ANY_ARGS}, {"get_robust_list", ALLOW, ANY_ARGS},
    {"set_tid_address", ALLOW, ANY_ARGS}, {"rseq", ALLOW, ANY_ARGS},
    {"arch_prctl", ALLOW, ANY_ARGS}, {"prctl", ALLOW, ANY_ARGS},
    {"sched_yield", ALLOW, ANY_ARGS}, {"sched_getaffinity", ALLOW, ANY_ARGS},
    {"sched_setaffinity", ALLOW, ANY_ARGS}, {"sched_getparam", ALLOW, ANY_ARGS},
    {"sched_getscheduler", ALLOW, ANY_ARGS}, {"sched_getattr", ALLOW, ANY_ARGS},
    {"sched_get_priority_max", ALLOW, ANY_ARGS},
    {"sched_get_priority_min", ALLOW, ANY_ARGS}, {"exit", ALLOW, ANY_ARGS},
    {"exit_group", ALLOW, ANY_ARGS}, {"wait4", ALLOW, ANY_ARGS}, {"waitid", ALLOW, ANY_ARGS},
    /* local sockets only; the network namespace is empty besides */
    {"socket", ALLOW, UNIX_DOMAIN_ONLY}, {"socketpair", ALLOW, UNIX_DOMAIN_ONLY},
    {"connect", ALLOW, ANY_ARGS}, {"bind", ALLOW, ANY_ARGS}, {"listen", ALLOW, ANY_ARGS},
    {"accept", ALLOW, ANY_ARGS}, {"accept4", ALLOW, ANY_ARGS}, {"sendto", ALLOW, ANY_ARGS},
    {"recvfrom", ALLOW, ANY_ARGS}, {"sendmsg", ALLOW, ANY_ARGS},
    {"recvmsg", ALLOW, ANY_ARGS}, {"sendmmsg", ALLOW, ANY_ARGS},
    {"recvmmsg", ALLOW, ANY_ARGS}, {"shutdown", ALLOW, ANY_ARGS},
    {"getsockname", ALLOW, ANY_ARGS}, {"getpeername", ALLOW, ANY_ARGS},
    {"setsockopt", ALLOW, ANY_ARGS}, {"getsockopt", ALLOW, ANY_ARGS},
    /* System V IPC and POSIX queues: private to the worker's IPC namespace */
    {"shmget", ALLOW, ANY_ARGS}, {"shmat", ALLOW, ANY_ARGS}, {"shmdt", ALLOW, ANY_ARGS},
    {"shmctl", ALLOW, ANY_ARGS}, {"semget", ALLOW, ANY_ARGS}, {"semop", ALLOW, ANY_ARGS},
    {"semtimedop", ALLOW, ANY_ARGS}, {"semctl", ALLOW, ANY_ARGS},
    /* Only an exploit wants these: kill the worker. */
    {"ptrace", KILL, ANY_ARGS}, {"bpf", KILL, ANY_ARGS}, {"perf_event_open", KILL, ANY_ARGS},
    {"userfaultfd", KILL, ANY_ARGS}, {"io_uring_setup", KILL, ANY_ARGS},
    {"io_uring_enter", KILL, ANY_ARGS}, {"io_uring_register", KILL, ANY_ARGS},
    {"keyctl", KILL, ANY_ARGS}, {"add_key", KILL, ANY_ARGS}, {"request_key", KILL, ANY_ARGS},
    {"mount", KILL, ANY_ARGS}, {"umount2", KILL, ANY_ARGS}, {"pivot_root", KILL, ANY_ARGS},
    {"move_mount", KILL, ANY_ARGS}, {"open_tree", KILL, ANY_ARGS},
    {"fsopen", KILL, ANY_ARGS}, {"fsconfig", KILL, ANY_ARGS}, {"fsmount", KILL, ANY_ARGS},
    {"fspick", KILL, ANY_ARGS}, {"mount_setattr", KILL, ANY_ARGS},
    {"unshare", KILL, ANY_ARGS}, {"setns", KILL, ANY_ARGS}, {"kexec_load", KILL, ANY_ARGS},
    {"kexec_file_load", KILL, ANY_ARGS}, {"init_module", KILL, ANY_ARGS},
    {"finit_module", KILL, ANY_ARGS}, {"delete_module", KILL, ANY_ARGS},
    /* execve, execveat, fork and vfork are not listed: EPERM, so subprocess and os.fork
     * raise PermissionError. */
};

/* clone flags a thread has, and the ones it must not: fork-like and namespace flags. */
#define CLONE_THREAD_FLAGS (CLONE_VM | CLONE_SIGHAND | CLONE_THREAD)
#define CLONE_FORBIDDEN (CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | \
                         CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP)

static int add_rule(scmp_filter_ctx ctx, const struct rule *r, char *err, size_t errlen)
{
    int nr = seccomp_syscall_resolve_name(r->name);
    if (nr == __NR_SCMP_ERROR) {
        snprintf(err, errlen, "seccomp: unknown system call %s", r->name);
        return -1;
    }
    uint32_t action = r->action == ALLOW ? SCMP_ACT_ALLOW
                    : r->action == ENOSYS_ ? SCMP_ACT_ERRNO(ENOSYS)
                    : SCMP_ACT_KILL_PROCESS;
    int rc;
    switch (r->arg) {
    case UNIX_DOMAIN_ONLY:
        rc = seccomp_rule_add(ctx, action, nr, 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
        break;
    case THREADS_ONLY:
        rc = seccomp_rule_add(ctx, action, nr, 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD_FLAGS | CLONE_FORBIDDEN,
                                      CLONE_THREAD_FLAGS));
        break;
    default:
        rc = seccomp_rule_add(ctx, action, nr, 0);
    }
    if (rc < 0) {
        snprintf(err, errlen, "seccomp: rule for %s: %s", r->name, strerror(-rc));
        return -1;
    }
    return 0;
}

/* Returns a new filter context holding the allow-list, or NULL with err set. */
static scmp_filter_ctx build_ctx(char *err, size_t errlen)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx) {
        snprintf(err, errlen, "seccomp_init failed");
        return NULL;
    }
    /* Only the native x86-64 table: i386 (int 0x80) and x32 calls meet the bad-arch
     * action, which kills. We set no_new_privs ourselves, before loading. */
    if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0 ||
        seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0) {
        snprintf(err, errlen, "seccomp: cannot set filter attributes");
        seccomp_release(ctx);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (add_rule(ctx, &rules[i], err, errlen) < 0) {
            seccomp_release(ctx);
            return NULL;
        }
    }
    return ctx;
}

int seccomp_program_build(struct seccomp_program *prog, char *err, size_t errlen)
{
    memset(prog, 0, sizeof(*prog));
    scmp_filter_ctx ctx = build_ctx(err, errlen);
    if (!ctx)
        return -1;

    /* libseccomp 2.5 exports BPF only to a file descriptor: go through a memfd. */
    int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
    int rc = -1;
    if (fd < 0 || seccomp_export_bpf(ctx, fd) < 0) {
        snprintf(err, errlen, "seccomp: cannot export the filter");
        goto out;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
        size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        snprintf(err, errlen, "seccomp: compiled filter has a bad size (%lld)", (long long)size);
        goto out;
    }
    prog->filter = malloc((size_t)size);
    if (!prog->filter || pread(fd, prog->filter, (size_t)size, 0) != size) {
        snprintf(err, errlen, "seccomp: cannot read the compiled filter");
        free(prog->filter);
        prog->filter = NULL;
        goto out;
    }
    prog->len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    seccomp_release(ctx);
    return rc;
}

int seccomp_program_load(const struct seccomp_program *prog)
{
    struct sock_fprog fprog = { .len = prog->len, .filter = prog->filter };
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0);
}

void seccomp_program_release(struct seccomp_program *prog)
{
    free(prog->filter);
    memset(prog, 0, sizeof(*prog));
}

int seccomp_program_print(int fd)
{
    char err[256];
    scmp_filter_ctx ctx = build_ctx(err, sizeof(err));
    if (!ctx) {
        dprintf(fd, "%s\n", err);
        return -1;
    }
    int rc = seccomp_export_pfc(ctx, fd) < 0 ? -1 : 0;
    seccomp_release(ctx);
    return rc;
}
