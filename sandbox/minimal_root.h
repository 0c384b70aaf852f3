/* The file system every worker starts from: a fresh root holding only what Python, the
 * libraries and the allowed programs need, not the host's. Built once, by the zygote, in
 * a mount namespace of its own, which every worker it forks inherits: a worker's set-up
 * costs nothing more for it. The way nsjail and bubblewrap build theirs: a tmpfs root,
 * read-only binds of /usr (and the /bin, /lib... links into it), the venv and a few /etc
 * files, a synthesized /etc of the sandbox's own, empty mount points for what each worker
 * mounts privately, then pivot_root and the old root detached. */
#ifndef PYEXECD_MINIMAL_ROOT_H
#define PYEXECD_MINIMAL_ROOT_H

#include <stddef.h>

struct minimal_root_config {
    const char *venv;          /* the sandbox's venv (DIR of DIR/lib/python3.X/...) */
    const char *state_dir;     /* the server's state dir: the zygote's, bound writable (each
                                * worker covers it) */
    const char *build_dir;     /* an empty directory to build the root on (in state_dir) */
};

/* Moves the calling (single-threaded, root) process into a new mount namespace whose
 * root is the minimal one. Returns 0; -1 with the reason in err, the process then still
 * in the host's root (its mount namespace may be a private copy); or -2 when it failed
 * after pivot_root, the process then in a half-made root it must not serve from. */
int minimal_root_enter(const struct minimal_root_config *c, char *err, size_t errlen);

#endif
