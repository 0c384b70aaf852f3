/* Frames on pyexecd's internal channels.
 *
 *   server <-> zygote   SOCK_SEQPACKET: one frame per message, file descriptors attached
 *   server <-> worker   SOCK_STREAM:    frames back to back
 *
 * A frame is a header (u32 type, u32 payload length, host byte order: both ends are the
 * same binary on the same machine) followed by the payload. Payloads are sequences of
 * u32, u64 and length-prefixed byte strings, built with ipc_put_* and read with ipc_get_*,
 * whose cursor turns sticky-failed on any overrun so a caller checks once at the end. */
#ifndef PYEXECD_IPC_H
#define PYEXECD_IPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum ipc_type {
    /* server -> zygote */
    IPC_Z_SPAWN = 1,          /* fork one worker; no payload */
    /* zygote -> server */
    IPC_Z_HELLO = 2,          /* zygote ready: u32 isolation layers, then the interpreter's
                               * description (common/interpreter_info.h), then bytes the
                               * workers' memory cgroup directory and bytes their pids one
                               * ("" when none) */
    IPC_Z_WORKER = 3,         /* u32 pid; fds: socket, stdout memfd, stderr memfd, pidfd */
    IPC_Z_EXITED = 4,         /* u32 pid, u32 wait status, u32 CPU ms, u32 flags (EXIT_*),
                               * u32 its CPU-time limit in seconds (0: none known) */
    IPC_Z_SPAWN_FAILED = 5,   /* u32 errno */
    /* worker -> server */
    IPC_W_READY = 20,         /* u32 isolation layers (enum isolation_layer bits) */
    IPC_W_SETUP_FAILED = 21,  /* bytes reason */
    IPC_W_BLOCK_DONE = 22,    /* layout in sandbox/block_report.h */
    IPC_W_JOB_DONE = 23,      /* no payload: every block ran */
    IPC_W_JOB_REFUSED = 24,   /* u32 index of the input file it could not write, u32 errno:
                               * nothing ran; the worker waits for the next job */
    IPC_W_ENDING = 25,        /* u32 WORKER_EXIT_* status it is about to exit with: the
                               * server names that end only when both agree, so a code's
                               * own os._exit(73) reads as the plain status it is */
    /* server -> worker */
    IPC_W_JOB = 30,           /* u32 traceback profile (enum fidelity), u32 nfiles,
                               * {bytes name, bytes data}*, u32 nblocks, {bytes code}* */
    IPC_W_KEEP = 31,          /* no payload: the worker now serves a session (it stops
                               * pre-faulting; its pages would stay for the session's life) */
};

/* IPC_Z_EXITED flags */
#define EXIT_OOM_KILLED 0x1u   /* the worker's memory cgroup counted an OOM kill */

#define IPC_HEADER_BYTES 8u
#define IPC_MAX_FDS 4

/* A growable byte buffer for building frames. Any failed allocation turns it sticky-failed
 * (failed = 1) and later puts are no-ops. */
struct ipc_buf {
    unsigned char *data;
    size_t len, cap;
    int failed;
};

void ipc_buf_init(struct ipc_buf *b);
/* Frees the data; the struct can be reused after ipc_buf_init. */
void ipc_buf_release(struct ipc_buf *b);
/* Transfers ownership of the data to the caller (who frees it); the buffer is emptied. */
unsigned char *ipc_buf_detach(struct ipc_buf *b, size_t *len);

/* Starts a frame of type `type`; returns the offset to pass to ipc_frame_end. */
size_t ipc_frame_begin(struct ipc_buf *b, uint32_t type);
/* Writes the payload length of the frame started at `start`. */
void ipc_frame_end(struct ipc_buf *b, size_t start);
void ipc_put_u32(struct ipc_buf *b, uint32_t v);
void ipc_put_u64(struct ipc_buf *b, uint64_t v);
/* u32 length then the bytes. */
void ipc_put_bytes(struct ipc_buf *b, const void *p, size_t n);
void ipc_put_raw(struct ipc_buf *b, const void *p, size_t n);

/* A read cursor over one payload. Reads past the end set failed and return zeros. */
struct ipc_cursor {
    const unsigned char *p;
    size_t left;
    int failed;
};

void ipc_cursor_init(struct ipc_cursor *c, const void *payload, size_t len);
uint32_t ipc_get_u32(struct ipc_cursor *c);
uint64_t ipc_get_u64(struct ipc_cursor *c);
/* Returns a pointer into the payload (not a copy) and its length; NULL on overrun. */
const unsigned char *ipc_get_bytes(struct ipc_cursor *c, size_t *len);

/* Writes all of data (blocking, retrying EINTR and short writes). fds, if any, ride on
 * the first sendmsg. Returns 0, or -1 with errno set. */
int ipc_send_all(int fd, const void *data, size_t len, const int *fds, int nfds);

/* Sends one frame (header, then len bytes of payload) with fds attached, in one record on
 * a SOCK_SEQPACKET socket. Blocking. Returns 0, or -1 with errno. */
int ipc_send_frame(int fd, uint32_t type, const void *payload, size_t len, const int *fds,
                   int nfds);

/* Reads exactly one frame from a blocking stream socket. On success returns 0 with
 * *payload malloc'd (caller frees; NULL when len is 0). Returns -1 on EOF (errno 0),
 * error, or a frame longer than max (errno EMSGSIZE). */
int ipc_recv_frame(int fd, uint32_t *type, unsigned char **payload, uint32_t *len,
                   uint32_t max);

/* Receives one SOCK_SEQPACKET message into buf with up to IPC_MAX_FDS descriptors
 * (close-on-exec; they become the caller's to close). Returns the message length, 0 on
 * EOF, -1 on error. *nfds is set. */
ssize_t ipc_recv_msg(int fd, void *buf, size_t cap, int *fds, int *nfds);

/* Incremental frame reader for non-blocking stream sockets (the server side). */
struct ipc_reader {
    unsigned char *buf;
    size_t start, len, cap;     /* unread bytes are buf[start .. start+len) */
    uint32_t max_frame;
};

void ipc_reader_init(struct ipc_reader *r, uint32_t max_frame);
void ipc_reader_release(struct ipc_reader *r);
/* Reads what the socket has. Returns >0 bytes read, 0 on EOF, -1 with errno (EAGAIN when
 * nothing is waiting). */
ssize_t ipc_reader_fill(struct ipc_reader *r, int fd);
/* Returns 1 and a frame whose payload stays valid until the next fill or next call; 0 when
 * no complete frame is buffered; -1 when the next frame exceeds max_frame. */
int ipc_reader_next(struct ipc_reader *r, uint32_t *type, const unsigned char **payload,
                    uint32_t *len);

/* Gives back a large buffer once nothing is buffered: one big frame (a block's images)
 * must not keep its memory for the rest of a long-lived worker's life. */
void ipc_reader_shrink(struct ipc_reader *r);

#endif
