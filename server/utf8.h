/* UTF-8 checks and repair for text that goes into JSON. */
#ifndef PYEXECD_UTF8_H
#define PYEXECD_UTF8_H

#include <stddef.h>

/* Length of the longest valid UTF-8 prefix of s (n when all of s is valid). Overlong
 * forms, surrogates and code points past U+10FFFF are invalid. */
size_t utf8_valid_prefix(const unsigned char *s, size_t n);

/* Largest k <= n such that s[0..k) does not end inside a multi-byte sequence that
 * would be complete past n: where to cut text without splitting a character. */
size_t utf8_cut(const unsigned char *s, size_t n);

/* Copies s into *out (malloc'd, NUL-terminated; caller frees) replacing each invalid
 * byte sequence with U+FFFD. Returns 0, or -1 when out of memory. */
int utf8_sanitize(const unsigned char *s, size_t n, char **out, size_t *out_len);

#endif
