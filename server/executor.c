/* The executor's thread and public face: submissions, its loop, the queue and dispatch,
 * timers and the health snapshot. The loop calls down into sessions, the zygote link and
 * the worker links (see executor.h); they never call back into it. */
#define _GNU_SOURCE
#include "executor.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../common/isolation.h"
#include "../common/limits.h"
#include "admission.h"
#include "clock.h"
#include "event_tag.h"
#include "job.h"
#include "sessions.h"
#include "worker_link.h"
#include "zygote_link.h"

static struct executor_config cfg;
static pthread_t thread;
static int epfd = -1, wakefd = -1;
static struct event_tag wake_tag = {EVENT_WAKE, NULL};
static struct admission admitted;   /* requests running or queued */

/* Shared with submitting threads: under lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct job *incoming, *incoming_tail;
static int stopping;
static struct health_report snap;

/* The executor thread's own. */
static struct job *queue, *queue_tail;
static int stop_seen;                /* `stopping` as last read under the lock */

/* Jobs the zygote must be ready for: queued requests wait for a worker, and not longer
 * than queue_wait_ms; while the zygote is (re)starting, ZYGOTE_WAIT_MS. */
static int64_t queue_max_wait(void)
{
    struct zygote_status z;
    zygote_link_status(&z);
    return z.state == ZYGOTE_READY ? (int64_t)cfg.queue_wait_ms : LIMIT_ZYGOTE_WAIT_MS;
}

/* Moves submitted jobs in: requests and session creations join the queue; the other
 * session operations are answered (or started) at once. */
static void take_incoming(void)
{
    pthread_mutex_lock(&lock);
    struct job *list = incoming;
    incoming = incoming_tail = NULL;
    pthread_mutex_unlock(&lock);
    while (list) {
        struct job *job = list;
        list = list->next;
        job->next = NULL;
        /* A turn's executions wait for a free slot like requests do; clients' session
         * calls are answered or started at once. */
        int waits = job->kind == JOB_EXECUTE || job->kind == JOB_SESSION_CREATE ||
                    (job->kind == JOB_SESSION_EXECUTE && job->internal);
        if (!waits) {
            sessions_take(job);
            continue;
        }
        if (queue_tail)
            queue_tail->next = job;
        else
            queue = job;
        queue_tail = job;
    }
}

static struct job *pop_queue(void)
{
    struct job *job = queue;
    if (job) {
        queue = job->next;
        if (!queue)
            queue_tail = NULL;
        job->next = NULL;
    }
    return job;
}

/* Keeps `pool` idle workers, plus one for each queued job that could start now: the
 * requests that fit in the free slots, and every session creation. */
static void pool_ensure(void)
{
    struct worker_stats ws;
    workers_stats(&ws);
    if (stop_seen || monotonic_ms() < ws.spawn_retry_at)
        return;
    unsigned free_slots = cfg.workers > ws.running ? cfg.workers - ws.running : 0;
    unsigned requests = 0, creates = 0;
    for (const struct job *j = queue; j; j = j->next) {
        if (j->kind == JOB_SESSION_CREATE)
            creates++;
        else if (j->kind == JOB_EXECUTE)
            requests++;   /* a turn's executions have their worker */
    }
    unsigned want = cfg.pool + (requests < free_slots ? requests : free_slots) + creates;
    unsigned have = ws.idle + ws.starting + zygote_link_outstanding();
    while (have < want && zygote_link_request_worker())
        have++;
}

/* Hands queued jobs, in order, to idle pool workers: a request while fewer than
 * `workers` run, a session creation whenever a worker is free (a session's executions
 * are bounded by the session limit instead). */
