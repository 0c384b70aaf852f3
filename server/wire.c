#include "wire.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../common/limits.h"
#include "../common/isolation.h"
#include "base64.h"
#include "input_types.h"
#include "utf8.h"
#include "wire_json.h"

struct wire_execute {
    cJSON *parts;          /* normalised request parts, in order */
    size_t *block_of;      /* for each part: index of its code block, or SIZE_MAX */
    char **ids;            /* for each part: the code part's id (borrowed from parts) or NULL */
    size_t nparts;
};

__attribute__((format(printf, 4, 5)))
static enum px_result errorf(char *msg, size_t msglen, enum px_result r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    return r;
}

/* Checks the body before cJSON sees it. cJSON 1.7.15 silently ends a string at an escaped
 * NUL ("a\u0000b" parses as "a"), which would run different code than the client sent:
 * refuse those, and raw NUL bytes; and what cJSON lets through that JSON does not: control
 * bytes outside strings (taken for white space) and inside them, and invalid escapes. And count the values (each ',' '[' '{' outside
 * strings starts at most one more): a body of millions of tiny values would make the
 * parser allocate far more than the body. Returns NULL if acceptable, else why not. */
const char *wire_precheck_body(const char *s, size_t n, size_t max_values)
{
    int in_string = 0;
    size_t values = 1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\0')
            return "Strings must not contain NUL characters (\\u0000).";
        if (!in_string) {
            /* cJSON skips every byte up to a space as white space; JSON allows only
             * these four, and "\x01{}" is not an empty object. */
            if ((unsigned char)c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r')
                return "A control character stands outside a string.";
            if (c == '"')
                in_string = 1;
            else if ((c == ',' || c == '[' || c == '{') && ++values > max_values)
                return "The body holds more JSON values than any request needs.";
            continue;
        }
        if (c == '"') {
            in_string = 0;
        } else if ((unsigned char)c < 0x20) {
            return "A control character stands unescaped inside a string.";
        } else if (c == '\\' && i + 1 < n) {
            char e = s[i + 1];
            if (e == 'u') {
                /* cJSON reads "\uZZZZ" as some character rather than refusing it. */
                if (i + 5 >= n || !isxdigit((unsigned char)s[i + 2]) ||
                    !isxdigit((unsigned char)s[i + 3]) || !isxdigit((unsigned char)s[i + 4]) ||
                    !isxdigit((unsigned char)s[i + 5]))
                    return "A \\u escape needs four hexadecimal digits.";
                if (s[i + 2] == '0' && s[i + 3] == '0' && s[i + 4] == '0' && s[i + 5] == '0')
                    return "Strings must not contain NUL characters (\\u0000).";
            } else if (e == '\0' || !strchr("\"\\/bfnrt", e)) {
                return "A string holds an invalid escape.";
            }
            i++;   /* skip the escaped character */
        }
    }
    return NULL;
}

/* Fields of one JSON object, matched by their camelCase or snake_case names. Each may
 * appear once; an unknown name is an error, and a null value counts as absent (the
 * field's default), as in proto3 JSON parsing. */
struct field_spec {
    const char *camel, *snake;
};

static enum px_result match_fields(const cJSON *obj, const struct field_spec *spec,
                                   size_t nspec, const cJSON **found, const char *path,
                                   char *msg, size_t msglen)
{
    for (size_t i = 0; i < nspec; i++)
        found[i] = NULL;
    for (const cJSON *c = obj->child; c; c = c->next) {
        size_t i;
        for (i = 0; i < nspec; i++) {
            if (strcmp(c->string, spec[i].camel) == 0 ||
                (spec[i].snake && strcmp(c->string, spec[i].snake) == 0))
                break;
        }
        if (i == nspec)
            return errorf(msg, msglen, PX_INVALID_ARGUMENT,
                          "Invalid JSON payload received. Unknown name \"%s\" at '%s': "
                          "Cannot find field.", c->string, path);
        if (found[i])
            return errorf(msg, msglen, PX_INVALID_ARGUMENT,
                          "Invalid JSON payload received. Duplicate field \"%s\" at '%s'.",
                          c->string, path);
        if (!cJSON_IsNull(c))
            found[i] = c;
    }
    return PX_OK;
}

/* Appends to a growable array of T; returns 0 or -1 when out of memory. */
static int grow(void **arr, size_t elem, size_t count)
{
    void *p = realloc(*arr, elem * (count + 1));
    if (!p)
        return -1;
    *arr = p;
    return 0;
}

