#define _GNU_SOURCE
#include "worker_link.h"
#include "../common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/block_report.h"
#include "../common/kill_as.h"
#include "../common/limits.h"
#include "clock.h"
#include "job.h"

static struct worker *workers;
static int epfd = -1;
static size_t output_cap;
static struct worker_stats stats;

void worker_link_init(int epoll_fd, size_t cap)
{
    epfd = epoll_fd;
    output_cap = cap;
}

/* The largest frame a busy worker may send: a block report holds the error text (the
 * runner keeps at most one output cap each of str(exc) and the traceback) and the images
 * (the runner keeps to the request's budget), plus framing. The server buffers a frame
 * whole, so this bounds what a hostile worker can make it hold. */
static uint32_t busy_frame_limit(void)
{
    size_t n = (size_t)LIMIT_IMAGE_BYTES_PER_REQUEST + 2 * output_cap + LIMIT_IPC_FRAMING_BYTES;
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* What the executor's loop may skip (it must not walk thousands of session workers at
 * every turn): no timer of any worker is due before timers_next unless timers_dirty (a
 * state changed since the last walk, which may have started a timer); no worker is
 * W_DEAD unless dead_seen. */
static int timers_dirty = 1;
static int64_t timers_next;
static int dead_seen;
static unsigned long gone_count;   /* moves into a worker_gone state so far */

unsigned long workers_gone_count(void)
{
    return gone_count;
}

/* Moves w to state s, keeping the pool's counters (idle, starting, running) right;
 * clients' session workers are counted by the sessions, a turn's while it runs. Also sets how large a frame w may send
 * in that state: nothing at all while it waits for a job. */
static void worker_set_state(struct worker *w, enum worker_state s)
{
    timers_dirty = 1;
    dead_seen |= s == W_DEAD;
    gone_count += (s == W_DEAD || s == W_UNKILLED) && !worker_gone(w);
    switch (w->state) {
    case W_STARTING: stats.starting--; break;
    case W_IDLE: stats.idle--; break;
    case W_BUSY: stats.running--; break;
    case W_SESSION_BUSY: stats.running -= w->counted; break;
    case W_UNKILLED: stats.running--; stats.unkilled--; break;
    default: break;
    }
    w->state = s;
    switch (s) {
    case W_STARTING: stats.starting++; break;
    case W_IDLE: stats.idle++; break;
    case W_BUSY: stats.running++; break;
    case W_SESSION_BUSY: stats.running += w->counted; break;
    case W_UNKILLED: stats.running++; stats.unkilled++; break;
    default: break;
    }
    w->rd.max_frame = s == W_STARTING ? LIMIT_IPC_SETUP_FRAME_BYTES
                    : worker_busy(w) ? busy_frame_limit() : 0;
}

/* SIGKILL through its pidfd; idempotent, and harmless once it has exited. Returns 0 when
 * it was sent (or the process is gone), -1 when the kernel refused it (w->kill_errno:
 * EPERM when the server lacks CAP_KILL over the worker's uid, as in a container that
 * dropped it). */
static int worker_kill(struct worker *w)
{
    if (w->pidfd < 0 || syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0) == 0 ||
        errno == ESRCH)
        return 0;
    w->kill_errno = errno;
    return -1;
}

