/* UTF-8 validation, cutting and repair: everything that reaches a JSON string goes
 * through these, so strictness here is what keeps replies valid. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/utf8.h"
#include "tests/unit/check.h"

#define U(s) ((const unsigned char *)(s))
#define FFFD "\xEF\xBF\xBD"

static size_t prefix(const char *s, size_t n)
{
    return utf8_valid_prefix(U(s), n);
}

/* Sanitizes s[0..n) and compares with want[0..wn); returns 1 on a match. */
static int sanitizes_to(const char *s, size_t n, const char *want, size_t wn)
{
    char *out = NULL;
    size_t len = (size_t)-1;
    if (utf8_sanitize(U(s), n, &out, &len) != 0 || !out)
        return 0;
    int ok = len == wn && memcmp(out, want, wn) == 0 && out[len] == '\0';
    if (!ok)
        fprintf(stderr, "  sanitize gave %zu bytes, want %zu\n", len, wn);
    free(out);
    return ok;
}

/* Well-formed text of every sequence length, including the edges of each range, is
 * valid in full. */
static void test_valid(void)
{
    CHECK(prefix("hello", 5) == 5);
    CHECK(prefix("", 0) == 0);
    CHECK(prefix("a\0b", 3) == 3);                  /* NUL is valid UTF-8 */
    CHECK(prefix("\x7F", 1) == 1);
    CHECK(prefix("\xC3\xA9", 2) == 2);              /* U+00E9 */
    CHECK(prefix("\xC2\x80", 2) == 2);              /* U+0080, smallest 2-byte */
    CHECK(prefix("\xDF\xBF", 2) == 2);              /* U+07FF */
    CHECK(prefix("\xE2\x82\xAC", 3) == 3);          /* U+20AC */
    CHECK(prefix("\xE0\xA0\x80", 3) == 3);          /* U+0800, smallest 3-byte */
    CHECK(prefix("\xED\x9F\xBF", 3) == 3);          /* U+D7FF, just below surrogates */
    CHECK(prefix("\xEE\x80\x80", 3) == 3);          /* U+E000, just above */
    CHECK(prefix("\xEF\xBF\xBF", 3) == 3);          /* U+FFFF */
    CHECK(prefix("\xF0\x9F\x98\x80", 4) == 4);      /* U+1F600 */
    CHECK(prefix("\xF0\x90\x80\x80", 4) == 4);      /* U+10000, smallest 4-byte */
    CHECK(prefix("\xF4\x8F\xBF\xBF", 4) == 4);      /* U+10FFFF, the last code point */
    CHECK(prefix("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z", 11) == 11);
}

/* Each invalid form stops the prefix exactly where it starts. */
static void test_invalid(void)
{
    /* Overlong encodings. */
    CHECK(prefix("ab\xC0\x80", 4) == 2);
    CHECK(prefix("\xC1\xBF", 2) == 0);
    CHECK(prefix("\xE0\x80\x80", 3) == 0);
    CHECK(prefix("\xE0\x9F\xBF", 3) == 0);          /* U+07FF in three bytes */
    CHECK(prefix("\xF0\x8F\xBF\xBF", 4) == 0);      /* U+FFFF in four bytes */
    /* UTF-16 surrogates. */
    CHECK(prefix("x\xED\xA0\x80", 4) == 1);
    CHECK(prefix("\xED\xBF\xBF", 3) == 0);
    /* Past U+10FFFF. */
    CHECK(prefix("\xF4\x90\x80\x80", 4) == 0);
    CHECK(prefix("\xF5\x80\x80\x80", 4) == 0);
    CHECK(prefix("\xFF", 1) == 0);
    CHECK(prefix("\xFE", 1) == 0);
    /* A continuation byte with no lead. */
    CHECK(prefix("a\x80" "b", 3) == 1);
    /* A lead byte followed by a non-continuation byte. */
    CHECK(prefix("\xE2\x28\xA1", 3) == 0);
    CHECK(prefix("\xC3" "A", 2) == 0);
    /* Truncated sequences at the end of the input. */
    CHECK(prefix("x\xC3", 2) == 1);
    CHECK(prefix("x\xE2\x82", 3) == 1);
    CHECK(prefix("x\xF0\x9F\x98", 4) == 1);
    /* n bounds the scan: a full sequence cut short by n is truncated. */
    CHECK(prefix("\xE2\x82\xAC", 2) == 0);
    /* The prefix stops at the first error, not the last. */
    CHECK(prefix("\xC3\xA9\xFF" "abc", 6) == 2);
}

