#define _GNU_SOURCE
#include "policy.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/limits.h"
#include "policy_default.h"   /* generated from policies/default.policy */
#include "policy_parity.h"    /* generated from policies/parity.policy */

const char policy_default_name[] = "policies/default.policy";

const char *policy_default_text(size_t *len)
{
    *len = sizeof(policy_default_source) - 1;
    return policy_default_source;
}

const char *policy_builtin(const char *name, const char **file, size_t *len)
{
    static const struct {
        const char *name, *file, *text;
        size_t len;
    } builtins[] = {
        {"default", "policies/default.policy", policy_default_source,
         sizeof(policy_default_source) - 1},
        {"parity", "policies/parity.policy", policy_parity_source,
         sizeof(policy_parity_source) - 1},
    };
    for (size_t i = 0; name && i < sizeof(builtins) / sizeof(builtins[0]); i++)
        if (strcmp(builtins[i].name, name) == 0) {
            *file = builtins[i].file;
            *len = builtins[i].len;
            return builtins[i].text;
        }
    return NULL;
}

/* Symbolic constants a condition may use; anything else is written as a number. */
static const struct {
    const char *name;
    uint64_t value;
} constants[] = {
    {"AF_UNIX", AF_UNIX}, {"AF_LOCAL", AF_LOCAL}, {"AF_INET", AF_INET},
    {"AF_INET6", AF_INET6}, {"AF_NETLINK", AF_NETLINK}, {"AF_PACKET", AF_PACKET},
    {"CLONE_VM", CLONE_VM}, {"CLONE_FS", CLONE_FS}, {"CLONE_FILES", CLONE_FILES},
    {"CLONE_SIGHAND", CLONE_SIGHAND}, {"CLONE_THREAD", CLONE_THREAD},
    {"CLONE_SYSVSEM", CLONE_SYSVSEM}, {"CLONE_SETTLS", CLONE_SETTLS},
    {"CLONE_PARENT_SETTID", CLONE_PARENT_SETTID}, {"CLONE_CHILD_CLEARTID", CLONE_CHILD_CLEARTID},
    {"CLONE_CHILD_SETTID", CLONE_CHILD_SETTID}, {"CLONE_VFORK", CLONE_VFORK},
    {"CLONE_NEWNS", CLONE_NEWNS}, {"CLONE_NEWUSER", CLONE_NEWUSER},
    {"CLONE_NEWPID", CLONE_NEWPID}, {"CLONE_NEWNET", CLONE_NEWNET},
    {"CLONE_NEWIPC", CLONE_NEWIPC}, {"CLONE_NEWUTS", CLONE_NEWUTS},
    {"CLONE_NEWCGROUP", CLONE_NEWCGROUP},
};

static const struct {
    const char *name;
    int value;
} errnos[] = {
    {"EPERM", EPERM}, {"EACCES", EACCES}, {"ENOSYS", ENOSYS}, {"EINVAL", EINVAL},
    {"ENOENT", ENOENT}, {"EAFNOSUPPORT", EAFNOSUPPORT}, {"EOPNOTSUPP", EOPNOTSUPP},
    {"ENOTSUP", ENOTSUP}, {"EAGAIN", EAGAIN}, {"ENOMEM", ENOMEM},
};

/* name, offset, minimum, maximum */
#define LIMIT_FIELD(f) offsetof(struct policy_limits, f)
static const struct {
    const char *name;
    size_t offset;
    unsigned long long min, max;
} limit_fields[] = {
    {"deadline_ms", LIMIT_FIELD(deadline_ms), LIMIT_DEADLINE_MS_MIN, LIMIT_DEADLINE_MS_MAX},
    {"cpu_seconds", LIMIT_FIELD(cpu_seconds), 1, LIMIT_CPU_SECONDS_MAX},
    {"address_space_mib", LIMIT_FIELD(address_space_mib), LIMIT_WORKER_AS_MIB_MIN,
     LIMIT_WORKER_AS_MIB_MAX},
    {"memory_mib", LIMIT_FIELD(memory_mib), LIMIT_MEMORY_MIB_MIN, LIMIT_MEMORY_MIB_MAX},
    {"file_size_mib", LIMIT_FIELD(file_size_mib), 1, LIMIT_FILE_SIZE_MIB_MAX},
    {"open_files", LIMIT_FIELD(open_files), LIMIT_OPEN_FILES_MIN, LIMIT_OPEN_FILES_MAX},
    {"threads", LIMIT_FIELD(threads), 1, LIMIT_THREADS_MAX},
    {"workdir_mib", LIMIT_FIELD(workdir_mib), 1, LIMIT_WORKDIR_MIB_MAX},
    {"workdir_inodes", LIMIT_FIELD(workdir_inodes), LIMIT_WORKDIR_INODES_MIN,
     LIMIT_WORKDIR_INODES_MAX},
    {"output_bytes", LIMIT_FIELD(output_bytes), LIMIT_OUTPUT_BYTES_MIN, LIMIT_OUTPUT_BYTES_MAX},
    {"input_file_bytes", LIMIT_FIELD(input_file_bytes), 0, LIMIT_BODY_BYTES},
};
#define NLIMITS (sizeof(limit_fields) / sizeof(limit_fields[0]))

