#include "metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/limits.h"
#include "text_buf.h"

#ifndef PYEXECD_VERSION
#define PYEXECD_VERSION "0.1.0"
#endif

/* Histogram bucket bounds, in seconds: from a pooled worker's sub-millisecond start to
 * the 30 s deadline and a minute past it. */
static const double bucket_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                   0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NBUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))

/* Counts per bucket (not cumulative; the last one is past every bound, +Inf), and the sum.
 * The count is the buckets' total, read in one pass, so +Inf always equals _count. */
struct histogram {
    atomic_ullong bucket[NBUCKETS + 1];
    atomic_ullong sum_ns;
};

static void observe(struct histogram *h, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    double s = (double)ns / 1e9;
    size_t i = 0;
    while (i < NBUCKETS && s > bucket_le[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (unsigned long long)ns, memory_order_relaxed);
}

/* The status codes pyexecd sends (0: the connection closed with no reply); any other
 * (a script model's injected fault can choose one) counts as "other". */
static const int codes[] = {0, 200, 400, 401, 403, 404, 405, 408, 409, 413, 429, 500, 501,
                            502, 503, 504};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

static size_t code_index(int status)
{
    for (size_t i = 0; i < NCODES; i++)
        if (codes[i] == status)
            return i;
    return NCODES;
}

/* outcome 0 (answered with an error) and the three of enum outcome. */
#define NOUTCOMES 4
#define NLIMITS (LIMIT_HIT_SYSCALL + 1)

static atomic_ullong executions[NOUTCOMES];
static atomic_ullong limits[NLIMITS];
static struct histogram phases[PHASE_COUNT];
static atomic_ullong requests[ROUTE_COUNT][METHOD_COUNT][NCODES + 1];
static struct histogram request_seconds[ROUTE_COUNT];
static atomic_ullong bytes_in, bytes_out;

static void inc(atomic_ullong *c, unsigned long long n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static unsigned long long get(atomic_ullong *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void metrics_phase(enum metrics_phase p, int64_t ns)
{
    if ((unsigned)p < PHASE_COUNT)
        observe(&phases[p], ns);
}

void metrics_execution(enum outcome outcome, enum limit_hit limit, int64_t queue_ns,
                       int64_t worker_start_ns, int64_t run_ns)
{
    inc(&executions[(unsigned)outcome < NOUTCOMES ? outcome : 0], 1);
    if (limit != LIMIT_HIT_NONE && (unsigned)limit < NLIMITS)
        inc(&limits[limit], 1);
    observe(&phases[PHASE_QUEUE], queue_ns);
    observe(&phases[PHASE_WORKER_START], worker_start_ns);
    observe(&phases[PHASE_RUN], run_ns);
}

void metrics_request(const struct request_record *r)
{
    unsigned route = (unsigned)r->route < ROUTE_COUNT ? r->route : ROUTE_OTHER;
    unsigned method = (unsigned)r->method_id < METHOD_COUNT ? r->method_id : METHOD_OTHER;
    inc(&requests[route][method][code_index(r->status)], 1);
    observe(&request_seconds[route], r->end_ns - r->start_ns);
    inc(&bytes_in, r->bytes_in);
    inc(&bytes_out, r->bytes_out);
}

static void header(struct text_buf *t, const char *name, const char *type, const char *help)
{
    text_buf_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(struct text_buf *t, const char *name, const char *help, unsigned long long v)
{
    header(t, name, "gauge", help);
    text_buf_printf(t, "%s %llu\n", name, v);
}

/* One histogram's series: labels is `name="value",` or "" (with its trailing comma). */
static void histogram_series(struct text_buf *t, const char *name, const char *labels,
                             struct histogram *h)
{
    unsigned long long cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += get(&h->bucket[i]);
        text_buf_printf(t, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, bucket_le[i], cum);
    }
    cum += get(&h->bucket[NBUCKETS]);
    text_buf_printf(t, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, cum);
    size_t n = strlen(labels);
    /* The labels without their trailing comma, for _sum and _count. */
    text_buf_printf(t, "%s_sum%s%.*s%s %.9f\n", name, n ? "{" : "", (int)(n ? n - 1 : 0), labels,
        n ? "}" : "", (double)get(&h->sum_ns) / 1e9);
    text_buf_printf(t, "%s_count%s%.*s%s %llu\n", name, n ? "{" : "", (int)(n ? n - 1 : 0), labels,
        n ? "}" : "", cum);
}

static const char *const phase_names[PHASE_COUNT] = {"queue", "worker_start", "run",
                                                     "encode"};

char *metrics_render(const struct metrics_gauges *g, size_t *len)
{
    struct text_buf t = {0};
    const struct health_report *h = g->health;

    header(&t, "pyexecd_build_info", "gauge", "The running pyexecd: always 1, its version "
           "as a label.");
    text_buf_printf(&t, "pyexecd_build_info{version=\"%s\"} 1\n", PYEXECD_VERSION);

    header(&t, "pyexecd_executions_total", "counter", "Executions that ran, by outcome: the "
           "first result that is not OUTCOME_OK, else OUTCOME_OK; error: answered with an "
           "error instead of results (its worker or the zygote was lost).");
    for (unsigned o = 0; o < NOUTCOMES; o++)
        text_buf_printf(&t, "pyexecd_executions_total{outcome=\"%s\"} %llu\n",
            o ? exec_outcome_name((enum outcome)o) : "error", get(&executions[o]));

    header(&t, "pyexecd_limit_reached_total", "counter", "Executions cut short by a limit, "
           "by the limit (as executionMetadata.limitReached names it).");
    for (unsigned l = 1; l < NLIMITS; l++)
        text_buf_printf(&t, "pyexecd_limit_reached_total{limit=\"%s\"} %llu\n",
            exec_limit_name((enum limit_hit)l), get(&limits[l]));

    header(&t, "pyexecd_phase_seconds", "histogram", "Where an execution's time goes: queue "
           "(waiting for a --workers slot), worker_start (a slot free, waiting for a "
           "sandboxed worker), run (on its worker, to its answer), encode (the reply's "
           "JSON).");
    for (unsigned p = 0; p < PHASE_COUNT; p++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "phase=\"%s\",", phase_names[p]);
        histogram_series(&t, "pyexecd_phase_seconds", labels, &phases[p]);
    }

    gauge(&t, "pyexecd_workers_busy", "Workers running an execution (counted against "
          "--workers).", h->running);
    gauge(&t, "pyexecd_workers_pooled", "Workers forked, sandboxed and waiting for a job.",
          h->pool_ready);
    gauge(&t, "pyexecd_workers_starting", "Workers being forked or sandboxing themselves.",
          h->pool_starting);
    gauge(&t, "pyexecd_workers_max", "Executions at once (--workers).", h->workers_max);
    gauge(&t, "pyexecd_queue_depth", "Requests waiting for a worker.", h->queue_depth);
    gauge(&t, "pyexecd_queue_max", "Requests that may wait (--queue).", h->queue_max);
    gauge(&t, "pyexecd_sessions", "Sessions alive.", h->sessions);
    gauge(&t, "pyexecd_sessions_max", "Sessions that may be alive at once (--max-sessions).",
          h->sessions_max);
    gauge(&t, "pyexecd_zygote_ready", "1 while the zygote is ready to fork workers.",
          h->zygote_state == ZYGOTE_READY);
    header(&t, "pyexecd_zygote_restarts_total", "counter", "Times the zygote was restarted.");
    text_buf_printf(&t, "pyexecd_zygote_restarts_total %u\n", h->zygote_restarts);
    header(&t, "pyexecd_worker_crashes_total", "counter", "Workers that died mid-job of "
           "something other than a deadline.");
    text_buf_printf(&t, "pyexecd_worker_crashes_total %llu\n", h->worker_crashes);

    header(&t, "pyexecd_http_requests_total", "counter", "HTTP requests answered, by route "
           "template (other: no route), method and status code (0: closed with no reply).");
    for (unsigned r = 0; r < ROUTE_COUNT; r++)
        for (unsigned m = 0; m < METHOD_COUNT; m++)
            for (unsigned c = 0; c <= NCODES; c++) {
                unsigned long long v = get(&requests[r][m][c]);
                if (!v)
                    continue;   /* only the series that happened: the set stays small */
                char code[16];
                if (c < NCODES)
                    snprintf(code, sizeof(code), "%d", codes[c]);
                else
                    snprintf(code, sizeof(code), "other");
                text_buf_printf(&t, "pyexecd_http_requests_total{route=\"%s\",method=\"%s\",code=\"%s\"} "
                    "%llu\n", route_name((enum route_id)r), method_name((enum method_id)m),
                    code, v);
            }
    header(&t, "pyexecd_http_request_duration_seconds", "histogram", "HTTP requests from "
           "their first byte to their reply's last, by route template.");
    for (unsigned r = 0; r < ROUTE_COUNT; r++) {
        unsigned long long any = 0;
        for (size_t i = 0; i <= NBUCKETS; i++)
            any += get(&request_seconds[r].bucket[i]);
        if (!any)
            continue;
        char labels[96];
        snprintf(labels, sizeof(labels), "route=\"%s\",", route_name((enum route_id)r));
        histogram_series(&t, "pyexecd_http_request_duration_seconds", labels,
                         &request_seconds[r]);
    }
    header(&t, "pyexecd_http_request_body_bytes_total", "counter", "Request body bytes "
           "received.");
    text_buf_printf(&t, "pyexecd_http_request_body_bytes_total %llu\n", get(&bytes_in));
    header(&t, "pyexecd_http_response_body_bytes_total", "counter", "Reply body bytes sent.");
    text_buf_printf(&t, "pyexecd_http_response_body_bytes_total %llu\n", get(&bytes_out));
    gauge(&t, "pyexecd_http_requests_in_flight", "HTTP requests being read, waiting for "
          "their reply, or having it sent.", g->requests_in_flight);
    char help[128];
    snprintf(help, sizeof(help), "Request body bytes received and held by all connections "
             "(at most %u MiB).", LIMIT_BODIES_IN_FLIGHT >> 20);
    gauge(&t, "pyexecd_http_bodies_in_flight_bytes", help, g->body_bytes_in_flight);

    if (t.failed) {
        free(t.s);
        return NULL;
    }
    *len = t.len;
    return t.s;
}
