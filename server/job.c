#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block_output.h"
#include "clock.h"
#include "worker_link.h"

static unsigned long long executions;   /* executor thread only */

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
    job->worker = w;
    w->job = job;
    return 0;
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
        reply.result = job->res;
        job->res = NULL;
        executions++;
    }
    give_back(job);
    job->done(job->ctx, &reply);
    job_free(job);
}

void job_fail(struct job *job, enum px_result r, const char *message)
{
    struct exec_reply reply = {.status = r, .message = message};
    snprintf(reply.session.id, sizeof(reply.session.id), "%s", job->session_id);
    give_back(job);
    job->done(job->ctx, &reply);
    job_free(job);
}

unsigned long long job_executions(void)
{
    return executions;
}
