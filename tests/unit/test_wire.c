/* The JSON wire codec: which request bodies are accepted and what they become, which are
 * refused (and that a refusal leaves nothing behind), and the exact reply JSON. */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/result.h"
#include "common/isolation.h"
#include "server/base64.h"
#include "server/execution.h"
#include "server/wire.h"
#include "tests/unit/check.h"

#define CODE(c) "{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"" c "\"}}"

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
    b->p[b->len] = '\0';   /* wire_parse_execute needs body[len] == '\0' */
}

static void sb_add(struct sb *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

/* A Content whose parts are n copies of `part`. */
static void sb_parts(struct sb *b, const char *part, size_t n)
{
    sb_add(b, "{\"parts\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            sb_add(b, ",");
        sb_add(b, part);
    }
    sb_add(b, "]}");
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

/* Parses a body expected to succeed; returns 1 on success (w and req then filled). */
static int parse_ok(const char *body, size_t len, struct wire_execute **w,
                    struct exec_request *req)
{
    char msg[512] = "";
    enum px_result r = wire_parse_execute(body, len, LIMIT_INPUT_FILE_BYTES, w, req, msg,
                                          sizeof(msg));
    if (r != PX_OK) {
        fprintf(stderr, "  unexpected failure (%s: %s) for: %.200s\n", px_result_str(r), msg,
                body);
        return 0;
    }
    return *w != NULL;
}

static void release(struct wire_execute *w, struct exec_request *req)
{
    wire_execute_free(w);
    exec_request_release(req);
}

/* Parses a body expected to fail with `want`: also checks there is a message for the
 * client and nothing left to free. Returns 1 when all of that holds. */
static int parse_fails_saying(const char *body, size_t len, enum px_result want,
                              const char *mention)
{
    char msg[512] = "";
    struct wire_execute *w = (struct wire_execute *)&msg;   /* must be reset to NULL */
    struct exec_request req;
    memset(&req, 0xA5, sizeof(req));
    enum px_result r = wire_parse_execute(body, len, LIMIT_INPUT_FILE_BYTES, &w, &req, msg,
                                          sizeof(msg));
    int ok = r == want && msg[0] != '\0' && w == NULL && req.codes == NULL &&
             req.code_lens == NULL && req.ncodes == 0 && req.files == NULL && req.nfiles == 0 &&
             (!mention || strstr(msg, mention));
    if (!ok) {
        fprintf(stderr, "  got %s (\"%s\"), want %s%s%s, for: %.200s\n", px_result_str(r), msg,
                px_result_str(want), mention ? " saying " : "", mention ? mention : "", body);
        if (r == PX_OK)
            release(w, &req);
    }
    return ok;
}

static int parse_fails(const char *body, size_t len, enum px_result want)
{
    return parse_fails_saying(body, len, want, NULL);
}

/* Refused as invalid, with a message naming the reason. */
#define INVALID_SAYING(body, mention) \
    CHECK(parse_fails_saying((body), strlen(body), PX_INVALID_ARGUMENT, (mention)))
#define FAILS(body, want) CHECK(parse_fails((body), strlen(body), (want)))
#define INVALID(body) FAILS(body, PX_INVALID_ARGUMENT)

/* ---- parsing: accepted bodies ------------------------------------------------------- */

/* A bare Part, camelCase and snake_case, is one code block. */
static void test_single_part(void)
{
    static const char *bodies[] = {
        "{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"print(1)\"}}",
        "{\"executable_code\":{\"language\":\"PYTHON\",\"code\":\"print(1)\"}}",
        /* whitespace around the value is fine */
        " \n{ \"executableCode\" : { \"code\" : \"print(1)\", \"language\" : \"PYTHON\" } }\n",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct wire_execute *w;
        struct exec_request req;
        if (!parse_ok(bodies[i], strlen(bodies[i]), &w, &req)) {
            CHECK(0);
            continue;
        }
        CHECK(req.ncodes == 1);
        CHECK_STR(req.codes[0], "print(1)");
        CHECK(req.code_lens[0] == 8);
        CHECK(req.nfiles == 0);
        release(w, &req);
    }
}

/* A Content with a role, and several code parts among text parts: blocks in order. */
static void test_content(void)
{
    const char *body =
        "{\"parts\":[{\"text\":\"first\"}," CODE("a = 1") "," CODE("print(a)\\n")
        ",{\"text\":\"between\"}," CODE("x = '\\u00e9'") "],\"role\":\"user\"}";
    struct wire_execute *w;
    struct exec_request req;
    if (!parse_ok(body, strlen(body), &w, &req)) {
        CHECK(0);
        return;
    }
    CHECK(req.ncodes == 3);
    if (req.ncodes == 3) {
        CHECK_STR(req.codes[0], "a = 1");
        CHECK_STR(req.codes[1], "print(a)\n");
        CHECK_STR(req.codes[2], "x = '\xC3\xA9'");
        CHECK(req.code_lens[1] == 9);
        CHECK(req.code_lens[2] == 8);
    }
    CHECK(req.nfiles == 0);
    release(w, &req);

    /* role is optional. */
    const char *no_role = "{\"parts\":[" CODE("pass") "]}";
    if (parse_ok(no_role, strlen(no_role), &w, &req)) {
        CHECK(req.ncodes == 1);
        release(w, &req);
    } else {
        CHECK(0);
    }
}

/* Whether body parses into exactly ncodes code blocks. */
static int parses_with_blocks(const char *body, size_t ncodes)
{
    struct wire_execute *w;
    struct exec_request req;
    if (!parse_ok(body, strlen(body), &w, &req))
        return 0;
    int ok = req.ncodes == ncodes;
    release(w, &req);
    return ok;
}

/* proto3 JSON: a null value is the field's default, as if it were absent. */
static void test_null_fields(void)
{
    static const char *bodies[] = {
        "{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"pass\",\"id\":null}}",
        "{\"parts\":[" CODE("pass") ",{\"text\":\"t\",\"thought\":null}],\"role\":null}",
        "{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"pass\",\"id\":\"\"}}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        CHECK(parses_with_blocks(bodies[i], 1));
    /* ...so a null where a value is required is a missing value. */
    INVALID("{\"executableCode\":{\"language\":\"PYTHON\",\"code\":null}}");
    INVALID("{\"executableCode\":{\"language\":null,\"code\":\"x\"}}");
    INVALID("{\"parts\":null}");
    INVALID("{\"executableCode\":null}");
}

/* thoughtSignature is a bytes field: base64 or refused. */
static void test_thought_signature(void)
{
    const char *ok = "{\"parts\":[{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"x\"},"
                     "\"thoughtSignature\":\"c2lnbmF0dXJl\"}]}";
    CHECK(parses_with_blocks(ok, 1));
    INVALID_SAYING("{\"parts\":[{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"x\"},"
                   "\"thoughtSignature\":\"not base64!\"}]}", "thought_signature");
}

/* inlineData parts become input_file_N.ext, N counting inlineData parts only, the
 * extension from the MIME type whatever its case and parameters. */
static void test_input_files(void)
{
    const char *body =
        "{\"parts\":["
        "{\"inlineData\":{\"mimeType\":\"text/csv\",\"data\":\"YSxiCjEsMgo=\"}},"
        "{\"text\":\"look at these\"},"
        CODE("print(open('input_file_0.csv').read())") ","
        "{\"inline_data\":{\"mime_type\":\"image/png\",\"data\":\"iVBORw\"}},"
        "{\"inlineData\":{\"mimeType\":\"text/plain; charset=utf-8\",\"data\":\"aGk=\"}},"
        "{\"inlineData\":{\"mimeType\":\"IMAGE/JPEG\",\"data\":\"\"}},"
        "{\"inlineData\":{\"mimeType\":\"Text/CSV;charset=UTF-8\",\"data\":\"eA==\","
        "\"displayName\":\"data.csv\"}}"
        "]}";
    struct wire_execute *w;
    struct exec_request req;
    if (!parse_ok(body, strlen(body), &w, &req)) {
        CHECK(0);
        return;
    }
    CHECK(req.ncodes == 1);
    CHECK(req.nfiles == 5);
    if (req.nfiles == 5) {
        CHECK_STR(req.files[0].ext, "csv");
        CHECK(req.files[0].len == 8 && memcmp(req.files[0].data, "a,b\n1,2\n", 8) == 0);
        CHECK_STR(req.files[1].ext, "png");
        CHECK(req.files[1].len == 4 && memcmp(req.files[1].data, "\x89PNG", 4) == 0);
        CHECK_STR(req.files[2].ext, "txt");
        CHECK(req.files[2].len == 2 && memcmp(req.files[2].data, "hi", 2) == 0);
        CHECK_STR(req.files[3].ext, "jpeg");
        CHECK(req.files[3].len == 0);
        CHECK_STR(req.files[4].ext, "csv");
        CHECK(req.files[4].len == 1 && req.files[4].data[0] == 'x');
    }
    release(w, &req);
}

/* "\\u0000" in JSON is a backslash followed by "u0000": literal text, not a NUL. */
static void test_escaped_backslash_u0000(void)
{
    const char *body = CODE("print('\\\\u0000')");
    struct wire_execute *w;
    struct exec_request req;
    if (!parse_ok(body, strlen(body), &w, &req)) {
        CHECK(0);
        return;
    }
    CHECK(req.ncodes == 1);
    CHECK_STR(req.codes[0], "print('\\u0000')");
    release(w, &req);
}

/* language 1 is the enum's number for PYTHON, which proto3 JSON also accepts. */
static void test_language_number(void)
{
    const char *body = "{\"executableCode\":{\"language\":1,\"code\":\"pass\"}}";
    struct wire_execute *w;
    struct exec_request req;
    if (!parse_ok(body, strlen(body), &w, &req)) {
        CHECK(0);
        return;
    }
    CHECK(req.ncodes == 1);
    CHECK_STR(req.codes[0], "pass");
    release(w, &req);
}

/* Exactly LIMIT_PARTS parts is fine; one more is refused. */
static void test_part_limit(void)
{
    struct sb b = {0};
    sb_parts(&b, CODE("pass"), LIMIT_PARTS);
    struct wire_execute *w;
    struct exec_request req;
    if (parse_ok(b.p, b.len, &w, &req)) {
        CHECK(req.ncodes == LIMIT_PARTS);
        release(w, &req);
    } else {
        CHECK(0);
    }
    free(b.p);

    memset(&b, 0, sizeof(b));
    sb_parts(&b, CODE("pass"), LIMIT_PARTS + 1);
    CHECK(parse_fails(b.p, b.len, PX_TOO_LARGE));
    free(b.p);

    /* Text parts count too. */
    memset(&b, 0, sizeof(b));
    sb_add(&b, "{\"parts\":[" CODE("pass"));
    for (int i = 0; i < LIMIT_PARTS; i++)
        sb_add(&b, ",{\"text\":\"t\"}");
    sb_add(&b, "]}");
    CHECK(parse_fails(b.p, b.len, PX_TOO_LARGE));
    free(b.p);
}

/* Input files may total LIMIT_INPUT_FILE_BYTES decoded bytes, not one more. */
static void test_input_bytes_limit(void)
{
    size_t half = LIMIT_INPUT_FILE_BYTES / 2;
    for (int over = 0; over <= 1; over++) {
        struct sb b = {0};
        sb_add(&b, "{\"parts\":[");
        sb_inline_data(&b, "text/csv", half, 'a');
        sb_add(&b, ",");
        sb_inline_data(&b, "text/csv", LIMIT_INPUT_FILE_BYTES - half + (size_t)over, 'b');
        sb_add(&b, "," CODE("pass") "]}");
        if (over) {
            CHECK(parse_fails(b.p, b.len, PX_TOO_LARGE));
        } else {
            struct wire_execute *w;
            struct exec_request req;
            if (parse_ok(b.p, b.len, &w, &req)) {
                CHECK(req.nfiles == 2);
                CHECK(req.nfiles == 2 &&
                      req.files[0].len + req.files[1].len == LIMIT_INPUT_FILE_BYTES);
                release(w, &req);
            } else {
                CHECK(0);
            }
        }
        free(b.p);
    }
}

/* ---- parsing: refused bodies -------------------------------------------------------- */

/* Not JSON, not an object, or bytes that are not UTF-8. */
static void test_reject_malformed(void)
{
    INVALID("{\"executableCode\":");
    INVALID("{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"x\"}} trailing");
    INVALID("{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"x\",}}");
    CHECK(parse_fails("", 0, PX_INVALID_ARGUMENT));
    INVALID("   ");
    INVALID("[" CODE("x") "]");
    INVALID("\"executableCode\"");
    INVALID("42");
    INVALID("null");
    /* Raw invalid UTF-8 inside a string, and an overlong form. */
    INVALID(CODE("print('\xff')"));
    INVALID(CODE("print('\xC0\xA7')"));
    INVALID(CODE("print('\xED\xA0\x80')"));
}

/* A NUL inside a string, escaped or raw, would run other code than was sent. */
static void test_reject_nul(void)
{
    INVALID(CODE("a\\u0000b"));
    INVALID("{\"parts\":[" CODE("x") ",{\"text\":\"\\u0000\"}]}");
    static const char raw[] = "{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"a\0b\"}}";
    CHECK(parse_fails(raw, sizeof(raw) - 1, PX_INVALID_ARGUMENT));
}

/* The code and its language must be there and be Python. */
static void test_reject_code_fields(void)
{
    INVALID("{\"executableCode\":{\"language\":\"PYTHON\"}}");            /* no code */
    INVALID(CODE(""));                                                      /* empty code */
    INVALID("{\"executableCode\":{\"language\":\"PYTHON\",\"code\":5}}");  /* not a string */
    INVALID("{\"executableCode\":{\"language\":\"JAVA\",\"code\":\"x\"}}");
    INVALID("{\"executableCode\":{\"code\":\"x\"}}");                      /* no language */
    INVALID("{\"executableCode\":{\"language\":2,\"code\":\"x\"}}");
    INVALID("{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"x\",\"id\":7}}");
    INVALID("{\"executableCode\":\"print(1)\"}");                          /* not an object */
}

/* proto3 JSON: unknown names and repeated fields are errors at every level. */
static void test_reject_fields(void)
{
    INVALID_SAYING("{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"x\"},\"foo\":1}",
                   "Unknown name \"foo\"");
    INVALID_SAYING("{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"x\",\"foo\":1}}",
                   "Unknown name \"foo\"");
    INVALID("{\"parts\":[" CODE("x") "],\"foo\":1}");
    INVALID("{\"parts\":[" CODE("x") "],\"role\":\"user\",\"role\":\"user\"}");
    INVALID_SAYING("{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"x\",\"code\":\"y\"}}",
                   "Duplicate field \"code\"");
    /* The same field under its two names is a duplicate too. */
    INVALID("{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"x\"},"
            "\"executable_code\":{\"language\":\"PYTHON\",\"code\":\"y\"}}");
    INVALID("{\"parts\":[{\"inlineData\":{\"mimeType\":\"text/csv\",\"mime_type\":\"text/csv\","
            "\"data\":\"\"}}," CODE("x") "]}");
    INVALID("{\"parts\":[" CODE("x") "],\"role\":5}");
}

/* Each part holds exactly one supported kind of content. */
static void test_reject_parts(void)
{
    INVALID("{\"parts\":[{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"x\"},"
            "\"text\":\"t\"}]}");
    INVALID("{}");
    INVALID("{\"parts\":[{}]}");
    INVALID("{\"parts\":[]}");
    INVALID("{\"parts\":{}}");
    INVALID("{\"parts\":[" CODE("x") ",5]}");
    /* Results and file references are refused as such, also beside a code field. */
    INVALID_SAYING("{\"parts\":[" CODE("x") ","
                   "{\"codeExecutionResult\":{\"outcome\":\"OUTCOME_OK\",\"output\":\"1\"}}]}",
                   "code_execution_result");
    INVALID_SAYING("{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"x\"},"
                   "\"codeExecutionResult\":{\"outcome\":\"OUTCOME_OK\"}}",
                   "code_execution_result");
    INVALID_SAYING("{\"parts\":[" CODE("x") ","
                   "{\"fileData\":{\"mimeType\":\"text/csv\",\"fileUri\":\"gs://b/f.csv\"}}]}",
                   "file_data");
    INVALID_SAYING("{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"x\"},"
                   "\"fileData\":{\"fileUri\":\"gs://b/f.csv\"}}",
                   "file_data");
    INVALID("{\"parts\":[" CODE("x") ",{\"functionCall\":{\"name\":\"f\"}}]}");
    INVALID("{\"parts\":[" CODE("x") ",{\"text\":5}]}");
    /* Nothing to run. */
    INVALID("{\"parts\":[{\"text\":\"only text\"}]}");
    INVALID("{\"text\":\"only text\"}");
}

/* Input files: a supported MIME type and valid base64. */
static void test_reject_inline_data(void)
{
    INVALID("{\"parts\":[{\"inlineData\":{\"mimeType\":\"application/pdf\",\"data\":\"eA==\"}},"
            CODE("x") "]}");
    INVALID("{\"parts\":[{\"inlineData\":{\"mimeType\":\"text/csvx\",\"data\":\"eA==\"}},"
            CODE("x") "]}");
    INVALID("{\"parts\":[{\"inlineData\":{\"mimeType\":\"text/csv\",\"data\":\"e@==\"}},"
            CODE("x") "]}");
    INVALID("{\"parts\":[{\"inlineData\":{\"mimeType\":\"text/csv\",\"data\":\"e\"}},"
            CODE("x") "]}");
    INVALID("{\"parts\":[{\"inlineData\":{\"data\":\"eA==\"}}," CODE("x") "]}");
    INVALID("{\"parts\":[{\"inlineData\":{\"mimeType\":\"text/csv\"}}," CODE("x") "]}");
    /* A failure after an accepted file still leaves nothing to free. */
    INVALID("{\"parts\":[{\"inlineData\":{\"mimeType\":\"text/csv\",\"data\":\"eA==\"}},"
            CODE("x") ",{\"inlineData\":{\"mimeType\":\"application/pdf\",\"data\":\"\"}}]}");
}

/* ---- encoding ------------------------------------------------------------------------ */

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        exit(2);
    return p;
}

/* The reply: every request part in order; each code part followed by its results
 * (carrying its id) and its images; absent outputs omitted; metadata only when a limit
 * was hit. */
static void test_encode_execute(void)
{
    const char *body =
        "{\"parts\":["
        "{\"text\":\"Run this\"},"
        "{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"print(1)\",\"id\":\"c1\"},"
        "\"thought\":true,\"thoughtSignature\":\"sig\"},"
        "{\"inline_data\":{\"mime_type\":\"text/csv\",\"data\":\"YSxi\"}},"
        "{\"executable_code\":{\"code\":\"raise X\",\"language\":1}}"
        "],\"role\":\"user\"}";
    struct wire_execute *w;
    struct exec_request req;
    if (!parse_ok(body, strlen(body), &w, &req)) {
        CHECK(0);
        return;
    }
    exec_request_release(&req);

    struct exec_result *res = calloc(1, sizeof(*res));
    res->nblocks = 2;
    res->blocks = calloc(2, sizeof(struct block_result));
    struct block_result *b0 = &res->blocks[0], *b1 = &res->blocks[1];
    b0->nentries = 1;
    b0->entries[0] = (struct result_entry){OUTCOME_OK, xstrdup("1\n"), 2};
    b0->nimages = 1;
    b0->images = calloc(1, sizeof(struct image));
    b0->images[0].mime = xstrdup("image/png");
    b0->images[0].data = (unsigned char *)xstrdup("\x89PNG");
    b0->images[0].len = 4;
    b1->nentries = 2;
    b1->entries[0] = (struct result_entry){OUTCOME_OK, xstrdup("partial \"q\"\n"), 12};
    b1->entries[1] = (struct result_entry){OUTCOME_FAILED, NULL, 0};

    static const char parts[] =
        "{\"parts\":["
        "{\"text\":\"Run this\"},"
        "{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"print(1)\",\"id\":\"c1\"},"
        "\"thought\":true,\"thoughtSignature\":\"sig\"},"
        "{\"codeExecutionResult\":{\"outcome\":\"OUTCOME_OK\",\"output\":\"1\\n\",\"id\":\"c1\"}},"
        "{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"iVBORw==\"}},"
        "{\"inlineData\":{\"mimeType\":\"text/csv\",\"data\":\"YSxi\"}},"
        "{\"executableCode\":{\"language\":\"PYTHON\",\"code\":\"raise X\"}},"
        "{\"codeExecutionResult\":{\"outcome\":\"OUTCOME_OK\",\"output\":\"partial \\\"q\\\"\\n\"}},"
        "{\"codeExecutionResult\":{\"outcome\":\"OUTCOME_FAILED\"}}"
        "]";

    size_t len = 0;
    char *json = wire_encode_execute(w, res, &len);
    char want[2048];
    snprintf(want, sizeof(want), "%s}", parts);
    CHECK_STR(json, want);
    CHECK(json && len == strlen(json));
    free(json);

    /* Each limit adds executionMetadata after the parts, with its name. */
    static const struct {
        enum limit_hit limit;
        const char *name;
    } limits[] = {
        {LIMIT_HIT_DEADLINE, "DEADLINE"}, {LIMIT_HIT_OUTPUT, "OUTPUT_BYTES"},
        {LIMIT_HIT_IMAGES, "IMAGES"}, {LIMIT_HIT_CRASH, "INTERPRETER_CRASH"},
    };
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        res->limit = limits[i].limit;
        snprintf(want, sizeof(want), "%s,\"executionMetadata\":{\"limitReached\":\"%s\"}}",
                 parts, limits[i].name);
        json = wire_encode_execute(w, res, NULL);
        CHECK_STR(json, want);
        free(json);
    }

    /* A deadline outcome has its own name. */
    res->limit = LIMIT_HIT_NONE;
    b1->entries[1].outcome = OUTCOME_DEADLINE_EXCEEDED;
    json = wire_encode_execute(w, res, NULL);
    CHECK(json && strstr(json, "{\"codeExecutionResult\":{\"outcome\":"
                               "\"OUTCOME_DEADLINE_EXCEEDED\"}}]}") != NULL);
    CHECK(json && !strstr(json, "executionMetadata"));
    free(json);

    exec_result_free(res);
    wire_execute_free(w);
}

/* Output holding a NUL byte (Python's print("a\0b") writes one; it is valid UTF-8 and
 * block_output keeps it, output_len counting it) reaches the client whole, the NUL
 * escaped as JSON's \u0000, not cut off at the NUL; other control characters are
 * escaped as JSON requires. */
static void test_encode_output_with_nul(void)
{
    const char *body = CODE("run()");
    struct wire_execute *w;
    struct exec_request req;
    if (!parse_ok(body, strlen(body), &w, &req)) {
        CHECK(0);
        return;
    }
    exec_request_release(&req);
    struct exec_result *res = calloc(1, sizeof(*res));
    res->nblocks = 1;
    res->blocks = calloc(1, sizeof(struct block_result));
    res->blocks[0].nentries = 1;
    /* Also every other character JSON requires escaped. */
    static const char raw[] = "a\0b\x01\x1f\t\r\b\f\"\\/\x7f\n";
    char *out = malloc(sizeof(raw));
    memcpy(out, raw, sizeof(raw));
    res->blocks[0].entries[0] = (struct result_entry){OUTCOME_OK, out, sizeof(raw) - 1};
    char *json = wire_encode_execute(w, res, NULL);
    CHECK_STR(json, "{\"parts\":[{\"executableCode\":{\"language\":\"PYTHON\","
                    "\"code\":\"run()\"}},{\"codeExecutionResult\":"
                    "{\"outcome\":\"OUTCOME_OK\",\"output\":"
                    "\"a\\u0000b\\u0001\\u001f\\t\\r\\b\\f\\\"\\\\/\x7f\\n\"}}]}");
    free(json);
    exec_result_free(res);
    wire_execute_free(w);
}

/* The Google error body, exactly; a message quoting client bytes is made valid UTF-8. */
static void test_encode_error(void)
{
    size_t len = 0;
    char *json = wire_encode_error(400, "Bad \"x\"", "INVALID_ARGUMENT", &len);
    CHECK_STR(json, "{\"error\":{\"code\":400,\"message\":\"Bad \\\"x\\\"\","
                    "\"status\":\"INVALID_ARGUMENT\"}}");
    CHECK(json && len == strlen(json));
    free(json);

    json = wire_encode_error(503, "", "UNAVAILABLE", NULL);
    CHECK_STR(json, "{\"error\":{\"code\":503,\"message\":\"\",\"status\":\"UNAVAILABLE\"}}");
    free(json);

    json = wire_encode_error(400, "bad \xff byte \xC3", "INVALID_ARGUMENT", NULL);
    CHECK_STR(json, "{\"error\":{\"code\":400,\"message\":\"bad \xEF\xBF\xBD byte \xEF\xBF\xBD\","
                    "\"status\":\"INVALID_ARGUMENT\"}}");
    free(json);
}

/* /healthz: isolation layers are null until probed, then true/false per bit. */
static void test_encode_health(void)
{
    struct health_report h;
    memset(&h, 0, sizeof(h));
    h.zygote_state = ZYGOTE_STARTING;
    h.layers = ISO_SECCOMP | ISO_NET_NS;   /* ignored while not known */
    h.layers_known = 0;
    char *json = wire_encode_health(&h, NULL);
    CHECK(json && strstr(json, "\"isolation\":{\"seccomp\":null,\"noNewPrivs\":null,"
                               "\"rlimits\":null,\"uidDrop\":null,\"mountNamespace\":null,"
                               "\"networkNamespace\":null,\"ipcNamespace\":null,"
                               "\"utsNamespace\":null,\"pidNamespace\":null,"
                               "\"userNamespace\":null,\"landlock\":null,"
                               "\"cgroupMemory\":null,\"cgroupPids\":null,\"minimalRoot\":null}"));
    CHECK(json && strstr(json, "\"status\":\"unavailable\""));
    CHECK(json && strstr(json, "\"replica\":null"));   /* none */
    free(json);

    h.zygote_state = ZYGOTE_READY;
    h.layers_known = 1;
    h.replica_id = "r1";
    snprintf(h.interpreter.python, sizeof(h.interpreter.python), "3.11.2");
    h.interpreter.nlibraries = 2;
    snprintf(h.interpreter.libraries[0].name, 64, "numpy");
    snprintf(h.interpreter.libraries[0].version, 32, "2.3.5");
    snprintf(h.interpreter.libraries[1].name, 64, "chess");   /* not installed: null */
    h.interpreter.nfailures = 1;
    snprintf(h.interpreter.import_failures[0], 256, "chess: ImportError: \"x\"");
    size_t len = 0;
    json = wire_encode_health(&h, &len);
    CHECK(json && strstr(json, "\"isolation\":{\"seccomp\":true,\"noNewPrivs\":false,"
                               "\"rlimits\":false,\"uidDrop\":false,\"mountNamespace\":false,"
                               "\"networkNamespace\":true,\"ipcNamespace\":false,"
                               "\"utsNamespace\":false,\"pidNamespace\":false,"
                               "\"userNamespace\":false,\"landlock\":false,"
                               "\"cgroupMemory\":false,\"cgroupPids\":false,\"minimalRoot\":false}"));
    CHECK(json && strstr(json, "\"status\":\"ok\""));
    CHECK(json && strstr(json, "\"python\":\"3.11.2\""));
    CHECK(json && strstr(json, "\"replica\":\"r1\""));
    CHECK(json && strstr(json, "\"libraries\":{\"numpy\":\"2.3.5\",\"chess\":null}"));
    CHECK(json && strstr(json, "\"importFailures\":[\"chess: ImportError: \\\"x\\\"\"]"));
    CHECK(json && len == strlen(json));
    free(json);
}

int main(void)
{
    test_single_part();
    test_content();
    test_input_files();
    test_escaped_backslash_u0000();
    test_language_number();
    test_null_fields();
    test_thought_signature();
    test_part_limit();
    test_input_bytes_limit();
    test_reject_malformed();
    test_reject_nul();
    test_reject_code_fields();
    test_reject_fields();
    test_reject_parts();
    test_reject_inline_data();
    test_encode_execute();
    test_encode_output_with_nul();
    test_encode_error();
    test_encode_health();
    return check_done();
}
