/* Base64 as proto3 JSON reads and writes bytes fields. */
#ifndef PYEXECD_BASE64_H
#define PYEXECD_BASE64_H

#include <stddef.h>

/* Encodes n bytes with the standard alphabet and padding into a malloc'd NUL-terminated
 * string (caller frees). Returns NULL when out of memory. */
char *base64_encode(const unsigned char *src, size_t n, size_t *out_len);

/* Decodes standard or URL-safe base64, padding optional (proto3 JSON accepts all of
 * these). Returns a malloc'd buffer (caller frees; never NULL on success, even for empty
 * input) or NULL on a character outside the alphabet, misplaced padding, a dangling
 * single character, or out of memory. */
unsigned char *base64_decode(const char *src, size_t n, size_t *out_len);

#endif
