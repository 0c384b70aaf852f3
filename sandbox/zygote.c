#define _GNU_SOURCE
#include "zygote.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/ipc.h"
#include "../common/kill_as.h"
#include "cgroup.h"
#include "minimal_root.h"
#include "prefault.h"
#include "../common/isolation.h"
#include "seccomp_filter.h"
#include "worker.h"
#include "workdir.h"

static const struct zygote_options *opt;
static struct seccomp_program seccomp;
static pid_t *slot_pid;        /* pid of the worker in each slot; 0: free */
static unsigned long long *slot_oom_kills;   /* each slot's OOM-kill count, last seen */
static unsigned layers;        /* what the probe found the kernel grants */
static char work_root[4096];   /* <state_dir>/work, for fallback work dirs */
static int sigfd = -1;         /* SIGCHLD */
static int own_pidns = -1;     /* our PID namespace, to return to after each worker's */
static int own_pidfd = -1;     /* readable once we have exited: a new worker's check */
static int minimal_root;       /* we run in the minimal root: every worker does */

#define LOG(...) fprintf(stderr, "pyexecd-zygote: " __VA_ARGS__)

/* Sends a frame to the server whose payload was built in `payload`. */
static int send_frame(uint32_t type, const struct ipc_buf *payload, const int *fds, int nfds)
{
    if (payload->failed) {
        errno = ENOMEM;
        return -1;
    }
    return ipc_send_frame(opt->ctl_fd, type, payload->data, payload->len, fds, nfds);
}

static void fallback_dir(unsigned slot, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%u", work_root, slot);
}

/* The confinement settings for the worker in `slot`: every layer the probe found. */
static struct confine_config confine_for(unsigned slot, char *dirbuf, size_t dirlen)
{
    struct confine_config c = {
        .uid = (uid_t)(opt->uid_base + slot),
        .gid = (gid_t)(opt->uid_base + slot),
        .slot = slot,
        .want = layers,
        .hide = opt->hide,
        .limits = &opt->policy->limits,
        .exec = (const char (*)[256])opt->policy->exec,
        .nexec = opt->policy->nexec,
        .seccomp = &seccomp,
    };
    if (!(layers & ISO_MOUNT_NS)) {
        fallback_dir(slot, dirbuf, dirlen);
        c.fallback_dir = dirbuf;
    }
    return c;
}

/* fork(), the child becoming pid 1 of a new PID namespace when `new_pid_ns`: unshare
 * makes only our next child start one, and setns puts us back in our own for the next
 * worker, so each worker gets one with a single, ordinary fork. */
static pid_t fork_worker(int new_pid_ns, int *in_new_ns)
{
    *in_new_ns = new_pid_ns && unshare(CLONE_NEWPID) == 0;
    pid_t pid = fork();
    if (pid != 0 && *in_new_ns && setns(own_pidns, CLONE_NEWPID) < 0) {
        LOG("cannot return to my PID namespace: %s\n", strerror(errno));
        _exit(1);   /* every later worker would nest: stop, the server restarts us */
    }
    return pid;
}

