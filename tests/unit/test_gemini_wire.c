/* The generateContent surface's JSON (server/gemini_wire.h): which GenerateContentRequest
 * and countTokens bodies are accepted and what they become, which are refused (with the
 * real API's message, and nothing left to release), the script backend's lines, and the
 * shapes of the response, Model, ListModels and CountTokens bodies. Also
 * gen_request_model_turns and gen_request_last_user (server/genai.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/result.h"
#include "server/base64.h"
#include "server/gemini_wire.h"
#include "server/genai.h"
#include "tests/unit/check.h"

/* ---- helpers ------------------------------------------------------------------------ */

/* A growable string for bodies too large or too repetitive to write out. */
struct sb {
    char *p;
    size_t len, cap;
};

static void sb_addn(struct sb *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';   /* the parsers need body[len] == '\0' */
}

static void sb_add(struct sb *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

/* An inlineData part of n bytes of `fill`, base64-encoded. */
static void sb_inline_data(struct sb *b, const char *mime, size_t n, unsigned char fill)
{
    unsigned char *data = malloc(n ? n : 1);
    memset(data, fill, n);
    char *enc = base64_encode(data, n, NULL);
    sb_add(b, "{\"inlineData\":{\"mimeType\":\"");
    sb_add(b, mime);
    sb_add(b, "\",\"data\":\"");
    sb_add(b, enc);
    sb_add(b, "\"}}");
    free(enc);
    free(data);
}

/* Nothing left to release. */
static int is_zeroed(const struct gen_request *r)
{
    return r->contents == NULL && r->ncontents == 0 && r->system_text == NULL;
}

/* Parses a body expected to succeed (count_tokens as given); returns 1 with *out filled. */
static int parse_ok_as(const char *body, int count_tokens, struct gen_request *out)
{
    char msg[512] = "";
    enum px_result r = gemini_parse_request(body, strlen(body), count_tokens,
                                            LIMIT_INPUT_FILE_BYTES, out, msg, sizeof(msg));
    if (r != PX_OK) {
        fprintf(stderr, "  unexpected failure (%s: %s) for: %.300s\n", px_result_str(r), msg,
                body);
        return 0;
    }
    return 1;
}

static int parse_ok(const char *body, struct gen_request *out)
{
    return parse_ok_as(body, 0, out);
}

/* Parses body (of len bytes) expecting result `want` and a message starting with
 * `start` (NULL: any non-empty message); also checks *out was left with nothing to
 * release. */
static int fails_n(const char *body, size_t len, int count_tokens, size_t limit,
                   enum px_result want, const char *start)
{
    char msg[512] = "";
    struct gen_request out;
    memset(&out, 0xA5, sizeof(out));
    enum px_result r = gemini_parse_request(body, len, count_tokens, limit, &out, msg,
                                            sizeof(msg));
    int ok = r == want && msg[0] != '\0' && is_zeroed(&out) &&
             (!start || strncmp(msg, start, strlen(start)) == 0);
    if (!ok) {
        fprintf(stderr, "  got %s (\"%s\"), want %s starting \"%s\", for: %.300s\n",
                px_result_str(r), msg, px_result_str(want), start ? start : "", body);
        if (r == PX_OK)
            gen_request_release(&out);
    }
    return ok;
}

#define REFUSED(body, start) \
    CHECK(fails_n((body), strlen(body), 0, LIMIT_INPUT_FILE_BYTES, PX_INVALID_ARGUMENT, (start)))

/* ---- accepted requests ---------------------------------------------------------------- */

/* lowerCamel: contents, inline data, the codeExecution tool, generationConfig. */
static void test_camel_case(void)
{
    const char *body =
        "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"hi\"},"
        "{\"inlineData\":{\"mimeType\":\"text/csv\",\"data\":\"YSxiCg==\"}}]}],"
        "\"tools\":[{\"codeExecution\":{}}],\"generationConfig\":{},"
        "\"safetySettings\":[],\"toolConfig\":{}}";
    struct gen_request r;
    if (!parse_ok(body, &r)) {
        CHECK(0);
        return;
    }
    CHECK(r.ncontents == 1);
    CHECK(r.code_tool == 1);
    CHECK(r.system_text == NULL);
    if (r.ncontents == 1) {
        const struct gcontent *c = &r.contents[0];
        CHECK(c->model == 0);
        CHECK(c->nparts == 2);
        if (c->nparts == 2) {
            CHECK(c->parts[0].kind == GPART_TEXT);
            CHECK_STR(c->parts[0].text, "hi");
            CHECK(c->parts[0].text_len == 2);
            CHECK(c->parts[0].thought == 0);
            CHECK(c->parts[1].kind == GPART_INLINE_DATA);
            CHECK_STR(c->parts[1].mime, "text/csv");
            CHECK(c->parts[1].data_len == 4 && memcmp(c->parts[1].data, "a,b\n", 4) == 0);
        }
    }
    CHECK(gen_request_last_user(&r) == &r.contents[0]);
    CHECK(gen_request_model_turns(&r) == 0);
    gen_request_release(&r);
    CHECK(is_zeroed(&r));
}

/* snake_case at every depth, the code_execution tool, system_instruction as a Content
 * (its text parts joined with newlines), URL-safe base64. */
static void test_snake_case(void)
{
    const char *body =
        "{\"contents\":[{\"role\":\"user\",\"parts\":["
        "{\"inline_data\":{\"mime_type\":\"text/plain\",\"data\":\"-_8\",\"display_name\":\"x\"}},"
        "{\"executable_code\":{\"language\":\"PYTHON\",\"code\":\"print(1)\"},"
        "\"thought_signature\":\"-_-_\"}]}],"
        "\"tools\":[{\"code_execution\":{}}],"
        "\"system_instruction\":{\"parts\":[{\"text\":\"one\"},{\"text\":\"two\"}]},"
        "\"generation_config\":{\"max_output_tokens\":5},\"safety_settings\":[],"
        "\"tool_config\":{},\"cached_content\":\"c\",\"labels\":{}}";
    struct gen_request r;
    if (!parse_ok(body, &r)) {
        CHECK(0);
        return;
    }
    CHECK(r.code_tool == 1);
    CHECK_STR(r.system_text, "one\ntwo");
    CHECK(r.ncontents == 1 && r.contents[0].nparts == 2);
    if (r.ncontents == 1 && r.contents[0].nparts == 2) {
        const struct gpart *p = r.contents[0].parts;
        CHECK(p[0].kind == GPART_INLINE_DATA);
        CHECK_STR(p[0].mime, "text/plain");
        CHECK(p[0].data_len == 2 && p[0].data[0] == 0xfb && p[0].data[1] == 0xff);
        CHECK(p[1].kind == GPART_CODE);
        CHECK_STR(p[1].text, "print(1)");
        CHECK(p[1].id == NULL);
    }
    gen_request_release(&r);
}

/* Standard and URL-safe base64, padded or not, decode to the same bytes. */
static void test_base64_alphabets(void)
{
    static const char *datas[] = {"+/8=", "-_8=", "+/8", "-_8", "+_8=", "-/8"};
    for (size_t i = 0; i < sizeof(datas) / sizeof(datas[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), "{\"contents\":[{\"parts\":[{\"inlineData\":{\"mimeType\":"
                 "\"image/png\",\"data\":\"%s\"}}]}]}", datas[i]);
        struct gen_request r;
        if (!parse_ok(body, &r)) {
            CHECK(0);
            continue;
        }
        const struct gpart *p = &r.contents[0].parts[0];
        CHECK(p->data_len == 2 && p->data[0] == 0xfb && p->data[1] == 0xff);
        gen_request_release(&r);
    }
    /* Empty data is an empty file. */
    struct gen_request r;
    if (parse_ok("{\"contents\":[{\"parts\":[{\"inlineData\":{\"mimeType\":\"text/csv\","
                 "\"data\":\"\"}}]}]}", &r)) {
        CHECK(r.contents[0].parts[0].data_len == 0);
        gen_request_release(&r);
    } else {
        CHECK(0);
    }
}

/* A chat: earlier model turns with thoughts, code and result parts (ids kept, enums as
 * names or numbers), an image and thoughtSignatures, two model contents in a row. */
static void test_history(void)
{
    const char *body =
        "{\"contents\":["
        "{\"role\":\"user\",\"parts\":[{\"text\":\"run it\"},"
        "{\"inlineData\":{\"mimeType\":\"text/csv\",\"data\":\"b2xk\"}}]},"
        "{\"role\":\"model\",\"parts\":["
        "{\"text\":\"thinking\",\"thought\":true,\"thoughtSignature\":\"c2ln\"},"
        "{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"print(2)\",\"id\":\"abcd1234\"},"
        "\"thoughtSignature\":\"c2ln\"},"
        "{\"codeExecutionResult\":{\"outcome\":\"OUTCOME_FAILED\",\"output\":\"boom\\n\","
        "\"id\":\"abcd1234\"}},"
        "{\"executableCode\":{\"language\":1,\"code\":\"x\"}},"
        "{\"codeExecutionResult\":{\"outcome\":3}},"
        "{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"iVBORw==\"}}]},"
        "{\"role\":\"model\",\"parts\":[{\"text\":\"more\"},{\"fileData\":{\"fileUri\":\"gs://a/b\"}},"
        "{\"functionCall\":{\"name\":\"f\"}}]},"
        "{\"role\":\"user\",\"parts\":[{\"text\":\"again\"}]}]}";
    struct gen_request r;
    if (!parse_ok(body, &r)) {
        CHECK(0);
        return;
    }
    CHECK(r.ncontents == 4);
    CHECK(r.code_tool == 0);
    if (r.ncontents != 4) {
        gen_request_release(&r);
        return;
    }
    CHECK(!r.contents[0].model && r.contents[1].model && r.contents[2].model &&
          !r.contents[3].model);
    CHECK(r.contents[1].nparts == 6);
    if (r.contents[1].nparts == 6) {
        const struct gpart *p = r.contents[1].parts;
        CHECK(p[0].kind == GPART_TEXT && p[0].thought == 1);
        CHECK(p[1].kind == GPART_CODE);
        CHECK_STR(p[1].text, "print(2)");
        CHECK_STR(p[1].id, "abcd1234");
        CHECK(p[2].kind == GPART_RESULT);
        CHECK(p[2].outcome == OUTCOME_FAILED);
        CHECK_STR(p[2].text, "boom\n");
        CHECK_STR(p[2].id, "abcd1234");
        CHECK(p[3].kind == GPART_CODE && p[3].id == NULL);
        CHECK(p[4].kind == GPART_RESULT && p[4].outcome == OUTCOME_DEADLINE_EXCEEDED);
        CHECK(p[4].text == NULL);   /* no output: absent */
        CHECK(p[5].kind == GPART_INLINE_DATA);
        CHECK(p[5].data_len == 4 && memcmp(p[5].data, "\x89PNG", 4) == 0);
    }
    CHECK(r.contents[2].nparts == 3);
    if (r.contents[2].nparts == 3) {
        CHECK(r.contents[2].parts[1].kind == GPART_OTHER);
        CHECK(r.contents[2].parts[2].kind == GPART_OTHER);
    }
    CHECK(gen_request_model_turns(&r) == 1);
    CHECK(gen_request_last_user(&r) == &r.contents[3]);
    gen_request_release(&r);
}

/* systemInstruction as a bare string, as a Content without parts, and absent. */
static void test_system_instruction(void)
{
    struct gen_request r;
    if (parse_ok("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],"
                 "\"systemInstruction\":\"be brief\"}", &r)) {
        CHECK_STR(r.system_text, "be brief");
        gen_request_release(&r);
    } else {
        CHECK(0);
    }
    if (parse_ok("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],"
                 "\"systemInstruction\":{\"role\":\"system\",\"parts\":[{\"text\":\"only\"},"
                 "{\"inlineData\":{\"mimeType\":\"text/csv\",\"data\":\"\"}}]}}", &r)) {
        CHECK_STR(r.system_text, "only");
        gen_request_release(&r);
    } else {
        CHECK(0);
    }
    if (parse_ok("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],"
                 "\"system_instruction\":{\"parts\":[]}}", &r)) {
        CHECK(r.system_text == NULL);
        gen_request_release(&r);
    } else {
        CHECK(0);
    }
}

/* tools: codeExecution in either spelling switches code execution on; googleSearch and
 * the other known tools are accepted and do not. */
static void test_tools(void)
{
    static const struct {
        const char *tools;
        int code_tool;
    } cases[] = {
        {"[{\"codeExecution\":{}}]", 1},
        {"[{\"code_execution\":{}}]", 1},
        {"[{\"googleSearch\":{}}]", 0},
        {"[{\"google_search\":{}},{\"codeExecution\":{}}]", 1},
        {"[{\"functionDeclarations\":[{\"name\":\"f\"}]},{\"urlContext\":{}}]", 0},
        {"[]", 0},
        {"null", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), "{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"tools\":%s}",
                 cases[i].tools);
        struct gen_request r;
        if (!parse_ok(body, &r)) {
            CHECK(0);
            continue;
        }
        CHECK(r.code_tool == cases[i].code_tool);
        gen_request_release(&r);
    }
}

