/* Command-line parsing: the defaults, each accepted form, and that a bad value is an error
 * with a message rather than a silently different configuration. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/limits.h"
#include "common/config.h"
#include "tests/unit/check.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

/* Runs config_parse on a NULL-terminated argv; err holds the message. */
static int parse(struct config *c, char **argv, int argc, char *err, size_t errlen)
{
    err[0] = '\0';
    return config_parse(c, argc, argv, err, errlen);
}

/* Returns 1 when argv is refused with a message mentioning `mention`. */
static int refused(char **argv, int argc, const char *mention)
{
    struct config c;
    char err[256];
    int rc = parse(&c, argv, argc, err, sizeof(err));
    int ok = rc == -1 && err[0] != '\0' && strstr(err, mention) != NULL;
    if (!ok)
        fprintf(stderr, "  %s %s: rc %d, err \"%s\" (want -1 mentioning \"%s\")\n", argv[1],
                argc > 2 ? argv[2] : "", rc, err, mention);
    return ok;
}

/* No flags: the documented defaults. */
static void test_defaults(void)
{
    char *argv[] = {"pyexecd", NULL};
    struct config c;
    char err[256];
    CHECK(parse(&c, argv, ARGC(argv), err, sizeof(err)) == 0);
    CHECK_STR(c.listen_host, "127.0.0.1");
    CHECK(c.listen_port == 8080);
    /* 0: the deadline and output cap come from the policy unless a flag sets them */
    CHECK(c.deadline_ms == 0);
    CHECK(c.output_bytes == 0);
    CHECK(c.require_isolation == 0);
    CHECK(c.pool == LIMIT_POOL);
    CHECK(c.queue == LIMIT_QUEUE);
    CHECK(c.workers >= 1);
    CHECK(c.failed_stdout == FAILED_STDOUT_SPLIT);
    CHECK_STR(c.runner_file, "/usr/bin/entry/named_interpreters/python/interpreter");
    CHECK(c.runner_line == 98);
    CHECK(c.zygote == 0 && c.print_policy_path == NULL && c.policy_path == NULL);
}

/* IPv6 in brackets, and port 0 (pick a free one). */
static void test_listen(void)
{
    struct config c;
    char err[256];
    char *v6[] = {"pyexecd", "--listen", "[::1]:9000", NULL};
    CHECK(parse(&c, v6, ARGC(v6), err, sizeof(err)) == 0);
    CHECK_STR(c.listen_host, "::1");
    CHECK(c.listen_port == 9000);

    char *zero[] = {"pyexecd", "--listen", "host:0", NULL};
    CHECK(parse(&c, zero, ARGC(zero), err, sizeof(err)) == 0);
    CHECK_STR(c.listen_host, "host");
    CHECK(c.listen_port == 0);

    /* The --flag=value form is the same flag. */
    char *eq[] = {"pyexecd", "--listen=0.0.0.0:65535", NULL};
    CHECK(parse(&c, eq, ARGC(eq), err, sizeof(err)) == 0);
    CHECK_STR(c.listen_host, "0.0.0.0");
    CHECK(c.listen_port == 65535);
}

/* Out-of-range and malformed values are refused, naming the flag. */
static void test_bad_values(void)
{
    char *port[] = {"pyexecd", "--listen", "127.0.0.1:70000", NULL};
    CHECK(refused(port, ARGC(port), "--listen"));
    char *noport[] = {"pyexecd", "--listen", "127.0.0.1", NULL};
    CHECK(refused(noport, ARGC(noport), "--listen"));
    char *emptyport[] = {"pyexecd", "--listen", "127.0.0.1:", NULL};
    CHECK(refused(emptyport, ARGC(emptyport), "--listen"));
    char *v6open[] = {"pyexecd", "--listen", "[::1:9000", NULL};
    CHECK(refused(v6open, ARGC(v6open), "--listen"));
    char *negport[] = {"pyexecd", "--listen", "h:-1", NULL};
    CHECK(refused(negport, ARGC(negport), "--listen"));

    char *workers0[] = {"pyexecd", "--workers", "0", NULL};
    CHECK(refused(workers0, ARGC(workers0), "--workers"));
    char *workersx[] = {"pyexecd", "--workers", "4x", NULL};
    CHECK(refused(workersx, ARGC(workersx), "--workers"));

    char *fs[] = {"pyexecd", "--failed-stdout", "other", NULL};
    CHECK(refused(fs, ARGC(fs), "--failed-stdout"));

    char *rf_noline[] = {"pyexecd", "--runner-frame", "/usr/bin/interp", NULL};
    CHECK(refused(rf_noline, ARGC(rf_noline), "--runner-frame"));
    char *rf_empty[] = {"pyexecd", "--runner-frame", "/usr/bin/interp:", NULL};
    CHECK(refused(rf_empty, ARGC(rf_empty), "--runner-frame"));
    char *rf_low[] = {"pyexecd", "--runner-frame", "x:2", NULL};
    CHECK(refused(rf_low, ARGC(rf_low), "--runner-frame"));
    char *rf_nofile[] = {"pyexecd", "--runner-frame", ":98", NULL};
    CHECK(refused(rf_nofile, ARGC(rf_nofile), "--runner-frame"));

    /* Unknown flags, a flag missing its value, stray arguments. */
    char *unknown[] = {"pyexecd", "--no-such-flag", NULL};
    CHECK(refused(unknown, ARGC(unknown), "--no-such-flag"));
    char *novalue[] = {"pyexecd", "--deadline-ms", NULL};
    CHECK(refused(novalue, ARGC(novalue), "--deadline-ms"));
    char *stray[] = {"pyexecd", "extra", NULL};
    CHECK(refused(stray, ARGC(stray), "extra"));
}

