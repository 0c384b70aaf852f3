/* What the wire-format files (server/wire.c, server/gemini_wire.c, server/openai_wire.c:
 * the files that own cJSON) share. Defined in server/wire.c. */
#ifndef PYEXECD_WIRE_JSON_H
#define PYEXECD_WIRE_JSON_H

#include <stddef.h>

#include "execution.h"

struct cJSON;

/* Checks a body before cJSON sees it: no NUL characters, raw or escaped (cJSON 1.7.15
 * ends a string at an escaped NUL, so different code would run than was sent), and at
 * most max_values JSON values (a body of millions of tiny values would make the parser
 * allocate far more than the body). Returns NULL if acceptable, else why not. */
const char *wire_precheck_body(const char *s, size_t n, size_t max_values);

/* Adds a string member of n bytes of valid UTF-8 that may hold NUL characters (which
 * cJSON's C strings cannot carry). Returns the item, or NULL when out of memory. */
struct cJSON *wire_add_text(struct cJSON *obj, const char *name, const char *s, size_t n);

/* "OUTCOME_OK" and the others, as the API writes them. */
const char *wire_outcome_name(enum outcome o);

/* RFC 3339 UTC with milliseconds, as Google APIs write timestamps. */
void wire_rfc3339(long long ms, char *buf, size_t len);

#endif
