/* Sandbox policies: the seccomp allow-list and the limits, read from a data file whose
 * grammar is documented in policies/README.md. Parsing is pure C with no libseccomp:
 * syscall names are resolved by the caller (seccomp_filter.c), so an unknown name is
 * still reported with its file and line. */
#ifndef PYEXECD_POLICY_H
#define PYEXECD_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* What a rule (or the default) does with a call. */
enum policy_action {
    POLICY_ALLOW,
    POLICY_ERRNO,     /* fail the call with `errno_value` */
    POLICY_KILL,      /* kill the worker (SIGSYS) */
};

enum policy_op {
    POLICY_EQ, POLICY_NE, POLICY_LT, POLICY_LE, POLICY_GT, POLICY_GE,
    POLICY_MASKED_EQ,  /* (arg & mask) == value */
};

struct policy_cond {
    unsigned arg;          /* 0..5 */
    enum policy_op op;
    uint64_t mask;         /* POLICY_MASKED_EQ only */
    uint64_t value;
};

#define POLICY_MAX_CONDS 6

struct policy_rule {
    char syscall[40];
    enum policy_action action;
    int errno_value;
    struct policy_cond conds[POLICY_MAX_CONDS];   /* all must hold (AND) */
    unsigned nconds;
    unsigned line;         /* where it was written, for error messages */
};

/* Every limit a policy sets. A policy that leaves one out gets the default from
 * common/limits.h. */
struct policy_limits {
    unsigned long long deadline_ms;        /* wall time per code block */
    unsigned long long cpu_seconds;        /* RLIMIT_CPU of a worker */
    unsigned long long address_space_mib;  /* RLIMIT_AS headroom above the zygote */
    unsigned long long memory_mib;         /* memory cgroup limit, where available */
    unsigned long long file_size_mib;      /* RLIMIT_FSIZE */
    unsigned long long open_files;         /* RLIMIT_NOFILE */
    unsigned long long threads;            /* RLIMIT_NPROC and the pids cgroup */
    unsigned long long workdir_mib;        /* tmpfs size of /root (and of /tmp) */
    unsigned long long workdir_inodes;
    unsigned long long output_bytes;       /* stdout and stderr kept per block */
    unsigned long long input_file_bytes;   /* decoded input files per request */
};

/* Programs a policy lets the code run (`exec PATH...`), at most this many. */
#define POLICY_MAX_EXEC 64

struct policy {
    char name[256];                 /* the file it came from */
    enum policy_action default_action;
    int default_errno;
    struct policy_rule *rules;      /* owned */
    size_t nrules;
    struct policy_limits limits;
    char (*exec)[256];              /* absolute paths the code may execute: files, or
                                     * directories whose files it may (owned); none: the
                                     * code runs no program */
    size_t nexec;
};

/* Fills *p with every limit at its default and no rules. */
void policy_init(struct policy *p);

/* Parses `len` bytes of policy text named `name` (for messages). On success returns 0
 * and fills *p (release with policy_release). On error returns -1, leaves nothing to
 * release, and writes "name:line: what is wrong" to err. Syscall names are not checked
 * here (see seccomp_program_build, which reports unknown ones the same way). */
int policy_parse(struct policy *p, const char *name, const char *text, size_t len,
                 char *err, size_t errlen);

/* Reads and parses a file. Same contract as policy_parse; a file that cannot be read is
 * reported as "path: reason". */
int policy_load(struct policy *p, const char *path, char *err, size_t errlen);

/* Reads a whole policy from fd (a regular file or memfd of at most LIMIT_POLICY_BYTES),
 * named `name` in messages. Returns the text (malloc'd, NUL-terminated; caller frees) and
 * its length, or NULL with "name: reason" in err. The fd stays open. */
char *policy_read_fd(int fd, const char *name, size_t *len, char *err, size_t errlen);

/* Checks the limits that are each possible but not together, once flags have changed
 * some. Returns 0, or -1 with "name: what conflicts" in err. */
int policy_check_limits(const struct policy *p, char *err, size_t errlen);

void policy_release(struct policy *p);

/* The built-in default policy: the text of policies/default.policy, compiled in, and
 * the name messages give it. */
const char *policy_default_text(size_t *len);
extern const char policy_default_name[];

/* A policy compiled into the binary, by the name --policy takes instead of a file
 * ("default", "parity"): its text (and length), and in *file the file it came from (for
 * messages); NULL when name is no built-in. */
const char *policy_builtin(const char *name, const char **file, size_t *len);

#endif
