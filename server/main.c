/* pyexecd: the entry point. One binary, two roles: the HTTP server (the default) and the
 * zygote (--zygote, started by the server itself). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/limits.h"
#include "../sandbox/isolation.h"
#include "../sandbox/policy.h"
#include "../sandbox/seccomp_filter.h"
#include "../sandbox/zygote.h"
#include "config.h"
#include "executor.h"
#include "http_server.h"
#include "routes.h"
#include "zygote_process.h"

/* Connections served at once; each suspended one costs a few kilobytes. */
#define HTTP_CONNECTION_LIMIT 1024
/* Seconds an idle keep-alive connection (not one waiting on an execution) stays open. */
#define HTTP_IDLE_TIMEOUT_S 60

/* Flags given on the command line win over the policy's limits. */
static void apply_overrides(struct policy *p, const struct config *c)
{
    if (c->deadline_ms)
        p->limits.deadline_ms = c->deadline_ms;
    if (c->output_bytes)
        p->limits.output_bytes = c->output_bytes;
    if (c->worker_memory)
        p->limits.address_space_mib = c->worker_memory >> 20;
}

/* The policy's text, read once: what the server checks is what each zygote gets. */
struct policy_source {
    const char *name;
    const char *text;
    size_t len;
    char *owned;            /* the text when read from a file (freed by the caller) */
};

/* Reads --policy FILE, or takes the built-in default. Returns 0 or -1 with err. */
static int read_policy_source(const struct config *c, struct policy_source *src, char *err,
                              size_t errlen)
{
    memset(src, 0, sizeof(*src));
    if (!c->policy_path) {
        src->name = policy_default_name;
        src->text = policy_default_text(&src->len);
        return 0;
    }
    int fd = open(c->policy_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", c->policy_path, strerror(errno));
        return -1;
    }
    src->name = c->policy_path;
    src->owned = policy_read_fd(fd, c->policy_path, &src->len, err, errlen);
    src->text = src->owned;
    close(fd);
    return src->text ? 0 : -1;
}

/* Parses a policy, applies the flags and compiles its filter without loading it: every
 * error a zygote would meet, caught before anything runs. */
static int check_policy(const struct config *c, const struct policy_source *src,
                        struct policy *p, char *err, size_t errlen)
{
    struct seccomp_program prog;
    if (policy_parse(p, src->name, src->text, src->len, err, errlen) < 0)
        return -1;
    apply_overrides(p, c);
    if (policy_check_limits(p, err, errlen) < 0 ||
        seccomp_program_build(p, &prog, err, errlen) < 0) {
        policy_release(p);
        return -1;
    }
    seccomp_program_release(&prog);
    return 0;
}

/* The zygote reads the policy text the server checked from ZYGOTE_POLICY_FD. */
static int read_policy_fd(const struct config *c, struct policy *p, char *err, size_t errlen)
{
    const char *name = c->policy_path ? c->policy_path : policy_default_name;
    size_t len;
    char *text = policy_read_fd(ZYGOTE_POLICY_FD, name, &len, err, errlen);
    close(ZYGOTE_POLICY_FD);
    int rc = text ? policy_parse(p, name, text, len, err, errlen) : -1;
    free(text);
    if (rc == 0)
        apply_overrides(p, c);
    return rc;
}

