#define _GNU_SOURCE
#include "zygote_link.h"
#include "../common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/interpreter_info.h"
#include "../common/ipc.h"
#include "../common/isolation.h"
#include "../common/limits.h"
#include "clock.h"
#include "worker_link.h"
#include "zygote_spawn.h"

static struct zygote_link_config cfg;
static struct zygote_process z = {.pid = 0, .ctl_fd = -1, .pidfd = -1};
static enum zygote_state state = ZYGOTE_STARTING;
static int64_t started_at, ready_at, restart_at, retry_at;
/* 0 until a zygote dies: the first death after a stable run restarts at once (the new
 * zygote's imports already take seconds), later ones back off. */
static int64_t backoff_ms;
static unsigned restarts, start_failures, outstanding;
static unsigned layers;
static int layers_known;
static struct interpreter_info info;
static char cgroup_memory[256], cgroup_pids[256];
static volatile int fatal;
static struct event_tag ctl_tag = {EVENT_ZYGOTE_CTL, NULL};
static struct event_tag exit_tag = {EVENT_ZYGOTE_EXIT, NULL};

void zygote_link_init(const struct zygote_link_config *c)
{
    cfg = *c;
}

/* Stops the server: it cannot run safely. */
static void stop_server(void)
{
    fatal = 1;
    kill(getpid(), SIGTERM);
}

void zygote_link_reap_orphans(void)
{
    static int inherits = -1;   /* whether orphans can be ours at all */
    if (inherits < 0) {
        int subreaper = 0;
        inherits = getpid() == 1 ||
                   (prctl(PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0) == 0 && subreaper);
    }
    if (!inherits)
        return;
    unsigned n = zygote_reap_orphans(&z);
    if (n)
        fprintf(stderr, "pyexecd: reaped %u orphaned processes\n", n);
}

