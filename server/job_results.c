#define _GNU_SOURCE
#include "job_results.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../common/block_report.h"
#include "../common/limits.h"
#include "../common/worker_exit.h"

off_t capture_size(int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 ? st.st_size : 0;
}

void job_mark_captures(struct job *job, int out_fd, int err_fd)
{
    job->out_mark = capture_size(out_fd);
    job->err_mark = capture_size(err_fd);
}

void job_limit_hit(struct job *job, enum limit_hit l)
{
    int minor = l == LIMIT_HIT_OUTPUT || l == LIMIT_HIT_IMAGES;
    if (job->res->limit == LIMIT_HIT_NONE || !minor)
        job->res->limit = l;
}

/* Where a block's output ends: as the worker reported it (it runs ahead of us), kept
 * within what the file holds and not before where the block began. A negative report
 * means "now" (the worker was killed or died). */
static off_t clamp_end(int fd, off_t mark, int64_t reported)
{
    off_t size = capture_size(fd);
    off_t end = reported < 0 || reported > size ? size : (off_t)reported;
    return end < mark ? mark : end;
}

/* What is left of the request's output budget (at least one full block's worth). */
static size_t request_output_left(const struct job *job)
{
    size_t budget = LIMIT_OUTPUT_BYTES_PER_REQUEST;
    if (budget < 3 * job->settings.output_cap)
        budget = 3 * job->settings.output_cap;   /* stdout, stderr and the error of one block */
    return job->output_bytes < budget ? budget - job->output_bytes : 0;
}

static int truncation(unsigned flags, unsigned full, unsigned cut)
{
    return (flags & full) ? TRUNCATED_FULL : (flags & cut) ? TRUNCATED_CAP : TRUNCATED_NONE;
}

int job_block_result(struct job *job, int out_fd, int err_fd, enum block_end end,
                     const char *error, size_t error_len, unsigned flags,
                     int64_t out_report, int64_t err_report)
{
    off_t out_end = clamp_end(out_fd, job->out_mark, out_report);
    off_t err_end = clamp_end(err_fd, job->err_mark, err_report);
    struct block_output_input in = {
        .end = end,
        .out = {.fd = out_fd, .start = job->out_mark, .end = out_end},
        .err = {.fd = err_fd, .start = job->err_mark, .end = err_end},
        .out_truncated = truncation(flags, BLOCK_FLAG_STDOUT_FULL, BLOCK_FLAG_STDOUT_TRUNCATED),
        .err_truncated = truncation(flags, BLOCK_FLAG_STDERR_FULL, BLOCK_FLAG_STDERR_TRUNCATED),
        .error_text = error,
        .error_len = error_len,
        .cap = job->settings.output_cap,
        .budget = request_output_left(job),
        .failed_stdout = job->settings.failed_stdout,
    };
    int truncated = 0;
    struct block_result *b = &job->res->blocks[job->block];
    if (block_output_build(b, &in, &truncated) < 0)
        return -1;
    for (size_t i = 0; i < b->nentries; i++)
        job->output_bytes += b->entries[i].output_len;
    if (truncated)
        job_limit_hit(job, LIMIT_HIT_OUTPUT);
    job->out_mark = out_end;
    job->err_mark = err_end;
    return 0;
}

int job_keep_image(struct job *job, const unsigned char *mime, size_t mime_len,
                   const unsigned char *data, size_t data_len)
{
    struct block_result *b = &job->res->blocks[job->block];
    const char *m = NULL;
    if (mime_len == 9 && memcmp(mime, "image/png", 9) == 0)
        m = "image/png";
    else if (mime_len == 10 && memcmp(mime, "image/jpeg", 10) == 0)
        m = "image/jpeg";
    if (!m || data_len > LIMIT_IMAGE_BYTES || b->nimages >= LIMIT_IMAGES_PER_BLOCK ||
        job->image_bytes + data_len > LIMIT_IMAGE_BYTES_PER_REQUEST)
        goto dropped;
    if (!b->images && !(b->images = calloc(LIMIT_IMAGES_PER_BLOCK, sizeof(struct image))))
        goto dropped;
    struct image *img = &b->images[b->nimages];
    img->mime = strdup(m);
    img->data = malloc(data_len ? data_len : 1);
    if (!img->mime || !img->data) {
        free(img->mime);
        free(img->data);
        memset(img, 0, sizeof(*img));
        goto dropped;
    }
    memcpy(img->data, data, data_len);
    img->len = data_len;
    job->image_bytes += data_len;
    b->nimages++;
    return 1;
dropped:
    job_limit_hit(job, LIMIT_HIT_IMAGES);
    return 0;
}

enum limit_hit job_describe_death(const struct worker_exit *how, char *buf, size_t len)
{
    if (!how) {
        snprintf(buf, len, "The interpreter process ended unexpectedly.\n");
        return LIMIT_HIT_CRASH;
    }
    if (!WIFSIGNALED(how->status)) {
        int status = WEXITSTATUS(how->status);
        if (status == WORKER_EXIT_ABORTED && how->announced == status) {
            snprintf(buf, len, "The interpreter process was stopped: aborted (signal %d, "
                     "SIGABRT).\n", SIGABRT);
            return LIMIT_HIT_CRASH;
        }
        const char *why = how->announced != status ? NULL
                        : status == WORKER_EXIT_RUNNER ? "the sandbox's runner failed"
                        : status == WORKER_EXIT_PROTOCOL ? "the sandbox's channel broke"
                        : NULL;
        if (why)
            snprintf(buf, len, "The interpreter process was stopped: %s.\n", why);
        else
            snprintf(buf, len, "The interpreter process exited with status %d.\n", status);
        return LIMIT_HIT_CRASH;
    }
    int sig = WTERMSIG(how->status);
    enum limit_hit limit = LIMIT_HIT_CRASH;
    const char *why;
    switch (sig) {
    case SIGSYS: why = "it made a system call the sandbox forbids"; limit = LIMIT_HIT_SYSCALL; break;
    case SIGXCPU: why = "it used up its CPU time limit"; limit = LIMIT_HIT_CPU_TIME; break;
    case SIGXFSZ: why = "it wrote past its file size limit"; limit = LIMIT_HIT_FILE_SIZE; break;
    case SIGKILL:
        /* Not ours (we answer our own kills without waiting for the status): the OOM
         * killer, RLIMIT_CPU's hard limit (pid 1 of a namespace never sees the SIGXCPU
         * before it), or someone on the host. */
        if (how->oom_killed) {
            why = "it ran out of memory";
            limit = LIMIT_HIT_MEMORY;
        } else if (how->cpu_limit_s && how->cpu_ms + 1000 >= how->cpu_limit_s * 1000ull) {
            why = "it used up its CPU time limit";
            limit = LIMIT_HIT_CPU_TIME;
        } else {
            why = "it was killed from outside the sandbox";
        }
        break;
    case SIGSEGV: why = "segmentation fault"; break;
    case SIGABRT: why = "aborted"; break;
    case SIGBUS: why = "bus error"; break;
    case SIGFPE: why = "arithmetic error"; break;
    default: why = "killed by a signal";
    }
    snprintf(buf, len, "The interpreter process was stopped: %s (signal %d, SIG%s).\n", why,
             sig, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    return limit;
}
