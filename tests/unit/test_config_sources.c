/* Settings from the environment and the config file: precedence (flag > PYEXECD_<FLAG> >
 * file > default), booleans, repeatable flags taken from one source, the file's size
 * limit, and every refusal naming where it came from and which setting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/config_sources.h"
#include "common/limits.h"
#include "tests/unit/check.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static char conf_path[] = "/tmp/pyexecd-unit-conf-XXXXXX";

/* Writes the config file the tests name. */
static void write_conf(const char *text, size_t len)
{
    FILE *f = fopen(conf_path, "w");
    if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        perror(conf_path);
        exit(1);
    }
}

static void conf(const char *text)
{
    write_conf(text, strlen(text));
}

/* Merges and parses; 0 on success (c and s filled: release s), -1 with err. */
static int load(struct config *c, struct config_sources *s, char **argv, int argc,
                char **envp, char *err, size_t errlen)
{
    err[0] = '\0';
    if (config_parse(c, argc, argv, err, errlen) != 0)
        return -1;
    if (config_sources_merge(s, argc, argv, envp, err, errlen) < 0)
        return -1;
    return config_parse(c, s->argc, s->argv, err, errlen) == 0 ? 0 : -1;
}

/* The refusal's message, "" when it was accepted. */
static const char *refusal(char **argv, int argc, char **envp)
{
    static char err[1024];
    struct config c;
    struct config_sources s;
    int rc = load(&c, &s, argv, argc, envp, err, sizeof(err));
    config_sources_release(&s);
    if (rc == 0)
        err[0] = '\0';
    return err;
}

#define CHECK_REFUSED(argv, envp, want)                                                  \
    do {                                                                                 \
        const char *e_ = refusal(argv, ARGC(argv), envp);                                \
        check_count++;                                                                   \
        if (!*e_ || !strstr(e_, want)) {                                                 \
            check_failures++;                                                            \
            fprintf(stderr, "%s:%d: got \"%s\", want a refusal with \"%s\"\n", __FILE__, \
                    __LINE__, e_, want);                                                 \
        }                                                                                \
    } while (0)

/* workers from each source in turn: the highest that gives it wins. */
static void test_precedence(void)
{
    char env_arg[] = "PYEXECD_WORKERS=4";
    char conf_arg[64];
    snprintf(conf_arg, sizeof(conf_arg), "PYEXECD_CONFIG=%s", conf_path);
    conf("workers = 3\nmax-sessions = 7\n");
    char *envp[] = {env_arg, conf_arg, NULL};
    char *envp_file[] = {conf_arg, NULL};
    char *none[] = {NULL};
    char *flag[] = {"pyexecd", "--workers", "5", NULL};
    char *bare[] = {"pyexecd", NULL};
    struct config c;
    struct config_sources s;
    char err[512];

    CHECK(load(&c, &s, flag, ARGC(flag), envp, err, sizeof(err)) == 0);
    CHECK(c.workers == 5 && c.max_sessions == 7);
    config_sources_release(&s);
    CHECK(load(&c, &s, bare, ARGC(bare), envp, err, sizeof(err)) == 0);
    CHECK(c.workers == 4 && c.max_sessions == 7);
    config_sources_release(&s);
    CHECK(load(&c, &s, bare, ARGC(bare), envp_file, err, sizeof(err)) == 0);
    CHECK(c.workers == 3);
    config_sources_release(&s);
    CHECK(load(&c, &s, bare, ARGC(bare), none, err, sizeof(err)) == 0);
    CHECK(c.max_sessions == LIMIT_SESSIONS);
    config_sources_release(&s);

    /* --config on the command line wins over PYEXECD_CONFIG; --config '' reads none. */
    char *other_conf[] = {"pyexecd", "--config", "/nonexistent/pyexecd.conf", NULL};
    CHECK_REFUSED(other_conf, envp_file, "--config: /nonexistent/pyexecd.conf: cannot read");
    char *no_conf[] = {"pyexecd", "--config=", NULL};
    CHECK(load(&c, &s, no_conf, ARGC(no_conf), envp_file, err, sizeof(err)) == 0);
    CHECK(c.max_sessions == LIMIT_SESSIONS);
    config_sources_release(&s);

    /* An empty variable is unset: the file's value stays. */
    char empty[] = "PYEXECD_WORKERS=";
    char *envp_empty[] = {empty, conf_arg, NULL};
    CHECK(load(&c, &s, bare, ARGC(bare), envp_empty, err, sizeof(err)) == 0);
    CHECK(c.workers == 3);
    config_sources_release(&s);
}

