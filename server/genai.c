#include "genai.h"

#include <stdlib.h>
#include <string.h>

void gpart_release(struct gpart *p)
{
    free(p->text);
    free(p->id);
    free(p->mime);
    free(p->data);
}

void script_turn_release(struct script_turn *t)
{
    for (size_t i = 0; i < t->nparts; i++)
        gpart_release(&t->parts[i]);
    free(t->parts);
    t->parts = NULL;
    t->nparts = 0;
}

void gen_request_release(struct gen_request *r)
{
    for (size_t i = 0; i < r->ncontents; i++) {
        for (size_t k = 0; k < r->contents[i].nparts; k++)
            gpart_release(&r->contents[i].parts[k]);
        free(r->contents[i].parts);
    }
    free(r->contents);
    free(r->system_text);
    r->contents = NULL;
    r->ncontents = 0;
    r->system_text = NULL;
}

size_t gen_request_model_turns(const struct gen_request *r)
{
    size_t turns = 0;
    for (size_t i = 0; i < r->ncontents; i++)
        if (r->contents[i].model && (i == 0 || !r->contents[i - 1].model))
            turns++;
    return turns;
}

const struct gcontent *gen_request_last_user(const struct gen_request *r)
{
    for (size_t i = r->ncontents; i > 0; i--)
        if (!r->contents[i - 1].model)
            return &r->contents[i - 1];
    return NULL;
}

static unsigned long long tokens_of_bytes(size_t n)
{
    return (n + 3) / 4;
}

unsigned long long gen_tokens_of_part(const struct gpart *p)
{
    switch (p->kind) {
    case GPART_TEXT:
    case GPART_CODE:
    case GPART_RESULT:
        return p->text ? tokens_of_bytes(p->text_len) : 0;
    case GPART_INLINE_DATA:
        return GEN_TOKENS_PER_BLOB;
    case GPART_OTHER:
        return 0;
    }
    return 0;
}

unsigned long long gen_tokens_of_request(const struct gen_request *r)
{
    unsigned long long n = r->system_text ? tokens_of_bytes(strlen(r->system_text)) : 0;
    for (size_t i = 0; i < r->ncontents; i++)
        for (size_t k = 0; k < r->contents[i].nparts; k++)
            n += gen_tokens_of_part(&r->contents[i].parts[k]);
    return n;
}
