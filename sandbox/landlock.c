#define _GNU_SOURCE
#include "landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Debian 12's headers stop at ABI 2; the running kernel may know more. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)        /* ABI 3 */
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)       /* ABI 5 */
#endif
#define LL_ACCESS_NET_BIND_TCP (1ULL << 0)              /* ABI 4 */
#define LL_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)       /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)

/* The ruleset attribute as of ABI 6; older kernels take a prefix of it. */
struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)

int landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : (int)abi;
}

static int allow_beneath(int ruleset, const char *path, uint64_t access)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;   /* a directory this system lacks */
    struct landlock_path_beneath_attr attr = {.allowed_access = access, .parent_fd = fd};
    long rc = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &attr, 0);
    int e = errno;
    close(fd);
    errno = e;
    return rc < 0 ? -1 : 0;
}

/* Lets the code execute path: a program, or every file beneath a directory (git's
 * helpers). A rule on a file may carry only the rights of files. */
static int allow_exec(int ruleset, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;   /* a program this system lacks */
    uint64_t access = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE;
    if (S_ISDIR(st.st_mode))
        access |= LANDLOCK_ACCESS_FS_READ_DIR;
    return allow_beneath(ruleset, path, access);
}

int landlock_apply(const char *const *writable, const char (*exec)[256], size_t nexec)
{
    int abi = landlock_abi();
    if (abi < 1) {
        errno = EOPNOTSUPP;
        return -1;
    }
    /* Every file-system right this ABI knows is handled, so anything not granted below
     * is refused. */
    uint64_t fs_all = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;   /* ABI 1: bits 0..12 */
    if (abi >= 2)
        fs_all |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        fs_all |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5)
        fs_all |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    struct ll_ruleset_attr attr = {.handled_access_fs = fs_all};
    size_t size = sizeof(uint64_t);
    if (abi >= 4) {
        attr.handled_access_net = LL_ACCESS_NET_BIND_TCP | LL_ACCESS_NET_CONNECT_TCP;
        size = 2 * sizeof(uint64_t);
    }
    if (abi >= 6) {
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
        size = sizeof(attr);
    }
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (ruleset < 0)
        return -1;

    /* Reading is governed by the mounts and the worker's identity; Landlock adds the
     * write wall and the execute wall: nothing runs but the policy's programs (mapping
     * libraries executable is not execution: the interpreter still loads its modules).
     * Devices: reading and writing the few /dev nodes (null, zero, ...). */
    uint64_t dev = FS_READ | LANDLOCK_ACCESS_FS_WRITE_FILE |
                   (abi >= 3 ? LANDLOCK_ACCESS_FS_TRUNCATE : 0) |
                   (abi >= 5 ? LANDLOCK_ACCESS_FS_IOCTL_DEV : 0);
    uint64_t write_all = fs_all & ~(LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
                                    LANDLOCK_ACCESS_FS_EXECUTE);
    int rc = allow_beneath(ruleset, "/", FS_READ);
    if (rc == 0)
        rc = allow_beneath(ruleset, "/dev", dev);
    if (rc == 0)
        rc = allow_beneath(ruleset, "/proc", dev);
    for (const char *const *w = writable; rc == 0 && *w; w++)
        rc = allow_beneath(ruleset, *w, write_all);
    for (size_t i = 0; rc == 0 && i < nexec; i++)
        rc = allow_exec(ruleset, exec[i]);
    if (rc == 0)
        rc = (int)syscall(SYS_landlock_restrict_self, ruleset, 0);
    int e = errno;
    close(ruleset);
    errno = e;
    return rc < 0 ? -1 : 0;
}
