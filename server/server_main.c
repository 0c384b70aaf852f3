/* The HTTP server process: its state dir, its listener, the executor (which starts the
 * zygote) and the HTTP threads, until a signal stops it. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server_main.h"
#include "../common/log.h"

#include "../common/isolation.h"
#include "../common/limits.h"
#include "api_keys.h"
#include "clock.h"
#include "executor.h"
#include "http_client.h"
#include "http_server.h"
#include "models.h"
#include "routes.h"
#include "turns.h"

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

/* Whether a bound address is a loopback one (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). */
static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

/* Binds and listens; prints the address actually bound (port 0 picks one). Beyond
 * loopback without API keys it refuses, unless told to serve anyway (then a warning). */
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
    /* Decided before anything listens: no moment of serving code execution to the world. */
    int beyond = 0;   /* any address it may bind is not loopback */
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        struct sockaddr_storage a = {0};
        memcpy(&a, ai->ai_addr, ai->ai_addrlen < sizeof(a) ? ai->ai_addrlen : sizeof(a));
        beyond |= !is_loopback(&a);
    }
    if (beyond && !api_keys_enabled()) {
        if (!c->allow_unauthenticated) {
            snprintf(err, errlen, "--listen %s is beyond loopback and there is no "
                     "--api-key-file: anyone who reaches it runs code. Give keys, or "
                     "--allow-unauthenticated to serve anyway", c->listen_host);
            freeaddrinfo(res);
            return -1;
        }
        log_msg(LOG_WARN, "warning: serving %s without API keys "
                "(--allow-unauthenticated): anyone who reaches it runs code",
                c->listen_host);
    }
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
        /* At every --log-level: it says where the server is (port 0 picks one), and
         * whoever started it (the tests' harness.py) reads it. */
        fprintf(stderr, "pyexecd: listening on http://%s%s%s:%s\n",
                ss.ss_family == AF_INET6 ? "[" : "", host,
                ss.ss_family == AF_INET6 ? "]" : "", serv);
    return fd;
}

/* The zygote's environment: nothing of ours (secrets stay in the server), just what the
 * libraries need to behave: UTF-8, a headless matplotlib with a font cache we own, one
 * thread per numeric library (a zygote must stay single-threaded to fork), the malloc
 * tuning that makes forks cheap, and a PATH whose python3 and pip are the sandbox's
 * (what a child process runs, where the policy lets the code run one). */
static char **zygote_environment(const struct config *c)
{
    static char mpl[PATH_MAX + 16], path[PATH_MAX + 64];
    static char *env[] = {
        path, "HOME=/root", "LANG=C.UTF-8", "MPLBACKEND=Agg",
        mpl, "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1",
        "NUMEXPR_NUM_THREADS=1", "VECLIB_MAXIMUM_THREADS=1",
        /* The malloc heap on transparent huge pages (see sandbox/pyembed.c). */
        "GLIBC_TUNABLES=glibc.malloc.hugetlb=1", NULL,
    };
    char venv_bin[PATH_MAX];
    snprintf(mpl, sizeof(mpl), "MPLCONFIGDIR=%s/matplotlib", c->state_dir);
    if (config_venv_bin(c, venv_bin, sizeof(venv_bin)) == 0)
        snprintf(path, sizeof(path), "PATH=%s:/usr/local/bin:/usr/bin:/bin", venv_bin);
    else
        snprintf(path, sizeof(path), "PATH=/usr/local/bin:/usr/bin:/bin");
    return env;
}

/* Blocks from this size up are mapped on their own and unmapped when freed: well above
 * the small allocations of a request's bookkeeping, well below a body. */
#define SERVER_MMAP_THRESHOLD_BYTES (256 * 1024)
#define SERVER_MALLOC_ARENAS 2
/* Descriptors the server holds besides its connections (listener, executor, pidfds of the
 * pool, logs): below connections + this, it warns that it cannot hold them all. */
#define SERVER_OWN_DESCRIPTORS 64

/* Raises the soft descriptor limit toward LIMIT_SERVER_DESCRIPTORS (never above the hard
 * limit; never lowers it). Says so on stderr when the hard limit leaves fewer than the
 * connections need; the server still starts. The zygote inherits it; workers get the
 * policy's own. */
static void raise_descriptor_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= LIMIT_SERVER_DESCRIPTORS)
        return;
    rlim_t want = LIMIT_SERVER_DESCRIPTORS;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        want = rl.rlim_max;
    if (want > rl.rlim_cur) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < LIMIT_HTTP_CONNECTIONS + SERVER_OWN_DESCRIPTORS)
        log_msg(LOG_WARN, "only %llu descriptors (RLIMIT_NOFILE): fewer than %u "
                "connections will be served at once", (unsigned long long)rl.rlim_cur,
                LIMIT_HTTP_CONNECTIONS);
}

/* The first stop signal (sig): stop accepting, let the requests already taken finish for
 * up to drain_ms, and return; a second signal of `stop` returns at once. What is still
 * running then is answered 503 by the shutdown that follows. */
