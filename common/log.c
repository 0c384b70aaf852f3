#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum log_level level = LOG_INFO;

static const char *const names[] = {"debug", "info", "warn", "error"};

int log_level_from_name(const char *name)
{
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *log_level_name(enum log_level l)
{
    return (unsigned)l < sizeof(names) / sizeof(names[0]) ? names[l] : "info";
}

void log_set_level(enum log_level l)
{
    level = l;
}

int log_enabled(enum log_level l)
{
    return l >= level;
}

void log_line(enum log_level l, const char *line, unsigned long len)
{
    if (!log_enabled(l))
        return;
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, line, len);
        if (n <= 0)
            return;   /* a closed or full stderr must not stop the server */
        line += n;
        len -= (unsigned long)n;
    }
}

void log_msg(enum log_level l, const char *fmt, ...)
{
    char buf[2048];
    if (!log_enabled(l))
        return;
    int o = snprintf(buf, sizeof(buf), "pyexecd: ");
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + o, sizeof(buf) - (size_t)o - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)o + (n < 0 ? 0 : (size_t)n);
    if (len > sizeof(buf) - 2)
        len = sizeof(buf) - 2;   /* cut, but still one line */
    buf[len++] = '\n';
    log_line(l, buf, len);
}
