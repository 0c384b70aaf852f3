/* Which mappings pre-faulting scans (sandbox/prefault_range.h): at and past
 * LIMIT_PREFAULT_RANGE_BYTES, which keeps a sanitizer's terabytes of shadow memory out of
 * the zygote's start, and the mappings that are never a worker's copy-on-write. */
#include "sandbox/prefault_range.h"
#include "tests/unit/check.h"

int main(void)
{
    const unsigned long base = 0x7f0000000000ul, page = 4096;

    /* The size limit: at it scanned, one page past it not. */
    CHECK(prefault_range_wanted(base, base + LIMIT_PREFAULT_RANGE_BYTES, "rw-p", ""));
    CHECK(!prefault_range_wanted(base, base + LIMIT_PREFAULT_RANGE_BYTES + page, "rw-p", ""));
    CHECK(prefault_range_wanted(base, base + page, "rw-p", "[heap]"));
    CHECK(prefault_range_wanted(base, base + page, "rw-p", "/usr/lib/libpython3.11.so.1.0"));

    /* Only private writable mappings copy on write. */
    CHECK(!prefault_range_wanted(base, base + page, "r--p", ""));
    CHECK(!prefault_range_wanted(base, base + page, "r-xp", "/usr/bin/python3"));
    CHECK(!prefault_range_wanted(base, base + page, "rw-s", "/dev/shm/x"));

    /* The stack and the kernel's own mappings are left out. */
    CHECK(!prefault_range_wanted(base, base + page, "rw-p", "[stack]"));
    CHECK(!prefault_range_wanted(base, base + page, "rw-p", "[vvar]"));
    CHECK(!prefault_range_wanted(base, base + page, "rw-p", "[vdso]"));
    CHECK(!prefault_range_wanted(base, base + page, "rw-p", "[vsyscall]"));

    /* A malformed (empty or reversed) range is none. */
    CHECK(!prefault_range_wanted(base, base, "rw-p", ""));
    CHECK(!prefault_range_wanted(base + page, base, "rw-p", ""));
    return check_done();
}