static void dispatch(void)
{
    struct zygote_status z;
    zygote_link_status(&z);
    while (queue && z.state == ZYGOTE_READY) {
        struct worker_stats ws;
        workers_stats(&ws);
        /* A client's session creation takes a worker whenever one is free; anything that
         * runs code (a request, a turn's execution, a turn's first one that also makes its
         * interpreter) waits for a free slot. */
        int runs = queue->kind != JOB_SESSION_CREATE || queue->req;
        if (runs && ws.running >= cfg.workers)
            break;
        if (queue->kind == JOB_SESSION_EXECUTE) {
            sessions_take(pop_queue());   /* on its session's own worker */
            continue;
        }
        struct worker *w = worker_find_idle();
        if (!w) {
            job_mark_slot_free(queue, monotonic_ns());   /* its wait is for a worker now */
            break;
        }
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
    int64_t now = monotonic_ms();
    workers_check_timers(now);
    zygote_link_check_timers(now, stop_seen);
    /* Waiting requests must not hang on a zygote that does not come back, nor on
     * workers that never come. */
    int64_t max_wait = queue_max_wait();
    struct zygote_status z;
    zygote_link_status(&z);
    while (queue && now - queue->queued_at >= max_wait)
        job_fail(pop_queue(), PX_UNAVAILABLE,
                 z.state == ZYGOTE_READY
                     ? "No worker became free in time; retry shortly."
                     : "The execution environment is not available (its zygote process is "
                       "restarting); retry shortly.");
}

/* When the last request ran or waited, and whether the memory freed since went back. */
static int64_t busy_at;
static int trimmed = 1;

/* After LIMIT_IDLE_TRIM_MS without a request, once per idle spell: the memory the
 * allocator holds free (in every thread's arena) goes back to the kernel. */
static void trim_when_idle(int64_t now)
{
    if (admission_used(&admitted)) {
        busy_at = now;
        trimmed = 0;
    } else if (!trimmed && now - busy_at >= LIMIT_IDLE_TRIM_MS) {
        malloc_trim(0);
        trimmed = 1;
    }
}

/* Milliseconds until the next timer, for epoll_wait. */
static int next_timeout(void)
{
    int64_t now = monotonic_ms(), next = now + LIMIT_EXECUTOR_TICK_MS;
    if (!trimmed && busy_at + LIMIT_IDLE_TRIM_MS < next)
        next = busy_at + LIMIT_IDLE_TRIM_MS;
    next = workers_next_timer(next);
    next = zygote_link_next_timer(next);
    next = sessions_next_expiry(next);
    struct worker_stats ws;
    workers_stats(&ws);
    if (ws.spawn_retry_at > now && ws.spawn_retry_at < next)
        next = ws.spawn_retry_at;
    if (queue && queue->queued_at + queue_max_wait() < next)
        next = queue->queued_at + queue_max_wait();
    return next <= now ? 0 : (int)(next - now);
}

/* Copies what /healthz shows into the shared snapshot. */
static void publish_snapshot(void)
{
    struct worker_stats ws;
    struct zygote_status z;
    workers_stats(&ws);
    zygote_link_status(&z);
    pthread_mutex_lock(&lock);
    struct health_report *h = &snap;
    h->zygote_state = stopping ? ZYGOTE_STOPPED : z.state;
    h->zygote_pid = z.pid;
    h->zygote_restarts = z.restarts;
    h->workers_max = cfg.workers;
    h->running = ws.running;
    h->pool_target = cfg.pool;
    h->pool_ready = ws.idle;
    h->pool_starting = ws.starting + zygote_link_outstanding();
    unsigned waiting = admission_used(&admitted);
    h->queue_depth = waiting > ws.running ? waiting - ws.running : 0;
    h->queue_max = cfg.queue;
    h->sessions_max = cfg.max_sessions;
    /* What the workers applied, once one has said; until then what the probe found. */
    h->layers = ws.layers_known ? ws.layers : z.layers;
    h->layers_known = ws.layers_known || z.layers_known;
    h->executions = job_executions();
    h->deadline_kills = ws.deadline_kills;
    h->kill_failures = ws.kill_failures;
    h->unkilled = ws.unkilled;
    h->worker_crashes = ws.crashes;
    h->setup_failures = ws.setup_failures;
    h->interpreter = *z.info;
    snprintf(h->cgroup_memory, sizeof(h->cgroup_memory), "%s", z.cgroup_memory);
    snprintf(h->cgroup_pids, sizeof(h->cgroup_pids), "%s", z.cgroup_pids);
    pthread_mutex_unlock(&lock);
}

static void shutdown_all(void)
{
    take_incoming();
    sessions_end_all();
    struct job *job;
    while ((job = pop_queue()))
        job_fail(job, PX_SHUTTING_DOWN, "The server is shutting down.");
    workers_discard_all(PX_SHUTTING_DOWN, "The server is shutting down.",
                        "the server stopped");
    workers_free_dead();
    zygote_link_stop();
    workers_abandon_unkilled();
    workers_free_dead();
    publish_snapshot();
}

static void *executor_main(void *arg)
{
    (void)arg;
    zygote_link_start();
    for (;;) {
        struct epoll_event evs[64];
        publish_snapshot();
        int n = epoll_wait(epfd, evs, 64, next_timeout());
        for (int i = 0; i < n; i++) {
            struct event_tag *tag = evs[i].data.ptr;
            switch (tag->source) {
            case EVENT_WAKE: {
                uint64_t v;
                ssize_t r = read(wakefd, &v, sizeof(v));
                (void)r;
                break;
            }
            case EVENT_ZYGOTE_CTL:
            case EVENT_ZYGOTE_EXIT:
                zygote_link_on_event(tag->source);
                break;
            case EVENT_WORKER:
                worker_on_event(tag->owner, evs[i].events);
                break;
            }
        }
        check_timers();
        take_incoming();
        dispatch();
        sessions_sweep(monotonic_ms());
        workers_free_dead();
        zygote_link_reap_orphans();
        trim_when_idle(monotonic_ms());
        pthread_mutex_lock(&lock);
        stop_seen = stopping;
        pthread_mutex_unlock(&lock);
        if (stop_seen) {
            shutdown_all();
            return NULL;
        }
    }
}

int executor_start(const struct executor_config *c, char *err, size_t errlen)
{
    cfg = *c;
    admitted.max = cfg.workers + cfg.queue;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epfd < 0 || wakefd < 0) {
        snprintf(err, errlen, "epoll/eventfd: %s", strerror(errno));
        return -1;
    }
    event_watch(epfd, wakefd, EPOLLIN, &wake_tag, EPOLL_CTL_ADD);
    worker_link_init(epfd, cfg.output_bytes);
    struct sessions_config sc = {.max = cfg.max_sessions, .idle_ms = cfg.session_idle_ms,
                                 .lifetime_ms = cfg.session_lifetime_ms,
                                 .max_turns = cfg.max_turns, .replica = cfg.replica_id};
    sessions_init(&sc);
    struct zygote_link_config zc = {.argv = cfg.zygote_argv, .env = cfg.zygote_env,
                                    .policy_fd = cfg.policy_fd,
                                    .required_layers = cfg.required_layers,
                                    .policy_layers = cfg.runs_programs ? ISO_PID_NS : 0,
                                    .epfd = epfd};
    zygote_link_init(&zc);
    job_set_before_answer(publish_snapshot);
    publish_snapshot();
    int e = pthread_create(&thread, NULL, executor_main, NULL);
    if (e) {
        snprintf(err, errlen, "pthread_create: %s", strerror(e));
        return -1;
    }
    return 0;
}