/* proto3 JSON: null is the field's default. */
static void test_null_fields(void)
{
    struct gen_request r;
    if (parse_ok("{\"contents\":[{\"role\":null,\"parts\":[{\"text\":\"a\",\"thought\":null,"
                 "\"thoughtSignature\":null}]}],\"tools\":null,\"generationConfig\":null,"
                 "\"systemInstruction\":null}", &r)) {
        CHECK(r.ncontents == 1 && r.contents[0].model == 0);
        CHECK(r.system_text == NULL && r.code_tool == 0);
        gen_request_release(&r);
    } else {
        CHECK(0);
    }
}

/* countTokens: contents alone, or the whole request under generateContentRequest; that
 * field is countTokens' only. */
static void test_count_tokens_bodies(void)
{
    struct gen_request r;
    if (parse_ok_as("{\"contents\":[{\"parts\":[{\"text\":\"abcde\"}]}]}", 1, &r)) {
        CHECK(r.ncontents == 1);
        CHECK(gen_tokens_of_request(&r) == 2);
        gen_request_release(&r);
    } else {
        CHECK(0);
    }
    const char *wrapped =
        "{\"generateContentRequest\":{\"model\":\"models/echo\",\"contents\":[{\"parts\":["
        "{\"text\":\"abcdefgh\"},{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"\"}}]}],"
        "\"systemInstruction\":{\"parts\":[{\"text\":\"xyz\"}]},\"tools\":[{\"codeExecution\":{}}],"
        "\"generationConfig\":{}}}";
    if (parse_ok_as(wrapped, 1, &r)) {
        CHECK(r.ncontents == 1);
        CHECK(r.code_tool == 1);
        CHECK_STR(r.system_text, "xyz");
        CHECK(gen_tokens_of_request(&r) == 2 + GEN_TOKENS_PER_BLOB + 1);
        gen_request_release(&r);
    } else {
        CHECK(0);
    }
    CHECK(fails_n(wrapped, strlen(wrapped), 0, LIMIT_INPUT_FILE_BYTES, PX_INVALID_ARGUMENT,
                  "Invalid JSON payload received. Unknown name \"generateContentRequest\""));
    /* Not both, and not nested twice. */
    const char *both = "{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],"
                       "\"generateContentRequest\":{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}]}}";
    CHECK(fails_n(both, strlen(both), 1, LIMIT_INPUT_FILE_BYTES, PX_INVALID_ARGUMENT, NULL));
    const char *nested = "{\"generateContentRequest\":{\"generateContentRequest\":{\"contents\":"
                         "[{\"parts\":[{\"text\":\"a\"}]}]}}}";
    CHECK(fails_n(nested, strlen(nested), 1, LIMIT_INPUT_FILE_BYTES, PX_INVALID_ARGUMENT, NULL));
    const char *empty = "{}";
    CHECK(fails_n(empty, 2, 1, LIMIT_INPUT_FILE_BYTES, PX_INVALID_ARGUMENT,
                  "* GenerateContentRequest.contents: contents is not specified"));
}