static int run_zygote(const struct config *c)
{
    char err[512];
    struct policy policy;
    if (read_policy_fd(c, &policy, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyexecd-zygote: %s\n", err);
        return 1;
    }
    /* What a worker must not see of the server: its binary, its policy, its state. */
    static char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    const char *hide[] = {self, c->policy_path, c->state_dir, NULL};
    if (!c->policy_path) {
        hide[1] = c->state_dir;
        hide[2] = NULL;
    }
    struct zygote_options z = {
        .ctl_fd = ZYGOTE_CTL_FD,
        .server_pid = c->server_pid,
        .state_dir = c->state_dir,
        .uid_base = c->uid_base,
        /* pool, running and session workers, and as many again being reaped after a kill */
        .slots = 2 * (c->pool + c->workers + c->max_sessions) + 8,
        .policy = &policy,
        .hide = hide,
        .py = {
            .site_packages = c->site_packages,
            .runner_file = c->runner_file,
            .runner_line = c->runner_line,
            .output_cap = policy.limits.output_bytes,
            .image_cap = LIMIT_IMAGE_BYTES,
            .images_per_block = LIMIT_IMAGES_PER_BLOCK,
            .image_bytes_per_request = LIMIT_IMAGE_BYTES_PER_REQUEST,
        },
    };
    return zygote_main(&z);
}

/* The policy text, sealed in a memfd each zygote start reads. */
static int policy_memfd(const struct policy_source *src, char *err, size_t errlen)
{
    int fd = memfd_create("pyexecd-policy", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || write(fd, src->text, src->len) != (ssize_t)src->len ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
        snprintf(err, errlen, "cannot pass the policy to the zygote: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Creates a directory we own, refusing one somebody else planted (the default lives in
 * /tmp) or a symlink. */
static int own_dir(const char *path, mode_t mode)
{
    struct stat st;
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return -1;
    if (lstat(path, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
        errno = EPERM;
        return -1;
    }
    return chmod(path, mode);
}

/* The state dir: 0711 so a worker (another uid) can reach its fallback work dir inside
 * <state>/work/<slot> without listing anything. */
static int prepare_state_dir(const char *state)
{
    char path[PATH_MAX];
    if (own_dir(state, 0711) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/matplotlib", state);
    if (own_dir(path, 0700) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/work", state);
    return own_dir(path, 0711);
}

/* Binds and listens; prints the address actually bound (port 0 picks one). */
static int open_listener(const struct config *c, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char port[8];
    snprintf(port, sizeof(port), "%u", c->listen_port);
    int e = getaddrinfo(c->listen_host, port, &hints, &res);
    if (e) {
        snprintf(err, errlen, "--listen %s: %s", c->listen_host, gai_strerror(e));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        snprintf(err, errlen, "cannot listen on %s:%u: %s", c->listen_host, c->listen_port,
                 strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;

    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[64], serv[8];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        fprintf(stderr, "pyexecd: listening on http://%s%s%s:%s\n",
                ss.ss_family == AF_INET6 ? "[" : "", host,
                ss.ss_family == AF_INET6 ? "]" : "", serv);
    return fd;
}

/* The zygote's environment: nothing of ours (secrets stay in the server), just what the
 * libraries need to behave: UTF-8, a headless matplotlib with a font cache we own, one
 * thread per numeric library (a zygote must stay single-threaded to fork), and the
 * malloc tuning that makes forks cheap. */
static char **zygote_environment(const char *state_dir)
{
    static char mpl[PATH_MAX + 16];
    static char *env[] = {
        "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "LANG=C.UTF-8", "MPLBACKEND=Agg",
        mpl, "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1",
        "NUMEXPR_NUM_THREADS=1", "VECLIB_MAXIMUM_THREADS=1",
        /* The malloc heap on transparent huge pages (see sandbox/pyembed.c). */
        "GLIBC_TUNABLES=glibc.malloc.hugetlb=1", NULL,
    };
    snprintf(mpl, sizeof(mpl), "MPLCONFIGDIR=%s/matplotlib", state_dir);
    return env;
}

static int run_server(const struct config *c, int argc, char **argv)
{
    char err[512];
    static char self[PATH_MAX];
    static char pidarg[32];
    struct policy policy;

    /* A policy that does not parse stops us here, before anything is half applied. */
    struct policy_source src;
    if (read_policy_source(c, &src, err, sizeof(err)) < 0 ||
        check_policy(c, &src, &policy, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        return 2;
    }
    int policy_fd = policy_memfd(&src, err, sizeof(err));
    free(src.owned);
    if (policy_fd < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        fprintf(stderr, "pyexecd: cannot find my own binary: %s\n", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    if (prepare_state_dir(c->state_dir) < 0) {
        fprintf(stderr, "pyexecd: state dir %s: %s\n", c->state_dir, strerror(errno));
        return 1;
    }
    struct stat st;
    if (stat(c->site_packages, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "pyexecd: no Python libraries at %s (run `make setup`, or pass "
                "--site-packages)\n", c->site_packages);
        return 1;
    }
    int listen_fd = open_listener(c, err, sizeof(err));
    if (listen_fd < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        return 1;
    }

    /* The zygote gets our flags (it reads its limits from them) plus its own. */
    char **zargv = calloc((size_t)argc + 3, sizeof(char *));
    if (!zargv)
        return 1;
    snprintf(pidarg, sizeof(pidarg), "--server-pid=%d", (int)getpid());
    zargv[0] = self;
    zargv[1] = "--zygote";
    zargv[2] = pidarg;
    for (int i = 1; i < argc; i++)
        zargv[i + 2] = argv[i];

    /* Signals are taken by sigwait in this thread; every other thread inherits the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    struct executor_config ec = {
        .workers = c->workers, .pool = c->pool, .queue = c->queue,
        .queue_wait_ms = c->queue_wait_ms,
        .deadline_ms = (unsigned)policy.limits.deadline_ms,
        .output_bytes = policy.limits.output_bytes,
        .failed_stdout = c->failed_stdout, .zygote_argv = zargv,
        .zygote_env = zygote_environment(c->state_dir), .policy_fd = policy_fd,
        .required_layers = c->require_isolation ? ISO_ALL : 0,
        .max_sessions = c->max_sessions, .session_idle_ms = c->session_idle_ms,
        .session_lifetime_ms = c->session_lifetime_ms,
    };
    if (executor_start(&ec, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        return 1;
    }
    struct routes_options ro = {
        .deadline_ms = (unsigned)policy.limits.deadline_ms,
        .output_bytes = policy.limits.output_bytes, .body_bytes = LIMIT_BODY_BYTES,
        .input_file_bytes = policy.limits.input_file_bytes, .policy_name = policy.name,
        .max_sessions = c->max_sessions,
    };
    routes_init(&ro);
    struct http_server_options ho = {
        .listen_fd = listen_fd, .threads = c->http_threads, .max_body = LIMIT_BODY_BYTES,
        .connection_limit = HTTP_CONNECTION_LIMIT, .idle_timeout_s = HTTP_IDLE_TIMEOUT_S,
        .handler = routes_handle,
    };
    if (http_server_start(&ho, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        executor_stop();
        return 1;
    }

    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "pyexecd: signal %d, shutting down\n", sig);
    http_server_quiesce();
    executor_stop();   /* answers every pending request, so no connection stays suspended */
    http_server_stop();
    free(zargv);
    policy_release(&policy);
    close(policy_fd);
    return executor_fatal() ? 1 : 0;
}

/* The zygote's command line is the server's flags, and every worker, a fork of the
 * zygote, would show them in /proc/1/cmdline: keep copies of what the config points at,
 * then blank the arguments, leaving only the process's name. */
static void hide_arguments(struct config *c, int argc, char **argv)
{
    if (c->site_packages)
        c->site_packages = strdup(c->site_packages);
    if (c->state_dir)
        c->state_dir = strdup(c->state_dir);
    if (c->policy_path)
        c->policy_path = strdup(c->policy_path);
    char *end = argv[argc - 1] + strlen(argv[argc - 1]);
    memset(argv[0], 0, (size_t)(end - argv[0]));
    snprintf(argv[0], (size_t)(end - argv[0]) + 1, "pyexecd-zygote");
}

int main(int argc, char **argv)
{
    struct config c;
    char err[512];
    int rc = config_parse(&c, argc, argv, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "pyexecd: %s\n", err);
        return 2;
    }
    if (c.print_policy_path) {
        struct policy p;
        if (policy_load(&p, c.print_policy_path, err, sizeof(err)) < 0 ||
            seccomp_program_print(&p, STDOUT_FILENO, err, sizeof(err)) < 0) {
            fprintf(stderr, "pyexecd: %s\n", err);
            return 2;
        }
        policy_release(&p);
        return 0;
    }
    if (c.zygote) {
        hide_arguments(&c, argc, argv);
        return run_zygote(&c);
    }
    return run_server(&c, argc, argv);
}
