/* Where settings come from besides the command line: PYEXECD_<FLAG> environment variables
 * and a config file (--config FILE, or PYEXECD_CONFIG=FILE). Both are turned into
 * `--name=value` arguments placed before the command line's own, so config_parse, where
 * the last of a flag wins, gives the precedence
 *
 *     command-line flag > PYEXECD_<FLAG> > config file > default.
 *
 * Any flag of config_parse's table (config_options) is a setting both can give, unless
 * config_flag_kind says it is command-line only. A repeatable flag (--model) and a boolean
 * are taken from the highest source that mentions them, so `false` in the environment
 * overrides `true` in the file and models are never merged across sources.
 *
 * The environment: PYEXECD_ + the flag upper-cased with '-' as '_' (PYEXECD_MAX_SESSIONS);
 * booleans are true or false; a repeatable flag is a whitespace-separated list; an empty
 * value counts as unset. A PYEXECD_ variable that names no setting is ignored (the
 * project's scripts and tests have their own: PYEXECD_BIN, PYEXECD_SANITIZED, ...); the
 * report lists them, so a misspelt one shows. A command-line-only flag's variable
 * (PYEXECD_ZYGOTE, PYEXECD_HELP, ...) is refused, but PYEXECD_CONFIG, which names the file.
 *
 * The file: at most LIMIT_CONFIG_FILE_BYTES, a regular file. One `name = value` a line, the
 * name a flag without its dashes; blank lines and lines starting with '#' are skipped (a
 * '#' inside a value is part of it); the value is the rest of the line, trimmed, taken as
 * it is (no quotes); booleans true or false; a setting at most once (a repeatable one as
 * often as needed).
 *
 * Every refusal names where and which: "FILE:LINE: workers: bad value 'x' (see --help)",
 * "PYEXECD_WORKERS: bad value 'x' (see --help)". Each value is checked on its own by
 * config_parse when read (into a scratch config: parse the merged arguments after this).
 *
 * The zygote does not call this: it gets the server's merged arguments on its command line
 * (server_run passes them on) and an environment of the server's making. */
#ifndef PYEXECD_CONFIG_SOURCES_H
#define PYEXECD_CONFIG_SOURCES_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

struct config_record;

struct config_sources {
    /* The merged arguments: argv[0], the file's and the environment's as --name=value,
     * then the command line's own; NULL-terminated. The strings are the command line's
     * or owned here: a config parsed from them points into them, so this must outlive
     * it (main keeps it until exit). */
    int argc;
    char **argv;

    /* The rest is config_sources.c's. */
    const char *file;         /* the config file read, or NULL */
    const char *file_from;    /* "--config" or "PYEXECD_CONFIG" */
    struct config_record *records;   /* every setting given, in the order read */
    size_t nrecords, caprecords;
    char **owned;             /* strings allocated here */
    size_t nowned, capowned;
    char **ignored;           /* PYEXECD_ variables that name no setting (owned) */
    size_t nignored;
};

/* Reads the environment (envp, as environ) and the config file that argv's --config or
 * PYEXECD_CONFIG names, and makes s->argc and s->argv. argv must already parse
 * (config_parse) on its own. Returns 0, or -1 with a message in err naming the source and
 * the setting (exit 2); s needs config_sources_release either way. */
int config_sources_merge(struct config_sources *s, int argc, char **argv, char *const *envp,
                         char *err, size_t errlen);

/* Writes every setting of c (parsed from s->argv) as a config file would hold it, with
 * where its value came from: "command line", "PYEXECD_X", "FILE:LINE" or "default";
 * unset ones commented out. */
void config_sources_report(const struct config_sources *s, const struct config *c, FILE *f);

void config_sources_release(struct config_sources *s);

#endif