/* Token estimate: ceil(bytes / 4) per text-bearing field, a blob GEN_TOKENS_PER_BLOB. */
static void test_tokens(void)
{
    struct gen_request r;
    if (!parse_ok("{\"contents\":[{\"parts\":[{\"text\":\"abcd\"},{\"text\":\"abcde\"},"
                  "{\"inlineData\":{\"mimeType\":\"text/csv\",\"data\":\"YQ==\"}}]},"
                  "{\"role\":\"model\",\"parts\":[{\"executableCode\":{\"code\":\"print(1)\"}},"
                  "{\"codeExecutionResult\":{\"outcome\":\"OUTCOME_OK\",\"output\":\"1\\n\"}},"
                  "{\"codeExecutionResult\":{\"outcome\":\"OUTCOME_OK\"}}]},"
                  "{\"parts\":[{\"text\":\"\\u00e9\"}]}],\"systemInstruction\":\"123456789\"}", &r)) {
        CHECK(0);
        return;
    }
    /* 1 + 2 + 258 + 2 + 1 + 0 + 1 (two bytes of UTF-8) + 3 */
    CHECK(gen_tokens_of_request(&r) == 1 + 2 + GEN_TOKENS_PER_BLOB + 2 + 1 + 0 + 1 + 3);
    CHECK(gen_tokens_of_part(&r.contents[0].parts[2]) == GEN_TOKENS_PER_BLOB);
    CHECK(gen_tokens_of_part(&r.contents[1].parts[2]) == 0);
    gen_request_release(&r);
}

