#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fidelity.h"
#include "limits.h"
#include "log.h"

#ifndef PYEXECD_SITE_PACKAGES
#define PYEXECD_SITE_PACKAGES "/opt/pyexecd/venv/lib/python3.11/site-packages"
#endif
#ifndef PYEXECD_VERSION
#define PYEXECD_VERSION "0.1.0"
#endif

/* The runner frame the real service shows in tracebacks today, and the one it showed in
 * 2025 (docs/gemini-wire.md). */
#define DEFAULT_RUNNER_FRAME "/usr/bin/entry/named_interpreters/python/interpreter:98"
#define RUNNER_FRAME_2025 "/usr/bin/entry/entry_point:117"
/* Where workers get their uids: far above the ranges Debian hands out to system and human
 * users and to subordinate-id ranges, so a worker shares its uid with nobody. */
#define DEFAULT_UID_BASE 2000000000u

enum {
    OPT_LISTEN = 256, OPT_WORKERS, OPT_POOL, OPT_PREFAULT, OPT_QUEUE, OPT_HTTP_THREADS, OPT_DEADLINE,
    OPT_MAX_SESSIONS, OPT_SESSION_IDLE, OPT_SESSION_LIFETIME, OPT_QUEUE_WAIT,
    OPT_OUTPUT, OPT_MEMORY, OPT_SITE, OPT_STATE, OPT_UID_BASE, OPT_FAILED_STDOUT,
    OPT_RUNNER_FRAME, OPT_POLICY, OPT_PRINT_POLICY, OPT_REQUIRE_ISOLATION, OPT_ZYGOTE,
    OPT_SERVER_PID, OPT_MODEL, OPT_UPSTREAM_TIMEOUT, OPT_FIDELITY, OPT_DRAIN, OPT_API_KEY_FILE,
    OPT_ALLOW_UNAUTHENTICATED, OPT_LOG_LEVEL, OPT_REPLICA_ID, OPT_KEY_MAX_EXECUTIONS, OPT_KEY_MAX_SESSIONS,
    OPT_HELP, OPT_VERSION,
    OPT_CONFIG, OPT_CHECK_CONFIG,
};

