#define _GNU_SOURCE
#include "http_server.h"

#include "../common/limits.h"
#include "../common/log.h"
#include "clock.h"
#include "request_record.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <strings.h>
#include <unistd.h>

/* A request's record and who holds it: the exchange until libmicrohttpd is done with it,
 * and a streamed reply's producer until it ends (a turn may still write after its client
 * left). The last to let go hands the record to the completed callback. */
struct record_box {
    struct request_record rec;
    atomic_int refs;
};

struct http_exchange {
    struct MHD_Connection *conn;
    struct record_box *box;
    char *method;
    char *path;
    char *body;                 /* NUL-terminated */
    size_t body_len, body_cap;
    size_t held;                /* body bytes counted in bodies_in_flight */
    int too_large;
    int overloaded;             /* refused: its declared body does not fit in the budget */
    const char *framing_error;  /* refused: ambiguous body framing (why; static) */
    int dispatched;             /* the handler has been called */

    pthread_mutex_t lock;       /* guards the fields below */
    int suspended;              /* waiting for the reply with the connection suspended */
    int replied;                /* a reply was given (it may have failed to build) */
    struct MHD_Response *response;   /* the reply, once built */
    unsigned status;
    size_t reply_len;           /* its body's bytes (a stream counts its own) */
    http_produce_fn produce;    /* or: how to build it, on an HTTP thread */
    void *produce_ctx;
};

/* Request body bytes received and held by all connections together: never more than
 * LIMIT_BODIES_IN_FLIGHT. */
static atomic_size_t bodies_in_flight;
/* Exchanges begun and not yet completed (a request read, waiting, or its reply being
 * sent); idle keep-alive connections hold none. A drain waits for this to reach 0. */
static atomic_uint exchanges_open;
/* Set by http_server_drain: no new connections, and every reply closes its connection. */
static atomic_int draining;

static struct MHD_Daemon *daemon_;
static struct http_server_options options;
static int quiesced_fd = -1;   /* the listener, ours to close after MHD_stop_daemon */

static void box_unref(struct record_box *box)
{
    if (!box || atomic_fetch_sub(&box->refs, 1) != 1)
        return;
    if (options.completed)
        options.completed(&box->rec);
    free(box);
}

struct request_record *http_exchange_record(struct http_exchange *ex)
{
    return &ex->box->rec;
}

unsigned long long http_server_bodies_in_flight(void)
{
    return atomic_load(&bodies_in_flight);
}

/* A client's X-Request-Id is kept when it is 1 to LIMIT_REQUEST_ID_BYTES printable ASCII
 * characters without a space, a quote or a backslash: safe to echo in a header and to
 * write in a log line. */
static int request_id_ok(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++) {
        unsigned char c = (unsigned char)id[n];
        if (n >= LIMIT_REQUEST_ID_BYTES || c <= 0x20 || c >= 0x7f || c == '"' ||
            c == '\\' || c == '\'')
            return 0;
    }
    return n > 0;
}

/* The request's id: the client's when sane, else 128 random bits in hex. */
static void set_request_id(struct request_record *rec, const char *given)
{
    if (given && request_id_ok(given)) {
        snprintf(rec->request_id, sizeof(rec->request_id), "%s", given);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16] = {0};
    if (getrandom(raw, sizeof(raw), GRND_NONBLOCK) != (ssize_t)sizeof(raw)) {
        /* No entropy yet (early boot): unique enough within this process. */
        static atomic_ullong seq;
        unsigned long long v = atomic_fetch_add(&seq, 1) ^ (unsigned long long)monotonic_ns();
        memcpy(raw, &v, sizeof(v));
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        rec->request_id[2 * i] = hex[raw[i] >> 4];
        rec->request_id[2 * i + 1] = hex[raw[i] & 15];
    }
    rec->request_id[2 * sizeof(raw)] = '\0';
}

const char *http_exchange_request_id(const struct http_exchange *ex)
{
    return ex->box->rec.request_id;
}

const char *http_exchange_method(const struct http_exchange *ex)
{
    return ex->method;
}