/* Whether the process behind a pidfd has not ended yet (a pidfd is readable once it has). */
static int pidfd_alive(int pidfd)
{
    struct pollfd pf = {.fd = pidfd, .events = POLLIN};
    return pidfd >= 0 && poll(&pf, 1, 0) == 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* The cgroup v2 path in a /proc/PID/cgroup file ("0::PATH"), into buf; -1 when none. */
static int unified_path(const char *file, char *buf, size_t len)
{
    char line[PATH_MAX + 8];
    int found = -1;
    FILE *f = fopen(file, "re");
    if (!f)
        return -1;
    while (found < 0 && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        found = snprintf(buf, len, "%s", line + 3) < (int)len ? 0 : -1;
    }
    fclose(f);
    return found;
}

/* Ends every process of w's own cgroup v2 group through cgroup.kill (Linux 5.14), which
 * asks for no right over their uid, only write access to the file. Only a worker slot's
 * group (sandbox/cgroup.c names them pyexecd-*), never the server's own. Returns 0 when
 * written, -1 when there is no such group (cgroup v1, or no cgroup layer). */
static int cgroup_kill(struct worker *w)
{
    static const char *const roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
    char proc[64], theirs[PATH_MAX], mine[PATH_MAX], file[PATH_MAX + 64];
    snprintf(proc, sizeof(proc), "/proc/%d/cgroup", (int)w->pid);
    if (unified_path(proc, theirs, sizeof(theirs)) < 0 || !pidfd_alive(w->pidfd))
        return -1;   /* alive after the read: the file was its own, not a reused pid's */
    if (unified_path("/proc/self/cgroup", mine, sizeof(mine)) < 0)
        mine[0] = '\0';
    if (strcmp(theirs, mine) == 0 || !strstr(theirs, "/pyexecd-"))
        return -1;
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        snprintf(file, sizeof(file), "%s%s/cgroup.kill", roots[i], theirs);
        int fd = open(file, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = write(fd, "1", 1);
        close(fd);
        if (n == 1)
            return 0;
    }
    return -1;
}

/* A W_UNKILLED worker was seen to end: its slot is free now. */
static void worker_ended(struct worker *w)
{
    if (w->unkilled_escalated)
        fprintf(stderr, "pyexecd: worker %d, which could not be killed, has ended\n",
                (int)w->pid);
    close_fd(&w->pidfd);   /* closing removes it from the epoll set */
    worker_set_state(w, W_DEAD);
}

/* The real uid of w's process (from /proc, as this process sees uids), or -1. */
static long worker_uid(const struct worker *w)
{
    char path[64], line[256];
    long uid = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)w->pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    while (uid < 0 && fgets(line, sizeof(line), f))
        if (sscanf(line, "Uid: %ld", &uid) != 1)
            uid = -1;
    fclose(f);
    /* Still alive after the read: the file was its own, not a reused pid's. */
    return pidfd_alive(w->pidfd) ? uid : -1;
}

/* Ends a worker whose kill the kernel refused, another way: SIGKILL sent as its own uid
 * (common/kill_as.h), else its cgroup's cgroup.kill. Returns how, or NULL when neither
 * could be done. */
static const char *end_unkilled(struct worker *w)
{
    long uid = worker_uid(w);
    if (uid > 0 && kill_as_uid(w->pidfd, w->pid, (uid_t)uid) == 0)
        return "killed as its own uid";
    if (cgroup_kill(w) == 0)
        return "killed its cgroup (cgroup.kill)";
    return NULL;
}

/* A W_UNKILLED worker is past its grace: ended another way and said in the log; later,
 * if it still lives, said again (its slot stays taken until it ends). */
static void worker_unkilled_timer(struct worker *w, int64_t now)
{
    if (!pidfd_alive(w->pidfd)) {
        worker_ended(w);
        return;
    }
    if (w->unkilled_escalated == 0) {
        w->unkilled_escalated = 1;
        w->unkilled_until = now + LIMIT_UNKILLED_REPORT_MS;
        stats.kill_failures++;
        const char *how = end_unkilled(w);
        fprintf(stderr, "pyexecd: worker %d could not be killed (%s) and still runs: %s\n",
                (int)w->pid, strerror(w->kill_errno),
                how ? how : "no other way to end it worked; its slot stays taken until it "
                            "ends");
    } else if (w->unkilled_escalated == 1) {
        w->unkilled_escalated = 2;
        w->unkilled_until = INT64_MAX;
        fprintf(stderr, "pyexecd: worker %d still runs %d ms after it could not be killed; "
                "its slot stays taken until it ends\n", (int)w->pid, LIMIT_UNKILLED_REPORT_MS);
    }
}

int worker_add(pid_t pid, const int fds[4])
{
    struct worker *w = calloc(1, sizeof(*w));
    if (!w) {
        for (int i = 0; i < 4; i++)
            close(fds[i]);
        return -1;
    }
    w->pid = pid;
    w->sock = fds[0];
    w->out_fd = fds[1];
    w->err_fd = fds[2];
    w->pidfd = fds[3];
    w->state = W_DEAD;   /* worker_set_state counts from here */
    ipc_reader_init(&w->rd, LIMIT_IPC_FRAME_BYTES);
    worker_set_state(w, W_STARTING);
    w->announced_exit = -1;
    w->started_at = monotonic_ms();
    w->tag.source = EVENT_WORKER;
    w->tag.owner = w;
    fcntl(w->sock, F_SETFL, O_NONBLOCK);
    w->next = workers;
    workers = w;
    event_watch(epfd, w->sock, EPOLLIN, &w->tag, EPOLL_CTL_ADD);
    return 0;
}

struct worker *worker_find_idle(void)
{
    for (struct worker *w = workers; w; w = w->next)
        if (w->state == W_IDLE)
            return w;
    return NULL;
}

