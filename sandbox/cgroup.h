/* Per-worker control groups: a memory limit without swap and a cap on tasks, where the
 * kernel offers the controllers (cgroup v1 here; v2 when its controllers are enabled).
 * The zygote prepares one group per worker slot; a worker joins its slot's groups as
 * root, before it gives up its privileges. */
#ifndef PYEXECD_CGROUP_H
#define PYEXECD_CGROUP_H

#include <stddef.h>
#include <sys/types.h>

/* What cgroup_setup managed to prepare (enum isolation_layer bits: ISO_CGROUP_MEMORY,
 * ISO_CGROUP_PIDS). */
unsigned cgroup_available(void);

/* Creates the groups for `slots` slots under a directory named after `instance` (so two
 * servers on one machine do not share groups), each limited to memory_bytes (no swap)
 * and `tasks` tasks. That directory goes below this process's own group (what systemd's
 * Delegate= and a container give a service: its own subtree), from /proc/self/cgroup; on
 * cgroup v2, whose groups with processes cannot hand controllers down, the zygote and the
 * server (server_pid) first move into a leaf `server` beside it. Where the own group
 * cannot hold it (v2 controllers not delegated, other processes in the group), at the
 * top of the hierarchy as before. Missing controllers are skipped, not errors. Returns the
 * layers made available (cgroup_available). Call once, in the zygote. */
unsigned cgroup_setup(unsigned instance, unsigned slots, unsigned long long memory_bytes,
                      unsigned tasks, pid_t server_pid);

/* Makes the groups of `slot` and writes their limits, unless done already (cgroup_setup
 * makes only the first LIMIT_CGROUP_EAGER_SLOTS: thousands of session slots would make
 * the start take seconds). Returns 0 (also when no controller is available), or -1 with
 * errno: no worker may then start in that slot. */
int cgroup_prepare(unsigned slot);

/* The directory the workers' groups of a layer (ISO_CGROUP_MEMORY, ISO_CGROUP_PIDS) are
 * made in, or "" when that layer is not available: what /healthz reports. */
const char *cgroup_base(unsigned layer);

/* Moves the calling process into the groups of `slot`. Returns 0, or -1 with errno
 * (the caller then reports the layers as missing). */
int cgroup_join(unsigned slot);

/* How many times the OOM killer has killed in the slot's memory group; 0 when unknown. */
unsigned long long cgroup_oom_kills(unsigned slot);

/* Removes the groups (best effort: groups with live tasks stay). */
void cgroup_cleanup(void);

#endif
