#define _GNU_SOURCE
#include "turns.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../common/limits.h"
#include "api_keys.h"
#include "block_output.h"
#include "clock.h"
#include "error_reply.h"
#include "exec_sync.h"
#include "gemini_wire.h"
#include "input_types.h"
#include "models.h"
#include "request_record.h"

struct turn {
    struct turn *next;              /* in the runners' queue */
    struct http_exchange *ex;
    struct exec_stats *stats;       /* its request's record's: taken while ex is sure to
                                     * live, kept alive by the stream once there is one */
    enum turn_mode mode;
    const struct model *model;
    struct gen_request req;
    struct api_key *key;            /* the request's (NULL: no key file) */
    struct admission *key_held;     /* one of its executions, from the first code block */

    /* The turn's interpreter, opened at its first code block. */
    char interp[LIMIT_SESSION_ID_BYTES];
    int interp_open;
    int interp_ended;               /* a deadline or crash ended it: later blocks do not run */
    int files_sent;
    unsigned block_deadline_ms;     /* 0: the server's */
    char *last_output;              /* what turn_code_result.output points at */

    /* The answer. */
    int answered;                   /* an error was answered, or the stream cut */
    struct gpart *parts;            /* unary: every part, in order */
    size_t nparts, cap;
    struct http_stream *stream;     /* streams: once the first event is sent */
    struct gpart held;              /* streams: the last part, sent with the next */
    int has_held;
    unsigned events;
    unsigned cut_after;             /* 0: never */
    char response_id[32];
    long long create_time_ms;
    unsigned long long prompt_tokens, candidates_tokens, tool_tokens;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static struct turn *queue_head, *queue_tail;
static unsigned queued, queue_max, nthreads;
static unsigned busy;                /* runners running a turn */
static pthread_t *threads;
static atomic_int stopping;

int turns_stopping(void)
{
    return atomic_load(&stopping);
}

const char *turn_model_name(const struct turn *t)
{
    return t->model->name;
}

/* Random [a-z0-9] text of n characters, as the API's ids are. */
static void random_id(char *out, size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[64];
    if (n > sizeof(raw) || getrandom(raw, n, 0) != (ssize_t)n)
        memset(raw, 0, sizeof(raw));
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
    out[n] = '\0';
}

static void turn_free(struct turn *t)
{
    for (size_t i = 0; i < t->nparts; i++)
        gpart_release(&t->parts[i]);
    free(t->parts);
    if (t->has_held)
        gpart_release(&t->held);
    gen_request_release(&t->req);
    free(t->last_output);
    free(t);
}

static struct gemini_meta meta_of(const struct turn *t)
{
    return (struct gemini_meta){
        .model_version = t->model->name, .response_id = t->response_id,
        .create_time_ms = t->create_time_ms, .prompt_tokens = t->prompt_tokens,
        .candidates_tokens = t->candidates_tokens, .tool_tokens = t->tool_tokens,
    };
}

/* Writes framed text to the stream, starting it first. Returns 0, or -1 when the client
 * has gone. */
static int stream_send(struct turn *t, const char *json, size_t len)
{
    if (!t->stream) {
        t->stream = http_exchange_stream(t->ex, t->mode == TURN_SSE ? "text/event-stream"
                                                                    : "application/json");
        if (!t->stream)
            return -1;
    }
    /* SSE: `data: <one-line JSON>` and a blank line, nothing else (the SDKs refuse event:
     * lines and comments). Without alt=sse: one JSON array of the responses. */
    const char *pre = t->mode == TURN_SSE ? "data: " : t->events == 0 ? "[" : ",\r\n";
    const char *post = t->mode == TURN_SSE ? "\r\n\r\n" : "";
    if (http_stream_write(t->stream, pre, strlen(pre)) < 0 ||
        http_stream_write(t->stream, json, len) < 0 ||
        http_stream_write(t->stream, post, strlen(post)) < 0)
        return -1;
    t->events++;
    return 0;
}

/* Ends the stream: normally, or cut (the connection closes, the body not ended). */
static void stream_end(struct turn *t, int cut)
{
    if (!t->stream)
        return;
    if (!cut && t->mode == TURN_JSON_ARRAY)
        http_stream_write(t->stream, "]", 1);
    http_stream_end(t->stream, cut);
    t->stream = NULL;
}

/* Sends one event holding part p (finish_reason on the last). A stream told to be cut is
 * cut once it has sent its events. Returns 0, or -1 when the turn is over. */
static int send_event(struct turn *t, const struct gpart *p, const char *finish_reason)
{
    struct gemini_meta meta = meta_of(t);
    size_t len;
    char *json = gemini_encode_response(p, 1, finish_reason, &meta, &len);
    int rc = json ? stream_send(t, json, len) : -1;
    free(json);
    if (rc == 0 && t->cut_after && t->events >= t->cut_after)
        rc = -1;
    if (rc < 0) {
        /* Cut as told, or the client has gone: our reference to the stream, let go. */
        stream_end(t, 1);
        t->answered = 1;
    }
    return rc;
}

/* Appends a part (taken over) to the turn. A stream sends a code part at once (its result
 * is sure to follow) and holds any other until the next, so that the last event can
 * carry finishReason. */
static void emit(struct turn *t, struct gpart *p)
{
    unsigned long long tokens = gen_tokens_of_part(p);
    if (p->kind == GPART_RESULT || p->kind == GPART_INLINE_DATA)
        t->tool_tokens += tokens;
    else
        t->candidates_tokens += tokens;
    if (t->answered) {
        gpart_release(p);
        return;
    }
    if (t->mode == TURN_UNARY) {
        if (t->nparts == t->cap) {
            size_t cap = t->cap ? 2 * t->cap : 16;
            struct gpart *grown = realloc(t->parts, cap * sizeof(*grown));
            if (!grown) {
                gpart_release(p);
                turn_fail(t, PX_NOMEM, "Out of memory while building the reply.");
                return;
            }
            t->parts = grown;
            t->cap = cap;
        }
        t->parts[t->nparts++] = *p;
        return;
    }
    if (t->has_held) {
        t->has_held = 0;
        int rc = send_event(t, &t->held, NULL);
        gpart_release(&t->held);
        if (rc < 0) {
            gpart_release(p);
            return;
        }
    }
    if (p->kind == GPART_CODE) {
        send_event(t, p, NULL);
        gpart_release(p);
        return;
    }
    t->held = *p;
    t->has_held = 1;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void turn_text(struct turn *t, const char *text, size_t len)
{
    struct gpart p = {.kind = GPART_TEXT, .text = dup_n(text, len), .text_len = len};
    if (!p.text) {
        turn_fail(t, PX_NOMEM, "Out of memory while building the reply.");
        return;
    }
    emit(t, &p);
}

/* The files the turn's code gets: the last user content's inline data of the types the
 * work dir takes (input_file_0.csv, ...), borrowed from the request. Others (a PDF the
 * model would read) are context only. */
static int attach_files(struct turn *t, struct exec_request *req)
{
    const struct gcontent *last = gen_request_last_user(&t->req);
    size_t n = 0;
    for (size_t i = 0; last && i < last->nparts; i++)
        n += last->parts[i].kind == GPART_INLINE_DATA &&
             input_file_extension(last->parts[i].mime);
    if (!n)
        return 0;
    req->files = calloc(n, sizeof(*req->files));
    if (!req->files)
        return -1;
    for (size_t i = 0; i < last->nparts; i++) {
        const struct gpart *p = &last->parts[i];
        const char *ext = p->kind == GPART_INLINE_DATA ? input_file_extension(p->mime) : NULL;
        if (!ext)
            continue;
        req->files[req->nfiles++] = (struct input_file){
            .ext = ext, .data = p->data, .len = p->data_len};
    }
    return 0;
}

/* Appends the part for a block that did not run (its interpreter was gone). */
static void emit_not_run(struct turn *t, const char *id, struct turn_code_result *out)
{
    size_t n = strlen(block_output_not_run_text);
    struct gpart r = {.kind = GPART_RESULT, .outcome = OUTCOME_FAILED,
                      .text = dup_n(block_output_not_run_text, n), .text_len = n,
                      .id = strdup(id)};
    *out = (struct turn_code_result){.outcome = OUTCOME_FAILED,
                                     .output = block_output_not_run_text, .output_len = n};
    emit(t, &r);
}

/* Appends a block's results (with the code's id) and images, and fills *out. */
static void emit_block(struct turn *t, struct block_result *b, const char *id,
                       struct turn_code_result *out)
{
    size_t total = 0;
    for (size_t e = 0; e < b->nentries; e++)
        total += b->entries[e].output_len;
    free(t->last_output);
    t->last_output = malloc(total + 1);
    size_t o = 0;
    *out = (struct turn_code_result){.outcome = OUTCOME_OK, .images = (unsigned)b->nimages};
    for (size_t e = 0; e < b->nentries; e++) {
        struct result_entry *en = &b->entries[e];
        if (t->last_output && en->output) {
            memcpy(t->last_output + o, en->output, en->output_len);
            o += en->output_len;
        }
        out->outcome = en->outcome;
        struct gpart r = {.kind = GPART_RESULT, .outcome = en->outcome, .text = en->output,
                          .text_len = en->output_len, .id = strdup(id)};
        en->output = NULL;   /* the part owns it now */
        emit(t, &r);
    }
    if (t->last_output)
        t->last_output[o] = '\0';
    out->output = t->last_output ? t->last_output : "";
    out->output_len = t->last_output ? o : 0;
    for (size_t k = 0; k < b->nimages; k++) {
        struct gpart img = {.kind = GPART_INLINE_DATA, .mime = b->images[k].mime,
                            .data = b->images[k].data, .data_len = b->images[k].len};
        b->images[k].mime = NULL;
        b->images[k].data = NULL;
        emit(t, &img);
    }
}

enum px_result turn_code(struct turn *t, const char *code, size_t len,
                         struct turn_code_result *out)
{
    char id[9], msg[512];
    if (t->answered)
        return PX_UNAVAILABLE;
    if (!t->key_held && t->key) {
        /* The turn runs code from here on: one of its key's executions, to its end (taken
         * before the code part is sent, so that a refused unary or not yet started turn
         * is a plain 429). */
        int refused;
        t->key_held = api_key_take(t->key, KEY_EXECUTIONS, &refused);
        if (refused) {
            api_key_refusal(t->key, KEY_EXECUTIONS, msg, sizeof(msg));
            turn_fail(t, PX_KEY_LIMIT, msg);
            return PX_KEY_LIMIT;
        }
    }
    random_id(id, 8);
    struct gpart c = {.kind = GPART_CODE, .text = dup_n(code, len), .text_len = len,
                      .id = strdup(id)};
    if (!c.text || !c.id) {
        gpart_release(&c);
        turn_fail(t, PX_NOMEM, "Out of memory while building the reply.");
        return PX_NOMEM;
    }
    emit(t, &c);
    if (t->answered)
        return PX_UNAVAILABLE;
    if (t->interp_ended) {
        emit_not_run(t, id, out);
        return t->answered ? PX_UNAVAILABLE : PX_OK;
    }
    char *codes[1] = {(char *)code};
    size_t lens[1] = {len};
    struct exec_request req = {.codes = codes, .code_lens = lens, .ncodes = 1,
                               .deadline_ms = t->block_deadline_ms,
                               .fidelity = t->req.fidelity, .stats = t->stats};
    if (!t->files_sent && attach_files(t, &req) < 0) {
        turn_fail(t, PX_NOMEM, "Out of memory while starting the execution.");
        return PX_NOMEM;
    }
    t->files_sent = 1;
    struct exec_result *res = NULL;
    enum px_result r;
    if (t->interp_open) {
        r = exec_sync_run(t->interp, &req, &res, msg, sizeof(msg));
    } else {
        /* The turn's first block makes its interpreter in the same step. */
        r = exec_sync_start(t->interp, &req, &res, msg, sizeof(msg));
        t->interp_open = t->interp[0] != '\0';
    }
    free(req.files);   /* the data stays the request's */
    if (r == PX_NOT_FOUND) {
        /* The interpreter ended between blocks (its worker died): later code cannot run
         * in it, and a fresh one would have lost the turn's state. */
        t->interp_ended = 1;
        t->interp_open = 0;
        emit_not_run(t, id, out);
        return t->answered ? PX_UNAVAILABLE : PX_OK;
    }
    if (r != PX_OK) {
        turn_fail(t, r, msg);
        return r;
    }
    if (res->session_ended) {
        t->interp_ended = 1;
        t->interp_open = 0;
    }
    emit_block(t, &res->blocks[0], id, out);
    exec_result_free(res);
    return t->answered ? PX_UNAVAILABLE : PX_OK;
}

/* Sends the held part and an {"error": ...} event, and ends the stream. */
static void fail_stream(struct turn *t, char *body, size_t len)
{
    if (t->has_held) {
        t->has_held = 0;
        send_event(t, &t->held, NULL);
        gpart_release(&t->held);
    }
    if (!t->answered && body)
        stream_send(t, body, len);
    stream_end(t, 0);
}

void turn_fail_as(struct turn *t, int http, const char *status, const char *message,
                  const char *retry_delay)
{
    if (t->answered)
        return;
    if (!t->stream) {
        reply_google_error(t->ex, http, status, message, retry_delay);
    } else {
        size_t len;
        char *body = error_body(http, status, message, retry_delay, &len);
        fail_stream(t, body, len);
        free(body);
    }
    t->answered = 1;
}

void turn_fail(struct turn *t, enum px_result r, const char *message)
{
    if (t->answered)
        return;
    if (!t->stream) {
        reply_error(t->ex, r, message, NULL);
    } else {
        size_t len;
        char *body = error_body_for(r, message, &len);
        fail_stream(t, body, len);
        free(body);
    }
    t->answered = 1;
}

void turn_set_block_deadline(struct turn *t, unsigned ms)
{
    t->block_deadline_ms = ms;
}

void turn_cut_after(struct turn *t, unsigned events)
{
    t->cut_after = events;
}

/* After the backend: the whole reply, or the stream's last event with finishReason. */
static void finish(struct turn *t)
{
    static const char nothing[] = "(The model returned no content.)";
    if (t->answered)
        return;
    if (t->mode == TURN_UNARY ? t->nparts == 0 : !t->has_held)
        turn_text(t, nothing, sizeof(nothing) - 1);
    if (t->answered)
        return;
    if (t->mode != TURN_UNARY) {
        if (t->has_held) {
            t->has_held = 0;
            send_event(t, &t->held, "STOP");
            gpart_release(&t->held);
        }
        stream_end(t, 0);
        t->answered = 1;
        return;
    }
    if (t->cut_after) {
        /* A cut unary reply: the connection closes with nothing sent. */
        http_exchange_reply(t->ex, 500, NULL, 0, NULL);
        t->answered = 1;
        return;
    }
    struct gemini_meta meta = meta_of(t);
    size_t len;
    char *body = gemini_encode_response(t->parts, t->nparts, "STOP", &meta, &len);
    if (!body) {
        turn_fail(t, PX_NOMEM, "Out of memory while building the reply.");
        return;
    }
    http_exchange_reply(t->ex, 200, body, len, NULL);
    t->answered = 1;
}

static void run_turn(struct turn *t)
{
    t->create_time_ms = wall_ms();
    t->prompt_tokens = gen_tokens_of_request(&t->req);
    random_id(t->response_id, 22);
    t->model->backend->run(t->model->state, t, &t->req);
    finish(t);
    if (t->interp_open)
        exec_sync_close(t->interp);
    if (t->key_held)   /* after its interpreter is gone */
        admission_release(t->key_held);
    t->key_held = NULL;
}

static void *runner_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (!queue_head && !atomic_load(&stopping))
            pthread_cond_wait(&wake, &lock);
        struct turn *t = queue_head;
        if (t) {
            queue_head = t->next;
            if (!queue_head)
                queue_tail = NULL;
            queued--;
            busy++;
        }
        pthread_mutex_unlock(&lock);
        if (!t)
            return NULL;
        if (atomic_load(&stopping))
            turn_fail(t, PX_SHUTTING_DOWN, "The server is shutting down.");
        else
            run_turn(t);
        turn_free(t);
        pthread_mutex_lock(&lock);
        busy--;
        pthread_mutex_unlock(&lock);
    }
}