static unsigned thread_count(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Forks a child that applies the confinement in `want` (probing: layers the kernel
 * refuses are skipped) and reports what held. Returns the layers, or -1 on failure with
 * *retry_without set when one layer failed half-way and a probe without it may pass. */
static long probe_once(unsigned want, unsigned *retry_without)
{
    char dir[4200];
    int pipefd[2];
    unsigned slot = opt->slots;   /* a slot of its own, past the workers' */
    struct { int ok; unsigned layers; } report = {0, 0};

    *retry_without = 0;
    if (cgroup_prepare(slot) < 0)   /* then the probe finds the cgroup layers missing */
        LOG("cannot make the cgroups of the probe's slot: %s\n", strerror(errno));
    fallback_dir(slot, dir, sizeof(dir));
    if (workdir_create(dir, (uid_t)(opt->uid_base + slot), (gid_t)(opt->uid_base + slot)) < 0) {
        LOG("cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        workdir_remove(dir);
        return -1;
    }
    layers = want;
    int new_ns;
    pid_t pid = fork_worker(want & ISO_PID_NS, &new_ns);
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        workdir_remove(dir);
        return -1;
    }
    if (pid == 0) {
        char err[256];
        struct confine_config c = confine_for(slot, dir, sizeof(dir));
        c.fallback_dir = dir;   /* used only if the mount namespace is refused */
        c.probing = 1;
        c.in_new_pid_ns = new_ns;
        report.ok = confine_apply(&c, &report.layers, err, sizeof(err)) == 0;
        if (!report.ok)
            dprintf(2, "pyexecd-zygote: probe: %s\n", err);
        ssize_t w = write(pipefd[1], &report, sizeof(report));
        _exit(w == sizeof(report) ? 0 : 1);
    }
    close(pipefd[1]);
    ssize_t n = read(pipefd[0], &report, sizeof(report));
    close(pipefd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    workdir_remove(dir);
    if (n != sizeof(report))
        return -1;
    if (!report.ok) {
        *retry_without = report.layers;
        return -1;
    }
    return report.layers;
}

/* Finds the layers this kernel grants: what /healthz reports and what every worker must
 * then apply. */
static int probe_layers(void)
{
    unsigned want = minimal_root ? ISO_ALL : ISO_ALL & ~ISO_MINIMAL_ROOT;
    /* A PID namespace per worker needs to come back to ours after each fork: without the
     * right to (root of a user namespace cannot), do without. */
    if (own_pidns < 0 || setns(own_pidns, CLONE_NEWPID) < 0)
        want &= ~ISO_PID_NS;
    for (int attempt = 0; attempt < 3; attempt++) {
        unsigned retry_without;
        long got = probe_once(want, &retry_without);
        if (got >= 0) {
            layers = (unsigned)got;
            for (unsigned bit = 1; bit & ISO_ALL; bit <<= 1)
                if (!(layers & bit))
                    LOG("warning: isolation layer %s is not available on this kernel\n",
                        isolation_layer_name(bit));
            return 0;
        }
        if (!(retry_without & want))
            break;
        want &= ~retry_without;
    }
    LOG("the confinement probe failed\n");
    return -1;
}

static void spawn_failed(int e)
{
    struct ipc_buf p;
    ipc_buf_init(&p);
    ipc_put_u32(&p, (uint32_t)e);
    send_frame(IPC_Z_SPAWN_FAILED, &p, NULL, 0);
    ipc_buf_release(&p);
}

/* Forks one worker and hands its socket, capture files and pidfd to the server. */
static void spawn_worker(void)
{
    unsigned slot;
    for (slot = 0; slot < opt->slots && slot_pid[slot]; slot++)
        ;
    if (slot == opt->slots) {
        spawn_failed(EAGAIN);
        return;
    }
    if (cgroup_prepare(slot) < 0) {   /* never a worker outside its limits */
        int e = errno;
        LOG("cannot make the cgroups of slot %u: %s\n", slot, strerror(e));
        spawn_failed(e);
        return;
    }
    char dir[4200];
    struct confine_config c = confine_for(slot, dir, sizeof(dir));
    if (c.fallback_dir && workdir_create(c.fallback_dir, c.uid, c.gid) < 0) {
        spawn_failed(errno);
        return;
    }

    int sv[2] = {-1, -1}, out = -1, err = -1, pidfd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
        (out = memfd_create("pyexecd-stdout", MFD_CLOEXEC)) < 0 ||
        (err = memfd_create("pyexecd-stderr", MFD_CLOEXEC)) < 0) {
        spawn_failed(errno);
        goto out;
    }
    /* Appends only: the code cannot seek back over what it printed. */
    fcntl(out, F_SETFL, O_APPEND);
    fcntl(err, F_SETFL, O_APPEND);

    int new_ns;
    pid_t pid = fork_worker(!!(layers & ISO_PID_NS), &new_ns);
    if (pid < 0) {
        spawn_failed(errno);
        goto out;
    }
    if (pid == 0) {
        /* Die with the zygote; if it already died, do not start. (From a new PID
         * namespace our parent is out of sight, so ask its pidfd rather than getppid.) */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        struct pollfd gone = {.fd = own_pidfd, .events = POLLIN};
        if (own_pidfd >= 0 && poll(&gone, 1, 0) != 0)
            _exit(0);
        c.in_new_pid_ns = new_ns;
        struct worker_start ws = {
            .sock = sv[1], .out_fd = out, .err_fd = err, .confine = c,
            .zygote_fds = {opt->ctl_fd, sigfd, sv[0], own_pidns, own_pidfd},
        };
        worker_main(&ws);
    }
    slot_pid[slot] = pid;
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        kill(pid, SIGKILL);
        spawn_failed(errno);
        goto out;
    }
    struct ipc_buf p;
    ipc_buf_init(&p);
    ipc_put_u32(&p, (uint32_t)pid);
    int fds[4] = {sv[0], out, err, pidfd};
    if (send_frame(IPC_Z_WORKER, &p, fds, 4) < 0)
        kill(pid, SIGKILL);
    ipc_buf_release(&p);
out:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (out >= 0)
        close(out);
    if (err >= 0)
        close(err);
    if (pidfd >= 0)
        close(pidfd);
}

