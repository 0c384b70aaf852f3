#include "request_log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/log.h"
#include "clock.h"

/* A JSON object being written into a fixed buffer. */
struct line {
    char *buf;
    size_t len, size;
    int fields;
};

/* Appends n bytes if they fit (with room for the closing "}\n" and the NUL); returns 0,
 * or -1 (nothing appended). */
static int append(struct line *l, const char *s, size_t n)
{
    if (n + 3 > l->size - l->len)
        return -1;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return 0;
}

/* "name": as the start of a field, after a comma when one came before. */
static int key(struct line *l, const char *name)
{
    char k[48];
    int n = snprintf(k, sizeof(k), "%s\"%s\":", l->fields ? "," : "", name);
    if (n < 0 || (size_t)n >= sizeof(k) || append(l, k, (size_t)n) < 0)
        return -1;
    l->fields++;
    return 0;
}

/* A string field, escaped: quote, backslash and control characters (what a client's
 * method or a key file's id could hold; neither can end the line). Byte by byte into the
 * buffer: this runs for every request. */
static void str(struct line *l, const char *name, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    size_t mark = l->len;
    int fields = l->fields;
    if (key(l, name) < 0 || append(l, "\"", 1) < 0)
        goto cut;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        char esc[6] = {'\\', (char)*p};
        size_t n = 2;
        if (*p < 0x20 || *p == 0x7f) {
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            n = 6;
        } else if (*p != '"' && *p != '\\') {
            esc[0] = (char)*p;
            n = 1;
        }
        if (append(l, esc, n) < 0)
            goto cut;
    }
    if (append(l, "\"", 1) == 0)
        return;
cut:
    l->len = mark;   /* the whole field or nothing */
    l->fields = fields;
}

/* A number (or true/false) field, written as text already valid JSON. */
static void raw(struct line *l, const char *name, const char *text)
{
    size_t mark = l->len;
    int fields = l->fields;
    if (key(l, name) < 0 || append(l, text, strlen(text)) < 0) {
        l->len = mark;
        l->fields = fields;
    }
}

static void num(struct line *l, const char *name, unsigned long long v)
{
    char t[24];
    snprintf(t, sizeof(t), "%llu", v);
    raw(l, name, t);
}

/* Milliseconds with microseconds, from nanoseconds. */
static void ms(struct line *l, const char *name, long long ns)
{
    char t[32];
    if (ns < 0)
        ns = 0;
    snprintf(t, sizeof(t), "%lld.%03lld", ns / 1000000, ns / 1000 % 1000);
    raw(l, name, t);
}

size_t request_log_format(const struct request_record *r, long long wall, char *buf,
                          size_t size)
{
    struct line l = {.buf = buf, .size = size};
    if (size < 4) {
        if (size)
            buf[0] = '\0';
        return 0;
    }
    append(&l, "{", 1);
    char when[40];
    time_t secs = (time_t)(wall / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03lldZ", wall % 1000);
    str(&l, "time", when);
    str(&l, "level", "info");
    str(&l, "msg", "request");
    str(&l, "requestId", r->request_id);
    str(&l, "method", r->method);
    str(&l, "route", route_name(r->route));
    num(&l, "status", (unsigned long long)(r->status > 0 ? r->status : 0));
    if (r->aborted)
        raw(&l, "aborted", "true");
    if (r->exec.executions) {
        num(&l, "executions", r->exec.executions);
        str(&l, "outcome", r->exec.outcome ? exec_outcome_name(r->exec.outcome) : "error");
        const char *limit = exec_limit_name(r->exec.limit);
        if (limit)
            str(&l, "limit", limit);
        ms(&l, "queueMs", r->exec.queue_ns);
        ms(&l, "workerStartMs", r->exec.worker_start_ns);
        ms(&l, "runMs", r->exec.run_ns);
    }
    if (r->encode_ns)
        ms(&l, "encodeMs", r->encode_ns);
    ms(&l, "totalMs", r->end_ns - r->start_ns);
    num(&l, "bytesIn", r->bytes_in);
    num(&l, "bytesOut", r->bytes_out);
    if (r->key_id)
        str(&l, "keyId", r->key_id);
    /* append() always kept room for these. */
    memcpy(l.buf + l.len, "}\n", 3);
    return l.len + 2;
}

void request_log_write(const struct request_record *r)
{
    if (!log_enabled(LOG_INFO))
        return;   /* nothing formatted at warn and above: no cost beyond this test */
    char buf[1024];
    size_t n = request_log_format(r, wall_ms(), buf, sizeof(buf));
    log_line(LOG_INFO, buf, n);
}
