/* The HTTP server process's entry point. */
#ifndef PYEXECD_SERVER_MAIN_H
#define PYEXECD_SERVER_MAIN_H

#include "../common/config.h"
#include "../common/policy_summary.h"

/* Serves with the flags in c and the checked policy (its memfd borrowed; the caller
 * closes it) until SIGINT, SIGTERM or SIGHUP. argv is passed on to the zygote, which
 * reads the same flags. Returns the process exit status. */
int server_run(const struct config *c, const struct policy_summary *policy, int argc,
               char **argv);

#endif
