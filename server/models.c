#include "models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/limits.h"

static struct model table[LIMIT_MODELS + 1];   /* the bindings, and echo */
static size_t count;

static const struct model_backend *const backends[] = {&model_echo, &model_script,
                                                       &model_openai};

/* A model name as the API's paths carry it: letters, digits, '-', '.', '_'. */
static int valid_name(const char *s, size_t n)
{
    if (n == 0 || n >= sizeof(table[0].name))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.' || s[i] == '_'))
            return 0;
    return 1;
}

static int add(const char *name, size_t name_len, const char *spec, char *err, size_t errlen)
{
    if (!valid_name(name, name_len)) {
        snprintf(err, errlen, "--model %.*s=%s: a model name is letters, digits, '-', '.' and "
                 "'_' (at most %zu)", (int)name_len, name, spec, sizeof(table[0].name) - 1);
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        if (strlen(table[i].name) == name_len && memcmp(table[i].name, name, name_len) == 0) {
            snprintf(err, errlen, "--model %.*s: bound twice", (int)name_len, name);
            return -1;
        }
    if (count == sizeof(table) / sizeof(table[0])) {
        snprintf(err, errlen, "--model: at most %d models", LIMIT_MODELS);
        return -1;
    }
    const char *colon = strchr(spec, ':');
    size_t kind_len = colon ? (size_t)(colon - spec) : strlen(spec);
    const struct model_backend *b = NULL;
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        if (strlen(backends[i]->kind) == kind_len && memcmp(backends[i]->kind, spec, kind_len) == 0)
            b = backends[i];
    if (!b) {
        snprintf(err, errlen, "--model %.*s=%s: unknown kind of model (echo, script:FILE, "
                 "openai:URL)", (int)name_len, name, spec);
        return -1;
    }
    struct model *m = &table[count];
    memset(m, 0, sizeof(*m));
    memcpy(m->name, name, name_len);
    m->backend = b;
    char why[400];
    if (b->open(colon ? colon + 1 : NULL, m->name, &m->state, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "--model %s=%s: %s", m->name, spec, why);
        return -1;
    }
    /* The kind only: a script's path or an upstream's options are the operator's. */
    snprintf(m->description, sizeof(m->description), "Served by pyexecd: the %s model.",
             b->kind);
    count++;
    return 0;
}

int models_add(const char *binding, char *err, size_t errlen)
{
    const char *eq = strchr(binding, '=');
    if (!eq) {
        snprintf(err, errlen, "--model %s: expected NAME=SPEC (echo, script:FILE, openai:URL)",
                 binding);
        return -1;
    }
    return add(binding, (size_t)(eq - binding), eq + 1, err, errlen);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct model *)a)->name, ((const struct model *)b)->name);
}

int models_finish(char *err, size_t errlen)
{
    if (!models_find("echo") && add("echo", 4, "echo", err, errlen) < 0)
        return -1;
    qsort(table, count, sizeof(table[0]), by_name);
    return 0;
}

const struct model *models_find(const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

size_t models_count(void)
{
    return count;
}

const struct model *models_at(size_t i)
{
    return i < count ? &table[i] : NULL;
}

void models_release(void)
{
    for (size_t i = 0; i < count; i++)
        if (table[i].backend->close)
            table[i].backend->close(table[i].state);
    count = 0;
}
