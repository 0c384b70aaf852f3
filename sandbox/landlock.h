/* Landlock: a second wall around the file system (and TCP, and signals), stacked on the
 * mount namespace, for when a mount is missed or the namespace is unavailable. */
#ifndef PYEXECD_LANDLOCK_H
#define PYEXECD_LANDLOCK_H

#include <stddef.h>

/* The kernel's Landlock ABI version, 0 when Landlock is unavailable. */
int landlock_abi(void);

/* Restricts the calling process for good: everything readable stays readable (the other
 * layers decide what that is), writing and creating files is allowed only beneath the
 * directories in `writable` (NULL-terminated), executing only the nexec programs (or
 * directories of them) in exec (paths the system lacks are skipped), TCP bind and
 * connect are refused (ABI 4), and signals and abstract Unix sockets cannot reach
 * outside the process (ABI 6). Needs no_new_privs. Returns 0, or -1 with errno. */
int landlock_apply(const char *const *writable, const char (*exec)[256], size_t nexec);

#endif
