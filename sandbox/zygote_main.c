#define _GNU_SOURCE
#include "zygote_main.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/fds.h"
#include "../common/limits.h"
#include "policy_commands.h"
#include "zygote.h"

/* The zygote's command line is the server's flags, and every worker, a fork of the
 * zygote, would show them in /proc/1/cmdline: keep copies of what the config points at,
 * then blank the arguments, leaving only the process's name. */
static void hide_arguments(struct config *c, int argc, char **argv)
{
    if (c->site_packages)
        c->site_packages = strdup(c->site_packages);
    if (c->state_dir)
        c->state_dir = strdup(c->state_dir);
    if (c->policy_path)
        c->policy_path = strdup(c->policy_path);
    char *end = argv[argc - 1] + strlen(argv[argc - 1]);
    memset(argv[0], 0, (size_t)(end - argv[0]));
    snprintf(argv[0], (size_t)(end - argv[0]) + 1, "pyexecd-zygote");
}

/* Present when LeakSanitizer is linked in (PYEXECD_BUILD=asan). */
extern void __lsan_disable(void) __attribute__((weak));

int zygote_run(struct config *c, int argc, char **argv)
{
    char err[512];
    struct policy policy;
    /* The zygote keeps what it builds (the policy, the interpreter and every module it
     * imported) until it exits, and exits only when the server tells it to: nothing it
     * holds then is a leak, and the embedded interpreter never frees all of it. Leak
     * checking stays on for the server. */
    if (__lsan_disable)
        __lsan_disable();
    hide_arguments(c, argc, argv);
    if (policy_receive(c, &policy, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyexecd-zygote: %s\n", err);
        return 1;
    }
    /* What a worker must not see of the server: its binary, its policy, its state. */
    static char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    const char *hide[4] = {self, NULL, NULL, NULL};
    size_t nhide = 1;
    const char *file;
    size_t len;
    if (c->policy_path && !policy_builtin(c->policy_path, &file, &len))
        hide[nhide++] = c->policy_path;   /* a built-in is no file of the server's */
    hide[nhide] = c->state_dir;
    static char executable[PATH_MAX + 16], venv[PATH_MAX];
    if (config_venv_bin(c, executable, sizeof(executable) - 16) == 0) {
        snprintf(venv, sizeof(venv), "%.*s", (int)(strlen(executable) - 4), executable);
        strcat(executable, "/python3");
    } else {
        executable[0] = venv[0] = '\0';
    }
    struct zygote_options z = {
        .ctl_fd = ZYGOTE_CTL_FD,
        .server_pid = c->server_pid,
        .state_dir = c->state_dir,
        .venv = venv[0] ? venv : NULL,
        .uid_base = c->uid_base,
        .slots = zygote_slots(c->pool, c->workers, c->max_sessions),
        .prefault_bytes = (size_t)c->prefault_mib << 20,
        .policy = &policy,
        .hide = hide,
        .py = {
            .site_packages = c->site_packages,
            .runner_file = c->runner_file,
            .runner_line = c->runner_line,
            .plain_tracebacks = c->plain_tracebacks,
            .executable = executable[0] ? executable : NULL,
            .output_cap = policy.limits.output_bytes,
            .image_cap = LIMIT_IMAGE_BYTES,
            .images_per_block = LIMIT_IMAGES_PER_BLOCK,
            .image_bytes_per_request = LIMIT_IMAGE_BYTES_PER_REQUEST,
        },
    };
    return zygote_serve(&z);
}
