/* What a worker sends the server while it runs a job, read the way the server reads it.
 * The worker is untrusted from its fork on (the user's code can write anything to its
 * socket), so this is hostile input as much as a request body is.
 *
 * The bytes go through a real socketpair into ipc_reader_fill / ipc_reader_next
 * (common/ipc.c), in chunks, as server/worker_link.c's worker_read and drain_frames take
 * them; each frame is handled as handle_worker_frame does for a busy worker, and an
 * IPC_W_BLOCK_DONE payload is decoded by a faithful copy of handle_block_done's sequence
 * (u32 index, u32 status, u32 flags, u64 stdout end, u64 stderr end, bytes error text,
 * u32 nimages, {bytes mime, bytes data}*), calling the real job_block_result,
 * job_keep_image and job_limit_hit (server/job_results.c) on a job whose capture files
 * are memfds holding bytes from the input. When the stream ends the job is finished as
 * worker_finish_crashed / worker_deadline_expired and job_finish do, and the reply is
 * encoded with the real wire_encode_execute. (If worker_link.c's handle_block_done or
 * handle_worker_frame change, change the copies below with them.)
 *
 * Input layout:
 *   byte 0  bits 0-1 output cap (16, 100, 4096, 1 MiB); bit 2 --failed-stdout merge;
 *           bits 3-5 blocks in the job - 1; bits 6-7 how the worker ends (no status
 *           known, exit 0, SIGSYS, deadline)
 *   byte 1  bits 0-1 socket write size (all, 7, 61, 4093 bytes)
 *   u16 stdout bytes, u16 stderr bytes (little-endian), then those bytes: what the
 *           capture memfds hold
 *   the rest: the byte stream the worker writes (frames: u32 type, u32 length, payload;
 *           host byte order)
 *
 * Properties, besides "no crash, no leak, no UB": every block ends with one or two
 * result entries whose outputs are valid UTF-8 and bounded by the output cap (at most 3
 * pieces of 3 bytes per raw byte, plus notices); kept images are PNG or JPEG, at most
 * LIMIT_IMAGES_PER_BLOCK per block and LIMIT_IMAGE_BYTES_PER_REQUEST in all; the reply is
 * valid JSON and UTF-8. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/block_report.h"
#include "common/ipc.h"
#include "common/limits.h"
#include "fuzz/fuzz_util.h"
#include "server/block_output.h"
#include "server/execution.h"
#include "server/job.h"
#include "server/job_results.h"
#include "server/wire.h"

#define MAX_BLOCKS 8

enum fstate { F_BUSY, F_GONE };

struct fake_worker {
    enum fstate state;
    struct job job;
    int out_fd, err_fd;
    int sock;
    struct ipc_reader rd;
    int end_kind;
};

/* The job's request: n code blocks (with and without ids), parsed by the real parser
 * once per n, so wire_encode_execute gets a real struct wire_execute. */
static struct wire_execute *echo_of[MAX_BLOCKS + 1];
static struct exec_request req_of[MAX_BLOCKS + 1];

static void make_request(unsigned n)
{
    if (echo_of[n])
        return;
    char body[2048];
    size_t o = (size_t)snprintf(body, sizeof(body), "{\"parts\":[{\"text\":\"run these\"}");
    for (unsigned i = 0; i < n; i++)
        o += (size_t)snprintf(body + o, sizeof(body) - o,
                              ",{\"executableCode\":{\"language\":\"PYTHON\",\"code\":"
                              "\"print(%u)\"%s}}", i, i % 2 ? ",\"id\":\"c0de0001\"" : "");
    o += (size_t)snprintf(body + o, sizeof(body) - o, "]}");
    char msg[256];
    if (wire_parse_execute(body, o, LIMIT_INPUT_FILE_BYTES, &echo_of[n], &req_of[n], msg,
                           sizeof(msg)) != PX_OK) {
        fprintf(stderr, "harness: the job's request does not parse: %s\n", msg);
        abort();
    }
}

static int memfd_new(const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) {
        perror("harness: memfd_create");
        abort();
    }
    return fd;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k <= 0) {
            perror("harness: write");
            abort();
        }
        p += k;
        n -= (size_t)k;
    }
}

