/* Private work directories for kernels without mount namespaces: one directory per
 * worker slot under the state dir, owned by the worker's uid, removed when it exits. */
#ifndef PYEXECD_WORKDIR_H
#define PYEXECD_WORKDIR_H

#include <sys/types.h>

/* Creates path (mode 0700, owned by uid:gid where we may give files away) after removing
 * any leftover of the same name. Returns 0 or -1 with errno. */
int workdir_create(const char *path, uid_t uid, gid_t gid);

/* Removes the tree at path without following symbolic links or crossing mounts. The
 * worker that filled it is dead by then, so nothing changes under us. Returns 0 or -1. */
int workdir_remove(const char *path);

#endif
