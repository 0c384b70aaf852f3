/* Which MIME types become input files in the work dir, and the extension each gets:
 * decided here for every API that carries files (/v1/execute, generateContent). */
#ifndef PYEXECD_INPUT_TYPES_H
#define PYEXECD_INPUT_TYPES_H

/* The extension ("csv") for a MIME type, parameters (";charset=...") and letter case
 * ignored; NULL when files of that type are not accepted. Static text. */
const char *input_file_extension(const char *mime);

/* The accepted types, for error messages. */
extern const char input_file_types_text[];

#endif