enum part_field {
    PF_EXECUTABLE_CODE, PF_INLINE_DATA, PF_TEXT, PF_THOUGHT, PF_THOUGHT_SIGNATURE,
    PF_CODE_EXECUTION_RESULT, PF_FILE_DATA, PF_FUNCTION_CALL, PF_FUNCTION_RESPONSE,
    PF_VIDEO_METADATA, PF_COUNT
};

static const struct field_spec part_fields[PF_COUNT] = {
    [PF_EXECUTABLE_CODE] = {"executableCode", "executable_code"},
    [PF_INLINE_DATA] = {"inlineData", "inline_data"},
    [PF_TEXT] = {"text", NULL},
    [PF_THOUGHT] = {"thought", NULL},
    [PF_THOUGHT_SIGNATURE] = {"thoughtSignature", "thought_signature"},
    [PF_CODE_EXECUTION_RESULT] = {"codeExecutionResult", "code_execution_result"},
    [PF_FILE_DATA] = {"fileData", "file_data"},
    [PF_FUNCTION_CALL] = {"functionCall", "function_call"},
    [PF_FUNCTION_RESPONSE] = {"functionResponse", "function_response"},
    [PF_VIDEO_METADATA] = {"videoMetadata", "video_metadata"},
};

enum { CF_LANGUAGE, CF_CODE, CF_ID, CF_COUNT };
static const struct field_spec code_fields[CF_COUNT] = {
    [CF_LANGUAGE] = {"language", NULL}, [CF_CODE] = {"code", NULL}, [CF_ID] = {"id", NULL},
};

enum { DF_MIME, DF_DATA, DF_DISPLAY_NAME, DF_COUNT };
static const struct field_spec data_fields[DF_COUNT] = {
    [DF_MIME] = {"mimeType", "mime_type"}, [DF_DATA] = {"data", NULL},
    [DF_DISPLAY_NAME] = {"displayName", "display_name"},
};

struct parse_state {
    struct wire_execute *w;
    struct exec_request *req;
    size_t input_bytes;
    size_t input_limit;       /* decoded input-file bytes the request may carry */
    char *msg;
    size_t msglen;
};

/* executableCode -> a code block and its normalised echo. */
static enum px_result parse_code(struct parse_state *st, const cJSON *obj, const char *path,
                                 cJSON *echo_part, char **id_out)
{
    char sub[96];
    const cJSON *f[CF_COUNT];
    snprintf(sub, sizeof(sub), "%sexecutable_code", path);
    if (!cJSON_IsObject(obj))
        return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                      "Invalid value at '%s': expected an object.", sub);
    enum px_result r = match_fields(obj, code_fields, CF_COUNT, f, sub, st->msg, st->msglen);
    if (r != PX_OK)
        return r;

    const cJSON *lang = f[CF_LANGUAGE];
    int python = (cJSON_IsString(lang) && strcmp(lang->valuestring, "PYTHON") == 0) ||
                 (cJSON_IsNumber(lang) && lang->valuedouble == 1);
    if (!python)
        return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                      "Invalid value at '%s.language': the only supported language is "
                      "PYTHON.", sub);
    const cJSON *code = f[CF_CODE];
    if (!cJSON_IsString(code) || code->valuestring[0] == '\0')
        return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                      "Invalid value at '%s.code': the code must be a non-empty string.", sub);
    const cJSON *id = f[CF_ID];
    if (id && !cJSON_IsString(id))
        return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                      "Invalid value at '%s.id': expected a string.", sub);

    struct exec_request *req = st->req;
    if (grow((void **)&req->codes, sizeof(char *), req->ncodes) < 0 ||
        grow((void **)&req->code_lens, sizeof(size_t), req->ncodes) < 0)
        return PX_NOMEM;
    size_t n = strlen(code->valuestring);
    req->codes[req->ncodes] = strdup(code->valuestring);
    if (!req->codes[req->ncodes])
        return PX_NOMEM;
    req->code_lens[req->ncodes++] = n;

    cJSON *ec = cJSON_AddObjectToObject(echo_part, "executableCode");
    if (!ec || !cJSON_AddStringToObject(ec, "language", "PYTHON") ||
        !cJSON_AddStringToObject(ec, "code", code->valuestring))
        return PX_NOMEM;
    if (id && id->valuestring[0]) {   /* "" is the default: proto3 JSON leaves it out */
        cJSON *idj = cJSON_AddStringToObject(ec, "id", id->valuestring);
        if (!idj)
            return PX_NOMEM;
        *id_out = idj->valuestring;
    }
    return PX_OK;
}

