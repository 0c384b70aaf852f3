/* Configuration, shared by the server and the zygote (which is the same binary, started
 * with the server's merged flags plus --zygote). config_parse reads flags only: the
 * environment (PYEXECD_<FLAG>) and the config file reach it as flags placed before the
 * command line's own (common/config_sources.c), so any flag of its table is a setting
 * those can give too. */
#ifndef PYEXECD_CONFIG_H
#define PYEXECD_CONFIG_H

#include <stddef.h>
#include <sys/types.h>

#include "limits.h"

/* How a failed block that had printed to stdout is reported. */
enum failed_stdout {
    FAILED_STDOUT_SPLIT,   /* an OK result with the stdout, then the FAILED result (as
                            * recorded from the real service) */
    FAILED_STDOUT_MERGE,   /* one FAILED result: stdout, then stderr and the error */
};

struct config {
    char listen_host[256];
    unsigned listen_port;
    unsigned workers;               /* executions at once: default one per core */
    unsigned pool;                  /* pre-forked idle workers */
    unsigned prefault_mib;          /* pages a pooled worker copies while idle; 0: none */
    unsigned queue;                 /* waiting requests beyond `workers` */
    unsigned http_threads;
    unsigned max_sessions;          /* sessions alive at once */
    unsigned session_idle_ms;       /* a session unused this long ends */
    unsigned session_lifetime_ms;   /* a session ends at this age */
    unsigned queue_wait_ms;         /* the longest a request waits for a worker */
    unsigned drain_ms;              /* on SIGTERM, how long taken requests may still run */
    const char *api_key_file;       /* --api-key-file, or NULL: no keys asked for */
    int allow_unauthenticated;      /* serve beyond loopback without keys */
    int log_level;                  /* enum log_level (common/log.h) */
    unsigned key_max_executions;    /* per key, running or queued; 0: no per-key bound */
    unsigned key_max_sessions;      /* per key, alive; 0: no per-key bound */
    unsigned deadline_ms;           /* per code block; 0: the policy's */
    size_t output_bytes;            /* per block and stream; 0: the policy's */
    unsigned long long worker_memory;   /* address space a worker may add; 0: the policy's */
    const char *policy_path;        /* NULL: the built-in policies/default.policy */
    const char *print_policy_path;  /* --print-policy FILE: print its filter and exit */
    int require_isolation;          /* a layer the kernel refuses is fatal */
    const char *site_packages;
    const char *state_dir;
    unsigned uid_base;              /* workers run as uid_base + slot */
    enum failed_stdout failed_stdout;
    const char *models[LIMIT_MODELS];   /* --model NAME=SPEC, in order (argv's strings) */
    unsigned nmodels;
    unsigned upstream_timeout_ms;   /* one call to an openai model's server */
    const char *runner_file;        /* NULL: no runner frame in tracebacks */
    unsigned runner_line;
    int plain_tracebacks;           /* --fidelity plain: no str(exc) line either */
    char replica_id[LIMIT_REPLICA_ID_CHARS + 1];   /* the prefix of this server's session
                                                    * ids; "" for none */

    /* Command line only (config_flag_kind): */
    const char *config_path;        /* --config FILE ("" : none), read by config_sources */
    int check_config;               /* --check-config: check, print the settings, exit */

    /* Internal: set by the server when it starts the zygote. */
    int zygote;
    pid_t server_pid;
};

struct option;

/* The flags config_parse knows: getopt's table, ending with a NULL name. A flag added to
 * it is at once a setting the environment and the config file can give (as
 * CONFIG_SETTING, unless config_flag_kind says otherwise). */
const struct option *config_options(void);

enum config_flag_kind {
    CONFIG_SETTING,             /* from the command line, PYEXECD_<FLAG> or the file */
    CONFIG_REPEATABLE,          /* a setting that may be given more than once (--model):
                                 * taken from the highest source that gives it, never
                                 * merged across sources */
    CONFIG_COMMAND_LINE_ONLY,   /* internal (--zygote, --server-pid) or an action (--help,
                                 * --version, --print-policy, --check-config, --config) */
};

/* The kind of flag `name` (without its dashes). */
enum config_flag_kind config_flag_kind(const char *name);

/* The flag whose source decides `name` too: flags that choose the same thing (--fidelity
 * and --runner-frame, which config_parse refuses together) are one setting for
 * precedence. Returns name itself for the others. */
const char *config_flag_group(const char *name);

/* The effective value of setting `name` in c, as a config file would write it. Returns 0
 * with the value in buf; 1 when it is unset, with what that means in buf ("none", "the
 * policy's"); -1 for a name this function has no case for (a repeatable or a new flag:
 * the caller shows the text it was given). */
int config_value_text(const struct config *c, const char *name, char *buf, size_t len);

/* The bin directory of the venv that holds c->site_packages (DIR/lib/pythonX.Y/site-packages
 * gives DIR/bin): its python3 and pip are what the code's child processes run. Writes
 * it to buf and returns 0, or -1 when site_packages is not shaped so. */
int config_venv_bin(const struct config *c, char *buf, size_t len);

/* Nonzero when s[0..n) is a replica id: a DNS label (1 to LIMIT_REPLICA_ID_CHARS of
 * [a-z0-9-], neither first nor last a '-'). */
int config_valid_replica_id(const char *s, size_t n);

/* Fills c with defaults, then applies argv (the last of a flag given twice wins; a
 * repeatable one adds). Returns 0 to run, 1 when --help or --version was printed (exit
 * 0), -1 on a bad flag with a message in err (exit 2). c's strings point into argv's:
 * they must live as long as c. */
int config_parse(struct config *c, int argc, char **argv, char *err, size_t errlen);

#endif
