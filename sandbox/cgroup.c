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

#include "../common/limits.h"
#include "kernel_file.h"
#include "../common/isolation.h"

#define V1_ROOT "/sys/fs/cgroup"
#define V2_ROOT "/sys/fs/cgroup"
/* On cgroup v2, the leaf the server and the zygote move into when their own group is to
 * hold the workers' groups (a group with processes cannot give controllers to children). */
#define SERVER_LEAF "server"

static unsigned available;
static int v2;                       /* unified hierarchy with both controllers */
/* Room for a base, well under PATH_MAX so that a slot's files always fit below it. */
#define BASE_BYTES 1024
static char memory_base[BASE_BYTES];   /* .../pyexecd-<instance> (v1 memory or v2) */
static char pids_base[BASE_BYTES];     /* v1 pids; empty when v2 */
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

/* Whether a space-separated list file (cgroup.controllers, cgroup.subtree_control) in
 * dir names both memory and pids. */
static int lists_memory_and_pids(const char *dir, const char *file)
{
    char path[PATH_MAX], buf[512] = {0};
    int memory = 0, pids = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    for (char *save = NULL, *t = strtok_r(buf, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
        memory |= strcmp(t, "memory") == 0;
        pids |= strcmp(t, "pids") == 0;
    }
    return memory && pids;
}

/* This process's group in a hierarchy, as a directory under `mount` (where that
 * hierarchy is mounted): v1 `controller`'s, or v2's when controller is NULL. From
 * /proc/self/cgroup, less the mount's own root (a container's cgroups are often a bind
 * of its group, mounted at the top). Returns 0, or -1 when it cannot be found (the caller
 * then uses the mount's top, as before). */
static int own_group(const char *mount, const char *controller, char *dir, size_t len)
{
    char line[PATH_MAX + 128], path[PATH_MAX] = "", root[PATH_MAX] = "";
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return -1;
    while (!path[0] && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *id = line, *list = strchr(id, ':');
        char *p = list ? strchr(list + 1, ':') : NULL;
        if (!p)
            continue;
        *list++ = '\0';
        *p++ = '\0';
        int match = 0;
        if (!controller)
            match = strcmp(id, "0") == 0 && !*list;
        else
            for (char *save = NULL, *t = strtok_r(list, ",", &save); t && !match;
                 t = strtok_r(NULL, ",", &save))
                match = strcmp(t, controller) == 0;
        if (match)
            snprintf(path, sizeof(path), "%s", p);
    }
    fclose(f);
    /* The mount's root: field 4 of its line in mountinfo, field 5 being the mount point. */
    f = fopen("/proc/self/mountinfo", "re");
    while (f && !root[0] && fgets(line, sizeof(line), f)) {
        char r[PATH_MAX], m[PATH_MAX];
        if (sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) == 2 && strcmp(m, mount) == 0)
            snprintf(root, sizeof(root), "%s", r);
    }
    if (f)
        fclose(f);
    if (!path[0] || path[0] != '/' || !root[0])
        return -1;
    size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root);
    if (rl && (strncmp(path, root, rl) != 0 || (path[rl] != '/' && path[rl] != '\0')))
        return -1;   /* our group is outside what is mounted here */
    const char *rel = path + rl;
    if ((size_t)snprintf(dir, len, "%s%s", mount, strcmp(rel, "/") == 0 ? "" : rel) >= len)
        return -1;
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* Moves this process and the server (server_pid; 0: none) into dir's cgroup.procs. */
static int move_ours(const char *dir, pid_t server_pid)
{
    char pid[24];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    if (write_text(dir, "cgroup.procs", pid) < 0)
        return -1;
    snprintf(pid, sizeof(pid), "%d", (int)server_pid);
    return server_pid > 0 ? write_text(dir, "cgroup.procs", pid) : 0;
}

/* v2: the group under which the workers' go, in parent (PATH_MAX): our own group, which
 * hands memory and pids down to its children -- after moving the server and us into a
 * leaf of our own, SERVER_LEAF (or found so after a zygote restart: we are already in
 * it). Returns 0, or -1 when our group cannot (controllers not delegated to it, other
 * processes in it): the caller then tries the top of the hierarchy, as before. */
