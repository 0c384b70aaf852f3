/* What the fuzz targets share: the property checks (an independent strict JSON and UTF-8
 * checker, so a target does not test the server's code with the server's code), a
 * NUL-terminated copy of the input, and a small reader over the fuzz bytes.
 *
 * A failed property prints what failed and aborts, which libFuzzer reports as a crash
 * and a replay run as a failed test. Each property has an id; PYEXECD_FUZZ_IGNORE (a
 * comma-separated list of ids) turns those into no-ops, so a target can go on fuzzing
 * past a bug that is known and reported (fuzz/README.md). */
#ifndef PYEXECD_FUZZ_UTIL_H
#define PYEXECD_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* What every target defines: runs one input (libFuzzer's entry point; replay_main.c
 * calls it too). Returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Nonzero when PYEXECD_FUZZ_IGNORE lists id. */
int fuzz_ignored(const char *id);

/* Aborts with "property <id> failed: <message>" unless id is ignored. */
void fuzz_fail(const char *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define FUZZ_CHECK(cond, id, ...)                                                      \
    do {                                                                               \
        if (!(cond))                                                                   \
            fuzz_fail(id, __VA_ARGS__);                                                \
    } while (0)

/* A malloc'd copy of data[0..size) with a NUL at [size] (the parsers' contract). */
char *fuzz_cstr(const uint8_t *data, size_t size);

/* 1 when s[0..n) is valid UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF). Written here, independently of server/utf8.c. */
int fuzz_utf8_valid(const unsigned char *s, size_t n);

/* 1 when s[0..n) is exactly one JSON text (RFC 8259, strict: no trailing bytes, no raw
 * control characters in strings, valid escapes, \u surrogates in pairs, raw bytes valid
 * UTF-8). On 0, *where (if not NULL) is the offset of the first wrong byte. */
int fuzz_json_valid(const char *s, size_t n, size_t *where);

/* The checks every encoder's output gets, as properties <id>-null (not NULL), <id>-len
 * (*len, when the encoder reports one, equal to strlen), <id>-utf8 (valid UTF-8) and
 * <id>-json (one valid JSON text). what names the encoder in the message. */
void fuzz_check_json_output(const char *id, const char *what, const char *text, size_t len,
                            int has_len);

/* A cursor over the fuzz input for targets that build structures from it. Reads past the
 * end give zeros (and empty byte strings). */
struct fuzz_in {
    const uint8_t *p;
    size_t left;
};

uint8_t fuzz_u8(struct fuzz_in *in);
uint16_t fuzz_u16(struct fuzz_in *in);
uint32_t fuzz_u32(struct fuzz_in *in);
uint64_t fuzz_u64(struct fuzz_in *in);
/* Up to max bytes: a u16 length, then that many bytes (fewer at the end). */
const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t max, size_t *len);

#endif
