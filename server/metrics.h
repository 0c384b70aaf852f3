/* The Prometheus metrics of GET /metrics: counters and histograms kept in lock-free
 * atomics (each event costs a few relaxed increments, no lock, no allocation), gauges
 * read from the executor's snapshot when scraped, and their text exposition (format
 * 0.0.4, # HELP and # TYPE for each). Labels are bounded sets: route templates, methods,
 * status codes, outcomes, limits, phases; never a path, a session id or an API key's id. */
#ifndef PYEXECD_METRICS_H
#define PYEXECD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "execution.h"
#include "health_report.h"
#include "request_record.h"

enum metrics_phase { PHASE_QUEUE, PHASE_WORKER_START, PHASE_RUN, PHASE_ENCODE, PHASE_COUNT };

/* One execution that ran, answered with results (outcome from exec_result_outcome) or
 * with an error (outcome 0), with the limit it hit and its phases in ns. Thread-safe. */
void metrics_execution(enum outcome outcome, enum limit_hit limit, int64_t queue_ns,
                       int64_t worker_start_ns, int64_t run_ns);

/* One observation of a phase's duration (ns). Thread-safe. */
void metrics_phase(enum metrics_phase p, int64_t ns);

/* A request that is over: counted by route, method and status, its duration and bytes.
 * Thread-safe. */
void metrics_request(const struct request_record *r);

/* What the scrape shows besides the counters: the executor's snapshot (h, with
 * sessions), and the HTTP layer's bodies and exchanges in flight. */
struct metrics_gauges {
    const struct health_report *health;
    unsigned long long body_bytes_in_flight;
    unsigned requests_in_flight;
};

/* The exposition text. Returns a malloc'd NUL-terminated string (caller frees) with its
 * length in *len, or NULL when out of memory. Thread-safe. */
char *metrics_render(const struct metrics_gauges *g, size_t *len);

/* The Content-Type of that text. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