/* Accepted non-default values take effect. */
static void test_values(void)
{
    struct config c;
    char err[256];
    char *none[] = {"pyexecd", "--runner-frame", "none", NULL};
    CHECK(parse(&c, none, ARGC(none), err, sizeof(err)) == 0);
    CHECK(c.runner_file == NULL);

    char *merge[] = {"pyexecd", "--failed-stdout", "merge", "--runner-frame", "/x/run.py:3",
                     "--deadline-ms", "1500", "--workers", "3", NULL};
    CHECK(parse(&c, merge, ARGC(merge), err, sizeof(err)) == 0);
    CHECK(c.failed_stdout == FAILED_STDOUT_MERGE);
    CHECK_STR(c.runner_file, "/x/run.py");
    CHECK(c.runner_line == 3);
    CHECK(c.deadline_ms == 1500);
    CHECK(c.workers == 3);

    char *split[] = {"pyexecd", "--failed-stdout", "split", NULL};
    CHECK(parse(&c, split, ARGC(split), err, sizeof(err)) == 0);
    CHECK(c.failed_stdout == FAILED_STDOUT_SPLIT);
}

/* --help prints the usage and asks the caller to exit 0. */
static void test_help(void)
{
    struct config c;
    char err[256];
    char *help[] = {"pyexecd", "--help", NULL};
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    FILE *devnull = freopen("/dev/null", "w", stdout);   /* keep the test log readable */
    int rc = parse(&c, help, ARGC(help), err, sizeof(err));
    fflush(stdout);
    if (devnull && saved >= 0) {
        dup2(saved, STDOUT_FILENO);
        close(saved);
    }
    CHECK(rc == 1);
}

/* Each call starts afresh, whatever an earlier call left in getopt's state: here an
 * unknown bundled short option that getopt stops in the middle of. */
static void test_parse_is_repeatable(void)
{
    struct config c;
    char err[256];
    char *bundled[] = {"pyexecd", "-xy", NULL};
    CHECK(parse(&c, bundled, ARGC(bundled), err, sizeof(err)) == -1);
    char *listen[] = {"pyexecd", "--listen", "10.0.0.1:81", NULL};
    int rc = parse(&c, listen, ARGC(listen), err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "  second parse: rc %d, err \"%s\"\n", rc, err);
    CHECK(rc == 0);
    CHECK(rc == 0 && strcmp(c.listen_host, "10.0.0.1") == 0 && c.listen_port == 81);
}

/* The drain time and the API-key flags: defaults, the bounds, a value past them. */
static void test_drain_and_keys(void)
{
    struct config c;
    char err[256];
    char *none[] = {"pyexecd", NULL};
    CHECK(parse(&c, none, ARGC(none), err, sizeof(err)) == 0);
    CHECK(c.drain_ms == LIMIT_DRAIN_MS && c.api_key_file == NULL && !c.allow_unauthenticated);
    char *zero[] = {"pyexecd", "--drain-ms", "0", "--api-key-file", "/k",
                    "--allow-unauthenticated", NULL};
    CHECK(parse(&c, zero, ARGC(zero), err, sizeof(err)) == 0);
    CHECK(c.drain_ms == 0 && strcmp(c.api_key_file, "/k") == 0 && c.allow_unauthenticated);
    char max[32], past[32];
    snprintf(max, sizeof(max), "%u", LIMIT_DRAIN_MS_MAX);
    snprintf(past, sizeof(past), "%u", LIMIT_DRAIN_MS_MAX + 1);
    char *at[] = {"pyexecd", "--drain-ms", max, NULL};
    CHECK(parse(&c, at, ARGC(at), err, sizeof(err)) == 0 && c.drain_ms == LIMIT_DRAIN_MS_MAX);
    char *over[] = {"pyexecd", "--drain-ms", past, NULL};
    CHECK(refused(over, ARGC(over), "--drain-ms"));
    char *word[] = {"pyexecd", "--drain-ms", "-1", NULL};
    CHECK(refused(word, ARGC(word), "--drain-ms"));
    char *nofile[] = {"pyexecd", "--api-key-file", NULL};
    CHECK(refused(nofile, ARGC(nofile), "--api-key-file"));
}

