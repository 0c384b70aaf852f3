/* Sandbox policies (sandbox/policy.c, policies/README.md): every fixture under
 * tests/policies parses (or is refused) as its file says, errors are "path:line: ..." at
 * the right line, parsed rules and limits are what was written, and the built-in default
 * policy restates every limit of common/limits.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sched.h>

#include "common/limits.h"
#include "sandbox/policy.h"
#include "sandbox/seccomp_filter.h"
#include "tests/unit/check.h"

/* The source tree, found from this file's own path: tests/unit/test_policy.c. */
static char tests_dir[1100];   /* .../tests */
static char repo_dir[1100];    /* the repository root */

static void find_dirs(void)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s", __FILE__);
    char *slash = strrchr(path, '/');   /* .../tests/unit */
    if (slash)
        *slash = '\0';
    else
        snprintf(path, sizeof(path), ".");
    snprintf(tests_dir, sizeof(tests_dir), "%s/..", path);
    snprintf(repo_dir, sizeof(repo_dir), "%s/../..", path);
}

/* Reads a whole file into a malloc'd NUL-terminated buffer, or NULL. */
static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *more = realloc(buf, cap * 2);
            if (!more) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = more;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Sorted *.policy names of a directory; returns how many (at most max). */
static int list_policies(const char *dir, char names[][128], int max)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        size_t l = strlen(e->d_name);
        if (l > 7 && l < 128 && strcmp(e->d_name + l - 7, ".policy") == 0)
            memcpy(names[n++], e->d_name, l + 1);
    }
    closedir(d);
    qsort(names, (size_t)n, 128, compare_names);
    return n;
}

/* The "# expect: LINE: FRAGMENT" first line of an invalid fixture. */
static int read_expect(const char *path, unsigned *line, char *fragment, size_t fraglen)
{
    char *text = read_text(path, NULL);
    if (!text)
        return -1;
    char *eol = strchr(text, '\n');
    if (eol)
        *eol = '\0';
    int pos = 0;
    int ok = sscanf(text, "# expect: %u: %n", line, &pos) == 1 && pos > 0 && text[pos];
    if (ok)
        snprintf(fragment, fraglen, "%s", text + pos);
    free(text);
    return ok ? 0 : -1;
}

/* 1 when err is exactly "<name>:<line>: <message>" with `fragment` in the message. */
static int error_is(const char *err, const char *name, unsigned line, const char *fragment)
{
    char prefix[PATH_MAX + 32];
    snprintf(prefix, sizeof(prefix), "%s:%u: ", name, line);
    size_t pl = strlen(prefix);
    int ok = strncmp(err, prefix, pl) == 0 && err[pl] != '\0' && err[pl] != ' ' &&
             strstr(err + pl, fragment) != NULL;
    if (!ok)
        fprintf(stderr, "  error \"%s\"\n  want  \"%s\" then \"...%s...\"\n", err, prefix,
                fragment);
    return ok;
}

/* Parses text named "t.policy"; returns policy_parse's result (releases on success). */
static int parse_text(const char *text, char *err, size_t errlen)
{
    struct policy p;
    err[0] = '\0';
    int rc = policy_parse(&p, "t.policy", text, strlen(text), err, errlen);
    if (rc == 0)
        policy_release(&p);
    return rc;
}

/* Parses and compiles text as a server start would; 0 or -1 with err set. */
static int check_text(const char *text, char *err, size_t errlen)
{
    struct policy p;
    struct seccomp_program prog;
    err[0] = '\0';
    if (policy_parse(&p, "t.policy", text, strlen(text), err, errlen) < 0)
        return -1;
    int rc = seccomp_program_build(&p, &prog, err, errlen);
    if (rc == 0)
        seccomp_program_release(&prog);
    policy_release(&p);
    return rc;
}

/* The policy's limits compared with policy_init's defaults, field by field. */
static int limits_equal(const struct policy_limits *a, const struct policy_limits *b)
{
    return a->deadline_ms == b->deadline_ms && a->cpu_seconds == b->cpu_seconds &&
           a->address_space_mib == b->address_space_mib && a->memory_mib == b->memory_mib &&
           a->file_size_mib == b->file_size_mib && a->open_files == b->open_files &&
           a->threads == b->threads && a->workdir_mib == b->workdir_mib &&
           a->workdir_inodes == b->workdir_inodes && a->output_bytes == b->output_bytes &&
           a->input_file_bytes == b->input_file_bytes;
}