/* ---- job_finish's part: blocks not reached did not run ---- */

static void finish_job(struct fake_worker *w)
{
    struct job *job = &w->job;
    for (size_t i = job->block; i < job->res->nblocks; i++) {
        struct block_output_input in = {.end = BLOCK_END_NOT_RUN, .out.fd = -1,
                                        .err.fd = -1};
        int truncated = 0;
        if (block_output_build(&job->res->blocks[i], &in, &truncated) < 0)
            fuzz_fail("report-nomem", "block_output_build failed for a block not run");
    }
    w->state = F_GONE;
}

/* ---- copies of server/worker_link.c ---- */

/* worker_finish_crashed (w->kept = 0: a pool worker). */
static void finish_crashed(struct fake_worker *w, const struct worker_exit *how)
{
    struct job *job = &w->job;
    char reason[160];
    enum block_end end = BLOCK_END_CRASH;
    enum limit_hit limit = LIMIT_HIT_NONE;
    if (how && WIFEXITED(how->status) && WEXITSTATUS(how->status) == 0) {
        end = BLOCK_END_OK;
        reason[0] = '\0';
    } else {
        limit = job_describe_death(how, reason, sizeof(reason));
    }
    if (job->block < job->res->nblocks) {
        if (job_block_result(job, w->out_fd, w->err_fd, end, reason, strlen(reason), 0, -1,
                             -1) < 0)
            fuzz_fail("report-nomem", "job_block_result failed after a crash");
        if (end == BLOCK_END_CRASH)
            job_limit_hit(job, limit);
        job->block++;
    }
    finish_job(w);
}

/* worker_deadline_expired. */
static void deadline_expired(struct fake_worker *w)
{
    struct job *job = &w->job;
    if (job->block < job->res->nblocks) {
        if (job_block_result(job, w->out_fd, w->err_fd, BLOCK_END_DEADLINE, NULL, 0, 0, -1,
                             -1) < 0)
            fuzz_fail("report-nomem", "job_block_result failed at the deadline");
        job_limit_hit(job, LIMIT_HIT_DEADLINE);
        job->block++;
    }
    finish_job(w);
}

/* worker_protocol_error. */
static void protocol_error(struct fake_worker *w, const char *what)
{
    (void)what;
    finish_crashed(w, NULL);
}

/* handle_block_done, line for line. */
static void handle_block_done(struct fake_worker *w, const unsigned char *p, uint32_t len)
{
    struct job *job = &w->job;
    struct ipc_cursor c;
    ipc_cursor_init(&c, p, len);
    uint32_t index = ipc_get_u32(&c);
    uint32_t status = ipc_get_u32(&c);
    uint32_t flags = ipc_get_u32(&c);
    uint64_t out_end = ipc_get_u64(&c);
    uint64_t err_end = ipc_get_u64(&c);
    size_t error_len;
    const unsigned char *error = ipc_get_bytes(&c, &error_len);
    uint32_t nimages = ipc_get_u32(&c);
    if (c.failed || index != job->block || job->block >= job->res->nblocks ||
        status > BLOCK_STATUS_EXCEPTION) {
        protocol_error(w, "malformed block report");
        return;
    }
    enum block_end end = status == BLOCK_STATUS_EXCEPTION ? BLOCK_END_EXCEPTION : BLOCK_END_OK;
    if (job_block_result(job, w->out_fd, w->err_fd, end, (const char *)error, error_len,
                         flags, out_end > INT64_MAX ? -1 : (int64_t)out_end,
                         err_end > INT64_MAX ? -1 : (int64_t)err_end) < 0) {
        protocol_error(w, "out of memory");
        return;
    }
    for (uint32_t i = 0; i < nimages; i++) {
        size_t mime_len, data_len;
        const unsigned char *mime = ipc_get_bytes(&c, &mime_len);
        const unsigned char *data = ipc_get_bytes(&c, &data_len);
        if (c.failed)
            break;
        job_keep_image(job, mime, mime_len, data, data_len);
    }
    if (flags & BLOCK_FLAG_IMAGES_DROPPED)
        job_limit_hit(job, LIMIT_HIT_IMAGES);
    static const struct {
        unsigned flag;
        enum limit_hit limit;
    } limit_flags[] = {
        {BLOCK_FLAG_LIMIT_MEMORY, LIMIT_HIT_MEMORY}, {BLOCK_FLAG_LIMIT_DISK, LIMIT_HIT_DISK},
        {BLOCK_FLAG_LIMIT_FILE_SIZE, LIMIT_HIT_FILE_SIZE},
        {BLOCK_FLAG_LIMIT_THREADS, LIMIT_HIT_THREADS},
        {BLOCK_FLAG_LIMIT_OPEN_FILES, LIMIT_HIT_OPEN_FILES},
    };
    for (size_t i = 0; i < sizeof(limit_flags) / sizeof(limit_flags[0]); i++)
        if ((flags & limit_flags[i].flag) && status == BLOCK_STATUS_EXCEPTION)
            job_limit_hit(job, limit_flags[i].limit);

    job->block++;
}

