/* The exit statuses a worker uses for its own ends (user code's os._exit aside), which
 * the server names in the block's result. */
#ifndef PYEXECD_WORKER_EXIT_H
#define PYEXECD_WORKER_EXIT_H

#define WORKER_EXIT_SETUP 70      /* could not confine itself: reported, then exits */
#define WORKER_EXIT_PROTOCOL 71   /* the server sent something unreadable */
#define WORKER_EXIT_RUNNER 72     /* the runner itself failed */
/* abort() was called (SIGABRT): pid 1 of its PID namespace cannot die of a signal it sends
 * itself, so its handler ends it with this status instead. */
#define WORKER_EXIT_ABORTED 73

#endif
