/* Sessions: one interpreter (a worker kept after its first job) across requests, for
 * agent loops that send a model turn's blocks one request at a time. The table, its
 * expiry, and the tombstones that tell a late call why its session ended. Everything
 * here runs on the executor thread, except sessions_reserve. */
#ifndef PYEXECD_SESSIONS_H
#define PYEXECD_SESSIONS_H

#include <stdint.h>

#include "job.h"

struct sessions_config {
    unsigned max;                 /* alive at once (with those being created) */
    unsigned max_turns;           /* model turns' interpreters at once (the same) */
    unsigned idle_ms;             /* a session unused this long ends */
    unsigned lifetime_ms;         /* a session ends at this age */
    const char *replica;          /* the prefix of the ids ("r1": "r1.<32 hex>"), "" for
                                   * none (borrowed for the server's life) */
};

void sessions_init(const struct sessions_config *cfg);

/* Takes a place for a session being created (the job holds it until the session ends,
 * or until the job fails). Returns 1, or 0 at the session limit. Thread-safe. */
int sessions_reserve(struct job *create);

/* Handles a session job: get, delete and execute are answered (or started) now. */
void sessions_take(struct job *job);

/* Turns an idle pool worker into the session a JOB_SESSION_CREATE asked for, and answers
 * the job. */
void sessions_create(struct job *job, struct worker *w);

/* Ends the sessions whose worker died (deadline, crash, zygote death...), each
 * remembered with the worker's end_reason, and those past their idle time or lifetime
 * (their workers discarded). Call before workers_free_dead. */
void sessions_sweep(int64_t now);

/* The earliest of `next` and the sessions' expiry times. */
int64_t sessions_next_expiry(int64_t next);

/* Ends every session and fails any execution running in one (shutdown). */
void sessions_end_all(void);

/* Clients' sessions alive now (not turns' interpreters). Thread-safe. */
unsigned sessions_alive(void);

#endif
