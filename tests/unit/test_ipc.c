/* The internal framing: payload building and reading, the incremental reader the server
 * uses on worker sockets, and descriptor passing on the zygote's SOCK_SEQPACKET channel. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/interpreter_info.h"
#include "common/ipc.h"
#include "tests/unit/check.h"

/* Reads the u32 at byte offset off of a built buffer (host order, as the frames are). */
static uint32_t u32_at(const unsigned char *p, size_t off)
{
    uint32_t v;
    memcpy(&v, p + off, sizeof(v));
    return v;
}

/* Builds the frames used below: type 7 carrying (u32, u64, bytes, empty bytes), then an
 * empty frame of type 9. */
static void build_two_frames(struct ipc_buf *b)
{
    ipc_buf_init(b);
    size_t f1 = ipc_frame_begin(b, 7);
    ipc_put_u32(b, 0xDEADBEEFu);
    ipc_put_u64(b, 0x0123456789ABCDEFull);
    ipc_put_bytes(b, "hello", 5);
    ipc_put_bytes(b, "", 0);
    ipc_frame_end(b, f1);
    size_t f2 = ipc_frame_begin(b, 9);
    ipc_frame_end(b, f2);
}

/* Checks a type-7 payload from build_two_frames; returns 1 when it reads back exactly. */
static int payload_ok(const unsigned char *payload, size_t len)
{
    struct ipc_cursor c;
    size_t n1 = 99, n2 = 99;
    ipc_cursor_init(&c, payload, len);
    uint32_t a = ipc_get_u32(&c);
    uint64_t b = ipc_get_u64(&c);
    const unsigned char *s = ipc_get_bytes(&c, &n1);
    const unsigned char *e = ipc_get_bytes(&c, &n2);
    return a == 0xDEADBEEFu && b == 0x0123456789ABCDEFull && s && n1 == 5 &&
           memcmp(s, "hello", 5) == 0 && e && n2 == 0 && !c.failed && c.left == 0;
}

/* Frames built with ipc_put_* read back with ipc_get_*; headers carry type and length. */
static void test_build_and_read(void)
{
    struct ipc_buf b;
    build_two_frames(&b);
    CHECK(!b.failed);
    /* 4 + 8 + (4 + 5) + (4 + 0) = 25 bytes of payload. */
    CHECK(b.len == IPC_HEADER_BYTES + 25 + IPC_HEADER_BYTES);
    CHECK(u32_at(b.data, 0) == 7);
    CHECK(u32_at(b.data, 4) == 25);
    CHECK(u32_at(b.data, IPC_HEADER_BYTES + 25) == 9);
    CHECK(u32_at(b.data, IPC_HEADER_BYTES + 25 + 4) == 0);
    CHECK(payload_ok(b.data + IPC_HEADER_BYTES, 25));

    /* Detach hands over the data and leaves an empty, reusable buffer. */
    size_t len = 0;
    unsigned char *d = ipc_buf_detach(&b, &len);
    CHECK(d != NULL && len == 2 * IPC_HEADER_BYTES + 25);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0 && !b.failed);
    free(d);

    /* A buffer grows past its first allocation without losing bytes. */
    ipc_buf_init(&b);
    for (uint32_t i = 0; i < 10000; i++)
        ipc_put_u32(&b, i);
    CHECK(!b.failed && b.len == 40000);
    int ok = 1;
    for (uint32_t i = 0; i < 10000; i++)
        ok &= u32_at(b.data, i * 4) == i;
    CHECK(ok);
    ipc_buf_release(&b);
    CHECK(b.data == NULL && b.len == 0);
}

