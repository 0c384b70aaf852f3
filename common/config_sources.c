#define _GNU_SOURCE
#include "config_sources.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "limits.h"

/* From lowest to highest precedence. */
enum source { SRC_FILE, SRC_ENV, SRC_COMMAND_LINE };

#define ENV_PREFIX "PYEXECD_"
#define ENV_CONFIG "PYEXECD_CONFIG"
#define COMMAND_LINE "command line"
/* Room for "PYEXECD_" and the longest flag name, upper-cased. */
#define ENV_NAME_BYTES 128

/* One setting as a source gave it. */
struct config_record {
    int opt;               /* index in config_options() */
    const char *value;     /* NULL: a flag without a value, given (true) */
    int on;                /* 0: a boolean given as false: it counts, nothing is passed */
    enum source src;
    const char *origin;    /* "command line", "PYEXECD_X", "FILE:LINE" */
    unsigned line;         /* the file's line; 0 elsewhere */
    int effective;         /* its source is the highest that gives its setting */
};

static size_t option_count(void)
{
    size_t n = 0;
    for (const struct option *o = config_options(); o->name; o++)
        n++;
    return n;
}

/* The index of the option named exactly name[0..len), or -1. */
static int find_option(const char *name, size_t len)
{
    const struct option *opts = config_options();
    for (int i = 0; opts[i].name; i++)
        if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
            return i;
    return -1;
}

static int group_of(int opt)
{
    const char *g = config_flag_group(config_options()[opt].name);
    int i = find_option(g, strlen(g));
    return i >= 0 ? i : opt;
}

/* PYEXECD_ + the flag upper-cased, '-' as '_'. */
static void env_name(const char *flag, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, ENV_PREFIX "%s", flag);
    for (size_t i = sizeof(ENV_PREFIX) - 1; i < n && i < len; i++)
        buf[i] = buf[i] == '-' ? '_' : (char)((buf[i] >= 'a' && buf[i] <= 'z') ?
                                               buf[i] - 'a' + 'A' : buf[i]);
}

static const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

/* Takes str (malloc'd) into s, freed by config_sources_release. NULL stays NULL. */
static char *own(struct config_sources *s, char *str)
{
    if (!str)
        return NULL;
    if (s->nowned == s->capowned) {
        size_t cap = s->capowned ? 2 * s->capowned : 32;
        char **grown = realloc(s->owned, cap * sizeof(*grown));
        if (!grown) {
            free(str);
            return NULL;
        }
        s->owned = grown;
        s->capowned = cap;
    }
    return s->owned[s->nowned++] = str;
}

__attribute__((format(printf, 2, 3)))
static char *own_printf(struct config_sources *s, const char *fmt, ...)
{
    char *str;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&str, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : own(s, str);
}

static int add_record(struct config_sources *s, int opt, const char *value, int on,
                      enum source src, const char *origin, unsigned line)
{
    if (s->nrecords == s->caprecords) {
        size_t cap = s->caprecords ? 2 * s->caprecords : 32;
        struct config_record *grown = realloc(s->records, cap * sizeof(*grown));
        if (!grown)
            return -1;
        s->records = grown;
        s->caprecords = cap;
    }
    s->records[s->nrecords++] = (struct config_record){
        .opt = opt, .value = value, .on = on, .src = src, .origin = origin, .line = line};
    return 0;
}

static int out_of_memory(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory reading the settings");
    return -1;
}

/* Checks one value of option o with config_parse, into a scratch config. On refusal, why
 * gets config_parse's reason without the "for --NAME" its caller's origin already says. */
static int check_value(const struct option *o, const char *value, char *why, size_t len)
{
    char *arg;
    if (asprintf(&arg, "--%s=%s", o->name, value) < 0)
        return out_of_memory(why, len);
    char *argv[] = {"pyexecd", arg, NULL};
    struct config scratch;
    int rc = config_parse(&scratch, 2, argv, why, len);
    free(arg);
    if (rc == 0)
        return 0;
    char prefix[ENV_NAME_BYTES + 32];
    snprintf(prefix, sizeof(prefix), "bad value for --%s: ", o->name);
    size_t keep = sizeof("bad value ") - 1, plen = strlen(prefix);
    if (strncmp(why, prefix, plen) == 0)
        memmove(why + keep, why + plen, strlen(why + plen) + 1);
    return -1;
}

/* A setting's value from the environment or the file, checked and recorded. where is the
 * messages' start: "PYEXECD_WORKERS" or "FILE:LINE: workers". */
