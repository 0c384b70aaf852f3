/* A worker: the child the zygote forks for one request (or one session). It confines
 * itself, says READY, then runs the jobs it is sent, reporting each, until the server
 * lets it go. Never returns. */
#ifndef PYEXECD_WORKER_H
#define PYEXECD_WORKER_H

#include "../common/worker_exit.h"
#include "confine.h"


struct worker_start {
    int sock;        /* stream socket to the server */
    int out_fd;      /* capture memfd for stdout; becomes fd 1 (this copy is closed) */
    int err_fd;      /* capture memfd for stderr; becomes fd 2 (this copy is closed) */
    int zygote_fds[5];   /* the zygote's own descriptors, closed first; -1: none */
    struct confine_config confine;
};

/* Runs in the forked child of the zygote. Takes over the descriptors in ws, closes every
 * other (fds.h says what the code sees), and never returns. */
_Noreturn void worker_main(const struct worker_start *ws);

/* Ends every process the code started (children, and orphans re-parented to us) and reaps
 * them: called after each code block, so that nothing a block started outlives it or
 * writes into the next block's output. Only where the worker is sure to signal nobody
 * else: pid 1 of its own PID namespace, or alone with its own uid; otherwise a no-op. */
void worker_end_children(void);

#endif
