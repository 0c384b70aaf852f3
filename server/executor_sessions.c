/* Sessions: one interpreter (a worker kept after its first job) across requests, for agent
 * loops that send a model turn's blocks one request at a time. Owned by the executor
 * thread like everything else; the table is a short list (LIMIT_SESSIONS by default). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../common/limits.h"
#include "executor_internal.h"

struct session {
    struct session *next;
    char id[33];
    struct worker *w;
    long long created_wall_ms, last_used_wall_ms;   /* for display */
    int64_t created, last_used;    /* monotonic ms, for the timers */
    unsigned long long executions;
    unsigned next_file;            /* the number the next input file gets */
    int busy;
};

/* Sessions that ended, so that a late call can be told why (a ring). */
static struct {
    char id[33];
    char why[96];
} tombstones[LIMIT_SESSION_TOMBSTONES];
static unsigned tombstone_next;

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct session *find(const char *id)
{
    for (struct session *s = ex.sessions; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static const char *tombstone(const char *id)
{
    for (unsigned i = 0; i < LIMIT_SESSION_TOMBSTONES; i++)
        if (tombstones[i].id[0] && strcmp(tombstones[i].id, id) == 0)
            return tombstones[i].why;
    return NULL;
}

static void release_reservation(void)
{
    pthread_mutex_lock(&ex.lock);
    ex.sessions_reserved--;
    pthread_mutex_unlock(&ex.lock);
}

/* Removes the session from the table, remembers why, frees it. Its worker is the
 * caller's business. */
static void end_session(struct session *s, const char *why)
{
    struct session **pp = &ex.sessions;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    ex.nsessions--;
    unsigned t = tombstone_next++ % LIMIT_SESSION_TOMBSTONES;
    snprintf(tombstones[t].id, sizeof(tombstones[t].id), "%s", s->id);
    snprintf(tombstones[t].why, sizeof(tombstones[t].why), "%s", why);
    if (s->w)
        s->w->session = NULL;
    free(s);
    release_reservation();
}

/* Private memory of the worker (what it holds beyond what it shares with the zygote),
 * from /proc/<pid>/smaps_rollup. */
static unsigned long long private_memory(pid_t pid)
{
    char path[64], line[256];
    unsigned long long kb = 0, v;
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Private_Clean: %llu kB", &v) == 1 ||
            sscanf(line, "Private_Dirty: %llu kB", &v) == 1)
            kb += v;
    fclose(f);
    return kb * 1024;
}

static void describe(const struct session *s, struct session_info *info)
{
    memset(info, 0, sizeof(*info));
    snprintf(info->id, sizeof(info->id), "%s", s->id);
    /* From the times stored when they happened: stable from one GET to the next. */
    info->create_time_ms = s->created_wall_ms;
    info->last_use_time_ms = s->last_used_wall_ms;
    long long idle_end = s->last_used_wall_ms + ex.cfg.session_idle_ms;
    long long life_end = s->created_wall_ms + ex.cfg.session_lifetime_ms;
    info->expire_time_ms = idle_end < life_end ? idle_end : life_end;
    info->executions = s->executions;
    info->memory_bytes = s->w ? private_memory(s->w->pid) : 0;
    info->busy = s->busy;
}

static void reply(struct job *job, enum px_result r, const char *message,
                  const struct session *s)
{
    struct session_reply rep = {.status = r, .message = message};
    ex_publish_snapshot();   /* /healthz agrees with what the client is about to read */
    if (s)
        describe(s, &rep.info);
    job->sdone(job->ctx, &rep);
    free(job);
}

/* "Session sessions/<id> ended: <why>." or "not found". */
static void gone_message(const char *id, char *buf, size_t len)
{
    const char *why = tombstone(id);
    if (why)
        snprintf(buf, len, "Session sessions/%s has ended: %s.", id, why);
    else
        snprintf(buf, len, "Session sessions/%s was not found (it never existed, or ended "
                 "long ago).", id);
}

void sessions_fail(struct job *job, enum px_result r, const char *message)
{
    if (job->kind == JOB_SESSION_EXECUTE) {
        job_fail(job, r, message);
        return;
    }
    if (job->kind == JOB_SESSION_CREATE)
        release_reservation();
    reply(job, r, message, NULL);
}

int sessions_take(struct job *job)
{
    char msg[200];
    if (job->kind == JOB_SESSION_CREATE)
        return 0;
    struct session *s = find(job->session_id);
    if (!s) {
        gone_message(job->session_id, msg, sizeof(msg));
        if (job->kind == JOB_SESSION_EXECUTE)
            job_fail(job, PX_NOT_FOUND, msg);
        else
            reply(job, PX_NOT_FOUND, msg, NULL);
        return 1;
    }
    switch (job->kind) {
    case JOB_SESSION_GET:
        reply(job, PX_OK, NULL, s);
        return 1;
    case JOB_SESSION_DELETE: {
        struct worker *w = s->w;
        struct session_info info;
        describe(s, &info);
        end_session(s, "it was deleted");
        if (w) {
            struct job *running = w->job;
            w->job = NULL;
            worker_discard(w);   /* its tmpfs, and so its files, go with it */
            if (running)
                job_fail(running, PX_NOT_FOUND, "The session was deleted during this "
                         "execution.");
        }
        struct session_reply rep = {.status = PX_OK, .info = info};
        ex_publish_snapshot();
        job->sdone(job->ctx, &rep);
        free(job);
        return 1;
    }
    case JOB_SESSION_EXECUTE:
        /* Calls on one session are not queued: a second one while the first runs is
         * refused at once (409), so a client never waits behind work it cannot see. */
        if (s->busy || !s->w || s->w->state != W_SESSION_IDLE) {
            snprintf(msg, sizeof(msg), "Session sessions/%s is running another execution; "
                     "calls on one session run one at a time.", s->id);
            job_fail(job, PX_BUSY, msg);
            return 1;
        }
        s->busy = 1;
        s->last_used = ex_now_ms();
        s->last_used_wall_ms = wall_ms();
        if (worker_start_job(s->w, job) < 0) {
            s->busy = 0;
            job_fail(job, PX_NOMEM, "Out of memory while starting the execution.");
        }
        return 1;
    default:
        return 1;
    }
}

void sessions_create(struct job *job, struct worker *w)
{
    unsigned char raw[16];
    struct session *s = calloc(1, sizeof(*s));
    if (!s || getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        free(s);
        sessions_fail(job, PX_INTERNAL, "Could not create the session.");
        return;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(s->id + 2 * i, 3, "%02x", raw[i]);
    s->w = w;
    s->created_wall_ms = s->last_used_wall_ms = wall_ms();
    s->created = s->last_used = ex_now_ms();
    w->session = s;
    worker_set_state(w, W_SESSION_IDLE);
    s->next = ex.sessions;
    ex.sessions = s;
    ex.nsessions++;
    reply(job, PX_OK, NULL, s);
}

unsigned sessions_claim_files(struct session *s, unsigned n)
{
    unsigned first = s->next_file;
    s->next_file += n;
    return first;
}

void sessions_execution_done(struct session *s)
{
    s->busy = 0;
    s->executions++;
    s->last_used = ex_now_ms();
    s->last_used_wall_ms = wall_ms();
}

void sessions_worker_gone(struct session *s, const char *why)
{
    s->w = NULL;
    end_session(s, why ? why : "its interpreter stopped");
}

void sessions_reap(int64_t now)
{
    struct session *s = ex.sessions;
    while (s) {
        struct session *next = s->next;
        int idle = now - s->last_used >= (int64_t)ex.cfg.session_idle_ms;
        int old = now - s->created >= (int64_t)ex.cfg.session_lifetime_ms;
        /* A running execution keeps its session until it ends (its deadline bounds it). */
        if (!s->busy && (idle || old)) {
            struct worker *w = s->w;
            end_session(s, idle ? "it was unused for longer than its idle timeout"
                                : "it reached its maximum lifetime");
            if (w)
                worker_discard(w);
        }
        s = next;
    }
}

int64_t sessions_next_expiry(void)
{
    int64_t next = INT64_MAX;
    for (struct session *s = ex.sessions; s; s = s->next) {
        if (s->busy)
            continue;
        int64_t idle_end = s->last_used + ex.cfg.session_idle_ms;
        int64_t life_end = s->created + ex.cfg.session_lifetime_ms;
        int64_t end = idle_end < life_end ? idle_end : life_end;
        if (end < next)
            next = end;
    }
    return next;
}

void sessions_end_all(void)
{
    while (ex.sessions) {
        struct session *s = ex.sessions;
        struct worker *w = s->w;
        end_session(s, "the server stopped");
        if (w && w->state != W_DEAD) {
            struct job *running = w->job;
            w->job = NULL;
            worker_discard(w);
            if (running)
                job_fail(running, PX_SHUTTING_DOWN, "The server is shutting down.");
        }
    }
}