/* inlineData -> an input file input_file_N.ext and its echo. */
static enum px_result parse_inline_data(struct parse_state *st, const cJSON *obj,
                                        const char *path, cJSON *echo_part)
{
    char sub[96];
    const cJSON *f[DF_COUNT];
    snprintf(sub, sizeof(sub), "%sinline_data", path);
    if (!cJSON_IsObject(obj))
        return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                      "Invalid value at '%s': expected an object.", sub);
    enum px_result r = match_fields(obj, data_fields, DF_COUNT, f, sub, st->msg, st->msglen);
    if (r != PX_OK)
        return r;
    const cJSON *mime = f[DF_MIME], *data = f[DF_DATA];
    if (!cJSON_IsString(mime) || !mime->valuestring[0])
        return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                      "Invalid value at '%s.mime_type': a MIME type is required.", sub);
    const char *ext = input_file_extension(mime->valuestring);
    if (!ext)
        return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                      "Invalid value at '%s.mime_type' (%s): unsupported MIME type for an "
                      "input file. Supported: %s.", sub, mime->valuestring,
                      input_file_types_text);
    if (!cJSON_IsString(data))
        return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                      "Invalid value at '%s.data' (TYPE_BYTES): base64 data is required.", sub);
    if (f[DF_DISPLAY_NAME] && !cJSON_IsString(f[DF_DISPLAY_NAME]))
        return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                      "Invalid value at '%s.display_name' (TYPE_STRING): a string is "
                      "required.", sub);
    size_t enc_len = strlen(data->valuestring);
    size_t dec_len;
    unsigned char *dec = base64_decode(data->valuestring, enc_len, &dec_len);
    if (!dec)
        return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                      "Invalid value at '%s.data' (TYPE_BYTES), Base64 decoding failed.", sub);
    st->input_bytes += dec_len;
    if (st->input_bytes > st->input_limit) {
        free(dec);
        return errorf(st->msg, st->msglen, PX_TOO_LARGE,
                      "The input files total more than %zu bytes.", st->input_limit);
    }

    struct exec_request *req = st->req;
    if (grow((void **)&req->files, sizeof(struct input_file), req->nfiles) < 0) {
        free(dec);
        return PX_NOMEM;
    }
    struct input_file *file = &req->files[req->nfiles++];
    file->ext = ext;
    file->data = dec;
    file->len = dec_len;

    cJSON *id = cJSON_AddObjectToObject(echo_part, "inlineData");
    if (!id || !cJSON_AddStringToObject(id, "mimeType", mime->valuestring) ||
        !cJSON_AddStringToObject(id, "data", data->valuestring))
        return PX_NOMEM;
    if (f[DF_DISPLAY_NAME] &&
        !cJSON_AddStringToObject(id, "displayName", f[DF_DISPLAY_NAME]->valuestring))
        return PX_NOMEM;
    return PX_OK;
}

