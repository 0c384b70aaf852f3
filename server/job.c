#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block_output.h"
#include "clock.h"
#include "metrics.h"
#include "worker_link.h"

static unsigned long long executions;   /* executor thread only */
static void (*before_answer)(void);      /* set once, before the executor thread starts */

void job_set_before_answer(void (*fn)(void))
{
    before_answer = fn;
}

/* Hands the reply on, after the state it came from is published. */
static void answer(struct job *job, struct exec_reply *reply)
{
    if (before_answer)
        before_answer();
    job->done(job->ctx, reply);
}

struct job *job_new(enum job_kind kind, const char *session_id,
                    const struct exec_request *req, exec_done_fn done, void *ctx)
{
    struct job *job = calloc(1, sizeof(*job));
    if (!job)
        return NULL;
    job->kind = kind;
    job->req = req;
    job->done = done;
    job->ctx = ctx;
    job->queued_at = monotonic_ms();
    job->queued_ns = monotonic_ns();
    if (session_id)
        snprintf(job->session_id, sizeof(job->session_id), "%s", session_id);
    return job;
}

/* Gives back the places the job holds (the server's and its key's). Before the answer is
 * handed on: a client that has its reply may send the next call at once, and must find
 * the place free. */
static void give_back(struct job *job)
{
    if (job->held)
        admission_release(job->held);
    if (job->key_held)
        admission_release(job->key_held);
    job->held = job->key_held = NULL;
}

/* Detaches the job from its worker and frees it, giving back the places it holds. */
static void job_free(struct job *job)
{
    if (job->worker)
        job->worker->job = NULL;
    give_back(job);
    exec_result_free(job->res);
    free(job);
}

void job_discard_unanswered(struct job *job)
{
    job_free(job);
}

int job_attach(struct job *job, struct worker *w)
{
    struct exec_result *res = calloc(1, sizeof(*res));
    if (res)
        res->blocks = calloc(job->req->ncodes, sizeof(struct block_result));
    if (!res || !res->blocks) {
        free(res);
        return -1;
    }
    res->nblocks = job->req->ncodes;
    job->res = res;
    job->block = 0;
    job->deadline = monotonic_ms() + job->settings.deadline_ms;
    job->started_ns = monotonic_ns();
    job->worker = w;
    w->job = job;
    return 0;
}

/* An execution that ran (res: its results, NULL when it failed) is counted in the metrics
 * and in its request's stats: how it ended and where its time went. Executor thread,
 * before the answer, so the request sees it by the time it is answered. Jobs that never
 * started (refused, or timed out in the queue) and session operations count nothing. */
static void job_account(const struct job *job, const struct exec_result *res)
{
    if (!job->req || !job->started_ns)
        return;
    int64_t now = monotonic_ns();
    int64_t waited_from = job->slot_free_ns ? job->slot_free_ns : job->started_ns;
    int64_t queue = waited_from - job->queued_ns;
    int64_t worker_start = job->started_ns - waited_from;
    int64_t run = now - job->started_ns;
    enum outcome outcome = exec_result_outcome(res);
    enum limit_hit limit = res ? res->limit : LIMIT_HIT_NONE;
    metrics_execution(outcome, limit, queue, worker_start, run);
    struct exec_stats *st = job->req->stats;
    if (!st)
        return;
    st->executions++;
    if (!st->outcome || (st->outcome == OUTCOME_OK && outcome && outcome != OUTCOME_OK))
        st->outcome = outcome;
    if (!st->limit)
        st->limit = limit;
    st->queue_ns += queue;
    st->worker_start_ns += worker_start;
    st->run_ns += run;
}

void job_finish(struct job *job, const struct session_info *session)
{
    struct exec_reply reply = {.status = PX_OK};
    if (session)
        reply.session = *session;
    else   /* an execution in a session says which (it may have made it) */
        snprintf(reply.session.id, sizeof(reply.session.id), "%s", job->session_id);
    if (job->res) {
        for (size_t i = job->block; i < job->res->nblocks; i++) {
            struct block_output_input in = {.end = BLOCK_END_NOT_RUN, .out.fd = -1,
                                            .err.fd = -1};
            int truncated = 0;
            if (block_output_build(&job->res->blocks[i], &in, &truncated) < 0) {
                job_fail(job, PX_NOMEM, "Out of memory while building the reply.");
                return;
            }
        }
        job_account(job, job->res);
        reply.result = job->res;
        job->res = NULL;
        executions++;
    }
    give_back(job);
    answer(job, &reply);
    job_free(job);
}

void job_fail(struct job *job, enum px_result r, const char *message)
{
    struct exec_reply reply = {.status = r, .message = message};
    job_account(job, NULL);
    snprintf(reply.session.id, sizeof(reply.session.id), "%s", job->session_id);
    give_back(job);
    answer(job, &reply);
    job_free(job);
}

unsigned long long job_executions(void)
{
    return executions;
}
