/* base64: the encoder the reply uses for images and the decoder that reads request
 * inlineData, which must accept every form proto3 JSON allows and nothing else. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/base64.h"
#include "tests/unit/check.h"

/* A fixed-seed generator, so a failure reproduces. */
static uint32_t rng_state = 0x12345678u;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Decodes a NUL-terminated string; returns 1 when it decodes to exactly want[0..wn). */
static int decodes_to(const char *src, const void *want, size_t wn)
{
    size_t n = (size_t)-1;
    unsigned char *d = base64_decode(src, strlen(src), &n);
    int ok = d && n == wn && memcmp(d, want, wn) == 0;
    free(d);
    return ok;
}

/* Returns 1 when src is rejected (NULL). */
static int rejected(const char *src, size_t n)
{
    size_t len = 12345;
    unsigned char *d = base64_decode(src, n, &len);
    free(d);
    return d == NULL;
}

/* The RFC 4648 test vectors, encoded and decoded. */
static void test_rfc_vectors(void)
{
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        size_t n = (size_t)-1;
        char *e = base64_encode((const unsigned char *)plain[i], strlen(plain[i]), &n);
        CHECK_STR(e, enc[i]);
        CHECK(n == strlen(enc[i]));
        free(e);
        CHECK(decodes_to(enc[i], plain[i], strlen(plain[i])));
    }
}

/* Random bytes of every length class round-trip, padded and unpadded, in both
 * alphabets: the decoder must read whatever a client's encoder produced. */
static void test_round_trips(void)
{
    unsigned char data[300];
    for (int iter = 0; iter < 400; iter++) {
        size_t n = iter <= 300 ? (size_t)iter : rng() % 301;
        for (size_t i = 0; i < n; i++)
            data[i] = (unsigned char)rng();
        size_t elen = 0;
        char *e = base64_encode(data, n, &elen);
        CHECK(e != NULL);
        if (!e)
            continue;
        CHECK(elen == (n + 2) / 3 * 4);
        CHECK(strlen(e) == elen);
        CHECK(decodes_to(e, data, n));

        /* URL-safe alphabet, same bytes. */
        char *url = strdup(e);
        for (char *p = url; *p; p++)
            *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
        CHECK(decodes_to(url, data, n));

        /* Padding dropped (the raw encodings). */
        size_t stripped = elen;
        while (stripped > 0 && e[stripped - 1] == '=')
            stripped--;
        e[stripped] = '\0';
        url[stripped] = '\0';
        CHECK(decodes_to(e, data, n));
        CHECK(decodes_to(url, data, n));
        free(url);
        free(e);
    }
}

/* The two characters where the alphabets differ: 0xFB 0xFF is "+/8=" or "-_8". */
static void test_alphabets(void)
{
    static const unsigned char bytes[] = {0xFB, 0xFF};
    char *e = base64_encode(bytes, 2, NULL);
    CHECK_STR(e, "+/8=");
    free(e);
    CHECK(decodes_to("+/8=", bytes, 2));
    CHECK(decodes_to("-_8=", bytes, 2));
    CHECK(decodes_to("-_8", bytes, 2));
}

/* Only n bytes are read: the decoder does not run to a NUL. */
static void test_length_bounded(void)
{
    size_t n = 0;
    unsigned char *d = base64_decode("Zm9vYmFy", 4, &n);
    CHECK(d != NULL && n == 3 && memcmp(d, "foo", 3) == 0);
    free(d);
}

/* Empty input is valid and yields an empty, non-NULL buffer (NULL means an error). */
static void test_empty(void)
{
    size_t n = 99;
    unsigned char *d = base64_decode("", 0, &n);
    CHECK(d != NULL);
    CHECK(n == 0);
    free(d);
}

/* Everything outside the grammar is an error, never a silently different decoding. */
static void test_rejects(void)
{
    /* Characters outside both alphabets. */
    CHECK(rejected("Zm9v!A==", 8));
    CHECK(rejected("Zm9v.A==", 8));
    CHECK(rejected("Zm\x80v", 4));
    /* Embedded NUL within the given length. */
    CHECK(rejected("Zm\0v", 4));
    /* Whitespace, anywhere (lengths chosen so only the whitespace is wrong). */
    CHECK(rejected("Zm 8", 4));
    CHECK(rejected(" Zm8", 4));
    CHECK(rejected("Zm8\n", 4));
    CHECK(rejected("Zm\t8", 4));
    CHECK(rejected("Zm9v\r\nZm", 8));
    CHECK(rejected("Zm9v Zg=", 8));
    /* '=' in the middle. */
    CHECK(rejected("Zg==Zm8=", 8));
    CHECK(rejected("Z=9v", 4));
    CHECK(rejected("Zm=v", 4));
    /* A dangling single character (length % 4 == 1), with or without padding. */
    CHECK(rejected("Z", 1));
    CHECK(rejected("Zm9vY", 5));
    CHECK(rejected("Zm9vY===", 8));
    /* Too much padding, or padding that does not complete a quartet. */
    CHECK(rejected("Zg===", 5));
    CHECK(rejected("Zm9v====", 8));
    CHECK(rejected("Zm9v=", 5));
    CHECK(rejected("Zm8==", 5));
    CHECK(rejected("Zg=", 3));
    CHECK(rejected("=", 1));
    CHECK(rejected("==", 2));
    CHECK(rejected("====", 4));
    /* The well-formed neighbours of those are accepted. */
    CHECK(decodes_to("Zg==", "f", 1));
    CHECK(decodes_to("Zm8=", "fo", 2));
    CHECK(decodes_to("Zg", "f", 1));
}

int main(void)
{
    test_rfc_vectors();
    test_round_trips();
    test_alphabets();
    test_length_bounded();
    test_empty();
    test_rejects();
    return check_done();
}