/* Reading past the end fails the cursor, stickily, and yields zeros and NULL. */
static void test_cursor_overrun(void)
{
    struct ipc_cursor c;
    unsigned char three[3] = {1, 2, 3};
    ipc_cursor_init(&c, three, 3);
    CHECK(ipc_get_u32(&c) == 0);
    CHECK(c.failed);

    unsigned char six[6] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    ipc_cursor_init(&c, six, 6);
    CHECK(ipc_get_u64(&c) == 0);
    CHECK(c.failed);

    /* A u32 that fits, then a failure: later reads that would fit still return 0. */
    ipc_cursor_init(&c, six, 6);
    CHECK(ipc_get_u32(&c) == 0xFFFFFFFFu);
    CHECK(!c.failed);
    CHECK(ipc_get_u32(&c) == 0);
    CHECK(c.failed);
    ipc_cursor_init(&c, six, 6);
    (void)ipc_get_u64(&c);
    CHECK(ipc_get_u32(&c) == 0 && c.failed);

    /* Bytes whose length prefix claims more than is left. */
    struct ipc_buf b;
    ipc_buf_init(&b);
    ipc_put_u32(&b, 10);
    ipc_put_raw(&b, "abc", 3);
    size_t n = 99;
    ipc_cursor_init(&c, b.data, b.len);
    CHECK(ipc_get_bytes(&c, &n) == NULL);
    CHECK(n == 0 && c.failed);
    /* And a length prefix that is itself cut short. */
    ipc_cursor_init(&c, b.data, 2);
    n = 99;
    CHECK(ipc_get_bytes(&c, &n) == NULL && n == 0 && c.failed);
    ipc_buf_release(&b);

    /* An empty payload: the first read fails. */
    ipc_cursor_init(&c, NULL, 0);
    CHECK(ipc_get_u32(&c) == 0 && c.failed);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* A frame arriving one byte at a time is returned only once complete, and intact. */
static void test_reader_byte_by_byte(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || set_nonblock(sv[1]) < 0) {
        CHECK(0);
        return;
    }
    struct ipc_buf b;
    build_two_frames(&b);
    struct ipc_reader r;
    ipc_reader_init(&r, 1024);
    uint32_t type = 0, len = 0;
    const unsigned char *payload = NULL;
    int early = 0, frames = 0, good = 1;

    /* Nothing written yet: EAGAIN, no frame. */
    errno = 0;
    CHECK(ipc_reader_fill(&r, sv[1]) == -1 && errno == EAGAIN);
    CHECK(ipc_reader_next(&r, &type, &payload, &len) == 0);

    for (size_t i = 0; i < b.len; i++) {
        if (write(sv[0], b.data + i, 1) != 1 || ipc_reader_fill(&r, sv[1]) != 1) {
            good = 0;
            break;
        }
        int got = ipc_reader_next(&r, &type, &payload, &len);
        if (got < 0) {
            good = 0;
        } else if (got == 1) {
            frames++;
            if (frames == 1) {
                /* The first frame completes with its last payload byte. */
                early |= i + 1 != IPC_HEADER_BYTES + 25;
                good &= type == 7 && len == 25 && payload_ok(payload, len);
            } else {
                early |= i + 1 != b.len;
                good &= type == 9 && len == 0;
            }
        }
    }
    CHECK(good);
    CHECK(!early);
    CHECK(frames == 2);
    CHECK(ipc_reader_next(&r, &type, &payload, &len) == 0);

    /* EOF once the writer closes. */
    close(sv[0]);
    CHECK(ipc_reader_fill(&r, sv[1]) == 0);
    ipc_reader_release(&r);
    ipc_buf_release(&b);
    close(sv[1]);
}

