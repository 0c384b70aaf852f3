/* block_output_build: from the bytes a worker captured for one block to the
 * codeExecutionResult entries, for every way a block can end, with the output cap,
 * character-safe cutting and UTF-8 repair. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/limits.h"
#include "server/block_output.h"
#include "server/execution.h"
#include "server/utf8.h"
#include "tests/unit/check.h"

#define NOTICE(cap) "\n[output truncated: more than " #cap " bytes were written]\n"

/* A capture memfd holding s[0..n). */
static int memfd_with(const char *s, size_t n)
{
    int fd = memfd_create("capture", MFD_CLOEXEC);
    if (fd < 0 || write(fd, s, n) != (ssize_t)n) {
        perror("memfd");
        exit(2);
    }
    return fd;
}

/* An input whose stdout and stderr are whole memfds (absent when NULL). */
static struct block_output_input input(enum block_end end, const char *out, const char *err)
{
    struct block_output_input in;
    memset(&in, 0, sizeof(in));
    in.end = end;
    in.out.fd = out ? memfd_with(out, strlen(out)) : -1;
    in.out.end = out ? (off_t)strlen(out) : 0;
    in.err.fd = err ? memfd_with(err, strlen(err)) : -1;
    in.err.end = err ? (off_t)strlen(err) : 0;
    in.cap = 1024;
    in.failed_stdout = FAILED_STDOUT_SPLIT;
    return in;
}

static void close_input(struct block_output_input *in)
{
    if (in->out.fd >= 0)
        close(in->out.fd);
    if (in->err.fd >= 0)
        close(in->err.fd);
}

static void free_result(struct block_result *r)
{
    for (size_t i = 0; i < r->nentries; i++)
        free(r->entries[i].output);
    memset(r, 0, sizeof(*r));
}

/* 1 when entry e has outcome o and output exactly want (NULL: absent). */
static int entry_is(const struct block_result *r, size_t e, enum outcome o, const char *want)
{
    if (e >= r->nentries)
        return 0;
    const struct result_entry *x = &r->entries[e];
    int ok = x->outcome == o;
    if (!want)
        ok &= x->output == NULL && x->output_len == 0;
    else
        ok &= x->output && x->output_len == strlen(want) && strcmp(x->output, want) == 0;
    if (!ok)
        fprintf(stderr, "  entry %zu: outcome %d output \"%s\", want %d \"%s\"\n", e,
                x->outcome, x->output ? x->output : "(absent)", o, want ? want : "(absent)");
    return ok;
}

/* Builds, checks the number of entries and the truncation flag; returns 1 on success. */
static int build(struct block_result *r, struct block_output_input *in, size_t nentries,
                 int want_truncated)
{
    int truncated = 0;
    memset(r, 0, sizeof(*r));
    int rc = block_output_build(r, in, &truncated);
    close_input(in);
    int ok = rc == 0 && r->nentries == nentries && truncated == want_truncated;
    if (!ok)
        fprintf(stderr, "  build: rc %d, %zu entries (want %zu), truncated %d (want %d)\n", rc,
                r->nentries, nentries, truncated, want_truncated);
    return ok;
}

/* A block that ran to the end: its stdout exactly; no stdout is an absent output. */
static void test_ok(void)
{
    struct block_result r;
    struct block_output_input in = input(BLOCK_END_OK, "hello\n", "ignored on success\n");
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_OK, "hello\n"));
    free_result(&r);

    /* Only this block's range of a capture file shared by several blocks. */
    in = input(BLOCK_END_OK, "block1\nblock2\nblock3\n", NULL);
    in.out.start = 7;
    in.out.end = 14;
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_OK, "block2\n"));
    free_result(&r);

    /* Empty range: output absent, not "". */
    in = input(BLOCK_END_OK, "earlier block\n", NULL);
    in.out.start = in.out.end;
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_OK, NULL));
    free_result(&r);

    /* No capture file at all. */
    in = input(BLOCK_END_OK, NULL, NULL);
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_OK, NULL));
    free_result(&r);
}

/* An uncaught exception, split mode: stdout in its own OK entry, then FAILED with stderr
 * and the error text; with no stdout only the FAILED entry. */
