/* The isolation layers a worker can run under, as bits. The zygote probes which ones the
 * kernel grants at start; each worker reports the ones it applied; /healthz lists them. */
#ifndef PYEXECD_ISOLATION_H
#define PYEXECD_ISOLATION_H

enum isolation_layer {
    ISO_SECCOMP       = 1u << 0,  /* syscall allow-list (sandbox/seccomp_filter.c) */
    ISO_NO_NEW_PRIVS  = 1u << 1,  /* no set-uid gains; required by seccomp */
    ISO_RLIMITS       = 1u << 2,  /* memory, CPU, file size, files, threads */
    ISO_UID_DROP      = 1u << 3,  /* an unprivileged uid of its own: no signals to others */
    ISO_MOUNT_NS      = 1u << 4,  /* private mounts: tmpfs /root, /tmp, /dev/shm */
    ISO_NET_NS        = 1u << 5,  /* empty network namespace: no interface but a down lo */
    ISO_IPC_NS        = 1u << 6,  /* private System V IPC and POSIX queues */
    ISO_UTS_NS        = 1u << 7,  /* private host name */
};

#define ISO_LAYER_COUNT 8

/* Name of a single layer bit, for logs and /healthz ("seccomp", "mountNamespace", ...). */
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
    }
    return "unknown";
}

#endif
