/* UTF-8 repair and cutting (server/utf8.c): every byte a worker prints, every error text
 * and every message that quotes a client's bytes goes through utf8_sanitize before it is
 * put in JSON, and output caps cut with utf8_cut.
 *
 * Properties (checked against fuzz/fuzz_util.c's own UTF-8 decoder):
 * - utf8_sanitize's output is valid UTF-8, NUL-terminated at out_len, at most 3 bytes per
 *   input byte, and equal to the input when the input was valid;
 * - utf8_valid_prefix(s, n) is the longest valid prefix: valid itself, and either n or a
 *   point where the next sequence is invalid;
 * - utf8_cut(s, m) cuts at most 3 bytes and never inside a character of text that is
 *   valid: on valid text the cut is valid too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "server/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = NULL;
    size_t out_len = 0;
    int rc = utf8_sanitize(data, size, &out, &out_len);
    FUZZ_CHECK(rc == 0 && out, "utf8-sanitize", "utf8_sanitize failed on %zu bytes", size);
    if (!out)
        return 0;
    FUZZ_CHECK(out[out_len] == '\0', "utf8-sanitize", "output not NUL-terminated");
    FUZZ_CHECK(out_len <= 3 * size, "utf8-sanitize", "%zu bytes grew to %zu", size, out_len);
    FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)out, out_len), "utf8-sanitize-valid",
               "the repaired text is not valid UTF-8");
    int valid = fuzz_utf8_valid(data, size);
    if (valid)
        FUZZ_CHECK(out_len == size && memcmp(out, data, size) == 0, "utf8-sanitize-identity",
                   "valid text was changed");
    free(out);

    size_t k = utf8_valid_prefix(data, size);
    FUZZ_CHECK(k <= size && fuzz_utf8_valid(data, k), "utf8-prefix",
               "utf8_valid_prefix gave %zu of %zu, not a valid prefix", k, size);
    FUZZ_CHECK((k == size) == valid, "utf8-prefix",
               "utf8_valid_prefix says %zu of %zu, the text is %svalid", k, size,
               valid ? "" : "in");
    if (k < size) {
        /* The next character is invalid: no valid sequence of 1 to 4 bytes starts there. */
        for (size_t l = 1; l <= 4 && k + l <= size; l++)
            FUZZ_CHECK(!fuzz_utf8_valid(data + k, l), "utf8-prefix",
                       "utf8_valid_prefix stopped at %zu before a valid sequence", k);
    }

    /* Cuts, at a few points of the valid prefix and of the whole text. */
    size_t points[6] = {size, k, k ? k - 1 : 0, k > 1 ? k - 2 : 0, k > 2 ? k - 3 : 0,
                        size >= 2 ? (size_t)(data[0] | data[1] << 8) % (size + 1) : 0};
    for (size_t i = 0; i < 6; i++) {
        size_t m = points[i];
        size_t c = utf8_cut(data, m);
        FUZZ_CHECK(c <= m && m - c <= 3, "utf8-cut", "utf8_cut(%zu) = %zu", m, c);
        if (m <= k)
            FUZZ_CHECK(fuzz_utf8_valid(data, c), "utf8-cut-valid",
                       "utf8_cut(%zu) = %zu splits a character of valid text", m, c);
    }
    return 0;
}
