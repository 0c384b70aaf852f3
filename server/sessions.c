#define _GNU_SOURCE
#include "sessions.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "../common/limits.h"
#include "clock.h"
#include "worker_link.h"

struct session {
    struct session *next;
    char id[LIMIT_SESSION_ID_BYTES];
    struct worker *w;              /* its interpreter; discarded when the session ends */
    long long created_wall_ms, last_used_wall_ms;   /* for display */
    int64_t created, last_used;    /* monotonic ms, for the timers */
    struct admission *held;        /* the place it holds (taken by its create job) */
    int internal;                  /* a model turn's interpreter */
    struct api_key *owner;         /* the key that made it: no other reaches it */
    struct admission *key_held;    /* its place among its key's sessions, or NULL */
};

static struct sessions_config cfg;
static struct admission reserved;  /* alive plus being created */
static struct admission turn_reserved;   /* the same, of model turns' interpreters */
static struct session *sessions;
static atomic_uint alive;

/* Sessions that ended, so that a late call can be told why (a ring). */
static struct {
    char id[LIMIT_SESSION_ID_BYTES];
    char why[96];
    struct api_key *owner;         /* only its key learns why it ended */
} tombstones[LIMIT_SESSION_TOMBSTONES];
static unsigned tombstone_next;

void sessions_init(const struct sessions_config *c)
{
    cfg = *c;
    reserved.max = c->max;
    turn_reserved.max = c->max_turns;
}

int sessions_reserve(struct job *create)
{
    struct admission *a = create->internal ? &turn_reserved : &reserved;
    if (!admission_take(a))
        return 0;
    create->held = a;
    return 1;
}

unsigned sessions_alive(void)
{
    return atomic_load(&alive);
}