/* One Part. path is the prefix for error messages ("parts[2]." or ""). */
static enum px_result parse_part(struct parse_state *st, const cJSON *part, const char *path,
                                 size_t index)
{
    const cJSON *f[PF_COUNT];
    char where[64];
    snprintf(where, sizeof(where), "%.*s", path[0] ? (int)strlen(path) - 1 : 0, path);
    if (!cJSON_IsObject(part))
        return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                      "Invalid value at '%s': a part must be an object.", where);
    enum px_result r = match_fields(part, part_fields, PF_COUNT, f, where[0] ? where : "part",
                                    st->msg, st->msglen);
    if (r != PX_OK)
        return r;

    if (f[PF_CODE_EXECUTION_RESULT])
        return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                      "Invalid value at '%scode_execution_result': results are produced by "
                      "the server; send only executableCode (and inlineData or text) parts.",
                      path);
    static const int unsupported[] = {PF_FILE_DATA, PF_FUNCTION_CALL, PF_FUNCTION_RESPONSE,
                                      PF_VIDEO_METADATA};
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        if (f[unsupported[i]])
            return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                          "Invalid value at '%s%s': not supported by the execute API%s.",
                          path, part_fields[unsupported[i]].snake,
                          unsupported[i] == PF_FILE_DATA ? " (send files as inlineData parts)"
                                                         : "");
    }
    int kinds = !!f[PF_EXECUTABLE_CODE] + !!f[PF_INLINE_DATA] + !!f[PF_TEXT];
    if (kinds != 1)
        return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                      kinds ? "Invalid value at '%s': a part holds exactly one of "
                              "executableCode, inlineData or text."
                            : "Invalid value at '%s': the part is empty; it needs "
                              "executableCode, inlineData or text.",
                      where[0] ? where : "part");

    cJSON *echo = cJSON_CreateObject();
    if (!echo || !cJSON_AddItemToArray(st->w->parts, echo)) {
        cJSON_Delete(echo);
        return PX_NOMEM;
    }
    st->w->block_of[index] = SIZE_MAX;
    st->w->ids[index] = NULL;

    if (f[PF_TEXT]) {
        if (!cJSON_IsString(f[PF_TEXT]))
            return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                          "Invalid value at '%stext': expected a string.", path);
        if (!cJSON_AddStringToObject(echo, "text", f[PF_TEXT]->valuestring))
            return PX_NOMEM;
    } else if (f[PF_INLINE_DATA]) {
        r = parse_inline_data(st, f[PF_INLINE_DATA], path, echo);
    } else {
        st->w->block_of[index] = st->req->ncodes;
        r = parse_code(st, f[PF_EXECUTABLE_CODE], path, echo, &st->w->ids[index]);
    }
    if (r != PX_OK)
        return r;

    /* Model turns carry these on their parts; echo them untouched. */
    if (f[PF_THOUGHT]) {
        if (!cJSON_IsBool(f[PF_THOUGHT]))
            return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                          "Invalid value at '%sthought': expected true or false.", path);
        if (!cJSON_AddBoolToObject(echo, "thought", cJSON_IsTrue(f[PF_THOUGHT])))
            return PX_NOMEM;
    }
    if (f[PF_THOUGHT_SIGNATURE]) {
        if (!cJSON_IsString(f[PF_THOUGHT_SIGNATURE]))
            return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                          "Invalid value at '%sthought_signature': expected a string.", path);
        /* A bytes field: what is not base64 would be refused by the real API. */
        const char *sig = f[PF_THOUGHT_SIGNATURE]->valuestring;
        size_t sig_len;
        unsigned char *dec = base64_decode(sig, strlen(sig), &sig_len);
        if (!dec)
            return errorf(st->msg, st->msglen, PX_INVALID_ARGUMENT,
                          "Invalid value at '%sthought_signature' (TYPE_BYTES), Base64 "
                          "decoding failed.", path);
        free(dec);
        if (!cJSON_AddStringToObject(echo, "thoughtSignature",
                                     f[PF_THOUGHT_SIGNATURE]->valuestring))
            return PX_NOMEM;
    }
    return PX_OK;
}

enum px_result wire_parse_execute(const char *body, size_t len, size_t input_limit,
                                  struct wire_execute **out, struct exec_request *req,
                                  char *msg, size_t msglen)
{
    enum px_result r;
    struct parse_state st = {.req = req, .input_limit = input_limit, .msg = msg,
                             .msglen = msglen};
    cJSON *root = NULL;

    *out = NULL;
    memset(req, 0, sizeof(*req));
    if (utf8_valid_prefix((const unsigned char *)body, len) != len)
        return errorf(msg, msglen, PX_INVALID_ARGUMENT,
                      "Invalid JSON payload received. The body is not valid UTF-8.");
    const char *why = wire_precheck_body(body, len, LIMIT_JSON_VALUES);
    if (why)
        return errorf(msg, msglen, PX_INVALID_ARGUMENT, "Invalid JSON payload received. %s",
                      why);
    /* len + 1: cJSON checks that the NUL terminator directly follows the value. */
    root = cJSON_ParseWithLengthOpts(body, len + 1, NULL, 1);
    if (!root)
        return errorf(msg, msglen, PX_INVALID_ARGUMENT,
                      len ? "Invalid JSON payload received. The body is not valid JSON."
                          : "Invalid JSON payload received. The body is empty.");
    if (!cJSON_IsObject(root)) {
        r = errorf(msg, msglen, PX_INVALID_ARGUMENT,
                   "Invalid JSON payload received. Expected a JSON object: a Part or a "
                   "Content with parts.");
        goto fail;
    }

    /* A Content ({"parts": [...], "role": ...}) or a single Part. */
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(root, "parts");
    int content = parts != NULL;
    if (content) {
        static const struct field_spec content_fields[] = {{"parts", NULL}, {"role", NULL}};
        const cJSON *f[2];
        r = match_fields(root, content_fields, 2, f, "content", msg, msglen);
        if (r != PX_OK)
            goto fail;
        if (f[1] && !cJSON_IsString(f[1])) {
            r = errorf(msg, msglen, PX_INVALID_ARGUMENT,
                       "Invalid value at 'role': expected a string.");
            goto fail;
        }
        if (!cJSON_IsArray(parts) || !parts->child) {
            r = errorf(msg, msglen, PX_INVALID_ARGUMENT,
                       "Invalid value at 'parts': expected a non-empty array of parts.");
            goto fail;
        }
    }
    size_t nparts = content ? (size_t)cJSON_GetArraySize(parts) : 1;
    if (nparts > LIMIT_PARTS) {
        r = errorf(msg, msglen, PX_TOO_LARGE,
                   "Too many parts: %zu; at most %d per request.", nparts, LIMIT_PARTS);
        goto fail;
    }

    struct wire_execute *w = calloc(1, sizeof(*w));
    if (!w) {
        r = PX_NOMEM;
        goto fail;
    }
    st.w = w;
    w->parts = cJSON_CreateArray();
    w->block_of = calloc(nparts, sizeof(size_t));
    w->ids = calloc(nparts, sizeof(char *));
    w->nparts = nparts;
    if (!w->parts || !w->block_of || !w->ids) {
        r = PX_NOMEM;
        goto fail_w;
    }

    if (content) {
        size_t i = 0;
        for (const cJSON *p = parts->child; p; p = p->next, i++) {
            char path[32];
            snprintf(path, sizeof(path), "parts[%zu].", i);
            r = parse_part(&st, p, path, i);
            if (r != PX_OK)
                goto fail_w;
        }
    } else {
        r = parse_part(&st, root, "", 0);
        if (r != PX_OK)
            goto fail_w;
    }
    if (req->ncodes == 0) {
        r = errorf(msg, msglen, PX_INVALID_ARGUMENT,
                   "The request has no executableCode part: nothing to run.");
        goto fail_w;
    }
    cJSON_Delete(root);
    *out = w;
    return PX_OK;

fail_w:
    wire_execute_free(w);
fail:
    if (r == PX_NOMEM)
        snprintf(msg, msglen, "Out of memory while reading the request.");
    cJSON_Delete(root);
    exec_request_release(req);
    return r;
}