static int rule_is(const struct policy_rule *r, const char *name, enum policy_action a,
                   unsigned line, unsigned nconds)
{
    int ok = strcmp(r->syscall, name) == 0 && r->action == a && r->line == line &&
             r->nconds == nconds;
    if (!ok)
        fprintf(stderr, "  rule %s action %d line %u nconds %u; want %s %d %u %u\n",
                r->syscall, (int)r->action, r->line, r->nconds, name, (int)a, line, nconds);
    return ok;
}

static int cond_is(const struct policy_cond *c, unsigned arg, enum policy_op op,
                   uint64_t mask, uint64_t value)
{
    int ok = c->arg == arg && c->op == op && c->value == value &&
             (op != POLICY_MASKED_EQ || c->mask == mask);
    if (!ok)
        fprintf(stderr, "  cond arg%u op %d mask %#llx value %#llx; want arg%u op %d mask "
                "%#llx value %#llx\n", c->arg, (int)c->op, (unsigned long long)c->mask,
                (unsigned long long)c->value, arg, (int)op, (unsigned long long)mask,
                (unsigned long long)value);
    return ok;
}

/* --- fixtures ----------------------------------------------------------------------- */

static const char *const required_valid[] = {
    "minimal", "conditions", "comments_and_blank", "all_limits", "default_kill",
    "numeric_errno", NULL,
};
static const char *const required_invalid[] = {
    "unknown_directive", "unknown_limit", "limit_twice", "limit_below_min",
    "limit_above_max", "limit_not_number", "default_allow", "default_twice", "errno_zero",
    "unknown_errno", "unknown_constant", "bad_operator", "arg6", "cond_missing_value",
    "masked_value_outside_mask", "arg_tested_twice", "two_unconditional",
    "cond_two_syscalls", "if_without_cond", "dangling_and", "bad_syscall_chars", "empty",
    "output_exceeds_file_size", "input_exceeds_workdir", "long_line", "unknown_syscall",
    NULL,
};

/* Every fixture the suite relies on exists, so a deleted one cannot pass silently. */
static void test_required_fixtures_exist(void)
{
    char path[PATH_MAX + 64];
    for (int i = 0; required_valid[i]; i++) {
        snprintf(path, sizeof(path), "%s/policies/valid/%s.policy", tests_dir,
                 required_valid[i]);
        char *t = read_text(path, NULL);
        CHECK(t != NULL);
        if (!t)
            fprintf(stderr, "  missing fixture %s\n", path);
        free(t);
    }
    for (int i = 0; required_invalid[i]; i++) {
        snprintf(path, sizeof(path), "%s/policies/invalid/%s.policy", tests_dir,
                 required_invalid[i]);
        char *t = read_text(path, NULL);
        CHECK(t != NULL);
        if (!t)
            fprintf(stderr, "  missing fixture %s\n", path);
        free(t);
    }
}

/* Each invalid fixture is refused with "<path>:<line>: ..." at its expected line. */
static void test_invalid_fixtures(void)
{
    char dir[1200], names[128][128];
    snprintf(dir, sizeof(dir), "%s/policies/invalid", tests_dir);
    int n = list_policies(dir, names, 128);
    CHECK(n >= 26);
    for (int i = 0; i < n; i++) {
        char path[1400], fragment[512], err[1024];
        unsigned line = 0;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        int have_expect = read_expect(path, &line, fragment, sizeof(fragment)) == 0;
        CHECK(have_expect);
        if (!have_expect) {
            fprintf(stderr, "  %s: no '# expect: LINE: FRAGMENT' first line\n", names[i]);
            continue;
        }
        struct policy p;
        err[0] = '\0';
        int parsed = policy_load(&p, path, err, sizeof(err)) == 0;
        int refused = !parsed;
        if (parsed) {
            /* Only a name libseccomp does not know gets past the parser. */
            struct seccomp_program prog;
            refused = seccomp_program_build(&p, &prog, err, sizeof(err)) < 0;
            if (!refused)
                seccomp_program_release(&prog);
            policy_release(&p);
            CHECK(strcmp(names[i], "unknown_syscall.policy") == 0);
        }
        CHECK(refused);
        if (!refused) {
            fprintf(stderr, "  %s was accepted\n", names[i]);
            continue;
        }
        int ok = error_is(err, path, line, fragment);
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  (fixture %s)\n", names[i]);
    }
}

