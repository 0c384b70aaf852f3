#define _GNU_SOURCE
#include "confine.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernel_file.h"
#include "cgroup.h"
#include "../common/isolation.h"
#include "landlock.h"

/* The directory user code runs in, as in the real service. */
#define WORKDIR "/root"
/* Where the minimal /dev is assembled before it is moved over the real one. */
#define DEV_STAGING "/tmp/.pyexecd-dev"

#define MIB (1024ull * 1024)

static int fail(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s: %s", what, strerror(errno));
    return -1;
}

/* Mounts a private, size-capped tmpfs owned by the worker on `path`. No exec, no
 * devices, no set-uid: the code writes data there, nothing to run. */
static int mount_private_tmpfs(const struct confine_config *c, const char *path, unsigned mode)
{
    char opts[160];
    int n = snprintf(opts, sizeof(opts), "size=%llu,nr_inodes=%llu,mode=%o",
                     c->limits->workdir_mib * MIB, c->limits->workdir_inodes, mode);
    snprintf(opts + n, sizeof(opts) - (size_t)n, ",uid=%u,gid=%u", (unsigned)c->uid,
             (unsigned)c->gid);
    if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) == 0)
        return 0;
    /* Root of a user namespace that lacks that uid cannot hand the mount to it: the
     * worker will keep our uid, so keep the mount ours too. */
    if (errno != EINVAL)
        return -1;
    opts[n] = '\0';
    return mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts);
}

/* Makes every mount of this (private) namespace read-only and set-uid-free. */
static int make_tree_readonly(void)
{
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID};
    if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof(attr)) == 0)
        return 0;
    if (errno != ENOSYS)
        return -1;
    /* Before Linux 5.12: remount each mount point, read from mountinfo. */
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -1;
    char line[4096], mp[4096];
    int rc = 0;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
            continue;
        if (mount(NULL, mp, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, NULL) < 0 &&
            errno != EACCES && errno != ENOENT)
            rc = -1;
    }
    fclose(f);
    return rc;
}

/* Replaces /dev with a small tmpfs holding only the harmless devices, bound from the real
 * ones, the usual links, and a private /dev/shm. Needs the private /tmp (the staging
 * place) mounted. */
static int minimal_dev(const struct confine_config *c)
{
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom"};
    static const char *const links[][2] = {
        {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
        {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
    };
    char path[128];
    if (mkdir(DEV_STAGING, 0755) < 0 ||
        mount("tmpfs", DEV_STAGING, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755") < 0)
        return -1;
    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        char src[64];
        snprintf(path, sizeof(path), DEV_STAGING "/%s", nodes[i]);
        snprintf(src, sizeof(src), "/dev/%s", nodes[i]);
        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
        if (fd < 0 || close(fd) < 0 || mount(src, path, NULL, MS_BIND, NULL) < 0)
            return -1;
    }
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        snprintf(path, sizeof(path), DEV_STAGING "/%s", links[i][0]);
        if (symlink(links[i][1], path) < 0)
            return -1;
    }
    if (mkdir(DEV_STAGING "/shm", 01777) < 0 ||
        mount(DEV_STAGING, "/dev", NULL, MS_MOVE, NULL) < 0 ||
        rmdir(DEV_STAGING) < 0 || mount_private_tmpfs(c, "/dev/shm", 0700) < 0)
        return -1;
    /* Nothing more is created in /dev itself. */
    return mount(NULL, "/dev", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
                 NULL);
}

/* Covers a file of the server (with an empty device) or a directory (with an empty,
 * read-only, unreadable tmpfs). */
static int cover(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(st.st_mode))
        return mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     "size=4k,mode=000");
    return mount("/dev/null", path, NULL, MS_BIND, NULL);
}