void policy_init(struct policy *p)
{
    memset(p, 0, sizeof(*p));
    p->default_action = POLICY_ERRNO;
    p->default_errno = EPERM;
    struct policy_limits *l = &p->limits;
    l->deadline_ms = LIMIT_DEADLINE_MS;
    l->cpu_seconds = LIMIT_WORKER_CPU_SECONDS;
    l->address_space_mib = LIMIT_WORKER_AS_HEADROOM >> 20;
    l->memory_mib = LIMIT_WORKER_MEMORY >> 20;
    l->file_size_mib = LIMIT_FILE_BYTES >> 20;
    l->open_files = LIMIT_WORKER_OPEN_FILES;
    l->threads = LIMIT_WORKER_THREADS;
    l->workdir_mib = LIMIT_WORKDIR_BYTES >> 20;
    l->workdir_inodes = LIMIT_WORKDIR_INODES;
    l->output_bytes = LIMIT_OUTPUT_BYTES;
    l->input_file_bytes = LIMIT_INPUT_FILE_BYTES;
}

void policy_release(struct policy *p)
{
    free(p->rules);
    p->rules = NULL;
    p->nrules = 0;
    free(p->exec);
    p->exec = NULL;
    p->nexec = 0;
}

struct parser {
    struct policy *p;
    const char *name;
    unsigned line;
    char *err;
    size_t errlen;
    unsigned limit_line[NLIMITS];    /* where each limit was set (0: not set) */
    unsigned default_line;
};

__attribute__((format(printf, 2, 3)))
static int perr(struct parser *ps, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->name, ps->line);
    if (n < 0 || (size_t)n >= ps->errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Parses a number (decimal or 0x hex), a constant, or several joined by '|'. */
static int parse_value(struct parser *ps, const char *tok, uint64_t *out)
{
    uint64_t v = 0;
    char buf[512];
    if (strlen(tok) >= sizeof(buf))
        return perr(ps, "value too long: %.40s...", tok);
    strcpy(buf, tok);
    size_t blen = strlen(buf);
    if (blen == 0 || buf[0] == '|' || buf[blen - 1] == '|' || strstr(buf, "||"))
        return perr(ps, "empty value in %s", tok);
    for (char *save = NULL, *part = strtok_r(buf, "|", &save); part;
         part = strtok_r(NULL, "|", &save)) {
        if (isdigit((unsigned char)part[0])) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(part, &end, 0);
            if (errno || *end)
                return perr(ps, "not a number: %s", part);
            v |= n;
            continue;
        }
        size_t i;
        for (i = 0; i < sizeof(constants) / sizeof(constants[0]); i++)
            if (strcmp(constants[i].name, part) == 0)
                break;
        if (i == sizeof(constants) / sizeof(constants[0]))
            return perr(ps, "unknown constant %s", part);
        v |= constants[i].value;
    }
    *out = v;
    return 0;
}

static int parse_errno(struct parser *ps, const char *tok, int *out)
{
    for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++) {
        if (strcmp(errnos[i].name, tok) == 0) {
            *out = errnos[i].value;
            return 0;
        }
    }
    if (isdigit((unsigned char)tok[0])) {
        char *end;
        long n = strtol(tok, &end, 10);
        if (!*end && n == 0)
            return perr(ps, "errno 0 would fake success; a refused call must fail");
        /* libseccomp takes errno values below MAX_ERRNO (4095). */
        if (!*end && n > 0 && n < 4095) {
            *out = (int)n;
            return 0;
        }
    }
    return perr(ps, "unknown errno %s (EPERM, ENOSYS, ... or a number from 1 to 4094)", tok);
}