void wire_execute_free(struct wire_execute *w)
{
    if (!w)
        return;
    cJSON_Delete(w->parts);
    free(w->block_of);
    free(w->ids);
    free(w);
}

const char *wire_outcome_name(enum outcome o)
{
    return exec_outcome_name(o);
}

/* Adds a string of n bytes of valid UTF-8 that may contain NUL characters, which cJSON's
 * C strings cannot carry: we write the JSON string literal ourselves and add it raw. */
cJSON *wire_add_text(cJSON *obj, const char *name, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (n > (SIZE_MAX - 3) / 6)
        return NULL;
    char *lit = malloc(n * 6 + 3);   /* worst case: every byte as \u00XX */
    if (!lit)
        return NULL;
    char *o = lit;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': *o++ = '\\'; *o++ = '"'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\b': *o++ = '\\'; *o++ = 'b'; break;
        case '\f': *o++ = '\\'; *o++ = 'f'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        default:
            if (c < 0x20) {
                *o++ = '\\'; *o++ = 'u'; *o++ = '0'; *o++ = '0';
                *o++ = hex[c >> 4]; *o++ = hex[c & 15];
            } else {
                *o++ = (char)c;
            }
        }
    }
    *o++ = '"';
    *o = '\0';
    cJSON *item = cJSON_AddRawToObject(obj, name, lit);
    free(lit);
    return item;
}

static int add_block(cJSON *out, const struct block_result *b, const char *id)
{
    for (size_t e = 0; e < b->nentries; e++) {
        cJSON *part = cJSON_CreateObject();
        if (!part || !cJSON_AddItemToArray(out, part)) {
            cJSON_Delete(part);
            return -1;
        }
        cJSON *r = cJSON_AddObjectToObject(part, "codeExecutionResult");
        if (!r ||
            !cJSON_AddStringToObject(r, "outcome", wire_outcome_name(b->entries[e].outcome)))
            return -1;
        if (b->entries[e].output &&
            !wire_add_text(r, "output", b->entries[e].output, b->entries[e].output_len))
            return -1;
        if (id && !cJSON_AddStringToObject(r, "id", id))
            return -1;
    }
    for (size_t k = 0; k < b->nimages; k++) {
        char *b64 = base64_encode(b->images[k].data, b->images[k].len, NULL);
        cJSON *part = cJSON_CreateObject();
        cJSON *img = part ? cJSON_AddObjectToObject(part, "inlineData") : NULL;
        int ok = b64 && img && cJSON_AddStringToObject(img, "mimeType", b->images[k].mime) &&
                 cJSON_AddStringToObject(img, "data", b64) && cJSON_AddItemToArray(out, part);
        free(b64);
        if (!ok) {
            cJSON_Delete(part);
            return -1;
        }
    }
    return 0;
}

