/* What /healthz reports: filled by the routes from the executor's snapshot and the
 * configuration, encoded by the wire codec. */
#ifndef PYEXECD_HEALTH_REPORT_H
#define PYEXECD_HEALTH_REPORT_H

#include <sys/types.h>

enum zygote_state {
    ZYGOTE_STARTING,    /* launched, importing the libraries */
    ZYGOTE_READY,       /* forking workers */
    ZYGOTE_DOWN,        /* died; a restart is scheduled */
    ZYGOTE_STOPPED,     /* the server is shutting down */
};

struct health_report {
    enum zygote_state zygote_state;
    pid_t zygote_pid;
    unsigned zygote_restarts;
    unsigned workers_max;        /* concurrent executions */
    unsigned running;
    unsigned pool_target;
    unsigned pool_ready;         /* forked, sandboxed, waiting */
    unsigned pool_starting;      /* being forked or sandboxing themselves */
    unsigned queue_depth;
    unsigned queue_max;
    unsigned sessions;           /* alive */
    unsigned sessions_max;
    unsigned layers;             /* enum isolation_layer bits granted by the kernel */
    int layers_known;            /* 0 until the zygote has probed */
    unsigned long long executions;
    unsigned long long deadline_kills;
    unsigned long long worker_crashes;
    unsigned long long setup_failures;
    const char *info_json;       /* interpreter and library versions, borrowed; may be NULL */
    unsigned deadline_ms;
    unsigned long long output_bytes;
    unsigned long long body_bytes;
    unsigned long long input_file_bytes;
    const char *policy_name;     /* borrowed */
};

#endif
