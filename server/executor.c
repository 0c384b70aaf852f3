/* The executor's thread and public face: its loop, the queue and dispatch, timers, the
 * health snapshot, and the thread-safe entry points. */
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
#include "executor_internal.h"

struct executor_state ex;

int64_t ex_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

off_t ex_file_size(int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 ? st.st_size : 0;
}

void ex_epoll_watch(int fd, uint32_t events, struct tag *tag, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    if (epoll_ctl(ex.epfd, op, fd, &ev) < 0 && op != EPOLL_CTL_DEL)
        fprintf(stderr, "pyexecd: epoll_ctl: %s\n", strerror(errno));
}

/* Answers any queued or incoming job that will not run. */
static void fail_any(struct job *job, enum px_result r, const char *message)
{
    if (job->kind == JOB_EXECUTE)
        job_fail(job, r, message);
    else
        sessions_fail(job, r, message);
}

/* Moves submitted jobs in: requests and session creations join the queue; the other
 * session operations are answered (or started) at once. */
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
        if (job->kind != JOB_EXECUTE && sessions_take(job))
            continue;
        if (ex.queue_tail)
            ex.queue_tail->next = job;
        else
            ex.queue = job;
        ex.queue_tail = job;
    }
}

static struct job *pop_queue(void)
{
    struct job *job = ex.queue;
    if (job) {
        ex.queue = job->next;
        if (!ex.queue)
            ex.queue_tail = NULL;
        job->next = NULL;
    }
    return job;
}

/* Hands queued jobs, in order, to idle pool workers: a request while fewer than
 * `workers` run, a session creation whenever a worker is free (a session's executions
 * are bounded by the session limit instead). */
static void dispatch(void)
{
    while (ex.queue && ex.zstate == ZYGOTE_READY) {
        if (ex.queue->kind == JOB_EXECUTE && ex.running >= ex.cfg.workers)
            break;
        struct worker *w = NULL;
        for (struct worker *it = ex.workers; it; it = it->next)
            if (it->state == W_IDLE) {
                w = it;
                break;
            }
        if (!w)
            break;
        struct job *job = pop_queue();
        if (job->kind == JOB_SESSION_CREATE)
            sessions_create(job, w);
        else if (worker_start_job(w, job) < 0)
            job_fail(job, PX_NOMEM, "Out of memory while starting the execution.");
    }
    pool_ensure();
}

static void check_timers(void)
{
    int64_t now = ex_now_ms();
    for (struct worker *w = ex.workers; w; w = w->next) {
        if (worker_busy(w) && w->job && now >= w->job->deadline) {
            /* Reports it sent meanwhile come first: the block may have ended in time. */
            worker_read(w);
            if (worker_busy(w) && w->job && now >= w->job->deadline)
                worker_deadline_expired(w);
        }
        else if (w->state == W_EXITING && now >= w->exit_wait_until) {
            worker_finish_crashed(w, NULL);
            worker_discard(w);
        } else if (w->state == W_STARTING && now - w->started_at >= WORKER_START_TIMEOUT_MS) {
            fprintf(stderr, "pyexecd: worker %d did not become ready; killed\n", (int)w->pid);
            ex.setup_failures++;
            worker_discard(w);
        }
    }
    if (ex.zstate == ZYGOTE_STARTING && now - ex.zstarted_at >= ZYGOTE_START_TIMEOUT_MS)
        zygote_died("no HELLO before the start timeout");
    if (ex.zstate == ZYGOTE_DOWN && now >= ex.restart_at && !ex.stop_seen)
        zygote_start();
    /* Waiting requests must not hang on a zygote that does not come back, nor on
     * workers that never come. */
    int64_t max_wait = ex.zstate == ZYGOTE_READY ? (int64_t)ex.cfg.queue_wait_ms : ZYGOTE_WAIT_MS;
    while (ex.queue && now - ex.queue->queued_at >= max_wait)
        fail_any(pop_queue(), PX_UNAVAILABLE,
                 ex.zstate == ZYGOTE_READY
                     ? "No worker became free in time; retry shortly."
                     : "The execution environment is not available (its zygote process is "
                       "restarting); retry shortly.");
    sessions_reap(now);
}

/* Milliseconds until the next timer, for epoll_wait. */
static int next_timeout(void)
{
    int64_t now = ex_now_ms(), next = now + 1000;
    for (struct worker *w = ex.workers; w; w = w->next) {
        if (worker_busy(w) && w->job && w->job->deadline < next)
            next = w->job->deadline;
        if (w->state == W_EXITING && w->exit_wait_until < next)
            next = w->exit_wait_until;
    }
    if (ex.zstate == ZYGOTE_DOWN && ex.restart_at < next)
        next = ex.restart_at;
    if (ex.spawn_retry_at > now && ex.spawn_retry_at < next)
        next = ex.spawn_retry_at;
    if (ex.queue) {
        int64_t max_wait = ex.zstate == ZYGOTE_READY ? (int64_t)ex.cfg.queue_wait_ms : ZYGOTE_WAIT_MS;
        if (ex.queue->queued_at + max_wait < next)
            next = ex.queue->queued_at + max_wait;
    }
    int64_t expiry = sessions_next_expiry();
    if (expiry < next)
        next = expiry;
    return next <= now ? 0 : (int)(next - now);
}

