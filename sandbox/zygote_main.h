/* The zygote's entry point: what the binary runs when the server starts it with
 * --zygote. */
#ifndef PYEXECD_ZYGOTE_MAIN_H
#define PYEXECD_ZYGOTE_MAIN_H

#include "../common/config.h"

/* Runs the zygote with the server's flags in c (parsed from argv, which it blanks so that
 * no worker can read them in /proc/1/cmdline) until the server goes away. Returns the
 * process exit status. */
int zygote_run(struct config *c, int argc, char **argv);

#endif