static void wake(void)
{
    uint64_t one = 1;
    ssize_t r = write(wakefd, &one, sizeof(one));
    (void)r;
}

/* The places a job takes before it is accepted: its key's first (a client's execution
 * one of its executions, a client's session creation one of its sessions), then the
 * server's (a request one among the admitted, running plus queue; a session creation
 * one among the sessions). Each is given back when the job is answered (a session keeps
 * its own until it ends); on refusal, by job_discard_unanswered. */
static enum px_result take_places(struct job *job)
{
    int refused = 0;
    int client = !job->internal;
    if (client && (job->kind == JOB_EXECUTE || job->kind == JOB_SESSION_EXECUTE))
        job->key_held = api_key_take(job->key, KEY_EXECUTIONS, &refused);
    else if (client && job->kind == JOB_SESSION_CREATE)
        job->key_held = api_key_take(job->key, KEY_SESSIONS, &refused);
    if (refused)
        return PX_KEY_LIMIT;
    if (job->kind == JOB_EXECUTE) {
        if (!admission_take(&admitted))
            return PX_QUEUE_FULL;
        job->held = &admitted;
    } else if (job->kind == JOB_SESSION_CREATE && !sessions_reserve(job)) {
        return PX_SESSION_LIMIT;
    }
    return PX_OK;
}