void ex_publish_snapshot(void)
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
    h->sessions = ex.nsessions;
    h->sessions_max = ex.cfg.max_sessions;
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
    sessions_end_all();
    while ((job = pop_queue()))
        fail_any(job, PX_SHUTTING_DOWN, "The server is shutting down.");
    for (struct worker *w = ex.workers; w; w = w->next) {
        if (w->state == W_DEAD)
            continue;
        job = w->job;
        w->job = NULL;
        worker_discard(w);
        if (job)
            job_fail(job, PX_SHUTTING_DOWN, "The server is shutting down.");
    }
    workers_free_dead();
    zygote_stop(&ex.z, ZYGOTE_STOP_GRACE_MS);
    ex.zstate = ZYGOTE_STOPPED;
    ex_publish_snapshot();
}

static void *executor_main(void *arg)
{
    (void)arg;
    zygote_start();
    for (;;) {
        struct epoll_event evs[64];
        ex_publish_snapshot();
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
                    zygote_read();
                break;
            case TAG_ZYGOTE_EXIT:
                if (ex.z.pid > 0) {
                    /* Read what it said before dying (exit reports of its workers). */
                    zygote_read();
                    if (ex.z.pid > 0)
                        zygote_died("process exited");
                }
                break;
            case TAG_WORKER:
                worker_on_event(tag->w, evs[i].events);
                break;
            }
        }
        check_timers();
        take_incoming();
        dispatch();
        workers_free_dead();
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
    ex_epoll_watch(ex.wakefd, EPOLLIN, &ex.wake_tag, EPOLL_CTL_ADD);
    ex_publish_snapshot();
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

/* Hands a job to the executor thread. Requests count against the admission limit
 * (running plus queue); session creations against the session limit. */
static enum px_result submit(struct job *job)
{
    job->queued_at = ex_now_ms();
    pthread_mutex_lock(&ex.lock);
    enum px_result r = PX_OK;
    if (ex.stopping)
        r = PX_SHUTTING_DOWN;
    else if (job->kind == JOB_EXECUTE && ex.admitted >= ex.cfg.workers + ex.cfg.queue)
        r = PX_QUEUE_FULL;
    else if (job->kind == JOB_SESSION_CREATE && ex.sessions_reserved >= ex.cfg.max_sessions)
        r = PX_QUEUE_FULL;
    if (r != PX_OK) {
        pthread_mutex_unlock(&ex.lock);
        free(job);
        return r;
    }
    if (job->kind == JOB_EXECUTE)
        ex.admitted++;
    if (job->kind == JOB_SESSION_CREATE)
        ex.sessions_reserved++;
    if (ex.incoming_tail)
        ex.incoming_tail->next = job;
    else
        ex.incoming = job;
    ex.incoming_tail = job;
    pthread_mutex_unlock(&ex.lock);
    wake();
    return PX_OK;
}

static struct job *new_job(enum job_kind kind, const char *session_id, void *ctx)
{
    struct job *job = calloc(1, sizeof(*job));
    if (!job)
        return NULL;
    job->kind = kind;
    job->ctx = ctx;
    if (session_id)
        snprintf(job->session_id, sizeof(job->session_id), "%s", session_id);
    return job;
}

/* A request's blocks, to run in a fresh worker (id NULL) or in session `id`. */
static enum px_result submit_execute(enum job_kind kind, const char *id,
                                     const struct exec_request *req, exec_done_fn done,
                                     void *ctx)
{
    struct job *job = new_job(kind, id, ctx);
    if (!job)
        return PX_NOMEM;
    job->req = req;
    job->done = done;
    return submit(job);
}

enum px_result executor_submit(const struct exec_request *req, exec_done_fn done, void *ctx)
{
    return submit_execute(JOB_EXECUTE, NULL, req, done, ctx);
}

enum px_result executor_session_execute(const char *id, const struct exec_request *req,
                                        exec_done_fn done, void *ctx)
{
    return submit_execute(JOB_SESSION_EXECUTE, id, req, done, ctx);
}

static enum px_result session_op(enum job_kind kind, const char *id, session_done_fn done,
                                 void *ctx)
{
    struct job *job = new_job(kind, id, ctx);
    if (!job)
        return PX_NOMEM;
    job->sdone = done;
    return submit(job);
}

enum px_result executor_session_create(session_done_fn done, void *ctx)
{
    return session_op(JOB_SESSION_CREATE, NULL, done, ctx);
}

enum px_result executor_session_get(const char *id, session_done_fn done, void *ctx)
{
    return session_op(JOB_SESSION_GET, id, done, ctx);
}

enum px_result executor_session_delete(const char *id, session_done_fn done, void *ctx)
{
    return session_op(JOB_SESSION_DELETE, id, done, ctx);
}

void executor_snapshot(struct health_report *h, char **info_json)
{
    pthread_mutex_lock(&ex.lock);
    *h = ex.snap;
    h->info_json = NULL;
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

int executor_fatal(void)
{
    return ex.fatal;
}