/* A boolean: true sets it, false overrides a lower source's true. */
static void test_booleans(void)
{
    char conf_arg[64];
    snprintf(conf_arg, sizeof(conf_arg), "PYEXECD_CONFIG=%s", conf_path);
    char env_false[] = "PYEXECD_REQUIRE_ISOLATION=false";
    char env_true[] = "PYEXECD_ALLOW_UNAUTHENTICATED=true";
    char *bare[] = {"pyexecd", NULL};
    struct config c;
    struct config_sources s;
    char err[512];

    conf("require-isolation = true\nallow-unauthenticated = false\n");
    char *file_only[] = {conf_arg, NULL};
    CHECK(load(&c, &s, bare, ARGC(bare), file_only, err, sizeof(err)) == 0);
    CHECK(c.require_isolation == 1 && c.allow_unauthenticated == 0);
    config_sources_release(&s);

    char *both[] = {env_false, env_true, conf_arg, NULL};
    CHECK(load(&c, &s, bare, ARGC(bare), both, err, sizeof(err)) == 0);
    CHECK(c.require_isolation == 0 && c.allow_unauthenticated == 1);
    config_sources_release(&s);

    /* The command line's flag wins over the environment's false. */
    char *flag[] = {"pyexecd", "--require-isolation", NULL};
    CHECK(load(&c, &s, flag, ARGC(flag), both, err, sizeof(err)) == 0);
    CHECK(c.require_isolation == 1);
    config_sources_release(&s);

    char env_yes[] = "PYEXECD_REQUIRE_ISOLATION=yes";
    char *bad_env[] = {env_yes, NULL};
    CHECK_REFUSED(bare, bad_env, "PYEXECD_REQUIRE_ISOLATION: bad value 'yes': true or false");
    conf("require-isolation = 1\n");
    CHECK_REFUSED(bare, file_only, ":1: require-isolation: bad value '1': true or false");
    conf("require-isolation\n");
    CHECK_REFUSED(bare, file_only, ":1: require-isolation: no '='");
}

/* --model: from the highest source that gives any, never merged. */
static void test_repeatable(void)
{
    char conf_arg[64];
    snprintf(conf_arg, sizeof(conf_arg), "PYEXECD_CONFIG=%s", conf_path);
    char env_models[] = "PYEXECD_MODEL=a=echo \t b=echo\n";
    char *bare[] = {"pyexecd", NULL};
    struct config c;
    struct config_sources s;
    char err[512];

    conf("model = f1=echo\nmodel = f2=echo\n");
    char *file_only[] = {conf_arg, NULL};
    CHECK(load(&c, &s, bare, ARGC(bare), file_only, err, sizeof(err)) == 0);
    CHECK(c.nmodels == 2 && strcmp(c.models[0], "f1=echo") == 0 &&
          strcmp(c.models[1], "f2=echo") == 0);
    config_sources_release(&s);

    char *both[] = {env_models, conf_arg, NULL};
    CHECK(load(&c, &s, bare, ARGC(bare), both, err, sizeof(err)) == 0);
    CHECK(c.nmodels == 2 && strcmp(c.models[0], "a=echo") == 0 &&
          strcmp(c.models[1], "b=echo") == 0);
    config_sources_release(&s);

    char *flag[] = {"pyexecd", "--model", "c=echo", NULL};
    CHECK(load(&c, &s, flag, ARGC(flag), both, err, sizeof(err)) == 0);
    CHECK(c.nmodels == 1 && strcmp(c.models[0], "c=echo") == 0);
    config_sources_release(&s);
}

/* Flags that choose the same thing (--fidelity, --runner-frame) are one setting: the
 * command line's runner frame wins over the file's fidelity instead of clashing. */
static void test_groups(void)
{
    char conf_arg[64];
    snprintf(conf_arg, sizeof(conf_arg), "PYEXECD_CONFIG=%s", conf_path);
    char *file_only[] = {conf_arg, NULL};
    char *flag[] = {"pyexecd", "--runner-frame", "/r.py:5", NULL};
    char *bare[] = {"pyexecd", NULL};
    struct config c;
    struct config_sources s;
    char err[512];
    conf("fidelity = plain\n");
    CHECK(load(&c, &s, flag, ARGC(flag), file_only, err, sizeof(err)) == 0);
    CHECK_STR(c.runner_file, "/r.py");
    CHECK(c.runner_line == 5 && !c.plain_tracebacks);
    config_sources_release(&s);
    CHECK(load(&c, &s, bare, ARGC(bare), file_only, err, sizeof(err)) == 0);
    CHECK(c.plain_tracebacks && c.runner_file == NULL);
    config_sources_release(&s);
    conf("fidelity = plain\nrunner-frame = /r.py:5\n");
    CHECK_REFUSED(bare, file_only, ":2: runner-frame: fidelity (");
}