static int take(struct config_sources *s, int opt, const char *value, enum source src,
                const char *origin, unsigned line, const char *where, char *err, size_t errlen)
{
    const struct option *o = &config_options()[opt];
    char why[512];
    /* Another flag of its group from the same source: config_parse would refuse the pair
     * without saying where they came from. */
    for (size_t i = 0; i < s->nrecords; i++) {
        const struct config_record *r = &s->records[i];
        if (r->src == src && r->opt != opt && group_of(r->opt) == group_of(opt)) {
            snprintf(err, errlen, "%s: %s (%s) chooses the same: give one", where,
                     config_options()[r->opt].name, r->origin);
            return -1;
        }
    }
    if (o->has_arg == no_argument) {
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
            snprintf(err, errlen, "%s: bad value '%s': true or false", where, value);
            return -1;
        }
        int on = value[0] == 't';
        if (add_record(s, opt, on ? NULL : "false", on, src, origin, line) < 0)
            return out_of_memory(err, errlen);
        return 0;
    }
    if (src == SRC_ENV && config_flag_kind(o->name) == CONFIG_REPEATABLE) {
        /* A list: each item is one --flag. */
        const char *p = value;
        for (;;) {
            p += strspn(p, " \t\n\r\f\v");
            if (!*p)
                return 0;
            size_t n = strcspn(p, " \t\n\r\f\v");
            char *item = own(s, strndup(p, n));
            if (!item)
                return out_of_memory(err, errlen);
            if (check_value(o, item, why, sizeof(why)) < 0) {
                snprintf(err, errlen, "%s: %s", where, why);
                return -1;
            }
            if (add_record(s, opt, item, 1, src, origin, line) < 0)
                return out_of_memory(err, errlen);
            p += n;
        }
    }
    if (check_value(o, value, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", where, why);
        return -1;
    }
    char *copy = own(s, strdup(value));
    if (!copy || add_record(s, opt, copy, 1, src, origin, line) < 0)
        return out_of_memory(err, errlen);
    return 0;
}

/* The command line's flags, as config_parse reads them (abbreviations included), on a
 * copy of argv since getopt permutes what it scans. */
static int scan_command_line(struct config_sources *s, int argc, char **argv)
{
    const struct option *opts = config_options();
    char **copy = calloc((size_t)argc + 1, sizeof(char *));
    if (!copy)
        return -1;
    memcpy(copy, argv, (size_t)argc * sizeof(char *));
    int rc = 0, opt, li;
    optind = 0;
    opterr = 0;
    while (li = -1, (opt = getopt_long(argc, copy, "", opts, &li)) != -1) {
        if (li < 0 || opt != opts[li].val)
            continue;   /* config_parse refuses it, and has been asked first */
        if (add_record(s, li, optarg, 1, SRC_COMMAND_LINE, COMMAND_LINE, 0) < 0) {
            rc = -1;
            break;
        }
        if (strcmp(opts[li].name, "config") == 0) {
            s->file = optarg;
            s->file_from = "--config";
        }
    }
    optind = 0;
    free(copy);
    return rc;
}

static int read_environment(struct config_sources *s, char *const *envp, char *err,
                            size_t errlen)
{
    const struct option *opts = config_options();
    char name[ENV_NAME_BYTES];
    for (int i = 0; opts[i].name; i++) {
        env_name(opts[i].name, name, sizeof(name));
        const char *v = env_get(envp, name);
        if (!v || !*v)
            continue;
        if (strcmp(opts[i].name, "config") == 0) {
            if (!s->file_from) {   /* --config on the command line wins */
                if (!(s->file = own(s, strdup(v))))
                    return out_of_memory(err, errlen);
                s->file_from = ENV_CONFIG;
            }
            continue;
        }
        if (config_flag_kind(opts[i].name) == CONFIG_COMMAND_LINE_ONLY) {
            snprintf(err, errlen, "%s: --%s is taken only from the command line", name,
                     opts[i].name);
            return -1;
        }
        const char *origin = own(s, strdup(name));
        if (!origin)
            return out_of_memory(err, errlen);
        if (take(s, i, v, SRC_ENV, origin, 0, origin, err, errlen) < 0)
            return -1;
    }
    /* The PYEXECD_ variables that name no setting: ignored, but listed by the report. */
    size_t count = 0;
    for (char *const *e = envp; e && *e; e++)
        count += strncmp(*e, ENV_PREFIX, sizeof(ENV_PREFIX) - 1) == 0;
    if (!count)
        return 0;
    if (!(s->ignored = calloc(count, sizeof(char *))))
        return out_of_memory(err, errlen);
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, ENV_PREFIX, sizeof(ENV_PREFIX) - 1) != 0)
            continue;
        size_t n = strcspn(*e, "=");
        int known = n == sizeof(ENV_CONFIG) - 1 && strncmp(*e, ENV_CONFIG, n) == 0;
        for (int i = 0; !known && opts[i].name; i++) {
            env_name(opts[i].name, name, sizeof(name));
            known = strlen(name) == n && strncmp(*e, name, n) == 0;
        }
        if (!known && !(s->ignored[s->nignored++] = own(s, strndup(*e, n))))
            return out_of_memory(err, errlen);
    }
    return 0;
}

