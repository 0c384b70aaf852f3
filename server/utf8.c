#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid sequence starting at s[0], or 0 if it is invalid or truncated. */
static size_t seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2; cp = c & 0x1F; min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3; cp = c & 0x0F; min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4; cp = c & 0x07; min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

size_t utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t l = seq_len(s + i, n - i);
        if (!l)
            break;
        i += l;
    }
    return i;
}

size_t utf8_cut(const unsigned char *s, size_t n)
{
    /* Step back over at most three continuation bytes to the lead byte. */
    size_t i = n;
    size_t back = 0;
    while (i > 0 && back < 3 && (s[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return n;
    unsigned char lead = s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (need > 1 && back + 1 < need)
        return i - 1;   /* the character would continue past n: cut before it */
    return n;
}

int utf8_sanitize(const unsigned char *s, size_t n, char **out, size_t *out_len)
{
    static const char replacement[] = "\xEF\xBF\xBD";
    if (n > (SIZE_MAX - 1) / 3)
        return -1;
    char *buf = malloc(n * 3 + 1);   /* worst case: every byte replaced */
    if (!buf)
        return -1;
    size_t o = 0, i = 0;
    while (i < n) {
        size_t l = seq_len(s + i, n - i);
        if (l) {
            memcpy(buf + o, s + i, l);
            o += l;
            i += l;
        } else {
            memcpy(buf + o, replacement, 3);
            o += 3;
            i += 1;
        }
    }
    buf[o] = '\0';
    char *shrunk = realloc(buf, o + 1);
    *out = shrunk ? shrunk : buf;
    *out_len = o;
    return 0;
}
