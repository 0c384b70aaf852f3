#define _GNU_SOURCE
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/fidelity.h"
#include "../common/isolation.h"
#include "../common/ipc.h"
#include "../common/limits.h"
#include "pyembed.h"

static int sock_fd = -1;   /* the socket to the server */
static int may_end_children;   /* kill(-1) reaches only our own processes (see worker.h) */

void worker_end_children(void)
{
    if (!may_end_children)
        return;
    kill(-1, SIGKILL);
    /* Every child, orphans included (as pid 1 they are ours), until none is left. */
    while (waitpid(-1, NULL, __WALL) > 0 || errno == EINTR)
        ;
}

/* Tells the server something; if it is gone, there is nobody to tell. */
static void send_frame(uint32_t type, const void *payload, size_t len)
{
    (void)ipc_send_frame(sock_fd, type, payload, len, NULL, 0);
}

/* Puts the capture files on 1 and 2, /dev/null on 0, and closes the zygote's own
 * descriptors (its control socket, its signalfd, the server's end of our socket). The
 * zygote started with nothing else, so nothing of the server's is left. */
static int arrange_fds(const struct worker_start *ws)
{
    for (size_t i = 0; i < sizeof(ws->zygote_fds) / sizeof(ws->zygote_fds[0]); i++)
        if (ws->zygote_fds[i] >= 0)
            close(ws->zygote_fds[i]);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(ws->out_fd, STDOUT_FILENO) < 0 ||
        dup2(ws->err_fd, STDERR_FILENO) < 0)
        return -1;
    return close(null);
}

static void reset_signals(void)
{
    sigset_t all;
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    /* A closed pipe is an EPIPE error in Python, not a silent death; writing past the
     * file-size limit is an EFBIG error, not a kill. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

/* Writes one input file into the work dir. Names come from the server
 * (input_file_N.ext); O_EXCL and O_NOFOLLOW all the same. */
static int write_input_file(const char *name, size_t name_len, const unsigned char *data,
                            size_t len)
{
    char path[64];
    if (name_len == 0 || name_len >= sizeof(path) || memchr(name, '/', name_len))
        return -1;
    memcpy(path, name, name_len);
    path[name_len] = '\0';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return close(fd);
}

/* Parses the IPC_W_JOB payload, writes the input files and runs the blocks. */
static int run_job(const struct worker_start *ws, const unsigned char *payload, size_t len)
{
    struct ipc_cursor c;
    ipc_cursor_init(&c, payload, len);

    uint32_t profile = ipc_get_u32(&c);
    uint32_t nfiles = ipc_get_u32(&c);
    for (uint32_t i = 0; i < nfiles && !c.failed; i++) {
        size_t name_len, data_len;
        const unsigned char *name = ipc_get_bytes(&c, &name_len);
        const unsigned char *data = ipc_get_bytes(&c, &data_len);
        if (c.failed || write_input_file((const char *)name, name_len, data, data_len) < 0) {
            fprintf(stderr, "pyexecd: cannot write input file %u: %s\n", i, strerror(errno));
            return -1;
        }
    }
    uint32_t nblocks = ipc_get_u32(&c);
    if (c.failed || nblocks == 0 || nblocks > LIMIT_PARTS || profile >= FIDELITY_COUNT)
        return -1;
    const char *codes[LIMIT_PARTS];
    size_t lens[LIMIT_PARTS];
    for (uint32_t i = 0; i < nblocks; i++)
        codes[i] = (const char *)ipc_get_bytes(&c, &lens[i]);
    if (c.failed)
        return -1;
    return pyembed_run_job(ws->sock, ws->out_fd, ws->err_fd, codes, lens, nblocks, profile);
}

_Noreturn void worker_main(const struct worker_start *ws)
{
    char err[256];
    unsigned layers = 0;

    prctl(PR_SET_NAME, "pyexecd-worker", 0, 0, 0);
    sock_fd = ws->sock;
    if (arrange_fds(ws) < 0)
        _exit(WORKER_EXIT_SETUP);
    reset_signals();
    pyembed_after_fork_child();
    /* C code writing with stdio reaches the capture files at once too. */
    setvbuf(stdout, NULL, _IONBF, 0);
    setvbuf(stderr, NULL, _IONBF, 0);

    if (confine_apply(&ws->confine, &layers, err, sizeof(err)) < 0) {
        send_frame(IPC_W_SETUP_FAILED, err, strlen(err));
        _exit(WORKER_EXIT_SETUP);
    }
    may_end_children = (layers & (ISO_PID_NS | ISO_UID_DROP)) != 0;
    send_frame(IPC_W_READY, &layers, sizeof(layers));

    /* One job for a plain request (the server kills us after it), several for a
     * session: same interpreter, same work dir, until the server closes the socket. */
    for (;;) {
        uint32_t type, len;
        unsigned char *payload;
        if (ipc_recv_frame(sock_fd, &type, &payload, &len, LIMIT_IPC_FRAME_BYTES) < 0)
            _exit(0);   /* the server let us go (session over, shutdown or restart) */
        if (type != IPC_W_JOB)
            _exit(WORKER_EXIT_PROTOCOL);
        if (run_job(ws, payload, len) < 0)
            _exit(WORKER_EXIT_RUNNER);
        free(payload);
        send_frame(IPC_W_JOB_DONE, NULL, 0);
    }
}
