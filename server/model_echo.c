/* The echo model: no model at all. Its turn runs the fenced Python blocks of the last user
 * message, in order, in one interpreter: a text, then each block's code, result and
 * images, then a short text. Deterministic; for wiring tests and demos. */
#include <stdio.h>
#include <string.h>

#include "../common/limits.h"
#include "models.h"
#include "turns.h"

/* The next fenced block at or after *pos in text: ```python, ```py or a bare ``` fence,
 * up to the closing ```. Returns 1 with [*code, *code+*len) and *pos past the fence, or
 * 0 when there is none. */
static int next_block(const char *text, size_t n, size_t *pos, const char **code, size_t *len)
{
    for (;;) {
        const char *open = *pos < n ? strstr(text + *pos, "```") : NULL;
        if (!open || (size_t)(open - text) >= n)
            return 0;
        const char *info = open + 3;
        const char *eol = strchr(info, '\n');
        if (!eol)
            return 0;
        size_t info_len = (size_t)(eol - info);
        while (info_len && (info[info_len - 1] == ' ' || info[info_len - 1] == '\r'))
            info_len--;
        int python = info_len == 0 || (info_len == 6 && strncmp(info, "python", 6) == 0) ||
                     (info_len == 2 && strncmp(info, "py", 2) == 0) ||
                     (info_len == 7 && strncmp(info, "python3", 7) == 0);
        const char *close = strstr(eol + 1, "```");
        if (!close)
            return 0;
        *pos = (size_t)(close - text) + 3;
        if (python) {
            *code = eol + 1;
            *len = (size_t)(close - *code);
            return 1;
        }
    }
}

struct found {
    const char *code[LIMIT_ECHO_BLOCKS];
    size_t len[LIMIT_ECHO_BLOCKS];
    size_t n, more;   /* more: blocks past the limit, not run */
};

static void find_blocks(const struct gen_request *req, struct found *f)
{
    memset(f, 0, sizeof(*f));
    const struct gcontent *user = gen_request_last_user(req);
    for (size_t i = 0; user && i < user->nparts; i++) {
        const struct gpart *p = &user->parts[i];
        if (p->kind != GPART_TEXT || p->thought)
            continue;
        size_t pos = 0;
        const char *code;
        size_t len;
        while (next_block(p->text, p->text_len, &pos, &code, &len)) {
            if (f->n < LIMIT_ECHO_BLOCKS) {
                f->code[f->n] = code;
                f->len[f->n++] = len;
            } else {
                f->more++;
            }
        }
    }
}

static void say(struct turn *t, const char *text)
{
    turn_text(t, text, strlen(text));
}

static void echo_run(void *state, struct turn *t, const struct gen_request *req)
{
    (void)state;
    char text[256];
    struct found f;
    find_blocks(req, &f);
    if (f.n == 0) {
        say(t, "No fenced Python block in the last user message: the echo model runs each "
               "```python block it finds there.");
        return;
    }
    if (!req->code_tool) {
        snprintf(text, sizeof(text), "Code execution is not enabled for this request (add the "
                 "codeExecution tool): %zu Python block%s not run.", f.n + f.more,
                 f.n + f.more == 1 ? " was" : "s were");
        say(t, text);
        return;
    }
    snprintf(text, sizeof(text), "Running the %zu Python block%s of your message.", f.n,
             f.n == 1 ? "" : "s");
    say(t, text);
    size_t failed = 0;
    for (size_t i = 0; i < f.n; i++) {
        struct turn_code_result r;
        if (turn_code(t, f.code[i], f.len[i], &r) != PX_OK)
            return;
        failed += r.outcome != OUTCOME_OK;
    }
    snprintf(text, sizeof(text), "Done: %zu block%s ran, %zu failed.%s", f.n,
             f.n == 1 ? "" : "s", failed,
             f.more ? " Blocks past the limit of one turn were not run." : "");
    say(t, text);
}

static int echo_open(const char *arg, const char *name, void **state, char *err, size_t errlen)
{
    (void)name;
    *state = NULL;
    if (arg && *arg) {
        snprintf(err, errlen, "echo takes no argument");
        return -1;
    }
    return 0;
}

const struct model_backend model_echo = {
    .kind = "echo", .open = echo_open, .run = echo_run, .close = NULL,
};
