/* The executor's side of the zygote: starting it, restarting it when it dies, asking it
 * for workers so the pool stays full, and reading what it reports. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/ipc.h"
#include "../common/limits.h"
#include "../common/block_report.h"
#include "../common/isolation.h"
#include "executor_internal.h"

static void send_spawn(void)
{
    uint32_t hdr[2] = {IPC_Z_SPAWN, 0};
    if (send(ex.z.ctl_fd, hdr, sizeof(hdr), MSG_NOSIGNAL | MSG_DONTWAIT) == sizeof(hdr))
        ex.spawn_outstanding++;
    else
        ex.spawn_retry_at = ex_now_ms() + SPAWN_RETRY_MS;
}

/* Keeps `pool` idle workers plus one for each queued job that could run now. */
void pool_ensure(void)
{
    if (ex.zstate != ZYGOTE_READY || ex.stop_seen || ex_now_ms() < ex.spawn_retry_at)
        return;
    /* Queued requests that could start now, and every queued session creation. */
    unsigned free_slots = ex.cfg.workers > ex.running ? ex.cfg.workers - ex.running : 0;
    unsigned requests = 0, creates = 0;
    for (const struct job *j = ex.queue; j; j = j->next) {
        if (j->kind == JOB_SESSION_CREATE)
            creates++;
        else
            requests++;
    }
    unsigned demand = (requests < free_slots ? requests : free_slots) + creates;
    unsigned want = ex.cfg.pool + demand;
    unsigned have = ex.idle + ex.starting + ex.spawn_outstanding;
    while (have < want && ex.spawn_retry_at <= ex_now_ms()) {
        send_spawn();
        have++;
    }
}

void zygote_start(void)
{
    char err[256];
    ex.zstarted_at = ex_now_ms();
    if (zygote_spawn(&ex.z, ex.cfg.zygote_argv, ex.cfg.zygote_env, ex.cfg.policy_fd,
                             err, sizeof(err)) < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        ex.zstate = ZYGOTE_DOWN;
        ex.restart_at = ex_now_ms() + ex.backoff_ms;
        return;
    }
    fcntl(ex.z.ctl_fd, F_SETFL, O_NONBLOCK);
    ex_epoll_watch(ex.z.ctl_fd, EPOLLIN, &ex.ctl_tag, EPOLL_CTL_ADD);
    ex_epoll_watch(ex.z.pidfd, EPOLLIN, &ex.exit_tag, EPOLL_CTL_ADD);
    ex.zstate = ZYGOTE_STARTING;
}

void zygote_died(const char *why)
{
    int status = 0;
    int64_t now = ex_now_ms();
    zygote_end(&ex.z, 1, &status);
    if (WIFSIGNALED(status))
        fprintf(stderr, "pyexecd: zygote ended (%s): signal %d\n", why, WTERMSIG(status));
    else
        fprintf(stderr, "pyexecd: zygote ended (%s): status %d\n", why, WEXITSTATUS(status));

    /* Its workers die with it (parent-death signal); their requests get 503. */
    for (struct worker *w = ex.workers; w; w = w->next) {
        if (w->state == W_DEAD)
            continue;
        struct job *job = w->job;
        w->job = NULL;
        w->end_reason = "the execution environment restarted (its zygote process ended)";
        worker_discard(w);
        if (job)
            job_fail(job, PX_UNAVAILABLE,
                     "The execution environment restarted while this request ran; retry it.");
    }
    ex.spawn_outstanding = 0;
    /* A zygote that keeps dying before it is ready cannot say which layers it has: with
     * --require-isolation that is reason enough to stop rather than retry for ever. */
    if (ex.zstate == ZYGOTE_STARTING && ++ex.start_failures >= ZYGOTE_START_ATTEMPTS &&
        ex.cfg.required_layers) {
        fprintf(stderr, "pyexecd: the zygote failed to start %u times and "
                "--require-isolation is set\n", ex.start_failures);
        ex.fatal = 1;
        kill(getpid(), SIGTERM);
    }
    if (ex.zstate == ZYGOTE_READY && now - ex.zready_at >= ZYGOTE_STABLE_MS)
        ex.backoff_ms = ZYGOTE_BACKOFF_FIRST_MS;
    ex.zstate = ZYGOTE_DOWN;
    ex.restart_at = now + ex.backoff_ms;
    ex.backoff_ms = ex.backoff_ms * 2 > ZYGOTE_BACKOFF_MAX_MS ? ZYGOTE_BACKOFF_MAX_MS
                                                             : ex.backoff_ms * 2;
    ex.restarts++;
}