void zygote_link_start(void)
{
    char err[256];
    started_at = monotonic_ms();
    if (zygote_spawn(&z, cfg.argv, cfg.env, cfg.policy_fd, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        state = ZYGOTE_DOWN;
        restart_at = monotonic_ms() + (backoff_ms > LIMIT_ZYGOTE_BACKOFF_FIRST_MS
                                        ? backoff_ms : LIMIT_ZYGOTE_BACKOFF_FIRST_MS);
        return;
    }
    fcntl(z.ctl_fd, F_SETFL, O_NONBLOCK);
    event_watch(cfg.epfd, z.ctl_fd, EPOLLIN, &ctl_tag, EPOLL_CTL_ADD);
    event_watch(cfg.epfd, z.pidfd, EPOLLIN, &exit_tag, EPOLL_CTL_ADD);
    state = ZYGOTE_STARTING;
}

/* The zygote is gone: reaps it, discards every worker (their requests get 503, their
 * sessions end), schedules a restart with back-off. */
static void zygote_died(const char *why)
{
    int status = 0;
    int64_t now = monotonic_ms();
    zygote_end(&z, 1, &status);
    if (WIFSIGNALED(status))
        log_msg(LOG_WARN, "zygote ended (%s): signal %d", why, WTERMSIG(status));
    else
        log_msg(LOG_WARN, "zygote ended (%s): status %d", why, WEXITSTATUS(status));

    /* The state first: answering the workers' requests below publishes /healthz, which
     * must not show the dead zygote's pid gone while it still reads ready. */
    enum zygote_state was = state;
    if (was == ZYGOTE_READY && now - ready_at >= LIMIT_ZYGOTE_STABLE_MS)
        backoff_ms = 0;
    state = ZYGOTE_DOWN;
    restart_at = now + backoff_ms;
    backoff_ms = !backoff_ms ? LIMIT_ZYGOTE_BACKOFF_FIRST_MS
               : backoff_ms * 2 > LIMIT_ZYGOTE_BACKOFF_MAX_MS ? LIMIT_ZYGOTE_BACKOFF_MAX_MS
                                                             : backoff_ms * 2;
    restarts++;
    outstanding = 0;

    /* Its workers die with it (parent-death signal). */
    workers_discard_all(PX_UNAVAILABLE,
                        "The execution environment restarted while this request ran; retry it.",
                        "the execution environment restarted (its zygote process ended)");
    /* A zygote that keeps dying before it is ready cannot say which layers it has: with
     * --require-isolation that is reason enough to stop rather than retry for ever. */
    if (was == ZYGOTE_STARTING && ++start_failures >= LIMIT_ZYGOTE_START_ATTEMPTS &&
        cfg.required_layers) {
        log_msg(LOG_ERROR, "the zygote failed to start %u times and "
                "--require-isolation is set", start_failures);
        stop_server();
    }
}

static void on_hello(struct ipc_cursor *c)
{
    uint32_t granted = ipc_get_u32(c);
    struct interpreter_info said;
    if (c->failed || interpreter_info_get(c, &said) < 0)
        return;
    size_t ml, pl;
    const unsigned char *m = ipc_get_bytes(c, &ml);
    const unsigned char *p = ipc_get_bytes(c, &pl);
    if (c->failed)
        return;
    snprintf(cgroup_memory, sizeof(cgroup_memory), "%.*s", (int)ml, (const char *)m);
    snprintf(cgroup_pids, sizeof(cgroup_pids), "%.*s", (int)pl, (const char *)p);
    info = said;
    layers = granted;
    layers_known = 1;
    state = ZYGOTE_READY;
    ready_at = monotonic_ms();
    start_failures = 0;
    unsigned missing = (cfg.required_layers | cfg.policy_layers) & ~granted;
    if (missing) {
        for (unsigned bit = 1; bit & ISO_ALL; bit <<= 1)
            if (missing & bit)
                log_msg(LOG_ERROR, "isolation layer %s is not available and %s",
                        isolation_layer_name(bit), (cfg.required_layers & bit)
                            ? "--require-isolation is set"
                            : "the policy runs programs, which needs it");
        stop_server();
    }
    log_msg(LOG_WARN, "zygote %d ready after %lld ms", (int)z.pid,
            (long long)(ready_at - started_at));
}

/* Handles one message; closes the descriptors it does not hand on. */
static void on_message(const unsigned char *msg, size_t n, int *fds, int nfds)
{
    struct ipc_cursor c;
    uint32_t type = 0, len;
    if (n < IPC_HEADER_BYTES)
        goto bad;
    memcpy(&type, msg, 4);
    memcpy(&len, msg + 4, 4);
    if (len != n - IPC_HEADER_BYTES)
        goto bad;
    ipc_cursor_init(&c, msg + IPC_HEADER_BYTES, len);

    switch (type) {
    case IPC_Z_HELLO:
        on_hello(&c);
        if (c.failed)
            goto bad;
        break;
    case IPC_Z_WORKER: {
        uint32_t pid = ipc_get_u32(&c);
        if (outstanding)
            outstanding--;
        if (c.failed || nfds != 4)
            goto bad;
        worker_add((pid_t)pid, fds);   /* takes the descriptors over */
        return;
    }
    case IPC_Z_EXITED: {
        uint32_t pid = ipc_get_u32(&c);
        struct worker_exit how;
        how.status = (int)ipc_get_u32(&c);
        how.cpu_ms = ipc_get_u32(&c);
        how.oom_killed = !!(ipc_get_u32(&c) & EXIT_OOM_KILLED);
        how.cpu_limit_s = ipc_get_u32(&c);
        if (c.failed)
            goto bad;
        worker_on_exited((pid_t)pid, &how);
        break;
    }
    case IPC_Z_SPAWN_FAILED: {
        uint32_t e = ipc_get_u32(&c);
        if (outstanding)
            outstanding--;
        log_msg(LOG_WARN, "the zygote could not fork a worker: %s", strerror((int)e));
        retry_at = monotonic_ms() + LIMIT_SPAWN_RETRY_MS;
        break;
    }
    default:
        goto bad;
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    return;
bad:
    log_msg(LOG_WARN, "malformed message from the zygote (type %u)", (unsigned)type);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
}

/* Handles every message the zygote has sent. */
static void zygote_read(void)
{
    static unsigned char msg[LIMIT_ZYGOTE_MESSAGE_BYTES];
    for (;;) {
        int fds[IPC_MAX_FDS], nfds;
        ssize_t n = ipc_recv_msg(z.ctl_fd, msg, sizeof(msg), fds, &nfds);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            zygote_died(n == 0 ? "control socket closed" : strerror(errno));
            return;
        }
        on_message(msg, (size_t)n, fds, nfds);
        if (state != ZYGOTE_READY && state != ZYGOTE_STARTING)
            return;
    }
}

void zygote_link_on_event(enum event_source source)
{
    if (source == EVENT_ZYGOTE_CTL) {
        if (z.ctl_fd >= 0)
            zygote_read();
    } else if (z.pid > 0) {
        /* Read what it said before dying (exit reports of its workers). */
        zygote_read();
        if (z.pid > 0)
            zygote_died("process exited");
    }
}

void zygote_link_check_timers(int64_t now, int stopping)
{
    if (state == ZYGOTE_STARTING && now - started_at >= LIMIT_ZYGOTE_START_TIMEOUT_MS)
        zygote_died("no HELLO before the start timeout");
    if (state == ZYGOTE_DOWN && now >= restart_at && !stopping)
        zygote_link_start();
}

int64_t zygote_link_next_timer(int64_t next)
{
    int64_t now = monotonic_ms();
    if (state == ZYGOTE_DOWN && restart_at < next)
        next = restart_at;
    if (retry_at > now && retry_at < next)
        next = retry_at;
    return next;
}

int zygote_link_request_worker(void)
{
    if (state != ZYGOTE_READY || monotonic_ms() < retry_at)
        return 0;
    uint32_t hdr[2] = {IPC_Z_SPAWN, 0};
    if (send(z.ctl_fd, hdr, sizeof(hdr), MSG_NOSIGNAL | MSG_DONTWAIT) != sizeof(hdr)) {
        retry_at = monotonic_ms() + LIMIT_SPAWN_RETRY_MS;
        return 0;
    }
    outstanding++;
    return 1;
}

unsigned zygote_link_outstanding(void)
{
    return outstanding;
}

void zygote_link_status(struct zygote_status *st)
{
    st->state = state;
    st->pid = z.pid;
    st->restarts = restarts;
    st->layers = layers;
    st->layers_known = layers_known;
    st->info = &info;
    st->cgroup_memory = cgroup_memory;
    st->cgroup_pids = cgroup_pids;
}

int zygote_link_fatal(void)
{
    return fatal;
}

/* Removes what is left of the workers' cgroups at base (a path the last zygote's HELLO
 * gave: .../pyexecd-<instance>): its slots' groups, then base. A zygote removes them when
 * it stops; one killed (or replaced by one that never got ready) leaves them, and no
 * later zygote of this server will. Best effort: a group still holding a process stays
 * (rmdir fails), and only directories named as sandbox/cgroup.c names them are touched. */
static void remove_leftover_groups(const char *base)
{
    const char *name = strrchr(base, '/');
    if (!base[0] || !name || strncmp(name + 1, "pyexecd-", 8) != 0)
        return;
    DIR *d = opendir(base);
    if (!d)
        return;
    char path[PATH_MAX];
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_type != DT_DIR || !e->d_name[0] ||
            strspn(e->d_name, "0123456789") != strlen(e->d_name))
            continue;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", base, e->d_name) < sizeof(path))
            rmdir(path);
    }
    closedir(d);
    if (rmdir(base) == 0)
        log_msg(LOG_WARN, "removed the workers' cgroup %s, which an ended zygote left", base);
}

void zygote_link_stop(void)
{
    zygote_stop(&z, LIMIT_ZYGOTE_STOP_GRACE_MS);
    state = ZYGOTE_STOPPED;
    remove_leftover_groups(cgroup_memory);
    remove_leftover_groups(cgroup_pids);
}
