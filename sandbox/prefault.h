/* Copy-on-write faults taken ahead of the request. A worker shares the zygote's pages
 * until it writes one; the first write copies it (a fault of 3-4 us here). The libraries'
 * code paths write thousands of pages of the zygote's heap (reference counts of every
 * object they touch), so a pandas describe, a plot or a sympy solve spends 7-25 ms of
 * its first run copying pages. The zygote learns which pages once, at start: each of the
 * runner's scout snippets runs in a fork of its own, which then lists the pages it made
 * its own (/proc/self/pagemap). A pooled worker, sandboxed and waiting for its job,
 * copies those pages (madvise MADV_POPULATE_WRITE: the kernel's write fault, with no
 * byte changed) until its job arrives or the list is done. Nothing of it is visible to
 * the code but the worker's memory and fault counters: no Python object is touched. */
#ifndef PYEXECD_PREFAULT_H
#define PYEXECD_PREFAULT_H

#include <stddef.h>

/* In the zygote, after the libraries are warmed: runs the scouts and keeps the pages
 * they wrote, those most of them share first, up to budget_bytes (0: learns nothing).
 * Returns how many bytes it keeps; a failure is logged and leaves the list empty (the
 * workers then just do not pre-fault). Single-threaded; forks and reaps its scouts. */
size_t prefault_learn(size_t budget_bytes);

/* In a worker, once it has said READY: copies the learnt pages, in the order learnt,
 * looking at `sock` between chunks and returning as soon as it is readable (a job
 * came, or the server closed it). Touches no memory of its own but the pages. */
void prefault_while_idle(int sock);

#endif