static int write_pending(struct worker *w);

/* Starts b with what w has still to write (a frame must not overtake one before it). */
static void put_pending(struct ipc_buf *b, const struct worker *w)
{
    if (w->wbuf && w->woff < w->wlen)
        ipc_put_raw(b, w->wbuf + w->woff, w->wlen - w->woff);
}

/* Hands b's bytes (pending ones first, see put_pending) to w's write buffer. */
static void set_pending(struct worker *w, struct ipc_buf *b)
{
    free(w->wbuf);
    w->wbuf = ipc_buf_detach(b, &w->wlen);
    w->woff = 0;
}

void worker_keep(struct worker *w, int counted)
{
    w->kept = 1;
    w->counted = counted;
    worker_set_state(w, W_SESSION_IDLE);
    /* Tells it that it serves a session: it stops pre-faulting (prefault.h), whose pages
     * would stay with the session for its whole life. Out of memory: it just goes on. */
    struct ipc_buf b;
    ipc_buf_init(&b);
    put_pending(&b, w);
    ipc_frame_end(&b, ipc_frame_begin(&b, IPC_W_KEEP));
    if (b.failed) {
        ipc_buf_release(&b);
        return;
    }
    set_pending(w, &b);
    /* Sent now, before the reply's work (its smaps_rollup read takes milliseconds, in
     * which the worker would go on copying pages). A failed socket is left to the event
     * loop, which watches it and handles a worker found gone there. */
    (void)write_pending(w);
}

void worker_discard(struct worker *w, enum px_result r, const char *message)
{
    if (worker_gone(w))
        return;
    struct job *job = w->job;
    int refused = worker_kill(w) < 0;
    close_fd(&w->sock);   /* closing removes it from the epoll set */
    close_fd(&w->out_fd);
    close_fd(&w->err_fd);
    ipc_reader_release(&w->rd);
    free(w->wbuf);
    w->wbuf = NULL;
    if (refused && pidfd_alive(w->pidfd)) {
        /* It may live on: its slot stays taken until its pidfd says it ended. An idle
         * one exits by itself now that its socket is closed; code past its deadline
         * does not, and is ended another way at once. */
        worker_set_state(w, W_UNKILLED);
        w->unkilled_until = monotonic_ms() + (w->kill_urgent ? 0 : LIMIT_UNKILLED_GRACE_MS);
        event_watch(epfd, w->pidfd, EPOLLIN, &w->tag, EPOLL_CTL_ADD);
    } else {
        close_fd(&w->pidfd);
        worker_set_state(w, W_DEAD);
    }
    if (job)
        job_fail(job, r, message);
}

void workers_abandon_unkilled(void)
{
    for (struct worker *w = workers; w; w = w->next) {
        if (w->state != W_UNKILLED)
            continue;
        if (pidfd_alive(w->pidfd) && !end_unkilled(w))
            fprintf(stderr, "pyexecd: worker %d could not be killed and is left running\n",
                    (int)w->pid);
        close_fd(&w->pidfd);
        worker_set_state(w, W_DEAD);
    }
}

void workers_discard_all(enum px_result r, const char *message, const char *end_reason)
{
    for (struct worker *w = workers; w; w = w->next) {
        if (worker_gone(w))
            continue;
        w->end_reason = end_reason;
        worker_discard(w, r, message);
    }
}

void workers_free_dead(void)
{
    if (!dead_seen)
        return;
    dead_seen = 0;
    struct worker **pp = &workers;
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
    for (struct worker *w = workers; w; w = w->next)
        if (w->pid == pid && w->state != W_DEAD)
            return w;
    return NULL;
}

/* The worker died mid-job (how: NULL when unknown): the running block fails with the
 * reason, later ones do not run, and the job is answered. The caller discards w. */
static void worker_finish_crashed(struct worker *w, const struct worker_exit *how)
{
    struct job *job = w->job;
    if (!job)
        return;
    char reason[160];
    enum block_end end = BLOCK_END_CRASH;
    enum limit_hit limit = LIMIT_HIT_NONE;
    if (how && WIFEXITED(how->status) && WEXITSTATUS(how->status) == 0) {
        end = BLOCK_END_OK;   /* os._exit(0): it asked to stop */
        reason[0] = '\0';
    } else {
        limit = job_describe_death(how, reason, sizeof(reason));
        stats.crashes++;
    }
    if (w->kept) {
        /* The interpreter is gone, and with it the session. */
        job->res->session_ended = 1;
        w->end_reason = end == BLOCK_END_OK ? "its interpreter exited"
                                            : "its interpreter crashed or was stopped";
    }
    if (job->block < job->res->nblocks) {
        if (job_block_result(job, w->out_fd, w->err_fd, end, reason, strlen(reason), 0,
                             -1, -1) < 0) {
            job_fail(job, PX_NOMEM, "Out of memory while building the reply.");
            return;
        }
        if (end == BLOCK_END_CRASH)
            job_limit_hit(job, limit);
        job->block++;
    }
    job_finish(job, NULL);
}