/* The CPU-time limit (seconds) an exited, not yet reaped child ran under, as it may have
 * lowered it itself; 0 when unlimited or unknown. */
static unsigned cpu_limit_of(pid_t pid)
{
    char path[64], line[256];
    unsigned long long soft = 0;
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Max cpu time %llu", &soft) == 1)
            break;
    fclose(f);
    return soft > UINT32_MAX ? 0 : (unsigned)soft;
}

/* Reaps every exited child and tells the server how each ended: its wait status, the
 * CPU time it used and whether the OOM killer struck (a SIGKILL alone cannot say which
 * limit it was: pid 1 of a namespace never sees the SIGXCPU that precedes it). */
static void reap(void)
{
    int status;
    pid_t pid;
    struct rusage ru;
    siginfo_t si;
    for (;;) {
        /* Look before reaping: a zombie's limits are still readable. */
        memset(&si, 0, sizeof(si));
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
            break;
        unsigned cpu_limit = cpu_limit_of(si.si_pid);
        pid = wait4(si.si_pid, &status, 0, &ru);
        if (pid <= 0)
            break;
        uint32_t flags = 0;
        for (unsigned s = 0; s < opt->slots; s++) {
            if (slot_pid[s] != pid)
                continue;
            slot_pid[s] = 0;
            unsigned long long kills = cgroup_oom_kills(s);
            if (kills > slot_oom_kills[s])
                flags |= EXIT_OOM_KILLED;
            slot_oom_kills[s] = kills;
            if (!(layers & ISO_MOUNT_NS)) {
                char dir[4200];
                fallback_dir(s, dir, sizeof(dir));
                workdir_remove(dir);
            }
        }
        unsigned long long cpu_ms = (unsigned long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
                                    (unsigned long long)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
        struct ipc_buf p;
        ipc_buf_init(&p);
        ipc_put_u32(&p, (uint32_t)pid);
        ipc_put_u32(&p, (uint32_t)status);
        ipc_put_u32(&p, cpu_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)cpu_ms);
        ipc_put_u32(&p, flags);
        ipc_put_u32(&p, cpu_limit);
        send_frame(IPC_Z_EXITED, &p, NULL, 0);
        ipc_buf_release(&p);
    }
}

/* Ends our workers first, so that their cgroups are empty and can be removed; then
 * removes them. Returns the zygote's exit status. */
static int stop(const struct zygote_options *o)
{
    unsigned refused = 0;
    for (unsigned s = 0; s < o->slots; s++) {
        if (!slot_pid[s] || kill(slot_pid[s], SIGKILL) == 0 || errno == ESRCH)
            continue;
        /* Refused (no CAP_KILL over its uid; nor would its parent-death signal pass when
         * we exit): sent as its own uid instead. Our child, not reaped: no pid reuse. */
        int e = errno;
        if (kill_as_uid(-1, slot_pid[s], (uid_t)(o->uid_base + s)) == 0)
            continue;
        LOG("cannot kill worker %d: %s\n", (int)slot_pid[s], strerror(e));
        refused++;
    }
    /* Waiting for a worker that could not be killed would be for ever. Its groups are
     * then still in use and stay. */
    if (refused)
        return 0;
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    cgroup_cleanup();
    return 0;
}