/* A name libseccomp does not know passes the pure parser and is caught at build time. */
static void test_unknown_syscall_is_found_by_the_build(void)
{
    char path[PATH_MAX + 64], err[512];
    snprintf(path, sizeof(path), "%s/policies/invalid/unknown_syscall.policy", tests_dir);
    struct policy p;
    CHECK(policy_load(&p, path, err, sizeof(err)) == 0);
    struct seccomp_program prog;
    CHECK(seccomp_program_build(&p, &prog, err, sizeof(err)) == -1);
    char want[PATH_MAX + 128];
    snprintf(want, sizeof(want), "%s:3: unknown system call frobnicate", path);
    CHECK_STR(err, want);
    CHECK(prog.filter == NULL);
    policy_release(&p);
}

/* Loads a valid fixture, checking that it parses and compiles; 0 on success. */
static int load_valid(const char *name, struct policy *p)
{
    char path[PATH_MAX + 64], err[1024];
    snprintf(path, sizeof(path), "%s/policies/valid/%s.policy", tests_dir, name);
    err[0] = '\0';
    if (policy_load(p, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "  %s: %s\n", name, err);
        return -1;
    }
    CHECK_STR(p->name, path);
    struct seccomp_program prog;
    int built = seccomp_program_build(p, &prog, err, sizeof(err)) == 0;
    CHECK(built);
    if (built) {
        CHECK(prog.len > 0 && prog.filter != NULL);
        seccomp_program_release(&prog);
    } else {
        fprintf(stderr, "  %s does not compile: %s\n", name, err);
    }
    return 0;
}

/* Every valid fixture parses and compiles into a non-empty filter. */
static void test_valid_fixtures_all_load(void)
{
    char dir[1200], names[64][128];
    snprintf(dir, sizeof(dir), "%s/policies/valid", tests_dir);
    int n = list_policies(dir, names, 64);
    CHECK(n >= 6);
    for (int i = 0; i < n; i++) {
        struct policy p;
        names[i][strlen(names[i]) - 7] = '\0';
        int ok = load_valid(names[i], &p) == 0;
        CHECK(ok);
        if (ok) {
            CHECK(p.nrules > 0);
            policy_release(&p);
        }
    }
}

/* minimal.policy: three allows on line 2, the EPERM default, every limit at its default. */
static void test_minimal(void)
{
    struct policy p, d;
    policy_init(&d);
    if (load_valid("minimal", &p) < 0) {
        CHECK(0);
        return;
    }
    CHECK(p.nrules == 3);
    if (p.nrules == 3) {
        CHECK(rule_is(&p.rules[0], "read", POLICY_ALLOW, 2, 0));
        CHECK(rule_is(&p.rules[1], "write", POLICY_ALLOW, 2, 0));
        CHECK(rule_is(&p.rules[2], "exit_group", POLICY_ALLOW, 2, 0));
    }
    CHECK(p.default_action == POLICY_ERRNO && p.default_errno == EPERM);
    CHECK(limits_equal(&p.limits, &d.limits));
    policy_release(&p);
}

