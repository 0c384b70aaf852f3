/* The embedded CPython: initialised once in the zygote, used after fork by each worker.
 * The only file that includes Python.h. */
#ifndef PYEXECD_PYEMBED_H
#define PYEXECD_PYEMBED_H

#include <stddef.h>
#include <sys/stat.h>

#include "../common/interpreter_info.h"

struct pyembed_options {
    const char *site_packages;   /* the sandbox's libraries (.venv site-packages) */
    const char *runner_file;     /* file name of the runner frame in tracebacks; NULL: none */
    unsigned runner_line;        /* its line number (>= 3) */
    int plain_tracebacks;        /* no str(exc) line before the traceback either */
    const char *executable;      /* sys.executable: the venv's python3 (NULL: leave it) */
    size_t output_cap;           /* bytes kept per block and stream */
    size_t image_cap;            /* bytes per returned image */
    unsigned images_per_block;
    size_t image_bytes_per_request;   /* image bytes per job, all blocks together */
};

/* Starts the interpreter, imports and warms every library, freezes the heap for the GC.
 * On failure returns -1 with a message in err. Call once, single-threaded. */
int pyembed_init(const struct pyembed_options *opt, char *err, size_t errlen);

/* The interpreter's and the libraries' versions, and the imports that failed (for
 * /healthz). Owned by pyembed; valid for the life of the process. */
const struct interpreter_info *pyembed_info(void);

/* In a freshly forked worker, before anything else touches Python: reinitialises
 * CPython's post-fork state (random's reseed among it) and reseeds numpy. The capturing
 * stdout/stderr, made in the zygote, write to whatever fds 1 and 2 are. */
void pyembed_after_fork_child(void);

/* The runner's scout snippets (sandbox/prefault.h): how many there are. */
unsigned pyembed_scout_count(void);

/* In a fork of the zygote that is no worker (a scout): CPython's after-fork work, the
 * worker's after_fork, then scout snippet `job` run as a job's block runs, reporting
 * nothing. Returns 0, or -1 with the error on stderr. */
int pyembed_scout(unsigned job);

/* Runs the code blocks (UTF-8, not NUL-terminated) in order in one namespace. Each
 * block's result is sent on `sock` as an IPC_W_BLOCK_DONE frame as soon as it ends, with
 * the sizes of the capture files (stdout's and stderr's identities in capture: measured
 * through fds 1 and 2 while they still are those files). FAILED outputs follow traceback
 * profile `profile` (enum fidelity). Returns 0, or -1 if the runner itself failed
 * (reported on stderr). codes, lens and capture are borrowed. */
int pyembed_run_job(int sock, const struct stat capture[2], const char *const *codes,
                    const size_t *lens, size_t n, unsigned profile);

#endif
