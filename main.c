/* pyexecd: one binary, three roles, picked here from the command line.
 *
 *   pyexecd [FLAG]...              the HTTP server (server/), which starts the zygote
 *   pyexecd --zygote ...           the zygote (sandbox/), started by the server itself
 *   pyexecd --print-policy FILE    prints a policy's compiled filter (sandbox/) and exits
 *
 * The server checks the policy before anything runs (a bad one stops it here with
 * "file:line: what is wrong") and hands the checked text to each zygote start. */
#include <stdio.h>
#include <unistd.h>

#include "common/config.h"
#include "sandbox/policy_commands.h"
#include "sandbox/zygote_main.h"
#include "server/server_main.h"

int main(int argc, char **argv)
{
    struct config c;
    char err[512];
    int rc = config_parse(&c, argc, argv, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        return 2;
    }
    if (c.print_policy_path)
        return policy_print_command(c.print_policy_path);
    if (c.zygote)
        return zygote_run(&c, argc, argv);

    struct policy_summary policy;
    if (policy_prepare(&c, &policy, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        return 2;
    }
    rc = server_run(&c, &policy, argc, argv);
    close(policy.memfd);
    return rc;
}
