#include "openai_wire.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/limits.h"
#include "text_buf.h"
#include "utf8.h"
#include "wire_json.h"

void openai_step_release(struct openai_step *s)
{
    for (size_t i = 0; i < s->ncalls; i++) {
        free(s->calls[i].id);
        free(s->calls[i].name);
        free(s->calls[i].arguments);
        free(s->calls[i].result);
    }
    free(s->calls);
    free(s->text);
    memset(s, 0, sizeof(*s));
}

/* A NUL-terminated s into t. */
static void text_str(struct text_buf *t, const char *s)
{
    text_buf_add(t, s, strlen(s));
}

/* {"role": role, "content": content} appended to messages. No content (an assistant
 * message holding only tool calls) is "": llama-cpp-python refuses null and some chat
 * templates fail on a missing field, and OpenAI's API takes "". */
static cJSON *add_message(cJSON *messages, const char *role, const char *content, size_t len)
{
    cJSON *m = cJSON_CreateObject();
    if (!m || !cJSON_AddItemToArray(messages, m)) {
        cJSON_Delete(m);
        return NULL;
    }
    if (!cJSON_AddStringToObject(m, "role", role) ||
        !wire_add_text(m, "content", content ? content : "", content ? len : 0))
        return NULL;
    return m;
}

static cJSON *add_tool_call(cJSON *msg, const char *id, const char *name, const char *arguments)
{
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    if (!calls && !(calls = cJSON_AddArrayToObject(msg, "tool_calls")))
        return NULL;
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddItemToArray(calls, c)) {
        cJSON_Delete(c);
        return NULL;
    }
    cJSON *fn = cJSON_AddObjectToObject(c, "function");
    if (!cJSON_AddStringToObject(c, "id", id) || !cJSON_AddStringToObject(c, "type", "function") ||
        !fn || !cJSON_AddStringToObject(fn, "name", name) ||
        !cJSON_AddStringToObject(fn, "arguments", arguments))
        return NULL;
    return c;
}

