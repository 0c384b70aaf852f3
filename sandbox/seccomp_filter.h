/* The worker's system-call allow-list, built from a policy (sandbox/policy.h). The only
 * file that talks to libseccomp. The filter is built and compiled to BPF once in the
 * zygote; each worker loads the compiled program (0.2 ms, against 1.6 ms to compile per
 * worker). */
#ifndef PYEXECD_SECCOMP_FILTER_H
#define PYEXECD_SECCOMP_FILTER_H

#include <stddef.h>

#include "policy.h"

struct seccomp_program {
    void *filter;          /* struct sock_filter[len], malloc'd, owned */
    unsigned short len;
};

/* Builds and compiles the policy's allow-list. Returns 0, or -1 with a message in err
 * ("file:line: unknown system call x" for a name libseccomp does not know). */
int seccomp_program_build(const struct policy *p, struct seccomp_program *prog, char *err,
                          size_t errlen);

/* Loads the program into the calling (single-threaded) process. Needs no_new_privs set
 * (or CAP_SYS_ADMIN). Returns 0 or -1 with errno. */
int seccomp_program_load(const struct seccomp_program *prog);

void seccomp_program_release(struct seccomp_program *prog);

/* Writes the policy's compiled filter in libseccomp's readable PFC form to fd. Returns 0,
 * or -1 with a message in err. */
int seccomp_program_print(const struct policy *p, int fd, char *err, size_t errlen);

#endif