char *wire_encode_execute(const struct wire_execute *w, const struct exec_result *res,
                          size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *out = root ? cJSON_AddArrayToObject(root, "parts") : NULL;
    char *text = NULL;
    if (!out)
        goto done;
    size_t i = 0;
    for (const cJSON *p = w->parts->child; p; p = p->next, i++) {
        cJSON *copy = cJSON_Duplicate(p, 1);
        if (!copy || !cJSON_AddItemToArray(out, copy)) {
            cJSON_Delete(copy);
            goto done;
        }
        size_t block = w->block_of[i];
        if (block != SIZE_MAX && block < res->nblocks &&
            add_block(out, &res->blocks[block], w->ids[i]) < 0)
            goto done;
    }
    /* Beside the parts, never inside them: which limit cut this execution short, and
     * whether the session it ran in is over. */
    const char *limit = exec_limit_name(res->limit);
    if (limit || res->session_ended) {
        cJSON *meta = cJSON_AddObjectToObject(root, "executionMetadata");
        if (!meta || (limit && !cJSON_AddStringToObject(meta, "limitReached", limit)) ||
            (res->session_ended && !cJSON_AddBoolToObject(meta, "sessionEnded", 1)))
            goto done;
    }
    text = cJSON_PrintUnformatted(root);
    if (text && len)
        *len = strlen(text);
done:
    cJSON_Delete(root);
    return text;
}

/* RFC 3339 UTC with milliseconds, as Google APIs write timestamps. */
void wire_rfc3339(long long ms, char *buf, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03lldZ", ms % 1000);
}

char *wire_encode_session(const struct session_info *s, size_t *len)
{
    char name[sizeof("sessions/") + LIMIT_SESSION_ID_BYTES], created[40], used[40], expires[40];
    snprintf(name, sizeof(name), "sessions/%s", s->id);
    wire_rfc3339(s->create_time_ms, created, sizeof(created));
    wire_rfc3339(s->last_use_time_ms, used, sizeof(used));
    wire_rfc3339(s->expire_time_ms, expires, sizeof(expires));
    cJSON *root = cJSON_CreateObject();
    char *text = NULL;
    if (root && cJSON_AddStringToObject(root, "name", name) &&
        cJSON_AddStringToObject(root, "state", s->busy ? "RUNNING" : "ACTIVE") &&
        cJSON_AddStringToObject(root, "createTime", created) &&
        cJSON_AddStringToObject(root, "lastUseTime", used) &&
        cJSON_AddStringToObject(root, "expireTime", expires) &&
        cJSON_AddNumberToObject(root, "executions", (double)s->executions) &&
        cJSON_AddNumberToObject(root, "memoryBytes", (double)s->memory_bytes))
        text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (text && len)
        *len = strlen(text);
    return text;
}

enum px_result wire_parse_empty(const char *body, size_t len, char *msg, size_t msglen)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' ||
                       body[i] == '\n'))
        i++;
    if (i == len)
        return PX_OK;
    const char *why = wire_precheck_body(body, len, LIMIT_JSON_VALUES);
    if (why)
        return errorf(msg, msglen, PX_INVALID_ARGUMENT, "Invalid JSON payload received. %s",
                      why);
    cJSON *root = cJSON_ParseWithLengthOpts(body, len + 1, NULL, 1);
    enum px_result r = PX_OK;
    if (!root || !cJSON_IsObject(root))
        r = errorf(msg, msglen, PX_INVALID_ARGUMENT,
                   "Invalid JSON payload received. Expected an empty body or {}.");
    else if (root->child)
        r = errorf(msg, msglen, PX_INVALID_ARGUMENT,
                   "Invalid JSON payload received. Unknown name \"%s\": this call takes no "
                   "fields.", root->child->string);
    cJSON_Delete(root);
    return r;
}

char *wire_encode_empty(size_t *len)
{
    char *text = strdup("{}");
    if (text && len)
        *len = 2;
    return text;
}

char *wire_encode_error_details(int code, const char *message, const char *status,
                                const char *retry_delay, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *err = root ? cJSON_AddObjectToObject(root, "error") : NULL;
    char *text = NULL;
    /* The message may quote client bytes: make it valid UTF-8 first. */
    char *clean = NULL;
    size_t clean_len;
    int ok = err && utf8_sanitize((const unsigned char *)message, strlen(message), &clean,
                                  &clean_len) == 0 &&
             cJSON_AddNumberToObject(err, "code", code) &&
             cJSON_AddStringToObject(err, "message", clean) &&
             cJSON_AddStringToObject(err, "status", status);
    if (ok && retry_delay) {
        /* google.rpc.RetryInfo, as the real API sends it with a 429. */
        cJSON *details = cJSON_AddArrayToObject(err, "details");
        cJSON *info = cJSON_CreateObject();
        ok = details && info && cJSON_AddItemToArray(details, info) &&
             cJSON_AddStringToObject(info, "@type", "type.googleapis.com/google.rpc.RetryInfo") &&
             cJSON_AddStringToObject(info, "retryDelay", retry_delay);
        if (!ok && info && !details)
            cJSON_Delete(info);
    }
    if (ok)
        text = cJSON_PrintUnformatted(root);
    free(clean);
    cJSON_Delete(root);
    if (text && len)
        *len = strlen(text);
    return text;
}