/* Runs of consecutive model contents count as one model turn. */
static void test_model_turns(void)
{
    static const struct {
        const char *roles;   /* u: user, m: model, -: no role */
        size_t turns;
        int last_user;       /* index of the last user content, -1: none */
    } cases[] = {
        {"u", 0, 0}, {"um", 1, 0}, {"umu", 1, 2}, {"ummu", 1, 3}, {"ummmumu", 2, 6},
        {"mu", 1, 1}, {"mm", 1, -1}, {"umumumu", 3, 6}, {"-m-", 1, 2}, {"mumm", 2, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sb b = {0};
        sb_add(&b, "{\"contents\":[");
        for (const char *c = cases[i].roles; *c; c++) {
            if (c != cases[i].roles)
                sb_add(&b, ",");
            sb_add(&b, *c == 'm' ? "{\"role\":\"model\"," : *c == 'u' ? "{\"role\":\"user\"," : "{");
            sb_add(&b, "\"parts\":[{\"text\":\"t\"}]}");
        }
        sb_add(&b, "]}");
        struct gen_request r;
        if (parse_ok(b.p, &r)) {
            CHECK(gen_request_model_turns(&r) == cases[i].turns);
            const struct gcontent *last = gen_request_last_user(&r);
            CHECK(cases[i].last_user < 0 ? last == NULL : last == &r.contents[cases[i].last_user]);
            gen_request_release(&r);
        } else {
            CHECK(0);
        }
        free(b.p);
    }
}

/* ---- refused requests ------------------------------------------------------------------- */

static void test_reject_messages(void)
{
    /* No contents. */
    REFUSED("{}", "* GenerateContentRequest.contents: contents is not specified");
    REFUSED("{\"contents\":[]}", "* GenerateContentRequest.contents: contents is not specified");
    REFUSED("{\"contents\":null}", "* GenerateContentRequest.contents: contents is not specified");
    /* An empty part, no parts. */
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"},{}]}]}",
            "* GenerateContentRequest.contents[0].parts[1].data: required oneof field 'data' "
            "must have one initialized field");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]},{\"parts\":[{\"thought\":true}]}]}",
            "* GenerateContentRequest.contents[1].parts[0].data: required oneof field 'data'");
    REFUSED("{\"contents\":[{\"role\":\"user\"}]}",
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.");
    REFUSED("{\"contents\":[{\"parts\":[]}]}",
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.");
    /* Wrong types. */
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":5}]}]}",
            "Invalid JSON payload received. Invalid value at 'contents[0].parts[0].text' "
            "(TYPE_STRING), 5");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"}],\"role\":7}]}",
            "Invalid JSON payload received. Invalid value at 'contents[0].role' (TYPE_STRING), 7");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\",\"thought\":\"yes\"}]}]}",
            "Invalid JSON payload received. Invalid value at 'contents[0].parts[0].thought' "
            "(TYPE_BOOL), \"yes\"");
    REFUSED("{\"contents\":{}}", "Invalid JSON payload received. Invalid value at 'contents'");
    REFUSED("{\"contents\":[5]}", "Invalid JSON payload received. Invalid value at 'contents[0]'");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"generationConfig\":5}",
            "Invalid JSON payload received. Invalid value at 'generation_config'");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"safetySettings\":{}}",
            "Invalid JSON payload received. Invalid value at 'safety_settings'");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"tools\":{}}",
            "Invalid JSON payload received. Invalid value at 'tools'");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"tools\":[5]}",
            "Invalid JSON payload received. Invalid value at 'tools[0]'");
    /* The path names the tool's index, as every other path does. */
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"tools\":[{\"codeExecution\":1}]}",
            "Invalid JSON payload received. Invalid value at 'tools[0].code_execution'");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"systemInstruction\":5}",
            "Invalid JSON payload received. Invalid value at 'system_instruction'");
    /* Unknown fields and tools, at each depth; duplicates in either spelling. */
    /* At the top level the real API names no path ("Unknown name \"x\": Cannot find
     * field."), deeper it does ("... at 'contents[0]': ..."). */
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"x\":1}",
            "Invalid JSON payload received. Unknown name \"x\": Cannot find field.");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"}],\"author\":\"me\"}]}",
            "Invalid JSON payload received. Unknown name \"author\" at 'contents[0]': Cannot "
            "find field.");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\",\"txt\":\"b\"}]}]}",
            "Invalid JSON payload received. Unknown name \"txt\" at 'contents[0].parts[0]': "
            "Cannot find field.");
    REFUSED("{\"contents\":[{\"parts\":[{\"inlineData\":{\"mimeType\":\"text/csv\",\"data\":\"\","
            "\"foo\":1}}]}]}",
            "Invalid JSON payload received. Unknown name \"foo\" at "
            "'contents[0].parts[0].inline_data': Cannot find field.");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"tools\":[{\"frob\":{}}]}",
            "Invalid JSON payload received. Unknown name \"frob\" at 'tools[0]': Cannot find "
            "field.");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"contents\":[]}",
            "Invalid JSON payload received. Duplicate field \"contents\"");
    REFUSED("{\"contents\":[{\"parts\":[{\"inlineData\":{\"mimeType\":\"text/csv\","
            "\"mime_type\":\"text/csv\",\"data\":\"\"}}]}]}",
            "Invalid JSON payload received. Duplicate field \"mime_type\"");
    /* Two data fields in one part. */
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\",\"executableCode\":{\"code\":\"x\"}}]}]}",
            "Invalid JSON payload received. Invalid value at 'contents[0].parts[0]': more than "
            "one of the oneof field 'data' is set.");
    /* Enums. */
    REFUSED("{\"contents\":[{\"parts\":[{\"executableCode\":{\"language\":\"JAVA\",\"code\":\"x\"}}]}]}",
            "Invalid value at 'contents[0].parts[0].executable_code.language'");
    REFUSED("{\"contents\":[{\"parts\":[{\"executableCode\":{\"language\":2,\"code\":\"x\"}}]}]}",
            "Invalid value at 'contents[0].parts[0].executable_code.language'");
    REFUSED("{\"contents\":[{\"parts\":[{\"codeExecutionResult\":{\"outcome\":\"DONE\"}}]}]}",
            "Invalid JSON payload received. Invalid value at "
            "'contents[0].parts[0].code_execution_result.outcome'");
    REFUSED("{\"contents\":[{\"parts\":[{\"codeExecutionResult\":{\"outcome\":4}}]}]}",
            "Invalid JSON payload received. Invalid value at "
            "'contents[0].parts[0].code_execution_result.outcome'");
    /* Bytes fields. */
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\"},{\"inlineData\":{\"mimeType\":\"text/csv\","
            "\"data\":\"!!!!\"}}]}]}",
            "Invalid value at 'contents[0].parts[1].inline_data.data' (TYPE_BYTES), Base64 "
            "decoding failed");
    REFUSED("{\"contents\":[{\"parts\":[{\"inlineData\":{\"mimeType\":\"text/csv\",\"data\":\"Q\"}}]}]}",
            "Invalid value at 'contents[0].parts[0].inline_data.data' (TYPE_BYTES), Base64 "
            "decoding failed");
    REFUSED("{\"contents\":[{\"parts\":[{\"inlineData\":{\"mimeType\":\"text/csv\",\"data\":5}}]}]}",
            "Invalid JSON payload received. Invalid value at "
            "'contents[0].parts[0].inline_data.data' (TYPE_BYTES), 5");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\",\"thoughtSignature\":\"not base64!\"}]}]}",
            "Invalid value at 'contents[0].parts[0].thought_signature' (TYPE_BYTES)");
    /* MIME types. */
    static const char *mimes[] = {"\"csv\"", "\"\"", "\"text/\"", "\"/csv\"", "\"a/b/c\"",
                                  "\"text/ csv\"", "5"};
    for (size_t i = 0; i < sizeof(mimes) / sizeof(mimes[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), "{\"contents\":[{\"parts\":[{\"text\":\"a\"},{\"text\":\"b\"},"
                 "{\"inline_data\":{\"mime_type\":%s,\"data\":\"QUJD\"}}]}]}", mimes[i]);
        REFUSED(body, "Invalid value at 'contents[0].parts[2].inline_data.mime_type'");
    }
    REFUSED("{\"contents\":[{\"parts\":[{\"inlineData\":{\"data\":\"QUJD\"}}]}]}",
            "Invalid value at 'contents[0].parts[0].inline_data.mime_type'");
    /* Not a JSON object, not UTF-8, NUL. */
    REFUSED("", "Invalid JSON payload received. The body is empty.");
    REFUSED("not json", "Invalid JSON payload received.");
    REFUSED("[1]", "Invalid JSON payload received. Expected a JSON object.");
    REFUSED("{\"contents\":[]} x", "Invalid JSON payload received.");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"\xff\"}]}]}",
            "Invalid JSON payload received. The body is not valid UTF-8.");
    REFUSED("{\"contents\":[{\"parts\":[{\"text\":\"a\\u0000b\"}]}]}",
            "Invalid JSON payload received. Strings must not contain NUL");
    const char with_nul[] = "{\"contents\":[{\"parts\":[{\"text\":\"a\0b\"}]}]}";
    CHECK(fails_n(with_nul, sizeof(with_nul) - 1, 0, LIMIT_INPUT_FILE_BYTES,
                  PX_INVALID_ARGUMENT, "Invalid JSON payload received. Strings must not"));
}