/* The running block passed its deadline: kills the worker, answers its job (the block
 * DEADLINE_EXCEEDED with what it printed, later blocks not run), discards it. */
static void worker_deadline_expired(struct worker *w)
{
    struct job *job = w->job;
    w->kill_urgent = 1;   /* should the kill be refused, its code would run on */
    worker_kill(w);   /* from outside: a C loop that ignores signals dies all the same */
    stats.deadline_kills++;
    if (job->block < job->res->nblocks) {
        if (job_block_result(job, w->out_fd, w->err_fd, BLOCK_END_DEADLINE, NULL, 0, 0, -1,
                             -1) < 0) {
            worker_discard(w, PX_NOMEM, "Out of memory while building the reply.");
            return;
        }
        job_limit_hit(job, LIMIT_HIT_DEADLINE);
        job->block++;
        if (w->kept)
            w->end_reason = "a code block ran past its deadline and its interpreter was "
                            "stopped";
    } else if (w->kept) {
        /* Every block reported, but the job never said it was done (a thread of the code
         * held the interpreter, or the code forged the last report): the results stand. */
        w->end_reason = "its interpreter did not finish its last execution in time";
    }
    if (w->kept)
        job->res->session_ended = 1;
    /* Discarded before the answer, so that the state published with it already counts
     * the worker as ending (a refused kill: still running) and not a session's idle one. */
    job->worker = NULL;
    w->job = NULL;
    worker_discard(w, PX_INTERNAL, NULL);
    job_finish(job, NULL);
}