/* argN OP VALUE  or  argN & MASK == VALUE, tokens at toks[0..]; returns tokens used. */
static int parse_cond(struct parser *ps, char **toks, int ntoks, struct policy_cond *c)
{
    if (ntoks < 3)
        return perr(ps, "incomplete condition");
    const char *a = toks[0];
    if (strncmp(a, "arg", 3) != 0 || a[3] < '0' || a[3] > '5' || a[4])
        return perr(ps, "a condition starts with arg0 to arg5, not %s", a);
    c->arg = (unsigned)(a[3] - '0');
    static const struct {
        const char *s;
        enum policy_op op;
    } ops[] = {{"==", POLICY_EQ}, {"!=", POLICY_NE}, {"<", POLICY_LT}, {"<=", POLICY_LE},
               {">", POLICY_GT}, {">=", POLICY_GE}};
    if (strcmp(toks[1], "&") == 0) {
        if (ntoks < 5 || strcmp(toks[3], "==") != 0)
            return perr(ps, "a masked condition reads: argN & MASK == VALUE");
        c->op = POLICY_MASKED_EQ;
        if (parse_value(ps, toks[2], &c->mask) < 0 || parse_value(ps, toks[4], &c->value) < 0)
            return -1;
        if ((c->value & ~c->mask) != 0)
            return perr(ps, "VALUE has bits outside MASK: the condition can never hold");
        return 5;
    }
    size_t i;
    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].s, toks[1]) == 0)
            break;
    if (i == sizeof(ops) / sizeof(ops[0]))
        return perr(ps, "unknown operator %s", toks[1]);
    c->op = ops[i].op;
    if (parse_value(ps, toks[2], &c->value) < 0)
        return -1;
    return 3;
}

static int add_rule(struct parser *ps, const struct policy_rule *r)
{
    struct policy *p = ps->p;
    for (size_t i = 0; i < p->nrules; i++) {
        const struct policy_rule *o = &p->rules[i];
        if (strcmp(o->syscall, r->syscall) != 0)
            continue;
        /* Several conditional rules may share a call; an unconditional one stands alone. */
        if (o->nconds == 0 || r->nconds == 0)
            return perr(ps, "%s already has a rule at line %u", r->syscall, o->line);
    }
    struct policy_rule *rules = realloc(p->rules, (p->nrules + 1) * sizeof(*rules));
    if (!rules)
        return perr(ps, "out of memory");
    p->rules = rules;
    p->rules[p->nrules++] = *r;
    return 0;
}

static int parse_limit(struct parser *ps, char **toks, int ntoks)
{
    if (ntoks != 3)
        return perr(ps, "a limit reads: limit NAME VALUE");
    size_t i;
    for (i = 0; i < NLIMITS; i++)
        if (strcmp(limit_fields[i].name, toks[1]) == 0)
            break;
    if (i == NLIMITS)
        return perr(ps, "unknown limit %s", toks[1]);
    if (ps->limit_line[i])
        return perr(ps, "limit %s is set twice (first at line %u)", toks[1], ps->limit_line[i]);
    ps->limit_line[i] = ps->line;
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)toks[2][0]))
        return perr(ps, "limit %s: not a number: %s", toks[1], toks[2]);
    unsigned long long v = strtoull(toks[2], &end, 10);
    if (errno || *end)
        return perr(ps, "limit %s: not a number: %s", toks[1], toks[2]);
    if (v < limit_fields[i].min || v > limit_fields[i].max)
        return perr(ps, "limit %s = %llu is impossible (allowed: %llu to %llu)", toks[1], v,
                    limit_fields[i].min, limit_fields[i].max);
    *(unsigned long long *)((char *)&ps->p->limits + limit_fields[i].offset) = v;
    return 0;
}

/* exec PATH...: programs (or directories of programs) the code may run. */
static int parse_exec(struct parser *ps, char **toks, int ntoks)
{
    struct policy *p = ps->p;
    if (ntoks < 2)
        return perr(ps, "an exec line reads: exec PATH...");
    for (int i = 1; i < ntoks; i++) {
        if (toks[i][0] != '/' || strlen(toks[i]) >= sizeof(p->exec[0]) ||
            strstr(toks[i], "/../") || strstr(toks[i], "/./"))
            return perr(ps, "exec %s: an absolute path without . or .. is required", toks[i]);
        for (size_t k = 0; k < p->nexec; k++)
            if (strcmp(p->exec[k], toks[i]) == 0)
                return perr(ps, "exec %s is listed twice", toks[i]);
        if (p->nexec == POLICY_MAX_EXEC)
            return perr(ps, "at most %d exec paths", POLICY_MAX_EXEC);
        char (*grown)[256] = realloc(p->exec, (p->nexec + 1) * sizeof(*grown));
        if (!grown)
            return perr(ps, "out of memory");
        p->exec = grown;
        snprintf(p->exec[p->nexec++], sizeof(p->exec[0]), "%s", toks[i]);
    }
    return 0;
}

