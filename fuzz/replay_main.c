/* Corpus replay: a main() for a fuzz target built without libFuzzer (any compiler). Runs
 * LLVMFuzzerTestOneInput once on every regular file of the directories (or the files)
 * named on the command line, in name order, then on a few generated edge inputs (empty,
 * every single byte, and inputs of 1 MiB), unless --no-generated is given.
 *
 *   fuzz_replay_<target> [--no-generated] [--no-fork] DIR|FILE...
 *
 * Each input runs in a child process of its own (for 60 s at most), so one that
 * crashes, hangs, trips a sanitizer (a leak too: LeakSanitizer checks at the child's
 * exit) or fails a property (fuzz/fuzz_util.h) is reported by name and the others still
 * run. Exit status 0 when
 * every input passed, 1 when some failed (all are listed), 2 on a usage error.
 * --no-fork runs them in this process instead (for a debugger): the first failure ends it.
 * This is what `ctest -L fuzz` runs over fuzz/corpus/<target>/. */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fuzz/fuzz_util.h"

extern int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
/* Present when a sanitizer runtime is linked in: it then reports crashes itself. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

#define HUGE_BYTES (1u << 20)

static char current[4096];   /* what is running, for the crash message */

static void say_current(void)
{
    static const char head[] = "\nreplay: the input that failed: ";
    ssize_t ignored = write(2, head, sizeof(head) - 1);
    ignored = write(2, current, strlen(current));
    ignored = write(2, "\n", 1);
    (void)ignored;
}

static void on_fatal_signal(int sig)
{
    say_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int use_fork = 1;
static long nfailed;

static void run_here(const char *name, const uint8_t *data, size_t size)
{
    snprintf(current, sizeof(current), "%s", name);
    /* An exact-size copy, so a read past the end is past the allocation. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) {
        fprintf(stderr, "replay: out of memory for %s\n", name);
        exit(2);
    }
    if (size)
        memcpy(copy, data, size);
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
}

static void run(const char *name, const uint8_t *data, size_t size)
{
    if (!use_fork) {
        run_here(name, data, size);
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("replay: fork");
        exit(2);
    }
    if (pid == 0) {
        alarm(60);   /* a hang is a failure too (SIGALRM), not a stuck test */
        run_here(name, data, size);
        exit(0);   /* not _exit: LeakSanitizer checks at exit */
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return;
    nfailed++;
    if (WIFSIGNALED(st))
        fprintf(stderr, "replay: FAILED (signal %d): %s\n", WTERMSIG(st), name);
    else
        fprintf(stderr, "replay: FAILED (exit status %d): %s\n", WEXITSTATUS(st), name);
}

static int run_file(const char *path, size_t *largest_size, char **largest)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *g = realloc(buf, cap * 2);
            if (!g) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = g;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (!buf || err) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(buf);
        return -1;
    }
    run(path, buf, len);
    if (len > *largest_size || !*largest) {
        free(*largest);
        *largest = (char *)buf;
        *largest_size = len;
    } else {
        free(buf);
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir (not recursing). Returns how many, or -1. */
static long run_dir(const char *dir, size_t *largest_size, char **largest)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return -1;
    }
    char **names = NULL;
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char **g = realloc(names, (count + 1) * sizeof(*names));
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!g || !path) {
            fprintf(stderr, "replay: out of memory\n");
            exit(2);
        }
        names = g;
        snprintf(path, len, "%s/%s", dir, e->d_name);
        names[count++] = path;
    }
    closedir(d);
    qsort(names, count, sizeof(*names), by_name);
    long ran = 0;
    for (size_t i = 0; i < count; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(names[i], largest_size, largest) < 0)
                return -1;
            ran++;
        }
        free(names[i]);
    }
    free(names);
    return ran;
}

/* A buffer of n bytes repeating pattern[0..plen). */
static uint8_t *repeat(const void *pattern, size_t plen, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        fprintf(stderr, "replay: out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < n; i++)
        b[i] = ((const uint8_t *)pattern)[i % plen];
    return b;
}

static long run_generated(const char *largest, size_t largest_size)
{
    long ran = 0;
    run("<generated: empty>", (const uint8_t *)"", 0);
    ran++;
    for (unsigned c = 0; c < 256; c++) {
        uint8_t byte = (uint8_t)c;
        char name[64];
        snprintf(name, sizeof(name), "<generated: the single byte 0x%02x>", c);
        run(name, &byte, 1);
        ran++;
    }
    static const struct {
        const char *name, *pattern;
        size_t len;
    } huge[] = {
        {"<generated: 1 MiB of 'A'>", "A", 1},
        {"<generated: 1 MiB of 0xff>", "\xff", 1},
        {"<generated: 1 MiB of NUL>", "\0", 1},
        {"<generated: 1 MiB of '['>", "[", 1},
        {"<generated: 1 MiB of '{\"a\":'>", "{\"a\":", 5},
        {"<generated: 1 MiB of '\"\\\\'>", "\"\\", 2},
        {"<generated: 1 MiB of '0,'>", "0,", 2},
        {"<generated: 1 MiB of 'allow read\\n'>", "allow read\n", 11},
    };
    for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
        uint8_t *b = repeat(huge[i].pattern, huge[i].len, HUGE_BYTES);
        run(huge[i].name, b, HUGE_BYTES);
        free(b);
        ran++;
    }
    /* 1 MiB of pseudo-random bytes (fixed seed: the same bytes every run). */
    uint8_t *b = malloc(HUGE_BYTES);
    if (!b)
        exit(2);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < HUGE_BYTES; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (uint8_t)x;
    }
    run("<generated: 1 MiB of pseudo-random bytes>", b, HUGE_BYTES);
    free(b);
    ran++;
    /* The largest corpus input, repeated to 1 MiB. */
    if (largest && largest_size) {
        b = repeat(largest, largest_size, HUGE_BYTES);
        run("<generated: the largest corpus input, repeated to 1 MiB>", b, HUGE_BYTES);
        free(b);
        ran++;
    }
    return ran;
}

int main(int argc, char **argv)
{
    if (__sanitizer_set_death_callback) {
        __sanitizer_set_death_callback(say_current);
        signal(SIGABRT, on_fatal_signal);   /* a failed property; the sanitizers leave it */
    } else {
        int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
            signal(sigs[i], on_fatal_signal);
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);

    int generated = 1, paths = 0;
    long corpus = 0;
    size_t largest_size = 0;
    char *largest = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-generated") == 0) {
            generated = 0;
            continue;
        }
        if (strcmp(argv[i], "--no-fork") == 0) {
            use_fork = 0;
            continue;
        }
        struct stat st;
        paths++;
        if (stat(argv[i], &st) < 0) {
            perror(argv[i]);
            return 2;
        }
        long n = S_ISDIR(st.st_mode) ? run_dir(argv[i], &largest_size, &largest)
                                     : run_file(argv[i], &largest_size, &largest) == 0;
        if (n < 0)
            return 2;
        corpus += n;
    }
    long gen = generated ? run_generated(largest, largest_size) : 0;
    free(largest);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("replay: %ld corpus inputs and %ld generated inputs ran in %.2f s: %s\n", corpus,
           gen, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
           nfailed ? "some FAILED (listed above)" : "all passed");
    if (paths && corpus == 0) {
        /* A corpus directory that is empty (or a wrong path) would pass silently. */
        fprintf(stderr, "replay: no corpus input found\n");
        return 2;
    }
    if (nfailed)
        fprintf(stderr, "replay: %ld input(s) failed\n", nfailed);
    return nfailed ? 1 : 0;
}
