#define _GNU_SOURCE
#include "workdir.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;   /* keep going: remove what can be removed */
}

int workdir_remove(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    /* FTW_PHYS: never follow symlinks; FTW_MOUNT: stay on this file system. */
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

int workdir_create(const char *path, uid_t uid, gid_t gid)
{
    if (workdir_remove(path) < 0)
        return -1;
    if (mkdir(path, 0700) < 0)
        return -1;
    /* Refused when we cannot give files away (not root, or root of a user namespace where
     * that uid does not exist): the worker then keeps our uid and the directory is ours. */
    if (chown(path, uid, gid) < 0)
        return 0;   /* (a cast to void does not quiet glibc's warn_unused_result) */
    return 0;
}
