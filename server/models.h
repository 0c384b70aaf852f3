/* The models the generateContent surface serves: each name (--model NAME=SPEC, and
 * `echo` always) bound to a backend that writes the model's turns. The table is made at
 * start and read-only after. */
#ifndef PYEXECD_MODELS_H
#define PYEXECD_MODELS_H

#include <stddef.h>

#include "genai.h"

struct turn;

/* A kind of model. */
struct model_backend {
    const char *kind;   /* the SPEC's prefix: "echo", "script", "openai" */
    /* Makes the backend's state from the SPEC after "kind:" (NULL when there is none).
     * Returns 0, or -1 with a message naming what is wrong in err. */
    int (*open)(const char *arg, const char *name, void **state, char *err, size_t errlen);
    /* Writes one model turn for req through t (turn_text, turn_code), or fails it
     * (turn_fail). Runs on a turn runner; may block. */
    void (*run)(void *state, struct turn *t, const struct gen_request *req);
    void (*close)(void *state);
};

extern const struct model_backend model_echo;     /* server/model_echo.c */
extern const struct model_backend model_script;   /* server/model_script.c */
extern const struct model_backend model_openai;   /* server/model_openai.c */

struct model {
    char name[128];           /* "gemini-2.5-flash" */
    char description[256];    /* what serves it, for models.get */
    const struct model_backend *backend;
    void *state;
};

/* Adds a model from "NAME=SPEC" (SPEC: echo, script:FILE, openai:URL[,option=value]...).
 * Returns 0, or -1 with "--model ...: what is wrong" in err. Call before serving. */
int models_add(const char *binding, char *err, size_t errlen);

/* Adds `echo` unless a binding took the name; call once, after models_add. */
int models_finish(char *err, size_t errlen);

/* The model served under name, or NULL. */
const struct model *models_find(const char *name);

/* The models, sorted by name. */
size_t models_count(void);
const struct model *models_at(size_t i);

void models_release(void);

/* The openai model's whole-call timeout (--upstream-timeout-ms); before serving. */
void model_openai_set_timeout(unsigned ms);

#endif