/* conditions.policy: every operator, masks, 'and', several conditional rules per call. */
static void test_conditions(void)
{
    struct policy p;
    if (load_valid("conditions", &p) < 0) {
        CHECK(0);
        return;
    }
    CHECK(p.nrules == 10);
    if (p.nrules != 10) {
        policy_release(&p);
        return;
    }
    const struct policy_rule *r = p.rules;
    CHECK(rule_is(&r[0], "read", POLICY_ALLOW, 4, 0));
    CHECK(rule_is(&r[2], "exit_group", POLICY_ALLOW, 4, 0));

    CHECK(rule_is(&r[3], "socket", POLICY_ALLOW, 5, 1));
    CHECK(cond_is(&r[3].conds[0], 0, POLICY_EQ, 0, AF_UNIX));
    CHECK(rule_is(&r[4], "socket", POLICY_ALLOW, 6, 2));
    CHECK(cond_is(&r[4].conds[0], 0, POLICY_EQ, 0, AF_INET));
    CHECK(cond_is(&r[4].conds[1], 1, POLICY_NE, 0, 3));
    CHECK(rule_is(&r[5], "socket", POLICY_ERRNO, 7, 1));
    CHECK(r[5].errno_value == EAFNOSUPPORT);
    CHECK(cond_is(&r[5].conds[0], 0, POLICY_GE, 0, AF_INET6));

    CHECK(rule_is(&r[6], "mmap", POLICY_ALLOW, 8, 2));
    CHECK(cond_is(&r[6].conds[0], 2, POLICY_LT, 0, 8));
    CHECK(cond_is(&r[6].conds[1], 3, POLICY_LE, 0, 0x22));
    CHECK(rule_is(&r[7], "mmap", POLICY_KILL, 9, 1));
    CHECK(cond_is(&r[7].conds[0], 2, POLICY_GT, 0, 7));

    CHECK(rule_is(&r[8], "clone", POLICY_ALLOW, 10, 1));
    CHECK(cond_is(&r[8].conds[0], 0, POLICY_MASKED_EQ,
                  CLONE_VM | CLONE_THREAD | CLONE_NEWUSER, CLONE_VM | CLONE_THREAD));
    CHECK(rule_is(&r[9], "clone", POLICY_KILL, 11, 6));
    CHECK(cond_is(&r[9].conds[0], 0, POLICY_MASKED_EQ, 0x10000000, 0x10000000));
    CHECK(cond_is(&r[9].conds[1], 1, POLICY_NE, 0, 0));
    CHECK(cond_is(&r[9].conds[2], 2, POLICY_GE, 0, 1));
    CHECK(cond_is(&r[9].conds[3], 3, POLICY_LT, 0, 0xffffffffull));
    CHECK(cond_is(&r[9].conds[4], 4, POLICY_GT, 0, 0));
    CHECK(cond_is(&r[9].conds[5], 5, POLICY_LE, 0, 4096));

    /* Every operator appears at least once. */
    unsigned seen = 0;
    for (size_t i = 0; i < p.nrules; i++)
        for (unsigned c = 0; c < p.rules[i].nconds; c++)
            seen |= 1u << p.rules[i].conds[c].op;
    CHECK(seen == (1u << (POLICY_MASKED_EQ + 1)) - 1);
    policy_release(&p);
}

/* comments_and_blank.policy: comments, blanks and tabs ignored; rules keep their lines. */
static void test_comments_and_blank(void)
{
    struct policy p, d;
    policy_init(&d);
    if (load_valid("comments_and_blank", &p) < 0) {
        CHECK(0);
        return;
    }
    CHECK(p.nrules == 3);
    if (p.nrules == 3) {
        CHECK(rule_is(&p.rules[0], "read", POLICY_ALLOW, 7, 0));
        CHECK(rule_is(&p.rules[1], "write", POLICY_ALLOW, 7, 0));
        CHECK(rule_is(&p.rules[2], "ptrace", POLICY_KILL, 11, 0));
    }
    CHECK(p.limits.deadline_ms == 1234);
    d.limits.deadline_ms = 1234;
    CHECK(limits_equal(&p.limits, &d.limits));
    policy_release(&p);
}

/* all_limits.policy: every limit takes the boundary value written. */
static void test_all_limits(void)
{
    struct policy p;
    if (load_valid("all_limits", &p) < 0) {
        CHECK(0);
        return;
    }
    const struct policy_limits *l = &p.limits;
    CHECK(l->deadline_ms == 10);
    CHECK(l->cpu_seconds == 86400);
    CHECK(l->address_space_mib == 64);
    CHECK(l->memory_mib == 1048576);
    CHECK(l->file_size_mib == 1048576);
    CHECK(l->open_files == 32);
    CHECK(l->threads == 65536);
    CHECK(l->workdir_mib == 1048576);
    CHECK(l->workdir_inodes == 16);
    CHECK(l->output_bytes == LIMIT_OUTPUT_BYTES_MAX);
    CHECK(l->input_file_bytes == 0);
    CHECK(p.nrules == 3);
    policy_release(&p);
}

/* default_kill.policy: the default kills; a listed errno rule still applies. */
static void test_default_kill(void)
{
    struct policy p;
    if (load_valid("default_kill", &p) < 0) {
        CHECK(0);
        return;
    }
    CHECK(p.default_action == POLICY_KILL);
    CHECK(p.nrules == 4);
    if (p.nrules == 4) {
        CHECK(rule_is(&p.rules[3], "clone3", POLICY_ERRNO, 4, 0));
        CHECK(p.rules[3].errno_value == ENOSYS);
    }
    policy_release(&p);
}

