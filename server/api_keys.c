#include "api_keys.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/limits.h"

/* A limit's value in a message, from the limit itself. */
#define STR_(x) #x
#define STR(x) STR_(x)

struct api_key {
    char id[LIMIT_API_KEY_ID_BYTES + 1];
    unsigned char key[LIMIT_API_KEY_BYTES];   /* zero-padded: every compare is full size */
    size_t len;
    unsigned bound[2];                /* per enum key_place; 0: none of its own */
    struct admission places[2];       /* max UINT_MAX when unbounded */
};

static struct api_key *keys;
static size_t nkeys;
static unsigned default_bound[2];

/* A line's options: `executions=N`, `sessions=N`. */
static const struct {
    const char *name;
    enum key_place what;
    unsigned max;
} key_options[] = {
    {"executions", KEY_EXECUTIONS, LIMIT_KEY_EXECUTIONS_MAX},
    {"sessions", KEY_SESSIONS, LIMIT_KEY_SESSIONS_MAX},
};
#define NOPTIONS (sizeof(key_options) / sizeof(key_options[0]))

void api_keys_set_defaults(unsigned max_executions, unsigned max_sessions)
{
    default_bound[KEY_EXECUTIONS] = max_executions;
    default_bound[KEY_SESSIONS] = max_sessions;
}

static int printable_word(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return 0;
    return 1;
}

/* The option a word names (`executions=...`), or -1 when it names none. */
static int option_of(const char *word)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        size_t n = strlen(key_options[i].name);
        if (strncmp(word, key_options[i].name, n) == 0 && word[n] == '=')
            return (int)i;
    }
    return -1;
}

/* One line of the file into k; NULL, or why it is refused (why_buf may hold it). */
static const char *parse_line(char *line, unsigned lineno, struct api_key *k, char *why_buf,
                              size_t why_len)
{
    char *words[2 + NOPTIONS + 1] = {0};
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (n == sizeof(words) / sizeof(words[0]))
            return "more than two words (ID KEY) and the options (executions=N sessions=N)";
        words[n++] = tok;
    }
    memset(k, 0, sizeof(*k));
    int given[NOPTIONS] = {0};
    /* Options from the end: the first word is always a key or an id. */
    while (n > 1) {
        int o = option_of(words[n - 1]);
        if (o < 0)
            break;
        const char *v = words[n - 1] + strlen(key_options[o].name) + 1;
        char *end;
        errno = 0;
        unsigned long long x = *v >= '0' && *v <= '9' ? strtoull(v, &end, 10) : 0;
        if (given[o]) {
            snprintf(why_buf, why_len, "%s= given twice", key_options[o].name);
            return why_buf;
        }
        if (!(*v >= '0' && *v <= '9') || errno || *end || x > key_options[o].max) {
            snprintf(why_buf, why_len, "bad %s=: a number from 0 (no per-key bound) to %u",
                     key_options[o].name, key_options[o].max);
            return why_buf;
        }
        given[o] = 1;
        k->bound[key_options[o].what] = (unsigned)x;
        n--;
    }
    if (n > 2)
        return "more than two words (ID KEY) before the options (executions=N sessions=N)";
    const char *key = n == 2 ? words[1] : words[0];
    size_t len = strlen(key);
    if (len < LIMIT_API_KEY_MIN_BYTES || len > LIMIT_API_KEY_BYTES)
        return "a key must be " STR(LIMIT_API_KEY_MIN_BYTES) " to " STR(LIMIT_API_KEY_BYTES)
               " characters";
    if (!printable_word(key, len))
        return "a key is printable ASCII without spaces";
    if (n == 2) {
        size_t idlen = strlen(words[0]);
        if (idlen > LIMIT_API_KEY_ID_BYTES || !printable_word(words[0], idlen))
            return "an id is at most " STR(LIMIT_API_KEY_ID_BYTES) " printable characters";
        memcpy(k->id, words[0], idlen);
    } else {
        snprintf(k->id, sizeof(k->id), "key-%u", lineno);
    }
    memcpy(k->key, key, len);
    k->len = len;
    for (size_t o = 0; o < NOPTIONS; o++) {
        enum key_place what = key_options[o].what;
        if (!given[o])
            k->bound[what] = default_bound[what];
        k->places[what].max = k->bound[what] ? k->bound[what] : UINT_MAX;
    }
    return NULL;
}

