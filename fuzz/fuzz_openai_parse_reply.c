/* What an OpenAI-compatible upstream answers the openai model (server/model_openai.c):
 * openai_parse_reply (server/openai_wire.c) on a NUL-terminated copy of the input, then
 * each tool call's arguments through openai_call_code, then the next request the model
 * sends, holding this reply as a step (openai_encode_request). The upstream is outside
 * the sandbox but not trusted: its text is what a model wrote, steerable by the user.
 *
 * Properties, besides "no crash, no leak, no UB":
 * - a refusal is PX_INTERNAL with a message (whose error body is valid JSON and UTF-8)
 *   and nothing to release;
 * - an accepted reply has at most LIMIT_OPENAI_EXECUTIONS calls, each with an id, a name
 *   and arguments;
 * - the text becomes a text part (turn_text) and the code a code block (turn_code), which
 *   genai.h and execution.h say are valid UTF-8: both must be (openai-text-utf8,
 *   openai-code-utf8);
 * - the next request to the upstream is valid JSON, and valid UTF-8 when the reply was. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "fuzz/fuzz_util.h"
#include "server/error_reply.h"
#include "server/genai.h"
#include "server/openai_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = fuzz_cstr(data, size);
    struct openai_step step;
    char msg[400] = "";
    enum px_result r = openai_parse_reply(body, size, &step, msg, sizeof(msg));
    if (r != PX_OK) {
        FUZZ_CHECK(r == PX_INTERNAL, "openai-result", "openai_parse_reply returned %d",
                   (int)r);
        FUZZ_CHECK(step.text == NULL && step.calls == NULL && step.ncalls == 0,
                   "openai-refusal-clean", "a refusal left a step to release");
        FUZZ_CHECK(msg[0] != '\0', "openai-refusal-message", "a refusal without a message");
        size_t len = 0;
        char *err = error_body_for(r, msg, &len);
        fuzz_check_json_output("openai-error-body", "error_body_for", err, len, 1);
        free(err);
        free(body);
        return 0;
    }
    FUZZ_CHECK(step.ncalls <= LIMIT_OPENAI_EXECUTIONS, "openai-calls", "%zu calls",
               step.ncalls);
    if (step.text)
        FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)step.text, strlen(step.text)),
                   "openai-text-utf8",
                   "the model's text is not valid UTF-8, and turn_text makes a part of it");
    for (size_t i = 0; i < step.ncalls; i++) {
        struct openai_call *c = &step.calls[i];
        FUZZ_CHECK(c->id && c->id[0] && c->name && c->arguments, "openai-calls",
                   "call %zu lacks an id, a name or arguments", i);
        if (!c->arguments)
            continue;
        char why[200] = "";
        char *code = openai_call_code(c->arguments, why, sizeof(why));
        if (code) {
            FUZZ_CHECK(code[0] != '\0', "openai-code", "empty code from call %zu", i);
            FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)code, strlen(code)),
                       "openai-code-utf8",
                       "call %zu's code is not valid UTF-8, and turn_code runs it", i);
            free(code);
        } else {
            FUZZ_CHECK(why[0] != '\0', "openai-code", "no code and no reason");
        }
        c->result = strdup(i % 2 ? "OUTCOME_OK\n4\n" : "OUTCOME_FAILED\nboom\n");
    }

    /* The next request: the conversation so far, then this reply as a step. */
    struct gpart part = {.kind = GPART_TEXT, .text = (char *)"compute 2+2", .text_len = 11};
    struct gcontent content = {.model = 0, .parts = &part, .nparts = 1};
    struct gen_request req = {.contents = &content, .ncontents = 1, .code_tool = 1};
    size_t len = 0;
    char *next = openai_encode_request("fuzz-model", &req, "a note", &step, 1, 1, "auto", &len);
    if (fuzz_utf8_valid(data, size)) {
        fuzz_check_json_output("openai-next-request", "openai_encode_request", next, len, 1);
    } else {
        FUZZ_CHECK(next != NULL, "openai-next-request-null", "openai_encode_request returned NULL");
    }
    free(next);
    openai_step_release(&step);
    free(body);
    return 0;
}