/* numeric_errno.policy: numeric errnos 1 and 4094 (the documented range) and a name. */
static void test_numeric_errno(void)
{
    struct policy p;
    if (load_valid("numeric_errno", &p) < 0) {
        CHECK(0);
        return;
    }
    CHECK(p.default_action == POLICY_ERRNO && p.default_errno == 38);
    CHECK(p.nrules == 6);
    if (p.nrules == 6) {
        CHECK(rule_is(&p.rules[3], "ptrace", POLICY_ERRNO, 4, 0));
        CHECK(p.rules[3].errno_value == 1);
        CHECK(rule_is(&p.rules[4], "clone3", POLICY_ERRNO, 5, 0));
        CHECK(p.rules[4].errno_value == 4094);
        CHECK(rule_is(&p.rules[5], "bpf", POLICY_ERRNO, 6, 0));
        CHECK(p.rules[5].errno_value == EOPNOTSUPP);
    }
    policy_release(&p);
}

/* --- defaults ----------------------------------------------------------------------- */

/* policy_init: every limit at its common/limits.h value, EPERM default, no rules. */
static void test_init_defaults(void)
{
    struct policy p;
    memset(&p, 0x5a, sizeof(p));
    policy_init(&p);
    CHECK(p.default_action == POLICY_ERRNO);
    CHECK(p.default_errno == EPERM);
    CHECK(p.rules == NULL && p.nrules == 0);
    CHECK(p.limits.deadline_ms == LIMIT_DEADLINE_MS);
    CHECK(p.limits.cpu_seconds == LIMIT_WORKER_CPU_SECONDS);
    CHECK(p.limits.address_space_mib << 20 == LIMIT_WORKER_AS_HEADROOM);
    CHECK(p.limits.memory_mib << 20 == LIMIT_WORKER_MEMORY);
    CHECK(p.limits.file_size_mib << 20 == LIMIT_FILE_BYTES);
    CHECK(p.limits.open_files == LIMIT_WORKER_OPEN_FILES);
    CHECK(p.limits.threads == LIMIT_WORKER_THREADS);
    CHECK(p.limits.workdir_mib << 20 == LIMIT_WORKDIR_BYTES);
    CHECK(p.limits.workdir_inodes == LIMIT_WORKDIR_INODES);
    CHECK(p.limits.output_bytes == LIMIT_OUTPUT_BYTES);
    CHECK(p.limits.input_file_bytes == LIMIT_INPUT_FILE_BYTES);
}

static const char *const limit_names[] = {
    "deadline_ms", "cpu_seconds", "address_space_mib", "memory_mib", "file_size_mib",
    "open_files", "threads", "workdir_mib", "workdir_inodes", "output_bytes",
    "input_file_bytes", NULL,
};

/* The built-in default parses and compiles, equals policies/default.policy, sets every
 * limit explicitly, and its values are the common/limits.h defaults. */
static void test_default_policy(void)
{
    size_t len = 0;
    const char *text = policy_default_text(&len);
    CHECK(text != NULL && len > 0 && strlen(text) == len);
    CHECK_STR(policy_default_name, "policies/default.policy");

    struct policy p, d;
    char err[512] = "";
    CHECK(policy_parse(&p, policy_default_name, text, len, err, sizeof(err)) == 0);
    if (err[0])
        fprintf(stderr, "  %s\n", err);
    CHECK_STR(p.name, "policies/default.policy");
    CHECK(p.default_action == POLICY_ERRNO && p.default_errno == EPERM);
    CHECK(p.nrules > 100);
    policy_init(&d);
    CHECK(limits_equal(&p.limits, &d.limits));
    struct seccomp_program prog;
    CHECK(seccomp_program_build(&p, &prog, err, sizeof(err)) == 0);
    seccomp_program_release(&prog);
    /* Something it must say: threads but no processes, no exploit helpers. */
    int clone_conditional = 0, ptrace_killed = 0, execve_listed = 0;
    for (size_t i = 0; i < p.nrules; i++) {
        if (strcmp(p.rules[i].syscall, "clone") == 0)
            clone_conditional = p.rules[i].nconds == 1 && p.rules[i].action == POLICY_ALLOW;
        if (strcmp(p.rules[i].syscall, "ptrace") == 0)
            ptrace_killed = p.rules[i].action == POLICY_KILL;
        if (strcmp(p.rules[i].syscall, "execve") == 0)
            execve_listed = 1;
    }
    CHECK(clone_conditional);
    CHECK(ptrace_killed);
    CHECK(!execve_listed);
    policy_release(&p);

    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/policies/default.policy", repo_dir);
    size_t flen = 0;
    char *file = read_text(path, &flen);
    CHECK(file != NULL);
    if (!file)
        return;
    CHECK(flen == len && memcmp(file, text, len) == 0);   /* the compiled-in copy is current */

    /* Each limit has its own "limit NAME VALUE" line. */
    for (int i = 0; limit_names[i]; i++) {
        int found = 0;
        for (const char *line = file; line && *line;) {
            char word[32], name[64];
            if (sscanf(line, "%31s %63s", word, name) == 2 && strcmp(word, "limit") == 0 &&
                strcmp(name, limit_names[i]) == 0)
                found++;
            line = strchr(line, '\n');
            if (line)
                line++;
        }
        CHECK(found == 1);
        if (found != 1)
            fprintf(stderr, "  default.policy sets %s %d times\n", limit_names[i], found);
    }
    free(file);
}

