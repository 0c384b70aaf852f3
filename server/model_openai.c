/* The openai model: any OpenAI-compatible chat-completions server (llama.cpp, vLLM,
 * Ollama) as the model, made code-executing: it is offered one run_python tool, each
 * call runs in the turn's interpreter, its result goes back, and the loop goes on until
 * the model answers in text (bounded by LIMIT_OPENAI_EXECUTIONS in all and
 * LIMIT_OPENAI_FAILURES_IN_ROW failed in a row; then one last call asks for text). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/limits.h"
#include "http_client.h"
#include "models.h"
#include "openai_wire.h"
#include "turns.h"

struct upstream {
    char url[512];            /* .../chat/completions */
    char model[128];          /* the upstream's model name */
    char token[1024];         /* from key-file; "" when none */
    char tool_choice[16];     /* for the first call of a turn */
};

/* The upstream's whole-call timeout (--upstream-timeout-ms), set once at start. */
static unsigned upstream_timeout_ms = LIMIT_UPSTREAM_TIMEOUT_MS;

void model_openai_set_timeout(unsigned ms)
{
    upstream_timeout_ms = ms;
}

static const char note_with_tool[] =
    "You can run Python code with the run_python tool: it returns the outcome and what the "
    "code printed. Use it for anything that needs computing, then answer in text.";
static const char note_without_tool[] =
    "Code execution is not available in this conversation: answer in text only.";

/* One chat-completions call. Returns PX_OK with *reply, or the error to answer (message
 * in msg): PX_UNAVAILABLE when nothing came back, PX_INTERNAL when what came back is not
 * a chat completion. */
static enum px_result call_upstream(const struct upstream *u, const char *body, size_t len,
                                    struct openai_step *reply, char *msg, size_t msglen)
{
    struct http_response resp;
    char why[300];
    int rc = http_post_json(u->url, u->token[0] ? u->token : NULL, body, len,
                            LIMIT_UPSTREAM_CONNECT_MS, upstream_timeout_ms, turns_stopping,
                            &resp, why, sizeof(why));
    if (rc == -2) {
        snprintf(msg, msglen, "The model server at %.300s answered, but %s (%u bytes).",
                 u->url, why, LIMIT_UPSTREAM_BODY_BYTES);
        return PX_INTERNAL;
    }
    if (rc < 0) {
        snprintf(msg, msglen, "The model server at %.300s did not answer: %s.", u->url, why);
        return PX_UNAVAILABLE;
    }
    enum px_result r = PX_OK;
    if (resp.status != 200) {
        snprintf(msg, msglen, "The model server at %.300s answered HTTP %ld: %.200s", u->url,
                 resp.status, resp.body);
        r = PX_INTERNAL;
    } else if ((r = openai_parse_reply(resp.body, resp.len, reply, why, sizeof(why))) != PX_OK) {
        snprintf(msg, msglen, "The model server at %.300s answered, but %s.", u->url, why);
    }
    free(resp.body);
    return r;
}

/* Runs a tool call and records what goes back to the model. Returns PX_OK with *failed
 * set when the call did not succeed (an unknown tool, bad arguments, a failed run), or
 * the error that ended the turn. */
static enum px_result run_call(struct turn *t, struct openai_call *call, int *failed)
{
    char why[200], buf[300];
    *failed = 1;
    if (strcmp(call->name, OPENAI_TOOL_NAME) != 0) {
        snprintf(buf, sizeof(buf), "OUTCOME_FAILED\nThere is no tool named %.100s; the one "
                 "tool is %s.", call->name, OPENAI_TOOL_NAME);
        call->result = strdup(buf);
        return PX_OK;
    }
    char *code = openai_call_code(call->arguments, why, sizeof(why));
    if (!code) {
        /* Nothing ran, so no code part: the model hears why and may try again. */
        snprintf(buf, sizeof(buf), "OUTCOME_FAILED\nThe call was not run: %s. Send "
                 "{\"code\": \"...\"}.", why);
        call->result = strdup(buf);
        return PX_OK;
    }
    struct turn_code_result res;
    enum px_result r = turn_code(t, code, strlen(code), &res);
    free(code);
    if (r != PX_OK)
        return r;
    const char *name = res.outcome == OUTCOME_OK ? "OUTCOME_OK"
                     : res.outcome == OUTCOME_DEADLINE_EXCEEDED ? "OUTCOME_DEADLINE_EXCEEDED"
                     : "OUTCOME_FAILED";
    size_t n = strlen(name) + 1 + res.output_len + 1;
    call->result = malloc(n);
    if (call->result)
        snprintf(call->result, n, "%s\n%s", name, res.output);
    *failed = res.outcome != OUTCOME_OK;
    return PX_OK;
}