/* One line, already split into tokens. */
static int parse_line(struct parser *ps, char **toks, int ntoks)
{
    if (strcmp(toks[0], "limit") == 0)
        return parse_limit(ps, toks, ntoks);
    if (strcmp(toks[0], "exec") == 0)
        return parse_exec(ps, toks, ntoks);

    if (strcmp(toks[0], "default") == 0) {
        if (ps->default_line)
            return perr(ps, "the default action is already set at line %u", ps->default_line);
        ps->default_line = ps->line;
        if (ntoks == 2 && strcmp(toks[1], "kill") == 0) {
            ps->p->default_action = POLICY_KILL;
            return 0;
        }
        if (ntoks == 3 && strcmp(toks[1], "errno") == 0) {
            ps->p->default_action = POLICY_ERRNO;
            return parse_errno(ps, toks[2], &ps->p->default_errno);
        }
        if (ntoks == 2 && strcmp(toks[1], "allow") == 0)
            return perr(ps, "default allow would make this a deny-list; the default must refuse "
                            "(errno E... or kill)");
        return perr(ps, "the default reads: default errno ERRNO | default kill");
    }

    struct policy_rule r;
    memset(&r, 0, sizeof(r));
    r.line = ps->line;
    int i;
    if (strcmp(toks[0], "allow") == 0) {
        r.action = POLICY_ALLOW;
        i = 1;
    } else if (strcmp(toks[0], "kill") == 0) {
        r.action = POLICY_KILL;
        i = 1;
    } else if (strcmp(toks[0], "errno") == 0) {
        if (ntoks < 3)
            return perr(ps, "an errno rule reads: errno ERRNO SYSCALL...");
        r.action = POLICY_ERRNO;
        if (parse_errno(ps, toks[1], &r.errno_value) < 0)
            return -1;
        i = 2;
    } else {
        return perr(ps, "unknown directive %s (allow, kill, errno, default, limit, exec)",
                    toks[0]);
    }
    if (i >= ntoks)
        return perr(ps, "%s names no system call", toks[0]);

    /* Conditions apply to a single call: ACTION SYSCALL if COND [and COND]... */
    int if_at = -1;
    for (int k = i; k < ntoks; k++)
        if (strcmp(toks[k], "if") == 0) {
            if_at = k;
            break;
        }
    if (if_at >= 0) {
        if (if_at != i + 1)
            return perr(ps, "a rule with conditions names exactly one system call");
        int k = if_at + 1;
        while (k < ntoks) {
            if (r.nconds == POLICY_MAX_CONDS)
                return perr(ps, "at most %d conditions", POLICY_MAX_CONDS);
            int used = parse_cond(ps, toks + k, ntoks - k, &r.conds[r.nconds]);
            if (used < 0)
                return -1;
            for (unsigned c = 0; c < r.nconds; c++)
                if (r.conds[c].arg == r.conds[r.nconds].arg)
                    return perr(ps, "arg%u is tested twice; use one masked condition",
                                r.conds[c].arg);
            r.nconds++;
            k += used;
            if (k < ntoks) {
                if (strcmp(toks[k], "and") != 0)
                    return perr(ps, "conditions are joined with 'and', not %s", toks[k]);
                if (++k == ntoks)
                    return perr(ps, "a condition must follow 'and'");
            }
        }
        if (r.nconds == 0)
            return perr(ps, "'if' without a condition");
        ntoks = if_at;
    }
    for (; i < ntoks; i++) {
        if (strlen(toks[i]) >= sizeof(r.syscall) ||
            strspn(toks[i], "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(toks[i]))
            return perr(ps, "not a system call name: %s", toks[i]);
        strcpy(r.syscall, toks[i]);
        if (add_rule(ps, &r) < 0)
            return -1;
    }
    return 0;
}

/* The line of whichever of two limits was set last (the one that made the pair wrong),
 * or the last line when neither was set in the file. */
static unsigned later_line(const struct parser *ps, const char *a, const char *b, unsigned last)
{
    unsigned line = 0;
    for (size_t i = 0; i < NLIMITS; i++)
        if ((strcmp(limit_fields[i].name, a) == 0 || strcmp(limit_fields[i].name, b) == 0) &&
            ps->limit_line[i] > line)
            line = ps->limit_line[i];
    return line ? line : last;
}

/* The two limits that conflict, as names, with why in buf; NULL when all fit. */
static const char *limits_conflict(const struct policy_limits *l, char *buf, size_t len,
                                   const char **second)
{
    if (l->output_bytes > l->file_size_mib << 20) {
        snprintf(buf, len, "output_bytes (%llu) is larger than file_size_mib allows: the "
                 "capture file could never hold it", l->output_bytes);
        *second = "file_size_mib";
        return "output_bytes";
    }
    if (l->input_file_bytes > l->workdir_mib << 20) {
        snprintf(buf, len, "input_file_bytes (%llu) does not fit in workdir_mib (%llu MiB)",
                 l->input_file_bytes, l->workdir_mib);
        *second = "workdir_mib";
        return "input_file_bytes";
    }
    return NULL;
}

/* Limits that are each possible but not together: reported at the later of the two
 * lines that set them. */
static int cross_check(struct parser *ps)
{
    char why[200];
    const char *second;
    const char *first = limits_conflict(&ps->p->limits, why, sizeof(why), &second);
    if (!first)
        return 0;
    ps->line = later_line(ps, first, second, ps->line);
    return perr(ps, "%s", why);
}

int policy_check_limits(const struct policy *p, char *err, size_t errlen)
{
    char why[200];
    const char *second;
    if (!limits_conflict(&p->limits, why, sizeof(why), &second))
        return 0;
    snprintf(err, errlen, "%s (with the command-line flags): %s", p->name, why);
    return -1;
}

int policy_parse(struct policy *p, const char *name, const char *text, size_t len,
                 char *err, size_t errlen)
{
    struct parser ps = {.p = p, .name = name, .err = err, .errlen = errlen};
    policy_init(p);
    snprintf(p->name, sizeof(p->name), "%s", name);

    const char *s = text, *end = text + len;
    while (s < end) {
        ps.line++;
        const char *eol = memchr(s, '\n', (size_t)(end - s));
        if (!eol)
            eol = end;
        size_t n = (size_t)(eol - s);
        char buf[1024];
        if (n >= sizeof(buf)) {
            perr(&ps, "line longer than %zu characters", sizeof(buf) - 1);
            goto fail;
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
        s = eol + 1;
        if (memchr(buf, '\0', n)) {
            perr(&ps, "NUL byte in the policy");
            goto fail;
        }
        char *hash = strchr(buf, '#');
        if (hash)
            *hash = '\0';
        char *toks[128];
        int ntoks = 0;
        for (char *save = NULL, *t = strtok_r(buf, " \t\r", &save); t;
             t = strtok_r(NULL, " \t\r", &save)) {
            if (ntoks == 128) {
                perr(&ps, "too many words on one line");
                goto fail;
            }
            toks[ntoks++] = t;
        }
        if (ntoks && parse_line(&ps, toks, ntoks) < 0)
            goto fail;
    }
    size_t allowed = 0;
    for (size_t i = 0; i < p->nrules; i++)
        allowed += p->rules[i].action == POLICY_ALLOW;
    if (allowed == 0) {
        perr(&ps, "the policy allows no system call at all");
        goto fail;
    }
    if (cross_check(&ps) < 0)
        goto fail;
    return 0;
fail:
    policy_release(p);
    return -1;
}

char *policy_read_fd(int fd, const char *name, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > LIMIT_POLICY_BYTES) {
        snprintf(err, errlen, "%s: not a regular file of at most %u bytes", name,
                 LIMIT_POLICY_BYTES);
        return NULL;
    }
    char *text = malloc((size_t)st.st_size + 1);
    if (!text || pread(fd, text, (size_t)st.st_size, 0) != st.st_size) {
        snprintf(err, errlen, "%s: cannot read it", name);
        free(text);
        return NULL;
    }
    text[st.st_size] = '\0';
    *len = (size_t)st.st_size;
    return text;
}

int policy_load(struct policy *p, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t len;
    char *text = policy_read_fd(fd, path, &len, err, errlen);
    close(fd);
    if (!text)
        return -1;
    int rc = policy_parse(p, path, text, len, err, errlen);
    free(text);
    return rc;
}
