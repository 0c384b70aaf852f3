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

enum outcome exec_result_outcome(const struct exec_result *res)
{
    enum outcome o = 0;
    for (size_t i = 0; res && i < res->nblocks; i++)
        for (size_t e = 0; e < res->blocks[i].nentries; e++) {
            o = res->blocks[i].entries[e].outcome;
            if (o != OUTCOME_OK)
                return o;
        }
    return o;
}

const char *exec_outcome_name(enum outcome o)
{
    switch (o) {
    case OUTCOME_OK: return "OUTCOME_OK";
    case OUTCOME_FAILED: return "OUTCOME_FAILED";
    case OUTCOME_DEADLINE_EXCEEDED: return "OUTCOME_DEADLINE_EXCEEDED";
    }
    return "OUTCOME_UNSPECIFIED";
}

const char *exec_limit_name(enum limit_hit l)
{
    switch (l) {
    case LIMIT_HIT_NONE: return NULL;
    case LIMIT_HIT_DEADLINE: return "DEADLINE";
    case LIMIT_HIT_OUTPUT: return "OUTPUT_BYTES";
    case LIMIT_HIT_IMAGES: return "IMAGES";
    case LIMIT_HIT_CRASH: return "INTERPRETER_CRASH";
    case LIMIT_HIT_MEMORY: return "MEMORY";
    case LIMIT_HIT_DISK: return "DISK_SPACE";
    case LIMIT_HIT_FILE_SIZE: return "FILE_SIZE";
    case LIMIT_HIT_THREADS: return "THREADS";
    case LIMIT_HIT_OPEN_FILES: return "OPEN_FILES";
    case LIMIT_HIT_CPU_TIME: return "CPU_TIME";
    case LIMIT_HIT_SYSCALL: return "FORBIDDEN_SYSCALL";
    }
    return NULL;
}