static void on_zygote_message(const unsigned char *msg, size_t n, int *fds, int nfds)
{
    struct ipc_cursor c;
    uint32_t type, len;
    if (n < IPC_HEADER_BYTES)
        goto bad;
    memcpy(&type, msg, 4);
    memcpy(&len, msg + 4, 4);
    if (len != n - IPC_HEADER_BYTES)
        goto bad;
    ipc_cursor_init(&c, msg + IPC_HEADER_BYTES, len);

    switch (type) {
    case IPC_Z_HELLO: {
        uint32_t layers = ipc_get_u32(&c);
        size_t info_len;
        const unsigned char *info = ipc_get_bytes(&c, &info_len);
        if (c.failed)
            goto bad;
        free(ex.info_json);
        ex.info_json = strndup((const char *)info, info_len);
        ex.layers = layers;
        ex.layers_known = 1;
        ex.zstate = ZYGOTE_READY;
        ex.zready_at = ex_now_ms();
        ex.start_failures = 0;
        unsigned missing = ex.cfg.required_layers & ~layers;
        if (missing) {
            for (unsigned bit = 1; bit & ISO_ALL; bit <<= 1)
                if (missing & bit)
                    fprintf(stderr, "pyexecd: isolation layer %s is not available and "
                            "--require-isolation is set\n", isolation_layer_name(bit));
            ex.fatal = 1;
            kill(getpid(), SIGTERM);
        }
        fprintf(stderr, "pyexecd: zygote %d ready after %lld ms\n", (int)ex.z.pid,
                (long long)(ex.zready_at - ex.zstarted_at));
        break;
    }
    case IPC_Z_WORKER: {
        uint32_t pid = ipc_get_u32(&c);
        if (ex.spawn_outstanding)
            ex.spawn_outstanding--;
        if (c.failed || nfds != 4)
            goto bad;
        struct worker *w = calloc(1, sizeof(*w));
        if (!w)
            goto bad;
        w->pid = (pid_t)pid;
        w->sock = fds[0];
        w->out_fd = fds[1];
        w->err_fd = fds[2];
        w->pidfd = fds[3];
        w->state = W_DEAD;   /* worker_set_state counts from here */
        worker_set_state(w, W_STARTING);
        w->started_at = ex_now_ms();
        w->tag.kind = TAG_WORKER;
        w->tag.w = w;
        ipc_reader_init(&w->rd, LIMIT_IPC_FRAME_BYTES);
        fcntl(w->sock, F_SETFL, O_NONBLOCK);
        w->next = ex.workers;
        ex.workers = w;
        ex_epoll_watch(w->sock, EPOLLIN, &w->tag, EPOLL_CTL_ADD);
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
        if (ex.spawn_outstanding)
            ex.spawn_outstanding--;
        fprintf(stderr, "pyexecd: the zygote could not fork a worker: %s\n", strerror((int)e));
        ex.spawn_retry_at = ex_now_ms() + SPAWN_RETRY_MS;
        break;
    }
    default:
        goto bad;
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    return;
bad:
    fprintf(stderr, "pyexecd: malformed message from the zygote (type %u)\n",
            n >= 4 ? (unsigned)msg[0] : 0u);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
}

void zygote_read(void)
{
    static unsigned char msg[65536];
    for (;;) {
        int fds[IPC_MAX_FDS], nfds;
        ssize_t n = ipc_recv_msg(ex.z.ctl_fd, msg, sizeof(msg), fds, &nfds);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            zygote_died(n == 0 ? "control socket closed" : strerror(errno));
            return;
        }
        on_zygote_message(msg, (size_t)n, fds, nfds);
        if (ex.zstate != ZYGOTE_READY && ex.zstate != ZYGOTE_STARTING)
            return;
    }
}

