/* The server's side of the zygote: starting it, restarting it (with back-off) when it
 * dies, asking it for workers, and reading what it reports (ready, a worker forked, a
 * worker reaped, a fork failed). Everything here runs on the executor thread. */
#ifndef PYEXECD_ZYGOTE_LINK_H
#define PYEXECD_ZYGOTE_LINK_H

#include <stdint.h>
#include <sys/types.h>

#include "../common/interpreter_info.h"
#include "event_tag.h"

enum zygote_state {
    ZYGOTE_STARTING,    /* launched, importing the libraries */
    ZYGOTE_READY,       /* forking workers */
    ZYGOTE_DOWN,        /* died; a restart is scheduled */
    ZYGOTE_STOPPED,     /* the server is shutting down */
};

struct zygote_link_config {
    char *const *argv;            /* the zygote's command line (borrowed for good) */
    char *const *env;             /* its whole environment (idem) */
    int policy_fd;                /* the checked policy text, for each start (borrowed) */
    unsigned required_layers;     /* isolation layers without which the server stops
                                   * (--require-isolation) */
    unsigned policy_layers;       /* the same, because the policy needs them */
    int epfd;                     /* the executor's epoll set */
};

/* What /healthz shows of the zygote. */
struct zygote_status {
    enum zygote_state state;
    pid_t pid;
    unsigned restarts;
    unsigned layers;              /* what its probe found the kernel grants */
    int layers_known;
    const struct interpreter_info *info;   /* its interpreter and libraries, as its last
                                            * HELLO said (borrowed until the next event) */
    const char *cgroup_memory;    /* where the workers' memory groups are ("" none; the */
    const char *cgroup_pids;      /* same borrowing), and their pids groups */
};

void zygote_link_init(const struct zygote_link_config *cfg);

/* Reaps orphans the server inherited (zygote_reap_orphans), when it can inherit any: as
 * PID 1 or a child subreaper. Cheap otherwise; call once per turn of the loop. */
void zygote_link_reap_orphans(void);

/* Launches the zygote and watches its control socket and exit; on failure, schedules a
 * restart. */
void zygote_link_start(void);

/* An event on the zygote's control socket or pidfd. */
void zygote_link_on_event(enum event_source source);

/* The start timeout, and the scheduled restart (not while stopping). */
void zygote_link_check_timers(int64_t now, int stopping);
int64_t zygote_link_next_timer(int64_t next);

/* Asks the zygote for one more worker. Returns 1, or 0 when it cannot now (not ready,
 * or the request could not be sent: retried after LIMIT_SPAWN_RETRY_MS). */
int zygote_link_request_worker(void);

/* Workers asked for and not yet reported forked (or failed). */
unsigned zygote_link_outstanding(void);

/* The zygote's state and what it reported. */
void zygote_link_status(struct zygote_status *st);

/* Nonzero once a required isolation layer turned out missing (the process was sent
 * SIGTERM). Thread-safe. */
int zygote_link_fatal(void);

/* Stops the zygote: it ends its workers and removes their cgroups, within
 * LIMIT_ZYGOTE_STOP_GRACE_MS; then removes the groups a zygote that ended before (killed,
 * or stopped while it started) left behind. */
void zygote_link_stop(void);

#endif
