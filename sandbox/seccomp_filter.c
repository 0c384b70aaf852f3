#define _GNU_SOURCE
#include "seccomp_filter.h"

#include <errno.h>
#include <linux/filter.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

static uint32_t action_of(enum policy_action a, int errno_value)
{
    switch (a) {
    case POLICY_ALLOW: return SCMP_ACT_ALLOW;
    case POLICY_ERRNO: return SCMP_ACT_ERRNO((uint32_t)errno_value);
    case POLICY_KILL: return SCMP_ACT_KILL_PROCESS;
    }
    return SCMP_ACT_KILL_PROCESS;
}

static enum scmp_compare op_of(enum policy_op op)
{
    switch (op) {
    case POLICY_EQ: return SCMP_CMP_EQ;
    case POLICY_NE: return SCMP_CMP_NE;
    case POLICY_LT: return SCMP_CMP_LT;
    case POLICY_LE: return SCMP_CMP_LE;
    case POLICY_GT: return SCMP_CMP_GT;
    case POLICY_GE: return SCMP_CMP_GE;
    case POLICY_MASKED_EQ: return SCMP_CMP_MASKED_EQ;
    }
    return SCMP_CMP_EQ;
}

static int add_rule(scmp_filter_ctx ctx, const struct policy *p, const struct policy_rule *r,
                    char *err, size_t errlen)
{
    int nr = seccomp_syscall_resolve_name(r->syscall);
    if (nr == __NR_SCMP_ERROR) {
        snprintf(err, errlen, "%s:%u: unknown system call %s", p->name, r->line, r->syscall);
        return -1;
    }
    /* A rule that does what the default does only documents intent ("errno EPERM
     * execve"); libseccomp refuses such rules, and the filter is the same without it. */
    if (r->action == p->default_action &&
        (r->action != POLICY_ERRNO || r->errno_value == p->default_errno))
        return 0;
    struct scmp_arg_cmp cmp[POLICY_MAX_CONDS];
    for (unsigned i = 0; i < r->nconds; i++) {
        const struct policy_cond *c = &r->conds[i];
        cmp[i] = (struct scmp_arg_cmp){
            .arg = c->arg,
            .op = op_of(c->op),
            .datum_a = c->op == POLICY_MASKED_EQ ? c->mask : c->value,
            .datum_b = c->op == POLICY_MASKED_EQ ? c->value : 0,
        };
    }
    int rc = seccomp_rule_add_array(ctx, action_of(r->action, r->errno_value), nr, r->nconds,
                                    cmp);
    if (rc < 0) {
        snprintf(err, errlen, "%s:%u: rule for %s refused by libseccomp: %s", p->name, r->line,
                 r->syscall, strerror(-rc));
        return -1;
    }
    return 0;
}

/* Returns a new filter context holding the policy, or NULL with err set. */
static scmp_filter_ctx build_ctx(const struct policy *p, char *err, size_t errlen)
{
    scmp_filter_ctx ctx = seccomp_init(action_of(p->default_action, p->default_errno));
    if (!ctx) {
        snprintf(err, errlen, "%s: libseccomp refused the default action", p->name);
        return NULL;
    }
    /* Only the native x86-64 table: i386 (int 0x80) and x32 calls meet the bad-arch
     * action, which kills. We set no_new_privs ourselves, before loading. */
    if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0 ||
        seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0) {
        snprintf(err, errlen, "seccomp: cannot set filter attributes");
        seccomp_release(ctx);
        return NULL;
    }
    for (size_t i = 0; i < p->nrules; i++) {
        if (add_rule(ctx, p, &p->rules[i], err, errlen) < 0) {
            seccomp_release(ctx);
            return NULL;
        }
    }
    return ctx;
}

int seccomp_program_build(const struct policy *p, struct seccomp_program *prog, char *err,
                          size_t errlen)
{
    memset(prog, 0, sizeof(*prog));
    scmp_filter_ctx ctx = build_ctx(p, err, errlen);
    if (!ctx)
        return -1;

    /* libseccomp 2.5 exports BPF only to a file descriptor: go through a memfd. */
    int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
    int rc = -1;
    if (fd < 0 || seccomp_export_bpf(ctx, fd) < 0) {
        snprintf(err, errlen, "seccomp: cannot export the filter");
        goto out;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
        size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        snprintf(err, errlen, "seccomp: compiled filter has a bad size (%lld)", (long long)size);
        goto out;
    }
    prog->filter = malloc((size_t)size);
    if (!prog->filter || pread(fd, prog->filter, (size_t)size, 0) != size) {
        snprintf(err, errlen, "seccomp: cannot read the compiled filter");
        free(prog->filter);
        prog->filter = NULL;
        goto out;
    }
    prog->len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    seccomp_release(ctx);
    return rc;
}

int seccomp_program_load(const struct seccomp_program *prog)
{
    struct sock_fprog fprog = { .len = prog->len, .filter = prog->filter };
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0);
}

void seccomp_program_release(struct seccomp_program *prog)
{
    free(prog->filter);
    memset(prog, 0, sizeof(*prog));
}

int seccomp_program_print(const struct policy *p, int fd, char *err, size_t errlen)
{
    scmp_filter_ctx ctx = build_ctx(p, err, errlen);
    if (!ctx)
        return -1;
    int rc = 0;
    if (seccomp_export_pfc(ctx, fd) < 0) {
        snprintf(err, errlen, "seccomp: cannot export the filter");
        rc = -1;
    }
    seccomp_release(ctx);
    return rc;
}