/* Several frames in one write come out one per call, in order. */
static void test_reader_many_in_one_write(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || set_nonblock(sv[1]) < 0) {
        CHECK(0);
        return;
    }
    struct ipc_buf b;
    ipc_buf_init(&b);
    for (uint32_t i = 0; i < 5; i++) {
        size_t f = ipc_frame_begin(&b, 100 + i);
        ipc_put_u32(&b, i * 11);
        ipc_frame_end(&b, f);
    }
    CHECK(write(sv[0], b.data, b.len) == (ssize_t)b.len);
    struct ipc_reader r;
    ipc_reader_init(&r, 1024);
    CHECK(ipc_reader_fill(&r, sv[1]) == (ssize_t)b.len);
    int good = 1;
    for (uint32_t i = 0; i < 5; i++) {
        uint32_t type = 0, len = 0;
        const unsigned char *payload = NULL;
        struct ipc_cursor c;
        if (ipc_reader_next(&r, &type, &payload, &len) != 1) {
            good = 0;
            break;
        }
        ipc_cursor_init(&c, payload, len);
        good &= type == 100 + i && len == 4 && ipc_get_u32(&c) == i * 11 && !c.failed;
    }
    CHECK(good);
    uint32_t type, len;
    const unsigned char *payload;
    CHECK(ipc_reader_next(&r, &type, &payload, &len) == 0);

    /* A frame larger than the reader's 64 KiB refill step also comes through whole. */
    unsigned char *big = malloc(300000);
    memset(big, 'z', 300000);
    struct ipc_reader r2;
    ipc_reader_init(&r2, 400000);
    ipc_buf_release(&b);
    size_t f = ipc_frame_begin(&b, 5);
    ipc_put_raw(&b, big, 300000);
    ipc_frame_end(&b, f);
    CHECK(set_nonblock(sv[0]) == 0);   /* one thread writes and reads: never block */
    size_t sent = 0;
    int got = 0;
    for (int spins = 0; !got && spins < 100000; spins++) {
        ssize_t w = sent < b.len ? write(sv[0], b.data + sent, b.len - sent) : 0;
        if (w > 0)
            sent += (size_t)w;
        ssize_t rd = ipc_reader_fill(&r2, sv[1]);
        if (rd <= 0 && errno != EAGAIN)
            break;
        got = ipc_reader_next(&r2, &type, &payload, &len);
        if (got < 0)
            break;
    }
    CHECK(got == 1 && type == 5 && len == 300000 && memcmp(payload, big, 300000) == 0);
    free(big);
    ipc_reader_release(&r2);
    ipc_reader_release(&r);
    ipc_buf_release(&b);
    close(sv[0]);
    close(sv[1]);
}

/* A frame longer than max_frame is refused as soon as its header is in; one of exactly
 * max_frame is fine. */
static void test_reader_oversized(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || set_nonblock(sv[1]) < 0) {
        CHECK(0);
        return;
    }
    struct ipc_buf b;
    ipc_buf_init(&b);
    size_t f = ipc_frame_begin(&b, 1);
    ipc_put_raw(&b, "0123456789abcdef", 16);
    ipc_frame_end(&b, f);
    f = ipc_frame_begin(&b, 2);
    ipc_put_raw(&b, "0123456789abcdefg", 17);
    ipc_frame_end(&b, f);
    /* Only the second frame's header: the oversize is detected without its payload. */
    CHECK(write(sv[0], b.data, IPC_HEADER_BYTES + 16 + IPC_HEADER_BYTES) ==
          (ssize_t)(IPC_HEADER_BYTES + 16 + IPC_HEADER_BYTES));

    struct ipc_reader r;
    ipc_reader_init(&r, 16);
    uint32_t type = 0, len = 0;
    const unsigned char *payload = NULL;
    CHECK(ipc_reader_fill(&r, sv[1]) > 0);
    CHECK(ipc_reader_next(&r, &type, &payload, &len) == 1);
    CHECK(type == 1 && len == 16 && memcmp(payload, "0123456789abcdef", 16) == 0);
    CHECK(ipc_reader_next(&r, &type, &payload, &len) == -1);
    ipc_reader_release(&r);
    ipc_buf_release(&b);
    close(sv[0]);
    close(sv[1]);
}

/* Descriptors attached to a frame arrive with it on SOCK_SEQPACKET, refer to the same
 * open files, and are close-on-exec. */
