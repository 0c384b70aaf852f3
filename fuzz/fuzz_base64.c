/* base64_decode and base64_encode (server/base64.c): every inlineData and
 * thoughtSignature of a request goes through the decoder, in either alphabet.
 *
 * Properties, besides "no crash, no leak, no UB":
 * - decode(x), when it succeeds, is 3/4 of x's characters without padding (rounded down),
 *   and encode(decode(x)) decodes to the same bytes (the round trip: what the reply
 *   re-encodes is what the client sent);
 * - decode refuses a body whose length leaves a single dangling character;
 * - for any bytes b: encode(b) is standard base64 of the documented length, decodes to
 *   b, and so do its URL-safe spelling (- and _) and the same without padding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "server/base64.h"

static void check_decodes_to(const char *what, const char *enc, size_t n,
                             const uint8_t *want, size_t want_len)
{
    size_t got_len = 0;
    unsigned char *got = base64_decode(enc, n, &got_len);
    FUZZ_CHECK(got != NULL, "base64-roundtrip", "%s (%zu chars) does not decode", what, n);
    if (!got)
        return;
    FUZZ_CHECK(got_len == want_len && memcmp(got, want, want_len) == 0, "base64-roundtrip",
               "%s decodes to %zu bytes, not the %zu it was made from", what, got_len,
               want_len);
    free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* As text: the decoder on the input. (The parsers hand it cJSON strings: a NUL never
     * reaches it there, but the function takes a length and must not care.) */
    const char *text = (const char *)data;
    size_t dec_len = 0;
    unsigned char *dec = base64_decode(text, size, &dec_len);
    size_t body = size;
    while (body > 0 && size - body < 2 && text[body - 1] == '=')
        body--;
    if (dec) {
        FUZZ_CHECK(dec_len == body * 3 / 4, "base64-length",
                   "%zu characters (%zu without padding) decoded to %zu bytes", size, body,
                   dec_len);
        FUZZ_CHECK(body % 4 != 1, "base64-dangling", "a dangling character was accepted");
        size_t enc_len = 0;
        char *enc = base64_encode(dec, dec_len, &enc_len);
        FUZZ_CHECK(enc != NULL, "base64-encode", "encode failed");
        if (enc) {
            check_decodes_to("encode(decode(x))", enc, enc_len, dec, dec_len);
            free(enc);
        }
        free(dec);
    }

    /* As bytes: encode, then decode every spelling of it. */
    size_t enc_len = 0;
    char *enc = base64_encode(data, size, &enc_len);
    FUZZ_CHECK(enc != NULL, "base64-encode", "encode failed");
    if (!enc)
        return 0;
    FUZZ_CHECK(enc_len == (size + 2) / 3 * 4 && strlen(enc) == enc_len, "base64-encode",
               "%zu bytes encoded to %zu characters", size, enc_len);
    for (size_t i = 0; i < enc_len; i++)
        FUZZ_CHECK((enc[i] >= 'A' && enc[i] <= 'Z') || (enc[i] >= 'a' && enc[i] <= 'z') ||
                   (enc[i] >= '0' && enc[i] <= '9') || enc[i] == '+' || enc[i] == '/' ||
                   (enc[i] == '=' && i >= enc_len - 2), "base64-encode",
                   "character %zu of the encoding is 0x%02x", i, (unsigned char)enc[i]);
    check_decodes_to("encode(b)", enc, enc_len, data, size);
    for (size_t i = 0; i < enc_len; i++)
        enc[i] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i];
    check_decodes_to("encode(b), URL-safe", enc, enc_len, data, size);
    size_t unpadded = enc_len;
    while (unpadded > 0 && enc[unpadded - 1] == '=')
        unpadded--;
    check_decodes_to("encode(b), URL-safe, unpadded", enc, unpadded, data, size);
    free(enc);
    return 0;
}
