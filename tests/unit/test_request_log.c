/* The request log line and the metrics text, without a server: every field escaped so a
 * client's method or a key file's id cannot end the line or forge a field, a field that
 * does not fit left out whole (the line stays one JSON object), and the exposition's
 * histograms cumulative with +Inf equal to their count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/metrics.h"
#include "server/request_log.h"
#include "tests/unit/check.h"

static struct request_record sample(void)
{
    struct request_record r = {0};
    snprintf(r.request_id, sizeof(r.request_id), "req-1");
    snprintf(r.method, sizeof(r.method), "PO\"ST\n\\");
    r.status = 200;
    r.route = ROUTE_SESSION_EXECUTE;
    r.key_id = "ten\"ant";
    r.start_ns = 1000000;
    r.end_ns = 3500000;   /* 2.5 ms */
    r.bytes_in = 12;
    r.bytes_out = 34;
    r.exec = (struct exec_stats){.executions = 1, .outcome = OUTCOME_DEADLINE_EXCEEDED,
                                 .limit = LIMIT_HIT_DEADLINE, .run_ns = 2000000};
    return r;
}

static void test_fields_and_escapes(void)
{
    struct request_record r = sample();
    char buf[1024];
    size_t n = request_log_format(&r, 1700000000123LL, buf, sizeof(buf));
    CHECK(n == strlen(buf));
    CHECK(buf[n - 1] == '\n' && strchr(buf, '\n') == buf + n - 1);   /* one line */
    static const char head[] = "{\"time\":\"2023-11-14T22:13:20.123Z\",\"level\":\"info\","
                               "\"msg\":\"request\",\"requestId\":\"req-1\",";
    CHECK(strncmp(buf, head, sizeof(head) - 1) == 0);
    CHECK(strstr(buf, "\"method\":\"PO\\\"ST\\u000a\\\\\"") != NULL);
    CHECK(strstr(buf, "\"route\":\"/v1/sessions/{id}:execute\",\"status\":200") != NULL);
    CHECK(strstr(buf, "\"outcome\":\"OUTCOME_DEADLINE_EXCEEDED\",\"limit\":\"DEADLINE\"") != NULL);
    CHECK(strstr(buf, "\"runMs\":2.000") != NULL);
    CHECK(strstr(buf, "\"totalMs\":2.500") != NULL);
    CHECK(strstr(buf, "\"bytesIn\":12,\"bytesOut\":34,\"keyId\":\"ten\\\"ant\"}\n") != NULL);
    CHECK(strstr(buf, "encodeMs") == NULL);   /* no encode: left out */
}

/* Without keys and executions, neither keyId nor the execution fields. */
static void test_optional_fields(void)
{
    struct request_record r = sample();
    r.key_id = NULL;
    r.exec = (struct exec_stats){0};
    r.aborted = 1;
    r.status = 0;
    char buf[1024];
    request_log_format(&r, 0, buf, sizeof(buf));
    CHECK(strstr(buf, "keyId") == NULL && strstr(buf, "outcome") == NULL &&
          strstr(buf, "runMs") == NULL);
    CHECK(strstr(buf, "\"status\":0,\"aborted\":true") != NULL);
}

/* A buffer too small for every field: whole fields are left out, the object closed. */
static void test_cut_keeps_json(void)
{
    struct request_record r = sample();
    for (size_t size = 4; size < 400; size += 7) {
        char *buf = malloc(size);
        size_t n = request_log_format(&r, 0, buf, size);
        CHECK(n < size && buf[n] == '\0');
        CHECK(n >= 3 && buf[0] == '{' && strcmp(buf + n - 2, "}\n") == 0);
        CHECK(strstr(buf, ",}") == NULL && strstr(buf, "{,") == NULL);
        /* Every string that opens closes (escapes followed), so the object ends outside
         * one. */
        int in_string = 0;
        for (size_t i = 0; i < n; i++) {
            if (in_string && buf[i] == '\\')
                i++;
            else if (buf[i] == '"')
                in_string = !in_string;
        }
        CHECK(!in_string);
        free(buf);
    }
}

/* The value of a series (its line's start, up to the value): -1 when absent. */
static double value_of(const char *text, const char *series)
{
    char line[256];
    snprintf(line, sizeof(line), "\n%s", series);
    const char *p = strstr(text, line);
    return p ? atof(p + strlen(line)) : -1;
}

static void test_metrics_text(void)
{
    metrics_execution(OUTCOME_OK, LIMIT_HIT_NONE, 1000, 0, 2000000);          /* 2 ms run */
    metrics_execution(OUTCOME_FAILED, LIMIT_HIT_OUTPUT, 1000, 5000000, 90000000000LL);
    metrics_phase(PHASE_ENCODE, 300000);
    struct request_record r = sample();
    metrics_request(&r);
    r.route = (enum route_id)99;     /* out of range: counted as other */
    r.status = 299;                  /* a code not in the list: other */
    metrics_request(&r);
    struct health_report h = {.queue_depth = 3, .running = 1, .sessions = 2};
    struct metrics_gauges g = {.health = &h, .body_bytes_in_flight = 77};
    size_t len = 0;
    char *text = metrics_render(&g, &len);
    CHECK(text && len == strlen(text));
    if (!text)
        return;
    CHECK(value_of(text, "pyexecd_executions_total{outcome=\"OUTCOME_OK\"} ") == 1);
    CHECK(value_of(text, "pyexecd_executions_total{outcome=\"OUTCOME_FAILED\"} ") == 1);
    CHECK(value_of(text, "pyexecd_limit_reached_total{limit=\"OUTPUT_BYTES\"} ") == 1);
    CHECK(value_of(text, "pyexecd_phase_seconds_bucket{phase=\"run\",le=\"0.001\"} ") == 0);
    CHECK(value_of(text, "pyexecd_phase_seconds_bucket{phase=\"run\",le=\"0.0025\"} ") == 1);
    CHECK(value_of(text, "pyexecd_phase_seconds_bucket{phase=\"run\",le=\"60\"} ") == 1);
    CHECK(value_of(text, "pyexecd_phase_seconds_bucket{phase=\"run\",le=\"+Inf\"} ") == 2);
    CHECK(value_of(text, "pyexecd_phase_seconds_count{phase=\"run\"} ") == 2);
    CHECK(value_of(text, "pyexecd_phase_seconds_sum{phase=\"run\"} ") > 90.0);
    CHECK(value_of(text, "pyexecd_phase_seconds_count{phase=\"encode\"} ") == 1);
    CHECK(value_of(text, "pyexecd_queue_depth ") == 3);
    CHECK(value_of(text, "pyexecd_sessions ") == 2);
    CHECK(value_of(text, "pyexecd_http_bodies_in_flight_bytes ") == 77);
    CHECK(value_of(text, "pyexecd_http_requests_total{route=\"/v1/sessions/{id}:execute\","
                         "method=\"other\",code=\"200\"} ") == 1);
    CHECK(value_of(text, "pyexecd_http_requests_total{route=\"other\",method=\"other\","
                         "code=\"other\"} ") == 1);
    CHECK(strstr(text, "# TYPE pyexecd_phase_seconds histogram\n") != NULL);
    CHECK(strstr(text, "# TYPE pyexecd_queue_depth gauge\n") != NULL);
    CHECK(text[len - 1] == '\n');
    free(text);
}

int main(void)
{
    test_fields_and_escapes();
    test_optional_fields();
    test_cut_keeps_json();
    test_metrics_text();
    return check_done();
}
