#define _GNU_SOURCE
#include "ipc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void ipc_buf_init(struct ipc_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void ipc_buf_release(struct ipc_buf *b)
{
    free(b->data);
    ipc_buf_init(b);
}

unsigned char *ipc_buf_detach(struct ipc_buf *b, size_t *len)
{
    unsigned char *d = b->data;
    if (len)
        *len = b->len;
    ipc_buf_init(b);
    return d;
}

static int buf_reserve(struct ipc_buf *b, size_t more)
{
    if (b->failed)
        return -1;
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    unsigned char *d = realloc(b->data, cap);
    if (!d) {
        b->failed = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void ipc_put_raw(struct ipc_buf *b, const void *p, size_t n)
{
    if (n == 0 || buf_reserve(b, n) < 0)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void ipc_put_u32(struct ipc_buf *b, uint32_t v)
{
    ipc_put_raw(b, &v, sizeof(v));
}

void ipc_put_u64(struct ipc_buf *b, uint64_t v)
{
    ipc_put_raw(b, &v, sizeof(v));
}

void ipc_put_bytes(struct ipc_buf *b, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        b->failed = 1;
        return;
    }
    ipc_put_u32(b, (uint32_t)n);
    ipc_put_raw(b, p, n);
}

size_t ipc_frame_begin(struct ipc_buf *b, uint32_t type)
{
    size_t start = b->len;
    uint32_t zero = 0;
    ipc_put_u32(b, type);
    ipc_put_raw(b, &zero, sizeof(zero));
    return start;
}

void ipc_frame_end(struct ipc_buf *b, size_t start)
{
    if (b->failed)
        return;
    size_t payload = b->len - start - IPC_HEADER_BYTES;
    if (payload > UINT32_MAX) {
        b->failed = 1;
        return;
    }
    uint32_t n = (uint32_t)payload;
    memcpy(b->data + start + 4, &n, sizeof(n));
}

void ipc_cursor_init(struct ipc_cursor *c, const void *payload, size_t len)
{
    c->p = payload;
    c->left = len;
    c->failed = 0;
}

static int cursor_take(struct ipc_cursor *c, void *out, size_t n)
{
    if (c->failed || c->left < n) {
        c->failed = 1;
        memset(out, 0, n);
        return -1;
    }
    memcpy(out, c->p, n);
    c->p += n;
    c->left -= n;
    return 0;
}

uint32_t ipc_get_u32(struct ipc_cursor *c)
{
    uint32_t v;
    cursor_take(c, &v, sizeof(v));
    return v;
}

uint64_t ipc_get_u64(struct ipc_cursor *c)
{
    uint64_t v;
    cursor_take(c, &v, sizeof(v));
    return v;
}

const unsigned char *ipc_get_bytes(struct ipc_cursor *c, size_t *len)
{
    uint32_t n = ipc_get_u32(c);
    if (c->failed || c->left < n) {
        c->failed = 1;
        *len = 0;
        return NULL;
    }
    const unsigned char *p = c->p;
    c->p += n;
    c->left -= n;
    *len = n;
    return p;
}

int ipc_send_all(int fd, const void *data, size_t len, const int *fds, int nfds)
{
    const unsigned char *p = data;
    union {
        char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
        struct cmsghdr align;
    } ctl;

    if (nfds > IPC_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    while (len > 0 || nfds > 0) {
        struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (nfds > 0) {
            memset(&ctl, 0, sizeof(ctl));
            msg.msg_control = ctl.buf;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
            memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
        }
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        nfds = 0;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int ipc_send_frame(int fd, uint32_t type, const void *payload, size_t len, const int *fds,
                   int nfds)
{
    struct ipc_buf b;
    ipc_buf_init(&b);
    size_t start = ipc_frame_begin(&b, type);
    ipc_put_raw(&b, payload, len);
    ipc_frame_end(&b, start);
    int rc = -1;
    if (b.failed)
        errno = ENOMEM;
    else
        rc = ipc_send_all(fd, b.data, b.len, fds, nfds);
    ipc_buf_release(&b);
    return rc;
}

static int read_exact(int fd, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = 0;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int ipc_recv_frame(int fd, uint32_t *type, unsigned char **payload, uint32_t *len,
                   uint32_t max)
{
    uint32_t hdr[2];
    *payload = NULL;
    if (read_exact(fd, hdr, sizeof(hdr)) < 0)
        return -1;
    if (hdr[1] > max) {
        errno = EMSGSIZE;
        return -1;
    }
    *type = hdr[0];
    *len = hdr[1];
    if (hdr[1] == 0)
        return 0;
    unsigned char *p = malloc(hdr[1]);
    if (!p)
        return -1;
    if (read_exact(fd, p, hdr[1]) < 0) {
        int e = errno;
        free(p);
        errno = e;
        return -1;
    }
    *payload = p;
    return 0;
}

ssize_t ipc_recv_msg(int fd, void *buf, size_t cap, int *fds, int *nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = buf, .iov_len = cap };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
    };
    ssize_t n;

    *nfds = 0;
    do {
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        int count = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *src = (int *)(void *)CMSG_DATA(cm);
        for (int i = 0; i < count; i++) {
            if (*nfds < IPC_MAX_FDS)
                fds[(*nfds)++] = src[i];
            else
                close(src[i]);
        }
    }
    if (msg.msg_flags & MSG_TRUNC) {
        for (int i = 0; i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
        errno = EMSGSIZE;
        return -1;
    }
    return n;
}

/* A reader starts with room for a typical report and grows by doubling, reading at
 * least READER_MIN_ROOM bytes at a time. */
#define READER_FIRST_BYTES (128u * 1024)
#define READER_MIN_ROOM (64u * 1024)

void ipc_reader_init(struct ipc_reader *r, uint32_t max_frame)
{
    memset(r, 0, sizeof(*r));
    r->max_frame = max_frame;
}

void ipc_reader_release(struct ipc_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

ssize_t ipc_reader_fill(struct ipc_reader *r, int fd)
{
    /* Compact, then make room for at least READER_MIN_ROOM more bytes. */
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->len);
        r->start = 0;
    }
    if (r->cap - r->len < READER_MIN_ROOM) {
        size_t cap = r->cap ? r->cap * 2 : READER_FIRST_BYTES;
        unsigned char *b = realloc(r->buf, cap);
        if (!b) {
            errno = ENOMEM;
            return -1;
        }
        r->buf = b;
        r->cap = cap;
    }
    ssize_t n;
    do {
        n = read(fd, r->buf + r->len, r->cap - r->len);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        r->len += (size_t)n;
    return n;
}

/* Buffers up to this size are kept between frames; larger ones are freed when empty. */
#define READER_KEEP_BYTES (256u * 1024)

void ipc_reader_shrink(struct ipc_reader *r)
{
    if (r->len == 0 && r->cap > READER_KEEP_BYTES) {
        free(r->buf);
        r->buf = NULL;
        r->start = r->cap = 0;
    }
}

int ipc_reader_next(struct ipc_reader *r, uint32_t *type, const unsigned char **payload,
                    uint32_t *len)
{
    uint32_t hdr[2];
    if (r->len < IPC_HEADER_BYTES)
        return 0;
    memcpy(hdr, r->buf + r->start, sizeof(hdr));
    if (hdr[1] > r->max_frame)
        return -1;
    if (r->len < IPC_HEADER_BYTES + (size_t)hdr[1])
        return 0;
    *type = hdr[0];
    *len = hdr[1];
    *payload = r->buf + r->start + IPC_HEADER_BYTES;
    r->start += IPC_HEADER_BYTES + hdr[1];
    r->len -= IPC_HEADER_BYTES + hdr[1];
    return 1;
}