/* At most LIMIT_GEN_JSON_VALUES values: the limit is fine, one more is refused. */
static void test_json_values_limit(void)
{
    for (int over = 0; over <= 1; over++) {
        /* 8 values besides the stop sequences (object, contents, content, parts, part,
         * text, generationConfig, stopSequences). */
        size_t n = LIMIT_GEN_JSON_VALUES - 8 + (size_t)over;
        struct sb b = {0};
        sb_add(&b, "{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],"
                   "\"generationConfig\":{\"stopSequences\":[");
        for (size_t i = 0; i < n; i++)
            sb_add(&b, i ? ",\"s\"" : "\"s\"");
        sb_add(&b, "]}}");
        if (over) {
            CHECK(fails_n(b.p, b.len, 0, LIMIT_INPUT_FILE_BYTES, PX_INVALID_ARGUMENT,
                          "Invalid JSON payload received. The body holds more JSON values"));
        } else {
            struct gen_request r;
            if (parse_ok(b.p, &r))
                gen_request_release(&r);
            else
                CHECK(0);
        }
        free(b.p);
    }
}

/* The last user content's inline data may total input_limit bytes, not one more; earlier
 * contents (the user's, the model's) do not count. */
static void test_input_limit(void)
{
    const size_t limit = 1000;
    for (int over = 0; over <= 1; over++) {
        struct sb b = {0};
        sb_add(&b, "{\"contents\":[{\"role\":\"user\",\"parts\":[");
        sb_inline_data(&b, "text/csv", limit, 'o');   /* an earlier turn's file */
        sb_add(&b, "]},{\"role\":\"model\",\"parts\":[");
        sb_inline_data(&b, "image/png", limit, 'p');
        sb_add(&b, "]},{\"role\":\"user\",\"parts\":[{\"text\":\"t\"},");
        sb_inline_data(&b, "text/csv", limit / 2, 'a');
        sb_add(&b, ",");
        sb_inline_data(&b, "application/pdf", limit - limit / 2 + (size_t)over, 'b');
        sb_add(&b, "]},{\"role\":\"model\",\"parts\":[{\"text\":\"m\"}]}]}");
        char msg[512] = "";
        struct gen_request r;
        enum px_result res = gemini_parse_request(b.p, b.len, 0, limit, &r, msg, sizeof(msg));
        if (over) {
            CHECK(res == PX_TOO_LARGE);
            CHECK(strstr(msg, "1000") != NULL);
            CHECK(is_zeroed(&r));
        } else {
            CHECK(res == PX_OK);
            if (res == PX_OK) {
                const struct gcontent *last = gen_request_last_user(&r);
                CHECK(last == &r.contents[2]);
                CHECK(last->nparts == 3 && last->parts[1].data_len + last->parts[2].data_len == limit);
                gen_request_release(&r);
            } else {
                fprintf(stderr, "  %s\n", msg);
            }
        }
        free(b.p);
    }
    /* The real limit, at the limit. */
    struct sb b = {0};
    sb_add(&b, "{\"contents\":[{\"parts\":[");
    sb_inline_data(&b, "text/csv", LIMIT_INPUT_FILE_BYTES, 'z');
    sb_add(&b, "]}]}");
    struct gen_request r;
    char msg[512];
    CHECK(gemini_parse_request(b.p, b.len, 0, LIMIT_INPUT_FILE_BYTES, &r, msg, sizeof(msg)) ==
          PX_OK);
    gen_request_release(&r);
    CHECK(fails_n(b.p, b.len, 0, LIMIT_INPUT_FILE_BYTES - 1, PX_TOO_LARGE, NULL));
    free(b.p);
}

