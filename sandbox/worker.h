/* A worker: the child the zygote forks for one request. It confines itself, says READY,
 * waits for its job, runs it, reports, exits. Never returns. */
#ifndef PYEXECD_WORKER_H
#define PYEXECD_WORKER_H

#include "confine.h"

/* Exit statuses a worker uses for its own failures (user code's os._exit aside). */
#define WORKER_EXIT_SETUP 70      /* could not confine itself: reported, then exits */
#define WORKER_EXIT_PROTOCOL 71   /* the server sent something unreadable */
#define WORKER_EXIT_RUNNER 72     /* the runner itself failed */

/* Fixed descriptor numbers inside a worker. The runner measures the capture files
 * through its private copies, which the code has no reason to touch (fds 1 and 2 it may
 * close or redirect). */
#define WORKER_FD_SOCK 3
#define WORKER_FD_OUT_COPY 4
#define WORKER_FD_ERR_COPY 5

struct worker_start {
    int sock;        /* stream socket to the server */
    int out_fd;      /* capture memfd for stdout */
    int err_fd;      /* capture memfd for stderr */
    struct confine_config confine;
};

/* Runs in the forked child of the zygote. Takes over the descriptors in ws (closes every
 * other one). Never returns. */
_Noreturn void worker_main(const struct worker_start *ws);

#endif
