/* The JSON of OpenAI-compatible chat completions, as the openai model speaks it to an
 * upstream server (llama.cpp, vLLM, Ollama): a Gemini conversation turned into chat
 * messages with one run_python tool, and the reply read back. A file that owns cJSON
 * (see the include rule). */
#ifndef PYEXECD_OPENAI_WIRE_H
#define PYEXECD_OPENAI_WIRE_H

#include <stddef.h>

#include "../common/result.h"
#include "genai.h"

/* The tool the model is offered, when the request has codeExecution. */
#define OPENAI_TOOL_NAME "run_python"

/* One tool call the model made in this turn and what it gave back. */
struct openai_call {
    char *id;            /* the model's tool_call id */
    char *name;          /* the function it named */
    char *arguments;     /* as it sent them (JSON text) */
    char *result;        /* what goes back in the tool message */
};

/* One step of this turn: the model's text (may be NULL) and the calls it made. */
struct openai_step {
    char *text;
    struct openai_call *calls;
    size_t ncalls;
};

void openai_step_release(struct openai_step *s);

/* A chat-completions request for model: system (req's system instruction and
 * system_note), the conversation of req (earlier code and results as tool calls and
 * tool messages when the tool is offered, as text otherwise), then this turn's steps.
 * offer_tool adds the run_python tool and tool_choice ("auto", "required", "none", or
 * OPENAI_TOOL_NAME for the named form {"type": "function", "function": {"name": ...}}).
 * Returns malloc'd JSON (caller frees) or NULL when out of memory. */
char *openai_encode_request(const char *model, const struct gen_request *req,
                            const char *system_note, const struct openai_step *steps,
                            size_t nsteps, int offer_tool, const char *tool_choice,
                            size_t *len);

/* Reads choices[0].message of a response body (NUL-terminated at body[len]) into *out:
 * its text and tool calls (results NULL); bytes that are not UTF-8 are read as U+FFFD.
 * Returns PX_OK, or PX_INTERNAL with why the body is not a chat completion in msg. */
enum px_result openai_parse_reply(const char *body, size_t len, struct openai_step *out,
                                  char *msg, size_t msglen);

/* The code of a run_python call's arguments ({"code": "..."}): malloc'd (caller frees),
 * valid UTF-8; or NULL with why not in msg. */
char *openai_call_code(const char *arguments, char *msg, size_t msglen);

#endif
