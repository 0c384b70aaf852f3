/* The generateContent surface's own types: a request as the model backends read it, and
 * the parts of the model turn they produce. Filled by server/gemini_wire.c from the JSON
 * (which never reaches a backend), read by server/turns.c and server/model_*.c. */
#ifndef PYEXECD_GENAI_H
#define PYEXECD_GENAI_H

#include <stddef.h>

#include "execution.h"

enum gpart_kind {
    GPART_TEXT,
    GPART_CODE,              /* executableCode */
    GPART_RESULT,            /* codeExecutionResult */
    GPART_INLINE_DATA,       /* inlineData: a file (user) or an image (model) */
    GPART_OTHER,             /* fileData, functionCall, ...: accepted, kept as context */
};

/* One part. Every pointer is owned by the part. */
struct gpart {
    enum gpart_kind kind;
    char *text;              /* TEXT: the text; CODE: the code; RESULT: the output (NULL:
                              * absent); NUL-terminated, valid UTF-8 */
    size_t text_len;
    char *id;                /* CODE, RESULT: the id, or NULL */
    enum outcome outcome;    /* RESULT */
    char *mime;              /* INLINE_DATA */
    unsigned char *data;     /* INLINE_DATA: decoded bytes */
    size_t data_len;
    int thought;             /* a thought part (TEXT) */
};

struct gcontent {
    int model;               /* role "model" (else "user" or absent) */
    struct gpart *parts;     /* owned */
    size_t nparts;
};

/* A generateContent (or countTokens) request. */
struct gen_request {
    struct gcontent *contents;   /* owned */
    size_t ncontents;
    char *system_text;       /* systemInstruction's text parts, joined; NULL: none */
    int code_tool;           /* tools hold codeExecution */
    unsigned fidelity;       /* traceback profile of its code's failures (enum fidelity) */
};

/* What a script line (the script backend's model turn) may inject instead of, or into,
 * the turn it stands for. It fires on the first `times` attempts at that turn of a
 * conversation; later attempts get the turn itself. */
struct script_fault {
    int error_code;               /* answer this HTTP error instead; 0: no error */
    char error_status[32];        /* its google.rpc.Code name */
    char error_message[256];
    char retry_delay[16];         /* google.rpc.RetryInfo delay ("2s"), or "" */
    unsigned delay_ms;            /* wait this long before answering */
    unsigned cut_after_events;    /* a stream stops after this many events; 0: none */
    unsigned deadline_ms;         /* each code block runs under this deadline; 0: usual */
    unsigned times;
};

/* One line of a script: the parts of one model turn (text and executableCode). */
struct script_turn {
    struct gpart *parts;          /* owned */
    size_t nparts;
    int has_fault;
    struct script_fault fault;
};

void gpart_release(struct gpart *p);
void script_turn_release(struct script_turn *t);
void gen_request_release(struct gen_request *r);

/* Model turns already in the conversation: runs of consecutive model contents count as
 * one (a streamed chat replays one content per chunk). */
size_t gen_request_model_turns(const struct gen_request *r);

/* The last user content, or NULL. */
const struct gcontent *gen_request_last_user(const struct gen_request *r);

/* Token estimate (the documented rule, README "generateContent"): a text-bearing field
 * counts ceil(bytes / 4), an image or file GEN_TOKENS_PER_BLOB. */
#define GEN_TOKENS_PER_BLOB 258
unsigned long long gen_tokens_of_part(const struct gpart *p);
unsigned long long gen_tokens_of_request(const struct gen_request *r);

#endif
