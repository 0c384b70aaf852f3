/* pyexecd: one binary, five roles, picked here from the command line.
 *
 *   pyexecd [FLAG]...              the HTTP server (server/), which starts the zygote
 *   pyexecd --zygote ...           the zygote (sandbox/), started by the server itself
 *   pyexecd --print-policy FILE    prints a policy's compiled filter (sandbox/) and exits
 *   pyexecd --check-config ...     checks the settings, prints them and where each came
 *                                  from, and exits
 *   pyexecd conform ARGS...        the conformance kit (conform/): replays recordings
 *
 * The settings: the command line, then PYEXECD_* variables and the config file
 * (common/config_sources.c), merged into one argument list the server parses and hands
 * on to the zygote. The server checks the policy before anything runs (a bad one stops it
 * here with "file:line: what is wrong") and hands the checked text to each zygote
 * start. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/config_sources.h"
#include "common/log.h"
#include "sandbox/policy_commands.h"
#include "sandbox/zygote_main.h"
#include "server/api_keys.h"
#include "server/models.h"
#include "server/server_main.h"

extern char **environ;

/* AddressSanitizer's options built in (PYEXECD_BUILD=asan; unused otherwise), since the
 * zygote and its workers get an environment of the server's making, not the caller's:
 * an allocation that cannot be satisfied returns NULL, as glibc's does, so a memory bomb
 * still ends in MemoryError and the server's out-of-memory paths stay what they are. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

#ifndef PYEXECD_CONFORM_TOOL
#define PYEXECD_CONFORM_TOOL "conform/pyexecd_conform.py"
#endif

/* `pyexecd conform ...` hands over to the kit's client tool, in Python: it reads YAML
 * cassettes (PyYAML), writes unified diffs (difflib) and JUnit XML, and drives a server
 * over HTTP, all of which a maintained library does there and C would write again. It
 * gets this binary's path in PYEXECD_BIN, to start a server of its own. Returns only on
 * failure. */
static int run_conform(int argc, char **argv)
{
    static char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    const char *tool = getenv("PYEXECD_CONFORM_TOOL");
    if (!tool)
        tool = PYEXECD_CONFORM_TOOL;
    char **args = calloc((size_t)argc + 2, sizeof(char *));
    if (!args)
        return 1;
    args[0] = "python3";
    args[1] = (char *)tool;
    for (int i = 2; i < argc; i++)
        args[i] = argv[i];
    if (n > 0)
        setenv("PYEXECD_BIN", self, 1);
    execvp("python3", args);
    fprintf(stderr, "pyexecd: conform: cannot run python3 %s: %s\n", tool, strerror(errno));
    free(args);
    return 2;
}

/* --check-config: what the server checks before it listens (the settings, the policy,
 * the API key file, the models), then every setting and where it came from on stdout.
 * Binds nothing, makes no state dir, starts no zygote. Returns the exit status. */
static int check_config(const struct config *c, const struct config_sources *src)
{
    char err[512];
    struct policy_summary policy;
    if (policy_prepare(c, &policy, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        return 2;
    }
    close(policy.memfd);
    int ok = !c->api_key_file || api_keys_load(c->api_key_file, err, sizeof(err)) == 0;
    for (unsigned i = 0; ok && i < c->nmodels; i++)
        ok = models_add(c->models[i], err, sizeof(err)) == 0;
    ok = ok && models_finish(err, sizeof(err)) == 0;
    size_t nmodels = models_count();
    models_release();
    api_keys_release();
    if (!ok) {
        fprintf(stderr, "pyexecd: %s\n", err);
        return 2;
    }
    config_sources_report(src, c, stdout);
    printf("# policy %s: deadline %u ms, output %zu bytes per stream; models served: %zu\n",
           policy.name, policy.deadline_ms, policy.output_bytes, nmodels);
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct config c;
    if (argc >= 2 && strcmp(argv[1], "conform") == 0)
        return run_conform(argc, argv);
    char err[512];
    /* The command line alone first: its own mistakes are reported as its own, and --help,
     * --version and --print-policy answer whatever the environment and the file say. */
    int rc = config_parse(&c, argc, argv, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        return 2;
    }
    log_set_level((enum log_level)c.log_level);
    if (c.print_policy_path)
        return policy_print_command(c.print_policy_path);
    /* The zygote's command line is the server's merged one already, its environment the
     * server's making, and its argv is blanked in place (zygote_main.c): it must be the
     * process's own. */
    if (c.zygote)
        return zygote_run(&c, argc, argv);

    /* c points into src's strings from here on: src lives until the end. */
    struct config_sources src;
    if (config_sources_merge(&src, argc, argv, environ, err, sizeof(err)) < 0 ||
        config_parse(&c, src.argc, src.argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        config_sources_release(&src);
        return 2;
    }
    log_set_level((enum log_level)c.log_level);   /* PYEXECD_LOG_LEVEL or the file's */
    if (c.check_config) {
        rc = check_config(&c, &src);
        config_sources_release(&src);
        return rc;
    }
    struct policy_summary policy;
    if (policy_prepare(&c, &policy, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        config_sources_release(&src);
        return 2;
    }
    /* The zygote gets the merged arguments: the settings from every source. */
    rc = server_run(&c, &policy, src.argc, src.argv);
    close(policy.memfd);
    config_sources_release(&src);
    return rc;
}