/* handle_worker_frame for a busy pool worker. */
static void handle_frame(struct fake_worker *w, uint32_t type, const unsigned char *p,
                         uint32_t len)
{
    switch (type) {
    case IPC_W_READY:         /* only while starting */
    case IPC_W_SETUP_FAILED:  /* likewise */
        protocol_error(w, "unexpected frame while busy");
        return;
    case IPC_W_BLOCK_DONE:
        handle_block_done(w, p, len);
        return;
    case IPC_W_JOB_DONE:
        if (w->job.block != w->job.res->nblocks) {
            protocol_error(w, "early JOB_DONE");
            return;
        }
        finish_job(w);   /* handle_job_done: job_finish, then the worker is discarded */
        return;
    default:
        protocol_error(w, "unknown frame");
    }
}

/* drain_frames. */
static void drain(struct fake_worker *w)
{
    uint32_t type, len;
    const unsigned char *payload;
    int rc;
    while (w->state == F_BUSY && (rc = ipc_reader_next(&w->rd, &type, &payload, &len)) != 0) {
        if (rc < 0) {
            protocol_error(w, "oversized frame");
            return;
        }
        handle_frame(w, type, payload, len);
    }
}

/* worker_read, then on EOF worker_lost and what follows it (the exit status, or the
 * deadline passing first). Returns 1 at EOF. */
