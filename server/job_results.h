/* How a job's block results are made from what its worker left: the bytes in its capture
 * files and its block reports, its death, or its deadline. The output semantics
 * themselves are block_output.c's; this is the bookkeeping of one job: where each block's
 * output begins and ends, the request's budgets, and which limit cut it short. */
#ifndef PYEXECD_JOB_RESULTS_H
#define PYEXECD_JOB_RESULTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "block_output.h"
#include "job.h"

/* How a worker ended, as the zygote reported it. */
struct worker_exit {
    int status;               /* wait status */
    unsigned cpu_ms;          /* CPU time it used */
    unsigned cpu_limit_s;     /* the CPU-time limit it ran under (0: unknown) */
    int oom_killed;           /* its memory cgroup's OOM killer struck */
    int announced;            /* the WORKER_EXIT_* status it announced (IPC_W_ENDING), or
                               * -1: names the exit when the status matches */
};

/* Size of the file behind fd; 0 when it cannot be known (fd < 0, fstat fails). */
off_t capture_size(int fd);

/* Where the next block's output begins: the capture files' current ends. */
void job_mark_captures(struct job *job, int out_fd, int err_fd);

/* Builds the running block's result from the capture files (out_fd, err_fd: the worker's,
 * borrowed) and its ending. out_report/err_report: where the worker said the block's
 * output ends, or -1 for "whatever is there now". flags: BLOCK_FLAG_* of the report.
 * Returns 0, or -1 when out of memory. Does not advance job->block. */
int job_block_result(struct job *job, int out_fd, int err_fd, enum block_end end,
                     const char *error, size_t error_len, unsigned flags,
                     int64_t out_report, int64_t err_report);

/* Keeps one image of the running block if it is a PNG or JPEG within the size limits;
 * returns 0 when it was dropped (a limit; the job records IMAGES), 1 when kept. */
int job_keep_image(struct job *job, const unsigned char *mime, size_t mime_len,
                   const unsigned char *data, size_t data_len);

/* Records which limit cut the job short: what ended the block or the interpreter wins
 * over output and image limits. */
void job_limit_hit(struct job *job, enum limit_hit l);

/* The FAILED text for a worker that died (how: NULL when unknown) and the limit that
 * was. */
enum limit_hit job_describe_death(const struct worker_exit *how, char *buf, size_t len);

#endif
