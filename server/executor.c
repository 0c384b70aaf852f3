#define _GNU_SOURCE
#include "executor.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/ipc.h"
#include "../common/limits.h"
#include "../sandbox/block_report.h"
#include "../sandbox/worker.h"
#include "zygote_process.h"

/* How long requests may wait for a zygote that is starting or restarting before they
 * get 503: a cold start imports every library (1-3.5 s here, more on a first run that
 * builds matplotlib's font cache). */
#define ZYGOTE_WAIT_MS 60000
/* A zygote that has not said HELLO by then is stuck: kill it and start another. */
#define ZYGOTE_START_TIMEOUT_MS 120000
/* Restart back-off after a zygote death: doubles from the first to the last value, and
 * resets once a zygote has lived for ZYGOTE_STABLE_MS. */
#define ZYGOTE_BACKOFF_FIRST_MS 200
#define ZYGOTE_BACKOFF_MAX_MS 10000
#define ZYGOTE_STABLE_MS 30000
/* After a worker's socket closes mid-job, how long to wait for the zygote to report how
 * it died before answering without the reason. */
#define EXIT_STATUS_WAIT_MS 2000
/* Pause before asking again when the zygote could not fork. */
#define SPAWN_RETRY_MS 200

enum tag_kind { TAG_WAKE, TAG_ZYGOTE_CTL, TAG_ZYGOTE_EXIT, TAG_WORKER };

struct tag {
    enum tag_kind kind;
    struct worker *w;
};

enum worker_state {
    W_STARTING,   /* forked, sandboxing itself */
    W_IDLE,       /* ready for a job */
    W_BUSY,       /* running a job */
    W_EXITING,    /* its socket closed mid-job; waiting for its exit status */
    W_DEAD,       /* descriptors closed; freed at the end of the loop iteration */
};

struct job;

struct worker {
    struct worker *next;
    pid_t pid;
    int sock, out_fd, err_fd, pidfd;
    enum worker_state state;
    struct job *job;
    struct ipc_reader rd;
    unsigned char *wbuf;      /* the JOB frame still to send */
    size_t wlen, woff;
    int64_t exit_wait_until;
    struct tag tag;
};

struct job {
    struct job *next;
    const struct exec_request *req;
    exec_done_fn done;
    void *ctx;
    struct exec_result *res;
    size_t block;             /* index of the running block */
    off_t out_mark, err_mark; /* capture offsets where the running block began */
    int64_t deadline;
    int64_t queued_at;
};

static struct {
    struct executor_config cfg;
    pthread_t thread;
    int epfd, wakefd;

    /* Shared with submitting threads: under lock. */
    pthread_mutex_t lock;
    struct job *incoming, *incoming_tail;
    unsigned admitted;        /* accepted and not yet answered */
    int stopping;
    struct health_report snap;
    char *snap_info;

    /* The executor thread's own. */
    struct job *queue, *queue_tail;
    unsigned queued;
    struct worker *workers;
    unsigned running, idle, starting, spawn_outstanding;
    struct zygote_process z;
    enum zygote_state zstate;
    int64_t zstarted_at, zready_at, restart_at, spawn_retry_at;
    int64_t backoff_ms;
    unsigned restarts;
    unsigned layers;
    int layers_known;
    char *info_json;
    unsigned long long executions, deadline_kills, crashes, setup_failures;
    int stop_seen;            /* `stopping` as last read under the lock */
    struct tag wake_tag, ctl_tag, exit_tag;
} ex;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static off_t file_size(int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 ? st.st_size : 0;
}

static void epoll_watch(int fd, uint32_t events, struct tag *tag, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    if (epoll_ctl(ex.epfd, op, fd, &ev) < 0 && op != EPOLL_CTL_DEL)
        fprintf(stderr, "pyexecd: epoll_ctl: %s\n", strerror(errno));
}

/* --- workers ------------------------------------------------------------------------ */

static void set_state(struct worker *w, enum worker_state s)
{
    switch (w->state) {
    case W_STARTING: ex.starting--; break;
    case W_IDLE: ex.idle--; break;
    case W_BUSY: ex.running--; break;
    default: break;
    }
    w->state = s;
    switch (s) {
    case W_STARTING: ex.starting++; break;
    case W_IDLE: ex.idle++; break;
    case W_BUSY: ex.running++; break;
    default: break;
    }
}

