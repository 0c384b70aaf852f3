/* Internal to the executor (executor.c, executor_workers.c, executor_zygote.c,
 * executor_sessions.c): the state the executor thread owns, and the functions its parts
 * call in each other. Everything here runs on the executor thread unless it says
 * otherwise. */
#ifndef PYEXECD_EXECUTOR_INTERNAL_H
#define PYEXECD_EXECUTOR_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/ipc.h"
#include "executor.h"
#include "zygote_spawn.h"

/* How long requests may wait for a zygote that is starting or restarting before they
 * get 503: a cold start imports every library (1-3.5 s here, more on a first run that
 * builds matplotlib's font cache). */
#define ZYGOTE_WAIT_MS 60000
/* A zygote that has not said HELLO by then is stuck: kill it and start another. */
#define ZYGOTE_START_TIMEOUT_MS 120000
/* Restart back-off after a zygote death: doubles from the first to the last value, and
 * resets once a zygote has lived for ZYGOTE_STABLE_MS. */
#define ZYGOTE_BACKOFF_FIRST_MS 200
#define ZYGOTE_BACKOFF_MAX_MS 10000
#define ZYGOTE_STABLE_MS 30000
/* After a worker's socket closes mid-job, how long to wait for the zygote to report how
 * it died before answering without the reason. */
#define EXIT_STATUS_WAIT_MS 2000
/* A worker that has not said READY by then (it sandboxes itself in milliseconds) is stuck:
 * it is killed, and the pool asks for another. */
#define WORKER_START_TIMEOUT_MS 30000
/* Pause before asking again when the zygote could not fork. */
#define SPAWN_RETRY_MS 200
/* At shutdown, how long the zygote has to end its workers and remove their cgroups. */
#define ZYGOTE_STOP_GRACE_MS 2000
/* With --require-isolation, zygote deaths before HELLO in a row that stop the server. */
#define ZYGOTE_START_ATTEMPTS 3

enum tag_kind { TAG_WAKE, TAG_ZYGOTE_CTL, TAG_ZYGOTE_EXIT, TAG_WORKER };

struct tag {
    enum tag_kind kind;
    struct worker *w;
};

enum worker_state {
    W_STARTING,      /* forked, sandboxing itself */
    W_IDLE,          /* ready for a job (in the pool) */
    W_BUSY,          /* running a request's job */
    W_SESSION_IDLE,  /* holds a session, waiting for its next execution */
    W_SESSION_BUSY,  /* running one of its session's executions */
    W_EXITING,       /* its socket closed mid-job; waiting for its exit status */
    W_DEAD,          /* descriptors closed; freed at the end of the loop iteration */
};

struct job;
struct session;

static inline int worker_busy(const struct worker *w);

struct worker {
    struct worker *next;
    pid_t pid;
    int sock, out_fd, err_fd, pidfd;
    enum worker_state state;
    struct job *job;
    struct ipc_reader rd;
    unsigned char *wbuf;      /* the JOB frame still to send */
    size_t wlen, woff;
    int64_t exit_wait_until;
    int64_t started_at;       /* when the zygote reported it forked */
    struct session *session;  /* the session it serves, or NULL */
    const char *end_reason;   /* why it stops, for its session's tombstone (static text) */
    struct tag tag;
};

static inline int worker_busy(const struct worker *w)
{
    return w->state == W_BUSY || w->state == W_SESSION_BUSY;
}

enum job_kind {
    JOB_EXECUTE,          /* a request: any pool worker, then it is discarded */
    JOB_SESSION_CREATE,   /* takes a pool worker and keeps it */
    JOB_SESSION_EXECUTE,  /* runs in a session's worker */
    JOB_SESSION_GET,
    JOB_SESSION_DELETE,
};

struct job {
    struct job *next;
    enum job_kind kind;
    char session_id[33];      /* the session a JOB_SESSION_* names */
    session_done_fn sdone;    /* the callback of create, get and delete */
    const struct exec_request *req;
    exec_done_fn done;
    void *ctx;
    struct exec_result *res;
    size_t block;             /* index of the running block */
    size_t image_bytes;       /* images kept so far (LIMIT_IMAGE_BYTES_PER_REQUEST) */
    size_t output_bytes;      /* output text kept so far (LIMIT_OUTPUT_BYTES_PER_REQUEST) */
    off_t out_mark, err_mark; /* capture offsets where the running block began */
    int64_t deadline;
    int64_t queued_at;
};

struct executor_state {
    struct executor_config cfg;
    pthread_t thread;
    int epfd, wakefd;

    /* Shared with submitting threads: under lock. */
    pthread_mutex_t lock;
    struct job *incoming, *incoming_tail;
    unsigned admitted;        /* accepted and not yet answered */
    unsigned sessions_reserved;   /* alive plus being created */
    int stopping;
    struct health_report snap;
    char *snap_info;

