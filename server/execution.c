#include "execution.h"

#include <stdlib.h>
#include <string.h>

void exec_request_release(struct exec_request *req)
{
    for (size_t i = 0; i < req->ncodes; i++)
        free(req->codes[i]);
    free(req->codes);
    free(req->code_lens);
    for (size_t i = 0; i < req->nfiles; i++)
        free(req->files[i].data);
    free(req->files);
    memset(req, 0, sizeof(*req));
}

void exec_result_free(struct exec_result *res)
{
    if (!res)
        return;
    for (size_t i = 0; i < res->nblocks; i++) {
        struct block_result *b = &res->blocks[i];
        for (size_t e = 0; e < b->nentries; e++)
            free(b->entries[e].output);
        for (size_t k = 0; k < b->nimages; k++) {
            free(b->images[k].mime);
            free(b->images[k].data);
        }
        free(b->images);
    }
    free(res->blocks);
    free(res);
}
