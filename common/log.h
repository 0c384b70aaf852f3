/* The server's log level (--log-level) and its one-line messages on stderr. Every
 * "pyexecd: ..." line goes through log_msg, so a level filters all of them; the one line
 * per request (server/request_log.c) is written at LOG_INFO. Set once at start, before
 * any thread: read-only after, so thread-safe. */
#ifndef PYEXECD_LOG_H
#define PYEXECD_LOG_H

enum log_level {
    LOG_DEBUG,   /* what each worker does (ready, discarded) */
    LOG_INFO,    /* the default: one line per request */
    LOG_WARN,    /* start-up, drain and shutdown, and every warning */
    LOG_ERROR,   /* what stops the server or refuses a start */
};

/* The level by name ("debug", "info", "warn", "error"), or -1. */
int log_level_from_name(const char *name);
const char *log_level_name(enum log_level l);

void log_set_level(enum log_level l);

/* Nonzero when messages of level l are written. */
int log_enabled(enum log_level l);

/* Writes "pyexecd: " and the formatted message (a newline added) in one write, so that
 * lines from several threads never interleave; nothing when l is below the level. */
__attribute__((format(printf, 2, 3)))
void log_msg(enum log_level l, const char *fmt, ...);

/* Writes len bytes (a whole line, newline included) in one write when l is enabled. */
void log_line(enum log_level l, const char *line, unsigned long len);

#endif
