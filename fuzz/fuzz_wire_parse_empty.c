/* Bodies of the calls that take no fields (POST /v1/sessions, DELETE ...): wire_parse_empty
 * (server/wire.c) on a NUL-terminated copy of the input.
 *
 * Properties: PX_OK or PX_INVALID_ARGUMENT with a message whose error body is valid JSON
 * and UTF-8; and what is accepted is what the contract says: an empty body (JSON
 * whitespace only: space, tab, CR, LF) or one empty JSON object, checked here rather
 * than by cJSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "server/error_reply.h"
#include "server/wire.h"

static int json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Whitespace only, or ws "{" ws "}" ws; after a byte order mark, which RFC 8259 lets a
 * parser ignore. */
static int empty_by_contract(const char *s, size_t n)
{
    size_t i = n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    while (i < n && json_ws(s[i]))
        i++;
    if (i == n)
        return 1;
    if (s[i++] != '{')
        return 0;
    while (i < n && json_ws(s[i]))
        i++;
    if (i == n || s[i++] != '}')
        return 0;
    while (i < n && json_ws(s[i]))
        i++;
    return i == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = fuzz_cstr(data, size);
    char msg[512] = "";
    enum px_result r = wire_parse_empty(body, size, msg, sizeof(msg));
    FUZZ_CHECK(r == PX_OK || r == PX_INVALID_ARGUMENT, "empty-result",
               "wire_parse_empty returned %d", (int)r);
    if (r == PX_OK) {
        FUZZ_CHECK(empty_by_contract(body, size), "empty-strict",
                   "accepted a body that is neither empty nor {} (%zu bytes): %.200s", size,
                   body);
    } else {
        FUZZ_CHECK(msg[0] != '\0', "empty-refusal-message", "a refusal without a message");
        size_t len = 0;
        char *err = error_body_for(r, msg, &len);
        fuzz_check_json_output("empty-error-body", "error_body_for", err, len, 1);
        free(err);
    }
    free(body);
    return 0;
}
