#define _GNU_SOURCE
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel_file.h"
#include "../common/isolation.h"

#define V1_ROOT "/sys/fs/cgroup"
#define V2_ROOT "/sys/fs/cgroup"

static unsigned available;
static int v2;                       /* unified hierarchy with both controllers */
static char memory_base[256];     /* .../pyexecd-<instance> (v1 memory or v2) */
static char pids_base[256];         /* v1 pids; empty when v2 */
static unsigned nslots;

static int write_text(const char *dir, const char *file, const char *text)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return kernel_file_write(path, text);
}

static int make_dir(const char *path)
{
    return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

static int has_controller_v2(const char *name)
{
    char buf[512] = {0};
    int fd = open(V2_ROOT "/cgroup.controllers", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    for (char *save = NULL, *t = strtok_r(buf, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
        if (strcmp(t, name) == 0)
            return 1;
    return 0;
}

unsigned cgroup_available(void)
{
    return available;
}

/* Writes the limits of one slot's groups. */
static int limit_slot(unsigned slot, unsigned long long memory_bytes, unsigned tasks)
{
    char dir[PATH_MAX], value[32];
    snprintf(value, sizeof(value), "%llu", memory_bytes);
    if (available & ISO_CGROUP_MEMORY) {
        snprintf(dir, sizeof(dir), "%s/%u", memory_base, slot);
        if (make_dir(dir) < 0)
            return -1;
        if (v2) {
            if (write_text(dir, "memory.max", value) < 0)
                return -1;
            (void)write_text(dir, "memory.swap.max", "0");   /* absent without swap */
        } else {
            if (write_text(dir, "memory.limit_in_bytes", value) < 0)
                return -1;
            /* memory+swap equal to memory: no swap at all (absent when swap
             * accounting is off, in which case there is nothing to limit) */
            (void)write_text(dir, "memory.memsw.limit_in_bytes", value);
        }
    }
    if (available & ISO_CGROUP_PIDS) {
        snprintf(value, sizeof(value), "%u", tasks);
        snprintf(dir, sizeof(dir), "%s/%u", v2 ? memory_base : pids_base, slot);
        if (make_dir(dir) < 0 || write_text(dir, "pids.max", value) < 0)
            return -1;
    }
    return 0;
}

unsigned cgroup_setup(unsigned instance, unsigned slots, unsigned long long memory_bytes,
                      unsigned tasks)
{
    struct stat st;
    available = 0;
    nslots = slots;
    if (stat(V1_ROOT "/memory/memory.limit_in_bytes", &st) == 0) {
        snprintf(memory_base, sizeof(memory_base), V1_ROOT "/memory/pyexecd-%u", instance);
        if (make_dir(memory_base) == 0)
            available |= ISO_CGROUP_MEMORY;
    }
    if (stat(V1_ROOT "/pids/cgroup.procs", &st) == 0) {
        snprintf(pids_base, sizeof(pids_base), V1_ROOT "/pids/pyexecd-%u", instance);
        if (make_dir(pids_base) == 0)
            available |= ISO_CGROUP_PIDS;
    }
    if (!available && has_controller_v2("memory") && has_controller_v2("pids")) {
        /* v2: our directory delegates both controllers to the per-slot groups below. */
        snprintf(memory_base, sizeof(memory_base), V2_ROOT "/pyexecd-%u", instance);
        if (make_dir(memory_base) == 0 &&
            write_text(memory_base, "cgroup.subtree_control", "+memory +pids") == 0) {
            v2 = 1;
            available = ISO_CGROUP_MEMORY | ISO_CGROUP_PIDS;
        }
    }
    for (unsigned s = 0; s <= slots && available; s++) {
        if (limit_slot(s, memory_bytes, tasks) < 0) {
            fprintf(stderr, "pyexecd-zygote: cgroup limits for slot %u: %s\n", s,
                    strerror(errno));
            available = 0;
        }
    }
    return available;
}

int cgroup_join(unsigned slot)
{
    char dir[PATH_MAX];
    if (available & ISO_CGROUP_MEMORY) {
        snprintf(dir, sizeof(dir), "%s/%u", memory_base, slot);
        if (write_text(dir, "cgroup.procs", "0") < 0)
            return -1;
    }
    if ((available & ISO_CGROUP_PIDS) && !v2) {
        snprintf(dir, sizeof(dir), "%s/%u", pids_base, slot);
        if (write_text(dir, "cgroup.procs", "0") < 0)
            return -1;
    }
    return 0;
}

unsigned long long cgroup_oom_kills(unsigned slot)
{
    char path[PATH_MAX], buf[1024] = {0};
    if (!(available & ISO_CGROUP_MEMORY))
        return 0;
    snprintf(path, sizeof(path), "%s/%u/%s", memory_base, slot,
             v2 ? "memory.events" : "memory.oom_control");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    const char *at = n > 0 ? strstr(buf, "oom_kill ") : NULL;
    return at ? strtoull(at + 9, NULL, 10) : 0;
}

void cgroup_cleanup(void)
{
    char dir[PATH_MAX];
    for (unsigned s = 0; s <= nslots; s++) {
        if (available & ISO_CGROUP_MEMORY) {
            snprintf(dir, sizeof(dir), "%s/%u", memory_base, s);
            rmdir(dir);
        }
        if ((available & ISO_CGROUP_PIDS) && !v2) {
            snprintf(dir, sizeof(dir), "%s/%u", pids_base, s);
            rmdir(dir);
        }
    }
    if (available & ISO_CGROUP_MEMORY)
        rmdir(memory_base);
    if ((available & ISO_CGROUP_PIDS) && !v2)
        rmdir(pids_base);
}
