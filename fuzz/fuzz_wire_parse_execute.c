/* POST /v1/execute and /v1/sessions/<id>:execute bodies: wire_parse_execute
 * (server/wire.c) on a NUL-terminated copy of the input, as server/routes.c calls it.
 *
 * Properties, besides "no crash, no leak, no UB":
 * - a refusal leaves nothing to free and has a message, whose error body
 *   (error_body_for, as reply_error sends it) is valid JSON and UTF-8;
 * - an accepted request has at least one block; each code is non-empty valid UTF-8 of the
 *   length reported; each input file has an extension; the files fit the limit;
 * - the reply (wire_encode_execute, with results made up for every block) is valid JSON
 *   and UTF-8;
 * - the echo alone (the reply with no results) parses again to the same code and files;
 * - with the limit set one byte below what the files decode to, the same body is refused
 *   with PX_TOO_LARGE. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "fuzz/fuzz_util.h"
#include "server/error_reply.h"
#include "server/execution.h"
#include "server/wire.h"

static size_t file_bytes(const struct exec_request *req)
{
    size_t total = 0;
    for (size_t i = 0; i < req->nfiles; i++)
        total += req->files[i].len;
    return total;
}

/* Results for every block: outcomes and outputs varied, an image on the first. */
static struct exec_result *make_results(const struct exec_request *req)
{
    struct exec_result *res = calloc(1, sizeof(*res));
    if (!res)
        abort();
    res->nblocks = req->ncodes;
    res->blocks = calloc(req->ncodes, sizeof(*res->blocks));
    if (!res->blocks)
        abort();
    for (size_t i = 0; i < req->ncodes; i++) {
        struct block_result *b = &res->blocks[i];
        b->nentries = 1 + (i % 2);
        for (size_t e = 0; e < b->nentries; e++) {
            b->entries[e].outcome = (enum outcome)(1 + (i + e) % 3);
            if ((i + e) % 4 == 3)
                continue;   /* an absent output field */
            b->entries[e].output = malloc(req->code_lens[i] + 1);
            if (!b->entries[e].output)
                abort();
            memcpy(b->entries[e].output, req->codes[i], req->code_lens[i] + 1);
            b->entries[e].output_len = req->code_lens[i];
        }
    }
    if (req->nfiles) {
        struct block_result *b = &res->blocks[0];
        b->images = calloc(1, sizeof(*b->images));
        if (!b->images)
            abort();
        b->images[0].mime = strdup("image/png");
        b->images[0].len = req->files[0].len;
        b->images[0].data = malloc(req->files[0].len ? req->files[0].len : 1);
        if (!b->images[0].mime || !b->images[0].data)
            abort();
        memcpy(b->images[0].data, req->files[0].data, req->files[0].len);
        b->nimages = 1;
    }
    res->limit = (enum limit_hit)(req->ncodes % 12);
    res->session_ended = req->nfiles % 2;
    return res;
}

static void check_refusal(enum px_result r, struct wire_execute *w,
                          const struct exec_request *req, const char *msg)
{
    FUZZ_CHECK(r == PX_INVALID_ARGUMENT || r == PX_TOO_LARGE, "execute-result",
               "wire_parse_execute returned %d", (int)r);
    FUZZ_CHECK(w == NULL, "execute-refusal-clean", "a refusal returned a wire_execute");
    FUZZ_CHECK(req->codes == NULL && req->files == NULL && req->ncodes == 0 &&
               req->nfiles == 0, "execute-refusal-clean", "a refusal left a request to free");
    FUZZ_CHECK(msg[0] != '\0', "execute-refusal-message", "a refusal without a message");
    size_t len = 0;
    char *body = error_body_for(r, msg, &len);
    fuzz_check_json_output("execute-error-body", "error_body_for", body, len, 1);
    free(body);
}

