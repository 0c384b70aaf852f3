/* The server's side of each worker process: its socket and the frames on it, its
 * capture files, its state, and the job it runs. A worker is forked by the zygote, says
 * READY, runs one job (a request) or many (a session's, when kept), and is discarded.
 * Everything here runs on the executor thread. */
#ifndef PYEXECD_WORKER_LINK_H
#define PYEXECD_WORKER_LINK_H

#include <stdint.h>
#include <sys/types.h>

#include "../common/ipc.h"
#include "../common/result.h"
#include "event_tag.h"
#include "job_results.h"

enum worker_state {
    W_STARTING,      /* forked, sandboxing itself */
    W_IDLE,          /* ready for a job (in the pool) */
    W_BUSY,          /* running a request's job */
    W_SESSION_IDLE,  /* kept for a session, waiting for its next execution */
    W_SESSION_BUSY,  /* running one of its session's executions */
    W_EXITING,       /* its socket closed mid-job; waiting for its exit status */
    W_UNKILLED,      /* discarded, but the kernel refused its SIGKILL: every descriptor
                      * closed but its pidfd, watched until it ends; still counted among
                      * the running (its slot is not free while it lives) */
    W_DEAD,          /* descriptors closed; freed by workers_free_dead */
};

struct job;

struct worker {
    struct worker *next;
    pid_t pid;
    int sock, out_fd, err_fd, pidfd;
    enum worker_state state;
    int kept;                   /* it serves a session: it lives across jobs */
    int counted;                /* a kept one whose executions count among the running
                                 * (a model turn's: bounded by --workers like requests) */
    struct job *job;            /* the job it runs (set by job_attach), or NULL */
    struct ipc_reader rd;
    unsigned char *wbuf;        /* the JOB frame still to send */
    size_t wlen, woff;
    int64_t exit_wait_until;
    int64_t started_at;         /* when the zygote reported it forked */
    unsigned long long jobs_done;   /* jobs it ran to the end (a session's executions) */
    int64_t idle_since;         /* monotonic ms when it last finished a job (0: never) */
    long long idle_since_wall;  /* the same, wall-clock */
    const char *end_reason;     /* why it stopped, for its session (static text) */
    int announced_exit;         /* the status its IPC_W_ENDING announced, or -1 */
    unsigned next_file;         /* the number its next input file gets: a session's
                                 * keep counting from the earlier calls' ones */
    int kill_urgent;            /* it runs code past its deadline: a refused kill is not
                                 * waited on */
    int kill_errno;             /* why the kernel refused its kill */
    int64_t unkilled_until;     /* W_UNKILLED: when it is ended another way */
    int unkilled_escalated;     /* 1 once it was, 2 once its still living was logged */
    struct event_tag tag;
};

static inline int worker_busy(const struct worker *w)
{
    return w->state == W_BUSY || w->state == W_SESSION_BUSY;
}

/* Discarded (dead, or on its way with a refused kill): no session can use it. */
static inline int worker_gone(const struct worker *w)
{
    return w->state == W_DEAD || w->state == W_UNKILLED;
}

/* How many times a worker has become gone (worker_gone) since the start: a session
 * whose worker is gone must be ended before the worker is freed (workers_free_dead), so
 * the sessions are walked whenever this moved. Executor thread. */
unsigned long workers_gone_count(void);

/* What /healthz shows of the workers. */
struct worker_stats {
    unsigned idle, starting, running;
    unsigned unkilled;          /* W_UNKILLED now (also counted in running) */
    unsigned long long deadline_kills, crashes, setup_failures;
    unsigned long long kill_failures;   /* refused kills of workers that did not then end
                                         * by themselves in time */
    unsigned layers;            /* the isolation layers the last ready worker applied */
    int layers_known;
    int64_t spawn_retry_at;     /* no new worker before then: one just failed its set-up */
};

/* Workers register their sockets in epfd (the executor's); output_cap bounds the frames
 * a busy worker may send (its block reports). */
void worker_link_init(int epfd, size_t output_cap);

/* A worker the zygote forked: takes over fds (socket, stdout and stderr memfds, pidfd).
 * Returns 0, or -1 when out of memory (the descriptors are then closed). */
int worker_add(pid_t pid, const int fds[4]);

/* A worker in the pool, ready for a job, or NULL. */
struct worker *worker_find_idle(void);

/* Starts the job on w (idle in the pool, or a session's waiting for its next execution):
 * attaches it, sends it its input files (numbered from first_file) and code. Returns 0,
 * or -1 when out of memory (the job stays the caller's, unanswered). */
int worker_start_job(struct worker *w, struct job *job);

/* Keeps a pool worker for a session: it waits for jobs until discarded. counted: its
 * executions count among the running ones (a model turn's interpreter). */
void worker_keep(struct worker *w, int counted);

/* Kills w (through its pidfd) and closes its descriptors; the job it ran, if any, is
 * failed with r and message. The struct stays until workers_free_dead, with state
 * W_DEAD and end_reason, so that its session can learn why it ended; or, when the kernel
 * refused the kill, W_UNKILLED until it is seen to end. Idempotent. */
void worker_discard(struct worker *w, enum px_result r, const char *message);

/* At shutdown, after the zygote stopped: ends the workers whose kill was refused (as
 * their own uid) and lets go of them, saying so for any that could not be ended. */
void workers_abandon_unkilled(void);

/* Discards every worker (the zygote died, or the server stops), each with end_reason. */
void workers_discard_all(enum px_result r, const char *message, const char *end_reason);

/* Handles epoll events on the worker's socket: sends what is pending, reads reports. */
void worker_on_event(struct worker *w, uint32_t events);

/* The zygote reaped pid: answers its job if it died mid-job, and discards it. */
void worker_on_exited(pid_t pid, const struct worker_exit *how);

/* Deadlines of running blocks, exit-status waits, workers stuck starting. */
void workers_check_timers(int64_t now);
/* The earliest of `next` and the workers' timers. */
int64_t workers_next_timer(int64_t next);

/* Frees the structs of discarded workers. Call only between event batches, after every
 * holder of a worker pointer (sessions) has let go of the dead ones. */
void workers_free_dead(void);

void workers_stats(struct worker_stats *st);

#endif