    /* The executor thread's own. */
    struct job *queue, *queue_tail;
    struct worker *workers;
    unsigned running, idle, starting, spawn_outstanding;
    struct session *sessions;
    unsigned nsessions;
    struct zygote_process z;
    enum zygote_state zstate;
    int64_t zstarted_at, zready_at, restart_at, spawn_retry_at;
    int64_t backoff_ms;
    unsigned restarts;
    unsigned start_failures;  /* zygote deaths before HELLO in a row */
    unsigned layers;
    int layers_known;
    char *info_json;
    unsigned long long executions, deadline_kills, crashes, setup_failures;
    int stop_seen;            /* `stopping` as last read under the lock */
    volatile int fatal;       /* see executor_fatal() */
    struct tag wake_tag, ctl_tag, exit_tag;
};

/* The executor's state, defined in executor.c. */
extern struct executor_state ex;


/* executor.c: shared helpers */
/* Monotonic time in milliseconds. */
int64_t ex_now_ms(void);
/* Size of the file behind fd; 0 when it cannot be known (fd < 0, fstat fails). */
off_t ex_file_size(int fd);
/* epoll_ctl on the executor's set with `tag` as the event's data (tag borrowed: it must
 * outlive the registration). Logs failures other than on EPOLL_CTL_DEL. */
void ex_epoll_watch(int fd, uint32_t events, struct tag *tag, int op);
/* Copies the counters /healthz shows into the shared snapshot (takes the lock). */
void ex_publish_snapshot(void);

/* executor_workers.c: the server's side of each worker */
/* Moves w to state s, keeping the pool's counters (idle, starting, running) right. */
void worker_set_state(struct worker *w, enum worker_state s);
/* SIGKILL through its pidfd; idempotent, and harmless once it has exited. */
void worker_kill(struct worker *w);
/* Kills the worker and closes its descriptors; ends its session if it had one. The struct
 * is freed by workers_free_dead at the end of the loop iteration (events may still name
 * it). A job it ran must have been detached (w->job = NULL) and answered by the caller. */
void worker_discard(struct worker *w);
/* Frees the structs of discarded workers. Call only between event batches. */
void workers_free_dead(void);
/* Handles epoll events on the worker's socket: sends what is pending, reads reports. */
void worker_on_event(struct worker *w, uint32_t events);
/* Reads and handles every report the worker has sent so far; on EOF, the worker is lost. */
void worker_read(struct worker *w);
/* How a worker ended, as the zygote reported it. */
struct worker_exit {
    int status;               /* wait status */
    unsigned cpu_ms;          /* CPU time it used */
    unsigned cpu_limit_s;     /* the CPU-time limit it ran under (0: unknown) */
    int oom_killed;           /* its memory cgroup's OOM killer struck */
};

/* The zygote reaped pid: answers its job if it died mid-job, and discards it. */
void worker_on_exited(pid_t pid, const struct worker_exit *how);
/* Sends the job to an idle worker, which then owns it. Returns 0, or -1 when out of
 * memory (the job stays the caller's, unanswered). */
int worker_start_job(struct worker *w, struct job *job);
/* The running block passed its deadline: kills the worker, answers its job (the block
 * DEADLINE_EXCEEDED with what it printed, later blocks not run), discards it. */
void worker_deadline_expired(struct worker *w);
/* The worker died mid-job; how: NULL when unknown. Answers (and frees) its job; the
 * caller discards the worker. */
void worker_finish_crashed(struct worker *w, const struct worker_exit *how);
/* Answers a job that produced no block results (503 and the like) and frees it. */
void job_fail(struct job *job, enum px_result r, const char *message);

/* executor_sessions.c: interpreters kept across requests */
/* Handles a session job taken from the incoming list: create waits in the queue for a
 * worker (returns 0: queue it, the job stays the caller's); get, delete and execute are
 * answered or started now (returns 1: the job is taken). */
int sessions_take(struct job *job);
/* Turns an idle pool worker into the session a JOB_SESSION_CREATE asked for, answers the
 * job and frees it. */
void sessions_create(struct job *job, struct worker *w);
/* Reserves n input-file numbers in the session; returns the first. */
unsigned sessions_claim_files(struct session *s, unsigned n);
/* The session's execution finished and its worker is idle again. */
void sessions_execution_done(struct session *s);
/* The session's worker is gone (deadline, crash, zygote death, ...): the session ends,
 * remembered with `why` (static text, or NULL). */
void sessions_worker_gone(struct session *s, const char *why);
/* Ends sessions past their idle time or lifetime, and discards their workers. */
void sessions_reap(int64_t now);
/* Milliseconds of the earliest session expiry, or INT64_MAX. */
int64_t sessions_next_expiry(void);
/* Ends every session and answers any execution running in one (shutdown). */
void sessions_end_all(void);
/* Answers a session job that will not run (shutdown, zygote down too long), frees it. */
void sessions_fail(struct job *job, enum px_result r, const char *message);

/* executor_zygote.c: the zygote and the pool of workers it forks */
/* Launches the zygote and watches its control socket and exit; on failure, schedules a
 * restart. */
void zygote_start(void);
/* The zygote is gone: reaps it, answers 503 to every running request, discards every
 * worker (their sessions end), schedules a restart with back-off. */
void zygote_died(const char *why);
/* Handles every message the zygote has sent (READY, workers, exits, spawn failures). */
void zygote_read(void);
/* Asks the zygote for workers until the idle pool plus what is being forked covers the
 * pool target and the queued jobs that could start now. */
void pool_ensure(void);

#endif