static void openai_run(void *state, struct turn *t, const struct gen_request *req)
{
    const struct upstream *u = state;
    struct openai_step steps[LIMIT_OPENAI_EXECUTIONS + 2];
    size_t nsteps = 0;
    unsigned executions = 0, failures_in_row = 0;
    char msg[700];
    const int offer = req->code_tool;
    for (;;) {
        /* Past the bounds, one last call that may only answer in text. */
        int last = executions >= LIMIT_OPENAI_EXECUTIONS ||
                   failures_in_row >= LIMIT_OPENAI_FAILURES_IN_ROW ||
                   nsteps >= LIMIT_OPENAI_EXECUTIONS + 1;
        const char *choice = last ? "none" : nsteps == 0 ? u->tool_choice : "auto";
        size_t len;
        char *body = openai_encode_request(u->model, req, offer ? note_with_tool
                                                                : note_without_tool,
                                           steps, nsteps, offer, choice, &len);
        if (!body) {
            turn_fail(t, PX_NOMEM, "Out of memory while calling the model.");
            break;
        }
        struct openai_step reply;
        enum px_result r = call_upstream(u, body, len, &reply, msg, sizeof(msg));
        free(body);
        if (r != PX_OK) {
            turn_fail(t, r, msg);
            break;
        }
        if (reply.text)
            turn_text(t, reply.text, strlen(reply.text));
        if (!offer || last || reply.ncalls == 0) {
            openai_step_release(&reply);
            break;
        }
        for (size_t i = 0; r == PX_OK && i < reply.ncalls; i++) {
            int failed;
            if (executions >= LIMIT_OPENAI_EXECUTIONS) {
                reply.calls[i].result = strdup("OUTCOME_FAILED\nNot run: this turn has "
                                               "used up its executions; answer in text.");
                continue;
            }
            r = run_call(t, &reply.calls[i], &failed);
            executions++;
            failures_in_row = failed ? failures_in_row + 1 : 0;
        }
        steps[nsteps++] = reply;
        if (r != PX_OK)
            break;
    }
    for (size_t i = 0; i < nsteps; i++)
        openai_step_release(&steps[i]);
}

/* Reads the token of key-file=PATH: its first line. */
static int read_token(const char *path, char *out, size_t size, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "key-file %s: %s", path, strerror(errno));
        return -1;
    }
    if (!fgets(out, (int)size, f))
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    if (!out[0]) {
        snprintf(err, errlen, "key-file %s is empty", path);
        return -1;
    }
    return 0;
}

/* openai:URL[,model=NAME][,key-file=PATH][,tool-choice=auto|required|run_python] */
static int openai_open(const char *arg, const char *name, void **state, char *err,
                       size_t errlen)
{
    if (!arg || (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0)) {
        snprintf(err, errlen, "openai needs the server's base URL: openai:http://HOST:PORT/v1");
        return -1;
    }
    struct upstream *u = calloc(1, sizeof(*u));
    char copy[2048];
    if (!u || strlen(arg) >= sizeof(copy)) {
        free(u);
        snprintf(err, errlen, "the specification is too long");
        return -1;
    }
    snprintf(copy, sizeof(copy), "%s", arg);
    snprintf(u->model, sizeof(u->model), "%s", name);
    snprintf(u->tool_choice, sizeof(u->tool_choice), "auto");
    char *save = NULL;
    char *base = strtok_r(copy, ",", &save);
    size_t blen = strlen(base);
    while (blen && base[blen - 1] == '/')
        base[--blen] = '\0';
    if (blen + sizeof("/chat/completions") > sizeof(u->url)) {
        free(u);
        snprintf(err, errlen, "the URL is too long");
        return -1;
    }
    snprintf(u->url, sizeof(u->url), "%s/chat/completions", base);
    for (char *opt = strtok_r(NULL, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        if (strncmp(opt, "model=", 6) == 0 && opt[6]) {
            snprintf(u->model, sizeof(u->model), "%s", opt + 6);
        } else if (strncmp(opt, "key-file=", 9) == 0) {
            if (read_token(opt + 9, u->token, sizeof(u->token), err, errlen) < 0) {
                free(u);
                return -1;
            }
        } else if (strcmp(opt, "tool-choice=auto") == 0 ||
                   strcmp(opt, "tool-choice=required") == 0 ||
                   strcmp(opt, "tool-choice=" OPENAI_TOOL_NAME) == 0) {
            snprintf(u->tool_choice, sizeof(u->tool_choice), "%s", opt + 12);
        } else {
            snprintf(err, errlen, "unknown option '%s' (model=NAME, key-file=PATH, "
                     "tool-choice=auto|required|" OPENAI_TOOL_NAME ")", opt);
            free(u);
            return -1;
        }
    }
    *state = u;
    return 0;
}

static void openai_close(void *state)
{
    free(state);
}

const struct model_backend model_openai = {
    .kind = "openai", .open = openai_open, .run = openai_run, .close = openai_close,
};