static struct session *find(const char *id)
{
    for (struct session *s = sessions; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static const char *tombstone(const char *id, const struct api_key *asker)
{
    for (unsigned i = 0; i < LIMIT_SESSION_TOMBSTONES; i++)
        if (tombstones[i].id[0] && strcmp(tombstones[i].id, id) == 0 &&
            tombstones[i].owner == asker)
            return tombstones[i].why;
    return NULL;
}

/* Removes the session from the table, remembers why, gives back its place and frees
 * it. Returns its worker, which is the caller's to discard (NULL when already gone). */
static struct worker *end_session(struct session *s, const char *why)
{
    struct session **pp = &sessions;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    if (!s->internal)
        atomic_fetch_sub(&alive, 1);
    unsigned t = tombstone_next++ % LIMIT_SESSION_TOMBSTONES;
    snprintf(tombstones[t].id, sizeof(tombstones[t].id), "%s", s->id);
    snprintf(tombstones[t].why, sizeof(tombstones[t].why), "%s", why);
    tombstones[t].owner = s->owner;
    admission_release(s->held);
    if (s->key_held)
        admission_release(s->key_held);
    struct worker *w = s->w;
    free(s);
    return w && !worker_gone(w) ? w : NULL;
}

/* A session whose interpreter is gone ends, with the reason its worker gave. Returns 1
 * when s was ended (and freed). */
static int ended_by_worker(struct session *s)
{
    if (!worker_gone(s->w))
        return 0;
    end_session(s, s->w->end_reason ? s->w->end_reason : "its interpreter stopped");
    return 1;
}

/* An execution running in it, or its worker gone mid-job and waiting for the reason. */
static int busy(const struct session *s)
{
    return s->w->state == W_SESSION_BUSY || s->w->state == W_EXITING;
}

/* The later of the last execution's start and its end: what "last used" means. */
static int64_t last_used(const struct session *s)
{
    return s->w->idle_since > s->last_used ? s->w->idle_since : s->last_used;
}

/* No session can expire before this (a lower bound, kept so that the executor's loop
 * does not walk thousands of sessions at every turn): 0 means "look now". */
static int64_t sweep_due;

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The earliest s may expire, seen at `now`: exact for an idle session; for a running one
 * (which expires only once idle again, its idle time counted from then) a bound below. */
static int64_t session_due(const struct session *s, int64_t now)
{
    int64_t life_end = s->created + (int64_t)cfg.lifetime_ms;
    int64_t idle_from = busy(s) ? now : last_used(s);
    return min64(idle_from + (int64_t)cfg.idle_ms, life_end);
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
    info->last_use_time_ms = s->w->idle_since_wall > s->last_used_wall_ms
                                 ? s->w->idle_since_wall : s->last_used_wall_ms;
    long long idle_end = info->last_use_time_ms + cfg.idle_ms;
    long long life_end = s->created_wall_ms + cfg.lifetime_ms;
    info->expire_time_ms = idle_end < life_end ? idle_end : life_end;
    info->executions = s->w->jobs_done;
    /* Reading smaps_rollup walks the worker's page tables: milliseconds, which a model
     * turn's own interpreter (nobody reads its description) does not pay. */
    info->memory_bytes = s->internal ? 0 : private_memory(s->w->pid);
    info->busy = busy(s);
}

static void reply(struct job *job, const struct session *s)
{
    struct session_info info;
    describe(s, &info);
    job_finish(job, &info);
}

/* Starts an execution job on the session's idle worker. */
static void start_execution(struct session *s, struct job *job)
{
    if (worker_start_job(s->w, job) < 0) {
        job_fail(job, PX_NOMEM, "Out of memory while starting the execution.");
        return;
    }
    s->last_used = monotonic_ms();
    s->last_used_wall_ms = wall_ms();
}

/* "Session sessions/<id> has ended: <why>." or "not found" (also to another key than
 * the one that made it: the same words as for an id that never existed). */
static void gone_message(const char *id, const struct api_key *asker, char *buf, size_t len)
{
    const char *why = tombstone(id, asker);
    if (why)
        snprintf(buf, len, "Session sessions/%s has ended: %s.", id, why);
    else
        snprintf(buf, len, "Session sessions/%s was not found (it never existed, or ended "
                 "long ago).", id);
}

void sessions_take(struct job *job)
{
    char msg[320];
    struct session *s = find(job->session_id);
    if (s && s->internal != job->internal)
        s = NULL;   /* a turn's interpreter is not reachable as a session, nor the reverse */
    if (s && s->owner != job->key)
        s = NULL;   /* another key's: as if it did not exist */
    if (s && ended_by_worker(s))
        s = NULL;
    if (!s) {
        gone_message(job->session_id, job->key, msg, sizeof(msg));
        job_fail(job, PX_NOT_FOUND, msg);
        return;
    }
    switch (job->kind) {
    case JOB_SESSION_GET:
        reply(job, s);
        return;
    case JOB_SESSION_DELETE: {
        struct session_info info;
        describe(s, &info);
        struct worker *w = end_session(s, "it was deleted");
        if (w)   /* its tmpfs, and so its files, go with it */
            worker_discard(w, PX_NOT_FOUND, "The session was deleted during this execution.");
        job_finish(job, &info);
        return;
    }
    case JOB_SESSION_EXECUTE:
        /* Calls on one session are not queued: a second one while the first runs is
         * refused at once (409), so a client never waits behind work it cannot see. */
        if (s->w->state != W_SESSION_IDLE) {
            snprintf(msg, sizeof(msg), "Session sessions/%s is running another execution; "
                     "calls on one session run one at a time.", s->id);
            job_fail(job, PX_BUSY, msg);
            return;
        }
        start_execution(s, job);
        return;
    default:
        job_fail(job, PX_INTERNAL, NULL);
    }
}

void sessions_create(struct job *job, struct worker *w)
{
    unsigned char raw[16];
    struct session *s = calloc(1, sizeof(*s));
    if (!s || getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        free(s);
        job_fail(job, PX_INTERNAL, "Could not create the session.");
        return;
    }
    /* "<replica>.<hex>": whoever holds the id can tell which server owns it. */
    size_t at = cfg.replica && cfg.replica[0]
                    ? (size_t)snprintf(s->id, sizeof(s->id), "%s.", cfg.replica) : 0;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(s->id + at + 2 * i, 3, "%02x", raw[i]);
    s->w = w;
    s->internal = job->internal;
    s->created_wall_ms = s->last_used_wall_ms = wall_ms();
    s->created = s->last_used = monotonic_ms();
    sweep_due = min64(sweep_due, session_due(s, s->created));
    s->held = job->held;   /* the job's places are the session's now */
    job->held = NULL;
    s->owner = job->key;
    s->key_held = job->key_held;
    job->key_held = NULL;
    worker_keep(w, s->internal);
    s->next = sessions;
    sessions = s;
    if (!s->internal)
        atomic_fetch_add(&alive, 1);
    if (!job->req) {
        reply(job, s);
        return;
    }
    /* Made to run something at once: the same job is now the session's first execution. */
    job->kind = JOB_SESSION_EXECUTE;
    snprintf(job->session_id, sizeof(job->session_id), "%s", s->id);
    start_execution(s, job);
}

void sessions_sweep(int64_t now)
{
    /* Also at once when a worker is gone: its session ends before the worker is freed. */
    static unsigned long gone_seen;
    if (now < sweep_due && workers_gone_count() == gone_seen)
        return;
    gone_seen = workers_gone_count();
    struct session *s = sessions;
    while (s) {
        struct session *next = s->next;
        if (!ended_by_worker(s) && !busy(s)) {
            /* A running execution keeps its session until it ends (its deadline bounds
             * it). */
            int idle = now - last_used(s) >= (int64_t)cfg.idle_ms;
            int old = now - s->created >= (int64_t)cfg.lifetime_ms;
            if (idle || old) {
                struct worker *w = end_session(
                    s, idle ? "it was unused for longer than its idle timeout"
                            : "it reached its maximum lifetime");
                if (w)
                    worker_discard(w, PX_INTERNAL, NULL);
            }
        }
        s = next;
    }
    sweep_due = INT64_MAX;
    for (s = sessions; s; s = s->next)
        if (!worker_gone(s->w))
            sweep_due = min64(sweep_due, session_due(s, now));
}

int64_t sessions_next_expiry(int64_t next)
{
    return min64(next, sweep_due);
}

void sessions_end_all(void)
{
    while (sessions) {
        struct worker *w = end_session(sessions, "the server stopped");
        if (w)
            worker_discard(w, PX_SHUTTING_DOWN, "The server is shutting down.");
    }
}