/* The worker broke the protocol (or the code wrote garbage to its socket). */
static void worker_protocol_error(struct worker *w, const char *what)
{
    log_msg(LOG_WARN, "worker %d: %s", (int)w->pid, what);
    w->kill_urgent = 1;   /* it does not play by the protocol: it may not exit either */
    worker_kill(w);
    worker_finish_crashed(w, NULL);
    worker_discard(w, PX_INTERNAL, NULL);
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
    enum block_end end = status == BLOCK_STATUS_EXCEPTION ? BLOCK_END_EXCEPTION : BLOCK_END_OK;
    if (job_block_result(job, w->out_fd, w->err_fd, end, (const char *)error, error_len,
                         flags, out_end > INT64_MAX ? -1 : (int64_t)out_end,
                         err_end > INT64_MAX ? -1 : (int64_t)err_end) < 0) {
        worker_protocol_error(w, "out of memory");
        return;
    }
    for (uint32_t i = 0; i < nimages; i++) {
        size_t mime_len, data_len;
        const unsigned char *mime = ipc_get_bytes(&c, &mime_len);
        const unsigned char *data = ipc_get_bytes(&c, &data_len);
        if (c.failed)
            break;
        job_keep_image(job, mime, mime_len, data, data_len);
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
    job->deadline = monotonic_ms() + job->settings.deadline_ms;   /* each block has its own */
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

/* The job ran every block: a session's worker waits for the next, any other goes. */
static void handle_job_done(struct worker *w)
{
    struct job *job = w->job;
    if (w->kept) {
        worker_set_state(w, W_SESSION_IDLE);
        w->jobs_done++;
        w->idle_since = monotonic_ms();
        w->idle_since_wall = wall_ms();
        job_finish(job, NULL);
    } else {
        job_finish(job, NULL);
        worker_discard(w, PX_INTERNAL, NULL);   /* it exits by itself; the kill makes sure */
    }
}

/* The worker could not write input file `index` (errno `err`) and ran nothing. The call
 * is answered with a 400 naming the file; a session keeps its worker, and the numbers
 * of the refused files go to the next call's. The name comes from the server's own
 * request, never from the frame: a frame forged by the code can at most fail its own
 * call. */
static void handle_job_refused(struct worker *w, const unsigned char *p, uint32_t len)
{
    uint32_t why[2];
    struct job *job = w->job;
    const struct exec_request *req = job->req;
    if (len != sizeof(why) || job->block != 0) {
        worker_protocol_error(w, "unexpected JOB_REFUSED");
        return;
    }
    memcpy(why, p, sizeof(why));
    if (why[0] >= req->nfiles) {
        worker_protocol_error(w, "JOB_REFUSED names no input file");
        return;
    }
    w->next_file -= (unsigned)req->nfiles;
    char msg[400];
    unsigned number = w->next_file + why[0];
    enum px_result r = PX_INVALID_ARGUMENT;
    if (why[1] == EEXIST || why[1] == ELOOP)
        snprintf(msg, sizeof(msg),
                 "Input file input_file_%u.%s cannot be written: the session's code already "
                 "made a file or link of that name in its working directory. Nothing ran; the "
                 "session is kept. Remove or rename that file, then send the call again.",
                 number, req->files[why[0]].ext);
    else if (why[1] == ENOSPC || why[1] == EDQUOT || why[1] == EFBIG) {
        r = PX_TOO_LARGE;
        snprintf(msg, sizeof(msg),
                 "Input file input_file_%u.%s does not fit in the working directory (%zu "
                 "bytes): its files are over the work area's size limit. Nothing ran; the "
                 "session is kept. Remove files there, then send the call again.",
                 number, req->files[why[0]].ext, req->files[why[0]].len);
    } else
        snprintf(msg, sizeof(msg),
                 "Input file input_file_%u.%s cannot be written: %s. Nothing ran.",
                 number, req->files[why[0]].ext, strerror((int)why[1]));
    if (w->kept) {
        worker_set_state(w, W_SESSION_IDLE);
        w->idle_since = monotonic_ms();
        w->idle_since_wall = wall_ms();
        job_fail(job, r, msg);
    } else {
        worker_discard(w, r, msg);
    }
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
        memcpy(&stats.layers, p, sizeof(uint32_t));
        stats.layers_known = 1;
        worker_set_state(w, W_IDLE);
        log_msg(LOG_DEBUG, "worker %d ready after %lld ms", (int)w->pid,
                (long long)(monotonic_ms() - w->started_at));
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
        log_msg(LOG_WARN, "worker %d could not sandbox itself: %s", (int)w->pid, why);
        stats.setup_failures++;
        stats.spawn_retry_at = monotonic_ms() + LIMIT_SPAWN_RETRY_MS;
        worker_discard(w, PX_INTERNAL, NULL);
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
        }
        handle_job_done(w);
        return;
    case IPC_W_ENDING:
        if (len != sizeof(uint32_t)) {
            worker_protocol_error(w, "malformed ENDING");
            return;
        }
        memcpy(&w->announced_exit, p, sizeof(uint32_t));
        return;
    case IPC_W_JOB_REFUSED:
        if (!worker_busy(w) || !w->job) {
            worker_protocol_error(w, "JOB_REFUSED without a job");
            return;
        }
        handle_job_refused(w, p, len);
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
        w->exit_wait_until = monotonic_ms() + LIMIT_EXIT_STATUS_WAIT_MS;
    } else if (w->state != W_DEAD && w->state != W_EXITING) {
        worker_discard(w, PX_INTERNAL, NULL);
    }
}

/* Reads everything the worker sent; returns when the socket has nothing more. */
static void worker_read(struct worker *w)
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

/* Writes what w has pending: 0 when all is written (the buffer freed), 1 when the rest
 * waits for EPOLLOUT, -1 when the socket failed (errno). */
static int write_pending(struct worker *w)
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
            event_watch(epfd, w->sock, EPOLLIN | EPOLLOUT, &w->tag, EPOLL_CTL_MOD);
            return 1;
        }
        return -1;
    }
    free(w->wbuf);
    w->wbuf = NULL;
    w->wlen = w->woff = 0;
    event_watch(epfd, w->sock, EPOLLIN, &w->tag, EPOLL_CTL_MOD);
    return 0;
}

static void flush_write(struct worker *w)
{
    if (write_pending(w) < 0)
        worker_lost(w);
}

