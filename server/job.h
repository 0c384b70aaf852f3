/* A job: one call into the executor (a request's code blocks, or a session operation),
 * from the thread that submits it to the one answer it gets. Its life cycle:
 *
 *   job_new      a submitting thread makes it; the executor thread owns it from then on
 *   job_attach   it runs on a worker (at most one; the worker runs at most this job)
 *   job_finish   it is answered with what it produced      } either one, exactly once:
 *   job_fail     it is answered with an error               } detaches it and frees it
 *
 * Everything but job_new runs on the executor thread. */
#ifndef PYEXECD_JOB_H
#define PYEXECD_JOB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/config.h"
#include "../common/result.h"
#include "admission.h"
#include "execution.h"

enum job_kind {
    JOB_EXECUTE,          /* a request: any pool worker, then it is discarded */
    JOB_SESSION_CREATE,   /* takes a pool worker and keeps it */
    JOB_SESSION_EXECUTE,  /* runs in a session's worker */
    JOB_SESSION_GET,
    JOB_SESSION_DELETE,
};

/* How an execution's blocks are run and reported. */
struct job_settings {
    unsigned deadline_ms;             /* per code block */
    size_t output_cap;                /* bytes kept per block and stream */
    enum failed_stdout failed_stdout;
};

struct worker;
struct api_key;

struct job {
    struct job *next;                 /* in the executor's queue */
    enum job_kind kind;
    char session_id[LIMIT_SESSION_ID_BYTES];   /* the session a JOB_SESSION_* names */
    const struct exec_request *req;   /* executions: the submitter's, valid until answered */
    exec_done_fn done;
    void *ctx;
    struct admission *held;           /* a place it holds until answered, or NULL */
    struct api_key *key;              /* the API key it came with (NULL: no key file);
                                       * a session belongs to the key that made it */
    struct admission *key_held;       /* the key's place it holds until answered (a
                                       * session creation's passes to the session) */
    int internal;                     /* about a model turn's interpreter, not a client's
                                       * session (see executor_session_create) */
    struct worker *worker;            /* the worker running it, or NULL */
    int64_t queued_at;
    /* Where an execution's time goes (monotonic ns; 0: not yet): submitted, first found
     * at the queue's head with a --workers slot free but no worker ready, handed to its
     * worker. */
    int64_t queued_ns, slot_free_ns, started_ns;

    /* An execution's progress (set by job_attach and the worker's reports). */
    struct job_settings settings;
    struct exec_result *res;
    size_t block;                     /* index of the running block */
    size_t image_bytes;               /* images kept so far (LIMIT_IMAGE_BYTES_PER_REQUEST) */
    size_t output_bytes;              /* output text kept so far (LIMIT_OUTPUT_BYTES_PER_REQUEST) */
    off_t out_mark, err_mark;         /* capture offsets where the running block began */
    int64_t deadline;
};

/* A job of `kind` for session `session_id` (NULL: none; copied) running req (borrowed,
 * may be NULL for session operations), answered through done(ctx). Returns NULL when out
 * of memory. Thread-safe. */
struct job *job_new(enum job_kind kind, const char *session_id,
                    const struct exec_request *req, exec_done_fn done, void *ctx);

/* Frees a job that was never accepted (the submitter answers the caller itself); gives
 * back the place it holds, if any. */
void job_discard_unanswered(struct job *job);

/* Binds an execution to the worker that runs it and allocates its results, one per code
 * block; the first block starts now. Returns 0, or -1 when out of memory (nothing
 * changed). */
int job_attach(struct job *job, struct worker *w);

/* Answers the job with success, detaches it from its worker and frees it: an execution
 * with its results (every block from job->block on reported as not run), a session
 * operation with `session` (NULL for executions). The callback takes the results over. */
void job_finish(struct job *job, const struct session_info *session);

/* Answers the job with the error r and message (copied by the callee if it keeps it;
 * NULL: a default text), detaches it from its worker and frees it, with any results it
 * had. */
void job_fail(struct job *job, enum px_result r, const char *message);

/* The job is at the queue's head with a slot free and waits for a worker: from now on
 * its wait counts as worker_start, not queue (see struct exec_stats). */
static inline void job_mark_slot_free(struct job *job, int64_t now_ns)
{
    if (!job->slot_free_ns)
        job->slot_free_ns = now_ns;
}

/* fn (NULL: none) runs on the executor thread just before each answer is handed on: the
 * executor publishes there what /healthz shows, so that a client holding its reply never
 * reads a state older than the one that reply came from (a worker still counted free). */
void job_set_before_answer(void (*fn)(void));

/* Executions finished with results since the server started (for /healthz). */
unsigned long long job_executions(void);

#endif
