/* The executor: runs execution requests on sandboxed workers forked by the zygote.
 *
 * One thread owns all of it (an epoll loop over the zygote's control socket, each
 * worker's socket and the deadlines), so no request ever blocks an HTTP thread. Its
 * loop (executor.c) calls down into the parts, which never call back up into it:
 *
 *   executor.c      the thread: submissions, the queue, dispatch, timers, the snapshot
 *     sessions.c    interpreters kept across requests
 *     zygote_link.c the zygote: start, restart, worker requests, its reports
 *       worker_link.c   each worker: its socket, its reports, its death
 *         job.c, job_results.c   a job's life cycle and its block results
 */
#ifndef PYEXECD_EXECUTOR_H
#define PYEXECD_EXECUTOR_H

#include <stddef.h>

#include "../common/config.h"
#include "../common/result.h"
#include "api_keys.h"
#include "execution.h"
#include "health_report.h"

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
    unsigned max_turns;           /* model turns' interpreters at once */
    unsigned required_layers;     /* isolation layers without which we stop (--require-isolation) */
    int runs_programs;            /* the policy lets code run programs: a PID namespace is
                                   * required (it ends a worker's whole process tree) */
    const char *replica_id;       /* the prefix of session ids, "" for none (borrowed) */
};

/* Starts the executor thread, which launches the zygote. Returns 0 or -1 with err. */
int executor_start(const struct executor_config *cfg, char *err, size_t errlen);

/* Every call below is thread-safe. Each returns PX_OK when `done` will be called exactly
 * once, on the executor thread, with the answer (struct exec_reply); or an error at once,
 * and then `done` is never called: PX_QUEUE_FULL (every worker busy and the queue full),
 * PX_SESSION_LIMIT (creating a session past --max-sessions), PX_KEY_LIMIT (key is at its
 * own bound: of executions for submit and a client's session execute, of sessions for a
 * client's session create), PX_SHUTTING_DOWN, PX_NOMEM. A request (req) stays the
 * caller's and must stay valid until `done` is called; a session id is copied.
 * key: the request's API key (NULL without a key file, and for a turn's interpreter,
 * whose turn counts against its key itself); its places are given back when the call is
 * answered, a session's when the session ends. A client's session belongs to the key
 * that created it: get, delete and execute with another key are answered PX_NOT_FOUND as
 * if it did not exist. */

/* Runs req's blocks in a fresh interpreter. */
enum px_result executor_submit(struct api_key *key, const struct exec_request *req,
                               exec_done_fn done, void *ctx);

/* Sessions: one interpreter kept across requests. create waits for a pre-forked worker
 * like a request does; get describes one; delete ends it and removes its files (its
 * worker and tmpfs go); execute runs req in its interpreter and work dir, and is
 * answered PX_NOT_FOUND (no such session, or it ended: the message says why) or PX_BUSY
 * (another execution is running in it) when it cannot run.
 * internal 1 marks a model turn's interpreter (server/turns.c): it is not one of the
 * clients' sessions (neither counted against --max-sessions nor reachable through
 * /v1/sessions), and is bounded by the turn runners instead. create with a req (NULL:
 * none) also runs it, as execute would, in one step: the answer then carries both the
 * session's id and the results (or the error, and the id when the session exists). */
enum px_result executor_session_create(struct api_key *key, int internal,
                                       const struct exec_request *req, exec_done_fn done,
                                       void *ctx);
enum px_result executor_session_get(struct api_key *key, const char *id, exec_done_fn done,
                                    void *ctx);
enum px_result executor_session_delete(struct api_key *key, int internal, const char *id,
                                       exec_done_fn done, void *ctx);
enum px_result executor_session_execute(struct api_key *key, int internal, const char *id,
                                        const struct exec_request *req, exec_done_fn done,
                                        void *ctx);

/* Fills the executor's part of a health report. */
void executor_snapshot(struct health_report *h);

/* Fails every pending request with PX_SHUTTING_DOWN, kills the workers and the zygote,
 * joins the thread. */
void executor_stop(void);

/* Closes what executor_start opened for the loop (its epoll and wake descriptors). Only
 * after executor_stop and once no thread can submit any more (the HTTP server stopped):
 * a late submit would write to a closed descriptor. */
void executor_release(void);

/* Nonzero when the executor asked the process to stop because it cannot run safely (a
 * required isolation layer is missing). It sends SIGTERM to the process when it does. */
int executor_fatal(void);

#endif