/* {"code": code} as JSON text (caller frees). */
static char *code_arguments(const char *code, size_t len)
{
    cJSON *o = cJSON_CreateObject();
    char *text = o && wire_add_text(o, "code", code, len) ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

/* "OUTCOME_OK\n<output>": what a tool message carries back for a result. */
static void result_text(struct text_buf *t, enum outcome o, const char *output, size_t len)
{
    text_str(t, wire_outcome_name(o));
    text_str(t, "\n");
    if (output)
        text_buf_add(t, output, len);
}

/* A user content: its text, and a line for each attached file. */
static int add_user(cJSON *messages, const struct gcontent *c, int last)
{
    struct text_buf t = {0};
    unsigned files = 0;
    for (size_t i = 0; i < c->nparts; i++) {
        const struct gpart *p = &c->parts[i];
        if (p->kind == GPART_TEXT && !p->thought) {
            if (t.len)
                text_str(&t, "\n");
            text_buf_add(&t, p->text, p->text_len);
        } else if (p->kind == GPART_INLINE_DATA) {
            char line[160];
            snprintf(line, sizeof(line), last ? "\n[attached: %s, in the working directory as "
                     "input_file_%u]" : "\n[attached earlier: %s]", p->mime, files++);
            text_str(&t, line);
        }
    }
    int ok = !t.failed && add_message(messages, "user", t.s ? t.s : "", t.len);
    free(t.s);
    return ok ? 0 : -1;
}

/* A model content: its text, and its code and results as tool calls and tool messages
 * (offer_tool), or as text. */
static int add_model(cJSON *messages, const struct gcontent *c, int offer_tool, unsigned *seq)
{
    struct text_buf t = {0};
    cJSON *pending = NULL;   /* the assistant message whose tool calls await results */
    char id[32] = "";
    int ok = 1;
    for (size_t i = 0; ok && i < c->nparts; i++) {
        const struct gpart *p = &c->parts[i];
        if (p->kind == GPART_TEXT && !p->thought) {
            text_buf_add(&t, p->text, p->text_len);
        } else if (p->kind == GPART_CODE && offer_tool) {
            snprintf(id, sizeof(id), "%s", p->id ? p->id : "");
            if (!id[0])
                snprintf(id, sizeof(id), "call_%u", (*seq)++);
            char *args = code_arguments(p->text, p->text_len);
            pending = add_message(messages, "assistant", t.len ? t.s : NULL, t.len);
            ok = args && pending && add_tool_call(pending, id, OPENAI_TOOL_NAME, args);
            free(args);
            t.len = 0;
        } else if (p->kind == GPART_CODE) {
            text_str(&t, "\n```python\n");
            text_buf_add(&t, p->text, p->text_len);
            text_str(&t, "\n```\n");
        } else if (p->kind == GPART_RESULT && offer_tool && pending) {
            struct text_buf r = {0};
            result_text(&r, p->outcome, p->text, p->text_len);
            cJSON *m = add_message(messages, "tool", r.s ? r.s : "", r.len);
            ok = !r.failed && m && cJSON_AddStringToObject(m, "tool_call_id", id);
            free(r.s);
            pending = NULL;
        } else if (p->kind == GPART_RESULT) {
            text_str(&t, "Result: ");
            result_text(&t, p->outcome, p->text, p->text_len);
            text_str(&t, "\n");
        }
    }
    if (ok && t.len)
        ok = !!add_message(messages, "assistant", t.s, t.len);
    ok = ok && !t.failed;
    free(t.s);
    return ok ? 0 : -1;
}

static int add_tool(cJSON *root)
{
    cJSON *tools = cJSON_AddArrayToObject(root, "tools");
    cJSON *tool = cJSON_CreateObject();
    if (!tools || !tool || !cJSON_AddItemToArray(tools, tool)) {
        cJSON_Delete(tool);
        return -1;
    }
    cJSON *fn = cJSON_AddObjectToObject(tool, "function");
    cJSON *params = fn ? cJSON_AddObjectToObject(fn, "parameters") : NULL;
    cJSON *props = params ? cJSON_AddObjectToObject(params, "properties") : NULL;
    cJSON *code = props ? cJSON_AddObjectToObject(props, "code") : NULL;
    cJSON *required = params ? cJSON_AddArrayToObject(params, "required") : NULL;
    cJSON *req_code = cJSON_CreateString("code");
    int ok = code && required && req_code && cJSON_AddItemToArray(required, req_code) &&
             cJSON_AddStringToObject(tool, "type", "function") &&
             cJSON_AddStringToObject(fn, "name", OPENAI_TOOL_NAME) &&
             cJSON_AddStringToObject(fn, "description",
                                     "Runs Python 3 code in a sandbox (no network; numpy, "
                                     "pandas, matplotlib, sympy and more installed; files "
                                     "the user attached are in the working directory) and "
                                     "returns the outcome and what it printed.") &&
             cJSON_AddStringToObject(params, "type", "object") &&
             cJSON_AddStringToObject(code, "type", "string") &&
             cJSON_AddStringToObject(code, "description", "The Python code to run.");
    if (!ok && req_code && !required)
        cJSON_Delete(req_code);
    return ok ? 0 : -1;
}

char *openai_encode_request(const char *model, const struct gen_request *req,
                            const char *system_note, const struct openai_step *steps,
                            size_t nsteps, int offer_tool, const char *tool_choice,
                            size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *messages = root ? cJSON_AddArrayToObject(root, "messages") : NULL;
    int ok = messages && cJSON_AddStringToObject(root, "model", model) &&
             cJSON_AddFalseToObject(root, "stream");
    struct text_buf sys = {0};
    if (req->system_text) {
        text_str(&sys, req->system_text);
        text_str(&sys, "\n\n");
    }
    text_str(&sys, system_note);
    ok = ok && !sys.failed && add_message(messages, "system", sys.s, sys.len);
    free(sys.s);
    unsigned seq = 0;
    const struct gcontent *last_user = gen_request_last_user(req);
    for (size_t i = 0; ok && i < req->ncontents; i++) {
        const struct gcontent *c = &req->contents[i];
        ok = (c->model ? add_model(messages, c, offer_tool, &seq)
                       : add_user(messages, c, c == last_user)) == 0;
    }
    for (size_t s = 0; ok && s < nsteps; s++) {
        const struct openai_step *st = &steps[s];
        cJSON *m = add_message(messages, "assistant", st->text,
                               st->text ? strlen(st->text) : 0);
        ok = !!m;
        for (size_t k = 0; ok && k < st->ncalls; k++)
            ok = !!add_tool_call(m, st->calls[k].id, st->calls[k].name,
                                 st->calls[k].arguments);
        for (size_t k = 0; ok && k < st->ncalls; k++) {
            const char *r = st->calls[k].result ? st->calls[k].result : "";
            cJSON *tm = add_message(messages, "tool", r, strlen(r));
            ok = tm && cJSON_AddStringToObject(tm, "tool_call_id", st->calls[k].id);
        }
    }
    if (ok && offer_tool) {
        ok = add_tool(root) == 0;
        if (ok && strcmp(tool_choice, OPENAI_TOOL_NAME) == 0) {
            /* The named form: what servers without "required" (llama-cpp-python) force. */
            cJSON *choice = cJSON_AddObjectToObject(root, "tool_choice");
            cJSON *fn = choice ? cJSON_AddObjectToObject(choice, "function") : NULL;
            ok = fn && cJSON_AddStringToObject(choice, "type", "function") &&
                 cJSON_AddStringToObject(fn, "name", OPENAI_TOOL_NAME);
        } else if (ok) {
            ok = !!cJSON_AddStringToObject(root, "tool_choice", tool_choice);
        }
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (text && len)
        *len = strlen(text);
    return text;
}

static char *dup_or_null(const cJSON *v)
{
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

enum px_result openai_parse_reply(const char *body, size_t len, struct openai_step *out,
                                  char *msg, size_t msglen)
{
    memset(out, 0, sizeof(*out));
    /* A local model may cut a character in two; its text becomes parts of a reply, which
     * must be valid UTF-8: repair the bytes (U+FFFD) rather than refuse the turn. */
    char *repaired = NULL;
    if (utf8_valid_prefix((const unsigned char *)body, len) != len) {
        size_t repaired_len;
        if (utf8_sanitize((const unsigned char *)body, len, &repaired, &repaired_len) < 0) {
            snprintf(msg, msglen, "out of memory while reading its answer");
            return PX_INTERNAL;
        }
        body = repaired;
        len = repaired_len;
    }
    const char *why = wire_precheck_body(body, len, LIMIT_GEN_JSON_VALUES);
    cJSON *root = why ? NULL : cJSON_ParseWithLengthOpts(body, len + 1, NULL, 1);
    if (!root) {
        snprintf(msg, msglen, "its answer is not JSON%s%s", why ? ": " : "", why ? why : "");
        free(repaired);
        return PX_INTERNAL;
    }
    enum px_result r = PX_INTERNAL;
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *first = cJSON_IsArray(choices) ? choices->child : NULL;
    const cJSON *message = first ? cJSON_GetObjectItemCaseSensitive(first, "message") : NULL;
    if (!cJSON_IsObject(message)) {
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
        const cJSON *em = cJSON_IsObject(err) ? cJSON_GetObjectItemCaseSensitive(err, "message")
                        : err;
        snprintf(msg, msglen, "its answer has no choices[0].message%s%.200s",
                 cJSON_IsString(em) ? ": " : "", cJSON_IsString(em) ? em->valuestring : "");
        goto out;
    }
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(message, "content");
    if (cJSON_IsString(content) && content->valuestring[0] &&
        !(out->text = strdup(content->valuestring)))
        goto oom;
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(message, "tool_calls");
    size_t n = cJSON_IsArray(calls) ? (size_t)cJSON_GetArraySize(calls) : 0;
    if (n > LIMIT_OPENAI_EXECUTIONS)
        n = LIMIT_OPENAI_EXECUTIONS;   /* more than a turn may run: the rest are dropped */
    if (n && !(out->calls = calloc(n, sizeof(*out->calls))))
        goto oom;
    size_t i = 0;
    for (const cJSON *c = n ? calls->child : NULL; c && i < n; c = c->next, i++) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
        struct openai_call *call = &out->calls[out->ncalls++];
        char fallback[32];
        snprintf(fallback, sizeof(fallback), "call_%zu", i);
        call->id = dup_or_null(cJSON_GetObjectItemCaseSensitive(c, "id"));
        if (!call->id || !call->id[0]) {
            free(call->id);
            call->id = strdup(fallback);
        }
        call->name = fn ? dup_or_null(cJSON_GetObjectItemCaseSensitive(fn, "name")) : NULL;
        const cJSON *args = fn ? cJSON_GetObjectItemCaseSensitive(fn, "arguments") : NULL;
        /* Arguments are a JSON text; some servers send the object itself. */
        call->arguments = cJSON_IsString(args) ? strdup(args->valuestring)
                        : cJSON_IsObject(args) ? cJSON_PrintUnformatted(args) : strdup("");
        if (!call->name)
            call->name = strdup("");
        if (!call->id || !call->name || !call->arguments)
            goto oom;
    }
    r = PX_OK;
    goto out;
oom:
    snprintf(msg, msglen, "out of memory while reading its answer");
out:
    cJSON_Delete(root);
    free(repaired);
    if (r != PX_OK)
        openai_step_release(out);
    return r;
}

char *openai_call_code(const char *arguments, char *msg, size_t msglen)
{
    /* As for request bodies: an escaped NUL would cut the code cJSON hands back. */
    const char *why = wire_precheck_body(arguments, strlen(arguments), LIMIT_JSON_VALUES);
    cJSON *root = why ? NULL : cJSON_ParseWithLengthOpts(arguments, strlen(arguments) + 1,
                                                          NULL, 1);
    const cJSON *code = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "code")
                                             : NULL;
    char *out = NULL;
    if (!root)
        snprintf(msg, msglen, "the arguments are not valid JSON%s%s", why ? ": " : "",
                 why ? why : "");
    else if (!cJSON_IsString(code) || !code->valuestring[0])
        snprintf(msg, msglen, "the arguments have no \"code\" string");
    else if (utf8_valid_prefix((const unsigned char *)code->valuestring,
                               strlen(code->valuestring)) != strlen(code->valuestring))
        snprintf(msg, msglen, "the code is not valid UTF-8");
    else if (!(out = strdup(code->valuestring)))
        snprintf(msg, msglen, "out of memory");
    cJSON_Delete(root);
    return out;
}
