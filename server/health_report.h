/* What /healthz reports: filled by the routes from the executor's snapshot and the
 * configuration, encoded by the wire codec. */
#ifndef PYEXECD_HEALTH_REPORT_H
#define PYEXECD_HEALTH_REPORT_H

#include <sys/types.h>

#include "../common/interpreter_info.h"
#include "zygote_link.h"

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
    unsigned long long kill_failures;   /* refused kills of workers that lived on */
    unsigned unkilled;           /* workers whose kill was refused, not yet ended (in running) */
    unsigned long long worker_crashes;
    unsigned long long setup_failures;
    struct interpreter_info interpreter;   /* python[0] == '\0' until the zygote said */
    char cgroup_memory[256];     /* the workers' memory groups' directory; "" when none */
    char cgroup_pids[256];       /* their pids groups' (the same on cgroup v2) */
    unsigned deadline_ms;
    unsigned long long output_bytes;
    unsigned long long body_bytes;
    unsigned long long input_file_bytes;
    const char *policy_name;     /* borrowed */
    const char *replica_id;      /* "" or NULL: none (borrowed) */
};

#endif