static void test_exception_split(void)
{
    struct block_result r;
    struct block_output_input in = input(BLOCK_END_EXCEPTION, "before\n", "warning\n");
    const char *error = "division by zero\nTraceback (most recent call last):\n...\n";
    in.error_text = error;
    in.error_len = strlen(error);
    CHECK(build(&r, &in, 2, 0));
    CHECK(entry_is(&r, 0, OUTCOME_OK, "before\n"));
    CHECK(entry_is(&r, 1, OUTCOME_FAILED,
                   "warning\ndivision by zero\nTraceback (most recent call last):\n...\n"));
    free_result(&r);

    in = input(BLOCK_END_EXCEPTION, "", "warning\n");
    in.error_text = error;
    in.error_len = strlen(error);
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_FAILED,
                   "warning\ndivision by zero\nTraceback (most recent call last):\n...\n"));
    free_result(&r);

    /* Neither stream: the error text alone. */
    in = input(BLOCK_END_EXCEPTION, NULL, NULL);
    in.error_text = "boom\n";
    in.error_len = 5;
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_FAILED, "boom\n"));
    free_result(&r);

    /* error_len bounds the error text (it need not be NUL-terminated there). */
    in = input(BLOCK_END_EXCEPTION, NULL, NULL);
    in.error_text = "boom\nEXTRA";
    in.error_len = 5;
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_FAILED, "boom\n"));
    free_result(&r);

    /* A crash is reported the same way. */
    in = input(BLOCK_END_CRASH, "out\n", NULL);
    in.error_text = "The interpreter crashed (signal 11).\n";
    in.error_len = strlen(in.error_text);
    CHECK(build(&r, &in, 2, 0));
    CHECK(entry_is(&r, 0, OUTCOME_OK, "out\n"));
    CHECK(entry_is(&r, 1, OUTCOME_FAILED, "The interpreter crashed (signal 11).\n"));
    free_result(&r);
}

/* Merge mode: one FAILED entry, stdout then stderr then the error. */
static void test_exception_merge(void)
{
    struct block_result r;
    struct block_output_input in = input(BLOCK_END_EXCEPTION, "before\n", "warning\n");
    in.failed_stdout = FAILED_STDOUT_MERGE;
    in.error_text = "boom\n";
    in.error_len = 5;
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_FAILED, "before\nwarning\nboom\n"));
    free_result(&r);
}

/* Killed at the deadline: what it printed so far, under DEADLINE_EXCEEDED. */
static void test_deadline(void)
{
    struct block_result r;
    struct block_output_input in = input(BLOCK_END_DEADLINE, "tick 1\ntick 2\n", NULL);
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_DEADLINE_EXCEEDED, "tick 1\ntick 2\n"));
    free_result(&r);

    in = input(BLOCK_END_DEADLINE, "", NULL);
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_DEADLINE_EXCEEDED, NULL));
    free_result(&r);
}

/* A block after the interpreter died: FAILED with the fixed text, whatever the files. */
static void test_not_run(void)
{
    struct block_result r;
    struct block_output_input in = input(BLOCK_END_NOT_RUN, "stale\n", "stale\n");
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_FAILED, block_output_not_run_text));
    CHECK(strlen(block_output_not_run_text) > 0);
    free_result(&r);
}

/* The cap: exactly cap bytes pass untouched; one more is cut with the notice. */
static void test_cap(void)
{
    struct block_result r;
    struct block_output_input in = input(BLOCK_END_OK, "hello", NULL);
    in.cap = 5;
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_OK, "hello"));
    free_result(&r);

    in = input(BLOCK_END_OK, "hello!", NULL);
    in.cap = 5;
    CHECK(build(&r, &in, 1, 1));
    CHECK(entry_is(&r, 0, OUTCOME_OK, "hello" NOTICE(5)));
    free_result(&r);

    /* The cap counts this block's range only, not the file. */
    in = input(BLOCK_END_OK, "0123456789hello", NULL);
    in.out.start = 10;
    in.cap = 5;
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_OK, "hello"));
    free_result(&r);

    /* stderr has its own cap in a failure. */
    in = input(BLOCK_END_EXCEPTION, NULL, "0123456789");
    in.cap = 4;
    in.error_text = "E\n";
    in.error_len = 2;
    CHECK(build(&r, &in, 1, 1));
    CHECK(entry_is(&r, 0, OUTCOME_FAILED, "0123" NOTICE(4) "E\n"));
    free_result(&r);
}