/* Every refusal names the source and the setting. */
static void test_refusals(void)
{
    char conf_arg[64];
    snprintf(conf_arg, sizeof(conf_arg), "PYEXECD_CONFIG=%s", conf_path);
    char *file_only[] = {conf_arg, NULL};
    char *bare[] = {"pyexecd", NULL};
    char want[256];

    conf("# settings\n\nworkers = 2\nmax-sesions = 3\n");
    snprintf(want, sizeof(want), "%s:4: max-sesions: unknown setting", conf_path);
    CHECK_REFUSED(bare, file_only, want);
    conf("--workers = 2\n");
    CHECK_REFUSED(bare, file_only, ":1: --workers: unknown setting (a name is a flag "
                  "without its dashes)");
    conf("  workers = x  \r\n");
    snprintf(want, sizeof(want), "%s:1: workers: bad value 'x' (see --help)", conf_path);
    CHECK_REFUSED(bare, file_only, want);
    conf("pool = 1\nworkers\n");
    CHECK_REFUSED(bare, file_only, ":2: workers: no '='");
    conf("workers =\n");
    CHECK_REFUSED(bare, file_only, ":1: workers: no value");
    conf("= 3\n");
    CHECK_REFUSED(bare, file_only, ":1: no name before '='");
    conf("workers = 2\nworkers = 3\n");
    CHECK_REFUSED(bare, file_only, ":2: workers: given again (line 1)");
    conf("runner-frame = x\n");
    CHECK_REFUSED(bare, file_only, ":1: runner-frame: bad value 'x' (FILE:LINE");
    write_conf("workers = 2\npool\0 = 1\n", 21);
    CHECK_REFUSED(bare, file_only, ":2: a NUL byte");

    /* Command-line-only flags, from the file and from the environment. */
    const char *internal[] = {"zygote", "server-pid", "help", "version", "print-policy",
                              "check-config", "config"};
    for (size_t i = 0; i < sizeof(internal) / sizeof(internal[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "%s = 1\n", internal[i]);
        conf(line);
        snprintf(want, sizeof(want), ":1: %s: taken only from the command line", internal[i]);
        CHECK_REFUSED(bare, file_only, want);
    }
    char zygote[] = "PYEXECD_ZYGOTE=true", pid[] = "PYEXECD_SERVER_PID=1";
    char help[] = "PYEXECD_HELP=true", check[] = "PYEXECD_CHECK_CONFIG=true";
    char *env_zygote[] = {zygote, NULL}, *env_pid[] = {pid, NULL};
    char *env_help[] = {help, NULL}, *env_check[] = {check, NULL};
    CHECK_REFUSED(bare, env_zygote, "PYEXECD_ZYGOTE: --zygote is taken only from the "
                  "command line");
    CHECK_REFUSED(bare, env_pid, "PYEXECD_SERVER_PID: --server-pid is taken only");
    CHECK_REFUSED(bare, env_help, "PYEXECD_HELP: --help is taken only");
    CHECK_REFUSED(bare, env_check, "PYEXECD_CHECK_CONFIG: --check-config is taken only");

    char bad[] = "PYEXECD_WORKERS=x", badlisten[] = "PYEXECD_LISTEN=nowhere";
    char *env_bad[] = {bad, NULL}, *env_badlisten[] = {badlisten, NULL};
    CHECK_REFUSED(bare, env_bad, "PYEXECD_WORKERS: bad value 'x' (see --help)");
    CHECK_REFUSED(bare, env_badlisten, "PYEXECD_LISTEN: bad value 'nowhere'");

    char missing[] = "PYEXECD_CONFIG=/nonexistent/x.conf";
    char *env_missing[] = {missing, NULL};
    CHECK_REFUSED(bare, env_missing, "PYEXECD_CONFIG: /nonexistent/x.conf: cannot read: "
                  "No such file or directory");
    char dir[] = "PYEXECD_CONFIG=/tmp";
    char *env_dir[] = {dir, NULL};
    CHECK_REFUSED(bare, env_dir, "PYEXECD_CONFIG: /tmp: not a regular file of at most");
}

/* A file of LIMIT_CONFIG_FILE_BYTES is read; one byte more is refused. */
static void test_size_limit(void)
{
    char conf_arg[64];
    snprintf(conf_arg, sizeof(conf_arg), "PYEXECD_CONFIG=%s", conf_path);
    char *file_only[] = {conf_arg, NULL};
    char *bare[] = {"pyexecd", NULL};
    size_t size = LIMIT_CONFIG_FILE_BYTES;
    char *text = malloc(size + 1);
    const char *setting = "pool = 1\n";
    size_t at = strlen(setting);
    memcpy(text, setting, at);
    while (at < size) {   /* comment lines of up to 80 bytes */
        size_t n = size - at < 80 ? size - at : 80;
        memset(text + at, '#', n);
        text[at + n - 1] = '\n';
        at += n;
    }
    struct config c;
    struct config_sources s;
    char err[512];
    write_conf(text, size);
    CHECK(load(&c, &s, bare, ARGC(bare), file_only, err, sizeof(err)) == 0);
    CHECK(c.pool == 1);
    config_sources_release(&s);
    text[size] = '\n';
    write_conf(text, size + 1);
    char want[64];
    snprintf(want, sizeof(want), "not a regular file of at most %u bytes",
             LIMIT_CONFIG_FILE_BYTES);
    CHECK_REFUSED(bare, file_only, want);
    free(text);
}

/* Variables that name no setting are ignored (the scripts' own among them) and listed by
 * the report; values from the environment and the file are the config's after both are
 * gone. */
static void test_ignored_and_ownership(void)
{
    char conf_arg[64];
    snprintf(conf_arg, sizeof(conf_arg), "PYEXECD_CONFIG=%s", conf_path);
    char bin[] = "PYEXECD_BIN=/x/pyexecd", san[] = "PYEXECD_SANITIZED=1";
    char typo[] = "PYEXECD_MAX_SESION=3", state[] = "PYEXECD_STATE_DIR=/var/lib/px";
    char *envp[] = {bin, san, typo, state, conf_arg, NULL};
    char *argv[] = {"pyexecd", "--listen=127.0.0.1:0", NULL};
    struct config c;
    struct config_sources s;
    char err[512];
    conf("api-key-file = /etc/pyexecd/keys\n");
    CHECK(load(&c, &s, argv, ARGC(argv), envp, err, sizeof(err)) == 0);
    memset(state, 'x', sizeof(state) - 1);
    remove(conf_path);
    CHECK_STR(c.state_dir, "/var/lib/px");
    CHECK_STR(c.api_key_file, "/etc/pyexecd/keys");

    char *report = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&report, &len);
    config_sources_report(&s, &c, f);
    fclose(f);
    CHECK(strstr(report, "# ignored, naming no setting: PYEXECD_BIN PYEXECD_SANITIZED "
                         "PYEXECD_MAX_SESION\n") != NULL);
    CHECK(strstr(report, "listen = 127.0.0.1:0 ") && strstr(report, "# command line\n"));
    CHECK(strstr(report, "state-dir = /var/lib/px") && strstr(report, "# PYEXECD_STATE_DIR\n"));
    char want[128];
    snprintf(want, sizeof(want), "# %s:1\n", conf_path);
    CHECK(strstr(report, "api-key-file = /etc/pyexecd/keys") && strstr(report, want));
    CHECK(strstr(report, "# model = none") != NULL);
    free(report);
    config_sources_release(&s);
}