static int worker_read(struct fake_worker *w)
{
    for (;;) {
        ssize_t n = ipc_reader_fill(&w->rd, w->sock);
        if (n > 0) {
            drain(w);
            if (w->state != F_BUSY)
                return 0;
            ipc_reader_shrink(&w->rd);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (w->end_kind == 3) {
            deadline_expired(w);
        } else {
            struct worker_exit how = {0};
            how.status = w->end_kind == 1 ? 0 : SIGSYS;   /* exited 0, or killed */
            finish_crashed(w, w->end_kind == 0 ? NULL : &how);
        }
        return 1;
    }
}

/* ---- checks ---- */

static void check_result(const struct exec_result *res, size_t cap)
{
    size_t image_bytes = 0;
    for (size_t i = 0; i < res->nblocks; i++) {
        const struct block_result *b = &res->blocks[i];
        FUZZ_CHECK(b->nentries == 1 || b->nentries == 2, "report-entries",
                   "block %zu has %zu result entries", i, b->nentries);
        for (size_t e = 0; e < b->nentries && e < 2; e++) {
            const struct result_entry *r = &b->entries[e];
            FUZZ_CHECK(r->outcome >= OUTCOME_OK && r->outcome <= OUTCOME_DEADLINE_EXCEEDED,
                       "report-entries", "block %zu: outcome %d", i, (int)r->outcome);
            FUZZ_CHECK(!r->output == !r->output_len, "report-entries",
                       "block %zu: output %p of length %zu", i, (void *)r->output,
                       r->output_len);
            if (!r->output)
                continue;
            FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)r->output, r->output_len),
                       "report-output-utf8", "block %zu: output is not valid UTF-8", i);
            FUZZ_CHECK(r->output_len <= 9 * cap + 1024, "report-output-bound",
                       "block %zu: %zu bytes of output under a cap of %zu", i, r->output_len,
                       cap);
        }
        FUZZ_CHECK(b->nimages <= LIMIT_IMAGES_PER_BLOCK, "report-images",
                   "block %zu kept %zu images", i, b->nimages);
        for (size_t k = 0; k < b->nimages; k++) {
            FUZZ_CHECK(strcmp(b->images[k].mime, "image/png") == 0 ||
                       strcmp(b->images[k].mime, "image/jpeg") == 0, "report-images",
                       "block %zu kept an image of type %s", i, b->images[k].mime);
            image_bytes += b->images[k].len;
        }
    }
    FUZZ_CHECK(image_bytes <= LIMIT_IMAGE_BYTES_PER_REQUEST, "report-images",
               "%zu bytes of images kept", image_bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[4] = {16, 100, 4096, 1u << 20};
    static const size_t chunks[4] = {SIZE_MAX, 7, 61, 4093};
    struct fuzz_in in = {data, size};
    uint8_t cfg0 = fuzz_u8(&in), cfg1 = fuzz_u8(&in);
    size_t cap = caps[cfg0 & 3];
    unsigned nblocks = ((cfg0 >> 3) & 7) + 1;
    size_t chunk = chunks[cfg1 & 3];
    size_t out_len = fuzz_u16(&in), err_len = fuzz_u16(&in);
    if (out_len > in.left)
        out_len = in.left;
    const uint8_t *out_bytes = in.p;
    in.p += out_len;
    in.left -= out_len;
    if (err_len > in.left)
        err_len = in.left;
    const uint8_t *err_bytes = in.p;
    in.p += err_len;
    in.left -= err_len;

    make_request(nblocks);
    struct fake_worker w;
    memset(&w, 0, sizeof(w));
    w.state = F_BUSY;
    w.end_kind = cfg0 >> 6;
    w.job.kind = JOB_EXECUTE;
    w.job.req = &req_of[nblocks];
    w.job.settings.deadline_ms = 30000;
    w.job.settings.output_cap = cap;
    w.job.settings.failed_stdout = (cfg0 & 4) ? FAILED_STDOUT_MERGE : FAILED_STDOUT_SPLIT;
    /* job_attach. */
    w.job.res = calloc(1, sizeof(*w.job.res));
    if (!w.job.res || !(w.job.res->blocks = calloc(nblocks, sizeof(struct block_result))))
        abort();
    w.job.res->nblocks = nblocks;
    /* worker_start_job: the capture files are marked when the job starts (empty); the
     * worker writes to them while it runs. */
    w.out_fd = memfd_new("stdout");
    w.err_fd = memfd_new("stderr");
    job_mark_captures(&w.job, w.out_fd, w.err_fd);
    write_all(w.out_fd, out_bytes, out_len);
    write_all(w.err_fd, err_bytes, err_len);
    /* worker_set_state(W_BUSY): what a busy worker may send at once. */
    size_t limit = (size_t)LIMIT_IMAGE_BYTES_PER_REQUEST + 2 * cap + LIMIT_IPC_FRAMING_BYTES;
    ipc_reader_init(&w.rd, limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("harness: socketpair");
        abort();
    }
    w.sock = sv[0];
    const uint8_t *stream = in.p;
    size_t left = in.left, off = 0;
    int shut = 0;
    while (w.state == F_BUSY) {
        if (off < left) {
            size_t n = left - off < chunk ? left - off : chunk;
            ssize_t k = write(sv[1], stream + off, n);
            if (k > 0)
                off += (size_t)k;
            else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                perror("harness: write to the socket");
                abort();
            }
        } else if (!shut) {
            shutdown(sv[1], SHUT_WR);
            shut = 1;
        }
        if (worker_read(&w))
            break;
    }
    close(sv[0]);
    close(sv[1]);

    check_result(w.job.res, cap);
    size_t len = 0;
    char *reply = wire_encode_execute(echo_of[nblocks], w.job.res, &len);
    fuzz_check_json_output("report-reply", "wire_encode_execute", reply, len, 1);
    free(reply);

    exec_result_free(w.job.res);
    ipc_reader_release(&w.rd);
    close(w.out_fd);
    close(w.err_fd);
    return 0;
}