int turns_start(unsigned n, unsigned queue, char *err, size_t errlen)
{
    threads = calloc(n, sizeof(*threads));
    if (!threads) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    queue_max = queue;
    for (nthreads = 0; nthreads < n; nthreads++) {
        int e = pthread_create(&threads[nthreads], NULL, runner_main, NULL);
        if (e) {
            snprintf(err, errlen, "cannot start the turn runners: %s", strerror(e));
            return -1;
        }
    }
    return 0;
}

enum px_result turns_submit(struct http_exchange *ex, const struct model *model,
                            struct gen_request *req, enum turn_mode mode,
                            struct api_key *key)
{
    struct turn *t = calloc(1, sizeof(*t));
    if (!t) {
        gen_request_release(req);
        return PX_NOMEM;
    }
    t->ex = ex;
    t->stats = &http_exchange_record(ex)->exec;
    t->key = key;
    t->model = model;
    t->mode = mode;
    t->req = *req;
    memset(req, 0, sizeof(*req));
    enum px_result r = PX_OK;
    pthread_mutex_lock(&lock);
    if (atomic_load(&stopping))
        r = PX_SHUTTING_DOWN;
    else if (queued >= queue_max + (nthreads - busy))
        r = PX_QUEUE_FULL;   /* turns waiting for an idle runner to wake count as running */
    else {
        if (queue_tail)
            queue_tail->next = t;
        else
            queue_head = t;
        queue_tail = t;
        queued++;
        pthread_cond_signal(&wake);
    }
    pthread_mutex_unlock(&lock);
    if (r != PX_OK)
        turn_free(t);
    return r;
}

void turns_stop(void)
{
    pthread_mutex_lock(&lock);
    atomic_store(&stopping, 1);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
}

void turns_join(void)
{
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    threads = NULL;
    nthreads = 0;
}