/* --- grammar details ---------------------------------------------------------------- */

/* Each limit accepts its minimum and maximum and refuses one past either. */
static void test_limit_bounds(void)
{
    static const struct {
        const char *name;
        unsigned long long min, max;
    } b[] = {
        {"deadline_ms", 10, 3600000}, {"cpu_seconds", 1, 86400},
        {"address_space_mib", 64, 1048576}, {"memory_mib", 64, 1048576},
        {"file_size_mib", 1, 1048576}, {"open_files", 32, 1048576},
        {"threads", 1, 65536}, {"workdir_mib", 1, 1048576},
        {"workdir_inodes", 16, 1000000000}, {"output_bytes", 16, LIMIT_OUTPUT_BYTES_MAX},
        {"input_file_bytes", 0, LIMIT_BODY_BYTES},
    };
    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
        /* Companions that keep the cross-checks out of the way of the value tested. */
        const char *companion = strcmp(b[i].name, "workdir_mib") == 0 ? "limit input_file_bytes 0\n"
                              : strcmp(b[i].name, "file_size_mib") == 0 ? "limit output_bytes 16\n"
                                                                         : "";
        char text[256], err[512], frag[128];
        snprintf(text, sizeof(text), "allow read\n%slimit %s %llu\n", companion, b[i].name,
                 b[i].min);
        CHECK(parse_text(text, err, sizeof(err)) == 0);
        snprintf(text, sizeof(text), "allow read\n%slimit %s %llu\n", companion, b[i].name,
                 b[i].max);
        CHECK(parse_text(text, err, sizeof(err)) == 0);
        unsigned line = companion[0] ? 3 : 2;
        snprintf(text, sizeof(text), "allow read\n%slimit %s %llu\n", companion, b[i].name,
                 b[i].max + 1);
        snprintf(frag, sizeof(frag), "limit %s = %llu is impossible", b[i].name, b[i].max + 1);
        CHECK(parse_text(text, err, sizeof(err)) == -1 && error_is(err, "t.policy", line, frag));
        if (b[i].min > 0) {
            snprintf(text, sizeof(text), "allow read\n%slimit %s %llu\n", companion, b[i].name,
                     b[i].min - 1);
            snprintf(frag, sizeof(frag), "limit %s = %llu is impossible", b[i].name,
                     b[i].min - 1);
            CHECK(parse_text(text, err, sizeof(err)) == -1 &&
                  error_is(err, "t.policy", line, frag));
        }
    }
    char err[512];
    /* Numbers that are not plain decimals. */
    CHECK(parse_text("allow read\nlimit threads -1\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "not a number: -1"));
    CHECK(parse_text("allow read\nlimit threads 0x10\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "not a number: 0x10"));
    CHECK(parse_text("allow read\nlimit threads 99999999999999999999999\n", err,
                     sizeof(err)) == -1 && error_is(err, "t.policy", 2, "not a number"));
    CHECK(parse_text("allow read\nlimit threads\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "limit NAME VALUE"));
}

/* A 1023-character line is read; a 1024-character one is refused at its own line. */
static void test_line_length_boundary(void)
{
    char text[2200], err[512];
    /* "allow read" + spaces up to 1023 characters */
    memset(text, ' ', sizeof(text));
    memcpy(text, "allow read", 10);
    text[1023] = '\n';
    text[1024] = '\0';
    CHECK(parse_text(text, err, sizeof(err)) == 0);
    memcpy(text, "allow write\n", 12);
    memset(text + 12, ' ', 1100);
    memcpy(text + 12, "allow read", 10);
    text[12 + 1024] = '\n';
    text[12 + 1025] = '\0';
    CHECK(parse_text(text, err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "line longer than 1023 characters"));
}

/* Errno values: names, 1 and 4094 accepted, 4095 and 0 refused; the rule compiles. */
static void test_errno_values(void)
{
    char err[512];
    /* libseccomp takes errno values below MAX_ERRNO (4095): refused at parse time, with
     * the line, rather than by the compiler later. */
    CHECK(parse_text("allow read\nerrno 4095 clone3\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "unknown errno 4095"));
    CHECK(parse_text("allow read\nerrno 00 clone3\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "errno 0 would fake success"));
    CHECK(parse_text("default errno 0\nallow read\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 1, "errno 0 would fake success"));
    CHECK(parse_text("allow read\nerrno -1 clone3\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "unknown errno -1"));
    CHECK(parse_text("allow read\nerrno ENOSYS\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "errno ERRNO SYSCALL"));
    /* README: "a number from 1 to 4094": the largest must also compile, as a rule and
     * as the default. */
    CHECK(check_text("allow read\nerrno 4094 clone3\n", err, sizeof(err)) == 0);
    CHECK(check_text("default errno 4094\nallow read\n", err, sizeof(err)) == 0);
    /* A rule restating the default documents intent and compiles (to nothing). */
    CHECK(check_text("allow read\nerrno EPERM execve\n", err, sizeof(err)) == 0);
}

/* Condition syntax errors outside the fixtures: joins, masks, values. */
static void test_condition_errors(void)
{
    char err[512];
    CHECK(parse_text("allow socket if arg0 == 1 arg1 == 2\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 1, "conditions are joined with 'and', not arg1"));
    CHECK(parse_text("allow socket if arg0 & 0xff 1\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 1, "argN & MASK == VALUE"));
    CHECK(parse_text("allow socket if arg0 & 0xff != 1\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 1, "argN & MASK == VALUE"));
    CHECK(parse_text("allow socket if arg00 == 1\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 1, "arg0 to arg5, not arg00"));
    CHECK(parse_text("allow socket if arg0 == 0x1g\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 1, "not a number: 0x1g"));
    CHECK(parse_text("allow socket if arg0 == 99999999999999999999999\n", err,
                     sizeof(err)) == -1 && error_is(err, "t.policy", 1, "not a number"));
    CHECK(parse_text("allow if arg0 == 1\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 1, "exactly one system call"));
    CHECK(parse_text("allow\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 1, "allow names no system call"));
    /* A value is a number or a constant: a bare '|' names neither and must not mean 0. */
    CHECK(parse_text("allow read\nallow socket if arg0 == |\n", err, sizeof(err)) == -1);
    /* A full 64-bit value survives. */
    struct policy p;
    const char *t = "allow mmap if arg1 <= 0xffffffffffffffff and arg2 & 0x7 == 0x5\n";
    CHECK(policy_parse(&p, "t.policy", t, strlen(t), err, sizeof(err)) == 0);
    if (p.nrules == 1) {
        CHECK(cond_is(&p.rules[0].conds[0], 1, POLICY_LE, 0, UINT64_MAX));
        CHECK(cond_is(&p.rules[0].conds[1], 2, POLICY_MASKED_EQ, 7, 5));
    }
    policy_release(&p);
}

/* A call named twice: conditional rules may share it, an unconditional one may not,
 * whichever comes first, and the message cites the earlier line. */
static void test_rule_conflicts(void)
{
    char err[512];
    CHECK(parse_text("allow read\nallow socket if arg0 == 1\nkill socket if arg0 == 2\n", err,
                     sizeof(err)) == 0);
    CHECK(parse_text("allow socket if arg0 == 1\nallow read\nallow socket\n", err,
                     sizeof(err)) == -1 &&
          error_is(err, "t.policy", 3, "socket already has a rule at line 1"));
    CHECK(parse_text("allow socket\n\nkill socket if arg0 == 2\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 3, "socket already has a rule at line 1"));
    CHECK(parse_text("allow read write read\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 1, "read already has a rule at line 1"));
}

/* Policy-wide rules: something must be allowed; CRLF and NUL; unreadable files. */
static void test_policy_wide(void)
{
    char err[512];
    CHECK(parse_text("", err, sizeof(err)) == -1 &&
          strstr(err, "the policy allows no system call at all") != NULL);
    /* README: "A policy must allow at least one call": kills and errnos allow nothing. */
    CHECK(parse_text("kill ptrace\nerrno ENOSYS clone3\n", err, sizeof(err)) == -1 &&
          strstr(err, "allows no system call") != NULL);
    CHECK(parse_text("default kill\nkill ptrace\n", err, sizeof(err)) == -1);
    /* CRLF line ends count lines like LF. */
    CHECK(parse_text("allow read\r\nallow read\r\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "read already has a rule at line 1"));
    const char nul[] = "allow read\nallow wr\0ite\n";
    struct policy p;
    CHECK(policy_parse(&p, "t.policy", nul, sizeof(nul) - 1, err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "NUL byte"));
    CHECK(policy_load(&p, "/nonexistent/x.policy", err, sizeof(err)) == -1);
    CHECK_STR(err, "/nonexistent/x.policy: No such file or directory");
    CHECK(policy_load(&p, tests_dir, err, sizeof(err)) == -1 &&
          strstr(err, "not a regular file") != NULL);
    /* Unknown names in the grammar's own words. */
    CHECK(parse_text("allow read\ndefault errno\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "default errno ERRNO | default kill"));
}

/* exec PATH...: absolute paths, each once, at most POLICY_MAX_EXEC; the built-in names. */
static void test_exec_paths(void)
{
    char err[512];
    struct policy p;
    const char *t = "allow read\nexec /usr/bin/ls /usr/lib/git-core\nexec /bin/sh\n";
    CHECK(policy_parse(&p, "t.policy", t, strlen(t), err, sizeof(err)) == 0);
    CHECK(p.nexec == 3);
    if (p.nexec == 3) {
        CHECK_STR(p.exec[0], "/usr/bin/ls");
        CHECK_STR(p.exec[1], "/usr/lib/git-core");
        CHECK_STR(p.exec[2], "/bin/sh");
    }
    policy_release(&p);
    CHECK(p.exec == NULL && p.nexec == 0);
    CHECK(parse_text("allow read\nexec ls\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "absolute path"));
    CHECK(parse_text("allow read\nexec /usr/../bin/sh\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "without . or .."));
    CHECK(parse_text("allow read\nexec /bin/sh /bin/sh\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "listed twice"));
    CHECK(parse_text("allow read\nexec\n", err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "exec PATH..."));
    /* At the limit and one past it. */
    char text[POLICY_MAX_EXEC * 16 + 64];
    size_t o = (size_t)snprintf(text, sizeof(text), "allow read\nexec");
    for (int i = 0; i < POLICY_MAX_EXEC; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o, " /p%d", i);
    snprintf(text + o, sizeof(text) - o, "\n");
    CHECK(policy_parse(&p, "t.policy", text, strlen(text), err, sizeof(err)) == 0 &&
          p.nexec == POLICY_MAX_EXEC);
    policy_release(&p);
    snprintf(text + o, sizeof(text) - o, " /one-more\n");
    CHECK(parse_text(text, err, sizeof(err)) == -1 &&
          error_is(err, "t.policy", 2, "at most 64 exec paths"));
    /* The built-ins: default has no program, parity has them. */
    const char *file;
    size_t len;
    const char *dt = policy_builtin("default", &file, &len);
    CHECK(dt && strcmp(file, "policies/default.policy") == 0);
    CHECK(dt && policy_parse(&p, file, dt, len, err, sizeof(err)) == 0 && p.nexec == 0);
    policy_release(&p);
    const char *pt = policy_builtin("parity", &file, &len);
    CHECK(pt && strcmp(file, "policies/parity.policy") == 0);
    CHECK(pt && policy_parse(&p, file, pt, len, err, sizeof(err)) == 0 && p.nexec > 10);
    policy_release(&p);
    CHECK(policy_builtin("nope", &file, &len) == NULL);
}

int main(void)
{
    find_dirs();
    test_exec_paths();
    test_required_fixtures_exist();
    test_invalid_fixtures();
    test_unknown_syscall_is_found_by_the_build();
    test_valid_fixtures_all_load();
    test_minimal();
    test_conditions();
    test_comments_and_blank();
    test_all_limits();
    test_default_kill();
    test_numeric_errno();
    test_init_defaults();
    test_default_policy();
    test_limit_bounds();
    test_line_length_boundary();
    test_errno_values();
    test_condition_errors();
    test_rule_conflicts();
    test_policy_wide();
    return check_done();
}
