/* The isolation layers a worker can run under, as bits. The zygote probes which ones the
 * kernel grants at start; each worker reports the ones it applied; /healthz lists them,
 * and --require-isolation makes a missing one fatal. */
#ifndef PYEXECD_ISOLATION_H
#define PYEXECD_ISOLATION_H

enum isolation_layer {
    ISO_SECCOMP       = 1u << 0,  /* syscall allow-list from the policy */
    ISO_NO_NEW_PRIVS  = 1u << 1,  /* no set-uid gains; required by seccomp and Landlock */
    ISO_RLIMITS       = 1u << 2,  /* address space, CPU, file size, files, threads */
    ISO_UID_DROP      = 1u << 3,  /* an unprivileged uid of its own */
    ISO_MOUNT_NS      = 1u << 4,  /* read-only system, private tmpfs /root /tmp, own /proc, /dev */
    ISO_NET_NS        = 1u << 5,  /* empty network namespace: only a down loopback */
    ISO_IPC_NS        = 1u << 6,  /* private System V IPC and POSIX queues */
    ISO_UTS_NS        = 1u << 7,  /* private host name */
    ISO_PID_NS        = 1u << 8,  /* the worker is pid 1 of its own PID namespace */
    ISO_USER_NS       = 1u << 9,  /* root inside maps to the worker's unprivileged uid */
    ISO_LANDLOCK      = 1u << 10, /* second file-system wall; no TCP; signals stay inside */
    ISO_CGROUP_MEMORY = 1u << 11, /* memory limit without swap */
    ISO_CGROUP_PIDS   = 1u << 12, /* task limit */
    ISO_MINIMAL_ROOT  = 1u << 13, /* its own root: /usr, the venv, a synthesized /etc, not the
                                   * host's file system */
};

#define ISO_LAYER_COUNT 14
#define ISO_ALL ((1u << ISO_LAYER_COUNT) - 1)

/* Name of a single layer bit, for logs and /healthz. */
static inline const char *isolation_layer_name(unsigned bit)
{
    switch (bit) {
    case ISO_SECCOMP: return "seccomp";
    case ISO_NO_NEW_PRIVS: return "noNewPrivs";
    case ISO_RLIMITS: return "rlimits";
    case ISO_UID_DROP: return "uidDrop";
    case ISO_MOUNT_NS: return "mountNamespace";
    case ISO_NET_NS: return "networkNamespace";
    case ISO_IPC_NS: return "ipcNamespace";
    case ISO_UTS_NS: return "utsNamespace";
    case ISO_PID_NS: return "pidNamespace";
    case ISO_USER_NS: return "userNamespace";
    case ISO_LANDLOCK: return "landlock";
    case ISO_CGROUP_MEMORY: return "cgroupMemory";
    case ISO_CGROUP_PIDS: return "cgroupPids";
    case ISO_MINIMAL_ROOT: return "minimalRoot";
    }
    return "unknown";
}

#endif