const char *http_exchange_path(const struct http_exchange *ex)
{
    return ex->path;
}

const char *http_exchange_body(const struct http_exchange *ex, size_t *len)
{
    *len = ex->body_len;
    return ex->body ? ex->body : "";
}

int http_exchange_body_too_large(const struct http_exchange *ex)
{
    return ex->too_large;
}

int http_exchange_overloaded(const struct http_exchange *ex)
{
    return ex->overloaded;
}

const char *http_exchange_framing_error(const struct http_exchange *ex)
{
    return ex->framing_error;
}

/* A response for a body (taken over; NULL when out of memory) of content_type (NULL:
 * JSON), with the request's id. */
static struct MHD_Response *make_response(const struct http_exchange *ex, char *body,
                                          size_t len, const char *allow,
                                          const char *content_type)
{
    struct MHD_Response *resp =
        body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) {
        free(body);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            content_type ? content_type : "application/json; charset=UTF-8");
    MHD_add_response_header(resp, HTTP_REQUEST_ID_HEADER, http_exchange_request_id(ex));
    if (allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    return resp;
}

const char *http_exchange_query(const struct http_exchange *ex, const char *name)
{
    return MHD_lookup_connection_value(ex->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_exchange_header(const struct http_exchange *ex, const char *name)
{
    return MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, name);
}

/* Stores what the reply will be and wakes the connection if it waits. */
static void set_reply(struct http_exchange *ex, struct MHD_Response *resp, unsigned status,
                      size_t len, http_produce_fn produce, void *ctx)
{
    int wake;
    pthread_mutex_lock(&ex->lock);
    ex->replied = 1;
    ex->response = resp;
    ex->status = status;
    ex->reply_len = len;
    ex->produce = produce;
    ex->produce_ctx = ctx;
    wake = ex->suspended;
    ex->suspended = 0;
    pthread_mutex_unlock(&ex->lock);
    if (wake)
        MHD_resume_connection(ex->conn);   /* MHD then calls on_access again */
}

void http_exchange_reply(struct http_exchange *ex, int status, char *body, size_t len,
                         const char *allow)
{
    set_reply(ex, make_response(ex, body, len, allow, NULL), (unsigned)status, len, NULL,
              NULL);
}

void http_exchange_reply_typed(struct http_exchange *ex, int status, char *body, size_t len,
                               const char *content_type)
{
    set_reply(ex, make_response(ex, body, len, NULL, content_type), (unsigned)status, len,
              NULL, NULL);
}

void http_exchange_reply_later(struct http_exchange *ex, http_produce_fn produce, void *ctx)
{
    set_reply(ex, NULL, 0, 0, produce, ctx);
}

struct http_stream {
    pthread_mutex_t lock;           /* guards everything below */
    struct MHD_Connection *conn;
    char *buf;                      /* written and not yet sent: buf[off .. len) */
    size_t off, len, cap;
    int ended, aborted;             /* the producer is done (and how) */
    int suspended;                  /* the reader parked the connection for more data */
    int gone;                       /* libmicrohttpd let go of the response */
    int refs;                       /* the producer's handle and the response's */
    struct record_box *box;         /* its request's record: one reference */
};

static void stream_unref(struct http_stream *s)
{
    pthread_mutex_lock(&s->lock);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (last) {
        pthread_mutex_destroy(&s->lock);
        box_unref(s->box);
        free(s->buf);
        free(s);
    }
}

/* MHD_ContentReaderCallback: hands over what was written; with nothing there yet, parks
 * the connection (the prescribed pattern: suspend and return 0) until the producer
 * writes or ends. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct http_stream *s = cls;
    (void)pos;
    ssize_t n;
    pthread_mutex_lock(&s->lock);
    if (s->off < s->len) {
        size_t k = s->len - s->off < max ? s->len - s->off : max;
        memcpy(out, s->buf + s->off, k);
        s->off += k;
        s->box->rec.bytes_out += k;
        if (s->off == s->len)
            s->off = s->len = 0;
        n = (ssize_t)k;
    } else if (s->ended) {
        n = s->aborted ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        s->suspended = 1;
        MHD_suspend_connection(s->conn);
        n = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* MHD_ContentReaderFreeCallback: the response is done with (sent, or the client left). */
static void stream_released(void *cls)
{
    struct http_stream *s = cls;
    pthread_mutex_lock(&s->lock);
    s->gone = 1;
    pthread_mutex_unlock(&s->lock);
    stream_unref(s);
}

/* Wakes a connection the reader parked; call with s->lock held. */
static int stream_wake_locked(struct http_stream *s)
{
    int wake = s->suspended && !s->gone;
    s->suspended = 0;
    return wake;
}

struct http_stream *http_exchange_stream(struct http_exchange *ex, const char *content_type)
{
    struct http_stream *s = calloc(1, sizeof(*s));
    struct MHD_Response *resp = NULL;
    if (s) {
        pthread_mutex_init(&s->lock, NULL);
        s->conn = ex->conn;
        s->refs = 2;
        s->box = ex->box;
        atomic_fetch_add(&s->box->refs, 1);
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, LIMIT_STREAM_BLOCK_BYTES,
                                                 stream_read, s, stream_released);
    }
    if (!resp) {
        if (s) {
            pthread_mutex_destroy(&s->lock);
            if (s->box)
                box_unref(s->box);
        }
        free(s);
        set_reply(ex, NULL, 500, 0, NULL, NULL);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, HTTP_REQUEST_ID_HEADER, http_exchange_request_id(ex));
    set_reply(ex, resp, 200, 0, NULL, NULL);
    return s;
}

