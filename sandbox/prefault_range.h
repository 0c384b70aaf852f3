/* Which of the zygote's mappings pre-faulting scans (a line of /proc/self/maps, parsed):
 * kept apart from prefault.c, which needs the interpreter, so that the rule is tested on
 * its own (tests/unit/test_prefault_range.c). */
#ifndef PYEXECD_PREFAULT_RANGE_H
#define PYEXECD_PREFAULT_RANGE_H

#include <string.h>

#include "../common/limits.h"

/* 1 when the mapping [lo, hi) with permissions `perms` and path `path` ("" for an
 * anonymous one) is scanned: private and writable (where copy-on-write happens), at most
 * LIMIT_PREFAULT_RANGE_BYTES, and neither the stack (a process's own from its first call
 * on) nor one of the kernel's [vvar]/[vdso]/[vsyscall]. */
static inline int prefault_range_wanted(unsigned long lo, unsigned long hi,
                                        const char *perms, const char *path)
{
    if (hi <= lo || strcmp(perms, "rw-p") != 0)
        return 0;
    if (hi - lo > LIMIT_PREFAULT_RANGE_BYTES)
        return 0;
    return strncmp(path, "[stack]", 7) != 0 && strncmp(path, "[vvar]", 6) != 0 &&
           strncmp(path, "[vdso]", 6) != 0 && strncmp(path, "[vsyscall]", 10) != 0;
}

#endif