/* ---- script lines -------------------------------------------------------------------- */

static int script_ok(const char *line, struct script_turn *t)
{
    char msg[512] = "";
    enum px_result r = gemini_parse_script_line(line, strlen(line), t, msg, sizeof(msg));
    if (r != PX_OK)
        fprintf(stderr, "  unexpected failure (%s: %s) for: %s\n", px_result_str(r), msg, line);
    return r == PX_OK;
}

static int script_fails(const char *line, const char *mention)
{
    char msg[512] = "";
    struct script_turn t;
    memset(&t, 0xA5, sizeof(t));
    enum px_result r = gemini_parse_script_line(line, strlen(line), &t, msg, sizeof(msg));
    int ok = r == PX_INVALID_ARGUMENT && msg[0] && t.parts == NULL && t.nparts == 0 &&
             (!mention || strstr(msg, mention));
    if (!ok) {
        fprintf(stderr, "  got %s (\"%s\"), want INVALID_ARGUMENT saying \"%s\", for: %s\n",
                px_result_str(r), msg, mention ? mention : "", line);
        if (r == PX_OK)
            script_turn_release(&t);
    }
    return ok;
}

static void test_script_lines(void)
{
    struct script_turn t;
    if (script_ok("{\"parts\":[{\"text\":\"hi\"},{\"executableCode\":{\"code\":\"print(1)\"}},"
                  "{\"executable_code\":{\"language\":\"PYTHON\",\"code\":\"x\"}}]}", &t)) {
        CHECK(t.nparts == 3);
        CHECK(t.has_fault == 0);
        CHECK(t.fault.times == 1);
        if (t.nparts == 3) {
            CHECK(t.parts[0].kind == GPART_TEXT);
            CHECK_STR(t.parts[0].text, "hi");
            CHECK(t.parts[1].kind == GPART_CODE);
            CHECK_STR(t.parts[1].text, "print(1)");
            CHECK(t.parts[2].kind == GPART_CODE);
        }
        script_turn_release(&t);
        CHECK(t.parts == NULL && t.nparts == 0);
    } else {
        CHECK(0);
    }
    if (script_ok("{\"parts\":[{\"text\":\"a\"}],\"fault\":{\"error\":{\"code\":429,"
                  "\"message\":\"slow down\",\"retryDelay\":\"2s\"},\"delayMs\":150,"
                  "\"cutAfterEvents\":2,\"deadlineMs\":500},\"times\":3}", &t)) {
        CHECK(t.has_fault == 1);
        CHECK(t.fault.error_code == 429);
        CHECK_STR(t.fault.error_status, "RESOURCE_EXHAUSTED");
        CHECK_STR(t.fault.error_message, "slow down");
        CHECK_STR(t.fault.retry_delay, "2s");
        CHECK(t.fault.delay_ms == 150);
        CHECK(t.fault.cut_after_events == 2);
        CHECK(t.fault.deadline_ms == 500);
        CHECK(t.fault.times == 3);
        script_turn_release(&t);
    } else {
        CHECK(0);
    }
    /* A fault alone (an error instead of the turn) needs no parts; the status defaults
     * to the code's google.rpc.Code name (docs/gemini-wire.md, "Errors"), the message to
     * a fixed one. */
    static const struct {
        int code;
        const char *status;
    } defaults[] = {{400, "INVALID_ARGUMENT"}, {401, "UNAUTHENTICATED"},
                    {403, "PERMISSION_DENIED"}, {404, "NOT_FOUND"},
                    {429, "RESOURCE_EXHAUSTED"}, {500, "INTERNAL"}, {503, "UNAVAILABLE"},
                    {504, "DEADLINE_EXCEEDED"}};
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        char line[128];
        snprintf(line, sizeof(line), "{\"fault\":{\"error\":{\"code\":%d}}}", defaults[i].code);
        if (script_ok(line, &t)) {
            CHECK(t.nparts == 0 && t.has_fault);
            CHECK(t.fault.error_code == defaults[i].code);
            CHECK_STR(t.fault.error_status, defaults[i].status);
            CHECK_STR(t.fault.error_message, "Injected by the script.");
            CHECK_STR(t.fault.retry_delay, "");
            script_turn_release(&t);
        } else {
            CHECK(0);
        }
    }
    if (script_ok("{\"parts\":[{\"text\":\"a\"}],\"fault\":{\"error\":{\"code\":500,"
                  "\"status\":\"DATA_LOSS\"}}}", &t)) {
        CHECK_STR(t.fault.error_status, "DATA_LOSS");
        script_turn_release(&t);
    } else {
        CHECK(0);
    }
    /* The largest values. */
    char line[256];
    snprintf(line, sizeof(line), "{\"parts\":[{\"text\":\"a\"}],\"fault\":{\"delayMs\":%u},"
             "\"times\":%u}", LIMIT_SCRIPT_FAULT_VALUE_MAX, LIMIT_SCRIPT_FAULT_VALUE_MAX);
    if (script_ok(line, &t)) {
        CHECK(t.fault.delay_ms == LIMIT_SCRIPT_FAULT_VALUE_MAX);
        CHECK(t.fault.times == LIMIT_SCRIPT_FAULT_VALUE_MAX);
        script_turn_release(&t);
    } else {
        CHECK(0);
    }

    CHECK(script_fails("", NULL));
    CHECK(script_fails("{\"parts\": [}", NULL));
    CHECK(script_fails("[1]", NULL));
    CHECK(script_fails("{}", "parts"));
    CHECK(script_fails("{\"parts\":[]}", "parts"));
    CHECK(script_fails("{\"parts\":{}}", "parts"));
    CHECK(script_fails("{\"parts\":[{\"text\":\"a\"}],\"frob\":1}", "Unknown name \"frob\""));
    CHECK(script_fails("{\"parts\":[{\"codeExecutionResult\":{\"outcome\":\"OUTCOME_OK\"}}]}",
                       "parts[0]: a script's model turn holds text and executableCode parts"));
    CHECK(script_fails("{\"parts\":[{\"text\":\"a\"},{\"inlineData\":{\"mimeType\":\"image/png\","
                       "\"data\":\"\"}}]}", "parts[1]:"));
    CHECK(script_fails("{\"parts\":[{\"text\":5}]}", "Invalid value at 'parts[0].text'"));
    CHECK(script_fails("{\"parts\":[{}]}", "required oneof field 'data'"));
    CHECK(script_fails("{\"parts\":[{\"text\":\"a\"}],\"fault\":5}", "\"fault\" must be an object"));
    CHECK(script_fails("{\"parts\":[{\"text\":\"a\"}],\"fault\":{\"error\":5}}", "fault.error"));
    CHECK(script_fails("{\"parts\":[{\"text\":\"a\"}],\"fault\":{\"error\":{}}}", "fault.error.code"));
    CHECK(script_fails("{\"fault\":{\"error\":{\"code\":200}}}", "fault.error.code"));
    CHECK(script_fails("{\"fault\":{\"error\":{\"code\":600}}}", "fault.error.code"));
    CHECK(script_fails("{\"fault\":{\"error\":{\"code\":\"429\"}}}", "fault.error.code"));
    CHECK(script_fails("{\"fault\":{\"error\":{\"code\":429,\"why\":1}}}", "Unknown name \"why\""));
    CHECK(script_fails("{\"parts\":[{\"text\":\"a\"}],\"fault\":{\"sleep\":1}}",
                       "Unknown name \"sleep\""));
    CHECK(script_fails("{\"parts\":[{\"text\":\"a\"}],\"fault\":{\"delayMs\":-1}}", "fault.delayMs"));
    CHECK(script_fails("{\"parts\":[{\"text\":\"a\"}],\"fault\":{\"deadlineMs\":\"5\"}}",
                       "fault.deadlineMs"));
    snprintf(line, sizeof(line), "{\"parts\":[{\"text\":\"a\"}],\"fault\":{\"cutAfterEvents\":%u}}",
             LIMIT_SCRIPT_FAULT_VALUE_MAX + 1);
    CHECK(script_fails(line, "fault.cutAfterEvents"));
    CHECK(script_fails("{\"parts\":[{\"text\":\"a\"}],\"times\":0}", "times"));
    CHECK(script_fails("{\"parts\":[{\"text\":\"a\"}],\"times\":\"2\"}", "times"));
    CHECK(script_fails("{\"parts\":[{\"text\":\"a\\u0000\"}]}", "NUL"));
}

