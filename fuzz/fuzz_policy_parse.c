/* Policy files (--policy FILE, policies/README.md's grammar): policy_parse
 * (sandbox/policy.c) on the input as it is (the parser takes a length; a policy read from
 * a file is not NUL-terminated for it), then, when it parses, policy_check_limits as
 * policy_prepare calls it, also after flags have changed the limits.
 *
 * Properties, besides "no crash, no leak, no UB":
 * - a refusal says "name:line: ..." and leaves nothing to release;
 * - an accepted policy keeps its grammar's rules: at least one allow rule; system call
 *   names of [a-z0-9_]; an unconditional rule alone for its call; at most six conditions,
 *   one per argument, arg0..arg5, a masked value inside its mask; errno values 1..4094;
 *   a refusing default; every limit within its documented range; exec paths absolute,
 *   distinct, at most POLICY_MAX_EXEC;
 * - policy_check_limits accepts what policy_parse accepted (the same cross-check). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "fuzz/fuzz_util.h"
#include "sandbox/policy.h"

#define NAME "fuzz.policy"

static void check_limits_in_range(const struct policy_limits *l)
{
    const struct {
        const char *name;
        unsigned long long v, min, max;
    } r[] = {
        {"deadline_ms", l->deadline_ms, LIMIT_DEADLINE_MS_MIN, LIMIT_DEADLINE_MS_MAX},
        {"cpu_seconds", l->cpu_seconds, 1, LIMIT_CPU_SECONDS_MAX},
        {"address_space_mib", l->address_space_mib, LIMIT_WORKER_AS_MIB_MIN,
         LIMIT_WORKER_AS_MIB_MAX},
        {"memory_mib", l->memory_mib, LIMIT_MEMORY_MIB_MIN, LIMIT_MEMORY_MIB_MAX},
        {"file_size_mib", l->file_size_mib, 1, LIMIT_FILE_SIZE_MIB_MAX},
        {"open_files", l->open_files, LIMIT_OPEN_FILES_MIN, LIMIT_OPEN_FILES_MAX},
        {"threads", l->threads, 1, LIMIT_THREADS_MAX},
        {"workdir_mib", l->workdir_mib, 1, LIMIT_WORKDIR_MIB_MAX},
        {"workdir_inodes", l->workdir_inodes, LIMIT_WORKDIR_INODES_MIN,
         LIMIT_WORKDIR_INODES_MAX},
        {"output_bytes", l->output_bytes, LIMIT_OUTPUT_BYTES_MIN, LIMIT_OUTPUT_BYTES_MAX},
        {"input_file_bytes", l->input_file_bytes, 0, LIMIT_BODY_BYTES},
    };
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
        FUZZ_CHECK(r[i].v >= r[i].min && r[i].v <= r[i].max, "policy-limit-range",
                   "limit %s = %llu is outside %llu..%llu", r[i].name, r[i].v, r[i].min,
                   r[i].max);
}

static void check_rule(const struct policy *p, size_t i)
{
    const struct policy_rule *r = &p->rules[i];
    size_t n = strnlen(r->syscall, sizeof(r->syscall));
    FUZZ_CHECK(n > 0 && n < sizeof(r->syscall) &&
               strspn(r->syscall, "abcdefghijklmnopqrstuvwxyz0123456789_") == n,
               "policy-rule", "rule %zu names %.40s", i, r->syscall);
    FUZZ_CHECK(r->action == POLICY_ALLOW || r->action == POLICY_ERRNO ||
               r->action == POLICY_KILL, "policy-rule", "rule %zu action %d", i, r->action);
    if (r->action == POLICY_ERRNO)
        FUZZ_CHECK(r->errno_value >= 1 && r->errno_value <= 4094, "policy-rule",
                   "rule %zu errno %d", i, r->errno_value);
    FUZZ_CHECK(r->nconds <= POLICY_MAX_CONDS, "policy-rule", "rule %zu has %u conditions", i,
               r->nconds);
    for (unsigned c = 0; c < r->nconds && c < POLICY_MAX_CONDS; c++) {
        const struct policy_cond *k = &r->conds[c];
        FUZZ_CHECK(k->arg <= 5 && k->op >= POLICY_EQ && k->op <= POLICY_MASKED_EQ,
                   "policy-rule", "rule %zu condition %u: arg%u op %d", i, c, k->arg, k->op);
        if (k->op == POLICY_MASKED_EQ)
            FUZZ_CHECK((k->value & ~k->mask) == 0, "policy-rule",
                       "rule %zu condition %u: value outside its mask", i, c);
        for (unsigned d = 0; d < c; d++)
            FUZZ_CHECK(r->conds[d].arg != k->arg, "policy-rule",
                       "rule %zu tests arg%u twice", i, k->arg);
    }
    for (size_t j = 0; j < i; j++)
        if (strcmp(p->rules[j].syscall, r->syscall) == 0)
            FUZZ_CHECK(p->rules[j].nconds && r->nconds, "policy-rule",
                       "%s has an unconditional rule and another", r->syscall);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct policy p;
    char err[512] = "";
    /* An exact-size copy: the parser must not read past len. */
    char *text = malloc(size ? size : 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    int rc = policy_parse(&p, NAME, text, size, err, sizeof(err));
    free(text);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1, "policy-result", "policy_parse returned %d", rc);
        FUZZ_CHECK(strncmp(err, NAME ":", strlen(NAME) + 1) == 0 && err[strlen(NAME) + 1],
                   "policy-refusal-message", "the message does not say where: %.200s", err);
        FUZZ_CHECK(p.rules == NULL && p.exec == NULL, "policy-refusal-clean",
                   "a refusal left rules or exec paths to release");
        return 0;
    }
    size_t allowed = 0;
    for (size_t i = 0; i < p.nrules; i++) {
        check_rule(&p, i);
        allowed += p.rules[i].action == POLICY_ALLOW;
    }
    FUZZ_CHECK(allowed > 0, "policy-allows", "a policy that allows nothing was accepted");
    FUZZ_CHECK(p.default_action == POLICY_ERRNO || p.default_action == POLICY_KILL,
               "policy-default", "default action %d", p.default_action);
    if (p.default_action == POLICY_ERRNO)
        FUZZ_CHECK(p.default_errno >= 1 && p.default_errno <= 4094, "policy-default",
                   "default errno %d", p.default_errno);
    check_limits_in_range(&p.limits);
    FUZZ_CHECK(p.nexec <= POLICY_MAX_EXEC, "policy-exec", "%zu exec paths", p.nexec);
    for (size_t i = 0; i < p.nexec; i++) {
        FUZZ_CHECK(p.exec[i][0] == '/' && strnlen(p.exec[i], 256) < 256, "policy-exec",
                   "exec path %zu is not absolute", i);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(p.exec[i], p.exec[j]) != 0, "policy-exec",
                       "exec path %s twice", p.exec[i]);
    }

    char err2[512];
    FUZZ_CHECK(policy_check_limits(&p, err2, sizeof(err2)) == 0, "policy-check-limits",
               "policy_check_limits refused what policy_parse accepted: %s", err2);
    /* As the flags may change them (policy_apply_flags): the largest output cap, the
     * smallest, an address-space headroom from the input. */
    p.limits.output_bytes = size % 2 ? LIMIT_OUTPUT_BYTES_MAX : LIMIT_OUTPUT_BYTES_MIN;
    p.limits.deadline_ms = LIMIT_DEADLINE_MS_MAX;
    p.limits.address_space_mib = (size * 7919) % (LIMIT_WORKER_AS_MIB_MAX + 1);
    rc = policy_check_limits(&p, err2, sizeof(err2));
    FUZZ_CHECK(rc == 0 || rc == -1, "policy-check-limits", "returned %d", rc);
    if (rc < 0)
        FUZZ_CHECK(strncmp(err2, NAME, strlen(NAME)) == 0, "policy-check-limits",
                   "the message does not name the policy: %.200s", err2);
    policy_release(&p);
    return 0;
}