/* --replica-id: a DNS label at its longest and one past, the refused shapes, 'none', and
 * the default (the host name's first label, lower-cased, when it is one). */
static void test_replica_id(void)
{
    struct config c;
    char err[256], label[LIMIT_REPLICA_ID_CHARS + 2], host[256] = "", want[256] = "";
    memset(label, 'a', LIMIT_REPLICA_ID_CHARS);
    label[LIMIT_REPLICA_ID_CHARS] = '\0';
    char *longest[] = {"pyexecd", "--replica-id", label, NULL};
    CHECK(parse(&c, longest, ARGC(longest), err, sizeof(err)) == 0);
    CHECK_STR(c.replica_id, label);
    char *dashed[] = {"pyexecd", "--replica-id", "10-1-2-3", NULL};
    CHECK(parse(&c, dashed, ARGC(dashed), err, sizeof(err)) == 0);
    CHECK_STR(c.replica_id, "10-1-2-3");
    char *none[] = {"pyexecd", "--replica-id", "none", NULL};
    CHECK(parse(&c, none, ARGC(none), err, sizeof(err)) == 0);
    CHECK_STR(c.replica_id, "");
    label[LIMIT_REPLICA_ID_CHARS] = 'a';
    label[LIMIT_REPLICA_ID_CHARS + 1] = '\0';
    const char *bad[] = {label, "", "R1", "-r1", "r1-", "r1.example", "r_1", "r 1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[] = {"pyexecd", "--replica-id", (char *)bad[i], NULL};
        CHECK(refused(argv, ARGC(argv), "--replica-id"));
    }
    CHECK(config_valid_replica_id("r1", 2) && !config_valid_replica_id("r1", 0));

    char *plain[] = {"pyexecd", NULL};
    CHECK(parse(&c, plain, ARGC(plain), err, sizeof(err)) == 0);
    CHECK(gethostname(host, sizeof(host) - 1) == 0);
    size_t n = strcspn(host, ".");
    for (size_t i = 0; i < n; i++)
        want[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] - 'A' + 'a' : host[i]);
    CHECK_STR(c.replica_id, config_valid_replica_id(want, n) ? want : "");
}

/* The per-key bounds: 0 by default (no per-key bound), their upper bounds, a value past
 * them, and no bound without a key file. */
static void test_key_bounds(void)
{
    struct config c;
    char err[256];
    char *none[] = {"pyexecd", NULL};
    CHECK(parse(&c, none, ARGC(none), err, sizeof(err)) == 0);
    CHECK(c.key_max_executions == 0 && c.key_max_sessions == 0);
    char emax[32], epast[32], smax[32], spast[32];
    snprintf(emax, sizeof(emax), "%u", LIMIT_KEY_EXECUTIONS_MAX);
    snprintf(epast, sizeof(epast), "%u", LIMIT_KEY_EXECUTIONS_MAX + 1);
    snprintf(smax, sizeof(smax), "%u", LIMIT_KEY_SESSIONS_MAX);
    snprintf(spast, sizeof(spast), "%u", LIMIT_KEY_SESSIONS_MAX + 1);
    char *at[] = {"pyexecd", "--api-key-file", "/k", "--key-max-executions", emax,
                  "--key-max-sessions", smax, NULL};
    CHECK(parse(&c, at, ARGC(at), err, sizeof(err)) == 0);
    CHECK(c.key_max_executions == LIMIT_KEY_EXECUTIONS_MAX &&
          c.key_max_sessions == LIMIT_KEY_SESSIONS_MAX);
    char *eover[] = {"pyexecd", "--api-key-file", "/k", "--key-max-executions", epast, NULL};
    CHECK(refused(eover, ARGC(eover), "--key-max-executions"));
    char *sover[] = {"pyexecd", "--api-key-file", "/k", "--key-max-sessions", spast, NULL};
    CHECK(refused(sover, ARGC(sover), "--key-max-sessions"));
    char *nokeys[] = {"pyexecd", "--key-max-sessions", "2", NULL};
    CHECK(refused(nokeys, ARGC(nokeys), "need --api-key-file"));
    char *zero[] = {"pyexecd", "--key-max-sessions", "0", "--key-max-executions", "0", NULL};
    CHECK(parse(&c, zero, ARGC(zero), err, sizeof(err)) == 0);
}

int main(void)
{
    test_defaults();
    test_listen();
    test_bad_values();
    test_values();
    test_help();
    test_parse_is_repeatable();
    test_drain_and_keys();
    test_replica_id();
    test_key_bounds();
    return check_done();
}