/* ---- encoders -------------------------------------------------------------------------- */

static struct gemini_meta meta(unsigned long long prompt, unsigned long long cand,
                               unsigned long long tool)
{
    return (struct gemini_meta){.model_version = "gemini-2.5-flash", .response_id = "rid42",
                                .create_time_ms = 1234, .prompt_tokens = prompt,
                                .candidates_tokens = cand, .tool_tokens = tool};
}

static void test_encode_response(void)
{
    static unsigned char png[] = {0x89, 'P', 'N', 'G', 0xfb, 0xff};
    struct gpart parts[] = {
        {.kind = GPART_TEXT, .text = "Let me run it.", .text_len = 14},
        {.kind = GPART_CODE, .text = "print(1)", .text_len = 8, .id = "abcd1234"},
        {.kind = GPART_RESULT, .outcome = OUTCOME_OK, .text = "1\n", .text_len = 2,
         .id = "abcd1234"},
        {.kind = GPART_CODE, .text = "pass", .text_len = 4},
        {.kind = GPART_RESULT, .outcome = OUTCOME_OK},
        {.kind = GPART_RESULT, .outcome = OUTCOME_DEADLINE_EXCEEDED, .text = "x", .text_len = 1},
        {.kind = GPART_INLINE_DATA, .mime = "image/png", .data = png, .data_len = sizeof(png)},
        {.kind = GPART_TEXT, .text = "hm", .text_len = 2, .thought = 1},
        {.kind = GPART_TEXT, .text = "a\0b", .text_len = 3},
    };
    struct gemini_meta m = meta(3, 4, 5);
    size_t len = 0;
    char *json = gemini_encode_response(parts, sizeof(parts) / sizeof(parts[0]), "STOP", &m,
                                        &len);
    CHECK(json != NULL);
    if (!json)
        return;
    CHECK(len == strlen(json));
    CHECK(strchr(json, '\n') == NULL);   /* one line: an SSE event */
    CHECK(strncmp(json, "{\"candidates\":[{\"content\":{", 27) == 0);
    CHECK(strstr(json, "\"parts\":[{\"text\":\"Let me run it.\"},"
                       "{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"print(1)\","
                       "\"id\":\"abcd1234\"}},"
                       "{\"codeExecutionResult\":{\"outcome\":\"OUTCOME_OK\",\"output\":\"1\\n\","
                       "\"id\":\"abcd1234\"}},"
                       "{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"pass\"}},"
                       "{\"codeExecutionResult\":{\"outcome\":\"OUTCOME_OK\"}},"
                       "{\"codeExecutionResult\":{\"outcome\":\"OUTCOME_DEADLINE_EXCEEDED\","
                       "\"output\":\"x\"}},"
                       "{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"iVBOR/v/\"}},"
                       "{\"text\":\"hm\",\"thought\":true},"
                       "{\"text\":\"a\\u0000b\"}]"));
    CHECK(strstr(json, "\"role\":\"model\""));
    CHECK(strstr(json, "\"finishReason\":\"STOP\",\"index\":0}]"));
    CHECK(strstr(json, "\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":4,"
                       "\"totalTokenCount\":12,\"toolUsePromptTokenCount\":5}"));
    CHECK(strstr(json, "\"modelVersion\":\"gemini-2.5-flash\""));
    CHECK(strstr(json, "\"responseId\":\"rid42\""));
    CHECK(strstr(json, "\"createTime\":\"1970-01-01T00:00:01.234Z\""));
    free(json);

    /* A stream's event before the last: no finishReason; no tool tokens, no field. */
    m = meta(7, 1, 0);
    json = gemini_encode_response(parts, 1, NULL, &m, &len);
    CHECK(json != NULL);
    if (json) {
        CHECK(strstr(json, "finishReason") == NULL);
        CHECK(strstr(json, "\"index\":0"));
        CHECK(strstr(json, "toolUsePromptTokenCount") == NULL);
        CHECK(strstr(json, "\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":1,"
                           "\"totalTokenCount\":8}"));
        CHECK(strstr(json, "\"parts\":[{\"text\":\"Let me run it.\"}]"));
        free(json);
    }

    /* Standard padded base64 for every length. */
    static const struct {
        size_t n;
        const char *b64;
    } lens[] = {{0, ""}, {1, "iQ=="}, {2, "iVA="}, {3, "iVBO"}, {5, "iVBOR/s="}};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        struct gpart img = {.kind = GPART_INLINE_DATA, .mime = "image/png", .data = png,
                            .data_len = lens[i].n};
        json = gemini_encode_response(&img, 1, "STOP", &m, &len);
        char want[96];
        snprintf(want, sizeof(want), "{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"%s\"}}",
                 lens[i].b64);
        CHECK(json && strstr(json, want));
        free(json);
    }
}