static void check_request(const struct exec_request *req)
{
    FUZZ_CHECK(req->ncodes >= 1, "execute-has-code", "accepted with no code block");
    for (size_t i = 0; i < req->ncodes; i++) {
        FUZZ_CHECK(req->codes[i] && req->code_lens[i] == strlen(req->codes[i]) &&
                   req->code_lens[i] > 0, "execute-code", "code %zu: bad length", i);
        FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)req->codes[i], req->code_lens[i]),
                   "execute-code-utf8", "code %zu is not valid UTF-8", i);
    }
    for (size_t i = 0; i < req->nfiles; i++)
        FUZZ_CHECK(req->files[i].ext && req->files[i].ext[0] && req->files[i].data,
                   "execute-file", "file %zu has no extension or data", i);
    FUZZ_CHECK(file_bytes(req) <= LIMIT_INPUT_FILE_BYTES, "execute-file-limit",
               "files total %zu bytes", file_bytes(req));
}

static void check_same(const struct exec_request *a, const struct exec_request *b)
{
    FUZZ_CHECK(a->ncodes == b->ncodes && a->nfiles == b->nfiles, "echo-roundtrip",
               "echo parsed to %zu codes, %zu files; the request had %zu, %zu", b->ncodes,
               b->nfiles, a->ncodes, a->nfiles);
    for (size_t i = 0; i < a->ncodes && i < b->ncodes; i++)
        FUZZ_CHECK(a->code_lens[i] == b->code_lens[i] &&
                   memcmp(a->codes[i], b->codes[i], a->code_lens[i]) == 0,
                   "echo-roundtrip", "code %zu differs after the echo", i);
    for (size_t i = 0; i < a->nfiles && i < b->nfiles; i++)
        FUZZ_CHECK(a->files[i].len == b->files[i].len &&
                   strcmp(a->files[i].ext, b->files[i].ext) == 0 &&
                   memcmp(a->files[i].data, b->files[i].data, a->files[i].len) == 0,
                   "echo-roundtrip", "file %zu differs after the echo", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = fuzz_cstr(data, size);
    char msg[512] = "";
    struct wire_execute *w = (struct wire_execute *)1;
    struct exec_request req;
    enum px_result r = wire_parse_execute(body, size, LIMIT_INPUT_FILE_BYTES, &w, &req, msg,
                                          sizeof(msg));
    if (r != PX_OK) {
        check_refusal(r, w, &req, msg);
        free(body);
        return 0;
    }
    check_request(&req);

    /* The reply with results. */
    struct exec_result *res = make_results(&req);
    size_t len = 0;
    char *reply = wire_encode_execute(w, res, &len);
    fuzz_check_json_output("execute-reply", "wire_encode_execute", reply, len, 1);
    free(reply);
    exec_result_free(res);

    /* The echo alone parses back to the same request. */
    struct exec_result none;
    memset(&none, 0, sizeof(none));
    char *echo = wire_encode_execute(w, &none, &len);
    fuzz_check_json_output("execute-echo", "wire_encode_execute (echo only)", echo, len, 1);
    if (echo) {
        struct wire_execute *w2;
        struct exec_request req2;
        char msg2[512] = "";
        enum px_result r2 = wire_parse_execute(echo, len, LIMIT_INPUT_FILE_BYTES, &w2, &req2,
                                               msg2, sizeof(msg2));
        FUZZ_CHECK(r2 == PX_OK, "echo-roundtrip", "the echo %.300s was refused: %s", echo,
                   msg2);
        if (r2 == PX_OK) {
            check_same(&req, &req2);
            wire_execute_free(w2);
            exec_request_release(&req2);
        }
        free(echo);
    }

    /* One byte under what the files decode to: refused as too large. */
    size_t total = file_bytes(&req);
    if (total > 0) {
        struct wire_execute *w3;
        struct exec_request req3;
        char msg3[512] = "";
        enum px_result r3 = wire_parse_execute(body, size, total - 1, &w3, &req3, msg3,
                                               sizeof(msg3));
        FUZZ_CHECK(r3 == PX_TOO_LARGE, "execute-limit",
                   "files of %zu bytes under a limit of %zu: result %d", total, total - 1,
                   (int)r3);
        if (r3 == PX_OK) {
            wire_execute_free(w3);
            exec_request_release(&req3);
        }
    }

    wire_execute_free(w);
    exec_request_release(&req);
    free(body);
    return 0;
}