int http_stream_write(struct http_stream *s, const void *data, size_t len)
{
    pthread_mutex_lock(&s->lock);
    if (s->gone) {
        pthread_mutex_unlock(&s->lock);
        return -1;
    }
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + len)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b) {
            pthread_mutex_unlock(&s->lock);
            return -1;
        }
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    int wake = stream_wake_locked(s);
    pthread_mutex_unlock(&s->lock);
    if (wake)
        MHD_resume_connection(s->conn);
    return 0;
}

void http_stream_end(struct http_stream *s, int abort)
{
    pthread_mutex_lock(&s->lock);
    s->ended = 1;
    s->aborted = abort;
    int wake = stream_wake_locked(s);
    pthread_mutex_unlock(&s->lock);
    if (wake)
        MHD_resume_connection(s->conn);
    stream_unref(s);
}

/* Sends the reply if there is one, building it first if it was deferred; otherwise parks
 * the connection until there is. A reply that could not be built closes the connection. */
static enum MHD_Result reply_or_wait(struct http_exchange *ex)
{
    pthread_mutex_lock(&ex->lock);
    if (!ex->replied) {
        if (!ex->suspended) {
            ex->suspended = 1;
            MHD_suspend_connection(ex->conn);
        }
        pthread_mutex_unlock(&ex->lock);
        return MHD_YES;
    }
    struct MHD_Response *resp = ex->response;
    unsigned status = ex->status;
    size_t reply_len = ex->reply_len;
    http_produce_fn produce = ex->produce;
    ex->response = NULL;
    ex->produce = NULL;
    pthread_mutex_unlock(&ex->lock);

