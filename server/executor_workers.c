/* The executor's side of each worker: its socket and frames, its job, and what its
 * reports (or its death, or its deadline) make of each code block's result. */
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
#include "executor_internal.h"

/* The largest frame a busy worker may send: a block report holds the error text (the
 * runner keeps at most one output cap each of str(exc) and the traceback) and the images
 * (the runner keeps to the request's budget), plus framing. The server buffers a frame
 * whole, so this bounds what a hostile worker can make it hold. */
static uint32_t busy_frame_limit(void)
{
    size_t n = (size_t)LIMIT_IMAGE_BYTES_PER_REQUEST + 2 * ex.cfg.output_bytes + 1024 * 1024;
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* Moves w to state s, keeping the pool's counters (idle, starting, running) right;
 * session workers are counted by the sessions. Also sets how large a frame w may send
 * in that state: nothing at all while it waits for a job. */
void worker_set_state(struct worker *w, enum worker_state s)
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
    w->rd.max_frame = s == W_STARTING ? LIMIT_IPC_SETUP_FRAME_BYTES
                    : worker_busy(w) ? busy_frame_limit() : 0;
}

void worker_kill(struct worker *w)
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
void worker_discard(struct worker *w)
{
    struct session *s = w->session;
    w->session = NULL;
    if (s)
        sessions_worker_gone(s, w->end_reason);
    worker_kill(w);
    close_fd(&w->sock);   /* closing removes it from the epoll set */
    close_fd(&w->out_fd);
    close_fd(&w->err_fd);
    close_fd(&w->pidfd);
    ipc_reader_release(&w->rd);
    free(w->wbuf);
    w->wbuf = NULL;
    w->job = NULL;
    worker_set_state(w, W_DEAD);
}

void workers_free_dead(void)
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

static struct worker *worker_find(pid_t pid)
{
    for (struct worker *w = ex.workers; w; w = w->next)
        if (w->pid == pid && w->state != W_DEAD)
            return w;
    return NULL;
}

/* Frees the job; a request's job also leaves the admission count (session operations
 * never entered it). */
static void job_answered(struct job *job)
{
    int counted = job->kind == JOB_EXECUTE;
    free(job);
    if (!counted)
        return;
    pthread_mutex_lock(&ex.lock);
    ex.admitted--;
    pthread_mutex_unlock(&ex.lock);
}

/* Answers a job that produced no block results (503 and the like). */
void job_fail(struct job *job, enum px_result r, const char *message)
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
    job_answered(job);
}

static void job_limit_hit(struct job *job, enum limit_hit l)
{
    /* What ended the interpreter or the block says more than output or image limits:
     * it wins. */
    int minor = l == LIMIT_HIT_OUTPUT || l == LIMIT_HIT_IMAGES;
    if (job->res->limit == LIMIT_HIT_NONE || !minor)
        job->res->limit = l;
}

/* Fills the blocks from `from` on as not run and answers the job. */
static void job_complete(struct job *job, size_t from)
{
    struct exec_result *res = job->res;
    for (size_t i = from; i < res->nblocks; i++) {
        struct block_output_input in = {.end = BLOCK_END_NOT_RUN, .out.fd = -1, .err.fd = -1};
        int truncated = 0;
        if (block_output_build(&res->blocks[i], &in, &truncated) < 0) {
            job_fail(job, PX_NOMEM, "Out of memory while building the reply.");
            return;
        }
    }
    res->status = PX_OK;
    job->res = NULL;
    ex.executions++;
    job->done(job->ctx, res);
    job_answered(job);
}

/* Where a block's output ends: as the worker reported it (it runs ahead of us), kept
 * within what the file holds and not before where the block began. A negative report
 * means "now" (the worker was killed or died). */
static off_t clamp_end(int fd, off_t mark, int64_t reported)
{
    off_t size = ex_file_size(fd);
    off_t end = reported < 0 || reported > size ? size : (off_t)reported;
    return end < mark ? mark : end;
}

/* What is left of the request's output budget (at least one full block's worth). */
static size_t request_output_left(const struct job *job)
{
    size_t budget = LIMIT_OUTPUT_BYTES_PER_REQUEST;
    if (budget < 3 * ex.cfg.output_bytes)
        budget = 3 * ex.cfg.output_bytes;   /* stdout, stderr and the error of one block */
    return job->output_bytes < budget ? budget - job->output_bytes : 0;
}

/* Builds the running block's result from the capture files and the given ending.
 * out_report/err_report: the worker's report, or -1 for "whatever is there now". */
