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

#include "../common/fds.h"
#include "../common/fidelity.h"
#include "../common/isolation.h"
#include "../common/ipc.h"
#include "../common/limits.h"
#include "prefault.h"
#include "pyembed.h"

static int sock_fd = -1;   /* the socket to the server */
static struct stat capture_ids[2];   /* stdout's and stderr's capture files */
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

/* Puts the capture files on 1 and 2, /dev/null on 0 and the report socket on
 * WORKER_REPORT_FD, and closes everything else: the zygote's own descriptors (its
 * control socket, its signalfd, the server's end of our socket) and our copies of the
 * capture files. The code then sees those four and nothing more. *out_id and *err_id get
 * the capture files' identities, by which a block's end is measured (the code may close
 * or redirect 1 and 2). */
static int arrange_fds(const struct worker_start *ws, struct stat *out_id, struct stat *err_id)
{
    for (size_t i = 0; i < sizeof(ws->zygote_fds) / sizeof(ws->zygote_fds[0]); i++)
        if (ws->zygote_fds[i] >= 0)
            close(ws->zygote_fds[i]);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(ws->out_fd, STDOUT_FILENO) < 0 ||
        dup2(ws->err_fd, STDERR_FILENO) < 0 || fstat(STDOUT_FILENO, out_id) < 0 ||
        fstat(STDERR_FILENO, err_id) < 0)
        return -1;
    if (ws->sock == WORKER_REPORT_FD) {
        if (fcntl(ws->sock, F_SETFD, FD_CLOEXEC) < 0)
            return -1;
    } else if (dup3(ws->sock, WORKER_REPORT_FD, O_CLOEXEC) < 0) {
        return -1;
    }
    sock_fd = WORKER_REPORT_FD;
    return close_range(WORKER_REPORT_FD + 1, ~0u, 0);
}

/* Tells the server which of its own ends the worker takes (IPC_W_ENDING), then exits.
 * Async-signal-safe (one write of a frame built on the stack): the abort handler uses
 * it, perhaps from inside a broken malloc. */
_Noreturn static void end_worker(int status)
{
    uint32_t frame[3] = {IPC_W_ENDING, sizeof(uint32_t), (uint32_t)status};
    const char *p = (const char *)frame;
    size_t left = sizeof(frame);
    while (left > 0) {
        ssize_t n = write(sock_fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        left -= (size_t)n;
    }
    _exit(status);
}

static pid_t worker_pid;   /* ours; a child the code forks is someone else */

/* abort(): see WORKER_EXIT_ABORTED. A child of the worker (parity policy) is no pid 1:
 * it dies of the signal as any process does, and says nothing on the channel. */
static void on_abort(int sig)
{
    if (getpid() != worker_pid) {
        signal(sig, SIG_DFL);
        raise(sig);
        _exit(128 + sig);
    }
    end_worker(WORKER_EXIT_ABORTED);
}

static void reset_signals(void)
{
    sigset_t all;
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    signal(SIGABRT, on_abort);
    /* A closed pipe is an EPIPE error in Python, not a silent death; writing past the
     * file-size limit is an EFBIG error, not a kill. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

/* Writes one input file into the work dir. Names come from the server
 * (input_file_N.ext); O_EXCL and O_NOFOLLOW all the same, so a file or link the session's
 * code made under that name is never written through. Returns 0, or an errno. */
static int write_input_file(const char *name, size_t name_len, const unsigned char *data,
                            size_t len)
{
    char path[64];
    if (name_len == 0 || name_len >= sizeof(path) || memchr(name, '/', name_len) ||
        memchr(name, '\0', name_len))
        return EINVAL;
    memcpy(path, name, name_len);
    path[name_len] = '\0';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            unlink(path);
            return e;
        }
        data += n;
        len -= (size_t)n;
    }
    if (close(fd) < 0) {
        int e = errno;
        unlink(path);
        return e;
    }
    return 0;
}

/* Removes the first n input files of a refused job, so the session is as it was. */
static void remove_input_files(const unsigned char *payload, size_t len, uint32_t n)
{
    struct ipc_cursor c;
    ipc_cursor_init(&c, payload, len);
    ipc_get_u32(&c);
    ipc_get_u32(&c);
    for (uint32_t i = 0; i < n && !c.failed; i++) {
        size_t name_len, data_len;
        const unsigned char *name = ipc_get_bytes(&c, &name_len);
        ipc_get_bytes(&c, &data_len);
        char path[64];
        if (c.failed || name_len >= sizeof(path))
            return;
        memcpy(path, name, name_len);
        path[name_len] = '\0';
        unlink(path);
    }
}

/* Parses the IPC_W_JOB payload, writes the input files and runs the blocks. Returns 0,
 * 1 when an input file could not be written (IPC_W_JOB_REFUSED sent, nothing ran, the
 * files written before it removed), or -1 on a malformed job or a runner failure. */
static int run_job(const unsigned char *payload, size_t len)
{
    struct ipc_cursor c;
    ipc_cursor_init(&c, payload, len);

    uint32_t profile = ipc_get_u32(&c);
    uint32_t nfiles = ipc_get_u32(&c);
    for (uint32_t i = 0; i < nfiles && !c.failed; i++) {
        size_t name_len, data_len;
        const unsigned char *name = ipc_get_bytes(&c, &name_len);
        const unsigned char *data = ipc_get_bytes(&c, &data_len);
        if (c.failed)
            return -1;
        int e = write_input_file((const char *)name, name_len, data, data_len);
        if (e == EINVAL)
            return -1;
        if (e != 0) {
            remove_input_files(payload, len, i);
            uint32_t why[2] = {i, (uint32_t)e};
            send_frame(IPC_W_JOB_REFUSED, why, sizeof(why));
            return 1;
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
    return pyembed_run_job(sock_fd, capture_ids, codes, lens, nblocks, profile);
}

_Noreturn void worker_main(const struct worker_start *ws)
{
    char err[256];
    unsigned layers = 0;

    struct stat out_id, err_id;
    prctl(PR_SET_NAME, "pyexecd-worker", 0, 0, 0);
    worker_pid = getpid();
    if (arrange_fds(ws, &out_id, &err_id) < 0)
        _exit(WORKER_EXIT_SETUP);
    capture_ids[0] = out_id;
    capture_ids[1] = err_id;
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
    /* Idle until the job comes: take its copy-on-write faults now (prefault.h). After
     * READY, so that a job wanted at once (no pool, back-to-back requests) stops it; after
     * the cgroup join, so that the copies count against this worker's memory limit. */
    prefault_while_idle(sock_fd);

    /* One job for a plain request (the server kills us after it), several for a
     * session: same interpreter, same work dir, until the server closes the socket. */
    for (;;) {
        uint32_t type, len;
        unsigned char *payload;
        if (ipc_recv_frame(sock_fd, &type, &payload, &len, LIMIT_IPC_FRAME_BYTES) < 0)
            _exit(0);   /* the server let us go (session over, shutdown or restart) */
        if (type == IPC_W_KEEP) {   /* a session's from now on: no more pre-faulting */
            free(payload);
            continue;
        }
        if (type != IPC_W_JOB)
            end_worker(WORKER_EXIT_PROTOCOL);
        int rc = run_job(payload, len);
        if (rc < 0)
            end_worker(WORKER_EXIT_RUNNER);
        free(payload);
        if (rc == 0)
            send_frame(IPC_W_JOB_DONE, NULL, 0);
    }
}
