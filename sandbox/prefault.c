#define _GNU_SOURCE
#include "prefault.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/limits.h"
#include "prefault_range.h"
#include "pyembed.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23   /* Linux 5.14; older headers do not name it */
#endif

/* pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PRESENT (1ull << 63)
#define PM_EXCLUSIVE (1ull << 56)   /* mapped by this process alone: it copied the page */

#define LOG(...) fprintf(stderr, "pyexecd-zygote: " __VA_ARGS__)

struct range {   /* a private writable mapping of the zygote: where copy-on-write happens */
    uintptr_t lo, hi;
    size_t first;   /* the index of its first page among all ranges' pages */
};

struct run {     /* learnt pages, to be copied in this order */
    uintptr_t addr;
    size_t len;
};

static struct run *runs;   /* the learnt list; inherited by every worker, read only */
static size_t nruns;

/* The zygote's private writable mappings that prefault_range_wanted keeps, with their
 * pages numbered in a row. */
static struct range *read_ranges(size_t *nranges, size_t *npages, size_t page)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return NULL;
    struct range *r = NULL;
    size_t n = 0, cap = 0, pages = 0;
    char line[4352];
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        char perms[8];
        int path_at = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &path_at) < 3)
            continue;
        if (!prefault_range_wanted(lo, hi, perms, path_at > 0 ? line + path_at : ""))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            struct range *grown = realloc(r, cap * sizeof(*r));
            if (!grown) {
                free(r);
                fclose(f);
                return NULL;
            }
            r = grown;
        }
        r[n].lo = lo;
        r[n].hi = hi;
        r[n].first = pages;
        pages += (hi - lo) / page;
        n++;
    }
    fclose(f);
    *nranges = n;
    *npages = pages;
    return r;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* The scout itself, in a fork of the zygote: runs the snippet, then writes to `fd` the
 * numbers (u32) of the pages of `r` it now maps alone, i.e. copied (or, never touched in
 * the zygote, filled): what a worker running such code copies too. */
_Noreturn static void scout_child(unsigned job, int fd, const struct range *r, size_t nr,
                                  size_t page)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* What the snippet prints is nobody's: not the zygote's log. Errors stay on stderr. */
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, STDOUT_FILENO) < 0 || pyembed_scout(job) < 0)
        _exit(1);
    int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pm < 0)
        _exit(1);
    uint64_t ent[512];
    uint32_t out[1024];
    size_t nout = 0;
    for (size_t i = 0; i < nr; i++) {
        for (uintptr_t a = r[i].lo; a < r[i].hi; a += sizeof(ent) / sizeof(ent[0]) * page) {
            size_t want = (r[i].hi - a) / page;
            if (want > sizeof(ent) / sizeof(ent[0]))
                want = sizeof(ent) / sizeof(ent[0]);
            ssize_t got = pread(pm, ent, want * sizeof(ent[0]), (off_t)(a / page * sizeof(ent[0])));
            if (got < 0)
                _exit(1);
            size_t base = r[i].first + (a - r[i].lo) / page;
            for (size_t k = 0; k < (size_t)got / sizeof(ent[0]); k++) {
                if ((ent[k] & (PM_PRESENT | PM_EXCLUSIVE)) != (PM_PRESENT | PM_EXCLUSIVE))
                    continue;
                out[nout++] = (uint32_t)(base + k);
                if (nout == sizeof(out) / sizeof(out[0])) {
                    if (write_all(fd, out, sizeof(out)) < 0)
                        _exit(1);
                    nout = 0;
                }
            }
        }
    }
    _exit(write_all(fd, out, nout * sizeof(out[0])) < 0 ? 1 : 0);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs scout `job` and adds one to the count of every page it copied. Returns 0, or -1
 * when it failed or took too long (what it sent until then still counts: a hint). */
