/* One line of a script model's file (--model NAME=script:FILE): gemini_parse_script_line
 * (server/gemini_wire.c) on a NUL-terminated copy of the input.
 *
 * Properties, besides "no crash, no leak, no UB":
 * - a refusal is PX_INVALID_ARGUMENT with a message and nothing to release;
 * - an accepted line holds text and executableCode parts only, each valid UTF-8 of the
 *   length reported, and at least one unless it has a fault; a fault's error code is 0
 *   or an HTTP error status; times >= 1;
 * - the error the fault injects, encoded as server/model_script.c sends it
 *   (turn_fail_as -> error_body: status, message and retry delay as the line gave them),
 *   is valid JSON and UTF-8;
 * - the line's parts as a GenerateContentResponse are valid JSON and UTF-8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "server/error_reply.h"
#include "server/gemini_wire.h"
#include "server/genai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = fuzz_cstr(data, size);
    struct script_turn t;
    char msg[400] = "";
    enum px_result r = gemini_parse_script_line(line, size, &t, msg, sizeof(msg));
    if (r != PX_OK) {
        FUZZ_CHECK(r == PX_INVALID_ARGUMENT, "script-result",
                   "gemini_parse_script_line returned %d", (int)r);
        FUZZ_CHECK(t.parts == NULL && t.nparts == 0, "script-refusal-clean",
                   "a refusal left parts to release");
        FUZZ_CHECK(msg[0] != '\0', "script-refusal-message", "a refusal without a message");
        free(line);
        return 0;
    }
    FUZZ_CHECK(t.nparts > 0 || t.has_fault, "script-parts", "a line with neither parts nor "
               "a fault");
    for (size_t i = 0; i < t.nparts; i++) {
        const struct gpart *p = &t.parts[i];
        FUZZ_CHECK(p->kind == GPART_TEXT || p->kind == GPART_CODE, "script-parts",
                   "part %zu has kind %d", i, (int)p->kind);
        FUZZ_CHECK(p->text && strlen(p->text) == p->text_len, "script-parts",
                   "part %zu: text missing or of the wrong length", i);
        if (p->text)
            FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)p->text, p->text_len),
                       "script-text-utf8", "part %zu is not valid UTF-8", i);
    }
    if (t.has_fault) {
        const struct script_fault *f = &t.fault;
        FUZZ_CHECK(f->error_code == 0 || (f->error_code >= 400 && f->error_code <= 599),
                   "script-fault", "error code %d", f->error_code);
        FUZZ_CHECK(f->times >= 1, "script-fault", "times %u", f->times);
        if (f->error_code) {
            size_t len = 0;
            char *body = error_body(f->error_code, f->error_status, f->error_message,
                                    f->retry_delay[0] ? f->retry_delay : NULL, &len);
            fuzz_check_json_output("script-fault-error-body", "error_body (a script fault)", body, len, 1);
            free(body);
        }
    }
    struct gemini_meta meta = {.model_version = "script", .response_id = "fuzz",
                               .create_time_ms = 1764690000000LL};
    size_t len = 0;
    char *out = gemini_encode_response(t.parts, t.nparts, "STOP", &meta, &len);
    fuzz_check_json_output("script-response", "gemini_encode_response", out, len, 1);
    free(out);
    script_turn_release(&t);
    free(line);
    return 0;
}