    if (produce) {
        int st = 500;
        size_t len = 0;
        char *body = produce(ex->produce_ctx, &st, &len);
        resp = make_response(ex, body, len, NULL, NULL);
        status = (unsigned)st;
        reply_len = len;
    }
    if (!resp)
        return MHD_NO;
    ex->box->rec.status = (int)status;
    if (ex->box->rec.method_id != METHOD_HEAD)   /* a HEAD reply sends no body */
        ex->box->rec.bytes_out += reply_len;
    /* After a request whose body's end is in doubt, the bytes that follow are not a
     * request: close the connection rather than read them as one. While draining, every
     * connection closes after its reply, so that its client's next request goes to a
     * server that stays. */
    if ((ex->framing_error || atomic_load(&draining)) &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    /* Which replica answered: what a fleet's operator looks for behind a balancer. */
    if (options.replica_id && options.replica_id[0] &&
        MHD_add_response_header(resp, HTTP_REPLICA_HEADER, options.replica_id) != MHD_YES) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_queue_response(ex->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Whether a body of `declared` bytes fits in what the budget has free now. Nothing is
 * reserved: bytes are counted as they arrive (hold_body). */
static int body_fits(unsigned long long declared)
{
    return declared <= LIMIT_BODIES_IN_FLIGHT - atomic_load(&bodies_in_flight);
}

/* Counts n more received body bytes against the shared budget; 0 (counting nothing)
 * when that would take it past LIMIT_BODIES_IN_FLIGHT. */
static int hold_body(struct http_exchange *ex, size_t n)
{
    size_t held = atomic_load(&bodies_in_flight);
    do {
        if (n > LIMIT_BODIES_IN_FLIGHT - held)
            return 0;
    } while (!atomic_compare_exchange_weak(&bodies_in_flight, &held, held + n));
    ex->held += n;
    return 1;
}

struct framing_headers {
    unsigned content_length, transfer_encoding;
    unsigned other_coding;   /* a Transfer-Encoding that is not exactly "chunked" */
};

static enum MHD_Result count_framing_header(void *cls, enum MHD_ValueKind kind,
                                            const char *key, const char *value)
{
    struct framing_headers *f = cls;
    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        f->content_length++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->transfer_encoding++;
        if (!value || strcasecmp(value, "chunked") != 0)
            f->other_coding++;
    }
    return MHD_YES;
}

/* Why the request's body framing is ambiguous, or NULL. libmicrohttpd takes the first of
 * two Content-Lengths, and Transfer-Encoding over Content-Length; a proxy in front may
 * choose otherwise and take the rest of the body for a second request (smuggling). */
static const char *framing_error(struct MHD_Connection *conn)
{
    struct framing_headers f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_framing_header, &f);
    if (f.content_length > 1)
        return "The request has more than one Content-Length header.";
    if (f.content_length && f.transfer_encoding)
        return "The request has both Content-Length and Transfer-Encoding headers.";
    /* libmicrohttpd decodes only chunked; under any other coding it would wait for a
     * body whose end it cannot know. */
    if (f.transfer_encoding > 1 || f.other_coding)
        return "The only Transfer-Encoding accepted is chunked.";
    return NULL;
}

static enum MHD_Result dispatch(struct http_exchange *ex)
{
    if (!ex->dispatched) {
        ex->dispatched = 1;
        options.handler(ex);
    }
    return reply_or_wait(ex);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    struct http_exchange *ex = *con_cls;
    (void)cls;
    (void)version;