static void drain(const sigset_t *stop, int sig, unsigned drain_ms)
{
    log_msg(LOG_WARN, "signal %d, draining: %u requests in flight, up to %u ms (a "
            "second signal stops at once)", sig, http_server_open_exchanges(), drain_ms);
    http_server_drain();
    int64_t end = monotonic_ms() + drain_ms;
    while (http_server_open_exchanges() > 0) {
        int64_t left = end - monotonic_ms();
        if (left <= 0) {
            log_msg(LOG_WARN, "drain time over, %u requests cut",
                    http_server_open_exchanges());
            break;
        }
        if (left > LIMIT_DRAIN_POLL_MS)
            left = LIMIT_DRAIN_POLL_MS;
        struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (long)(left % 1000) * 1000000};
        int again = sigtimedwait(stop, NULL, &ts);
        if (again > 0) {
            log_msg(LOG_WARN, "signal %d again, stopping now", again);
            return;
        }
    }
    log_msg(LOG_WARN, "drained, shutting down");
}

int server_run(const struct config *c, const struct policy_summary *policy, int argc,
               char **argv)
{
    char err[512];
    static char self[PATH_MAX];
    static char pidarg[32];

    signal(SIGPIPE, SIG_IGN);
    raise_descriptor_limit();
    /* Request bodies, replies and images run to tens of MiB. glibc raises its mmap
     * threshold after the first such block is freed, and later ones then stay in the heap
     * of whichever thread allocated them after they are freed: a fixed threshold hands
     * every large block back to the kernel when freed, so the server's memory returns to
     * its level after a burst of large requests (test_bad_input.py test_3). */
    mallopt(M_MMAP_THRESHOLD, SERVER_MMAP_THRESHOLD_BYTES);
    /* And few heaps: by default each of some twenty threads may get one of up to 16
     * arenas, each keeping its own freed memory, and the server's footprint creeps up
     * for thousands of requests before it levels (bench/soak.py: +11% over 10,000 mixed
     * requests with the default, +6% with one arena). Its threads allocate little and
     * briefly; contention on two arenas does not show. */
    mallopt(M_ARENA_MAX, SERVER_MALLOC_ARENAS);
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        log_msg(LOG_ERROR, "cannot find my own binary: %s", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    if (prepare_state_dir(c->state_dir) < 0) {
        log_msg(LOG_ERROR, "state dir %s: %s", c->state_dir, strerror(errno));
        return 1;
    }
    struct stat st;
    if (stat(c->site_packages, &st) < 0 || !S_ISDIR(st.st_mode)) {
        log_msg(LOG_ERROR, "no Python libraries at %s (run `make setup`, or pass "
                "--site-packages)", c->site_packages);
        return 1;
    }
    /* The models, before anything listens: a bad --model stops us here. */
    for (unsigned i = 0; i < c->nmodels; i++)
        if (models_add(c->models[i], err, sizeof(err)) < 0) {
            log_msg(LOG_ERROR, "%s", err);
            return 2;
        }
    if (models_finish(err, sizeof(err)) < 0 || http_client_init(err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        return 1;
    }
    model_openai_set_timeout(c->upstream_timeout_ms);
    api_keys_set_defaults(c->key_max_executions, c->key_max_sessions);
    if (c->api_key_file && api_keys_load(c->api_key_file, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        return 2;
    }
    int listen_fd = open_listener(c, err, sizeof(err));
    if (listen_fd < 0) {
        log_msg(LOG_ERROR, "%s", err);
        return 1;
    }
    if (c->replica_id[0])
        log_msg(LOG_WARN, "replica %s (session ids %s.<32 hex>)", c->replica_id,
                c->replica_id);
    else
        log_msg(LOG_WARN, "no replica id (session ids are 32 hex digits alone)");

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
        .deadline_ms = (unsigned)policy->deadline_ms,
        .output_bytes = policy->output_bytes,
        .failed_stdout = c->failed_stdout, .zygote_argv = zargv,
        .zygote_env = zygote_environment(c), .policy_fd = policy->memfd,
        .required_layers = c->require_isolation ? ISO_ALL : 0,
        .max_sessions = c->max_sessions, .session_idle_ms = c->session_idle_ms,
        .session_lifetime_ms = c->session_lifetime_ms, .max_turns = LIMIT_TURN_THREADS,
        .runs_programs = policy->runs_programs, .replica_id = c->replica_id,
    };
    if (executor_start(&ec, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        return 1;
    }
    struct routes_options ro = {
        .deadline_ms = (unsigned)policy->deadline_ms,
        .output_bytes = policy->output_bytes, .body_bytes = LIMIT_BODY_BYTES,
        .input_file_bytes = policy->input_file_bytes, .policy_name = policy->name,
        .max_sessions = c->max_sessions, .replica_id = c->replica_id,
    };
    routes_init(&ro);
    if (turns_start(LIMIT_TURN_THREADS, LIMIT_TURN_QUEUE, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        executor_stop();
        return 1;
    }
    struct http_server_options ho = {
        .listen_fd = listen_fd, .threads = c->http_threads, .max_body = LIMIT_BODY_BYTES,
        .connection_limit = LIMIT_HTTP_CONNECTIONS,
        .idle_timeout_s = LIMIT_HTTP_IDLE_TIMEOUT_S,
        .handler = routes_handle, .completed = routes_completed,
        .replica_id = c->replica_id,
    };
    if (http_server_start(&ho, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        turns_stop();
        executor_stop();
        turns_join();
        return 1;
    }

    int sig = 0;
    sigwait(&stop, &sig);
    drain(&stop, sig, c->drain_ms);
    turns_stop();      /* queued turns get 503; running ones end at their next step */
    executor_stop();   /* answers every pending request, so no connection stays suspended */
    turns_join();
    http_server_stop();
    int fatal = executor_fatal();
    executor_release();
    models_release();
    api_keys_release();
    free(zargv);
    return fatal ? 1 : 0;
}

