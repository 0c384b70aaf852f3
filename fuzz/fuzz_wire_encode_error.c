/* Google error bodies, wire_encode_error and wire_encode_error_details (server/wire.c),
 * through error_body_for and error_body (server/error_reply.c) as every error reply is
 * made: the message quotes client bytes (a field name, a MIME type, a base64 prefix), so
 * it is fuzzed as raw bytes; the status and the retry delay are made valid UTF-8 first.
 *
 * Input: u16 HTTP code, u8 result code, u8 retry-delay choice, bytes status, bytes retry
 * delay, then the message: the rest of the input, cut at its first NUL (it is a C
 * string).
 *
 * Properties: each body is one valid JSON text, valid UTF-8 whatever the message's bytes,
 * of the length reported. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "server/error_reply.h"
#include "server/utf8.h"
#include "server/wire.h"

static char *clean(struct fuzz_in *in)
{
    size_t n, len;
    const uint8_t *p = fuzz_bytes(in, 256, &n);
    char *out;
    if (utf8_sanitize(p, n, &out, &len) < 0)
        abort();
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    int code = (int)fuzz_u16(&in) - 1000;
    enum px_result r = (enum px_result)(fuzz_u8(&in) % 16);
    uint8_t retry_choice = fuzz_u8(&in);
    char *status = clean(&in);
    char *retry = clean(&in);
    char *message = fuzz_cstr(in.p, in.left);

    size_t len = 0;
    char *body = wire_encode_error(code, message, status, &len);
    fuzz_check_json_output("error", "wire_encode_error", body, len, 1);
    free(body);

    const char *delay = retry_choice % 3 == 0 ? NULL : retry_choice % 3 == 1 ? "2s" : retry;
    len = 0;
    body = error_body(code, status, message, delay, &len);
    fuzz_check_json_output("error-details", "error_body", body, len, 1);
    free(body);

    len = 0;
    body = error_body_for(r, retry_choice & 1 ? NULL : message, &len);
    fuzz_check_json_output("error-for", "error_body_for", body, len, 1);
    free(body);

    free(status);
    free(retry);
    free(message);
    return 0;
}
