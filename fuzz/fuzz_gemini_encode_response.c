/* The generateContent reply encoder, gemini_encode_response (server/gemini_wire.c), on
 * parts built from the input: every kind of part, texts holding any character (NUL
 * included: server/wire.c's wire_add_text writes those itself), ids, MIME types and
 * image bytes, with and without finishReason. Texts, ids and MIME types are made valid
 * UTF-8 first (utf8_sanitize), as genai.h requires of a part.
 *
 * Input: u8 part count (mod 16), then per part u8 kind (mod 5), u8 flags (bit 0 thought,
 * bit 1 an id, bits 2-3 outcome 0..3, bit 4 no output), bytes text, bytes id, bytes MIME,
 * bytes data (each: u16 length, then the bytes); then u8 finish reason choice, bytes
 * model version, bytes response id, u64 create time, u32 token counts x3.
 *
 * Property: the output is one valid JSON text, valid UTF-8, of the length reported. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "server/gemini_wire.h"
#include "server/genai.h"
#include "server/utf8.h"

/* Valid UTF-8 of the next byte string; *len its length (it may hold NULs). */
static char *clean_bytes(struct fuzz_in *in, size_t *len)
{
    size_t n;
    const uint8_t *p = fuzz_bytes(in, 4096, &n);
    char *out;
    if (utf8_sanitize(p, n, &out, len) < 0)
        abort();
    return out;
}

/* The same as a C string: cut at its first NUL. */
static char *clean_string(struct fuzz_in *in)
{
    size_t len;
    char *s = clean_bytes(in, &len);
    return s;   /* strlen stops at the first NUL; the bytes before it are valid */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    size_t nparts = fuzz_u8(&in) % 16;
    struct gpart parts[16];
    memset(parts, 0, sizeof(parts));
    for (size_t i = 0; i < nparts; i++) {
        struct gpart *p = &parts[i];
        p->kind = (enum gpart_kind)(fuzz_u8(&in) % 5);
        uint8_t flags = fuzz_u8(&in);
        p->thought = flags & 1;
        p->outcome = (enum outcome)((flags >> 2) & 3);
        p->text = clean_bytes(&in, &p->text_len);
        char *id = clean_string(&in);
        char *mime = clean_string(&in);
        size_t dlen;
        const uint8_t *d = fuzz_bytes(&in, 65536, &dlen);
        if ((flags & 2) && (p->kind == GPART_CODE || p->kind == GPART_RESULT))
            p->id = id;
        else
            free(id);
        if ((flags & 16) && p->kind == GPART_RESULT) {
            free(p->text);
            p->text = NULL;
            p->text_len = 0;
        }
        if (p->kind == GPART_INLINE_DATA) {
            p->mime = mime;
            p->data = malloc(dlen ? dlen : 1);
            if (!p->data)
                abort();
            memcpy(p->data, d, dlen);
            p->data_len = dlen;
        } else {
            free(mime);
        }
    }
    static const char *const reasons[] = {NULL, "STOP", "MAX_TOKENS", "MALFORMED_FUNCTION_CALL"};
    uint8_t choice = fuzz_u8(&in);
    char *version = clean_string(&in);
    char *response_id = clean_string(&in);
    char *reason = clean_string(&in);
    struct gemini_meta meta = {
        .model_version = version,
        .response_id = response_id,
        .create_time_ms = (long long)(fuzz_u64(&in) % (1ull << 42)),
        .prompt_tokens = fuzz_u32(&in),
        .candidates_tokens = fuzz_u32(&in),
        .tool_tokens = fuzz_u32(&in),
    };
    size_t len = 0;
    char *out = gemini_encode_response(parts, nparts, choice < 4 ? reasons[choice] : reason,
                                       &meta, &len);
    fuzz_check_json_output("response", "gemini_encode_response", out, len, 1);
    free(out);
    for (size_t i = 0; i < nparts; i++)
        gpart_release(&parts[i]);
    free(version);
    free(response_id);
    free(reason);
    return 0;
}
