/* A growing NUL-terminated text assembled in memory: an output field, a chat message's
 * content, the /metrics exposition. A failed allocation sets `failed` and later appends
 * do nothing, so a caller checks once at the end. Not thread-safe: one owner. */
#ifndef PYEXECD_TEXT_BUF_H
#define PYEXECD_TEXT_BUF_H

#include <stddef.h>

struct text_buf {
    char *s;          /* NULL until something was appended; the owner frees it */
    size_t len, cap;
    int failed;
};

/* Appends n bytes of s (which may hold NULs) and keeps the text NUL-terminated. */
void text_buf_add(struct text_buf *t, const void *s, size_t n);

/* Appends printf(fmt, ...). */
void text_buf_printf(struct text_buf *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