int zygote_serve(const struct zygote_options *o)
{
    char err[512];
    opt = o;

    /* Stop with the server, in order: SIGTERM when it dies, taken (like SIGCHLD) through
     * the signalfd, so that our workers are ended and their cgroups removed, as when it
     * stops normally. If it died before we got here, stop now. */
    sigset_t watched;
    sigemptyset(&watched);
    sigaddset(&watched, SIGCHLD);
    sigaddset(&watched, SIGTERM);
    sigprocmask(SIG_BLOCK, &watched, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != o->server_pid)
        return 1;
    prctl(PR_SET_NAME, "pyexecd-zygote", 0, 0, 0);

    /* Start from a clean table: stdin from /dev/null, stdout into the log beside stderr,
     * the control socket, nothing else, whatever the server was started with. Workers
     * inherit this table. */
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0 ||
        close_range((unsigned)o->ctl_fd + 1, ~0u, 0) < 0) {
        LOG("cannot set up descriptors: %s\n", strerror(errno));
        return 1;
    }

    sigfd = signalfd(-1, &watched, SFD_CLOEXEC | SFD_NONBLOCK);
    slot_pid = calloc(o->slots + 1, sizeof(pid_t));
    slot_oom_kills = calloc(o->slots + 1, sizeof(*slot_oom_kills));
    snprintf(work_root, sizeof(work_root), "%s/work", o->state_dir);
    if (sigfd < 0 || !slot_pid || !slot_oom_kills) {
        LOG("start-up failed: %s\n", strerror(errno));
        return 1;
    }

    /* The workers' root, built once here (minimal_root.h); without a mount namespace the
     * workers see the host's, read-only, and /healthz says so. */
    char root_dir[4200];
    snprintf(root_dir, sizeof(root_dir), "%s/root", o->state_dir);
    struct minimal_root_config rc = {.venv = o->venv, .state_dir = o->state_dir,
                                     .build_dir = root_dir};
    int entered = o->venv ? minimal_root_enter(&rc, err, sizeof(err)) : -1;
    if (entered == -2) {
        LOG("%s\n", err);
        return 1;   /* half in a half-made root: do not serve from it */
    }
    minimal_root = entered == 0;
    if (!minimal_root)
        LOG("warning: workers see the host's file system (read-only): %s\n",
            o->venv ? err : "no venv");

    own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    own_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    const struct policy_limits *l = &o->policy->limits;
    cgroup_setup(o->uid_base, o->slots, l->memory_mib << 20, (unsigned)l->threads,
                 o->server_pid);
    for (unsigned s = 0; s <= o->slots; s++)
        slot_oom_kills[s] = cgroup_oom_kills(s);   /* groups reused from an earlier zygote */
    if (seccomp_program_build(o->policy, &seccomp, err, sizeof(err)) < 0) {
        LOG("%s\n", err);
        return 1;
    }
    if (pyembed_init(&o->py, err, sizeof(err)) < 0) {
        LOG("%s\n", err);
        return 1;
    }
    /* fork() copies only the calling thread: a zygote with threads would hand its
     * workers locks held by threads that do not exist there. */
    unsigned threads = thread_count();
    if (threads != 1) {
        LOG("the interpreter started %u threads; a zygote must have one\n", threads);
        return 1;
    }
    /* After the thread check: the scouts are forks too. Before the probe, whose worker
     * set-up they need not wait for. */
    size_t prefault = (size_t)(l->memory_mib << 20) / LIMIT_PREFAULT_MEMORY_SHARE;
    prefault_learn(o->prefault_bytes < prefault ? o->prefault_bytes : prefault);
    if (probe_layers() < 0)
        return 1;

    struct ipc_buf p;
    ipc_buf_init(&p);
    ipc_put_u32(&p, layers);
    interpreter_info_put(&p, pyembed_info());
    const char *cg_memory = cgroup_base(ISO_CGROUP_MEMORY);
    const char *cg_pids = cgroup_base(ISO_CGROUP_PIDS);
    ipc_put_bytes(&p, cg_memory, strlen(cg_memory));
    ipc_put_bytes(&p, cg_pids, strlen(cg_pids));
    if (send_frame(IPC_Z_HELLO, &p, NULL, 0) < 0)
        return 1;
    ipc_buf_release(&p);

    for (;;) {
        struct pollfd pf[2] = {{.fd = o->ctl_fd, .events = POLLIN}, {.fd = sigfd, .events = POLLIN}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            LOG("poll: %s\n", strerror(errno));
            return 1;
        }
        if (pf[1].revents) {
            struct signalfd_siginfo si;
            int server_gone = 0;
            while (read(sigfd, &si, sizeof(si)) == sizeof(si))
                server_gone |= si.ssi_signo == SIGTERM;
            reap();
            if (server_gone)
                return stop(o);
        }
        if (pf[0].revents) {
            unsigned char msg[64];
            int fds[IPC_MAX_FDS], nfds;
            ssize_t n = ipc_recv_msg(o->ctl_fd, msg, sizeof(msg), fds, &nfds);
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            if (n <= 0)
                return stop(o);   /* the server is stopping (or gone) */
            uint32_t type;
            memcpy(&type, msg, sizeof(type));
            if (n >= (ssize_t)IPC_HEADER_BYTES && type == IPC_Z_SPAWN)
                spawn_worker();
        }
    }
}