/* Cutting at every position of a mixed string lands on the last character boundary at
 * or before it: never inside a character, never earlier than needed. */
static void test_cut(void)
{
    /* a | C3 A9 | E2 82 AC | F0 9F 98 80 | z */
    const char *s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z";
    static const size_t boundaries[] = {0, 1, 3, 6, 10, 11};
    for (size_t n = 0; n <= 11; n++) {
        size_t want = 0;
        for (size_t b = 0; b < sizeof(boundaries) / sizeof(boundaries[0]); b++)
            if (boundaries[b] <= n)
                want = boundaries[b];
        size_t got = utf8_cut(U(s), n);
        if (got != want)
            fprintf(stderr, "  utf8_cut(s, %zu) = %zu, want %zu\n", n, got, want);
        CHECK(got == want);
        CHECK(prefix(s, got) == got);
    }
    /* Plain ASCII is cut where asked. */
    CHECK(utf8_cut(U("abcdef"), 4) == 4);
    /* A lone lead byte at the end is left out. */
    CHECK(utf8_cut(U("ab\xF0"), 3) == 2);
}

/* Valid text comes back byte for byte; each invalid byte becomes one U+FFFD. */
static void test_sanitize(void)
{
    const char *mixed = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z";
    CHECK(sanitizes_to(mixed, 11, mixed, 11));
    CHECK(sanitizes_to("", 0, "", 0));
    CHECK(sanitizes_to("a\0b", 3, "a\0b", 3));

    CHECK(sanitizes_to("a\xFF" "b", 3, "a" FFFD "b", 5));
    CHECK(sanitizes_to("\xC0\x80", 2, FFFD FFFD, 6));                  /* overlong */
    CHECK(sanitizes_to("\xE0\x80\x80", 3, FFFD FFFD FFFD, 9));
    CHECK(sanitizes_to("\xED\xA0\x80", 3, FFFD FFFD FFFD, 9));         /* surrogate */
    CHECK(sanitizes_to("\xF4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD, 12)); /* > U+10FFFF */
    CHECK(sanitizes_to("x\xE2\x82", 3, "x" FFFD FFFD, 7));             /* truncated */
    CHECK(sanitizes_to("\xE2\x82" "A\xC3\xA9", 5, FFFD FFFD "A\xC3\xA9", 9));
    CHECK(sanitizes_to("\x80\xC3\xA9\x80", 4, FFFD "\xC3\xA9" FFFD, 8));
}

/* Whatever goes in, what comes out is valid UTF-8; valid input is unchanged. */
static void test_sanitize_random(void)
{
    uint32_t x = 0x9E3779B9u;
    unsigned char buf[64];
    int bad_output = 0, changed_valid = 0, valid_inputs = 0;
    for (int iter = 0; iter < 2000; iter++) {
        size_t n = iter % 65;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            /* Mostly ASCII with some high bytes: both valid and broken sequences occur. */
            buf[i] = (unsigned char)((x & 3) ? (x >> 8) & 0x7F : 0x80 | ((x >> 8) & 0x7F));
        }
        char *out = NULL;
        size_t len = 0;
        if (utf8_sanitize(buf, n, &out, &len) != 0) {
            bad_output++;
            continue;
        }
        if (utf8_valid_prefix(U(out), len) != len || out[len] != '\0')
            bad_output++;
        if (utf8_valid_prefix(buf, n) == n) {
            valid_inputs++;
            if (len != n || memcmp(out, buf, n) != 0)
                changed_valid++;
        }
        free(out);
    }
    CHECK(bad_output == 0);
    CHECK(changed_valid == 0);
    CHECK(valid_inputs > 0);   /* the valid-input check above did run */
}

int main(void)
{
    test_valid();
    test_invalid();
    test_cut();
    test_sanitize();
    test_sanitize_random();
    return check_done();
}