/* Every flag of the table is a setting, command-line only, or repeatable, and each
 * setting's variable is PYEXECD_ + its name upper-cased. */
static void test_every_flag_from_the_environment(void)
{
    struct config c;
    struct config_sources s;
    char err[512];
    char var[128];
    snprintf(var, sizeof(var), "PYEXECD_SESSION_IDLE_MS=1234");
    char *envp[] = {var, NULL};
    char *bare[] = {"pyexecd", NULL};
    CHECK(load(&c, &s, bare, ARGC(bare), envp, err, sizeof(err)) == 0);
    CHECK(c.session_idle_ms == 1234);
    config_sources_release(&s);
    CHECK(config_flag_kind("zygote") == CONFIG_COMMAND_LINE_ONLY);
    CHECK(config_flag_kind("model") == CONFIG_REPEATABLE);
    CHECK(config_flag_kind("workers") == CONFIG_SETTING);
}

int main(void)
{
    int fd = mkstemp(conf_path);
    if (fd < 0) {
        perror("mkstemp");
        return 1;
    }
    close(fd);
    test_precedence();
    test_booleans();
    test_repeatable();
    test_groups();
    test_refusals();
    test_size_limit();
    test_ignored_and_ownership();
    test_every_flag_from_the_environment();
    remove(conf_path);
    return check_done();
}