/* Whitespace around a line's parts. */
static char *trim(char *p, char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    *end = '\0';
    return p;
}

static int parse_line(struct config_sources *s, char *line, unsigned lineno, char *err,
                      size_t errlen)
{
    const char *path = s->file;
    char *eq = strchr(line, '=');
    if (!eq) {
        size_t n = strcspn(line, " \t");
        snprintf(err, errlen, "%s:%u: %.*s: no '=' (a line is name = value; a boolean's value "
                 "is true or false)", path, lineno, (int)n, line);
        return -1;
    }
    char *name = trim(line, eq);
    char *value = trim(eq + 1, eq + 1 + strlen(eq + 1));
    if (!*name) {
        snprintf(err, errlen, "%s:%u: no name before '='", path, lineno);
        return -1;
    }
    int opt = find_option(name, strlen(name));
    if (opt < 0) {
        snprintf(err, errlen, "%s:%u: %s: unknown setting (%s)", path, lineno, name,
                 name[0] == '-' ? "a name is a flag without its dashes" : "see --help");
        return -1;
    }
    const struct option *o = &config_options()[opt];
    char *where = own_printf(s, "%s:%u: %s", path, lineno, o->name);
    char *origin = own_printf(s, "%s:%u", path, lineno);
    if (!where || !origin)
        return out_of_memory(err, errlen);
    if (config_flag_kind(o->name) == CONFIG_COMMAND_LINE_ONLY) {
        snprintf(err, errlen, "%s: taken only from the command line%s", where,
                 strcmp(o->name, "config") == 0 ? " (or " ENV_CONFIG ")" : "");
        return -1;
    }
    if (!*value) {
        snprintf(err, errlen, "%s: no value", where);
        return -1;
    }
    if (config_flag_kind(o->name) != CONFIG_REPEATABLE)
        for (size_t i = 0; i < s->nrecords; i++)
            if (s->records[i].src == SRC_FILE && s->records[i].opt == opt) {
                snprintf(err, errlen, "%s: given again (line %u): give it once", where,
                         s->records[i].line);
                return -1;
            }
    return take(s, opt, value, SRC_FILE, origin, lineno, where, err, errlen);
}

static int read_file(struct config_sources *s, char *err, size_t errlen)
{
    const char *path = s->file;
    /* O_NONBLOCK: a FIFO does not hang the start (and is refused below). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s: cannot read: %s", s->file_from, path, strerror(errno));
        return -1;
    }
    struct stat st;
    char *text = NULL;
    size_t n = 0;
    int too_big = fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
                  st.st_size > (off_t)LIMIT_CONFIG_FILE_BYTES;
    if (!too_big) {
        if (!(text = own(s, malloc(LIMIT_CONFIG_FILE_BYTES + 2)))) {
            close(fd);
            return out_of_memory(err, errlen);
        }
        /* One byte past the limit: a file that grew since fstat is refused too. */
        while (n <= LIMIT_CONFIG_FILE_BYTES) {
            ssize_t got = read(fd, text + n, LIMIT_CONFIG_FILE_BYTES + 1 - n);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0) {
                snprintf(err, errlen, "%s: %s: cannot read: %s", s->file_from, path,
                         strerror(errno));
                close(fd);
                return -1;
            }
            if (got == 0)
                break;
            n += (size_t)got;
        }
        too_big = n > LIMIT_CONFIG_FILE_BYTES;
    }
    close(fd);
    if (too_big) {
        snprintf(err, errlen, "%s: %s: not a regular file of at most %u bytes "
                 "(LIMIT_CONFIG_FILE_BYTES)", s->file_from, path, LIMIT_CONFIG_FILE_BYTES);
        return -1;
    }
    text[n] = '\0';
    unsigned lineno = 1;
    for (char *line = text; line < text + n; lineno++) {
        char *nl = memchr(line, '\n', (size_t)(text + n - line));
        char *end = nl ? nl : text + n;
        if (memchr(line, '\0', (size_t)(end - line))) {
            snprintf(err, errlen, "%s:%u: a NUL byte: not a text file", path, lineno);
            return -1;
        }
        *end = '\0';
        char *p = trim(line, end);
        if (*p && *p != '#' && parse_line(s, p, lineno, err, errlen) < 0)
            return -1;
        line = end + 1;
    }
    return 0;
}

/* Marks the records whose source is the highest giving their setting, and makes the
 * merged arguments from them. */