/* The mount namespace's contents; see confine_apply. */
static int set_up_mounts(const struct confine_config *c, char *err, size_t errlen)
{
    struct stat st;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return fail(err, errlen, "making mounts private");
    /* The files we are about to cover must be found before anything hides them. */
    for (const char *const *h = c->hide; h && *h; h++)
        if (cover(*h) < 0)
            return fail(err, errlen, "covering the server's files");
    if (make_tree_readonly() < 0)
        return fail(err, errlen, "making the system read-only");
    /* /tmp first: the new /dev is put together there. */
    if (mount_private_tmpfs(c, "/tmp", 01777) < 0)
        return fail(err, errlen, "mounting /tmp");
    if (minimal_dev(c) < 0)
        return fail(err, errlen, "building /dev");
    if (mount_private_tmpfs(c, WORKDIR, 0700) < 0)
        return fail(err, errlen, "mounting the work dir");
    if (stat("/var/tmp", &st) == 0 && mount_private_tmpfs(c, "/var/tmp", 01777) < 0)
        return fail(err, errlen, "mounting /var/tmp");
    /* A /proc of our own PID namespace: no other process to see. Mounted over the host's
     * rather than after unmounting it: the unmount waits for an RCU grace period, about
     * a millisecond per worker. */
    if (c->in_new_pid_ns &&
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return fail(err, errlen, "mounting /proc");
    /* Where the code may run programs: no memfd can be executed (an anonymous file is on
     * no path, so Landlock's execute wall cannot see it). The setting belongs to our PID
     * namespace, and 2 also refuses MFD_EXEC. */
    if (c->nexec && (!c->in_new_pid_ns ||
                     kernel_file_write("/proc/sys/vm/memfd_noexec", "2") < 0))
        return fail(err, errlen, "making memfds non-executable (a policy that runs programs "
                    "needs a PID namespace and vm.memfd_noexec)");
    /* Emptied: /run holds the host's service sockets (a socket file the code can write
     * to is a way out that neither the network namespace nor Landlock closes), and the
     * cgroup tree shows other workers' memory. */
    static const char *const emptied[] = {"/run", "/sys/fs/cgroup"};
    for (size_t i = 0; i < sizeof(emptied) / sizeof(emptied[0]); i++)
        if (stat(emptied[i], &st) == 0 && cover(emptied[i]) < 0)
            return fail(err, errlen, "covering the host's sockets and cgroups");
    if (chdir(WORKDIR) < 0)
        return fail(err, errlen, "entering the work dir");
    return 0;
}

/* Address space currently mapped, in bytes (first field of /proc/self/statm). */
static unsigned long long mapped_bytes(void)
{
    unsigned long long pages = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        if (fscanf(f, "%llu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return pages * (unsigned long long)sysconf(_SC_PAGESIZE);
}

static int set_limit(int resource, unsigned long long value)
{
    struct rlimit rl = {.rlim_cur = value, .rlim_max = value};
    return setrlimit(resource, &rl);
}

/* A user namespace in which root is the worker's own unprivileged uid outside, then no
 * capability at all: code that asks sees uid 0 (as in the real service), the kernel sees
 * an unprivileged user, and every mount stays locked as made. */
static int enter_user_namespace(const struct confine_config *c)
{
    char map[64];
    if (unshare(CLONE_NEWUSER) < 0)
        return -1;
    /* Since the uid change this process is not dumpable, so its /proc files belong to
     * root: be dumpable just long enough to write the maps. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)c->uid);
    int rc = kernel_file_write("/proc/self/setgroups", "deny");
    if (rc == 0)
        rc = kernel_file_write("/proc/self/uid_map", map);
    snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)c->gid);
    if (rc == 0)
        rc = kernel_file_write("/proc/self/gid_map", map);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (rc < 0)
        return -1;
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    return (int)syscall(SYS_capset, &hdr, data);
}

/* Applies one optional layer: in probing mode a refusal is skipped, otherwise fatal. */
#define LAYER(bit, expr, what)                                                         \
    do {                                                                               \
        if (c->want & (bit)) {                                                         \
            if ((expr) == 0)                                                           \
                layers |= (bit);                                                       \
            else if (!c->probing)                                                      \
                return fail(err, errlen, what);                                        \
        }                                                                              \
    } while (0)

int confine_apply(const struct confine_config *c, unsigned *applied, char *err, size_t errlen)
{
    unsigned layers = 0;

    /* 1. Namespaces that need no set-up inside. An empty network namespace leaves the
     *    code no interface but a loopback that is down: nothing to reach. */
    LAYER(ISO_NET_NS, unshare(CLONE_NEWNET), "network namespace");
    LAYER(ISO_IPC_NS, unshare(CLONE_NEWIPC), "IPC namespace");
    LAYER(ISO_UTS_NS, unshare(CLONE_NEWUTS), "UTS namespace");
    if (c->in_new_pid_ns)
        layers |= ISO_PID_NS;

    /* 2. Control groups, joined while we are root: memory without swap, a task cap. */
    unsigned cg = c->want & (ISO_CGROUP_MEMORY | ISO_CGROUP_PIDS) & cgroup_available();
    if (cg) {
        if (cgroup_join(c->slot) == 0)
            layers |= cg;
        else if (!c->probing)
            return fail(err, errlen, "joining the cgroups");
    }
    if (!c->probing && (c->want & (ISO_CGROUP_MEMORY | ISO_CGROUP_PIDS)) != cg) {
        errno = ENODEV;
        return fail(err, errlen, "cgroups");
    }

    /* 3. Mount namespace: a read-only view of the system, a minimal /dev, a fresh tmpfs
     *    at /root holding nothing but what the request puts there, private /tmp,
     *    /var/tmp and /dev/shm, our own /proc, and the server's files covered. Without
     *    it: a private directory the zygote made. */
    if ((c->want & ISO_MOUNT_NS) && unshare(CLONE_NEWNS) == 0) {
        if (set_up_mounts(c, err, errlen) < 0) {
            /* Half-made mounts cannot be undone here: when probing, report the layer
             * as the one to try again without. */
            if (c->probing)
                *applied = ISO_MOUNT_NS;
            return -1;
        }
        layers |= ISO_MOUNT_NS;
    } else {
        if ((c->want & ISO_MOUNT_NS) && !c->probing)
            return fail(err, errlen, "mount namespace");
        if (!c->fallback_dir || chdir(c->fallback_dir) < 0)
            return fail(err, errlen, "entering the private work dir");
    }

    /* The root the zygote built and this worker inherited (minimal_root.c): nothing to do
     * here but say so. */
    if ((c->want & ISO_MINIMAL_ROOT) && (layers & ISO_MOUNT_NS))
        layers |= ISO_MINIMAL_ROOT;

    /* 4. A host name of its own (only visible with the UTS namespace). */
    if ((layers & ISO_UTS_NS) && sethostname("sandbox", 7) < 0)
        return fail(err, errlen, "setting the host name");

    /* 5. Resource limits, hard and soft alike so the code cannot raise them back. The
     *    address-space limit makes a memory bomb a clean MemoryError. RLIMIT_CORE is 1, not
     *    0: the kernel ignores the limit when core_pattern pipes dumps to a program
     *    (systemd-coredump, apport), except that 1 aborts the dump, and a dump to a file
     *    needs a page; the code can make itself dumpable again, so this is what keeps its
     *    memory from a root helper on such hosts. */
    const struct policy_limits *l = c->limits;
    if (set_limit(RLIMIT_AS, mapped_bytes() + l->address_space_mib * MIB) < 0 ||
        set_limit(RLIMIT_CPU, l->cpu_seconds) < 0 ||
        set_limit(RLIMIT_FSIZE, l->file_size_mib * MIB) < 0 ||
        set_limit(RLIMIT_NOFILE, l->open_files) < 0 ||
        set_limit(RLIMIT_NPROC, l->threads) < 0 || set_limit(RLIMIT_CORE, 1) < 0)
        return fail(err, errlen, "setting resource limits");
    layers |= ISO_RLIMITS;

    /* 6. Identity: a uid and gid of the worker's own, no supplementary groups. The kernel
     *    then refuses its signals to the server, the zygote and other workers, and
     *    RLIMIT_NPROC counts only its threads. */
    LAYER(ISO_UID_DROP,
          (setgroups(0, NULL) == 0 && setresgid(c->gid, c->gid, c->gid) == 0 &&
           setresuid(c->uid, c->uid, c->uid) == 0) ? 0 : -1,
          "changing to the worker's uid");

    /* 7. A user namespace where the code is root over nothing. */
    LAYER(ISO_USER_NS, enter_user_namespace(c), "user namespace");

    /* Changing credentials cleared the parent-death signal set right after the fork: set
     * it again, so that a worker dies with the zygote even when no server is left to
     * kill it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return fail(err, errlen, "setting the parent-death signal");

    /* 8. No privilege gains through exec or file capabilities; Landlock and seccomp need
     *    it. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return fail(err, errlen, "setting no_new_privs");
    layers |= ISO_NO_NEW_PRIVS;

    /* 9. Landlock: writes only where the work dirs are, no TCP, signals and abstract
     *    sockets kept inside. */
    static const char *const private_dirs[] = {WORKDIR, "/tmp", "/var/tmp", "/dev/shm", NULL};
    const char *fallback[] = {c->fallback_dir, NULL};
    LAYER(ISO_LANDLOCK, landlock_apply((layers & ISO_MOUNT_NS) ? private_dirs : fallback,
                                       c->exec, c->nexec),
          "Landlock");

    /* 10. Last: the system-call allow-list. Everything above needed calls it forbids. */
    if (seccomp_program_load(c->seccomp) < 0)
        return fail(err, errlen, "loading the seccomp filter");
    layers |= ISO_SECCOMP;

    *applied = layers;
    return 0;
}