static void test_encode_count_tokens(void)
{
    size_t len = 0;
    char *json = gemini_encode_count_tokens(42, &len);
    CHECK_STR(json, "{\"totalTokens\":42}");
    CHECK(json && len == strlen(json));
    free(json);
    json = gemini_encode_count_tokens(0, &len);
    CHECK_STR(json, "{\"totalTokens\":0}");
    free(json);
}

static void test_encode_model(void)
{
    struct gemini_model m = {.id = "gemini-2.5-flash", .description = "Served by pyexecd: echo"};
    size_t len = 0;
    char *json = gemini_encode_model("models/", &m, &len);
    CHECK(json != NULL);
    if (json) {
        CHECK(len == strlen(json));
        CHECK(json[0] == '{' && json[len - 1] == '}');
        CHECK(strstr(json, "\"name\":\"models/gemini-2.5-flash\""));
        CHECK(strstr(json, "\"baseModelId\":\"gemini-2.5-flash\""));
        CHECK(strstr(json, "\"displayName\":\"gemini-2.5-flash (pyexecd)\""));
        CHECK(strstr(json, "\"description\":\"Served by pyexecd: echo\""));
        CHECK(strstr(json, "\"version\":\"pyexecd-"));
        CHECK(strstr(json, "\"inputTokenLimit\":"));
        CHECK(strstr(json, "\"outputTokenLimit\":"));
        CHECK(strstr(json, "\"supportedGenerationMethods\":[\"generateContent\","
                           "\"streamGenerateContent\",\"countTokens\"]"));
        free(json);
    }
    json = gemini_encode_model("publishers/google/models/", &m, &len);
    CHECK(json && strstr(json, "\"name\":\"publishers/google/models/gemini-2.5-flash\""));
    CHECK(json && strstr(json, "\"baseModelId\":\"gemini-2.5-flash\""));
    free(json);
}

static void test_encode_model_list(void)
{
    struct gemini_model ms[] = {{.id = "a", .description = "A"}, {.id = "b", .description = "B"}};
    size_t len = 0;
    char *json = gemini_encode_model_list("models/", ms, 2, "2", &len);
    CHECK(json != NULL);
    if (json) {
        CHECK(len == strlen(json));
        CHECK(strncmp(json, "{\"models\":[{", 12) == 0);
        const char *a = strstr(json, "\"name\":\"models/a\"");
        const char *b = strstr(json, "\"name\":\"models/b\"");
        CHECK(a && b && a < b);
        CHECK(strstr(json, "],\"nextPageToken\":\"2\"}"));
        free(json);
    }
    /* The last page: no nextPageToken at all (never an empty one). */
    json = gemini_encode_model_list("publishers/google/models/", ms, 1, NULL, &len);
    CHECK(json != NULL);
    if (json) {
        CHECK(strstr(json, "nextPageToken") == NULL);
        CHECK(strstr(json, "\"name\":\"publishers/google/models/a\""));
        CHECK(strstr(json, "models/b") == NULL);
        CHECK(json[len - 2] == ']' && json[len - 1] == '}');
        free(json);
    }
    json = gemini_encode_model_list("models/", ms, 0, NULL, &len);
    CHECK_STR(json, "{\"models\":[]}");
    free(json);
}

int main(void)
{
    test_camel_case();
    test_snake_case();
    test_base64_alphabets();
    test_history();
    test_system_instruction();
    test_tools();
    test_null_fields();
    test_count_tokens_bodies();
    test_tokens();
    test_model_turns();
    test_reject_messages();
    test_json_values_limit();
    test_input_limit();
    test_script_lines();
    test_encode_response();
    test_encode_count_tokens();
    test_encode_model();
    test_encode_model_list();
    return check_done();
}
