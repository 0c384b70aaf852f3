#define _GNU_SOURCE
#include "block_output.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/limits.h"
#include "text_buf.h"
#include "utf8.h"

const char block_output_not_run_text[] =
    "This code block did not run: the interpreter stopped in an earlier block of this "
    "request.\n";

/* Appends the bytes of a capture range, at most cap of them, cut on a character boundary
 * and made valid UTF-8, then the truncation notice if anything was left out. */
static void append_capture(struct text_buf *t, const struct capture_range *r, size_t cap,
                           int worker_truncated, int *truncated)
{
    if (r->fd < 0 || r->end <= r->start)
        goto notice;
    size_t want = (size_t)(r->end - r->start);
    int cut = want > cap;
    if (cut)
        want = cap;
    unsigned char *raw = malloc(want ? want : 1);
    if (!raw) {
        t->failed = 1;
        return;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(r->fd, raw + got, want - got, r->start + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (cut)
        got = utf8_cut(raw, got);
    char *clean;
    size_t clean_len;
    if (utf8_sanitize(raw, got, &clean, &clean_len) < 0) {
        free(raw);
        t->failed = 1;
        return;
    }
    free(raw);
    text_buf_add(t, clean, clean_len);
    free(clean);
    worker_truncated |= cut;
notice:
    if (worker_truncated) {
        char note[128];
        int n = worker_truncated == TRUNCATED_FULL
            ? snprintf(note, sizeof(note), "\n[output truncated: this request's output file "
                       "is full]\n")
            : snprintf(note, sizeof(note), "\n[output truncated: more than %zu bytes were "
                       "written]\n", cap);
        text_buf_add(t, note, (size_t)n);
        *truncated = 1;
    }
}

/* Appends text from the worker (UTF-8, repaired if it is not). Past `cap` bytes the middle
 * is cut, keeping the head (str(exc)) and the tail (where the traceback ends with the
 * exception's name); the cut comes first, so a forged, enormous text is never copied
 * whole. */
static void append_utf8(struct text_buf *t, const char *s, size_t n, size_t cap, int *truncated)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t head = n, tail_from = n;
    if (n > cap) {
        head = utf8_cut(u, cap / 2);
        tail_from = n - cap / 2;
        while (tail_from < n && (u[tail_from] & 0xC0) == 0x80)
            tail_from++;   /* start the tail on a character boundary */
    }
    char *clean;
    size_t clean_len;
    if (utf8_sanitize(u, head, &clean, &clean_len) < 0) {
        t->failed = 1;
        return;
    }
    text_buf_add(t, clean, clean_len);
    free(clean);
    if (tail_from < n || head < n) {
        char note[96];
        int k = snprintf(note, sizeof(note), "\n[output truncated: %zu bytes cut]\n",
                         tail_from - head);
        text_buf_add(t, note, (size_t)k);
        if (utf8_sanitize(u + tail_from, n - tail_from, &clean, &clean_len) < 0) {
            t->failed = 1;
            return;
        }
        text_buf_add(t, clean, clean_len);
        free(clean);
        *truncated = 1;
    }
}

/* Moves the text into an entry; an empty text means an absent output field. */
static int set_entry(struct block_result *out, enum outcome outcome, struct text_buf *t)
{
    if (t->failed) {
        free(t->s);
        return -1;
    }
    struct result_entry *e = &out->entries[out->nentries++];
    e->outcome = outcome;
    e->output = t->len ? t->s : NULL;
    e->output_len = t->len;
    if (!t->len)
        free(t->s);
    memset(t, 0, sizeof(*t));
    return 0;
}

/* Bytes the next stream of the block may keep, given what the block holds so far. */
static size_t stream_cap(const struct block_output_input *in, const struct block_result *out,
                         const struct text_buf *t)
{
    size_t used = t->len;
    for (size_t i = 0; i < out->nentries; i++)
        used += out->entries[i].output_len;
    size_t left = in->budget > used ? in->budget - used : 0;
    size_t cap = left < in->cap ? left : in->cap;
    size_t floor = LIMIT_OUTPUT_BYTES_FLOOR < in->cap ? LIMIT_OUTPUT_BYTES_FLOOR : in->cap;
    return cap > floor ? cap : floor;
}

int block_output_build(struct block_result *out, const struct block_output_input *in,
                       int *truncated)
{
    struct text_buf t = {0};
    /* A block rebuilt after a failure half-way replaces what was there. */
    for (size_t i = 0; i < out->nentries; i++)
        free(out->entries[i].output);
    out->nentries = 0;

    switch (in->end) {
    case BLOCK_END_OK:
        append_capture(&t, &in->out, stream_cap(in, out, &t), in->out_truncated, truncated);
        return set_entry(out, OUTCOME_OK, &t);

    case BLOCK_END_DEADLINE:
        /* What it printed before the kill: partial output, as the real service allows. */
        append_capture(&t, &in->out, stream_cap(in, out, &t), in->out_truncated, truncated);
        return set_entry(out, OUTCOME_DEADLINE_EXCEEDED, &t);

    case BLOCK_END_NOT_RUN:
        text_buf_add(&t, block_output_not_run_text, strlen(block_output_not_run_text));
        return set_entry(out, OUTCOME_FAILED, &t);

    case BLOCK_END_EXCEPTION:
    case BLOCK_END_CRASH:
        /* stdout printed before the failure: its own OK result first (split), or at the
         * head of the failure text (merge). */
        append_capture(&t, &in->out, stream_cap(in, out, &t), in->out_truncated, truncated);
        if (in->failed_stdout == FAILED_STDOUT_SPLIT && t.len > 0) {
            if (set_entry(out, OUTCOME_OK, &t) < 0)
                return -1;
        }
        /* Then: stderr so far, str(exc), newline, traceback (or the crash reason). */
        append_capture(&t, &in->err, stream_cap(in, out, &t), in->err_truncated, truncated);
        append_utf8(&t, in->error_text ? in->error_text : "", in->error_len,
                    stream_cap(in, out, &t),
                    truncated);
        return set_entry(out, OUTCOME_FAILED, &t);
    }
    return -1;
}