static const struct option long_options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"pool", required_argument, NULL, OPT_POOL},
    {"prefault-mib", required_argument, NULL, OPT_PREFAULT},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"queue-wait-ms", required_argument, NULL, OPT_QUEUE_WAIT},
    {"http-threads", required_argument, NULL, OPT_HTTP_THREADS},
    {"max-sessions", required_argument, NULL, OPT_MAX_SESSIONS},
    {"session-idle-ms", required_argument, NULL, OPT_SESSION_IDLE},
    {"session-lifetime-ms", required_argument, NULL, OPT_SESSION_LIFETIME},
    {"drain-ms", required_argument, NULL, OPT_DRAIN},
    {"api-key-file", required_argument, NULL, OPT_API_KEY_FILE},
    {"allow-unauthenticated", no_argument, NULL, OPT_ALLOW_UNAUTHENTICATED},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"replica-id", required_argument, NULL, OPT_REPLICA_ID},
    {"key-max-executions", required_argument, NULL, OPT_KEY_MAX_EXECUTIONS},
    {"key-max-sessions", required_argument, NULL, OPT_KEY_MAX_SESSIONS},
    {"deadline-ms", required_argument, NULL, OPT_DEADLINE},
    {"output-bytes", required_argument, NULL, OPT_OUTPUT},
    {"worker-memory-mib", required_argument, NULL, OPT_MEMORY},
    {"site-packages", required_argument, NULL, OPT_SITE},
    {"state-dir", required_argument, NULL, OPT_STATE},
    {"worker-uid-base", required_argument, NULL, OPT_UID_BASE},
    {"failed-stdout", required_argument, NULL, OPT_FAILED_STDOUT},
    {"runner-frame", required_argument, NULL, OPT_RUNNER_FRAME},
    {"fidelity", required_argument, NULL, OPT_FIDELITY},
    {"policy", required_argument, NULL, OPT_POLICY},
    {"print-policy", required_argument, NULL, OPT_PRINT_POLICY},
    {"require-isolation", no_argument, NULL, OPT_REQUIRE_ISOLATION},
    {"model", required_argument, NULL, OPT_MODEL},
    {"upstream-timeout-ms", required_argument, NULL, OPT_UPSTREAM_TIMEOUT},
    {"zygote", no_argument, NULL, OPT_ZYGOTE},
    {"server-pid", required_argument, NULL, OPT_SERVER_PID},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
    fprintf(f,
"Usage: pyexecd [FLAG]...\n"
"A sandboxed Python code-execution server speaking the Gemini code-execution wire format.\n"
"\n"
"  --listen HOST:PORT        address to serve on (default 127.0.0.1:8080; [::1]:PORT for\n"
"                            IPv6; port 0 picks a free port, printed at start)\n"
"  --workers N               executions at once (default: one per core)\n"
"  --pool N                  workers forked and sandboxed ahead of demand (default %d;\n"
"                            0 forks on demand)\n"
"  --prefault-mib N          memory a pooled worker copies from the zygote while it waits,\n"
"                            the pages the libraries' common paths write, so requests do\n"
"                            not fault them in (default %d; 0 turns it off)\n"
"  --queue N                 requests that may wait for a worker; past it: 429 (default %d)\n"
"  --queue-wait-ms MS        the longest a request waits for a worker; then 503 (default %u)\n"
"  --http-threads N          HTTP threads (default: one per core)\n"
"  --max-sessions N          sessions alive at once; past it: 429 (default %d)\n"
"  --session-idle-ms MS      a session unused this long ends (default %u)\n"
"  --session-lifetime-ms MS  a session ends at this age (default %u)\n"
"  --drain-ms MS             on SIGTERM, how long requests already taken may still run\n"
"                            before the server stops (default %u; a second SIGTERM stops\n"
"                            at once)\n"
"  --api-key-file FILE       API keys a request must present (x-goog-api-key, ?key= or\n"
"                            Authorization: Bearer), one per line: 'ID KEY' or 'KEY',\n"
"                            then optionally that key's own bounds: executions=N\n"
"                            sessions=N (0: none of its own) (default: none, no key\n"
"                            asked for)\n"
"  --allow-unauthenticated   serve beyond loopback without --api-key-file (a warning)\n"
"                            (default: off)\n"
"  --log-level LEVEL         debug, info (default: one JSON line per request), warn\n"
"                            (start-up, drain and warnings only) or error\n"
"  --replica-id ID           this server's name in a fleet, the prefix of its session ids\n"
"                            (ID.<32 hex>: a balancer routes /v1/sessions/ID.* here); a DNS\n"
"                            label, 1-63 of a-z 0-9 -, or 'none' (default: the host name's\n"
"                            first label, lower-cased, when it is one)\n"
"  --key-max-executions N    with --api-key-file: executions one key may have running or\n"
"                            queued at once (requests, session executes, model turns\n"
"                            that run code); past it: 429 (default 0: no per-key bound)\n"
"  --key-max-sessions N      with --api-key-file: sessions one key may hold; past it: 429\n"
"                            (default 0: no per-key bound)\n"
"  --policy FILE             sandbox policy: seccomp rules and limits (default: the\n"
"                            built-in policies/default.policy; grammar in policies/README.md)\n"
"  --print-policy FILE       print FILE's compiled seccomp filter (PFC) and exit\n"
"  --require-isolation       refuse to serve if the kernel denies any isolation layer\n"
"                            (default: off)\n"
"  --deadline-ms MS          wall-clock limit per code block (default: the policy's, %d)\n"
"  --output-bytes N          stdout (and stderr) bytes kept per code block (default: the\n"
"                            policy's, %u)\n"
"  --worker-memory-mib N     address space a worker may add to the zygote's (default: the\n"
"                            policy's, %llu)\n"
"  --site-packages DIR       the sandbox's Python libraries\n"
"                            (default " PYEXECD_SITE_PACKAGES ")\n"
"  --state-dir DIR           server state: font cache, fallback work dirs\n"
"                            (default /tmp/pyexecd-UID)\n"
"  --worker-uid-base UID     workers run as UID+slot (default %u)\n"
"  --failed-stdout MODE      stdout of a block that then raised: 'split' (an OK result with\n"
"                            the stdout, then the FAILED one, as recorded from the real\n"
"                            service; default) or 'merge' (one FAILED result)\n"
"  --model NAME=SPEC         serve model NAME for generateContent (repeatable; `echo` is\n"
"                            always served): echo, script:FILE (turns from a JSONL file,\n"
"                            faults included), or openai:URL[,model=M][,key-file=F]\n"
"                            [,tool-choice=auto|required|run_python] (an OpenAI-compatible\n"
"                            chat-completions server) (default: none but echo)\n"
"  --upstream-timeout-ms MS  the longest one call to an openai model's server may take\n"
"                            (default %u)\n"
"  --fidelity PROFILE        tracebacks as the real service wrote them: 'current' (default),\n"
"                            '2025' (the entry_point runner frame) or 'plain' (a plain\n"
"                            Python traceback); a request's X-Pyexecd-Fidelity header\n"
"                            chooses its own\n"
"  --runner-frame FILE:LINE  first traceback frame, as the real service's runner shows it\n"
"                            (default " DEFAULT_RUNNER_FRAME "); 'none' omits it\n"
"  --config FILE             read settings from FILE (default: the file PYEXECD_CONFIG\n"
"                            names, else none; --config '' reads none)\n"
"  --check-config            check the settings, the policy, the key file and the models;\n"
"                            print each setting with where it came from, and exit\n"
"  --help                    this text\n"
"  --version                 the version\n"
"\n"
"Each setting can also come from the environment, PYEXECD_<FLAG> (the flag upper-cased,\n"
"'-' as '_': PYEXECD_MAX_SESSIONS=16), or from the config file: one 'name = value' a line,\n"
"the name a flag without its dashes (max-sessions = 16), '#' lines are comments, booleans\n"
"are true or false. Precedence: a flag on the command line, then PYEXECD_<FLAG>, then the\n"
"file, then the default. A repeatable flag (--model) is taken from the highest of these\n"
"that gives it (in the environment a whitespace-separated list), never merged across\n"
"them. --config, --check-config, --print-policy, --help and --version are command-line\n"
"only. An empty PYEXECD_ variable is unset; one that names no setting is ignored\n"
"(--check-config lists it).\n",
            LIMIT_POOL, LIMIT_PREFAULT_MIB, LIMIT_QUEUE, LIMIT_QUEUE_WAIT_MS, LIMIT_SESSIONS, LIMIT_SESSION_IDLE_MS,
            LIMIT_SESSION_LIFETIME_MS, LIMIT_DRAIN_MS, LIMIT_DEADLINE_MS, LIMIT_OUTPUT_BYTES,
            LIMIT_WORKER_AS_HEADROOM >> 20, DEFAULT_UID_BASE, LIMIT_UPSTREAM_TIMEOUT_MS);
}