int api_keys_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "--api-key-file %s: %s", path, strerror(errno));
        return -1;
    }
    struct api_key *list = calloc(LIMIT_API_KEYS, sizeof(*list));
    size_t count = 0, total = 0;
    char line[LIMIT_API_KEY_LINE_BYTES + 2];
    unsigned lineno = 0;
    const char *why = list ? NULL : "out of memory";
    char why_buf[160];
    while (!why && fgets(line, sizeof(line), f)) {
        lineno++;
        size_t n = strlen(line);
        total += n;
        if (total > LIMIT_API_KEY_FILE_BYTES) {
            why = "the file is over " STR(LIMIT_API_KEY_FILE_MIB) " MiB";
            break;
        }
        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        else if (!feof(f)) {
            why = "a line is over " STR(LIMIT_API_KEY_LINE_BYTES) " characters";
            break;
        }
        if (n && line[n - 1] == '\r')
            line[--n] = '\0';
        char *p = line + strspn(line, " \t");
        if (!*p || *p == '#')
            continue;
        if (count == LIMIT_API_KEYS) {
            why = "more than " STR(LIMIT_API_KEYS) " keys";
            break;
        }
        why = parse_line(p, lineno, &list[count], why_buf, sizeof(why_buf));
        for (size_t i = 0; !why && i < count; i++)
            if (strcmp(list[i].id, list[count].id) == 0)
                why = "an id given twice";
        count += !why;
    }
    if (!why && ferror(f))
        why = strerror(errno);
    if (!why && count == 0)
        why = "no key in the file";
    fclose(f);
    if (why) {
        snprintf(err, errlen, "--api-key-file %s:%u: %s", path, lineno, why);
        free(list);
        return -1;
    }
    keys = list;
    nkeys = count;
    return 0;
}

int api_keys_enabled(void)
{
    return keys != NULL;
}

enum px_result api_keys_check(const char *presented, struct api_key **key)
{
    *key = NULL;
    if (!keys)
        return PX_OK;
    size_t len = presented ? strlen(presented) : 0;
    if (len == 0)
        return PX_UNAUTHENTICATED;
    if (len > LIMIT_API_KEY_BYTES)
        return PX_PERMISSION_DENIED;   /* longer than any key: its length is no secret */
    unsigned char given[LIMIT_API_KEY_BYTES] = {0};
    memcpy(given, presented, len);
    struct api_key *match = NULL;
    /* Every key, every byte: no early exit on the first difference or the first match. */
    for (size_t k = 0; k < nkeys; k++) {
        unsigned diff = (unsigned)(keys[k].len ^ len);
        for (size_t i = 0; i < LIMIT_API_KEY_BYTES; i++)
            diff |= (unsigned)(keys[k].key[i] ^ given[i]);
        if (diff == 0)
            match = &keys[k];
    }
    if (!match)
        return PX_PERMISSION_DENIED;
    *key = match;
    return PX_OK;
}

const char *api_key_id(const struct api_key *key)
{
    return key ? key->id : "";
}

unsigned api_key_bound(const struct api_key *key, enum key_place what)
{
    return key ? key->bound[what] : 0;
}

struct admission *api_key_take(struct api_key *key, enum key_place what, int *refused)
{
    *refused = 0;
    if (!key)
        return NULL;
    if (!admission_take(&key->places[what])) {
        *refused = 1;
        return NULL;
    }
    return &key->places[what];
}


void api_key_refusal(const struct api_key *key, enum key_place what, char *buf, size_t len)
{
    if (what == KEY_EXECUTIONS)
        snprintf(buf, len, "API key %s already has its maximum of %u executions running or "
                 "queued; retry once one has finished.", api_key_id(key),
                 api_key_bound(key, what));
    else
        snprintf(buf, len, "API key %s already holds its maximum of %u sessions; delete one "
                 "or retry later.", api_key_id(key), api_key_bound(key, what));
}

void api_keys_release(void)
{
    free(keys);
    keys = NULL;
    nkeys = 0;
}