static void kill_worker(struct worker *w)
{
    if (w->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Kills the worker (idempotent) and releases everything but the struct, which the loop
 * frees later: events for it may still be queued in this iteration. */
static void discard_worker(struct worker *w)
{
    kill_worker(w);
    close_fd(&w->sock);   /* closing removes it from the epoll set */
    close_fd(&w->out_fd);
    close_fd(&w->err_fd);
    close_fd(&w->pidfd);
    ipc_reader_release(&w->rd);
    free(w->wbuf);
    w->wbuf = NULL;
    w->job = NULL;
    set_state(w, W_DEAD);
}

static void free_dead_workers(void)
{
    struct worker **pp = &ex.workers;
    while (*pp) {
        struct worker *w = *pp;
        if (w->state == W_DEAD) {
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

static struct worker *find_worker(pid_t pid)
{
    for (struct worker *w = ex.workers; w; w = w->next)
        if (w->pid == pid && w->state != W_DEAD)
            return w;
    return NULL;
}

/* --- jobs ----------------------------------------------------------------------------- */

static void publish_admitted_done(void)
{
    pthread_mutex_lock(&ex.lock);
    ex.admitted--;
    pthread_mutex_unlock(&ex.lock);
}

/* Answers a job that produced no block results (503 and the like). */
static void fail_job(struct job *job, enum px_result r, const char *message)
{
    struct exec_result *res = job->res;
    if (!res)
        res = calloc(1, sizeof(*res));
    else {
        /* Discard partial block results: the reply is an error. */
        struct exec_result *fresh = calloc(1, sizeof(*fresh));
        exec_result_free(res);
        res = fresh;
    }
    job->res = NULL;
    if (res) {
        res->status = r;
        res->status_message = message ? strdup(message) : NULL;
    }
    job->done(job->ctx, res);   /* a NULL res tells the callee we ran out of memory */
    free(job);
    publish_admitted_done();
}

static void limit_hit(struct job *job, enum limit_hit l)
{
    /* Deadline and crash say more than output or image limits: they win. */
    if (job->res->limit == LIMIT_HIT_NONE || l == LIMIT_HIT_DEADLINE || l == LIMIT_HIT_CRASH)
        job->res->limit = l;
}

/* Fills the blocks from `from` on as not run and answers the job. */
static void complete_job(struct job *job, size_t from)
{
    struct exec_result *res = job->res;
    for (size_t i = from; i < res->nblocks; i++) {
        struct block_output_input in = {.end = BLOCK_END_NOT_RUN, .out.fd = -1, .err.fd = -1};
        int truncated = 0;
        if (block_output_build(&res->blocks[i], &in, &truncated) < 0) {
            fail_job(job, PX_NOMEM, "Out of memory while building the reply.");
            return;
        }
    }
    res->status = PX_OK;
    job->res = NULL;
    ex.executions++;
    job->done(job->ctx, res);
    free(job);
    publish_admitted_done();
}

/* Where a block's output ends: as the worker reported it (it runs ahead of us), kept
 * within what the file holds and not before where the block began. A negative report
 * means "now" (the worker was killed or died). */
static off_t clamp_end(int fd, off_t mark, int64_t reported)
{
    off_t size = file_size(fd);
    off_t end = reported < 0 || reported > size ? size : (off_t)reported;
    return end < mark ? mark : end;
}

/* Builds the running block's result from the capture files and the given ending.
 * out_end/err_end: the worker's report, or -1 for "whatever is there now". */
static int finish_block(struct worker *w, enum block_end end, const char *error,
                        size_t error_len, unsigned flags, int64_t out_report,
                        int64_t err_report)
{
    struct job *job = w->job;
    off_t out_end = clamp_end(w->out_fd, job->out_mark, out_report);
    off_t err_end = clamp_end(w->err_fd, job->err_mark, err_report);
    struct block_output_input in = {
        .end = end,
        .out = {.fd = w->out_fd, .start = job->out_mark, .end = out_end},
        .err = {.fd = w->err_fd, .start = job->err_mark, .end = err_end},
        .out_truncated = !!(flags & BLOCK_FLAG_STDOUT_TRUNCATED),
        .err_truncated = !!(flags & BLOCK_FLAG_STDERR_TRUNCATED),
        .error_text = error,
        .error_len = error_len,
        .cap = ex.cfg.output_bytes,
        .failed_stdout = ex.cfg.failed_stdout,
    };
    int truncated = 0;
    if (block_output_build(&job->res->blocks[job->block], &in, &truncated) < 0)
        return -1;
    if (truncated)
        limit_hit(job, LIMIT_HIT_OUTPUT);
    job->out_mark = out_end;
    job->err_mark = err_end;
    return 0;
}

/* Describes how a worker died, for the FAILED output. */
static void describe_death(int status, int known, char *buf, size_t len)
{
    if (!known) {
        snprintf(buf, len, "The interpreter process ended unexpectedly.\n");
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *why = sig == SIGSYS ? "it made a system call the sandbox forbids"
                        : sig == SIGXCPU ? "it used up its CPU time limit"
                        : sig == SIGKILL ? "it was killed (out of memory?)"
                        : sig == SIGSEGV ? "segmentation fault"
                        : sig == SIGABRT ? "aborted"
                        : sig == SIGBUS ? "bus error"
                        : sig == SIGFPE ? "arithmetic error"
                        : "killed by a signal";
        snprintf(buf, len, "The interpreter process was stopped: %s (signal %d, SIG%s).\n",
                 why, sig, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    } else {
        snprintf(buf, len, "The interpreter process exited with status %d.\n",
                 WEXITSTATUS(status));
    }
}

/* The worker died mid-job: the running block fails with the reason, later ones do not run. */
static void finish_crashed_job(struct worker *w, int status, int known)
{
    struct job *job = w->job;
    w->job = NULL;
    if (!job)
        return;
    char reason[160];
    enum block_end end = BLOCK_END_CRASH;
    if (known && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        end = BLOCK_END_OK;   /* os._exit(0): it asked to stop */
        reason[0] = '\0';
    } else {
        describe_death(status, known, reason, sizeof(reason));
        ex.crashes++;
    }
    if (job->block < job->res->nblocks) {
        /* w->job is detached; finish_block reads through w, so reattach for the call. */
        w->job = job;
        int rc = finish_block(w, end, reason, strlen(reason), 0, -1, -1);
        w->job = NULL;
        if (rc < 0) {
            fail_job(job, PX_NOMEM, "Out of memory while building the reply.");
            return;
        }
        if (end == BLOCK_END_CRASH)
            limit_hit(job, LIMIT_HIT_CRASH);
        job->block++;
    }
    complete_job(job, job->block);
}

static void deadline_expired(struct worker *w)
{
    struct job *job = w->job;
    kill_worker(w);   /* from outside: a C loop that ignores signals dies all the same */
    ex.deadline_kills++;
    if (finish_block(w, BLOCK_END_DEADLINE, NULL, 0, 0, -1, -1) < 0) {
        w->job = NULL;
        discard_worker(w);
        fail_job(job, PX_NOMEM, "Out of memory while building the reply.");
        return;
    }
    limit_hit(job, LIMIT_HIT_DEADLINE);
    w->job = NULL;
    discard_worker(w);
    complete_job(job, job->block + 1);
}

/* The worker broke the protocol (or the code wrote garbage to its socket). */
static void worker_protocol_error(struct worker *w, const char *what)
{
    fprintf(stderr, "pyexecd: worker %d: %s\n", (int)w->pid, what);
    kill_worker(w);
    if (w->job)
        finish_crashed_job(w, SIGKILL, 0);
    discard_worker(w);
}

static void handle_block_done(struct worker *w, const unsigned char *p, uint32_t len)
{
    struct job *job = w->job;
    struct ipc_cursor c;
    ipc_cursor_init(&c, p, len);
    uint32_t index = ipc_get_u32(&c);
    uint32_t status = ipc_get_u32(&c);
    uint32_t flags = ipc_get_u32(&c);
    uint64_t out_end = ipc_get_u64(&c);
    uint64_t err_end = ipc_get_u64(&c);
    size_t error_len;
    const unsigned char *error = ipc_get_bytes(&c, &error_len);
    uint32_t nimages = ipc_get_u32(&c);
    if (c.failed || index != job->block || job->block >= job->res->nblocks ||
        status > BLOCK_STATUS_EXCEPTION) {
        worker_protocol_error(w, "malformed block report");
        return;
    }
    struct block_result *b = &job->res->blocks[job->block];
    enum block_end end = status == BLOCK_STATUS_EXCEPTION ? BLOCK_END_EXCEPTION : BLOCK_END_OK;
    if (finish_block(w, end, (const char *)error, error_len, flags,
                     out_end > INT64_MAX ? -1 : (int64_t)out_end,
                     err_end > INT64_MAX ? -1 : (int64_t)err_end) < 0) {
        worker_protocol_error(w, "out of memory");
        return;
    }

    /* Images: only PNG and JPEG, within the count and size limits. */
    if (nimages > LIMIT_IMAGES_PER_BLOCK) {
        nimages = LIMIT_IMAGES_PER_BLOCK;
        flags |= BLOCK_FLAG_IMAGES_DROPPED;
    }
    b->images = nimages ? calloc(nimages, sizeof(struct image)) : NULL;
    for (uint32_t i = 0; i < nimages && b->images; i++) {
        size_t mime_len, data_len;
        const unsigned char *mime = ipc_get_bytes(&c, &mime_len);
        const unsigned char *data = ipc_get_bytes(&c, &data_len);
        if (c.failed)
            break;
        const char *m = NULL;
        if (mime_len == 9 && memcmp(mime, "image/png", 9) == 0)
            m = "image/png";
        else if (mime_len == 10 && memcmp(mime, "image/jpeg", 10) == 0)
            m = "image/jpeg";
        if (!m || data_len > LIMIT_IMAGE_BYTES) {
            flags |= BLOCK_FLAG_IMAGES_DROPPED;
            continue;
        }
        struct image *img = &b->images[b->nimages];
        img->mime = strdup(m);
        img->data = malloc(data_len ? data_len : 1);
        if (!img->mime || !img->data) {
            free(img->mime);
            free(img->data);
            memset(img, 0, sizeof(*img));
            flags |= BLOCK_FLAG_IMAGES_DROPPED;
            continue;
        }
        memcpy(img->data, data, data_len);
        img->len = data_len;
        b->nimages++;
    }
    if (flags & BLOCK_FLAG_IMAGES_DROPPED)
        limit_hit(job, LIMIT_HIT_IMAGES);

    job->block++;
    job->deadline = now_ms() + ex.cfg.deadline_ms;   /* each block has its own deadline */
}

static void handle_worker_frame(struct worker *w, uint32_t type, const unsigned char *p,
                                uint32_t len)
{
    switch (type) {
    case IPC_W_READY:
        if (w->state != W_STARTING || len != sizeof(uint32_t)) {
            worker_protocol_error(w, "unexpected READY");
            return;
        }
        memcpy(&ex.layers, p, sizeof(uint32_t));
        ex.layers_known = 1;
        set_state(w, W_IDLE);
        return;
    case IPC_W_SETUP_FAILED:
        fprintf(stderr, "pyexecd: worker %d could not sandbox itself: %.*s\n", (int)w->pid,
                (int)(len > 400 ? 400 : len), (const char *)p);
        ex.setup_failures++;
        ex.spawn_retry_at = now_ms() + SPAWN_RETRY_MS;
        if (w->state == W_BUSY)
            worker_protocol_error(w, "SETUP_FAILED while busy");
        else
            discard_worker(w);
        return;
    case IPC_W_BLOCK_DONE:
        if (w->state != W_BUSY || !w->job) {
            worker_protocol_error(w, "block report without a job");
            return;
        }
        handle_block_done(w, p, len);
        return;
    case IPC_W_JOB_DONE:
        if (w->state != W_BUSY || !w->job || w->job->block != w->job->res->nblocks) {
            worker_protocol_error(w, "early JOB_DONE");
            return;
        } else {
            struct job *job = w->job;
            w->job = NULL;
            discard_worker(w);   /* it exits by itself; the kill makes sure of it */
            complete_job(job, job->block);
        }
        return;
    default:
        worker_protocol_error(w, "unknown frame");
    }
}

/* Processes every complete frame buffered from the worker. */
static void drain_frames(struct worker *w)
{
    uint32_t type, len;
    const unsigned char *payload;
    int rc;
    while (w->state != W_DEAD && w->sock >= 0 &&
           (rc = ipc_reader_next(&w->rd, &type, &payload, &len)) != 0) {
        if (rc < 0) {
            worker_protocol_error(w, "oversized frame");
            return;
        }
        handle_worker_frame(w, type, payload, len);
    }
}

/* The worker's socket closed (or failed). */
static void worker_lost(struct worker *w)
{
    if (w->state == W_BUSY && w->job) {
        /* The capture files stay open: the answer needs what it printed. */
        close_fd(&w->sock);
        set_state(w, W_EXITING);
        w->exit_wait_until = now_ms() + EXIT_STATUS_WAIT_MS;
    } else if (w->state != W_DEAD && w->state != W_EXITING) {
        discard_worker(w);
    }
}

/* Reads everything the worker sent; returns when the socket has nothing more. */
static void read_worker(struct worker *w)
{
    for (;;) {
        ssize_t n = ipc_reader_fill(&w->rd, w->sock);
        if (n > 0) {
            drain_frames(w);
            if (w->state == W_DEAD || w->sock < 0)
                return;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        worker_lost(w);
        return;
    }
}

static void flush_write(struct worker *w)
{
    while (w->woff < w->wlen) {
        ssize_t n = send(w->sock, w->wbuf + w->woff, w->wlen - w->woff,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            w->woff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            epoll_watch(w->sock, EPOLLIN | EPOLLOUT, &w->tag, EPOLL_CTL_MOD);
            return;
        }
        worker_lost(w);
        return;
    }
    free(w->wbuf);
    w->wbuf = NULL;
    w->wlen = w->woff = 0;
    epoll_watch(w->sock, EPOLLIN, &w->tag, EPOLL_CTL_MOD);
}

static void on_worker_event(struct worker *w, uint32_t events)
{
    if (w->state == W_DEAD || w->sock < 0)
        return;
    if ((events & EPOLLOUT) && w->wbuf)
        flush_write(w);
    if (w->state != W_DEAD && w->sock >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        read_worker(w);
}

/* The zygote reaped a worker. */
static void on_worker_exited(pid_t pid, int status)
{
    struct worker *w = find_worker(pid);
    if (!w)
        return;
    if (w->sock >= 0)
        read_worker(w);   /* frames it sent before dying come first */
    if (w->state == W_DEAD)
        return;
    if (w->job)
        finish_crashed_job(w, status, 1);
    discard_worker(w);
}

static int start_job(struct worker *w, struct job *job)
{
    const struct exec_request *req = job->req;
    struct ipc_buf b;
    ipc_buf_init(&b);
    size_t start = ipc_frame_begin(&b, IPC_W_JOB);
    ipc_put_u32(&b, (uint32_t)req->nfiles);
    for (size_t i = 0; i < req->nfiles; i++) {
        ipc_put_bytes(&b, req->files[i].name, strlen(req->files[i].name));
        ipc_put_bytes(&b, req->files[i].data, req->files[i].len);
    }
    ipc_put_u32(&b, (uint32_t)req->ncodes);
    for (size_t i = 0; i < req->ncodes; i++)
        ipc_put_bytes(&b, req->codes[i], req->code_lens[i]);
    ipc_frame_end(&b, start);

    job->res = calloc(1, sizeof(*job->res));
    if (job->res)
        job->res->blocks = calloc(req->ncodes, sizeof(struct block_result));
    if (b.failed || !job->res || !job->res->blocks) {
        ipc_buf_release(&b);
        return -1;
    }
    job->res->nblocks = req->ncodes;
    w->wbuf = ipc_buf_detach(&b, &w->wlen);
    w->woff = 0;
    w->job = job;
    set_state(w, W_BUSY);
    job->block = 0;
    job->out_mark = file_size(w->out_fd);
    job->err_mark = file_size(w->err_fd);
    job->deadline = now_ms() + ex.cfg.deadline_ms;
    flush_write(w);
    return 0;
}

/* --- the zygote ------------------------------------------------------------------------ */

static void send_spawn(void)
{
    uint32_t hdr[2] = {IPC_Z_SPAWN, 0};
    if (send(ex.z.ctl_fd, hdr, sizeof(hdr), MSG_NOSIGNAL | MSG_DONTWAIT) == sizeof(hdr))
        ex.spawn_outstanding++;
    else
        ex.spawn_retry_at = now_ms() + SPAWN_RETRY_MS;
}

/* Keeps `pool` idle workers plus one for each queued job that could run now. */
static void ensure_pool(void)
{
    if (ex.zstate != ZYGOTE_READY || ex.stop_seen || now_ms() < ex.spawn_retry_at)
        return;
    unsigned free_slots = ex.cfg.workers > ex.running ? ex.cfg.workers - ex.running : 0;
    unsigned demand = ex.queued < free_slots ? ex.queued : free_slots;
    unsigned want = ex.cfg.pool + demand;
    unsigned have = ex.idle + ex.starting + ex.spawn_outstanding;
    while (have < want && ex.spawn_retry_at <= now_ms()) {
        send_spawn();
        have++;
    }
}

static void zygote_start(void)
{
    char err[256];
    ex.zstarted_at = now_ms();
    if (zygote_process_spawn(&ex.z, ex.cfg.zygote_argv, ex.cfg.zygote_env, err,
                             sizeof(err)) < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        ex.zstate = ZYGOTE_DOWN;
        ex.restart_at = now_ms() + ex.backoff_ms;
        return;
    }
    fcntl(ex.z.ctl_fd, F_SETFL, O_NONBLOCK);
    epoll_watch(ex.z.ctl_fd, EPOLLIN, &ex.ctl_tag, EPOLL_CTL_ADD);
    epoll_watch(ex.z.pidfd, EPOLLIN, &ex.exit_tag, EPOLL_CTL_ADD);
    ex.zstate = ZYGOTE_STARTING;
}

static void zygote_died(const char *why)
{
    int status = 0;
    int64_t now = now_ms();
    zygote_process_end(&ex.z, 1, &status);
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
        discard_worker(w);
        if (job)
            fail_job(job, PX_UNAVAILABLE,
                     "The execution environment restarted while this request ran; retry it.");
    }
    ex.spawn_outstanding = 0;
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
        ex.zready_at = now_ms();
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
        w->state = W_DEAD;   /* set_state counts from here */
        set_state(w, W_STARTING);
        w->tag.kind = TAG_WORKER;
        w->tag.w = w;
        ipc_reader_init(&w->rd, LIMIT_IPC_FRAME_BYTES);
        fcntl(w->sock, F_SETFL, O_NONBLOCK);
        w->next = ex.workers;
        ex.workers = w;
        epoll_watch(w->sock, EPOLLIN, &w->tag, EPOLL_CTL_ADD);
        return;
    }
    case IPC_Z_EXITED: {
        uint32_t pid = ipc_get_u32(&c);
        uint32_t status = ipc_get_u32(&c);
        if (c.failed)
            goto bad;
        on_worker_exited((pid_t)pid, (int)status);
        break;
    }
    case IPC_Z_SPAWN_FAILED: {
        uint32_t e = ipc_get_u32(&c);
        if (ex.spawn_outstanding)
            ex.spawn_outstanding--;
        fprintf(stderr, "pyexecd: the zygote could not fork a worker: %s\n", strerror((int)e));
        ex.spawn_retry_at = now_ms() + SPAWN_RETRY_MS;
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

static void read_zygote(void)
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

/* --- the loop --------------------------------------------------------------------------- */

static void take_incoming(void)
{
    pthread_mutex_lock(&ex.lock);
    struct job *list = ex.incoming;
    ex.incoming = ex.incoming_tail = NULL;
    pthread_mutex_unlock(&ex.lock);
    while (list) {
        struct job *job = list;
        list = list->next;
        job->next = NULL;
        if (ex.queue_tail)
            ex.queue_tail->next = job;
        else
            ex.queue = job;
        ex.queue_tail = job;
        ex.queued++;
    }
}

static struct job *pop_queue(void)
{
    struct job *job = ex.queue;
    if (job) {
        ex.queue = job->next;
        if (!ex.queue)
            ex.queue_tail = NULL;
        ex.queued--;
        job->next = NULL;
    }
    return job;
}

static void dispatch(void)
{
    while (ex.queue && ex.running < ex.cfg.workers && ex.zstate == ZYGOTE_READY) {
        struct worker *w = NULL;
        for (struct worker *it = ex.workers; it; it = it->next)
            if (it->state == W_IDLE) {
                w = it;
                break;
            }
        if (!w)
            break;
        struct job *job = pop_queue();
        if (start_job(w, job) < 0)
            fail_job(job, PX_NOMEM, "Out of memory while starting the execution.");
    }
    ensure_pool();
}

static void check_timers(void)
{
    int64_t now = now_ms();
    for (struct worker *w = ex.workers; w; w = w->next) {
        if (w->state == W_BUSY && w->job && now >= w->job->deadline) {
            /* Reports it sent meanwhile come first: the block may have ended in time. */
            read_worker(w);
            if (w->state == W_BUSY && w->job && now >= w->job->deadline)
                deadline_expired(w);
        }
        else if (w->state == W_EXITING && now >= w->exit_wait_until) {
            finish_crashed_job(w, 0, 0);
            discard_worker(w);
        }
    }
    if (ex.zstate == ZYGOTE_STARTING && now - ex.zstarted_at >= ZYGOTE_START_TIMEOUT_MS)
        zygote_died("no HELLO before the start timeout");
    if (ex.zstate == ZYGOTE_DOWN && now >= ex.restart_at && !ex.stop_seen)
        zygote_start();
    if (ex.zstate != ZYGOTE_READY) {
        /* Waiting requests must not hang on a zygote that does not come back. */
        while (ex.queue && now - ex.queue->queued_at >= ZYGOTE_WAIT_MS)
            fail_job(pop_queue(), PX_UNAVAILABLE,
                     "The execution environment is not available (its zygote process is "
                     "restarting); retry shortly.");
    }
}

/* Milliseconds until the next timer, for epoll_wait. */
static int next_timeout(void)
{
    int64_t now = now_ms(), next = now + 1000;
    for (struct worker *w = ex.workers; w; w = w->next) {
        if (w->state == W_BUSY && w->job && w->job->deadline < next)
            next = w->job->deadline;
        if (w->state == W_EXITING && w->exit_wait_until < next)
            next = w->exit_wait_until;
    }
    if (ex.zstate == ZYGOTE_DOWN && ex.restart_at < next)
        next = ex.restart_at;
    if (ex.spawn_retry_at > now && ex.spawn_retry_at < next)
        next = ex.spawn_retry_at;
    if (ex.zstate != ZYGOTE_READY && ex.queue && ex.queue->queued_at + ZYGOTE_WAIT_MS < next)
        next = ex.queue->queued_at + ZYGOTE_WAIT_MS;
    return next <= now ? 0 : (int)(next - now);
}

static void publish_snapshot(void)
{
    pthread_mutex_lock(&ex.lock);
    struct health_report *h = &ex.snap;
    h->zygote_state = ex.stopping ? ZYGOTE_STOPPED : ex.zstate;
    h->zygote_pid = ex.z.pid;
    h->zygote_restarts = ex.restarts;
    h->workers_max = ex.cfg.workers;
    h->running = ex.running;
    h->pool_target = ex.cfg.pool;
    h->pool_ready = ex.idle;
    h->pool_starting = ex.starting + ex.spawn_outstanding;
    h->queue_depth = ex.admitted > ex.running ? ex.admitted - ex.running : 0;
    h->queue_max = ex.cfg.queue;
    h->layers = ex.layers;
    h->layers_known = ex.layers_known;
    h->executions = ex.executions;
    h->deadline_kills = ex.deadline_kills;
    h->worker_crashes = ex.crashes;
    h->setup_failures = ex.setup_failures;
    if (ex.info_json && (!ex.snap_info || strcmp(ex.snap_info, ex.info_json) != 0)) {
        free(ex.snap_info);
        ex.snap_info = strdup(ex.info_json);
    }
    pthread_mutex_unlock(&ex.lock);
}

static void shutdown_all(void)
{
    take_incoming();
    struct job *job;
    while ((job = pop_queue()))
        fail_job(job, PX_SHUTTING_DOWN, "The server is shutting down.");
    for (struct worker *w = ex.workers; w; w = w->next) {
        if (w->state == W_DEAD)
            continue;
        job = w->job;
        w->job = NULL;
        discard_worker(w);
        if (job)
            fail_job(job, PX_SHUTTING_DOWN, "The server is shutting down.");
    }
    free_dead_workers();
    zygote_process_end(&ex.z, 1, NULL);
    ex.zstate = ZYGOTE_STOPPED;
    publish_snapshot();
}

static void *executor_main(void *arg)
{
    (void)arg;
    zygote_start();
    for (;;) {
        struct epoll_event evs[64];
        publish_snapshot();
        int n = epoll_wait(ex.epfd, evs, 64, next_timeout());
        for (int i = 0; i < n; i++) {
            struct tag *tag = evs[i].data.ptr;
            switch (tag->kind) {
            case TAG_WAKE: {
                uint64_t v;
                ssize_t r = read(ex.wakefd, &v, sizeof(v));
                (void)r;
                break;
            }
            case TAG_ZYGOTE_CTL:
                if (ex.z.ctl_fd >= 0)
                    read_zygote();
                break;
            case TAG_ZYGOTE_EXIT:
                if (ex.z.pid > 0) {
                    /* Read what it said before dying (exit reports of its workers). */
                    read_zygote();
                    if (ex.z.pid > 0)
                        zygote_died("process exited");
                }
                break;
            case TAG_WORKER:
                on_worker_event(tag->w, evs[i].events);
                break;
            }
        }
        check_timers();
        take_incoming();
        dispatch();
        free_dead_workers();
        pthread_mutex_lock(&ex.lock);
        ex.stop_seen = ex.stopping;
        pthread_mutex_unlock(&ex.lock);
        if (ex.stop_seen) {
            shutdown_all();
            return NULL;
        }
    }
}

int executor_start(const struct executor_config *cfg, char *err, size_t errlen)
{
    ex.cfg = *cfg;
    ex.z.pid = 0;
    ex.z.ctl_fd = ex.z.pidfd = -1;
    ex.zstate = ZYGOTE_STARTING;
    ex.backoff_ms = ZYGOTE_BACKOFF_FIRST_MS;
    pthread_mutex_init(&ex.lock, NULL);
    ex.wake_tag.kind = TAG_WAKE;
    ex.ctl_tag.kind = TAG_ZYGOTE_CTL;
    ex.exit_tag.kind = TAG_ZYGOTE_EXIT;
    ex.epfd = epoll_create1(EPOLL_CLOEXEC);
    ex.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ex.epfd < 0 || ex.wakefd < 0) {
        snprintf(err, errlen, "epoll/eventfd: %s", strerror(errno));
        return -1;
    }
    epoll_watch(ex.wakefd, EPOLLIN, &ex.wake_tag, EPOLL_CTL_ADD);
    publish_snapshot();
    int e = pthread_create(&ex.thread, NULL, executor_main, NULL);
    if (e) {
        snprintf(err, errlen, "pthread_create: %s", strerror(e));
        return -1;
    }
    return 0;
}

static void wake(void)
{
    uint64_t one = 1;
    ssize_t r = write(ex.wakefd, &one, sizeof(one));
    (void)r;
}

enum px_result executor_submit(const struct exec_request *req, exec_done_fn done, void *ctx)
{
    struct job *job = calloc(1, sizeof(*job));
    if (!job)
        return PX_NOMEM;
    job->req = req;
    job->done = done;
    job->ctx = ctx;
    job->queued_at = now_ms();

    pthread_mutex_lock(&ex.lock);
    if (ex.stopping) {
        pthread_mutex_unlock(&ex.lock);
        free(job);
        return PX_SHUTTING_DOWN;
    }
    if (ex.admitted >= ex.cfg.workers + ex.cfg.queue) {
        pthread_mutex_unlock(&ex.lock);
        free(job);
        return PX_QUEUE_FULL;
    }
    ex.admitted++;
    if (ex.incoming_tail)
        ex.incoming_tail->next = job;
    else
        ex.incoming = job;
    ex.incoming_tail = job;
    pthread_mutex_unlock(&ex.lock);
    wake();
    return PX_OK;
}

void executor_snapshot(struct health_report *h, char **info_json)
{
    pthread_mutex_lock(&ex.lock);
    h->zygote_state = ex.snap.zygote_state;
    h->zygote_pid = ex.snap.zygote_pid;
    h->zygote_restarts = ex.snap.zygote_restarts;
    h->workers_max = ex.snap.workers_max;
    h->running = ex.snap.running;
    h->pool_target = ex.snap.pool_target;
    h->pool_ready = ex.snap.pool_ready;
    h->pool_starting = ex.snap.pool_starting;
    h->queue_depth = ex.snap.queue_depth;
    h->queue_max = ex.snap.queue_max;
    h->layers = ex.snap.layers;
    h->layers_known = ex.snap.layers_known;
    h->executions = ex.snap.executions;
    h->deadline_kills = ex.snap.deadline_kills;
    h->worker_crashes = ex.snap.worker_crashes;
    h->setup_failures = ex.snap.setup_failures;
    *info_json = ex.snap_info ? strdup(ex.snap_info) : NULL;
    pthread_mutex_unlock(&ex.lock);
}

void executor_stop(void)
{
    pthread_mutex_lock(&ex.lock);
    int was = ex.stopping;
    ex.stopping = 1;
    pthread_mutex_unlock(&ex.lock);
    if (was)
        return;
    wake();
    pthread_join(ex.thread, NULL);
}
