#include "input_types.h"

#include <string.h>
#include <strings.h>

/* The kinds the real service documents, plus plain text. */
static const struct {
    const char *mime;
    const char *ext;
} input_types[] = {
    {"image/png", "png"}, {"image/jpeg", "jpeg"}, {"text/csv", "csv"},
    {"text/xml", "xml"}, {"application/xml", "xml"}, {"text/x-c++src", "cpp"},
    {"text/x-c++", "cpp"}, {"text/x-java-source", "java"}, {"text/x-java", "java"},
    {"text/x-python", "py"}, {"text/x-python-script", "py"},
    {"application/x-python-code", "py"}, {"text/javascript", "js"},
    {"application/javascript", "js"}, {"application/x-javascript", "js"},
    {"text/x-typescript", "ts"}, {"application/typescript", "ts"},
    {"application/x-typescript", "ts"}, {"text/plain", "txt"},
};

const char input_file_types_text[] =
    "image/png, image/jpeg, text/csv, text/xml, text/x-c++src, text/x-java, text/x-python, "
    "text/javascript, text/x-typescript, text/plain";

const char *input_file_extension(const char *mime)
{
    size_t n = strcspn(mime, ";");
    while (n > 0 && (mime[n - 1] == ' ' || mime[n - 1] == '\t'))
        n--;
    for (size_t i = 0; i < sizeof(input_types) / sizeof(input_types[0]); i++) {
        if (strlen(input_types[i].mime) == n && strncasecmp(mime, input_types[i].mime, n) == 0)
            return input_types[i].ext;
    }
    return NULL;
}