static int run_scout(unsigned job, const struct range *r, size_t nr, size_t page,
                     unsigned char *counts, size_t npages)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        scout_child(job, p[1], r, nr, page);
    }
    close(p[1]);
    int64_t deadline = now_ms() + LIMIT_SCOUT_MS;
    uint32_t buf[1024];
    size_t have = 0;   /* bytes in buf */
    int timed_out = 0;
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        int pr = left > 0 ? poll(&pf, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            timed_out = 1;
            break;
        }
        ssize_t n = read(p[0], (char *)buf + have, sizeof(buf) - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        size_t whole = have / sizeof(buf[0]);
        for (size_t k = 0; k < whole; k++)
            if (buf[k] < npages && counts[buf[k]] < UCHAR_MAX)
                counts[buf[k]]++;
        memmove(buf, buf + whole, have - whole * sizeof(buf[0]));
        have -= whole * sizeof(buf[0]);
    }
    close(p[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return timed_out || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ? -1 : 0;
}

/* Appends the page at `addr` to the list, extending the last run when it ends there. */
static int add_page(uintptr_t addr, size_t page, size_t *cap)
{
    if (nruns > 0 && runs[nruns - 1].addr + runs[nruns - 1].len == addr) {
        runs[nruns - 1].len += page;
        return 0;
    }
    if (nruns == *cap) {
        size_t grown_cap = *cap ? 2 * *cap : 1024;
        struct run *grown = realloc(runs, grown_cap * sizeof(*runs));
        if (!grown)
            return -1;
        runs = grown;
        *cap = grown_cap;
    }
    runs[nruns].addr = addr;
    runs[nruns].len = page;
    nruns++;
    return 0;
}

size_t prefault_learn(size_t budget_bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned jobs = pyembed_scout_count();
    if (budget_bytes < page || jobs == 0)
        return 0;
    size_t nr, npages;
    struct range *r = read_ranges(&nr, &npages, page);
    unsigned char *counts = r ? calloc(npages ? npages : 1, 1) : NULL;
    if (!counts || npages > UINT32_MAX) {
        LOG("warning: cannot learn the pages to pre-fault: %s\n", strerror(errno));
        free(r);
        free(counts);
        return 0;
    }
    int64_t t0 = now_ms();
    for (unsigned j = 0; j < jobs; j++)
        if (run_scout(j, r, nr, page, counts, npages) < 0)
            LOG("warning: pre-fault scout %u failed; its pages may be missing\n", j);

    /* The pages most scouts wrote first: those any request is likeliest to write. Within
     * one count, in address order, so that neighbours make one run. */
    size_t budget = budget_bytes / page, taken = 0, cap = 0;
    for (unsigned c = jobs; c >= 1 && taken < budget; c--)
        for (size_t i = 0; i < nr && taken < budget; i++)
            for (size_t k = 0; k < (r[i].hi - r[i].lo) / page && taken < budget; k++) {
                if (counts[r[i].first + k] != c)
                    continue;
                if (add_page(r[i].lo + k * page, page, &cap) < 0) {
                    nruns = 0;   /* an empty list: the workers do without */
                    taken = 0;
                    goto out;
                }
                taken++;
            }
out:
    LOG("pre-fault: %zu KiB in %zu runs learnt from %u scouts in %lld ms\n",
        taken * page >> 10, nruns, jobs, (long long)(now_ms() - t0));
    free(r);
    free(counts);
    return taken * page;
}

void prefault_while_idle(int sock)
{
    struct pollfd pf = {.fd = sock, .events = POLLIN};
    for (size_t i = 0; i < nruns; i++) {
        for (size_t off = 0; off < runs[i].len; off += LIMIT_PREFAULT_CHUNK_BYTES) {
            if (poll(&pf, 1, 0) != 0)
                return;   /* a job (or the server's goodbye) is waiting: take it now */
            size_t len = runs[i].len - off;
            if (len > LIMIT_PREFAULT_CHUNK_BYTES)
                len = LIMIT_PREFAULT_CHUNK_BYTES;
            /* A range gone or changed since (ENOMEM, EFAULT) is skipped; EINVAL is a
             * kernel without MADV_POPULATE_WRITE: nothing more to do. */
            if (madvise((void *)(runs[i].addr + off), len, MADV_POPULATE_WRITE) < 0 &&
                errno == EINVAL)
                return;
        }
    }
}