static int build_argv(struct config_sources *s, int argc, char **argv)
{
    const struct option *opts = config_options();
    size_t nopts = option_count();
    int *top = malloc(nopts * sizeof(int));
    char **merged = calloc((size_t)argc + s->nrecords + 1, sizeof(char *));
    if (!top || !merged) {
        free(top);
        free(merged);
        return -1;
    }
    s->argv = merged;   /* freed by config_sources_release */
    for (size_t i = 0; i < nopts; i++)
        top[i] = -1;
    for (size_t i = 0; i < s->nrecords; i++) {
        int g = group_of(s->records[i].opt);
        if ((int)s->records[i].src > top[g])
            top[g] = (int)s->records[i].src;
    }
    int k = 0;
    merged[k++] = argv[0];
    for (enum source src = SRC_FILE; src <= SRC_COMMAND_LINE; src++)
        for (size_t i = 0; i < s->nrecords; i++) {
            struct config_record *r = &s->records[i];
            if (r->src != src || top[group_of(r->opt)] != (int)src)
                continue;
            r->effective = 1;
            if (src == SRC_COMMAND_LINE || !r->on)
                continue;   /* the command line's are passed as they were written */
            const char *name = opts[r->opt].name;
            char *arg = r->value ? own_printf(s, "--%s=%s", name, r->value)
                                 : own_printf(s, "--%s", name);
            if (!arg) {
                free(top);
                return -1;
            }
            merged[k++] = arg;
        }
    free(top);
    for (int i = 1; i < argc; i++)
        merged[k++] = argv[i];
    merged[k] = NULL;
    s->argc = k;
    return 0;
}

int config_sources_merge(struct config_sources *s, int argc, char **argv, char *const *envp,
                         char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    if (scan_command_line(s, argc, argv) < 0)
        return out_of_memory(err, errlen);
    if (read_environment(s, envp, err, errlen) < 0)
        return -1;
    if (s->file && *s->file && read_file(s, err, errlen) < 0)
        return -1;
    if (build_argv(s, argc, argv) < 0)
        return out_of_memory(err, errlen);
    return 0;
}

/* One setting's line: "name = value", its origin aligned after it; commented out when
 * unset. */
static void report_line(FILE *f, int unset, const char *name, const char *value,
                        const char *origin)
{
    int n = fprintf(f, "%s%s = %s", unset ? "# " : "", name, value);
    fprintf(f, "%*s# %s\n", n < 44 ? 44 - n : 1, "", origin);
}

void config_sources_report(const struct config_sources *s, const struct config *c, FILE *f)
{
    const struct option *opts = config_options();
    fprintf(f, "# pyexecd --check-config: the settings are valid. Each one's value and where it\n"
               "# came from (a flag on the command line, then PYEXECD_<FLAG>, then the config\n"
               "# file, then the default); unset ones are commented out.\n");
    if (s->file && *s->file)
        fprintf(f, "# config file: %s (%s)\n", s->file, s->file_from);
    else
        fprintf(f, "# config file: none\n");
    if (s->nignored) {
        fprintf(f, "# ignored, naming no setting:");
        for (size_t i = 0; i < s->nignored; i++)
            fprintf(f, " %s", s->ignored[i]);
        fprintf(f, "\n");
    }
    for (int opt = 0; opts[opt].name; opt++) {
        const char *name = opts[opt].name;
        enum config_flag_kind kind = config_flag_kind(name);
        if (kind == CONFIG_COMMAND_LINE_ONLY)
            continue;
        const struct config_record *last = NULL, *mate = NULL;
        int given = 0;
        for (size_t i = 0; i < s->nrecords; i++) {
            const struct config_record *r = &s->records[i];
            if (!r->effective)
                continue;
            if (r->opt == opt) {
                last = r;
                if (kind == CONFIG_REPEATABLE) {
                    report_line(f, 0, name, r->value, r->origin);
                    given = 1;
                }
            } else if (group_of(r->opt) == group_of(opt)) {
                mate = r;   /* another flag of its group decided it */
            }
        }
        if (kind == CONFIG_REPEATABLE) {
            if (!given)
                report_line(f, 1, name, "none", "default");
            continue;
        }
        char value[PATH_MAX + 64];
        const char *origin = last ? last->origin : mate ? mate->origin : "default";
        int rc = config_value_text(c, name, value, sizeof(value));
        if (rc < 0 && last)   /* a flag config_value_text has no case for: as given */
            report_line(f, 0, name, last->value ? last->value : last->on ? "true" : "false",
                        origin);
        else if (rc < 0)
            report_line(f, 1, name, "(see --help)", origin);
        else
            report_line(f, rc, name, value, origin);
    }
}

void config_sources_release(struct config_sources *s)
{
    for (size_t i = 0; i < s->nowned; i++)
        free(s->owned[i]);
    free(s->owned);
    free(s->argv);
    free(s->records);
    free(s->ignored);
    memset(s, 0, sizeof(*s));
}
