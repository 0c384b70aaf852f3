#define _GNU_SOURCE
#include "minimal_root.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *what, const char *path)
{
    snprintf(err, errlen, "minimal root: %s%s%s: %s", what, path ? " " : "", path ? path : "",
             strerror(errno));
    return -1;
}

/* mkdir -p of root + path (path absolute). */
static int make_dirs(const char *root, const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s%s", root, path) >= (int)sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + strlen(root) + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -1;
            *p = c;
            if (!c)
                return 0;
        }
    }
}

enum bind_mode {
    BIND_RO = 0,
    BIND_RW = 1,        /* read-write */
    BIND_RW_FLAT = 2,   /* read-write, without the mounts below it: the state dir holds
                         * this very root, which must not appear inside itself */
};

/* Binds the host's path at the same place under root, recursively unless BIND_RW_FLAT.
 * A path the host lacks is skipped. */
static int bind(const char *root, const char *path, enum bind_mode mode)
{
    struct stat st;
    char dst[PATH_MAX];
    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    snprintf(dst, sizeof(dst), "%s%s", root, path);
    if (S_ISDIR(st.st_mode)) {
        if (make_dirs(root, path, 0755) < 0)
            return -1;
    } else {
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%s", path);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = '\0';
            if (make_dirs(root, parent, 0755) < 0)
                return -1;
        }
        int fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0)
            return -1;
        close(fd);
    }
    if (mount(path, dst, NULL, MS_BIND | (mode == BIND_RW_FLAT ? 0 : MS_REC), NULL) < 0)
        return -1;
    if (mode != BIND_RO)
        return 0;
    return mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
                 NULL);
}

/* The host's top-level link (/bin -> usr/bin on a merged-/usr system) made again, or the
 * directory bound when it is one. */
static int link_or_bind(const char *root, const char *path)
{
    char target[PATH_MAX], dst[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return errno == EINVAL ? bind(root, path, BIND_RO) : (errno == ENOENT ? 0 : -1);
    target[n] = '\0';
    snprintf(dst, sizeof(dst), "%s%s", root, path);
    return symlink(target, dst) < 0 && errno != EEXIST ? -1 : 0;
}

static int write_file(const char *root, const char *path, const char *text)
{
    char dst[PATH_MAX];
    snprintf(dst, sizeof(dst), "%s%s", root, path);
    int fd = open(dst, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    close(fd);
    return w == (ssize_t)len ? 0 : -1;
}

/* The /etc the code sees: the sandbox's own identity files, and the few host files that
 * programs read and that say nothing of the host but which libraries it has. */
static int make_etc(const char *root)
{
    static const struct {
        const char *path, *text;
    } files[] = {
        /* getpwuid(0) (pip, git, ~ expansion) finds root; nobody for the rest. */
        {"/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
        {"/etc/group", "root:x:0:\nnogroup:x:65534:\n"},
        {"/etc/hostname", "sandbox\n"},
        {"/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
        /* No name server: lookups fail at once (there is no network either). */
        {"/etc/resolv.conf", ""},
        {"/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n"},
    };
    if (make_dirs(root, "/etc", 0755) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (write_file(root, files[i].path, files[i].text) < 0)
            return -1;
    /* Read from the host, read-only: where the dynamic loader finds libraries (child
     * programs, ctypes), the alternatives links some programs are reached by, and
     * fontconfig's configuration (which font directories there are: a library of the
     * sandbox asks it at import). */
    static const char *const from_host[] = {"/etc/ld.so.cache", "/etc/alternatives",
                                            "/etc/fonts"};
    for (size_t i = 0; i < sizeof(from_host) / sizeof(from_host[0]); i++)
        if (bind(root, from_host[i], BIND_RO) < 0)
            return -1;
    return 0;
}

int minimal_root_enter(const struct minimal_root_config *c, char *err, size_t errlen)
{
    const char *root = c->build_dir;
    if (unshare(CLONE_NEWNS) < 0)
        return fail(err, errlen, "a mount namespace", NULL);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return fail(err, errlen, "making mounts private", NULL);
    if ((mkdir(root, 0755) < 0 && errno != EEXIST) ||
        mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755") < 0)
        return fail(err, errlen, "mounting its tmpfs on", root);

    /* The system's programs and libraries, and the links into them. */
    if (bind(root, "/usr", BIND_RO) < 0)
        return fail(err, errlen, "binding", "/usr");
    static const char *const top[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
        if (link_or_bind(root, top[i]) < 0)
            return fail(err, errlen, "linking", top[i]);
    /* The libraries of the sandbox; the server's state, where the zygote keeps its font
     * cache and fallback work dirs (covered in every worker). */
    if (bind(root, c->venv, BIND_RO) < 0)
        return fail(err, errlen, "binding", c->venv);
    if (bind(root, c->state_dir, BIND_RW_FLAT) < 0)
        return fail(err, errlen, "binding", c->state_dir);
    if (make_etc(root) < 0)
        return fail(err, errlen, "making", "/etc");
    /* fontconfig's cache of the fonts under /usr/share/fonts, read-only. */
    if (bind(root, "/var/cache/fontconfig", BIND_RO) < 0)
        return fail(err, errlen, "binding", "/var/cache/fontconfig");

    /* The devices and the kernel's files the zygote uses (workers replace /dev and /proc
     * with their own, and cover the cgroups), and the places each worker mounts a private
     * tmpfs on. */
    /* /proc is bound, not mounted anew: a new proc instance needs rights over the pid
     * namespace, which a server started inside a user namespace may not have. */
    if (bind(root, "/dev", BIND_RW) < 0 || bind(root, "/sys/fs/cgroup", BIND_RW) < 0 ||
        bind(root, "/proc", BIND_RW) < 0)
        return fail(err, errlen, "binding", "/dev, /sys/fs/cgroup, /proc");
    static const char *const empty[] = {"/root", "/tmp", "/var/tmp", "/run"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++)
        if (make_dirs(root, empty[i], 0755) < 0)
            return fail(err, errlen, "making", empty[i]);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/tmp", root);
    if (chmod(path, 01777) < 0)
        return fail(err, errlen, "chmod", path);

    /* Into it, and the host's root let go of. */
    snprintf(path, sizeof(path), "%s/.old-root", root);
    if (mkdir(path, 0700) < 0 || syscall(SYS_pivot_root, root, path) < 0)
        return fail(err, errlen, "pivot_root into", root);
    /* From here a failure leaves the process half in the new root: -2. */
    if (chdir("/") < 0 || umount2("/.old-root", MNT_DETACH) < 0 || rmdir("/.old-root") < 0)
        return fail(err, errlen, "detaching the old root", NULL) - 1;
    /* Nothing more is made in the root itself. */
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        return fail(err, errlen, "making the root read-only", NULL) - 1;
    return 0;
}
