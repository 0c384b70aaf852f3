/* The policy as the processes outside the worker use it: the server checks it before it
 * serves and hands the text to each zygote; the zygote reads that text back; the command
 * line prints a compiled filter. Everything a zygote could trip over is found here first,
 * so a bad policy stops the server at start with "file:line: what is wrong". */
#ifndef PYEXECD_POLICY_COMMANDS_H
#define PYEXECD_POLICY_COMMANDS_H

#include <stddef.h>

#include "../common/config.h"
#include "../common/policy_summary.h"
#include "policy.h"

/* Applies the flags that override a policy's limits (--deadline-ms, --output-bytes,
 * --worker-memory-mib): flags given on the command line win. */
void policy_apply_flags(struct policy *p, const struct config *c);

/* For the server, before it serves: reads --policy FILE (or takes the built-in default),
 * applies the flags, parses, checks the limits together and compiles the filter without
 * loading it, then seals the text in a memfd. Returns 0 with *out filled (out->memfd is
 * the caller's to close), or -1 with the reason in err and nothing to release. */
int policy_prepare(const struct config *c, struct policy_summary *out, char *err,
                   size_t errlen);

/* For the zygote: reads the text the server checked from ZYGOTE_POLICY_FD (and closes
 * it), parses it and applies the flags. Returns 0 with *p filled (release with
 * policy_release), or -1 with the reason in err. */
int policy_receive(const struct config *c, struct policy *p, char *err, size_t errlen);

/* --print-policy FILE: writes FILE's compiled filter in PFC form to stdout. Returns the
 * process exit status: 0, or 2 with the reason on stderr. */
int policy_print_command(const char *path);

#endif
