/* What the zygote's interpreter holds: the Python version, each library's version and
 * the imports that failed. Made once in the zygote (sandbox/pyembed.c), sent to the
 * server in IPC_Z_HELLO, decoded once there, and shown by /healthz. Fixed-size, so it is
 * copied by value: nobody owns a pointer into it. */
#ifndef PYEXECD_INTERPRETER_INFO_H
#define PYEXECD_INTERPRETER_INFO_H

#include "ipc.h"

/* Libraries reported (the documented lists name 39) and import failures kept (each a
 * line of text); past these, the rest are left out of the report. */
#define INTERPRETER_INFO_LIBRARIES 64
#define INTERPRETER_INFO_FAILURES  8

/* The real service's documented library lists (docs/gemini-wire.md), as bits. */
#define LIBRARY_LIST_VERTEX 0x1u   /* Vertex AI's (the user's fifteen) */
#define LIBRARY_LIST_GEMINI 0x2u   /* the Gemini API's */

struct library_version {
    char name[64];            /* distribution name, "scikit-learn" */
    char version[32];         /* "" when it is not installed */
    unsigned lists;           /* LIBRARY_LIST_* naming it */
};

struct interpreter_info {
    char python[32];          /* "3.11.2"; "" until a zygote has said HELLO */
    struct library_version libraries[INTERPRETER_INFO_LIBRARIES];
    unsigned nlibraries;
    char import_failures[INTERPRETER_INFO_FAILURES][256];
    unsigned nfailures;
};

/* Appends info to a frame being built. */
void interpreter_info_put(struct ipc_buf *b, const struct interpreter_info *info);

/* Reads what interpreter_info_put wrote; over-long strings are cut, extra entries
 * dropped. Returns 0, or -1 (with c->failed) on a malformed payload. */
int interpreter_info_get(struct ipc_cursor *c, struct interpreter_info *info);

#endif
