/* The script model: its turns come from a JSONL file the user writes, one line per model
 * turn, with faults an agent loop must survive (README, "The script model"). The code
 * parts of a line are really run; their results and images are the sandbox's. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/limits.h"
#include "gemini_wire.h"
#include "models.h"
#include "turns.h"

/* How many attempts a conversation has made at one turn: the key is the turn's place
 * and a hash of what the user said so far, so a retry of the same request counts up and
 * another conversation starts from zero. */
struct attempts {
    uint64_t key;
    unsigned count;
};

struct script {
    char path[512];
    struct script_turn *turns;
    size_t nturns;
    pthread_mutex_t lock;          /* guards seen */
    struct attempts seen[LIMIT_SCRIPT_CONVERSATIONS];
    unsigned next_seen;
};

/* FNV-1a over the conversation's user text and the turn's place. */
static uint64_t conversation_key(const struct gen_request *req, size_t turn)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)&turn;
    for (size_t i = 0; i < sizeof(turn); i++)
        h = (h ^ p[i]) * 1099511628211ull;
    for (size_t c = 0; c < req->ncontents; c++) {
        if (req->contents[c].model)
            continue;
        for (size_t k = 0; k < req->contents[c].nparts; k++) {
            const struct gpart *part = &req->contents[c].parts[k];
            if (part->kind != GPART_TEXT)
                continue;
            for (size_t i = 0; i < part->text_len; i++)
                h = (h ^ (unsigned char)part->text[i]) * 1099511628211ull;
            h = (h ^ 0xff) * 1099511628211ull;
        }
    }
    return h;
}

/* Counts one more attempt at the turn; returns how many came before this one. */
static unsigned attempt(struct script *s, uint64_t key)
{
    pthread_mutex_lock(&s->lock);
    unsigned before = 0;
    struct attempts *slot = NULL;
    for (unsigned i = 0; i < LIMIT_SCRIPT_CONVERSATIONS; i++)
        if (s->seen[i].count && s->seen[i].key == key) {
            slot = &s->seen[i];
            break;
        }
    if (!slot) {
        slot = &s->seen[s->next_seen++ % LIMIT_SCRIPT_CONVERSATIONS];
        slot->key = key;
        slot->count = 0;
    }
    before = slot->count++;
    pthread_mutex_unlock(&s->lock);
    return before;
}

/* Waits ms, in short steps so that a stopping server does not wait for it. */
static void sleep_ms(unsigned ms)
{
    while (ms && !turns_stopping()) {
        unsigned step = ms < LIMIT_STOP_POLL_MS ? ms : LIMIT_STOP_POLL_MS;
        struct timespec ts = {.tv_sec = step / 1000, .tv_nsec = (long)(step % 1000) * 1000000};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        ms -= step;
    }
}

static void script_run(void *state, struct turn *t, const struct gen_request *req)
{
    struct script *s = state;
    char msg[640];
    size_t index = gen_request_model_turns(req);
    if (index >= s->nturns) {
        snprintf(msg, sizeof(msg), "The script %.400s has %zu model turn%s; this conversation "
                 "already holds %zu, so there is no turn left to answer with.", s->path,
                 s->nturns, s->nturns == 1 ? "" : "s", index);
        turn_fail(t, PX_INVALID_ARGUMENT, msg);
        return;
    }
    const struct script_turn *line = &s->turns[index];
    if (line->has_fault && attempt(s, conversation_key(req, index)) < line->fault.times) {
        const struct script_fault *f = &line->fault;
        if (f->delay_ms)
            sleep_ms(f->delay_ms);
        if (turns_stopping()) {
            turn_fail(t, PX_SHUTTING_DOWN, "The server is shutting down.");
            return;
        }
        if (f->error_code) {
            turn_fail_as(t, f->error_code, f->error_status, f->error_message,
                         f->retry_delay[0] ? f->retry_delay : NULL);
            return;
        }
        if (f->deadline_ms)
            turn_set_block_deadline(t, f->deadline_ms);
        if (f->cut_after_events)
            turn_cut_after(t, f->cut_after_events);
    }
    for (size_t i = 0; i < line->nparts; i++) {
        const struct gpart *p = &line->parts[i];
        if (p->kind == GPART_TEXT) {
            turn_text(t, p->text, p->text_len);
            continue;
        }
        if (!req->code_tool) {
            /* As a real model without the tool: it does not write code. */
            continue;
        }
        struct turn_code_result r;
        if (turn_code(t, p->text, p->text_len, &r) != PX_OK)
            return;
    }
}

static void script_close(void *state)
{
    struct script *s = state;
    if (!s)
        return;
    for (size_t i = 0; i < s->nturns; i++)
        script_turn_release(&s->turns[i]);
    free(s->turns);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* The whole file, NUL-terminated, or NULL with err. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > LIMIT_SCRIPT_BYTES) {
        snprintf(err, errlen, "%s: not a regular file of at most %u bytes", path,
                 LIMIT_SCRIPT_BYTES);
        close(fd);
        return NULL;
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (text && got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!text || got != (size_t)st.st_size) {
        snprintf(err, errlen, "%s: cannot read it", path);
        free(text);
        return NULL;
    }
    text[got] = '\0';
    *len = got;
    return text;
}

static int script_open(const char *arg, const char *name, void **state, char *err,
                       size_t errlen)
{
    (void)name;
    if (!arg || !*arg) {
        snprintf(err, errlen, "script needs a file: script:FILE");
        return -1;
    }
    size_t len;
    char *text = read_file(arg, &len, err, errlen);
    if (!text)
        return -1;
    struct script *s = calloc(1, sizeof(*s));
    if (!s) {
        free(text);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&s->lock, NULL);
    snprintf(s->path, sizeof(s->path), "%s", arg);
    int rc = 0;
    unsigned lineno = 0;
    for (char *line = text, *next; rc == 0 && line && *line; line = next) {
        lineno++;
        char *eol = strchr(line, '\n');
        next = eol ? eol + 1 : NULL;
        if (eol)
            *eol = '\0';
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = '\0';
        if (n == 0)
            continue;   /* blank lines separate nothing */
        if (s->nturns == LIMIT_SCRIPT_TURNS) {
            snprintf(err, errlen, "%s:%u: more than %d model turns", arg, lineno,
                     LIMIT_SCRIPT_TURNS);
            rc = -1;
            break;
        }
        struct script_turn *grown = realloc(s->turns, (s->nturns + 1) * sizeof(*grown));
        if (!grown) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        s->turns = grown;
        char why[400];
        if (gemini_parse_script_line(line, n, &s->turns[s->nturns], why, sizeof(why)) != PX_OK) {
            snprintf(err, errlen, "%s:%u: %s", arg, lineno, why);
            rc = -1;
            break;
        }
        s->nturns++;
    }
    free(text);
    if (rc == 0 && s->nturns == 0) {
        snprintf(err, errlen, "%s: no model turn in it (one JSON line per turn)", arg);
        rc = -1;
    }
    if (rc < 0) {
        script_close(s);
        return -1;
    }
    *state = s;
    return 0;
}

const struct model_backend model_script = {
    .kind = "script", .open = script_open, .run = script_run, .close = script_close,
};