static int v2_parent(pid_t server_pid, char *parent)
{
    char own[PATH_MAX], leaf[PATH_MAX + 16];
    if (own_group(V2_ROOT, NULL, own, sizeof(own)) < 0)
        return -1;
    if (strcmp(own, V2_ROOT) == 0)
        return -1;   /* the top itself: as before */
    char *slash = strrchr(own, '/');
    if (slash && strcmp(slash + 1, SERVER_LEAF) == 0) {
        *slash = '\0';   /* already in the leaf (ours, or an entrypoint's) */
        if (lists_memory_and_pids(own, "cgroup.subtree_control")) {
            snprintf(parent, PATH_MAX, "%s", own);
            return 0;
        }
        *slash = '/';
    }
    if (!lists_memory_and_pids(own, "cgroup.controllers"))
        return -1;   /* not delegated to us */
    snprintf(leaf, sizeof(leaf), "%s/" SERVER_LEAF, own);
    if (make_dir(leaf) < 0 || move_ours(leaf, server_pid) < 0)
        return -1;
    if (write_text(own, "cgroup.subtree_control", "+memory +pids") < 0) {
        int e = errno;   /* EBUSY: other processes are in our group; leave them be */
        move_ours(own, server_pid);
        rmdir(leaf);
        errno = e;
        return -1;
    }
    snprintf(parent, PATH_MAX, "%s", own);
    return 0;
}

/* v1: the directory of controller's hierarchy (mounted at mount) the workers' groups go
 * under: our own group's, where we can make one there, else the top as before. */
static void v1_base(const char *mount, const char *controller, unsigned instance, char *base,
                    size_t len)
{
    char own[PATH_MAX];
    if (own_group(mount, controller, own, sizeof(own)) == 0 &&
        (size_t)snprintf(base, len, "%s/pyexecd-%u", own, instance) < len &&
        make_dir(base) == 0)
        return;
    snprintf(base, len, "%s/pyexecd-%u", mount, instance);
}

unsigned cgroup_available(void)
{
    return available;
}

const char *cgroup_base(unsigned layer)
{
    if (layer == ISO_CGROUP_MEMORY && (available & ISO_CGROUP_MEMORY))
        return memory_base;
    if (layer == ISO_CGROUP_PIDS && (available & ISO_CGROUP_PIDS))
        return v2 ? memory_base : pids_base;
    return "";
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

/* Slots whose groups exist with their limits written (cgroup_prepare), and the limits. */
static unsigned char *made;
static unsigned long long slot_memory_bytes;
static unsigned slot_tasks;

unsigned cgroup_setup(unsigned instance, unsigned slots, unsigned long long memory_bytes,
                      unsigned tasks, pid_t server_pid)
{
    struct stat st;
    available = 0;
    nslots = slots;
    slot_memory_bytes = memory_bytes;
    slot_tasks = tasks;
    free(made);
    made = calloc((size_t)slots + 1, 1);
    if (!made)
        return 0;
    if (stat(V1_ROOT "/memory/memory.limit_in_bytes", &st) == 0) {
        v1_base(V1_ROOT "/memory", "memory", instance, memory_base, sizeof(memory_base));
        if (make_dir(memory_base) == 0)
            available |= ISO_CGROUP_MEMORY;
    }
    if (stat(V1_ROOT "/pids/cgroup.procs", &st) == 0) {
        v1_base(V1_ROOT "/pids", "pids", instance, pids_base, sizeof(pids_base));
        if (make_dir(pids_base) == 0)
            available |= ISO_CGROUP_PIDS;
    }
    if (!available && lists_memory_and_pids(V2_ROOT, "cgroup.controllers")) {
        /* v2: our directory delegates both controllers to the per-slot groups below;
         * it goes under our own group when that can hold it, else at the top. */
        char parent[PATH_MAX];
        if (v2_parent(server_pid, parent) < 0)
            snprintf(parent, sizeof(parent), "%s", V2_ROOT);
        if ((size_t)snprintf(memory_base, sizeof(memory_base), "%s/pyexecd-%u", parent,
                             instance) >= sizeof(memory_base))
            snprintf(memory_base, sizeof(memory_base), V2_ROOT "/pyexecd-%u", instance);
        if (make_dir(memory_base) == 0 &&
            write_text(memory_base, "cgroup.subtree_control", "+memory +pids") == 0) {
            v2 = 1;
            available = ISO_CGROUP_MEMORY | ISO_CGROUP_PIDS;
        }
    }
    /* The first slots now, so that a kernel refusing the limits is found at start and
     * /healthz says so; the rest when first used (cgroup_prepare). */
    for (unsigned s = 0; s <= slots && s < LIMIT_CGROUP_EAGER_SLOTS && available; s++) {
        if (cgroup_prepare(s) < 0) {
            fprintf(stderr, "pyexecd-zygote: cgroup limits for slot %u: %s\n", s,
                    strerror(errno));
            available = 0;
        }
    }
    return available;
}

int cgroup_prepare(unsigned slot)
{
    if (!available || slot > nslots || made[slot])
        return 0;
    if (limit_slot(slot, slot_memory_bytes, slot_tasks) < 0)
        return -1;
    made[slot] = 1;
    return 0;
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