char *wire_encode_error(int code, const char *message, const char *status, size_t *len)
{
    return wire_encode_error_details(code, message, status, NULL, len);
}

static const char *zygote_state_name(enum zygote_state s)
{
    switch (s) {
    case ZYGOTE_STARTING: return "starting";
    case ZYGOTE_READY: return "ready";
    case ZYGOTE_DOWN: return "restarting";
    case ZYGOTE_STOPPED: return "stopped";
    }
    return "unknown";
}

char *wire_encode_health(const struct health_report *h, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    char *text = NULL;
    if (!root)
        return NULL;
    int ok = 1;
    int ready = h->zygote_state == ZYGOTE_READY;
    ok &= !!cJSON_AddStringToObject(root, "status", ready ? "ok" : "unavailable");

    cJSON *z = cJSON_AddObjectToObject(root, "zygote");
    ok &= z && cJSON_AddStringToObject(z, "state", zygote_state_name(h->zygote_state)) &&
          cJSON_AddNumberToObject(z, "pid", h->zygote_pid) &&
          cJSON_AddNumberToObject(z, "restarts", h->zygote_restarts);

    cJSON *wk = cJSON_AddObjectToObject(root, "workers");
    ok &= wk && cJSON_AddNumberToObject(wk, "max", h->workers_max) &&
          cJSON_AddNumberToObject(wk, "running", h->running) &&
          cJSON_AddNumberToObject(wk, "unkilled", h->unkilled);
    cJSON *pool = cJSON_AddObjectToObject(root, "pool");
    ok &= pool && cJSON_AddNumberToObject(pool, "target", h->pool_target) &&
          cJSON_AddNumberToObject(pool, "ready", h->pool_ready) &&
          cJSON_AddNumberToObject(pool, "starting", h->pool_starting);
    cJSON *q = cJSON_AddObjectToObject(root, "queue");
    ok &= q && cJSON_AddNumberToObject(q, "depth", h->queue_depth) &&
          cJSON_AddNumberToObject(q, "max", h->queue_max);
    cJSON *ss = cJSON_AddObjectToObject(root, "sessions");
    ok &= ss && cJSON_AddNumberToObject(ss, "active", h->sessions) &&
          cJSON_AddNumberToObject(ss, "max", h->sessions_max);

    cJSON *counters = cJSON_AddObjectToObject(root, "counters");
    ok &= counters && cJSON_AddNumberToObject(counters, "executions", (double)h->executions) &&
          cJSON_AddNumberToObject(counters, "deadlineKills", (double)h->deadline_kills) &&
          cJSON_AddNumberToObject(counters, "killFailures", (double)h->kill_failures) &&
          cJSON_AddNumberToObject(counters, "workerCrashes", (double)h->worker_crashes) &&
          cJSON_AddNumberToObject(counters, "workerSetupFailures", (double)h->setup_failures);

    /* Each layer: true when the kernel grants it and workers run under it. */
    cJSON *iso = cJSON_AddObjectToObject(root, "isolation");
    ok &= !!iso;
    for (unsigned i = 0; ok && i < ISO_LAYER_COUNT; i++) {
        unsigned bit = 1u << i;
        cJSON *v = h->layers_known ? cJSON_CreateBool(h->layers & bit) : cJSON_CreateNull();
        ok &= v && cJSON_AddItemToObject(iso, isolation_layer_name(bit), v);
    }

    /* Where the workers' groups are made (sandbox/cgroup.c): null until the zygote said,
     * and for a layer it could not make. */
    cJSON *cg = cJSON_AddObjectToObject(root, "cgroups");
    ok &= !!cg;
    const char *cg_dirs[2][2] = {{"memory", h->cgroup_memory}, {"pids", h->cgroup_pids}};
    for (int i = 0; ok && i < 2; i++) {
        cJSON *v = cg_dirs[i][1][0] ? cJSON_CreateString(cg_dirs[i][1]) : cJSON_CreateNull();
        ok &= v && cJSON_AddItemToObject(cg, cg_dirs[i][0], v);
    }

    cJSON *lim = cJSON_AddObjectToObject(root, "limits");
    ok &= lim && cJSON_AddNumberToObject(lim, "deadlineMs", h->deadline_ms) &&
          cJSON_AddNumberToObject(lim, "outputBytes", (double)h->output_bytes) &&
          cJSON_AddNumberToObject(lim, "bodyBytes", (double)h->body_bytes) &&
          cJSON_AddNumberToObject(lim, "inputFileBytes", (double)h->input_file_bytes);
    if (ok && h->policy_name)
        ok &= !!cJSON_AddStringToObject(root, "policy", h->policy_name);
    if (ok)   /* the prefix of this server's session ids; null: it has none */
        ok &= h->replica_id && h->replica_id[0]
                  ? !!cJSON_AddStringToObject(root, "replica", h->replica_id)
                  : !!cJSON_AddNullToObject(root, "replica");

    const struct interpreter_info *in = &h->interpreter;
    if (ok && in->python[0]) {
        ok &= !!cJSON_AddStringToObject(root, "python", in->python);
        cJSON *libs = cJSON_AddObjectToObject(root, "libraries");
        ok &= !!libs;
        for (unsigned i = 0; ok && i < in->nlibraries; i++) {
            const struct library_version *l = &in->libraries[i];
            cJSON *v = l->version[0] ? cJSON_CreateString(l->version) : cJSON_CreateNull();
            ok &= v && cJSON_AddItemToObject(libs, l->name, v);
        }
        cJSON *fails = cJSON_AddArrayToObject(root, "importFailures");
        ok &= !!fails;
        for (unsigned i = 0; ok && i < in->nfailures; i++) {
            cJSON *f = cJSON_CreateString(in->import_failures[i]);
            ok &= f && cJSON_AddItemToArray(fails, f);
        }
    }
    if (ok)
        text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (text && len)
        *len = strlen(text);
    return text;
}

