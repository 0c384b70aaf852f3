#include "interpreter_info.h"

#include <string.h>

void interpreter_info_put(struct ipc_buf *b, const struct interpreter_info *info)
{
    ipc_put_bytes(b, info->python, strlen(info->python));
    ipc_put_u32(b, info->nlibraries);
    for (unsigned i = 0; i < info->nlibraries; i++) {
        ipc_put_bytes(b, info->libraries[i].name, strlen(info->libraries[i].name));
        ipc_put_bytes(b, info->libraries[i].version, strlen(info->libraries[i].version));
        ipc_put_u32(b, info->libraries[i].lists);
    }
    ipc_put_u32(b, info->nfailures);
    for (unsigned i = 0; i < info->nfailures; i++)
        ipc_put_bytes(b, info->import_failures[i], strlen(info->import_failures[i]));
}

/* Copies a length-prefixed string into dst (size n): up to a NUL inside it (so that it
 * reads back the same through interpreter_info_put), and cut to fit at a character's
 * start, never inside a UTF-8 sequence (the strings end up in JSON documents). */
static void get_string(struct ipc_cursor *c, char *dst, size_t n)
{
    size_t len;
    const unsigned char *p = ipc_get_bytes(c, &len);
    if (!p)
        len = 0;
    const unsigned char *nul = len ? memchr(p, '\0', len) : NULL;
    if (nul)
        len = (size_t)(nul - p);
    if (len >= n) {
        len = n - 1;
        while (len > 0 && (p[len] & 0xC0) == 0x80)   /* p[len]: the first byte left out */
            len--;
    }
    if (len)
        memcpy(dst, p, len);
    dst[len] = '\0';
}

int interpreter_info_get(struct ipc_cursor *c, struct interpreter_info *info)
{
    memset(info, 0, sizeof(*info));
    get_string(c, info->python, sizeof(info->python));
    uint32_t n = ipc_get_u32(c);
    for (uint32_t i = 0; i < n && !c->failed; i++) {
        struct library_version dropped, *lib = &dropped;
        if (info->nlibraries < INTERPRETER_INFO_LIBRARIES)
            lib = &info->libraries[info->nlibraries++];
        get_string(c, lib->name, sizeof(lib->name));
        get_string(c, lib->version, sizeof(lib->version));
        lib->lists = ipc_get_u32(c);
    }
    n = ipc_get_u32(c);
    for (uint32_t i = 0; i < n && !c->failed; i++) {
        char dropped[256], *line = dropped;
        if (info->nfailures < INTERPRETER_INFO_FAILURES)
            line = info->import_failures[info->nfailures++];
        get_string(c, line, 256);
    }
    return c->failed ? -1 : 0;
}