int config_valid_replica_id(const char *s, size_t n)
{
    if (n < 1 || n > LIMIT_REPLICA_ID_CHARS || s[0] == '-' || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

/* The default replica id: the host name's first label, lower-cased, when it is a valid
 * one (a pod's or a container's name, say); else none. */
static void default_replica_id(char *out, size_t outlen)
{
    char host[256];
    out[0] = '\0';
    if (gethostname(host, sizeof(host)) < 0)
        return;
    host[sizeof(host) - 1] = '\0';
    size_t n = strcspn(host, ".");
    for (size_t i = 0; i < n; i++)
        if (host[i] >= 'A' && host[i] <= 'Z')
            host[i] = (char)(host[i] - 'A' + 'a');
    if (n < outlen && config_valid_replica_id(host, n)) {
        memcpy(out, host, n);
        out[n] = '\0';
    }
}

const struct option *config_options(void)
{
    return long_options;
}

enum config_flag_kind config_flag_kind(const char *name)
{
    static const char *const command_line_only[] = {
        "zygote", "server-pid", "help", "version", "print-policy", "check-config", "config",
    };
    for (size_t i = 0; i < sizeof(command_line_only) / sizeof(command_line_only[0]); i++)
        if (strcmp(name, command_line_only[i]) == 0)
            return CONFIG_COMMAND_LINE_ONLY;
    if (strcmp(name, "model") == 0)
        return CONFIG_REPEATABLE;
    return CONFIG_SETTING;
}

const char *config_flag_group(const char *name)
{
    return strcmp(name, "runner-frame") == 0 ? "fidelity" : name;
}

int config_value_text(const struct config *c, const char *name, char *buf, size_t len)
{
    static const struct {
        const char *name;
        size_t offset;
    } counts[] = {
        {"workers", offsetof(struct config, workers)},
        {"pool", offsetof(struct config, pool)},
        {"prefault-mib", offsetof(struct config, prefault_mib)},
        {"queue", offsetof(struct config, queue)},
        {"queue-wait-ms", offsetof(struct config, queue_wait_ms)},
        {"http-threads", offsetof(struct config, http_threads)},
        {"max-sessions", offsetof(struct config, max_sessions)},
        {"session-idle-ms", offsetof(struct config, session_idle_ms)},
        {"session-lifetime-ms", offsetof(struct config, session_lifetime_ms)},
        {"drain-ms", offsetof(struct config, drain_ms)},
        {"worker-uid-base", offsetof(struct config, uid_base)},
        {"upstream-timeout-ms", offsetof(struct config, upstream_timeout_ms)},
        {"key-max-executions", offsetof(struct config, key_max_executions)},
        {"key-max-sessions", offsetof(struct config, key_max_sessions)},
    };
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        if (strcmp(name, counts[i].name) == 0) {
            snprintf(buf, len, "%u", *(const unsigned *)((const char *)c + counts[i].offset));
            return 0;
        }
    const char *text = NULL;   /* a string setting's value, NULL when unset */
    const char *unset = "none";
    if (strcmp(name, "listen") == 0) {
        int v6 = strchr(c->listen_host, ':') != NULL;
        snprintf(buf, len, "%s%s%s:%u", v6 ? "[" : "", c->listen_host, v6 ? "]" : "",
                 c->listen_port);
        return 0;
    } else if (strcmp(name, "allow-unauthenticated") == 0) {
        text = c->allow_unauthenticated ? "true" : "false";
    } else if (strcmp(name, "require-isolation") == 0) {
        text = c->require_isolation ? "true" : "false";
    } else if (strcmp(name, "deadline-ms") == 0 || strcmp(name, "output-bytes") == 0 ||
               strcmp(name, "worker-memory-mib") == 0) {
        unsigned long long v = name[0] == 'd' ? c->deadline_ms : name[0] == 'o' ?
                               (unsigned long long)c->output_bytes : c->worker_memory >> 20;
        if (!v) {
            snprintf(buf, len, "the policy's");
            return 1;
        }
        snprintf(buf, len, "%llu", v);
        return 0;
    } else if (strcmp(name, "api-key-file") == 0) {
        text = c->api_key_file;
    } else if (strcmp(name, "replica-id") == 0) {
        text = c->replica_id[0] ? c->replica_id : NULL;
    } else if (strcmp(name, "log-level") == 0) {
        text = log_level_name((enum log_level)c->log_level);
    } else if (strcmp(name, "policy") == 0) {
        text = c->policy_path;
        unset = "the built-in default";
    } else if (strcmp(name, "site-packages") == 0) {
        text = c->site_packages;
    } else if (strcmp(name, "state-dir") == 0) {
        text = c->state_dir;
    } else if (strcmp(name, "failed-stdout") == 0) {
        text = c->failed_stdout == FAILED_STDOUT_MERGE ? "merge" : "split";
    } else if (strcmp(name, "runner-frame") == 0 || strcmp(name, "fidelity") == 0) {
        char frame[PATH_MAX + 16];
        if (c->runner_file)
            snprintf(frame, sizeof(frame), "%s:%u", c->runner_file, c->runner_line);
        else
            snprintf(frame, sizeof(frame), "none");
        if (name[0] == 'r') {
            snprintf(buf, len, "%s", frame);
            return 0;
        }
        text = c->plain_tracebacks ? "plain" : strcmp(frame, RUNNER_FRAME_2025) == 0 ? "2025" :
               strcmp(frame, DEFAULT_RUNNER_FRAME) == 0 ? "current" : NULL;
        unset = "as runner-frame says";
    } else {
        return -1;
    }
    snprintf(buf, len, "%s", text ? text : unset);
    return text ? 0 : 1;
}

int config_venv_bin(const struct config *c, char *buf, size_t len)
{
    /* Strip three components: site-packages, pythonX.Y, lib. */
    size_t n = strlen(c->site_packages);
    while (n > 1 && c->site_packages[n - 1] == '/')
        n--;
    for (int k = 0; k < 3; k++) {
        while (n > 0 && c->site_packages[n - 1] != '/')
            n--;
        while (n > 1 && c->site_packages[n - 1] == '/')
            n--;
    }
    if (n <= 1 || n + sizeof("/bin") > len)
        return -1;
    memcpy(buf, c->site_packages, n);
    memcpy(buf + n, "/bin", sizeof("/bin"));
    return 0;
}

/* Parses an unsigned decimal in [min, max]. */
static int parse_uint(const char *s, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
    char *end;
    if (!*s || *s == '-')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_listen(struct config *c, const char *s)
{
    const char *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        size_t n = (size_t)(close - s - 1);
        if (n == 0 || n >= sizeof(c->listen_host))
            return -1;
        memcpy(c->listen_host, s + 1, n);
        c->listen_host[n] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s || (size_t)(colon - s) >= sizeof(c->listen_host))
            return -1;
        memcpy(c->listen_host, s, (size_t)(colon - s));
        c->listen_host[colon - s] = '\0';
    }
    unsigned long long port;
    if (parse_uint(colon + 1, 0, 65535, &port) < 0)
        return -1;
    c->listen_port = (unsigned)port;
    return 0;
}

int config_parse(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
    static char state_default[64];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    memset(c, 0, sizeof(*c));
    strcpy(c->listen_host, "127.0.0.1");
    c->listen_port = 8080;
    c->workers = (unsigned)cores;
    c->pool = LIMIT_POOL;
    c->prefault_mib = LIMIT_PREFAULT_MIB;
    c->queue = LIMIT_QUEUE;
    c->http_threads = (unsigned)cores;
    c->max_sessions = LIMIT_SESSIONS;
    c->session_idle_ms = LIMIT_SESSION_IDLE_MS;
    c->session_lifetime_ms = LIMIT_SESSION_LIFETIME_MS;
    c->queue_wait_ms = LIMIT_QUEUE_WAIT_MS;
    c->drain_ms = LIMIT_DRAIN_MS;
    c->site_packages = PYEXECD_SITE_PACKAGES;
    snprintf(state_default, sizeof(state_default), "/tmp/pyexecd-%u", (unsigned)geteuid());
    c->state_dir = state_default;
    c->uid_base = DEFAULT_UID_BASE;
    c->failed_stdout = FAILED_STDOUT_SPLIT;
    c->upstream_timeout_ms = LIMIT_UPSTREAM_TIMEOUT_MS;
    c->runner_file = NULL;
    c->log_level = LOG_INFO;
    default_replica_id(c->replica_id, sizeof(c->replica_id));

    static char runner_file[PATH_MAX];
    const char *runner = DEFAULT_RUNNER_FRAME;
    int fidelity = -1, runner_given = 0;
    unsigned long long v;
    int opt;

    /* The flags whose value is a count or a time: bounds, and where it goes. */
    const struct {
        int opt;
        unsigned long long lo, hi;
        unsigned *dst;
    } counts[] = {
        {OPT_WORKERS, 1, LIMIT_WORKERS_MAX, &c->workers},
        {OPT_POOL, 0, LIMIT_WORKERS_MAX, &c->pool},
        {OPT_PREFAULT, 0, LIMIT_PREFAULT_MIB_MAX, &c->prefault_mib},
        {OPT_QUEUE, 0, LIMIT_QUEUE_MAX, &c->queue},
        {OPT_HTTP_THREADS, 1, LIMIT_HTTP_THREADS_MAX, &c->http_threads},
        {OPT_QUEUE_WAIT, LIMIT_WAIT_MS_MIN, LIMIT_QUEUE_WAIT_MS_MAX, &c->queue_wait_ms},
        {OPT_MAX_SESSIONS, 0, LIMIT_SESSIONS_MAX, &c->max_sessions},
        {OPT_KEY_MAX_EXECUTIONS, 0, LIMIT_KEY_EXECUTIONS_MAX, &c->key_max_executions},
        {OPT_KEY_MAX_SESSIONS, 0, LIMIT_KEY_SESSIONS_MAX, &c->key_max_sessions},
        {OPT_SESSION_IDLE, LIMIT_WAIT_MS_MIN, LIMIT_SESSION_MS_MAX, &c->session_idle_ms},
        {OPT_SESSION_LIFETIME, LIMIT_WAIT_MS_MIN, LIMIT_SESSION_MS_MAX, &c->session_lifetime_ms},
        {OPT_DRAIN, 0, LIMIT_DRAIN_MS_MAX, &c->drain_ms},
        {OPT_DEADLINE, LIMIT_DEADLINE_MS_MIN, LIMIT_DEADLINE_MS_MAX, &c->deadline_ms},
        {OPT_UID_BASE, LIMIT_UID_BASE_MIN, LIMIT_UID_BASE_MAX, &c->uid_base},
        {OPT_UPSTREAM_TIMEOUT, LIMIT_UPSTREAM_TIMEOUT_MS_MIN, LIMIT_UPSTREAM_TIMEOUT_MS_MAX,
         &c->upstream_timeout_ms},
    };

    optind = 0;   /* glibc: 0 resets getopt fully, 1 keeps its position in bundled flags */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        const char *a = optarg;
        size_t k = 0;
        while (k < sizeof(counts) / sizeof(counts[0]) && counts[k].opt != opt)
            k++;
        if (k < sizeof(counts) / sizeof(counts[0])) {
            if (parse_uint(a, counts[k].lo, counts[k].hi, &v) < 0)
                goto bad;
            *counts[k].dst = (unsigned)v;
            continue;
        }
        switch (opt) {
        case OPT_LISTEN:
            if (parse_listen(c, a) < 0)
                goto bad;
            break;
        case OPT_OUTPUT:
            if (parse_uint(a, LIMIT_OUTPUT_BYTES_MIN, LIMIT_OUTPUT_BYTES_MAX, &v) < 0)
                goto bad;
            c->output_bytes = (size_t)v;
            break;
        case OPT_MEMORY:
            if (parse_uint(a, LIMIT_WORKER_AS_MIB_MIN, LIMIT_WORKER_AS_MIB_MAX, &v) < 0)
                goto bad;
            c->worker_memory = v << 20;
            break;
        case OPT_SITE:
            c->site_packages = a;
            break;
        case OPT_STATE:
            if (a[0] != '/')
                goto bad;
            c->state_dir = a;
            break;
        case OPT_FAILED_STDOUT:
            if (strcmp(a, "split") == 0)
                c->failed_stdout = FAILED_STDOUT_SPLIT;
            else if (strcmp(a, "merge") == 0)
                c->failed_stdout = FAILED_STDOUT_MERGE;
            else
                goto bad;
            break;
        case OPT_RUNNER_FRAME:
            runner = a;
            runner_given = 1;
            break;
        case OPT_FIDELITY:
            if ((fidelity = fidelity_from_name(a)) < 0)
                goto bad;
            break;
        case OPT_MODEL:
            if (c->nmodels == LIMIT_MODELS) {
                snprintf(err, errlen, "--model: at most %d models", LIMIT_MODELS);
                return -1;
            }
            c->models[c->nmodels++] = a;
            break;
        case OPT_POLICY:
            c->policy_path = a;
            break;
        case OPT_API_KEY_FILE:
            c->api_key_file = a;
            break;
        case OPT_ALLOW_UNAUTHENTICATED:
            c->allow_unauthenticated = 1;
            break;
        case OPT_LOG_LEVEL: {
            int l = log_level_from_name(a);
            if (l < 0)
                goto bad;
            c->log_level = l;
            break;
        }
        case OPT_REPLICA_ID:
            if (strcmp(a, "none") == 0) {
                c->replica_id[0] = '\0';
                break;
            }
            if (!config_valid_replica_id(a, strlen(a))) {
                snprintf(err, errlen, "bad value for --replica-id: '%.80s' (a DNS label: 1 to "
                         "%d of a-z, 0-9 and '-', not first or last; or none)", a,
                         LIMIT_REPLICA_ID_CHARS);
                return -1;
            }
            memcpy(c->replica_id, a, strlen(a) + 1);
            break;
        case OPT_PRINT_POLICY:
            c->print_policy_path = a;
            break;
        case OPT_REQUIRE_ISOLATION:
            c->require_isolation = 1;
            break;
        case OPT_CONFIG:
            c->config_path = a;
            break;
        case OPT_CHECK_CONFIG:
            c->check_config = 1;
            break;
        case OPT_ZYGOTE:
            c->zygote = 1;
            break;
        case OPT_SERVER_PID:
            if (parse_uint(a, 1, INT_MAX, &v) < 0)
                goto bad;
            c->server_pid = (pid_t)v;
            break;
        case OPT_HELP:
            usage(stdout);
            return 1;
        case OPT_VERSION:
            printf("pyexecd %s\n", PYEXECD_VERSION);
            return 1;
        default:
            snprintf(err, errlen, "unknown flag or missing value: %s (see --help)",
                     argv[optind - 1]);
            return -1;
        }
        continue;
bad:
        for (const struct option *o = long_options; o->name; o++)
            if (o->val == opt)
                snprintf(err, errlen, "bad value for --%s: '%s' (see --help)", o->name, a);
        return -1;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument: %s (see --help)", argv[optind]);
        return -1;
    }

    if ((c->key_max_executions || c->key_max_sessions) && !c->api_key_file) {
        snprintf(err, errlen, "--key-max-executions and --key-max-sessions bound each API "
                 "key: they need --api-key-file");
        return -1;
    }
    if (fidelity >= 0 && runner_given) {
        snprintf(err, errlen, "--fidelity and --runner-frame both choose the runner frame: "
                 "give one");
        return -1;
    }
    if (fidelity == FIDELITY_2025)
        runner = RUNNER_FRAME_2025;
    if (fidelity == FIDELITY_PLAIN) {
        runner = "none";
        c->plain_tracebacks = 1;
    }
    if (strcmp(runner, "none") != 0) {
        const char *colon = strrchr(runner, ':');
        if (!colon || colon == runner || (size_t)(colon - runner) >= sizeof(runner_file) ||
            parse_uint(colon + 1, 3, 100000, &v) < 0) {
            snprintf(err, errlen, "bad value for --runner-frame: '%s' (FILE:LINE, LINE >= 3, "
                     "or none)", runner);
            return -1;
        }
        memcpy(runner_file, runner, (size_t)(colon - runner));
        runner_file[colon - runner] = '\0';
        c->runner_file = runner_file;
        c->runner_line = (unsigned)v;
    }
    return 0;
}