char *wire_encode_environment(const struct interpreter_info *in, const char *policy,
                              size_t *len)
{
    static const struct {
        unsigned bit;
        const char *name;
    } lists[] = {{LIBRARY_LIST_VERTEX, "vertex"}, {LIBRARY_LIST_GEMINI, "geminiApi"}};
    cJSON *root = cJSON_CreateObject();
    cJSON *libs = root ? cJSON_AddArrayToObject(root, "libraries") : NULL;
    cJSON *docs = root ? cJSON_AddObjectToObject(root, "documentedLists") : NULL;
    int ok = libs && docs && cJSON_AddStringToObject(root, "python", in->python) &&
             cJSON_AddStringToObject(root, "policy", policy);
    for (unsigned i = 0; ok && i < in->nlibraries; i++) {
        const struct library_version *l = &in->libraries[i];
        cJSON *o = cJSON_CreateObject();
        cJSON *v = l->version[0] ? cJSON_CreateString(l->version) : cJSON_CreateNull();
        ok = o && v && cJSON_AddItemToArray(libs, o) && cJSON_AddStringToObject(o, "name", l->name);
        if (!ok || !cJSON_AddItemToObject(o, "version", v)) {
            cJSON_Delete(v);
            ok = 0;
            break;
        }
        cJSON *in_lists = cJSON_AddArrayToObject(o, "documentedIn");
        ok = !!in_lists;
        for (size_t k = 0; ok && k < sizeof(lists) / sizeof(lists[0]); k++) {
            cJSON *n = (l->lists & lists[k].bit) ? cJSON_CreateString(lists[k].name) : NULL;
            ok = !(l->lists & lists[k].bit) || (n && cJSON_AddItemToArray(in_lists, n));
        }
    }
    for (size_t k = 0; ok && k < sizeof(lists) / sizeof(lists[0]); k++) {
        cJSON *o = cJSON_AddObjectToObject(docs, lists[k].name);
        cJSON *missing = o ? cJSON_AddArrayToObject(o, "missing") : NULL;
        unsigned named = 0, present = 0;
        ok = !!missing;
        for (unsigned i = 0; ok && i < in->nlibraries; i++) {
            const struct library_version *l = &in->libraries[i];
            if (!(l->lists & lists[k].bit))
                continue;
            named++;
            if (l->version[0]) {
                present++;
                continue;
            }
            cJSON *n = cJSON_CreateString(l->name);
            ok = n && cJSON_AddItemToArray(missing, n);
        }
        ok = ok && cJSON_AddNumberToObject(o, "libraries", named) &&
             cJSON_AddNumberToObject(o, "present", present);
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (text && len)
        *len = strlen(text);
    return text;
}
