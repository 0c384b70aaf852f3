/* generateContent, streamGenerateContent and countTokens bodies: gemini_parse_request
 * (server/gemini_wire.c). The first input byte chooses the call (bit 0: countTokens); the
 * rest, NUL-terminated, is the body.
 *
 * Properties, besides "no crash, no leak, no UB":
 * - a refusal is PX_INVALID_ARGUMENT or PX_TOO_LARGE, leaves nothing to release, and has
 *   a message whose error body is valid JSON and UTF-8;
 * - an accepted request has contents; every text and code is valid UTF-8 of the length
 *   reported (genai.h: "NUL-terminated, valid UTF-8"), ids and MIME types too;
 * - what the server makes of a request is valid JSON and UTF-8: each content's parts as a
 *   GenerateContentResponse (gemini_encode_response), the chat completions request the
 *   openai model sends upstream for it (openai_encode_request, with and without the
 *   tool), and the countTokens answer;
 * - with the limit set one byte below the last user content's inline data, the same body
 *   is refused with PX_TOO_LARGE. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "fuzz/fuzz_util.h"
#include "server/error_reply.h"
#include "server/gemini_wire.h"
#include "server/genai.h"
#include "server/openai_wire.h"

static void check_text(const char *what, const char *s, size_t n)
{
    FUZZ_CHECK(strlen(s) == n, "gemini-text-len", "%s: length %zu, strlen %zu", what, n,
               strlen(s));
    FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)s, n), "gemini-text-utf8",
               "%s is not valid UTF-8", what);
}

static void check_part(const struct gpart *p)
{
    switch (p->kind) {
    case GPART_TEXT:
    case GPART_CODE:
        FUZZ_CHECK(p->text != NULL, "gemini-part", "a text or code part without text");
        if (p->text)
            check_text("a text or code", p->text, p->text_len);
        break;
    case GPART_RESULT:
        if (p->text)
            check_text("a result's output", p->text, p->text_len);
        FUZZ_CHECK(p->outcome >= OUTCOME_OK && p->outcome <= OUTCOME_DEADLINE_EXCEEDED,
                   "gemini-part", "outcome %d", (int)p->outcome);
        break;
    case GPART_INLINE_DATA:
        FUZZ_CHECK(p->mime && p->data, "gemini-part", "inline data without MIME or data");
        if (p->mime)
            check_text("a MIME type", p->mime, strlen(p->mime));
        break;
    case GPART_OTHER:
        break;
    default:
        fuzz_fail("gemini-part", "part kind %d", (int)p->kind);
    }
    if (p->id)
        check_text("an id", p->id, strlen(p->id));
}

static size_t last_user_bytes(const struct gen_request *r)
{
    const struct gcontent *last = gen_request_last_user(r);
    size_t n = 0;
    for (size_t i = 0; last && i < last->nparts; i++)
        if (last->parts[i].kind == GPART_INLINE_DATA)
            n += last->parts[i].data_len;
    return n;
}

static void check_encoders(const struct gen_request *req)
{
    struct gemini_meta meta = {.model_version = "echo", .response_id = "fuzz",
                               .create_time_ms = 1764690000000LL, .prompt_tokens = 1};
    for (size_t i = 0; i < req->ncontents; i++) {
        size_t len = 0;
        char *out = gemini_encode_response(req->contents[i].parts, req->contents[i].nparts,
                                           i % 2 ? "STOP" : NULL, &meta, &len);
        fuzz_check_json_output("gemini-response", "gemini_encode_response", out, len, 1);
        free(out);
    }
    static const char *const choices[] = {"auto", "required", OPENAI_TOOL_NAME};
    for (int offer = 0; offer < 2; offer++) {
        size_t len = 0;
        char *out = openai_encode_request("fuzz-model", req, "a note", NULL, 0, offer,
                                          choices[req->ncontents % 3], &len);
        fuzz_check_json_output("gemini-openai-request", "openai_encode_request", out, len, 1);
        free(out);
    }
    size_t len = 0;
    char *out = gemini_encode_count_tokens(gen_tokens_of_request(req), &len);
    fuzz_check_json_output("gemini-count-tokens", "gemini_encode_count_tokens", out, len, 1);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int count_tokens = data[0] & 1;
    char *body = fuzz_cstr(data + 1, size - 1);
    size_t blen = size - 1;
    struct gen_request req;
    char msg[512] = "";
    enum px_result r = gemini_parse_request(body, blen, count_tokens, LIMIT_INPUT_FILE_BYTES,
                                            &req, msg, sizeof(msg));
    if (r != PX_OK) {
        FUZZ_CHECK(r == PX_INVALID_ARGUMENT || r == PX_TOO_LARGE, "gemini-result",
                   "gemini_parse_request returned %d", (int)r);
        FUZZ_CHECK(req.contents == NULL && req.ncontents == 0 && req.system_text == NULL,
                   "gemini-refusal-clean", "a refusal left a request to release");
        FUZZ_CHECK(msg[0] != '\0', "gemini-refusal-message", "a refusal without a message");
        size_t len = 0;
        char *err = error_body_for(r, msg, &len);
        fuzz_check_json_output("gemini-error-body", "error_body_for", err, len, 1);
        free(err);
        free(body);
        return 0;
    }
    FUZZ_CHECK(req.ncontents >= 1, "gemini-has-contents", "accepted without contents");
    for (size_t i = 0; i < req.ncontents; i++)
        for (size_t k = 0; k < req.contents[i].nparts; k++)
            check_part(&req.contents[i].parts[k]);
    if (req.system_text)
        check_text("the system instruction", req.system_text, strlen(req.system_text));
    FUZZ_CHECK(gen_request_model_turns(&req) <= req.ncontents, "gemini-turns",
               "more model turns than contents");
    check_encoders(&req);

    size_t total = last_user_bytes(&req);
    if (total > 0) {
        struct gen_request req2;
        char msg2[512];
        enum px_result r2 = gemini_parse_request(body, blen, count_tokens, total - 1, &req2,
                                                 msg2, sizeof(msg2));
        FUZZ_CHECK(r2 == PX_TOO_LARGE, "gemini-limit",
                   "inline data of %zu bytes under a limit of %zu: result %d", total,
                   total - 1, (int)r2);
        if (r2 == PX_OK)
            gen_request_release(&req2);
    }
    gen_request_release(&req);
    free(body);
    return 0;
}
