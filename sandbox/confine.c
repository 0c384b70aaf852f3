#define _GNU_SOURCE
#include "confine.h"

#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "isolation.h"

/* The directory user code runs in, as in the real service. */
#define WORKDIR "/root"

static int fail(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s: %s", what, strerror(errno));
    return -1;
}

/* Mounts a private, size-capped tmpfs owned by the worker on `path` if it exists. No
 * exec, no devices, no set-uid: the code writes data there, nothing to run. */
static int mount_private_tmpfs(const struct confine_config *c, const char *path,
                               unsigned mode, int required)
{
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return required ? -1 : 0;
    char opts[160];
    snprintf(opts, sizeof(opts), "size=%llu,nr_inodes=%u,mode=%o,uid=%u,gid=%u",
             c->workdir_bytes, c->workdir_inodes, mode, (unsigned)c->uid, (unsigned)c->gid);
    return mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts);
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
    struct rlimit rl = { .rlim_cur = value, .rlim_max = value };
    return setrlimit(resource, &rl);
}

int confine_apply(const struct confine_config *c, unsigned *applied, char *err, size_t errlen)
{
    unsigned layers = 0;

    /* 1. Namespaces that need no set-up inside. An empty network namespace leaves the
     *    code no interface but a loopback that is down: nothing to reach. */
    if (unshare(CLONE_NEWNET) == 0)
        layers |= ISO_NET_NS;
    if (unshare(CLONE_NEWIPC) == 0)
        layers |= ISO_IPC_NS;
    if (unshare(CLONE_NEWUTS) == 0)
        layers |= ISO_UTS_NS;

    /* 2. Mount namespace: the work dir is a fresh tmpfs at /root holding nothing but what
     *    the request puts there, gone with the worker. /tmp and the other world-writable
     *    places get their own, so nothing is shared between requests. */
    if (unshare(CLONE_NEWNS) == 0) {
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            return fail(err, errlen, "making mounts private");
        if (mount_private_tmpfs(c, WORKDIR, 0700, 1) < 0)
            return fail(err, errlen, "mounting the work dir");
        if (mount_private_tmpfs(c, "/tmp", 0700, 0) < 0 ||
            mount_private_tmpfs(c, "/var/tmp", 0700, 0) < 0 ||
            mount_private_tmpfs(c, "/dev/shm", 0700, 0) < 0)
            return fail(err, errlen, "mounting a private tmpfs");
        if (chdir(WORKDIR) < 0)
            return fail(err, errlen, "entering the work dir");
        layers |= ISO_MOUNT_NS;
    } else {
        if (!c->fallback_dir || chdir(c->fallback_dir) < 0)
            return fail(err, errlen, "entering the private work dir");
    }

    /* 3. A host name of its own (only visible with the UTS namespace). */
    if ((layers & ISO_UTS_NS) && sethostname("sandbox", 7) < 0)
        return fail(err, errlen, "setting the host name");

    /* 4. Resource limits, hard and soft alike so the code cannot raise them back. The
     *    address-space limit makes a memory bomb a clean MemoryError. */
    if (set_limit(RLIMIT_AS, mapped_bytes() + c->as_headroom) < 0 ||
        set_limit(RLIMIT_CPU, c->cpu_seconds) < 0 ||
        set_limit(RLIMIT_FSIZE, c->file_bytes) < 0 ||
        set_limit(RLIMIT_NOFILE, c->open_files) < 0 ||
        set_limit(RLIMIT_NPROC, c->threads) < 0 ||
        set_limit(RLIMIT_CORE, 0) < 0)
        return fail(err, errlen, "setting resource limits");
    layers |= ISO_RLIMITS;

    /* 5. Identity: a uid and gid of the worker's own, no supplementary groups. The kernel
     *    then refuses its signals to the server, the zygote and other workers, and
     *    RLIMIT_NPROC counts only its threads. Refused when not root: skipped. */
    if (setgroups(0, NULL) == 0 && setresgid(c->gid, c->gid, c->gid) == 0 &&
        setresuid(c->uid, c->uid, c->uid) == 0)
        layers |= ISO_UID_DROP;

    /* 6. No privilege gains through exec or file capabilities; lets us load seccomp. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return fail(err, errlen, "setting no_new_privs");
    layers |= ISO_NO_NEW_PRIVS;

    /* 7. Last: the system-call allow-list. Everything above needed calls it forbids. */
    if (seccomp_program_load(c->seccomp) < 0)
        return fail(err, errlen, "loading the seccomp filter");
    layers |= ISO_SECCOMP;

    *applied = layers;
    return 0;
}
