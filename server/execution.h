/* What an execution is asked to do and what it produced, and the answer the executor
 * gives: the types shared by the wire codec (server/wire.c), the executor
 * (server/executor.c) and the routes. */
#ifndef PYEXECD_EXECUTION_H
#define PYEXECD_EXECUTION_H

#include <stddef.h>
#include <stdint.h>

#include "../common/limits.h"
#include "../common/result.h"

struct input_file {
    const char *ext;          /* "csv", from its MIME type: static text. Its name in the
                               * work dir (input_file_N.ext) is given when it is sent */
    unsigned char *data;      /* decoded bytes: owned */
    size_t len;
};

struct exec_request {
    char **codes;             /* UTF-8 code of each block, NUL-terminated: owned */
    size_t *code_lens;
    size_t ncodes;
    struct input_file *files; /* owned */
    size_t nfiles;
    unsigned deadline_ms;     /* per block; 0: the server's */
    unsigned fidelity;        /* traceback profile (enum fidelity); 0: the server's */
    struct exec_stats *stats; /* borrowed, may be NULL: the executor adds to it (on its
                               * thread, before `done`) what each execution cost and how
                               * it ended */
};

/* The real service's outcome enum (values as in the API). */
enum outcome {
    OUTCOME_OK = 1,
    OUTCOME_FAILED = 2,
    OUTCOME_DEADLINE_EXCEEDED = 3,
};

/* One codeExecutionResult part. */
struct result_entry {
    enum outcome outcome;
    char *output;             /* valid UTF-8, owned; NULL: the output field is absent */
    size_t output_len;
};

struct image {
    char *mime;               /* owned */
    unsigned char *data;      /* owned */
    size_t len;
};

/* What one code block produced: usually one result entry; two when a failed block had
 * printed to stdout and the server splits them as the real service did (stdout in an
 * OK result, then the FAILED one). */
struct block_result {
    struct result_entry entries[2];
    size_t nentries;
    struct image *images;     /* owned */
    size_t nimages;
};

/* Which limit, if any, ended or cut an execution (reported beside the parts). */
enum limit_hit {
    LIMIT_HIT_NONE = 0,
    LIMIT_HIT_DEADLINE,       /* wall time: killed from outside */
    LIMIT_HIT_OUTPUT,         /* stdout or stderr cut */
    LIMIT_HIT_IMAGES,         /* images dropped (count or size) */
    LIMIT_HIT_CRASH,          /* the interpreter died of something else */
    LIMIT_HIT_MEMORY,         /* MemoryError, or killed by the memory cgroup */
    LIMIT_HIT_DISK,           /* no space (or no inode) left in its tmpfs */
    LIMIT_HIT_FILE_SIZE,      /* a file reached RLIMIT_FSIZE */
    LIMIT_HIT_THREADS,        /* no thread could be started */
    LIMIT_HIT_OPEN_FILES,     /* no descriptor left */
    LIMIT_HIT_CPU_TIME,       /* RLIMIT_CPU: SIGXCPU */
    LIMIT_HIT_SYSCALL,        /* seccomp killed it for a forbidden call */
};

/* How the executions of one request ended and where their time went (the request's log
 * line). Phases in nanoseconds: queue, waiting for a free --workers slot (and in order);
 * worker_start, with a slot free, waiting for a sandboxed worker (the pool was empty: a
 * fork and a sandbox set-up); run, from handing the job to its worker to its answer. */
struct exec_stats {
    unsigned executions;      /* executions answered (with results or an error) */
    enum outcome outcome;     /* the first one not OK among them (0: none ran) */
    enum limit_hit limit;     /* the first limit hit among them */
    int64_t queue_ns, worker_start_ns, run_ns;
};

struct exec_result {
    struct block_result *blocks;  /* one per code block: owned */
    size_t nblocks;
    enum limit_hit limit;
    int session_ended;        /* the session this ran in is over (its interpreter stopped) */
};

/* What a session looks like from outside. Times are wall-clock milliseconds since the
 * epoch. */
struct session_info {
    char id[LIMIT_SESSION_ID_BYTES];   /* "<replica>.<128 random bits in hex>" */
    long long create_time_ms;
    long long last_use_time_ms;
    long long expire_time_ms;     /* when it ends if left unused */
    unsigned long long executions;
    unsigned long long memory_bytes;   /* private memory of its interpreter */
    int busy;                     /* an execution is running */
};

/* The one answer the executor gives each accepted call: PX_OK with what it produced, or
 * an error with a message for the client (PX_NOT_FOUND, PX_UNAVAILABLE, ...). */
struct exec_reply {
    enum px_result status;
    const char *message;          /* on error; may be NULL; valid during the callback */
    struct exec_result *result;   /* an execution's results on PX_OK: the callee takes
                                   * them over and frees them with exec_result_free */
    struct session_info session;  /* a session operation's session on PX_OK */
};

/* Called exactly once per accepted call, on the executor thread. Must not block. */
typedef void (*exec_done_fn)(void *ctx, struct exec_reply *reply);

/* An execution's outcome: the first result that is not OK, else OK (0 without results). */
enum outcome exec_result_outcome(const struct exec_result *res);

/* "OUTCOME_OK" and the others, as the API writes them. */
const char *exec_outcome_name(enum outcome o);
/* "DEADLINE", "OUTPUT_BYTES", ... as executionMetadata.limitReached says; NULL for none. */
const char *exec_limit_name(enum limit_hit l);

void exec_request_release(struct exec_request *req);
/* Frees everything the result owns and the result itself. NULL is fine. */
void exec_result_free(struct exec_result *res);

#endif