    if (!ex) {
        ex = calloc(1, sizeof(*ex));
        if (!ex)
            return MHD_NO;
        atomic_fetch_add(&exchanges_open, 1);
        ex->conn = conn;
        ex->method = strdup(method);
        ex->path = strdup(url);
        ex->box = calloc(1, sizeof(*ex->box));
        pthread_mutex_init(&ex->lock, NULL);
        *con_cls = ex;
        if (!ex->method || !ex->path || !ex->box)
            return MHD_NO;
        struct request_record *rec = &ex->box->rec;
        atomic_init(&ex->box->refs, 1);
        rec->start_ns = monotonic_ns();
        snprintf(rec->method, sizeof(rec->method), "%s", method);
        rec->method_id = method_id_of(method);
        set_request_id(rec, MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                        HTTP_REQUEST_ID_HEADER));
        /* A request whose body's end is in doubt is refused before reading any of it (and
         * its connection closed after the reply). */
        ex->framing_error = framing_error(conn);
        if (ex->framing_error)
            return dispatch(ex);
        /* A declared length over the limit is refused before reading any of it; so is one
         * that does not fit in what the budget has free now. */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
        if (declared > options.max_body) {
            ex->too_large = 1;
            return dispatch(ex);
        }
        if (!body_fits(declared)) {
            ex->overloaded = 1;
            return dispatch(ex);
        }
        return MHD_YES;
    }

    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (ex->too_large || ex->dispatched)
            return MHD_YES;
        if (ex->body_len + n > options.max_body || !hold_body(ex, n)) {
            /* A chunked body has no declared length, and the budget is shared with the
             * bodies arriving on other connections: either can run out here, mid-upload,
             * where a reply cannot be queued. Close the connection. */
            ex->too_large = 1;
            free(ex->body);
            ex->body = NULL;
            return MHD_NO;
        }
        if (ex->body_len + n + 1 > ex->body_cap) {
            size_t cap = ex->body_cap ? ex->body_cap : 4096;
            while (cap < ex->body_len + n + 1)
                cap *= 2;
            char *b = realloc(ex->body, cap);
            if (!b)
                return MHD_NO;
            ex->body = b;
            ex->body_cap = cap;
        }
        memcpy(ex->body + ex->body_len, upload_data, n);
        ex->body_len += n;
        ex->body[ex->body_len] = '\0';
        return MHD_YES;
    }
    return dispatch(ex);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    struct http_exchange *ex = *con_cls;
    (void)cls;
    (void)conn;
    if (!ex)
        return;
    if (ex->box) {
        ex->box->rec.end_ns = monotonic_ns();
        ex->box->rec.bytes_in = ex->body_len;
        ex->box->rec.aborted = code != MHD_REQUEST_TERMINATED_COMPLETED_OK;
    }
    atomic_fetch_sub(&exchanges_open, 1);
    atomic_fetch_sub(&bodies_in_flight, ex->held);
    if (ex->response)
        MHD_destroy_response(ex->response);
    /* A deferred reply whose client left before it was sent: its producer owns ctx and
     * frees it only when it runs. */
    if (ex->produce) {
        int status;
        size_t len;
        free(ex->produce(ex->produce_ctx, &status, &len));
    }
    pthread_mutex_destroy(&ex->lock);
    box_unref(ex->box);   /* a stream still running keeps it until it ends */
    free(ex->method);
    free(ex->path);
    free(ex->body);
    free(ex);
    *con_cls = NULL;
}

__attribute__((format(printf, 2, 0)))
static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_msg(LOG_WARN, "http: %s", msg);
}

int http_server_start(const struct http_server_options *opt, char *err, size_t errlen)
{
    options = *opt;
    /* poll(), not epoll: with epoll, libmicrohttpd 0.9.75 misses most clients that close
     * in the middle of a body, so their connections (and the bytes they hold of the body
     * budget) stay until the idle timeout (test_bad_input.py test_7). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    /* The logger must come first, or MHD logs the options before it on its own. */
    daemon_ = MHD_start_daemon(flags, 0, NULL, NULL, on_access, NULL,
                               MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
                               MHD_OPTION_LISTEN_SOCKET, opt->listen_fd,
                               MHD_OPTION_THREAD_POOL_SIZE, opt->threads,
                               MHD_OPTION_CONNECTION_LIMIT, opt->connection_limit,
                               MHD_OPTION_CONNECTION_TIMEOUT, opt->idle_timeout_s,
                               MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                               MHD_OPTION_END);
    if (!daemon_) {
        snprintf(err, errlen, "libmicrohttpd failed to start");
        return -1;
    }
    return 0;
}

void http_server_drain(void)
{
    atomic_store(&draining, 1);
    if (daemon_) {
        MHD_socket fd = MHD_quiesce_daemon(daemon_);
        if (fd != MHD_INVALID_SOCKET)
            quiesced_fd = fd;
    }
    /* The socket stops listening now (a new connection is refused rather than left in the
     * listen queue, so a client or a balancer's check tries elsewhere at once), but is
     * closed only after MHD_stop_daemon: MHD's threads may still hold its number. */
    if (quiesced_fd >= 0)
        shutdown(quiesced_fd, SHUT_RDWR);
}

int http_server_draining(void)
{
    return atomic_load(&draining);
}

unsigned http_server_open_exchanges(void)
{
    return atomic_load(&exchanges_open);
}

void http_server_stop(void)
{
    if (daemon_)
        MHD_stop_daemon(daemon_);
    daemon_ = NULL;
    if (quiesced_fd >= 0)
        close(quiesced_fd);
    quiesced_fd = -1;
}
