#define _GNU_SOURCE
#include "policy_commands.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/fds.h"
#include "seccomp_filter.h"

void policy_apply_flags(struct policy *p, const struct config *c)
{
    if (c->deadline_ms)
        p->limits.deadline_ms = c->deadline_ms;
    if (c->output_bytes)
        p->limits.output_bytes = c->output_bytes;
    if (c->worker_memory)
        p->limits.address_space_mib = c->worker_memory >> 20;
}

/* The name messages give the policy: its file, or the file a built-in came from. */
static const char *policy_name(const struct config *c)
{
    const char *file;
    size_t len;
    if (!c->policy_path)
        return policy_default_name;
    return policy_builtin(c->policy_path, &file, &len) ? file : c->policy_path;
}

/* The policy's text: --policy FILE read once (*owned is then the caller's to free), or
 * the built-in default. Returns the text or NULL with err. */
static const char *read_source(const struct config *c, size_t *len, char **owned, char *err,
                               size_t errlen)
{
    *owned = NULL;
    const char *file;
    if (!c->policy_path)
        return policy_default_text(len);
    const char *builtin = policy_builtin(c->policy_path, &file, len);
    if (builtin)
        return builtin;   /* a name, not a path: --policy parity */
    int fd = open(c->policy_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", c->policy_path, strerror(errno));
        return NULL;
    }
    *owned = policy_read_fd(fd, c->policy_path, len, err, errlen);
    close(fd);
    return *owned;
}

/* The text in a sealed memfd: what the server checked is exactly what each zygote gets. */
static int seal_text(const char *text, size_t len, char *err, size_t errlen)
{
    int fd = memfd_create("pyexecd-policy", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
        snprintf(err, errlen, "cannot pass the policy to the zygote: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int policy_prepare(const struct config *c, struct policy_summary *out, char *err,
                   size_t errlen)
{
    size_t len;
    char *owned;
    struct policy p;
    struct seccomp_program prog;
    const char *text = read_source(c, &len, &owned, err, errlen);
    if (!text)
        return -1;
    int rc = -1;
    if (policy_parse(&p, policy_name(c), text, len, err, errlen) < 0)
        goto out;
    policy_apply_flags(&p, c);
    if (policy_check_limits(&p, err, errlen) == 0 &&
        seccomp_program_build(&p, &prog, err, errlen) == 0) {
        seccomp_program_release(&prog);
        memset(out, 0, sizeof(*out));
        snprintf(out->name, sizeof(out->name), "%s", p.name);
        out->deadline_ms = (unsigned)p.limits.deadline_ms;
        out->output_bytes = (size_t)p.limits.output_bytes;
        out->input_file_bytes = (size_t)p.limits.input_file_bytes;
        out->runs_programs = p.nexec > 0;
        out->memfd = seal_text(text, len, err, errlen);
        rc = out->memfd < 0 ? -1 : 0;
    }
    policy_release(&p);
out:
    free(owned);
    return rc;
}

int policy_receive(const struct config *c, struct policy *p, char *err, size_t errlen)
{
    size_t len;
    char *text = policy_read_fd(ZYGOTE_POLICY_FD, policy_name(c), &len, err, errlen);
    close(ZYGOTE_POLICY_FD);
    int rc = text ? policy_parse(p, policy_name(c), text, len, err, errlen) : -1;
    free(text);
    if (rc == 0)
        policy_apply_flags(p, c);
    return rc;
}

int policy_print_command(const char *path)
{
    char err[512];
    struct policy p;
    if (policy_load(&p, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        return 2;
    }
    int rc = seccomp_program_print(&p, STDOUT_FILENO, err, sizeof(err));
    policy_release(&p);
    if (rc < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        return 2;
    }
    return 0;
}
