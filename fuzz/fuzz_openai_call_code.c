/* A run_python tool call's arguments as the upstream model wrote them ({"code": "..."}):
 * openai_call_code (server/openai_wire.c) on a NUL-terminated copy of the input. (The
 * function takes a C string: the input is cut at its first NUL, as a cJSON string would
 * be.)
 *
 * Properties, besides "no crash, no leak, no UB": the code, when there is one, is a
 * non-empty string, and valid UTF-8 (turn_code runs it and echoes it as an
 * executableCode part: execution.h's "UTF-8 code of each block"); without code there is
 * a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_util.h"
#include "server/openai_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *args = fuzz_cstr(data, size);
    char why[200] = "";
    char *code = openai_call_code(args, why, sizeof(why));
    if (code) {
        FUZZ_CHECK(code[0] != '\0', "openai-code", "empty code");
        FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)code, strlen(code)),
                   "openai-code-utf8", "the code is not valid UTF-8, and turn_code runs it");
        free(code);
    } else {
        FUZZ_CHECK(why[0] != '\0', "openai-code", "no code and no reason");
    }
    free(args);
    return 0;
}