/* A cap that falls inside a multi-byte character cuts before that character. */
static void test_cap_utf8(void)
{
    struct block_result r;
    /* "ab€": the euro sign is bytes 2..4. */
    static const struct {
        size_t cap;
        const char *want;
        int truncated;
    } cases[] = {
        {2, "ab" NOTICE(2), 1},
        {3, "ab" NOTICE(3), 1},
        {4, "ab" NOTICE(4), 1},
        {5, "ab\xE2\x82\xAC", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct block_output_input in = input(BLOCK_END_OK, "ab\xE2\x82\xAC", NULL);
        in.cap = cases[i].cap;
        CHECK(build(&r, &in, 1, cases[i].truncated));
        CHECK(entry_is(&r, 0, OUTCOME_OK, cases[i].want));
        free_result(&r);
    }

    /* Every cap over a mixed string: valid UTF-8, and a prefix of the text. */
    const char *mixed = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z";
    int bad = 0;
    for (size_t cap = 0; cap <= 11; cap++) {
        struct block_output_input in = input(BLOCK_END_OK, mixed, NULL);
        in.cap = cap;
        int truncated = 0;
        memset(&r, 0, sizeof(r));
        if (block_output_build(&r, &in, &truncated) != 0 || r.nentries != 1) {
            bad++;
            close_input(&in);
            continue;
        }
        close_input(&in);
        const char *o = r.entries[0].output ? r.entries[0].output : "";
        size_t kept = strcspn(o, "\n");   /* text before the notice */
        if (utf8_valid_prefix((const unsigned char *)o, strlen(o)) != strlen(o) ||
            kept > cap || memcmp(o, mixed, kept) != 0 || truncated != (cap < 11))
            bad++;
        free_result(&r);
    }
    CHECK(bad == 0);
}

/* Bytes that are not UTF-8 become U+FFFD, one per byte; the rest is untouched. */
static void test_invalid_utf8(void)
{
    struct block_result r;
    struct block_output_input in = input(BLOCK_END_OK, "a\xFF" "b\xC0\x80" "c\n", NULL);
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_OK, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD" "c\n"));
    free_result(&r);

    /* Also in stderr and in the error text. */
    in = input(BLOCK_END_EXCEPTION, NULL, "\xFE\n");
    in.error_text = "bad \xED\xA0\x80\n";
    in.error_len = strlen(in.error_text);
    CHECK(build(&r, &in, 1, 0));
    CHECK(entry_is(&r, 0, OUTCOME_FAILED,
                   "\xEF\xBF\xBD\nbad \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\n"));
    free_result(&r);
}

/* A NUL byte is valid UTF-8 and is kept, counted in output_len (the output is not a
 * C string: print("a\0b") must not lose the "b"). */
static void test_nul_kept(void)
{
    struct block_result r;
    struct block_output_input in = input(BLOCK_END_OK, NULL, NULL);
    in.out.fd = memfd_with("a\0b\n", 4);
    in.out.end = 4;
    CHECK(build(&r, &in, 1, 0));
    CHECK(r.nentries == 1 && r.entries[0].output && r.entries[0].output_len == 4 &&
          memcmp(r.entries[0].output, "a\0b\n", 4) == 0);
    free_result(&r);
}

/* The worker's own truncation flag (it dropped bytes past the cap) adds the notice. */
static void test_worker_truncated(void)
{
    struct block_result r;
    struct block_output_input in = input(BLOCK_END_OK, "abc", NULL);
    in.cap = 100;
    in.out_truncated = 1;
    CHECK(build(&r, &in, 1, 1));
    CHECK(entry_is(&r, 0, OUTCOME_OK, "abc" NOTICE(100)));
    free_result(&r);

    /* stderr's flag, in a failure: the notice follows stderr, before the error. */
    in = input(BLOCK_END_EXCEPTION, "out\n", "err");
    in.cap = 100;
    in.err_truncated = 1;
    in.error_text = "E\n";
    in.error_len = 2;
    CHECK(build(&r, &in, 2, 1));
    CHECK(entry_is(&r, 0, OUTCOME_OK, "out\n"));
    CHECK(entry_is(&r, 1, OUTCOME_FAILED, "err" NOTICE(100) "E\n"));
    free_result(&r);
}

/* The block's budget (what is left of the request's): streams take from it in order, and
 * one whose share is gone still keeps LIMIT_OUTPUT_BYTES_FLOOR. */
static void test_budget(void)
{
    enum { CAP = 3 * LIMIT_OUTPUT_BYTES_FLOOR };
    static char out[CAP + 1], err[CAP + 1];
    memset(out, 'o', CAP);
    memset(err, 'e', CAP);
    struct block_result r;
    /* At the budget: both streams whole. */
    struct block_output_input in = input(BLOCK_END_EXCEPTION, out, err);
    in.cap = CAP;
    in.budget = 2 * CAP;
    CHECK(build(&r, &in, 2, 0));
    CHECK(r.nentries == 2 && r.entries[0].output_len == CAP);
    CHECK(r.nentries == 2 && r.entries[1].output_len == CAP);
    free_result(&r);
    /* Past it: stdout whole, stderr cut to what is left, the error kept to the floor. */
    in = input(BLOCK_END_EXCEPTION, out, err);
    in.cap = CAP;
    in.budget = CAP + LIMIT_OUTPUT_BYTES_FLOOR + 10;
    in.error_text = err;
    in.error_len = CAP;
    CHECK(build(&r, &in, 2, 1));
    CHECK(r.nentries == 2 && r.entries[0].output_len == CAP);
    CHECK(r.nentries == 2 && r.entries[1].output_len > LIMIT_OUTPUT_BYTES_FLOOR + 10 &&
          r.entries[1].output_len < 2 * LIMIT_OUTPUT_BYTES_FLOOR + 10 + 200);
    free_result(&r);
}

int main(void)
{
    test_ok();
    test_exception_split();
    test_exception_merge();
    test_deadline();
    test_not_run();
    test_cap();
    test_cap_utf8();
    test_invalid_utf8();
    test_nul_kept();
    test_worker_truncated();
    test_budget();
    return check_done();
}
