/* Turns what a worker left behind for one code block (bytes in its capture memfds, its
 * report, or how it died) into the codeExecutionResult entries the real service would
 * send: the Gemini output semantics live here and nowhere else. */
#ifndef PYEXECD_BLOCK_OUTPUT_H
#define PYEXECD_BLOCK_OUTPUT_H

#include <stddef.h>
#include <sys/types.h>

#include "../common/config.h"
#include "execution.h"

enum block_end {
    BLOCK_END_OK,          /* ran to the end (or exit()/sys.exit(0)) */
    BLOCK_END_EXCEPTION,   /* uncaught exception: error text from the runner */
    BLOCK_END_DEADLINE,    /* killed at the deadline */
    BLOCK_END_CRASH,       /* the interpreter died: error text says how */
    BLOCK_END_NOT_RUN,     /* an earlier block ended the interpreter */
};

enum { TRUNCATED_NONE = 0, TRUNCATED_CAP = 1, TRUNCATED_FULL = 2 };

struct capture_range {
    int fd;                /* the worker's capture memfd (borrowed) */
    off_t start, end;      /* bytes of this block */
};

struct block_output_input {
    enum block_end end;
    struct capture_range out, err;
    /* The worker dropped bytes: TRUNCATED_CAP past the per-block cap, TRUNCATED_FULL
     * because the request's capture file is full. */
    int out_truncated, err_truncated;
    const char *error_text;            /* EXCEPTION, CRASH: UTF-8 (borrowed) */
    size_t error_len;
    size_t cap;                        /* bytes kept per stream */
    /* Bytes the block may keep over all its streams (what is left of the request's
     * output budget); each stream keeps at least LIMIT_OUTPUT_BYTES_FLOOR (or cap, if
     * that is smaller), so an error always shows. */
    size_t budget;
    enum failed_stdout failed_stdout;
};

/* Fills out->entries, freeing any it held (images untouched). Returns 0, or -1 when out
 * of memory (out is then left with what was filled, to be freed normally). *truncated
 * is set when some output was cut. */
int block_output_build(struct block_result *out, const struct block_output_input *in,
                       int *truncated);

/* The output text of a block that did not run. */
extern const char block_output_not_run_text[];

#endif
