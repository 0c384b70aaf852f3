#include "api_keys.h"

#include <errno.h>
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
};

static struct api_key *keys;
static size_t nkeys;

static int printable_word(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return 0;
    return 1;
}

/* One line of the file into k; NULL, or why it is refused. */
static const char *parse_line(char *line, unsigned lineno, struct api_key *k)
{
    char *words[2] = {0};
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (n == 2)
            return "more than two words (ID KEY)";
        words[n++] = tok;
    }
    const char *key = n == 2 ? words[1] : words[0];
    size_t len = strlen(key);
    if (len < LIMIT_API_KEY_MIN_BYTES || len > LIMIT_API_KEY_BYTES)
        return "a key must be " STR(LIMIT_API_KEY_MIN_BYTES) " to " STR(LIMIT_API_KEY_BYTES)
               " characters";
    if (!printable_word(key, len))
        return "a key is printable ASCII without spaces";
    memset(k, 0, sizeof(*k));
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
        why = parse_line(p, lineno, &list[count]);
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

enum px_result api_keys_check(const char *presented, const char **id)
{
    *id = NULL;
    if (!keys)
        return PX_OK;
    size_t len = presented ? strlen(presented) : 0;
    if (len == 0)
        return PX_UNAUTHENTICATED;
    if (len > LIMIT_API_KEY_BYTES)
        return PX_PERMISSION_DENIED;   /* longer than any key: its length is no secret */
    unsigned char given[LIMIT_API_KEY_BYTES] = {0};
    memcpy(given, presented, len);
    const struct api_key *match = NULL;
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
    *id = match->id;
    return PX_OK;
}

void api_keys_release(void)
{
    free(keys);
    keys = NULL;
    nkeys = 0;
}