/* Hands a job to the executor thread, once it has its places (take_places). */
static enum px_result submit(struct job *job)
{
    if (!job)
        return PX_NOMEM;
    enum px_result r = PX_OK;
    pthread_mutex_lock(&lock);
    if (stopping)
        r = PX_SHUTTING_DOWN;
    else
        r = take_places(job);
    if (r != PX_OK) {
        pthread_mutex_unlock(&lock);
        job_discard_unanswered(job);
        return r;
    }
    unsigned deadline = job->req && job->req->deadline_ms ? job->req->deadline_ms
                                                          : cfg.deadline_ms;
    job->settings = (struct job_settings){.deadline_ms = deadline,
                                          .output_cap = cfg.output_bytes,
                                          .failed_stdout = cfg.failed_stdout};
    if (incoming_tail)
        incoming_tail->next = job;
    else
        incoming = job;
    incoming_tail = job;
    pthread_mutex_unlock(&lock);
    wake();
    return PX_OK;
}

enum px_result executor_submit(struct api_key *key, const struct exec_request *req,
                               exec_done_fn done, void *ctx)
{
    struct job *job = job_new(JOB_EXECUTE, NULL, req, done, ctx);
    if (job)
        job->key = key;
    return submit(job);
}

/* A session operation, on a client's session (internal 0) or a turn's (1). */
static enum px_result session_op(enum job_kind kind, struct api_key *key, int internal,
                                 const char *id, const struct exec_request *req,
                                 exec_done_fn done, void *ctx)
{
    struct job *job = job_new(kind, id, req, done, ctx);
    if (job) {
        job->internal = internal;
        job->key = key;
    }
    return submit(job);
}

enum px_result executor_session_execute(struct api_key *key, int internal, const char *id,
                                        const struct exec_request *req, exec_done_fn done,
                                        void *ctx)
{
    return session_op(JOB_SESSION_EXECUTE, key, internal, id, req, done, ctx);
}

enum px_result executor_session_create(struct api_key *key, int internal,
                                       const struct exec_request *req, exec_done_fn done,
                                       void *ctx)
{
    return session_op(JOB_SESSION_CREATE, key, internal, NULL, req, done, ctx);
}

enum px_result executor_session_get(struct api_key *key, const char *id, exec_done_fn done,
                                    void *ctx)
{
    return session_op(JOB_SESSION_GET, key, 0, id, NULL, done, ctx);
}

enum px_result executor_session_delete(struct api_key *key, int internal, const char *id,
                                       exec_done_fn done, void *ctx)
{
    return session_op(JOB_SESSION_DELETE, key, internal, id, NULL, done, ctx);
}

void executor_snapshot(struct health_report *h)
{
    pthread_mutex_lock(&lock);
    *h = snap;
    pthread_mutex_unlock(&lock);
    h->sessions = sessions_alive();   /* live: agrees with what a session call just said */
}

void executor_stop(void)
{
    pthread_mutex_lock(&lock);
    int was = stopping;
    stopping = 1;
    pthread_mutex_unlock(&lock);
    if (was)
        return;
    wake();
    pthread_join(thread, NULL);
}

void executor_release(void)
{
    if (epfd >= 0)
        close(epfd);
    if (wakefd >= 0)
        close(wakefd);
    epfd = wakefd = -1;
}

int executor_fatal(void)
{
    return zygote_link_fatal();
}
