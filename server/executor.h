/* The executor: runs execution requests on sandboxed workers forked by the zygote.
 *
 * One thread owns all of it (an epoll loop over the zygote's control socket, each
 * worker's socket and the deadlines), so no request ever blocks an HTTP thread. It
 * launches the zygote and restarts it when it dies, keeps a pool of pre-forked workers,
 * bounds concurrency and the queue, kills a worker at its deadline from outside, and turns
 * what each worker left into block results. */
#ifndef PYEXECD_EXECUTOR_H
#define PYEXECD_EXECUTOR_H

#include <stddef.h>

#include "../common/result.h"
#include "block_output.h"
#include "health_report.h"
#include "execution.h"

/* Called exactly once per accepted request, on the executor thread, with the result
 * (ownership passes to the callee, who frees it with exec_result_free). Must not block. */
typedef void (*exec_done_fn)(void *ctx, struct exec_result *res);

/* Called exactly once per accepted session operation, on the executor thread. */
typedef void (*session_done_fn)(void *ctx, const struct session_reply *reply);

struct executor_config {
    unsigned workers;             /* executions at once */
    unsigned pool;                /* idle workers kept forked and sandboxed */
    unsigned queue;               /* requests that may wait beyond `workers` */
    unsigned queue_wait_ms;       /* the longest one waits for a worker (then 503) */
    unsigned deadline_ms;         /* per code block */
    size_t output_bytes;          /* kept per block and stream */
    enum failed_stdout failed_stdout;
    char *const *zygote_argv;     /* borrowed for the executor's life */
    char *const *zygote_env;      /* idem */
    int policy_fd;                /* the policy text for each zygote (borrowed) */
    unsigned max_sessions;        /* sessions alive at once */
    unsigned session_idle_ms;     /* a session unused this long ends */
    unsigned session_lifetime_ms; /* a session ends at this age */
    unsigned required_layers;     /* isolation layers without which we stop (--require-isolation) */
};

/* Starts the executor thread, which launches the zygote. Returns 0 or -1 with err. */
int executor_start(const struct executor_config *cfg, char *err, size_t errlen);

/* Queues a request. The request stays owned by the caller and must stay valid until
 * `done` is called. Returns PX_OK (done will be called), or at once PX_QUEUE_FULL,
 * PX_SHUTTING_DOWN or PX_NOMEM (done will not be called). Thread-safe. */
enum px_result executor_submit(const struct exec_request *req, exec_done_fn done, void *ctx);

/* Sessions: one interpreter kept across requests. Each call returns PX_OK when `done`
 * will be called, or an error at once (PX_QUEUE_FULL at the session limit,
 * PX_SHUTTING_DOWN, PX_NOMEM). create waits for a pre-forked worker like a request does.
 * id is copied. */
enum px_result executor_session_create(session_done_fn done, void *ctx);
enum px_result executor_session_get(const char *id, session_done_fn done, void *ctx);
/* Ends the session and removes its files (its worker and tmpfs go). */
enum px_result executor_session_delete(const char *id, session_done_fn done, void *ctx);
/* Runs req in the session's interpreter and work dir; `done` gets the result, or an error
 * result: PX_NOT_FOUND (no such session, or it ended: the message says why), PX_BUSY
 * (another execution is running in it). The request stays the caller's until then. */
enum px_result executor_session_execute(const char *id, const struct exec_request *req,
                                        exec_done_fn done, void *ctx);

/* Fills the executor's part of a health report. *info_json gets a malloc'd copy of the
 * zygote's interpreter description (caller frees) or NULL. Thread-safe. */
void executor_snapshot(struct health_report *h, char **info_json);

/* Fails every pending request with PX_SHUTTING_DOWN, kills the workers and the zygote,
 * joins the thread. */
void executor_stop(void);

/* Nonzero when the executor asked the process to stop because it cannot run safely (a
 * required isolation layer is missing). It sends SIGTERM to the process when it does. */
int executor_fatal(void);

#endif
