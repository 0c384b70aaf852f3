/* What the server needs to know of the sandbox policy it runs: the limits it enforces or
 * reports itself, and the sealed text each zygote start reads. The policy's own type
 * (sandbox/policy.h) stays with the sandbox, which parses and applies it. */
#ifndef PYEXECD_POLICY_SUMMARY_H
#define PYEXECD_POLICY_SUMMARY_H

#include <stddef.h>

struct policy_summary {
    char name[256];            /* the file it came from, for /healthz and messages */
    unsigned deadline_ms;      /* wall time per code block (flags applied) */
    size_t output_bytes;       /* stdout and stderr kept per block and stream */
    size_t input_file_bytes;   /* decoded input files per request */
    int runs_programs;         /* it lets the code run programs (exec lines): the whole
                                * process tree must end with its worker */
    int memfd;                 /* the checked text, sealed; the server's to close */
};

#endif