static void test_fd_passing(void)
{
    int sv[2], pfd[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0 || pipe(pfd) < 0) {
        CHECK(0);
        return;
    }
    struct ipc_buf b;
    ipc_buf_init(&b);
    size_t f = ipc_frame_begin(&b, IPC_Z_WORKER);
    ipc_put_u32(&b, 4242);
    ipc_frame_end(&b, f);
    int fds[2] = {pfd[0], pfd[1]};
    CHECK(ipc_send_all(sv[0], b.data, b.len, fds, 2) == 0);

    unsigned char buf[256];
    int got[IPC_MAX_FDS] = {-1, -1, -1, -1};
    int nfds = -1;
    ssize_t n = ipc_recv_msg(sv[1], buf, sizeof(buf), got, &nfds);
    CHECK(n == (ssize_t)b.len);
    CHECK(n == (ssize_t)b.len && memcmp(buf, b.data, b.len) == 0);
    CHECK(nfds == 2);
    if (nfds == 2) {
        struct stat a, c;
        CHECK(fstat(got[0], &a) == 0 && fstat(pfd[0], &c) == 0 && a.st_ino == c.st_ino &&
              a.st_dev == c.st_dev);
        /* New descriptor numbers, not the sender's. */
        CHECK(got[0] != pfd[0] && got[1] != pfd[1]);
        CHECK((fcntl(got[0], F_GETFD) & FD_CLOEXEC) && (fcntl(got[1], F_GETFD) & FD_CLOEXEC));
        /* Bytes written through the received write end come out of the original read
         * end, and the other way round. */
        CHECK(write(got[1], "ping", 4) == 4);
        char rd[8] = "";
        CHECK(read(pfd[0], rd, sizeof(rd)) == 4 && memcmp(rd, "ping", 4) == 0);
        CHECK(write(pfd[1], "pong", 4) == 4);
        memset(rd, 0, sizeof(rd));
        CHECK(read(got[0], rd, sizeof(rd)) == 4 && memcmp(rd, "pong", 4) == 0);
        close(got[0]);
        close(got[1]);
    }

    /* A frame without descriptors: nfds is 0. */
    CHECK(ipc_send_all(sv[0], b.data, b.len, NULL, 0) == 0);
    nfds = -1;
    CHECK(ipc_recv_msg(sv[1], buf, sizeof(buf), got, &nfds) == (ssize_t)b.len && nfds == 0);

    /* More than IPC_MAX_FDS is refused before anything is sent. */
    int five[5] = {pfd[0], pfd[0], pfd[0], pfd[0], pfd[0]};
    errno = 0;
    CHECK(ipc_send_all(sv[0], b.data, b.len, five, 5) == -1 && errno == EINVAL);

    /* A message larger than the buffer is an error, and its descriptors are not leaked
     * into the caller's array. */
    CHECK(ipc_send_all(sv[0], b.data, b.len, fds, 1) == 0);
    nfds = -1;
    errno = 0;
    CHECK(ipc_recv_msg(sv[1], buf, 4, got, &nfds) == -1 && errno == EMSGSIZE && nfds == 0);

    /* EOF on the peer's close. */
    close(sv[0]);
    CHECK(ipc_recv_msg(sv[1], buf, sizeof(buf), got, &nfds) == 0 && nfds == 0);
    close(sv[1]);
    close(pfd[0]);
    close(pfd[1]);
    ipc_buf_release(&b);
}

/* ipc_recv_frame on a blocking stream: whole frames, empty payloads as NULL, the size
 * limit, and EOF reported as -1 with errno 0 (also in the middle of a frame). */
