/* The one log line per request: a JSON object on stderr at level info (--log-level), with
 * the request id, route template, method, status, how its executions ended, its phases
 * and total in milliseconds, its bytes, and the API key's id (never the key). Written
 * with a small escaping writer of its own into a stack buffer: no cJSON (one file per
 * wire format talks to it), no allocation. */
#ifndef PYEXECD_REQUEST_LOG_H
#define PYEXECD_REQUEST_LOG_H

#include <stddef.h>

#include "request_record.h"

/* Writes r's line (nothing below level info). Thread-safe: one write per line. */
void request_log_write(const struct request_record *r);

/* Formats r's line (newline included) into buf; returns its length (at most size - 1;
 * a field that would not fit is left out whole, so the line stays valid JSON). */
size_t request_log_format(const struct request_record *r, long long wall_ms, char *buf,
                          size_t size);

#endif