void worker_on_event(struct worker *w, uint32_t events)
{
    if (w->state == W_UNKILLED) {   /* its pidfd: it has ended */
        if (!pidfd_alive(w->pidfd))
            worker_ended(w);
        return;
    }
    if (w->state == W_DEAD || w->sock < 0)
        return;
    if ((events & EPOLLOUT) && w->wbuf)
        flush_write(w);
    if (w->state != W_DEAD && w->sock >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        worker_read(w);
}

void worker_on_exited(pid_t pid, const struct worker_exit *how)
{
    struct worker *w = worker_find(pid);
    if (!w)
        return;
    if (w->state == W_UNKILLED) {   /* the zygote reaped it */
        worker_ended(w);
        return;
    }
    if (w->sock >= 0)
        worker_read(w);   /* frames it sent before dying come first */
    if (w->state == W_DEAD)
        return;
    struct worker_exit named = *how;
    named.announced = w->announced_exit;
    worker_finish_crashed(w, &named);
    worker_discard(w, PX_INTERNAL, NULL);
}

int worker_start_job(struct worker *w, struct job *job)
{
    unsigned first_file = w->next_file;
    const struct exec_request *req = job->req;
    struct ipc_buf b;
    ipc_buf_init(&b);
    put_pending(&b, w);
    size_t start = ipc_frame_begin(&b, IPC_W_JOB);
    ipc_put_u32(&b, req->fidelity);
    ipc_put_u32(&b, (uint32_t)req->nfiles);
    for (size_t i = 0; i < req->nfiles; i++) {
        char name[64];
        snprintf(name, sizeof(name), "input_file_%zu.%s", first_file + i, req->files[i].ext);
        ipc_put_bytes(&b, name, strlen(name));
        ipc_put_bytes(&b, req->files[i].data, req->files[i].len);
    }
    ipc_put_u32(&b, (uint32_t)req->ncodes);
    for (size_t i = 0; i < req->ncodes; i++)
        ipc_put_bytes(&b, req->codes[i], req->code_lens[i]);
    ipc_frame_end(&b, start);
    if (b.failed || job_attach(job, w) < 0) {
        ipc_buf_release(&b);
        return -1;
    }
    set_pending(w, &b);
    w->next_file += (unsigned)req->nfiles;
    worker_set_state(w, w->kept ? W_SESSION_BUSY : W_BUSY);
    /* A session's capture files would otherwise grow over its whole life, up to the
     * file-size limit; between calls nothing writes to them, so they can be emptied. */
    if (w->kept && (ftruncate(w->out_fd, 0) < 0 || ftruncate(w->err_fd, 0) < 0))
        log_msg(LOG_WARN, "cannot empty a session's capture files: %s",
                strerror(errno));
    job_mark_captures(job, w->out_fd, w->err_fd);
    flush_write(w);
    return 0;
}

/* When w's next timer is due (INT64_MAX: none). Deadlines and waits only move later
 * without a state change (a session's next block, an unkilled worker's next report). */
static int64_t worker_due(const struct worker *w)
{
    if (worker_busy(w) && w->job)
        return w->job->deadline;
    switch (w->state) {
    case W_UNKILLED: return w->unkilled_until;
    case W_EXITING: return w->exit_wait_until;
    case W_STARTING: return w->started_at + LIMIT_WORKER_START_TIMEOUT_MS;
    default: return INT64_MAX;
    }
}

void workers_check_timers(int64_t now)
{
    if (!timers_dirty && now < timers_next)
        return;
    timers_dirty = 0;   /* a state changed by what is done below sets it again */
    int64_t next = INT64_MAX;
    for (struct worker *w = workers; w; w = w->next) {
        if (worker_busy(w) && w->job && now >= w->job->deadline) {
            /* Reports it sent meanwhile come first: the block may have ended in time. */
            worker_read(w);
            if (worker_busy(w) && w->job && now >= w->job->deadline)
                worker_deadline_expired(w);
        } else if (w->state == W_UNKILLED && now >= w->unkilled_until) {
            worker_unkilled_timer(w, now);
        } else if (w->state == W_EXITING && now >= w->exit_wait_until) {
            worker_finish_crashed(w, NULL);
            worker_discard(w, PX_INTERNAL, NULL);
        } else if (w->state == W_STARTING &&
                   now - w->started_at >= LIMIT_WORKER_START_TIMEOUT_MS) {
            log_msg(LOG_WARN, "worker %d did not become ready; killed", (int)w->pid);
            stats.setup_failures++;
            worker_discard(w, PX_INTERNAL, NULL);
        }
        int64_t due = worker_due(w);
        if (due < next)
            next = due;
    }
    timers_next = next;
}

int64_t workers_next_timer(int64_t next)
{
    if (timers_dirty)
        return next < monotonic_ms() ? next : monotonic_ms();   /* walk at the next turn */
    return timers_next < next ? timers_next : next;
}

void workers_stats(struct worker_stats *st)
{
    *st = stats;
}