static void test_recv_frame(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        CHECK(0);
        return;
    }
    struct ipc_buf b;
    build_two_frames(&b);
    CHECK(ipc_send_all(sv[0], b.data, b.len, NULL, 0) == 0);

    uint32_t type = 0, len = 0;
    static unsigned char sentinel[1];   /* must be replaced by the payload or NULL */
    unsigned char *payload = sentinel;
    /* A frame of exactly max bytes is accepted. */
    CHECK(ipc_recv_frame(sv[1], &type, &payload, &len, 25) == 0);
    CHECK(type == 7 && len == 25 && payload && payload_ok(payload, len));
    free(payload);
    payload = sentinel;
    CHECK(ipc_recv_frame(sv[1], &type, &payload, &len, 1024) == 0);
    CHECK(type == 9 && len == 0 && payload == NULL);

    /* Over max: -1 with EMSGSIZE. */
    CHECK(ipc_send_all(sv[0], b.data, IPC_HEADER_BYTES + 25, NULL, 0) == 0);
    errno = 0;
    CHECK(ipc_recv_frame(sv[1], &type, &payload, &len, 24) == -1 && errno == EMSGSIZE);
    CHECK(payload == NULL);
    /* Drain the payload left behind. */
    unsigned char sink[25];
    CHECK(read(sv[1], sink, sizeof(sink)) == 25);

    /* EOF in the middle of a frame, then EOF at a frame boundary. */
    CHECK(ipc_send_all(sv[0], b.data, IPC_HEADER_BYTES + 3, NULL, 0) == 0);
    close(sv[0]);
    errno = EINVAL;
    CHECK(ipc_recv_frame(sv[1], &type, &payload, &len, 1024) == -1 && errno == 0);
    CHECK(payload == NULL);
    errno = EINVAL;
    CHECK(ipc_recv_frame(sv[1], &type, &payload, &len, 1024) == -1 && errno == 0);
    close(sv[1]);
    ipc_buf_release(&b);
}

/* The zygote's HELLO description: what is put is what is read; over-long strings are
 * cut, entries past the table's size dropped, a truncated payload refused. */
static void test_interpreter_info(void)
{
    struct interpreter_info in, out;
    memset(&in, 0, sizeof(in));
    snprintf(in.python, sizeof(in.python), "3.11.2");
    in.nlibraries = INTERPRETER_INFO_LIBRARIES;
    for (unsigned i = 0; i < in.nlibraries; i++) {
        snprintf(in.libraries[i].name, sizeof(in.libraries[i].name), "lib%u", i);
        if (i % 2)
            in.libraries[i].version[0] = '\0';   /* a library without a version */
        else
            snprintf(in.libraries[i].version, sizeof(in.libraries[i].version), "1.%u", i);
        in.libraries[i].lists = i % 3;
    }
    in.nfailures = 1;
    snprintf(in.import_failures[0], sizeof(in.import_failures[0]), "cv2: ImportError");
    struct ipc_buf b;
    ipc_buf_init(&b);
    interpreter_info_put(&b, &in);
    struct ipc_cursor c;
    ipc_cursor_init(&c, b.data, b.len);
    CHECK(interpreter_info_get(&c, &out) == 0 && c.left == 0);
    CHECK(memcmp(&in, &out, sizeof(in)) == 0);
    /* Cut off anywhere: refused. */
    ipc_cursor_init(&c, b.data, b.len - 1);
    CHECK(interpreter_info_get(&c, &out) == -1);
    ipc_buf_release(&b);

    /* A longer name than the field holds is cut; more libraries than the table holds
     * are read past and dropped. */
    char longname[200];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ipc_buf_init(&b);
    ipc_put_bytes(&b, longname, strlen(longname));
    ipc_put_u32(&b, INTERPRETER_INFO_LIBRARIES + 3);
    for (unsigned i = 0; i < INTERPRETER_INFO_LIBRARIES + 3; i++) {
        ipc_put_bytes(&b, "n", 1);
        ipc_put_bytes(&b, "v", 1);
        ipc_put_u32(&b, LIBRARY_LIST_GEMINI);
    }
    ipc_put_u32(&b, 0);
    ipc_cursor_init(&c, b.data, b.len);
    CHECK(interpreter_info_get(&c, &out) == 0 && c.left == 0);
    CHECK(strlen(out.python) == sizeof(out.python) - 1);
    CHECK(out.nlibraries == INTERPRETER_INFO_LIBRARIES && out.nfailures == 0);
    CHECK(out.libraries[0].lists == LIBRARY_LIST_GEMINI);
    ipc_buf_release(&b);
}

int main(void)
{
    test_interpreter_info();
    test_build_and_read();
    test_cursor_overrun();
    test_reader_byte_by_byte();
    test_reader_many_in_one_write();
    test_reader_oversized();
    test_fd_passing();
    test_recv_frame();
    return check_done();
}
