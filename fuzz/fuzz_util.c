#include "fuzz_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- property failures ------------------------------------------------------------- */

int fuzz_ignored(const char *id)
{
    static const char *list;
    static int loaded;
    if (!loaded) {
        list = getenv("PYEXECD_FUZZ_IGNORE");
        loaded = 1;
    }
    if (!list || !*list)
        return 0;
    size_t n = strlen(id);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && memcmp(p, id, n) == 0)
            return 1;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

void fuzz_fail(const char *id, const char *fmt, ...)
{
    if (fuzz_ignored(id))
        return;
    va_list ap;
    fprintf(stderr, "\n==pyexecd-fuzz== property %s failed: ", id);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(set PYEXECD_FUZZ_IGNORE=%s to fuzz past it)\n", id);
    fflush(stderr);
    abort();
}

char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* ---- UTF-8 ------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c <= 0x7F)
        return 1;
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;   /* continuation byte, C0/C1 (always overlong), F5..FF */
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int fuzz_utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq(s + i, n - i);
        if (!l)
            return 0;
        i += l;
    }
    return 1;
}

/* ---- JSON -------------------------------------------------------------------------- */

struct jp {
    const unsigned char *s;
    size_t n, i;
    unsigned depth;
};

#define JSON_MAX_DEPTH 4096   /* cJSON nests at most 1000 deep; outputs add a few */

static void skip_ws(struct jp *j)
{
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' ||
                           j->s[j->i] == '\r'))
        j->i++;
}

static int hex4(struct jp *j, unsigned *out)
{
    if (j->n - j->i < 4)
        return 0;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = j->s[j->i++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return 0;
    }
    *out = v;
    return 1;
}

static int json_string(struct jp *j)
{
    if (j->i >= j->n || j->s[j->i] != '"')
        return 0;
    j->i++;
    while (j->i < j->n) {
        unsigned char c = j->s[j->i];
        if (c == '"') {
            j->i++;
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            if (++j->i >= j->n)
                return 0;
            unsigned char e = j->s[j->i++];
            if (e == 'u') {
                unsigned cp;
                if (!hex4(j, &cp))
                    return 0;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return 0;   /* a low surrogate alone */
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (j->n - j->i < 2 || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u')
                        return 0;
                    j->i += 2;
                    if (!hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return 0;
                }
            } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
                return 0;
            }
            continue;
        }
        size_t l = utf8_seq(j->s + j->i, j->n - j->i);
        if (!l)
            return 0;
        j->i += l;
    }
    return 0;
}

static int digits(struct jp *j)
{
    size_t start = j->i;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9')
        j->i++;
    return j->i > start;
}

static int json_number(struct jp *j)
{
    if (j->i < j->n && j->s[j->i] == '-')
        j->i++;
    if (j->i >= j->n)
        return 0;
    if (j->s[j->i] == '0')
        j->i++;
    else if (!digits(j))
        return 0;
    if (j->i < j->n && j->s[j->i] == '.') {
        j->i++;
        if (!digits(j))
            return 0;
    }
    if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
        j->i++;
        if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-'))
            j->i++;
        if (!digits(j))
            return 0;
    }
    return 1;
}

static int literal(struct jp *j, const char *word)
{
    size_t n = strlen(word);
    if (j->n - j->i < n || memcmp(j->s + j->i, word, n) != 0)
        return 0;
    j->i += n;
    return 1;
}

static int json_value(struct jp *j)
{
    skip_ws(j);
    if (j->i >= j->n)
        return 0;
    unsigned char c = j->s[j->i];
    if (c == '{' || c == '[') {
        unsigned char close = c == '{' ? '}' : ']';
        if (++j->depth > JSON_MAX_DEPTH)
            return 0;
        j->i++;
        skip_ws(j);
        if (j->i < j->n && j->s[j->i] == close) {
            j->i++;
            j->depth--;
            return 1;
        }
        for (;;) {
            if (c == '{') {
                skip_ws(j);
                if (!json_string(j))
                    return 0;
                skip_ws(j);
                if (j->i >= j->n || j->s[j->i] != ':')
                    return 0;
                j->i++;
            }
            if (!json_value(j))
                return 0;
            skip_ws(j);
            if (j->i >= j->n)
                return 0;
            if (j->s[j->i] == ',') {
                j->i++;
                continue;
            }
            if (j->s[j->i] != close)
                return 0;
            j->i++;
            j->depth--;
            return 1;
        }
    }
    if (c == '"')
        return json_string(j);
    if (c == 't')
        return literal(j, "true");
    if (c == 'f')
        return literal(j, "false");
    if (c == 'n')
        return literal(j, "null");
    return json_number(j);
}

int fuzz_json_valid(const char *s, size_t n, size_t *where)
{
    struct jp j = {.s = (const unsigned char *)s, .n = n};
    int ok = json_value(&j);
    if (ok) {
        skip_ws(&j);
        ok = j.i == n;
    }
    if (!ok && where)
        *where = j.i;
    return ok;
}

void fuzz_check_json_output(const char *id, const char *what, const char *text, size_t len,
                            int has_len)
{
    char pid[96];
    snprintf(pid, sizeof(pid), "%s-null", id);
    FUZZ_CHECK(text != NULL, pid, "%s returned NULL (out of memory on a small input)", what);
    if (!text)
        return;
    size_t n = strlen(text);
    snprintf(pid, sizeof(pid), "%s-len", id);
    FUZZ_CHECK(!has_len || len == n, pid, "%s reported length %zu, strlen is %zu", what, len,
               n);
    snprintf(pid, sizeof(pid), "%s-utf8", id);
    FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)text, n), pid,
               "%s wrote invalid UTF-8: %.400s", what, text);
    size_t where = 0;
    snprintf(pid, sizeof(pid), "%s-json", id);
    FUZZ_CHECK(fuzz_json_valid(text, n, &where), pid,
               "%s wrote invalid JSON (at byte %zu of %zu): %.400s", what, where, n, text);
}

/* ---- input cursor ------------------------------------------------------------------ */

static void take(struct fuzz_in *in, void *out, size_t n)
{
    memset(out, 0, n);
    size_t k = n < in->left ? n : in->left;
    memcpy(out, in->p, k);
    in->p += k;
    in->left -= k;
}

uint8_t fuzz_u8(struct fuzz_in *in)
{
    uint8_t v;
    take(in, &v, 1);
    return v;
}

uint16_t fuzz_u16(struct fuzz_in *in)
{
    uint8_t b[2];
    take(in, b, 2);
    return (uint16_t)(b[0] | b[1] << 8);
}

uint32_t fuzz_u32(struct fuzz_in *in)
{
    uint32_t lo = fuzz_u16(in);
    uint32_t hi = fuzz_u16(in);
    return lo | hi << 16;
}

uint64_t fuzz_u64(struct fuzz_in *in)
{
    uint64_t lo = fuzz_u32(in);
    uint64_t hi = fuzz_u32(in);
    return lo | hi << 32;
}

const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t max, size_t *len)
{
    size_t n = fuzz_u16(in);
    if (n > max)
        n = max;
    if (n > in->left)
        n = in->left;
    const uint8_t *p = in->p;
    in->p += n;
    in->left -= n;
    *len = n;
    return p;
}