static int worker_finish_block(struct worker *w, enum block_end end, const char *error,
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
        .out_truncated = (flags & BLOCK_FLAG_STDOUT_FULL) ? TRUNCATED_FULL
                       : (flags & BLOCK_FLAG_STDOUT_TRUNCATED) ? TRUNCATED_CAP : TRUNCATED_NONE,
        .err_truncated = (flags & BLOCK_FLAG_STDERR_FULL) ? TRUNCATED_FULL
                       : (flags & BLOCK_FLAG_STDERR_TRUNCATED) ? TRUNCATED_CAP : TRUNCATED_NONE,
        .error_text = error,
        .error_len = error_len,
        .cap = ex.cfg.output_bytes,
        .budget = request_output_left(job),
        .failed_stdout = ex.cfg.failed_stdout,
    };
    int truncated = 0;
    struct block_result *b = &job->res->blocks[job->block];
    if (block_output_build(b, &in, &truncated) < 0)
        return -1;
    for (size_t i = 0; i < b->nentries; i++)
        job->output_bytes += b->entries[i].output_len;
    if (truncated)
        job_limit_hit(job, LIMIT_HIT_OUTPUT);
    job->out_mark = out_end;
    job->err_mark = err_end;
    return 0;
}

/* Describes how a worker died, for the FAILED output, and which limit that was. */
static enum limit_hit describe_death(const struct worker_exit *how, char *buf, size_t len)
{
    if (!how) {
        snprintf(buf, len, "The interpreter process ended unexpectedly.\n");
        return LIMIT_HIT_CRASH;
    }
    if (!WIFSIGNALED(how->status)) {
        snprintf(buf, len, "The interpreter process exited with status %d.\n",
                 WEXITSTATUS(how->status));
        return LIMIT_HIT_CRASH;
    }
    int sig = WTERMSIG(how->status);
    enum limit_hit limit = LIMIT_HIT_CRASH;
    const char *why;
    switch (sig) {
    case SIGSYS: why = "it made a system call the sandbox forbids"; limit = LIMIT_HIT_SYSCALL; break;
    case SIGXCPU: why = "it used up its CPU time limit"; limit = LIMIT_HIT_CPU_TIME; break;
    case SIGXFSZ: why = "it wrote past its file size limit"; limit = LIMIT_HIT_FILE_SIZE; break;
    case SIGKILL:
        /* Not ours (we answer our own kills without waiting for the status): the OOM
         * killer, RLIMIT_CPU's hard limit (pid 1 of a namespace never sees the SIGXCPU
         * before it), or someone on the host. */
        if (how->oom_killed) {
            why = "it ran out of memory";
            limit = LIMIT_HIT_MEMORY;
        } else if (how->cpu_limit_s && how->cpu_ms + 1000 >= how->cpu_limit_s * 1000ull) {
            why = "it used up its CPU time limit";
            limit = LIMIT_HIT_CPU_TIME;
        } else {
            why = "it was killed from outside the sandbox";
        }
        break;
    case SIGSEGV: why = "segmentation fault"; break;
    case SIGABRT: why = "aborted"; break;
    case SIGBUS: why = "bus error"; break;
    case SIGFPE: why = "arithmetic error"; break;
    default: why = "killed by a signal";
    }
    snprintf(buf, len, "The interpreter process was stopped: %s (signal %d, SIG%s).\n", why,
             sig, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    return limit;
}

/* The worker died mid-job: the running block fails with the reason, later ones do not run. */
void worker_finish_crashed(struct worker *w, const struct worker_exit *how)
{
    struct job *job = w->job;
    w->job = NULL;
    if (!job)
        return;
    char reason[160];
    enum block_end end = BLOCK_END_CRASH;
    enum limit_hit limit = LIMIT_HIT_NONE;
    if (how && WIFEXITED(how->status) && WEXITSTATUS(how->status) == 0) {
        end = BLOCK_END_OK;   /* os._exit(0): it asked to stop */
        reason[0] = '\0';
    } else {
        limit = describe_death(how, reason, sizeof(reason));
        ex.crashes++;
    }
    if (w->session) {
        /* The interpreter is gone, and with it the session. */
        job->res->session_ended = 1;
        w->end_reason = end == BLOCK_END_OK ? "its interpreter exited"
                                            : "its interpreter crashed or was stopped";
    }
    if (job->block < job->res->nblocks) {
        /* w->job is detached; worker_finish_block reads through w, so reattach for the call. */
        w->job = job;
        int rc = worker_finish_block(w, end, reason, strlen(reason), 0, -1, -1);
        w->job = NULL;
        if (rc < 0) {
            job_fail(job, PX_NOMEM, "Out of memory while building the reply.");
            return;
        }
        if (end == BLOCK_END_CRASH)
            job_limit_hit(job, limit);
        job->block++;
    }
    job_complete(job, job->block);
}

void worker_deadline_expired(struct worker *w)
{
    struct job *job = w->job;
    worker_kill(w);   /* from outside: a C loop that ignores signals dies all the same */
    ex.deadline_kills++;
    if (job->block >= job->res->nblocks) {
        /* Every block reported, but the job never said it was done (a thread of the code
         * held the interpreter, or the code forged the last report): the results stand. */
        if (w->session) {
            job->res->session_ended = 1;
            w->end_reason = "its interpreter did not finish its last execution in time";
        }
        w->job = NULL;
        worker_discard(w);
        job_complete(job, job->res->nblocks);
        return;
    }
    if (worker_finish_block(w, BLOCK_END_DEADLINE, NULL, 0, 0, -1, -1) < 0) {
        w->job = NULL;
        worker_discard(w);
        job_fail(job, PX_NOMEM, "Out of memory while building the reply.");
        return;
    }
    job_limit_hit(job, LIMIT_HIT_DEADLINE);
    if (w->session) {
        job->res->session_ended = 1;
        w->end_reason = "a code block ran past its deadline and its interpreter was stopped";
    }
    w->job = NULL;
    worker_discard(w);
    job_complete(job, job->block + 1);
}

/* The worker broke the protocol (or the code wrote garbage to its socket). */
static void worker_protocol_error(struct worker *w, const char *what)
{
    fprintf(stderr, "pyexecd: worker %d: %s\n", (int)w->pid, what);
    worker_kill(w);
    if (w->job)
        worker_finish_crashed(w, NULL);
    worker_discard(w);
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
    if (worker_finish_block(w, end, (const char *)error, error_len, flags,
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
        if (!m || data_len > LIMIT_IMAGE_BYTES ||
            job->image_bytes + data_len > LIMIT_IMAGE_BYTES_PER_REQUEST) {
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
        job->image_bytes += data_len;
        b->nimages++;
    }
    if (flags & BLOCK_FLAG_IMAGES_DROPPED)
        job_limit_hit(job, LIMIT_HIT_IMAGES);
    static const struct {
        unsigned flag;
        enum limit_hit limit;
    } limit_flags[] = {
        {BLOCK_FLAG_LIMIT_MEMORY, LIMIT_HIT_MEMORY}, {BLOCK_FLAG_LIMIT_DISK, LIMIT_HIT_DISK},
        {BLOCK_FLAG_LIMIT_FILE_SIZE, LIMIT_HIT_FILE_SIZE},
        {BLOCK_FLAG_LIMIT_THREADS, LIMIT_HIT_THREADS},
        {BLOCK_FLAG_LIMIT_OPEN_FILES, LIMIT_HIT_OPEN_FILES},
    };
    for (size_t i = 0; i < sizeof(limit_flags) / sizeof(limit_flags[0]); i++)
        if ((flags & limit_flags[i].flag) && status == BLOCK_STATUS_EXCEPTION)
            job_limit_hit(job, limit_flags[i].limit);

    job->block++;
    job->deadline = ex_now_ms() + ex.cfg.deadline_ms;   /* each block has its own deadline */
}

/* Copies what a worker sent into buf for the log: printable ASCII kept, anything else
 * (newlines, escape sequences, other bytes) as \xNN, cut to fit. A worker is untrusted
 * from its fork on, and must not be able to forge lines of the server's log. */
static void log_safe_copy(char *buf, size_t size, const unsigned char *p, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < size; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
            buf[o++] = (char)p[i];
        else
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", p[i]);
    }
    buf[o] = '\0';
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
        worker_set_state(w, W_IDLE);
        return;
    case IPC_W_SETUP_FAILED: {
        /* Only a worker still setting up can fail its set-up; from any other it is the
         * code talking, and neither its text nor the counter may be believed. */
        if (w->state != W_STARTING) {
            worker_protocol_error(w, "unexpected SETUP_FAILED");
            return;
        }
        char why[401];
        log_safe_copy(why, sizeof(why), p, len);
        fprintf(stderr, "pyexecd: worker %d could not sandbox itself: %s\n", (int)w->pid, why);
        ex.setup_failures++;
        ex.spawn_retry_at = ex_now_ms() + SPAWN_RETRY_MS;
        worker_discard(w);
        return;
    }
    case IPC_W_BLOCK_DONE:
        if (!worker_busy(w) || !w->job) {
            worker_protocol_error(w, "block report without a job");
            return;
        }
        handle_block_done(w, p, len);
        return;
    case IPC_W_JOB_DONE:
        if (!worker_busy(w) || !w->job || w->job->block != w->job->res->nblocks) {
            worker_protocol_error(w, "early JOB_DONE");
            return;
        } else {
            struct job *job = w->job;
            w->job = NULL;
            if (w->session) {
                /* A session's interpreter waits for its next execution. */
                worker_set_state(w, W_SESSION_IDLE);
                sessions_execution_done(w->session);
            } else {
                worker_discard(w);   /* it exits by itself; the kill makes sure of it */
            }
            job_complete(job, job->block);
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
    if (worker_busy(w) && w->job) {
        /* The capture files stay open: the answer needs what it printed. */
        close_fd(&w->sock);
        worker_set_state(w, W_EXITING);
        w->exit_wait_until = ex_now_ms() + EXIT_STATUS_WAIT_MS;
    } else if (w->state != W_DEAD && w->state != W_EXITING) {
        worker_discard(w);
    }
}

/* Reads everything the worker sent; returns when the socket has nothing more. */
void worker_read(struct worker *w)
{
    for (;;) {
        ssize_t n = ipc_reader_fill(&w->rd, w->sock);
        if (n > 0) {
            drain_frames(w);
            if (w->state == W_DEAD || w->sock < 0)
                return;
            /* A worker waiting for a job has nothing to say: bytes from it are the code
             * (a thread left running in a session) writing to the socket. */
            if ((w->state == W_IDLE || w->state == W_SESSION_IDLE) && w->rd.len > 0) {
                worker_protocol_error(w, "sent data while waiting for a job");
                return;
            }
            ipc_reader_shrink(&w->rd);
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
            ex_epoll_watch(w->sock, EPOLLIN | EPOLLOUT, &w->tag, EPOLL_CTL_MOD);
            return;
        }
        worker_lost(w);
        return;
    }
    free(w->wbuf);
    w->wbuf = NULL;
    w->wlen = w->woff = 0;
    ex_epoll_watch(w->sock, EPOLLIN, &w->tag, EPOLL_CTL_MOD);
}

void worker_on_event(struct worker *w, uint32_t events)
{
    if (w->state == W_DEAD || w->sock < 0)
        return;
    if ((events & EPOLLOUT) && w->wbuf)
        flush_write(w);
    if (w->state != W_DEAD && w->sock >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        worker_read(w);
}

/* The zygote reaped a worker. */
void worker_on_exited(pid_t pid, const struct worker_exit *how)
{
    struct worker *w = worker_find(pid);
    if (!w)
        return;
    if (w->sock >= 0)
        worker_read(w);   /* frames it sent before dying come first */
    if (w->state == W_DEAD)
        return;
    if (w->job)
        worker_finish_crashed(w, how);
    worker_discard(w);
}

int worker_start_job(struct worker *w, struct job *job)
{
    const struct exec_request *req = job->req;
    struct ipc_buf b;
    ipc_buf_init(&b);
    size_t start = ipc_frame_begin(&b, IPC_W_JOB);
    ipc_put_u32(&b, (uint32_t)req->nfiles);
    /* In a session, input files keep counting from the earlier requests' ones. */
    unsigned first = w->session ? sessions_claim_files(w->session, (unsigned)req->nfiles) : 0;
    for (size_t i = 0; i < req->nfiles; i++) {
        char name[64];
        const char *ext = strrchr(req->files[i].name, '.');
        snprintf(name, sizeof(name), "input_file_%zu%s", first + i, ext ? ext : "");
        ipc_put_bytes(&b, name, strlen(name));
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
    worker_set_state(w, w->session ? W_SESSION_BUSY : W_BUSY);
    job->block = 0;
    /* A session's capture files would otherwise grow over its whole life, up to the
     * file-size limit; between calls nothing writes to them, so they can be emptied. */
    if (w->session && (ftruncate(w->out_fd, 0) < 0 || ftruncate(w->err_fd, 0) < 0))
        fprintf(stderr, "pyexecd: cannot empty a session's capture files: %s\n",
                strerror(errno));
    job->out_mark = ex_file_size(w->out_fd);
    job->err_mark = ex_file_size(w->err_fd);
    job->deadline = ex_now_ms() + ex.cfg.deadline_ms;
    flush_write(w);
    return 0;
}

